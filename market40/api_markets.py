"""The market domain over JSON: markets, zones, stalls, holders, leases, tariffs,
meter readings, billing runs and fee demands. Mounted on ``market40.api.api``.

Scope, the same for every endpoint: a user sees only the markets of
``services.markets_for(user)``; anything in another market answers 404, worded exactly
like an object that does not exist, so ids and codes reveal nothing. Inside a visible
market, writing master data and billing needs the manager role (or platform admin);
an accountant gets 403. Creating a market is for platform admins only.

Handlers parse, authorise and call ``market40.services``; validation is the models'
(``save_validated`` / ``update_validated``), so the API, the admin and the pages refuse
the same things with the same Vietnamese messages.
"""

from functools import reduce
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.csrf import ensure_csrf_cookie
from ninja import Field, Query, Router, Schema, Status
from ninja.decorators import decorate_view
from ninja.pagination import LimitOffsetPagination, paginate

from market40 import services
from market40.errors import Conflict, Forbidden, InvalidInput, NotFound
from market40.formatting import group_thousands
from market40.models import (
    BillingRun,
    DemandLine,
    FeeDemand,
    Lease,
    Market,
    Membership,
    MeterReading,
    Stall,
    StallHolder,
    Tariff,
    Zone,
)
from market40.schemas import (
    BillingResultOut,
    BillingRunCancelOut,
    BillingRunFilter,
    BillingRunIn,
    BillingRunOut,
    DemandDetailOut,
    DemandFilter,
    DemandOut,
    HolderFilter,
    HolderIn,
    HolderOut,
    HolderPatch,
    LeaseFilter,
    LeaseIn,
    LeaseOut,
    LeasePatch,
    MarketIn,
    MarketOut,
    MarketPatch,
    MeOut,
    ReadingFilter,
    ReadingIn,
    ReadingOut,
    ReadingPatch,
    StallFilter,
    StallIn,
    StallOut,
    StallPatch,
    TariffFilter,
    TariffIn,
    TariffOut,
    TariffPatch,
    ZoneIn,
    ZoneOut,
)

router = Router()

MANAGER = Membership.Role.MANAGER


class PageParams(Schema):
    limit: int = Field(50, ge=1, le=500, description="Số dòng mỗi trang (tối đa 500).")
    offset: int = Field(0, ge=0, description="Bỏ qua bao nhiêu dòng đầu.")


class Page(LimitOffsetPagination):
    """``?limit=&offset=`` → ``{"items": [...], "count": total}``."""

    Input = PageParams


# --- scope ---------------------------------------------------------------------------


def _market(request: HttpRequest, code: str, *, manage: bool = False) -> Market:
    """The market ``code`` if the caller may see it (404 otherwise); with ``manage``,
    also require the manager role there (403)."""
    market = services.markets_for(request.auth).filter(code=code).first()
    if market is None:
        raise NotFound(_("Không tìm thấy chợ “%(code)s”.") % {"code": code})
    if manage:
        services.require_market_role(request.auth, market, MANAGER)
    return market


def _scoped(request: HttpRequest, queryset: QuerySet, market_path: str = "market") -> QuerySet:
    """``queryset`` narrowed to the caller's markets; ``market_path`` leads to Market."""
    return queryset.filter(**{f"{market_path}__in": services.markets_for(request.auth)})


def _listed(
    request: HttpRequest, queryset: QuerySet, market_code: str | None, market_path: str
) -> QuerySet:
    if market_code:
        return queryset.filter(**{market_path: _market(request, market_code)})
    return _scoped(request, queryset, market_path)


def _get(
    request: HttpRequest,
    queryset: QuerySet,
    pk: int,
    message: str,
    *,
    market_path: str = "market",
    manage: bool = False,
) -> Any:
    obj = _scoped(request, queryset, market_path).filter(pk=pk).first()
    if obj is None:
        raise NotFound(message % {"id": pk})
    if manage:
        market = reduce(getattr, market_path.split("__"), obj)
        services.require_market_role(request.auth, market, MANAGER)
    return obj


