"""Pages and images for paying: the stall holder's pay page (no login, unguessable
token), QR images of demands and stalls, and the printable placard sheet."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from market40 import placards, services, vietqr_service
from market40.errors import DomainError
from market40.models import FeeDemand, Market, Stall

IMMUTABLE = "public, max-age=31536000, immutable"


def _demand_by_token(token: str) -> FeeDemand:
    demand = (
        FeeDemand.objects.select_related("market", "stall", "holder")
        .filter(pay_token=token)
        .first()
    )
    if demand is None:
        raise Http404
    return demand


def qr_image_response(
    request: HttpRequest, payload: str, fmt: str, *, filename: str
) -> HttpResponse:
    """An image whose URL carries the payload's version (``?v=``): the current version
    is immutable and cached for a year; ETag answers revalidation with 304 and renders
    nothing; the rendered bytes are cached server-side by payload."""
    version = vietqr_service.payload_version(payload)
    etag = f'"{fmt}-{version}"'
    if request.headers.get("If-None-Match") == etag:
        response = HttpResponseNotModified()
    else:
        response = HttpResponse(
            vietqr_service.render_cached(payload, fmt),
            content_type=vietqr_service.CONTENT_TYPES[fmt],
        )
    response["ETag"] = etag
    response["Cache-Control"] = IMMUTABLE if request.GET.get("v") == version else "no-cache"
    if request.GET.get("download"):
        response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    return response


def demand_qr_url(demand: FeeDemand, payload: str, fmt: str = "png") -> str:
    url = reverse("pay-qr", kwargs={"token": demand.pay_token, "fmt": fmt})
    return f"{url}?v={vietqr_service.payload_version(payload)}"


@require_GET
def pay_page(request: HttpRequest, token: str) -> HttpResponse:
    try:
        demand = _demand_by_token(token)
    except Http404:
        return render(request, "pay/not_found.html", status=404)
    context = {"demand": demand, "lines": demand.lines.all(), "account": None, "payload": None}
    if demand.status not in (FeeDemand.Status.PAID, FeeDemand.Status.OVERPAID, "cancelled"):
        try:
            account = vietqr_service.receiving_account(demand.market)
            payload = vietqr_service.demand_payload(demand, account)
        except DomainError as error:
            context["error"] = error.message
        else:
            context.update(account=account, payload=payload)
            if payload:
                context["qr_png"] = demand_qr_url(demand, payload, "png")
                context["qr_download"] = context["qr_png"] + "&download=1"
    return render(request, "pay/page.html", context)


@require_GET
def pay_qr(request: HttpRequest, token: str, fmt: str) -> HttpResponse:
    demand = _demand_by_token(token)
    try:
        payload = vietqr_service.demand_payload(demand)
    except DomainError:
        raise Http404 from None
    if payload is None:
        raise Http404
    return qr_image_response(request, payload, fmt, filename=f"VietQR-{demand.payment_code}")


def _market_in_scope(request: HttpRequest, code: str) -> Market:
    return get_object_or_404(services.markets_for(request.user), code=code)


@login_required
@require_GET
def stall_qr(request: HttpRequest, market_code: str, stall_id: int, fmt: str) -> HttpResponse:
    market = _market_in_scope(request, market_code)
    stall = get_object_or_404(Stall, pk=stall_id, market=market)
    try:
        payload = vietqr_service.stall_payload(stall)
    except DomainError:
        raise Http404 from None
    return qr_image_response(request, payload, fmt, filename=f"VietQR-{stall.code}")


@login_required
@require_GET
def placard_sheet(request: HttpRequest, market_code: str, fmt: str = "html") -> HttpResponse:
    market = _market_in_scope(request, market_code)
    zone = request.GET.get("zone") or None
    try:
        sheet = placards.build_sheet(market=market, zone_code=zone, today=timezone.localdate())
    except DomainError as error:
        return render(
            request,
            "placards/error.html",
            {"market": market, "error": error.message},
            status=error.status,
        )
    if fmt == "pdf":
        response = HttpResponse(placards.render_pdf(sheet), content_type="application/pdf")
        response["Content-Disposition"] = (
            f'inline; filename="bang-ma-QR-{market.code}{"-" + zone if zone else ""}.pdf"'
        )
        return response
    return render(request, "placards/sheet.html", {"sheet": sheet, "market": market})
