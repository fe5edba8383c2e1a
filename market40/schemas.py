"""Request and response shapes of the market API (``market40.api_markets``).

Conventions, the same on every endpoint:

* Money is integer đồng, in fields ending ``_vnd``.
* Decimal quantities (area, meter readings, line quantities) are **strings** in
  responses (``"6.50"``), exact as stored; requests accept a string or a number.
* A period is ``"YYYY-MM"``; dates are ``"YYYY-MM-DD"``.
* Markets are named by their code (``CHOA``), zones by their code within the market,
  every other object by its id.
* Request bodies refuse unknown fields (422), so a misspelt field in a PATCH is an
  error rather than a silent no-op. Enumerated values in bodies (``vat_rate``,
  ``basis``, ``fee_kind``, ``utility``) are checked by the model, which answers 400
  naming the field in Vietnamese, like every other business rule; their allowed values
  are listed in the OpenAPI schema.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from django.db.models import Q
from ninja import Field, FilterLookup, FilterSchema, Schema
from pydantic import ConfigDict

from market40.models import FeeKind, MeterReading, Tariff, VatRate
from market40.services import parse_period

DecimalStr = Annotated[
    Decimal,
    Field(description='Số thập phân; trả về dạng chuỗi, ví dụ "6.50"; gửi lên nhận chuỗi hoặc số.'),
]
Period = Annotated[str, Field(description="Kỳ dạng YYYY-MM, ví dụ 2026-05.", examples=["2026-05"])]
DemandStatus = Literal["open", "partial", "paid", "overpaid", "cancelled"]


def _choices(values: list[str], description: str = "", default: Any = ...) -> Any:
    """A string documented as one of ``values`` but checked by the model (400, in
    Vietnamese, naming the field) rather than by pydantic (422)."""
    return Field(default, description=description or None, json_schema_extra={"enum": values})


class InputSchema(Schema):
    model_config = ConfigDict(extra="forbid")


class PeriodFilter(FilterSchema):
    period: Period | None = None

    def filter_period(self, value: str | None) -> Q:
        # parse_period raises InvalidInput (400, naming "period") for "2026-13".
        return Q(period=parse_period(value)) if value else Q()


class PatchSchema(InputSchema):
    """Only the fields present in the request change (``exclude_unset``)."""

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


# --- errors --------------------------------------------------------------------------


class ErrorOut(Schema):
    code: str
    message: str
    extra: dict[str, Any]


# --- who am I ------------------------------------------------------------------------


class MembershipOut(Schema):
    market: str
    role: str


class MeOut(Schema):
    username: str
    is_platform_admin: bool
    auth: Literal["session", "token"]
    memberships: list[MembershipOut]


# --- markets and zones ---------------------------------------------------------------


class MarketIn(InputSchema):
    code: str = Field(description="Mã chợ: chữ in hoa, chữ số, - hoặc _, 2–20 ký tự.")
    name: str
    tax_code: str = Field(description="MST: 10 chữ số, hoặc 10 chữ số-3 chữ số.")
    address: str
    phone: str = ""
    email: str = ""
    grade: int = 2
    due_day: int = Field(15, description="Ngày đến hạn trong tháng (1–28).")


class MarketPatch(PatchSchema):
    name: str | None = None
    tax_code: str | None = None
    address: str | None = None
    phone: str | None = None
    email: str | None = None
    grade: int | None = None
    due_day: int | None = None


class MarketOut(Schema):
    id: int
    code: str
    name: str
    tax_code: str
    address: str
    phone: str
    email: str
    grade: int
    due_day: int


class ZoneIn(InputSchema):
    code: str
    name: str


class ZoneOut(Schema):
    id: int
    market: str
    code: str
    name: str

    @staticmethod
    def resolve_market(obj) -> str:
        return obj.market.code


# --- stalls --------------------------------------------------------------------------


class StallIn(InputSchema):
    code: str = Field(description="Mã sạp/ki-ốt, duy nhất trong chợ.")
    zone: str | None = Field(None, description="Mã khu trong chợ (để trống: không thuộc khu).")
    stall_class: str = Field(description="Loại sạp theo biểu giá, ví dụ L1, L2, KCD.")
    area_m2: DecimalStr
    active: bool = True


class StallPatch(PatchSchema):
    code: str | None = None
    zone: str | None = None
    stall_class: str | None = None
    area_m2: DecimalStr | None = None
    active: bool | None = None


class StallOut(Schema):
    id: int
    market: str
    code: str
    zone: str | None
    stall_class: str
    area_m2: DecimalStr
    active: bool
    payment_code: str

    @staticmethod
    def resolve_market(obj) -> str:
        return obj.market.code

    @staticmethod
    def resolve_zone(obj) -> str | None:
        return obj.zone.code if obj.zone_id else None


class StallFilter(FilterSchema):
    zone: Annotated[str | None, FilterLookup("zone__code")] = Field(None, description="Mã khu")
    active: bool | None = None
    q: Annotated[str | None, FilterLookup(["code__icontains", "stall_class__iexact"])] = Field(
        None, description="Tìm theo mã sạp (chứa) hoặc loại sạp (bằng)."
    )


# --- stall holders -------------------------------------------------------------------


class HolderIn(InputSchema):
    code: str = Field(description="Mã tiểu thương (mã khách hàng khi xuất MISA).")
    full_name: str
    phone: str = Field(description="Di động 10 số: 03, 05, 07, 08, 09; nhận +84 và dấu cách.")
    tax_code: str = ""
    citizen_id: str = Field("", description="Số CCCD: đúng 12 chữ số.")
    address: str = ""


class HolderPatch(PatchSchema):
    code: str | None = None
    full_name: str | None = None
    phone: str | None = None
    tax_code: str | None = None
    citizen_id: str | None = None
    address: str | None = None


class HolderOut(Schema):
    id: int
    market: str
    code: str
    full_name: str
    phone: str
    tax_code: str
    citizen_id: str
    address: str

    @staticmethod
    def resolve_market(obj) -> str:
        return obj.market.code


class HolderFilter(FilterSchema):
    q: Annotated[
        str | None, FilterLookup(["code__icontains", "full_name__icontains", "phone__contains"])
    ] = Field(None, description="Tìm theo mã, họ tên hoặc số điện thoại.")


# --- leases --------------------------------------------------------------------------


class LeaseIn(InputSchema):
    stall_id: int
    holder_id: int
    start_date: date
    end_date: date | None = Field(None, description="Ngày cuối (bao gồm); để trống: chưa hết hạn.")
    note: str = ""


class LeasePatch(PatchSchema):
    end_date: date | None = Field(None, description="Đặt ngày cuối để kết thúc hợp đồng.")
    note: str | None = None


class LeaseOut(Schema):
    id: int
    market: str
    stall_id: int
    stall_code: str
    holder_id: int
    holder_name: str
    start_date: date
    end_date: date | None
    note: str

    @staticmethod
    def resolve_market(obj) -> str:
        return obj.stall.market.code

    @staticmethod
    def resolve_stall_code(obj) -> str:
        return obj.stall.code

    @staticmethod
    def resolve_holder_name(obj) -> str:
        return obj.holder.full_name


class LeaseFilter(FilterSchema):
    stall: Annotated[int | None, FilterLookup("stall_id")] = Field(None, description="id sạp")
    holder: Annotated[int | None, FilterLookup("holder_id")] = Field(
        None, description="id tiểu thương"
    )
    active_on: date | None = Field(None, description="Chỉ hợp đồng còn hiệu lực vào ngày này.")

    def filter_active_on(self, value: date | None) -> Q:
        if value is None:
            return Q()
        return Q(start_date__lte=value) & (Q(end_date__isnull=True) | Q(end_date__gte=value))


# --- tariffs -------------------------------------------------------------------------


class TariffIn(InputSchema):
    fee_kind: str = _choices(FeeKind.values, "Loại phí.")
    name: str = Field(description="Tên dòng trên hóa đơn.")
    basis: str = _choices(Tariff.Basis.values, "Cách tính.")
    stall_class: str = Field("", description="Để trống: áp dụng mọi loại sạp.")
    unit: str
    unit_price_vnd: int = Field(description="Đơn giá đã gồm thuế GTGT, đồng.")
    vat_rate: str = _choices(VatRate.values, "Thuế suất GTGT.")
    valid_from: date
    valid_to: date | None = None


class TariffPatch(PatchSchema):
    fee_kind: str | None = _choices(FeeKind.values, default=None)
    name: str | None = None
    basis: str | None = _choices(Tariff.Basis.values, default=None)
    stall_class: str | None = None
    unit: str | None = None
    unit_price_vnd: int | None = None
    vat_rate: str | None = _choices(VatRate.values, default=None)
    valid_from: date | None = None
    valid_to: date | None = None


class TariffOut(Schema):
    id: int
    market: str
    fee_kind: str
    name: str
    basis: str
    stall_class: str
    unit: str
    unit_price_vnd: int
    vat_rate: str
    valid_from: date
    valid_to: date | None

    @staticmethod
    def resolve_market(obj) -> str:
        return obj.market.code


class TariffFilter(FilterSchema):
    fee_kind: str | None = None
    stall_class: str | None = None
    valid_on: date | None = Field(None, description="Chỉ biểu giá có hiệu lực vào ngày này.")

    def filter_valid_on(self, value: date | None) -> Q:
        if value is None:
            return Q()
        return Q(valid_from__lte=value) & (Q(valid_to__isnull=True) | Q(valid_to__gte=value))


# --- meter readings ------------------------------------------------------------------


class ReadingIn(InputSchema):
    stall_id: int
    utility: str = _choices(MeterReading.Utility.values, "electricity, water hoặc entry.")
    period: Period
    previous_value: DecimalStr = Field(
        Decimal("0"), description="Chỉ số đầu kỳ (0 cho số lượt vào chợ)."
    )
    current_value: DecimalStr


class ReadingPatch(PatchSchema):
    previous_value: DecimalStr | None = None
    current_value: DecimalStr | None = None


class ReadingOut(Schema):
    id: int
    stall_id: int
    stall_code: str
    utility: str
    period: str
    previous_value: DecimalStr
    current_value: DecimalStr
    quantity: DecimalStr

    @staticmethod
    def resolve_stall_code(obj) -> str:
        return obj.stall.code

    @staticmethod
    def resolve_period(obj) -> str:
        return f"{obj.period:%Y-%m}"


class ReadingFilter(PeriodFilter):
    stall: Annotated[int | None, FilterLookup("stall_id")] = Field(None, description="id sạp")
    utility: Literal["electricity", "water", "entry"] | None = None


# --- billing runs --------------------------------------------------------------------


class BillingRunIn(InputSchema):
    period: Period


class BillingResultOut(Schema):
    """What a billing-run request did. ``run_id`` is null when nothing was created."""

    run_id: int | None
    period: str
    created: int
    already_billed: int
    nothing_to_bill: int
    missing_readings: list[str] = Field(description="Sạp:loại phí thiếu chỉ số, vd A001:water.")
    total_vnd: int
    changed_nothing: bool
    message: str


class BillingRunOut(Schema):
    id: int
    market: str
    period: str
    status: str
    demand_count: int
    total_vnd: int
    created_by: str | None
    created_at: datetime
    cancelled_at: datetime | None

    @staticmethod
    def resolve_market(obj) -> str:
        return obj.market.code

    @staticmethod
    def resolve_period(obj) -> str:
        return f"{obj.period:%Y-%m}"

    @staticmethod
    def resolve_created_by(obj) -> str | None:
        return obj.created_by.get_username() if obj.created_by_id else None


class BillingRunCancelOut(Schema):
    run: BillingRunOut
    cancelled_demands: int
    message: str


class BillingRunFilter(PeriodFilter):
    status: Literal["completed", "cancelled"] | None = None


# --- demands -------------------------------------------------------------------------


class DemandLineOut(Schema):
    id: int
    fee_kind: str
    description: str
    quantity: DecimalStr
    unit: str
    unit_price_vnd: int
    amount_vnd: int
    vat_rate: str


class DemandOut(Schema):
    """A fee demand (phiếu báo phí) as lists show it."""

    id: int
    payment_code: str
    market: str
    stall_id: int
    stall_code: str
    holder_id: int
    holder_name: str
    period: str = Field(description="YYYY-MM")
    total_vnd: int
    paid_vnd: int
    outstanding_vnd: int
    status: str
    due_date: date
    billing_run_id: int
    lines: list[DemandLineOut]

    @staticmethod
    def resolve_market(obj) -> str:
        return obj.market.code

    @staticmethod
    def resolve_stall_code(obj) -> str:
        return obj.stall.code

    @staticmethod
    def resolve_holder_name(obj) -> str:
        return obj.holder.full_name

    @staticmethod
    def resolve_period(obj) -> str:
        return f"{obj.period:%Y-%m}"

    @staticmethod
    def resolve_lines(obj) -> list[Any]:
        return list(obj.lines.all())

    vietqr_payload: str | None = Field(
        None,
        description="Chuỗi VietQR động: số tiền còn nợ, nội dung = mã thanh toán; "
        "null khi đã trả đủ, đã hủy, hoặc chợ chưa có tài khoản nhận tiền.",
    )
    pay_url: str = Field("", description="Đường dẫn thanh toán gửi cho tiểu thương.")
    qr_png_url: str | None = Field(None, description="Ảnh PNG của mã VietQR hiện tại.")

    @staticmethod
    def resolve_vietqr_payload(obj, context) -> str | None:
        return _demand_payload(obj, context)

    @staticmethod
    def resolve_pay_url(obj) -> str:
        from django.conf import settings

        return f"{settings.PUBLIC_BASE_URL}/pay/{obj.pay_token}/"

    @staticmethod
    def resolve_qr_png_url(obj, context) -> str | None:
        from django.conf import settings

        from market40.pay_views import demand_qr_url

        payload = _demand_payload(obj, context)
        return settings.PUBLIC_BASE_URL + demand_qr_url(obj, payload) if payload else None


def _demand_payload(demand, context) -> str | None:
    """The demand's VietQR payload, with the market's receiving account looked up once
    per request (lists would otherwise query it once per row)."""
    from market40 import vietqr_service
    from market40.errors import DomainError

    request = (context or {}).get("request")
    cache = getattr(request, "_market40_accounts", None) if request is not None else None
    if cache is None:
        cache = {}
        if request is not None:
            request._market40_accounts = cache
    if demand.market_id not in cache:
        cache[demand.market_id] = demand.market.default_account
    account = cache[demand.market_id]
    if account is None:
        return None
    try:
        return vietqr_service.demand_payload(demand, account)
    except DomainError:
        return None


class DemandDetailOut(DemandOut):
    """``GET /demands/{id}``. EXTENSION POINT for the VietQR module: add
    ``vietqr_payload``, ``pay_url`` and ``qr_png_url`` here (with ``resolve_*``
    static methods, or ``resolve_*(obj, context)`` to reach ``context["request"]``);
    the endpoint returns this schema and needs no change."""


class DemandFilter(PeriodFilter):
    status: DemandStatus | None = None
    stall: Annotated[int | None, FilterLookup("stall_id")] = Field(None, description="id sạp")
    holder: Annotated[int | None, FilterLookup("holder_id")] = Field(
        None, description="id tiểu thương"
    )
    payment_code: str | None = None