def _ref(queryset: QuerySet, key: Any, field: str, message: str, *, lookup: str = "pk") -> Any:
    """An object named in a request body, within the market of the request; unknown and
    other markets' objects read the same, and it is the body that is wrong (400)."""
    obj = queryset.filter(**{lookup: key}).first()
    if obj is None:
        raise InvalidInput(message, extra={"fields": {field: [message]}})
    return obj


def _zone(market: Market, code: str | None) -> Zone | None:
    if not code:
        return None
    message = _("Khu: không có khu “%(zone)s” trong chợ %(market)s.") % {
        "zone": code,
        "market": market.code,
    }
    return _ref(Zone.objects.filter(market=market), code, "zone", message, lookup="code")


def _refuse_delete_if(used: bool, message: str) -> None:
    if used:
        raise Conflict(message, code="in_use")


# --- who am I ------------------------------------------------------------------------


@router.get("/me", response=MeOut, tags=["me"], summary="Người đang gọi API và quyền của họ")
@decorate_view(ensure_csrf_cookie)
def me(request: HttpRequest):
    """Also sets the ``csrftoken`` cookie, for session clients that will POST."""
    user = request.auth
    memberships = Membership.objects.filter(user=user).select_related("market")
    return {
        "username": user.get_username(),
        "is_platform_admin": user.is_superuser,
        "auth": "token" if hasattr(request, "api_token") else "session",
        "memberships": [{"market": m.market.code, "role": m.role} for m in memberships],
    }


# --- markets -------------------------------------------------------------------------


@router.get("/markets", response=list[MarketOut], tags=["markets"])
@paginate(Page)
def market_list(request: HttpRequest):
    return services.markets_for(request.auth).order_by("code")


@router.post("/markets", response={201: MarketOut}, tags=["markets"])
def market_create(request: HttpRequest, payload: MarketIn):
    if not request.auth.is_superuser:
        raise Forbidden(_("Chỉ quản trị nền tảng mới được tạo chợ mới."))
    return Status(201, services.save_validated(Market(**payload.model_dump())))


@router.get("/markets/{code}", response=MarketOut, tags=["markets"])
def market_detail(request: HttpRequest, code: str):
    return _market(request, code)


@router.patch("/markets/{code}", response=MarketOut, tags=["markets"])
def market_update(request: HttpRequest, code: str, payload: MarketPatch):
    return services.update_validated(_market(request, code, manage=True), payload.changes())


# --- zones ---------------------------------------------------------------------------


@router.get("/markets/{code}/zones", response=list[ZoneOut], tags=["zones"])
@paginate(Page)
def zone_list(request: HttpRequest, code: str):
    return Zone.objects.filter(market=_market(request, code)).select_related("market")


@router.post("/markets/{code}/zones", response={201: ZoneOut}, tags=["zones"])
def zone_create(request: HttpRequest, code: str, payload: ZoneIn):
    market = _market(request, code, manage=True)
    return Status(201, services.save_validated(Zone(market=market, **payload.model_dump())))


# --- stalls --------------------------------------------------------------------------

STALL_NOT_FOUND = gettext_noop("Không tìm thấy sạp #%(id)s.")


def _stalls() -> QuerySet[Stall]:
    return Stall.objects.select_related("market", "zone")


@router.get("/markets/{code}/stalls", response=list[StallOut], tags=["stalls"])
@paginate(Page)
def stall_list(request: HttpRequest, code: str, filters: Query[StallFilter]):
    market = _market(request, code)
    return filters.filter(_stalls().filter(market=market)).order_by("code", "id")


