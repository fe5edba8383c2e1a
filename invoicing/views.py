"""Invoice pages of a market: list, printable invoice, XML download, issuing, replacement and
adjustment. Same conventions as the manager pages (``market40.views``): ``market_page``
resolves the market among the user's (404 otherwise, so other markets' invoices are
invisible); writes need the accountant or manager role (403 otherwise); views parse,
authorise and call ``invoicing.services``.
"""

from __future__ import annotations

import functools
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from invoicing import services
from invoicing.document import read_document
from invoicing.models import Invoice, InvoiceSettings
from invoicing.signing import VerificationError, verify_invoice
from invoicing.tasks import enqueue_period_run
from market40.errors import DomainError, Forbidden, InvalidInput
from market40.models import FeeDemand, Market, VatRate
from market40.services import parse_period
from market40.views import MarketView, market_page, paginate, render_market

ADJUSTMENT_ROWS = 3


def can_issue(user, market: Market) -> bool:
    try:
        services.require_issuer(user, market)
    except Forbidden:
        return False
    return True


def issuer_writes(view: MarketView) -> MarketView:
    """Writes need the market's accountant or manager role (or a platform admin): 403."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, market: Market, *args, **kwargs) -> HttpResponse:
        if request.method not in ("GET", "HEAD") and not can_issue(request.user, market):
            raise PermissionDenied
        return view(request, market, *args, **kwargs)

    return wrapper


def xml_response(invoice: Invoice) -> HttpResponse:
    response = HttpResponse(invoice.xml_bytes, content_type="application/xml")
    response["Content-Disposition"] = f'attachment; filename="{invoice.filename}"'
    response["ETag"] = f'"{invoice.sha256}"'
    response["X-Content-SHA256"] = invoice.sha256
    return response


def _invoice(market: Market, invoice_id: int) -> Invoice:
    return get_object_or_404(
        Invoice.objects.select_related("market", "issued_by", "related"),
        pk=invoice_id,
        market=market,
    )


def _render(request, market, template, context, status=200) -> HttpResponse:
    context = {"can_issue": can_issue(request.user, market), **context}
    return render_market(request, market, template, context, status=status)


@market_page
def invoice_list(request: HttpRequest, market: Market) -> HttpResponse:
    period = None
    raw_period = request.GET.get("period", "").strip()
    if raw_period:
        try:
            period = parse_period(raw_period)
        except DomainError as error:
            messages.error(request, error.message)
    status = request.GET.get("status", "")
    status = status if status in Invoice.Status.values else ""
    serial = request.GET.get("serial", "").strip()
    buyer = request.GET.get("buyer", "").strip()
    invoices = services.invoice_filter(
        Invoice.objects.filter(market=market),
        period=period,
        status=status or None,
        serial=serial or None,
        buyer=buyer or None,
    ).order_by("-issue_date", "-number", "-id")
    awaiting = (
        services.demands_awaiting_invoice(market=market, period=period).count() if period else None
    )
    return _render(
        request,
        market,
        "invoicing/invoice_list.html",
        {
            "page": paginate(request, invoices),
            "period": period,
            "period_value": f"{period:%Y-%m}" if period else raw_period,
            "status": status,
            "statuses": Invoice.Status.choices,
            "serial": serial,
            "buyer": buyer,
            "serials": market.invoice_serials.order_by("-year", "serial"),
            "awaiting": awaiting,
            "settings": InvoiceSettings.objects.filter(market=market).first(),
        },
    )


@market_page
def invoice_detail(request: HttpRequest, market: Market, invoice_id: int) -> HttpResponse:
    invoice = _invoice(market, invoice_id)
    xml = invoice.xml_bytes
    try:
        report = verify_invoice(xml)
    except VerificationError:
        report = None
    return _render(
        request,
        market,
        "invoicing/invoice_detail.html",
        {
            "invoice": invoice,
            "doc": read_document(xml),
            "seller_signature": report.seller if report else None,
            "corrections": invoice.corrections.order_by("number"),
        },
    )


@market_page
def invoice_xml(request: HttpRequest, market: Market, invoice_id: int) -> HttpResponse:
    return xml_response(_invoice(market, invoice_id))


@market_page
@require_POST
@issuer_writes
def issue_for_demand(request: HttpRequest, market: Market, demand_id: int) -> HttpResponse:
    demand = get_object_or_404(FeeDemand, pk=demand_id, market=market)
    try:
        invoice = services.invoice_issue_for_demand(demand=demand.pk, user=request.user)
    except DomainError as error:
        messages.error(request, error.message)
        return redirect("demand-detail", market.code, demand.pk)
    messages.success(
        request,
        _("Hóa đơn %(label)s của phiếu %(code)s.")
        % {
            "label": invoice.label,
            "code": demand.payment_code,
        },
    )
    return redirect("invoice-detail", market.code, invoice.pk)


@market_page
@require_POST
@issuer_writes
def issue_for_period(request: HttpRequest, market: Market) -> HttpResponse:
    raw = request.POST.get("period", "")
    list_url = reverse("invoice-list", args=[market.code])
    try:
        period = parse_period(raw)
        body = enqueue_period_run(market=market, period=period, user=request.user)
    except DomainError as error:
        messages.error(request, error.message)
        return redirect(f"{list_url}?{urlencode({'period': raw})}" if raw else list_url)
    messages.success(request, body["message"])
    for failure in body["failures"][:20]:
        messages.warning(request, f"{failure['payment_code']}: {failure['message']}")
    return redirect(f"{list_url}?period={period:%Y-%m}")


def _buyer_from_post(request: HttpRequest) -> services.BuyerCorrection:
    return services.BuyerCorrection(
        name=request.POST.get("buyer_name", "").strip() or None,
        tax_code=request.POST.get("buyer_tax_code", "").strip(),
        citizen_id=request.POST.get("buyer_citizen_id", "").strip(),
        address=request.POST.get("buyer_address", "").strip(),
    )


def _adjustment_lines(request: HttpRequest) -> list[services.AdjustmentLine]:
    lines = []
    for index in range(1, ADJUSTMENT_ROWS + 1):
        description = request.POST.get(f"line{index}_description", "").strip()
        amount = request.POST.get(f"line{index}_amount", "").strip().replace(".", "")
        if not description and not amount:
            continue
        if not amount.isdigit():
            raise InvalidInput(
                _("Dòng %(n)s: số tiền phải là số nguyên đồng.") % {"n": index},
                code="invalid_amount",
            )
        lines.append(
            services.AdjustmentLine(
                description=description,
                amount_vnd=int(amount),
                vat_rate=request.POST.get(f"line{index}_vat_rate", "10%"),
            )
        )
    return lines


@market_page
@issuer_writes
def invoice_correct(
    request: HttpRequest, market: Market, invoice_id: int, action: str
) -> HttpResponse:
    """The replacement (``action`` "replace") and adjustment ("adjust") form."""
    invoice = _invoice(market, invoice_id)
    holder = invoice.demand.holder
    context = {
        "invoice": invoice,
        "action": action,
        "adjustment_rows": range(1, ADJUSTMENT_ROWS + 1),
        "vat_rates": VatRate.choices,
        "form": request.POST
        or {
            "buyer_name": holder.full_name,
            "buyer_tax_code": holder.tax_code,
            "buyer_citizen_id": holder.citizen_id,
            "buyer_address": holder.address,
        },
    }
    if request.method != "POST":
        return _render(request, market, "invoicing/invoice_correct.html", context)
    try:
        reason = request.POST.get("reason", "")
        if action == "replace":
            corrected = services.invoice_replace(
                invoice=invoice, reason=reason, user=request.user, buyer=_buyer_from_post(request)
            )
        else:
            corrected = services.invoice_adjust(
                invoice=invoice,
                reason=reason,
                lines=_adjustment_lines(request),
                user=request.user,
            )
    except DomainError as error:
        messages.error(request, error.message)
        return _render(request, market, "invoicing/invoice_correct.html", context, status=400)
    messages.success(
        request,
        _("Đã lập %(kind)s %(label)s cho hóa đơn %(original)s.")
        % {
            "kind": corrected.get_kind_display().lower(),
            "label": corrected.label,
            "original": invoice.label,
        },
    )
    return redirect("invoice-detail", market.code, corrected.pk)
