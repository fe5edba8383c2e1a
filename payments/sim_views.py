"""The bank-simulator page of the demo: a manager "pays" an open demand with one click.

The click goes the whole way a real payment goes: ``payments.simulator`` makes one exact
transfer, signs it with the secret of the market's simulator connection and posts it to
the real webhook endpoint (in-process), where it is stored, verified and reconciled like
any bank notification. Nothing here writes a demand or a transaction directly.

The page exists only where ``BANK_SIMULATOR_ENABLED`` is on (default: ``DEBUG``), since
every click settles a demand with money that never moved. Scope as on the other manager
pages: another market is a 404; inside the market, only managers and platform admins
may use it (403 for accountants).
"""

from __future__ import annotations

import functools
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from market40.errors import DomainError
from market40.models import FeeDemand, Market
from market40.services import parse_period
from market40.templatetags.market40_tags import vnd
from market40.views import can_manage, current_period, market_page, paginate, render_market
from payments.models import BankConnection, Provider
from payments.simulator import simulate_one_payment

OPEN_STATUSES = (FeeDemand.Status.OPEN, FeeDemand.Status.PARTIAL)


def simulator_enabled() -> bool:
    return bool(getattr(settings, "BANK_SIMULATOR_ENABLED", settings.DEBUG))


def simulator_page_view(view):
    """Enabled, then manager or platform admin for every method (404 / 403)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, market: Market, *args, **kwargs) -> HttpResponse:
        if not simulator_enabled():
            raise Http404
        if not can_manage(request.user, market):
            raise PermissionDenied
        return view(request, market, *args, **kwargs)

    return wrapper


def simulator_connection(market: Market) -> BankConnection | None:
    return (
        BankConnection.objects.select_related("account")
        .filter(market=market, provider=Provider.SIMULATOR, active=True)
        .order_by("created_at")
        .first()
    )


def page_url(market: Market, period) -> str:
    url = reverse("bank-simulator", args=[market.code])
    return f"{url}?{urlencode({'period': f'{period:%Y-%m}'})}"


@market_page
@simulator_page_view
def simulator_page(request: HttpRequest, market: Market) -> HttpResponse:
    period = current_period()
    if raw := request.GET.get("period"):
        try:
            period = parse_period(raw)
        except DomainError as error:
            messages.error(request, error.message)
    demands = (
        FeeDemand.objects.filter(market=market, period=period, status__in=OPEN_STATUSES)
        .select_related("stall", "holder")
        .order_by("stall__code", "id")
    )
    return render_market(
        request,
        market,
        "payments/simulator.html",
        {
            "period": period,
            "page": paginate(request, demands),
            "connection": simulator_connection(market),
        },
    )


@market_page
@require_POST
@simulator_page_view
def simulator_pay(request: HttpRequest, market: Market, demand_id: int) -> HttpResponse:
    demand = get_object_or_404(
        FeeDemand.objects.select_related("holder", "stall"), pk=demand_id, market=market
    )
    back = redirect(page_url(market, demand.period))
    if demand.status not in OPEN_STATUSES or demand.outstanding_vnd <= 0:
        messages.info(
            request, _("Phiếu %(code)s không còn tiền phải thu.") % {"code": demand.payment_code}
        )
        return back
    connection = simulator_connection(market)
    if connection is None:
        messages.error(
            request,
            _(
                "Chợ chưa có kết nối ngân hàng mô phỏng; tạo bằng lệnh "
                "“manage.py add_connection %(code)s simulator”."
            )
            % {"code": market.code},
        )
        return back
    amount = demand.outstanding_vnd
    delivery = simulate_one_payment(connection=connection, demand=demand)
    demand.refresh_from_db()
    status = delivery.attempts[-1]["status"] if delivery.attempts else None
    facts = {"amount": vnd(amount), "code": demand.payment_code, "stall": demand.stall.code}
    if delivery.outcome != "delivered":
        messages.error(
            request,
            _(
                "Ngân hàng mô phỏng đã gửi %(amount)s cho phiếu %(code)s nhưng máy chủ trả lời "
                "%(status)s; giao dịch chưa được ghi nhận."
            )
            % {**facts, "status": status or _("không kết nối được")},
        )
    elif demand.status in (FeeDemand.Status.PAID, FeeDemand.Status.OVERPAID):
        messages.success(
            request,
            _(
                "Đã chuyển khoản thử %(amount)s cho phiếu %(code)s (sạp %(stall)s): ngân hàng "
                "mô phỏng gửi webhook có chữ ký, hệ thống đã ghi nhận và phiếu đã thanh toán."
            )
            % facts,
        )
    else:
        messages.info(
            request,
            _(
                "Đã chuyển khoản thử %(amount)s cho phiếu %(code)s (sạp %(stall)s); webhook đã "
                "được nhận, phiếu sẽ cập nhật khi đối soát xong."
            )
            % facts,
        )
    return back