@router.post("/markets/{code}/stalls", response={201: StallOut}, tags=["stalls"])
def stall_create(request: HttpRequest, code: str, payload: StallIn):
    market = _market(request, code, manage=True)
    fields = payload.model_dump()
    fields["zone"] = _zone(market, fields.pop("zone"))
    stall = services.save_validated(Stall(market=market, **fields))
    return Status(201, _stalls().get(pk=stall.pk))  # re-read: "6.5" comes back as "6.50"


@router.get("/stalls/{stall_id}", response=StallOut, tags=["stalls"])
def stall_detail(request: HttpRequest, stall_id: int):
    return _get(request, _stalls(), stall_id, _(STALL_NOT_FOUND))


@router.patch("/stalls/{stall_id}", response=StallOut, tags=["stalls"])
def stall_update(request: HttpRequest, stall_id: int, payload: StallPatch):
    stall = _get(request, _stalls(), stall_id, _(STALL_NOT_FOUND), manage=True)
    changes = payload.changes()
    if "zone" in changes:
        changes["zone"] = _zone(stall.market, changes["zone"])
    services.update_validated(stall, changes)
    return _stalls().get(pk=stall.pk)


@router.delete("/stalls/{stall_id}", response={204: None}, tags=["stalls"])
def stall_delete(request: HttpRequest, stall_id: int):
    """Only a stall with no lease and no demand can be deleted; otherwise 409 — set
    ``active`` to false instead, which keeps its history and its payment code."""
    stall = _get(request, _stalls(), stall_id, _(STALL_NOT_FOUND), manage=True)
    _refuse_delete_if(
        stall.leases.exists() or stall.demands.exists(),
        _(
            "Sạp %(code)s đã có hợp đồng thuê hoặc phiếu báo phí nên không xóa được; "
            "hãy ngừng hoạt động sạp (active = false)."
        )
        % {"code": stall.code},
    )
    stall.delete()
    return Status(204, None)


# --- stall holders -------------------------------------------------------------------

HOLDER_NOT_FOUND = gettext_noop("Không tìm thấy tiểu thương #%(id)s.")


def _holders() -> QuerySet[StallHolder]:
    return StallHolder.objects.select_related("market")


@router.get("/markets/{code}/holders", response=list[HolderOut], tags=["holders"])
@paginate(Page)
def holder_list(request: HttpRequest, code: str, filters: Query[HolderFilter]):
    market = _market(request, code)
    return filters.filter(_holders().filter(market=market)).order_by("code", "id")


@router.post("/markets/{code}/holders", response={201: HolderOut}, tags=["holders"])
def holder_create(request: HttpRequest, code: str, payload: HolderIn):
    market = _market(request, code, manage=True)
    return Status(201, services.save_validated(StallHolder(market=market, **payload.model_dump())))


@router.get("/holders/{holder_id}", response=HolderOut, tags=["holders"])
def holder_detail(request: HttpRequest, holder_id: int):
    return _get(request, _holders(), holder_id, _(HOLDER_NOT_FOUND))


@router.patch("/holders/{holder_id}", response=HolderOut, tags=["holders"])
def holder_update(request: HttpRequest, holder_id: int, payload: HolderPatch):
    holder = _get(request, _holders(), holder_id, _(HOLDER_NOT_FOUND), manage=True)
    return services.update_validated(holder, payload.changes())


@router.delete("/holders/{holder_id}", response={204: None}, tags=["holders"])
def holder_delete(request: HttpRequest, holder_id: int):
    holder = _get(request, _holders(), holder_id, _(HOLDER_NOT_FOUND), manage=True)
    _refuse_delete_if(
        holder.leases.exists() or holder.demands.exists(),
        _("Tiểu thương %(name)s đã có hợp đồng thuê hoặc phiếu báo phí nên không xóa được.")
        % {"name": holder.full_name},
    )
    holder.delete()
    return Status(204, None)


# --- leases --------------------------------------------------------------------------

LEASE_NOT_FOUND = gettext_noop("Không tìm thấy hợp đồng thuê #%(id)s.")


