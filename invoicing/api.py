"""E-invoices over JSON, mounted on ``market40.api.api`` under /api/v1/.

Scope as everywhere: a user sees the invoices of ``markets_for(user)`` only; another market's
invoice or demand answers 404, worded like one that does not exist. Issuing, replacing and
adjusting need the market's accountant or manager role (or a platform admin): 403 otherwise.
Handlers parse, authorise and call ``invoicing.services``; errors are the API envelope.

``GET /invoices/{id}/xml`` returns the stored bytes exactly as signed (never re-serialised),
with their SHA-256 as the ETag.
"""

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema, Status
from ninja.pagination import LimitOffsetPagination, paginate
from pydantic import ConfigDict

from invoicing import services
from invoicing.models import Invoice
from invoicing.tasks import enqueue_period_run
from invoicing.views import xml_response
from market40.errors import NotFound
from market40.models import FeeDemand
from market40.services import markets_for, parse_period

router = Router(tags=["invoices"])

InvoiceStatus = Literal["signed", "replaced", "adjusted"]
InvoiceKind = Literal["original", "replacement", "adjustment"]


class Page(LimitOffsetPagination):
    """``?limit=&offset=`` → ``{"items": [...], "count": total}``."""

    class Input(Schema):
        limit: int = Field(50, ge=1, le=500)
        offset: int = Field(0, ge=0)


class InputSchema(Schema):
    model_config = ConfigDict(extra="forbid")


# --- shapes --------------------------------------------------------------------------


class InvoiceLineOut(Schema):
    number: int = Field(description="STT")
    nature: int = Field(description="TChat: 1 hàng hóa, dịch vụ; 4 ghi chú")
    name: str
    unit: str
    quantity: Decimal | None
    unit_price: Decimal | None = Field(description="Đơn giá chưa thuế (DGia), tối đa 6 số lẻ.")
    net_vnd: int = Field(description="ThTien: thành tiền chưa thuế")
    vat_rate: str = Field(description="TSuat; trống trên hóa đơn bán hàng")
    vat_vnd: int = Field(description="Tiền thuế của dòng (tham khảo; tổng thuế theo nhóm)")
    gross_vnd: int


class InvoiceOut(Schema):
    id: int
    market: str
    demand_id: int
    kind: InvoiceKind
    status: InvoiceStatus
    form: str = Field(description="KHMSHDon")
    serial: str = Field(description="KHHDon")
    number: int = Field(description="SHDon")
    label: str
    issue_date: date
    period: str = Field(description="Kỳ phí YYYY-MM")
    buyer_name: str
    buyer_tax_code: str
    buyer_citizen_id: str
    buyer_address: str
    buyer_code: str
    stall_code: str
    payment_code: str
    total_net_vnd: int
    total_vat_vnd: int
    total_payable_vnd: int
    amount_in_words: str
    related_invoice_id: int | None
    reason: str
    sha256: str
    signing_time: datetime
    issued_by: str | None = Field(description="Trống: xuất tự động khi thanh toán đủ.")
    xml_url: str = Field(description="Tải XML đã ký (đúng từng byte).")

    @staticmethod
    def resolve_market(obj: Invoice) -> str:
        return obj.market.code

    @staticmethod
    def resolve_serial(obj: Invoice) -> str:
        return obj.serial_code

    @staticmethod
    def resolve_period(obj: Invoice) -> str:
        return f"{obj.period:%Y-%m}"

    @staticmethod
    def resolve_related_invoice_id(obj: Invoice) -> int | None:
        return obj.related_id

    @staticmethod
    def resolve_issued_by(obj: Invoice) -> str | None:
        return obj.issued_by.get_username() if obj.issued_by_id else None

    @staticmethod
    def resolve_xml_url(obj: Invoice, context: dict[str, Any]) -> str:
        url = reverse("api:invoice_xml", args=[obj.pk])
        request = context.get("request") if context else None
        return request.build_absolute_uri(url) if request is not None else url


class InvoiceDetailOut(InvoiceOut):
    lines: list[InvoiceLineOut]
    correction_ids: list[int] = Field(description="Hóa đơn thay thế / điều chỉnh hóa đơn này.")

    @staticmethod
    def resolve_lines(obj: Invoice) -> list[Any]:
        return list(obj.lines.all())

    @staticmethod
    def resolve_correction_ids(obj: Invoice) -> list[int]:
        return list(obj.corrections.order_by("number").values_list("pk", flat=True))


