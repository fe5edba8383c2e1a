"""Manager pages: server-rendered, Vietnamese first, usable on a phone without JavaScript.

Views parse, authorise and call ``market40.services``; they hold no business rules.
Scope is enforced by ``market_page``: a market the user may not see is a 404, never a
403, so that its existence is not revealed. Inside the scope, writes (billing runs,
cancellations) need the manager role (or a platform admin); other roles get a 403.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from market40 import services, vietqr_service
from market40.errors import DomainError, Forbidden
from market40.models import BillingRun, FeeDemand, Lease, Market, Membership, Stall
from market40.templatetags.market40_tags import period as period_label
from market40.templatetags.market40_tags import vnd

# Billing periods are months of the market's local calendar, whatever the server's zone.
MARKET_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
PAGE_SIZE = 50

MarketView = Callable[..., HttpResponse]


# --- helpers -------------------------------------------------------------------------


def local_today() -> date:
    return timezone.localdate(timezone=MARKET_TZ)


def current_period() -> date:
    return local_today().replace(day=1)


def next_period(period: date) -> date:
    return (period + timedelta(days=32)).replace(day=1)


def previous_period(period: date) -> date:
    return (period - timedelta(days=1)).replace(day=1)


def can_manage(user, market: Market) -> bool:
    try:
        services.require_market_role(user, market, Membership.Role.MANAGER)
    except Forbidden:
        return False
    return True


def paginate(request: HttpRequest, queryset: QuerySet) -> Page:
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def overview_url(market: Market, period: date) -> str:
    url = reverse("market-overview", args=[market.code])
    return f"{url}?period={period:%Y-%m}"


def render_market(
    request: HttpRequest, market: Market, template: str, context: dict, status: int = 200
) -> HttpResponse:
    """Render a market page with what the layout needs: the market switcher and
    whether to show the manager's buttons."""
    context = {
        "market": market,
        "user_markets": services.markets_for(request.user),
        "can_manage": can_manage(request.user, market),
        **context,
    }
    return render(request, template, context, status=status)


# --- decorators ----------------------------------------------------------------------


def market_page(view: MarketView) -> MarketView:
    """Log in, then resolve ``market_code`` among the markets the user may see (404
    otherwise) and pass the market to the view."""

    @login_required
    @functools.wraps(view)
    def wrapper(request: HttpRequest, market_code: str, *args, **kwargs) -> HttpResponse:
        market = get_object_or_404(services.markets_for(request.user), code=market_code)
        return view(request, market, *args, **kwargs)

    return wrapper