def _leases() -> QuerySet[Lease]:
    return Lease.objects.select_related("stall__market", "holder")


@router.get("/leases", response=list[LeaseOut], tags=["leases"])
@paginate(Page)
def lease_list(request: HttpRequest, filters: Query[LeaseFilter], market: str | None = None):
    leases = _listed(request, _leases(), market, "stall__market")
    return filters.filter(leases).order_by("stall__market__code", "stall__code", "start_date", "id")


@router.post("/markets/{code}/leases", response={201: LeaseOut}, tags=["leases"])
def lease_create(request: HttpRequest, code: str, payload: LeaseIn):
    """Refuses (400, Vietnamese, naming ``start_date``) a lease that overlaps another
    lease of the same stall."""
    market = _market(request, code, manage=True)
    stall = _ref(
        Stall.objects.filter(market=market),
        payload.stall_id,
        "stall_id",
        _("Sạp: không có sạp #%(id)s trong chợ %(market)s.")
        % {"id": payload.stall_id, "market": market.code},
    )
    holder = _ref(
        StallHolder.objects.filter(market=market),
        payload.holder_id,
        "holder_id",
        _("Tiểu thương: không có tiểu thương #%(id)s trong chợ %(market)s.")
        % {"id": payload.holder_id, "market": market.code},
    )
    lease = services.lease_create(
        stall=stall,
        holder=holder,
        start_date=payload.start_date,
        end_date=payload.end_date,
        note=payload.note,
    )
    return Status(201, _leases().get(pk=lease.pk))


@router.get("/leases/{lease_id}", response=LeaseOut, tags=["leases"])
def lease_detail(request: HttpRequest, lease_id: int):
    return _get(request, _leases(), lease_id, _(LEASE_NOT_FOUND), market_path="stall__market")


@router.patch("/leases/{lease_id}", response=LeaseOut, tags=["leases"])
def lease_update(request: HttpRequest, lease_id: int, payload: LeasePatch):
    """Set ``end_date`` to end a lease (or clear it to reopen it; an overlap is refused)."""
    lease = _get(
        request, _leases(), lease_id, _(LEASE_NOT_FOUND), market_path="stall__market", manage=True
    )
    with transaction.atomic():
        # The same lock as services.lease_create: moving an end date later is checked
        # against the other leases of the stall while none can be created.
        Stall.objects.select_for_update().filter(pk=lease.stall_id).first()
        return services.update_validated(lease, payload.changes())


# --- tariffs -------------------------------------------------------------------------

TARIFF_NOT_FOUND = gettext_noop("Không tìm thấy biểu giá #%(id)s.")


def _tariffs() -> QuerySet[Tariff]:
    return Tariff.objects.select_related("market")


@router.get("/markets/{code}/tariffs", response=list[TariffOut], tags=["tariffs"])
@paginate(Page)
def tariff_list(request: HttpRequest, code: str, filters: Query[TariffFilter]):
    market = _market(request, code)
    return filters.filter(_tariffs().filter(market=market)).order_by(
        "fee_kind", "stall_class", "valid_from", "id"
    )


@router.post("/markets/{code}/tariffs", response={201: TariffOut}, tags=["tariffs"])
def tariff_create(request: HttpRequest, code: str, payload: TariffIn):
    """An unknown ``fee_kind``/``basis``/``vat_rate``, a negative price or a validity
    overlapping another tariff of the same fee kind and stall class → 400."""
    market = _market(request, code, manage=True)
    return Status(201, services.save_validated(Tariff(market=market, **payload.model_dump())))


@router.get("/tariffs/{tariff_id}", response=TariffOut, tags=["tariffs"])
def tariff_detail(request: HttpRequest, tariff_id: int):
    return _get(request, _tariffs(), tariff_id, _(TARIFF_NOT_FOUND))