class InvoiceFilter(Schema):
    market: str | None = Field(None, description="Mã chợ")
    period: str | None = Field(None, description="Kỳ phí YYYY-MM")
    status: InvoiceStatus | None = None
    serial: str | None = Field(None, description="KHHDon (C26TAA) hoặc mẫu số + ký hiệu")
    buyer: str | None = Field(
        None, description="Tên (chứa), MST, CCCD, mã người mua, mã sạp hoặc mã thanh toán"
    )
    kind: InvoiceKind | None = None
    demand: int | None = Field(None, description="id phiếu báo phí")


class IssueDemandIn(InputSchema):
    demand_id: int


class IssuePeriodIn(InputSchema):
    market: str = Field(description="Mã chợ")
    period: str = Field(description="Kỳ phí YYYY-MM", examples=["2026-05"])


class IssueFailureOut(Schema):
    demand_id: int
    payment_code: str
    message: str


class PeriodIssueOut(Schema):
    """What a period run did; ``queued`` when a background worker runs it later."""

    queued: bool
    task_id: str
    period: str
    issued: int
    already_issued: int
    failures: list[IssueFailureOut]
    first_number: int | None
    last_number: int | None
    serial: str
    message: str


class ReplaceIn(InputSchema):
    reason: str = Field(description="Lý do thay thế (GChu, tối đa 255 ký tự), bắt buộc.")
    buyer_name: str | None = None
    buyer_tax_code: str | None = None
    buyer_citizen_id: str | None = None
    buyer_address: str | None = None


class AdjustLineIn(InputSchema):
    description: str
    amount_vnd: int = Field(description="Số tiền tăng thêm, đã gồm thuế GTGT, > 0.")
    vat_rate: str = "10%"
    unit: str = "lần"


class AdjustIn(InputSchema):
    reason: str = Field(description="Lý do điều chỉnh (GChu), bắt buộc.")
    lines: list[AdjustLineIn] = Field(
        default_factory=list,
        description="Khoản tăng thêm; để trống khi chỉ điều chỉnh thông tin (tổng tiền 0).",
    )
    buyer_name: str | None = None
    buyer_tax_code: str | None = None
    buyer_citizen_id: str | None = None
    buyer_address: str | None = None


# --- helpers -------------------------------------------------------------------------


def _invoices(request: HttpRequest) -> QuerySet[Invoice]:
    return services.invoices_visible_to(request.auth).select_related("market", "issued_by")


def _invoice(request: HttpRequest, invoice_id: int, *, issue: bool = False) -> Invoice:
    invoice = _invoices(request).filter(pk=invoice_id).first()
    if invoice is None:
        raise NotFound(_("Không tìm thấy hóa đơn #%(id)s.") % {"id": invoice_id})
    if issue:
        services.require_issuer(request.auth, invoice.market)
    return invoice


def _correction(payload: ReplaceIn | AdjustIn) -> services.BuyerCorrection | None:
    fields = {
        "name": payload.buyer_name,
        "tax_code": payload.buyer_tax_code,
        "citizen_id": payload.buyer_citizen_id,
        "address": payload.buyer_address,
    }
    if all(value is None for value in fields.values()):
        return None
    return services.BuyerCorrection(**fields)


# --- endpoints -----------------------------------------------------------------------


@router.get("/invoices", response=list[InvoiceOut], summary="Danh sách hóa đơn")
@paginate(Page)
def invoice_list(request: HttpRequest, filters: Query[InvoiceFilter]):
    """Newest first. Filters: market, fee period, status, serial, buyer, kind, demand."""
    invoices = _invoices(request)
    if filters.market:
        market = markets_for(request.auth).filter(code=filters.market).first()
        if market is None:
            raise NotFound(_("Không tìm thấy chợ “%(code)s”.") % {"code": filters.market})
        invoices = invoices.filter(market=market)
    if filters.demand:
        invoices = invoices.filter(demand_id=filters.demand)
    invoices = services.invoice_filter(
        invoices,
        period=parse_period(filters.period) if filters.period else None,
        status=filters.status,
        serial=filters.serial,
        buyer=filters.buyer,
        kind=filters.kind,
    )
    return invoices.order_by("-issue_date", "-id")