def manager_writes(view: MarketView) -> MarketView:
    """Any write needs the manager role (or a platform admin): 403 for accountants."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, market: Market, *args, **kwargs) -> HttpResponse:
        if request.method not in ("GET", "HEAD") and not can_manage(request.user, market):
            raise PermissionDenied
        return view(request, market, *args, **kwargs)

    return wrapper


# --- pages ---------------------------------------------------------------------------


def home(request: HttpRequest) -> HttpResponse:
    return redirect("manage-home")


@login_required
def manage_home(request: HttpRequest) -> HttpResponse:
    """The market switcher submits ``?market=CODE`` here; with one market the user goes
    straight to it, with several they choose, with none they are told why."""
    markets = services.markets_for(request.user)
    if code := request.GET.get("market"):
        market = get_object_or_404(markets, code=code)
        return redirect("market-overview", market.code)
    market_list = list(markets)
    if len(market_list) == 1:
        return redirect("market-overview", market_list[0].code)
    return render(
        request, "market40/manage_home.html", {"markets": market_list, "user_markets": market_list}
    )


@market_page
def market_overview(request: HttpRequest, market: Market) -> HttpResponse:
    period = current_period()
    if raw := request.GET.get("period"):
        try:
            period = services.parse_period(raw)
        except DomainError as error:
            messages.error(request, error.message)
    figures = services.market_period_overview(market=market, period=period)
    demands = (
        FeeDemand.objects.filter(market=market, period=period)
        .exclude(status=FeeDemand.Status.CANCELLED)
        .select_related("stall", "holder")
        .order_by("stall__code", "id")
    )
    status = request.GET.get("status", "")
    if status in FeeDemand.Status.values:
        demands = demands.filter(status=status)
    runs = BillingRun.objects.filter(market=market, period=period).select_related("created_by")
    return render_market(
        request,
        market,
        "market40/overview.html",
        {
            "period": period,
            "previous_period": previous_period(period),
            "next_period": next_period(period),
            "figures": figures,
            "page": paginate(request, demands),
            "status": status,
            "statuses": [
                (value, label)
                for value, label in FeeDemand.Status.choices
                if value != FeeDemand.Status.CANCELLED
            ],
            "runs": runs,
        },
    )


@market_page
def stall_list(request: HttpRequest, market: Market) -> HttpResponse:
    today = local_today()
    current = Lease.objects.filter(start_date__lte=today).filter(
        Q(end_date__isnull=True) | Q(end_date__gte=today)
    )
    stalls = (
        Stall.objects.filter(market=market)
        .select_related("zone")
        .prefetch_related(
            # Only the lease covering today, so the row names the current holder.
            _current_leases(current)
        )
        .order_by("zone__code", "code")
    )
    zone = request.GET.get("zone", "")
    if zone:
        stalls = stalls.filter(zone__code=zone)
    query = request.GET.get("q", "").strip()
    if query:
        holder_matches = current.filter(stall=OuterRef("pk")).filter(
            Q(holder__full_name__icontains=query) | Q(holder__phone__icontains=query)
        )
        stalls = stalls.filter(Q(code__icontains=query) | Q(Exists(holder_matches)))
    return render_market(
        request,
        market,
        "market40/stall_list.html",
        {
            "page": paginate(request, stalls),
            "zones": market.zones.all(),
            "zone": zone,
            "query": query,
            "today": today,
        },
    )


def _current_leases(current: QuerySet[Lease]) -> Prefetch:
    return Prefetch("leases", queryset=current.select_related("holder"), to_attr="current_leases")


@market_page
@manager_writes
def run_billing(request: HttpRequest, market: Market) -> HttpResponse:
    if request.method != "POST":
        return render_market(
            request, market, "market40/run_billing.html", {"period_value": _suggested(market)}
        )
    raw = request.POST.get("period", "")
    try:
        period = services.parse_period(raw)
    except DomainError as error:
        # Nothing was written: show the form again with the value typed and the reason.
        messages.error(request, error.message)
        return render_market(
            request, market, "market40/run_billing.html", {"period_value": raw}, status=400
        )
    try:
        result = services.billing_run_create(market=market, period=period, user=request.user)
    except DomainError as error:
        messages.error(request, error.message)
        return redirect(overview_url(market, period))
    _report_billing(request, result)
    return redirect(overview_url(market, period))


def _suggested(market: Market) -> str:
    """The current month until it has been billed, then the next one."""
    period = current_period()
    billed = BillingRun.objects.filter(
        market=market, period=period, status=BillingRun.Status.COMPLETED
    ).exists()
    return f"{next_period(period) if billed else period:%Y-%m}"


def _report_billing(request: HttpRequest, result: services.BillingResult) -> None:
    label = period_label(result.period)
    if result.created:
        messages.success(
            request,
            _("Đã lập %(n)s phiếu báo phí, tổng %(total)s")
            % {"n": result.created, "total": vnd(result.total_vnd)},
        )
    elif result.already_billed:
        messages.info(
            request,
            _("Kỳ %(period)s đã được lập phí trước đó; không có gì thay đổi") % {"period": label},
        )
    else:
        messages.warning(
            request,
            _("Kỳ %(period)s không có hợp đồng thuê sạp nào cần lập phí; không có gì thay đổi")
            % {"period": label},
        )
    if result.created and result.already_billed:
        messages.info(
            request,
            _("%(n)s sạp đã được lập phí kỳ %(period)s trước đó nên được bỏ qua.")
            % {"n": result.already_billed, "period": label},
        )
    if result.nothing_to_bill:
        messages.warning(
            request,
            _("%(n)s hợp đồng không có biểu giá áp dụng nên không có phiếu báo phí.")
            % {"n": result.nothing_to_bill},
        )
    if result.missing_readings:
        messages.warning(
            request,
            _("Chưa có chỉ số sử dụng, chưa tính phí: %(items)s")
            % {"items": ", ".join(result.missing_readings)},
        )


@market_page
@require_POST
@manager_writes
def cancel_run(request: HttpRequest, market: Market, run_id: int) -> HttpResponse:
    run = get_object_or_404(BillingRun, pk=run_id, market=market)
    try:
        cancelled = services.billing_run_cancel(run=run, user=request.user)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            _("Đã hủy đợt lập phí kỳ %(period)s (%(n)s phiếu báo phí).")
            % {"period": period_label(run.period), "n": cancelled},
        )
    return redirect(overview_url(market, run.period))


@market_page
def demand_detail(request: HttpRequest, market: Market, demand_id: int) -> HttpResponse:
    demand = get_object_or_404(
        FeeDemand.objects.select_related("stall", "stall__zone", "holder", "billing_run"),
        pk=demand_id,
        market=market,
    )
    return render_market(
        request,
        market,
        "market40/demand_detail.html",
        {"demand": demand, "lines": demand.lines.all(), "share": vietqr_service.share(demand)},
    )