@router.patch("/tariffs/{tariff_id}", response=TariffOut, tags=["tariffs"])
def tariff_update(request: HttpRequest, tariff_id: int, payload: TariffPatch):
    """To change a price from a date, set ``valid_to`` here and create a new tariff."""
    tariff = _get(request, _tariffs(), tariff_id, _(TARIFF_NOT_FOUND), manage=True)
    return services.update_validated(tariff, payload.changes())


@router.delete("/tariffs/{tariff_id}", response={204: None}, tags=["tariffs"])
def tariff_delete(request: HttpRequest, tariff_id: int):
    tariff = _get(request, _tariffs(), tariff_id, _(TARIFF_NOT_FOUND), manage=True)
    _refuse_delete_if(
        DemandLine.objects.filter(tariff=tariff).exists(),
        _(
            "Biểu giá “%(name)s” đã được dùng để lập phí nên không xóa được; hãy đặt ngày "
            "hết hiệu lực (valid_to)."
        )
        % {"name": tariff.name},
    )
    tariff.delete()
    return Status(204, None)


# --- meter readings ------------------------------------------------------------------

READING_NOT_FOUND = gettext_noop("Không tìm thấy chỉ số #%(id)s.")


def _readings() -> QuerySet[MeterReading]:
    return MeterReading.objects.select_related("stall__market")


@router.get("/markets/{code}/readings", response=list[ReadingOut], tags=["readings"])
@paginate(Page)
def reading_list(request: HttpRequest, code: str, filters: Query[ReadingFilter]):
    market = _market(request, code)
    return filters.filter(_readings().filter(stall__market=market)).order_by(
        "-period", "stall__code", "utility", "id"
    )


@router.post("/markets/{code}/readings", response={201: ReadingOut}, tags=["readings"])
def reading_create(request: HttpRequest, code: str, payload: ReadingIn):
    """One reading per stall, utility and period; for entry tickets send the number of
    entries as ``current_value`` and leave ``previous_value`` at 0."""
    market = _market(request, code, manage=True)
    stall = _ref(
        Stall.objects.filter(market=market),
        payload.stall_id,
        "stall_id",
        _("Sạp: không có sạp #%(id)s trong chợ %(market)s.")
        % {"id": payload.stall_id, "market": market.code},
    )
    reading = MeterReading(
        stall=stall,
        utility=payload.utility,
        period=services.parse_period(payload.period),
        previous_value=payload.previous_value,
        current_value=payload.current_value,
    )
    services.save_validated(reading)
    return Status(201, _readings().get(pk=reading.pk))


@router.patch("/readings/{reading_id}", response=ReadingOut, tags=["readings"])
def reading_update(request: HttpRequest, reading_id: int, payload: ReadingPatch):
    """Corrects a reading; demands already billed keep the quantity they were billed."""
    reading = _get(
        request,
        _readings(),
        reading_id,
        _(READING_NOT_FOUND),
        market_path="stall__market",
        manage=True,
    )
    services.update_validated(reading, payload.changes())
    return _readings().get(pk=reading.pk)


# --- billing runs --------------------------------------------------------------------

RUN_NOT_FOUND = gettext_noop("Không tìm thấy đợt lập phí #%(id)s.")


def billing_message(result: services.BillingResult) -> str:
    period = f"{result.period:%m/%Y}"
    notes = []
    if result.created:
        head = _("Đã lập %(n)s phiếu báo phí, tổng %(total)s đ") % {
            "n": result.created,
            "total": group_thousands(result.total_vnd),
        }
        if result.already_billed:
            notes.append(
                _("%(n)s hợp đồng đã được lập phí trước đó") % {"n": result.already_billed}
            )
    elif result.already_billed:
        head = _("Kỳ %(period)s đã được lập phí trước đó") % {"period": period}
    elif not result.nothing_to_bill:
        head = _("Kỳ %(period)s không có hợp đồng thuê nào còn hiệu lực") % {"period": period}
    else:
        head = _("Kỳ %(period)s") % {"period": period}
    if result.nothing_to_bill:
        notes.append(
            _("%(n)s hợp đồng không có khoản phí nào theo biểu giá") % {"n": result.nothing_to_bill}
        )
    if result.missing_readings:
        shown = ", ".join(result.missing_readings[:10])
        more = len(result.missing_readings) - 10
        notes.append(
            _("thiếu chỉ số: %(list)s") % {"list": shown + (f" (+{more})" if more > 0 else "")}
        )
    if result.changed_nothing:
        notes.append(_("không có gì thay đổi"))
    return "; ".join([head, *notes])