@router.get("/invoices/{int:invoice_id}", response=InvoiceDetailOut, summary="Một hóa đơn")
def invoice_detail(request: HttpRequest, invoice_id: int):
    return _invoice(request, invoice_id)


@router.get(
    "/invoices/{int:invoice_id}/xml",
    url_name="invoice_xml",
    summary="XML đã ký (đúng từng byte đã lưu)",
    openapi_extra={
        "responses": {
            200: {
                "description": "Hóa đơn XML đã ký; ETag là SHA-256 của các byte.",
                "content": {"application/xml": {"schema": {"type": "string", "format": "binary"}}},
            }
        }
    },
)
def invoice_xml(request: HttpRequest, invoice_id: int):
    invoice = _invoice(request, invoice_id)
    return xml_response(invoice)


@router.post(
    "/invoices",
    response={200: InvoiceDetailOut, 201: InvoiceDetailOut},
    summary="Xuất hóa đơn cho một phiếu báo phí đã thanh toán đủ",
)
def invoice_issue(request: HttpRequest, payload: IssueDemandIn):
    """201 with the new invoice; 200 with the existing one when the demand already has its
    invoice (safe to retry). 409 when the demand is not fully paid or the certificate is
    unusable (nothing is stored and no number is used)."""
    demand = (
        FeeDemand.objects.filter(market__in=markets_for(request.auth), pk=payload.demand_id)
        .select_related("market")
        .first()
    )
    if demand is None:
        raise NotFound(_("Không tìm thấy phiếu báo phí #%(id)s.") % {"id": payload.demand_id})
    services.require_issuer(request.auth, demand.market)
    existed = Invoice.objects.filter(demand=demand, kind=Invoice.Kind.ORIGINAL).exists()
    invoice = services.invoice_issue_for_demand(demand=demand.pk, user=request.auth)
    return Status(200 if existed else 201, _invoices(request).get(pk=invoice.pk))


@router.post(
    "/invoices/issue-period",
    response={200: PeriodIssueOut, 202: PeriodIssueOut},
    summary="Xuất hóa đơn cho mọi phiếu đã thanh toán đủ của một kỳ",
)
def invoice_issue_period(request: HttpRequest, payload: IssuePeriodIn):
    """Idempotent: demands that already have their invoice are counted, not re-issued. 202
    when the run was queued for a background worker."""
    market = markets_for(request.auth).filter(code=payload.market).first()
    if market is None:
        raise NotFound(_("Không tìm thấy chợ “%(code)s”.") % {"code": payload.market})
    services.require_issuer(request.auth, market)
    period = parse_period(payload.period)
    body = enqueue_period_run(market=market, period=period, user=request.auth)
    return Status(202 if body["queued"] else 200, body)


@router.post(
    "/invoices/{int:invoice_id}/replace",
    response={201: InvoiceDetailOut},
    summary="Lập hóa đơn thay thế (TCHDon = 1)",
)
def invoice_replace(request: HttpRequest, invoice_id: int, payload: ReplaceIn):
    """Takes the next number and links to the invoice, which becomes "replaced". Buyer fields
    given here replace the stall holder's data on the new invoice."""
    invoice = _invoice(request, invoice_id, issue=True)
    replacement = services.invoice_replace(
        invoice=invoice, reason=payload.reason, user=request.auth, buyer=_correction(payload)
    )
    return Status(201, _invoices(request).get(pk=replacement.pk))


@router.post(
    "/invoices/{int:invoice_id}/adjust",
    response={201: InvoiceDetailOut},
    summary="Lập hóa đơn điều chỉnh (TCHDon = 2)",
)
def invoice_adjust(request: HttpRequest, invoice_id: int, payload: AdjustIn):
    """Additional amounts (VAT-inclusive, > 0), or none to adjust information only. A decrease
    is made by a replacement (the format has no negative amounts)."""
    invoice = _invoice(request, invoice_id, issue=True)
    adjustment = services.invoice_adjust(
        invoice=invoice,
        reason=payload.reason,
        lines=[
            services.AdjustmentLine(
                description=line.description,
                amount_vnd=line.amount_vnd,
                vat_rate=line.vat_rate,
                unit=line.unit,
            )
            for line in payload.lines
        ],
        user=request.auth,
        buyer=_correction(payload),
    )
    return Status(201, _invoices(request).get(pk=adjustment.pk))