def _runs() -> QuerySet[BillingRun]:
    return BillingRun.objects.select_related("market", "created_by")


@router.post(
    "/markets/{code}/billing-runs",
    response={200: BillingResultOut, 201: BillingResultOut},
    tags=["billing"],
)
def billing_run_create(request: HttpRequest, code: str, payload: BillingRunIn):
    """Bills every active lease of the market for the period that has no live demand
    yet. 201 when demands were created; 200 when nothing changed (a re-run is safe)."""
    market = _market(request, code, manage=True)
    period = services.parse_period(payload.period)
    result = services.billing_run_create(market=market, period=period, user=request.auth)
    body = {
        "run_id": result.run.pk if result.run else None,
        "period": f"{result.period:%Y-%m}",
        "created": result.created,
        "already_billed": result.already_billed,
        "nothing_to_bill": result.nothing_to_bill,
        "missing_readings": result.missing_readings,
        "total_vnd": result.total_vnd,
        "changed_nothing": result.changed_nothing,
        "message": billing_message(result),
    }
    return Status(200 if result.changed_nothing else 201, body)


@router.get("/billing-runs", response=list[BillingRunOut], tags=["billing"])
@paginate(Page)
def billing_run_list(
    request: HttpRequest, filters: Query[BillingRunFilter], market: str | None = None
):
    runs = _listed(request, _runs(), market, "market")
    return filters.filter(runs).order_by("-period", "market__code", "-created_at", "-id")


@router.get("/billing-runs/{run_id}", response=BillingRunOut, tags=["billing"])
def billing_run_detail(request: HttpRequest, run_id: int):
    return _get(request, _runs(), run_id, _(RUN_NOT_FOUND))


@router.post("/billing-runs/{run_id}/cancel", response=BillingRunCancelOut, tags=["billing"])
def billing_run_cancel(request: HttpRequest, run_id: int):
    """Cancels every demand of the run, only while none has received money (else 409)."""
    run = _get(request, _runs(), run_id, _(RUN_NOT_FOUND), manage=True)
    cancelled = services.billing_run_cancel(run=run, user=request.auth)
    run = _runs().get(pk=run.pk)
    return {
        "run": run,
        "cancelled_demands": cancelled,
        "message": _("Đã hủy đợt lập phí kỳ %(period)s: %(n)s phiếu báo phí.")
        % {"period": f"{run.period:%m/%Y}", "n": cancelled},
    }


# --- fee demands ---------------------------------------------------------------------

DEMAND_NOT_FOUND = gettext_noop("Không tìm thấy phiếu báo phí #%(id)s.")


def _demands() -> QuerySet[FeeDemand]:
    return FeeDemand.objects.select_related("market", "stall", "holder").prefetch_related("lines")


@router.get("/demands", response=list[DemandOut], tags=["demands"])
@paginate(Page)
def demand_list(request: HttpRequest, filters: Query[DemandFilter], market: str | None = None):
    demands = _listed(request, _demands(), market, "market")
    return filters.filter(demands).order_by("-period", "market__code", "stall__code", "id")


@router.get("/demands/{demand_id}", response=DemandDetailOut, tags=["demands"])
def demand_detail(request: HttpRequest, demand_id: int):
    return _get(request, _demands(), demand_id, _(DEMAND_NOT_FOUND))
