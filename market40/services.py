"""Workflows of the market domain. Views, API handlers, admin actions and commands parse
and authorise, then call these keyword-only functions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from market40 import billing, signals
from market40.bulk import insert_rows
from market40.errors import Conflict, Forbidden, InvalidInput, invalid_from_validation_error
from market40.models import (
    BillingRun,
    CodeSequence,
    DemandLine,
    FeeDemand,
    Lease,
    Market,
    Membership,
    MeterReading,
    Stall,
    Tariff,
)
from market40.paymentcode import CodeKind, CodeScheme
from market40.validators import PERIOD_RE

M = TypeVar("M", bound=models.Model)

BATCH_SIZE = 2000

DEMAND_INSERT_FIELDS = (
    "market",
    "billing_run",
    "lease",
    "stall",
    "holder",
    "period",
    "payment_code",
    "pay_token",
    "total_vnd",
    "paid_vnd",
    "status",
    "due_date",
    "created_at",
)
LINE_INSERT_FIELDS = (
    "demand",
    "tariff",
    "fee_kind",
    "description",
    "quantity",
    "unit",
    "unit_price_vnd",
    "amount_vnd",
    "vat_rate",
)


def code_scheme() -> CodeScheme:
    return CodeScheme(
        demand_prefix=settings.PAYMENT_CODE_DEMAND_PREFIX,
        stall_prefix=settings.PAYMENT_CODE_STALL_PREFIX,
    )


# --- periods -------------------------------------------------------------------------


def parse_period(value: str) -> date:
    """``YYYY-MM`` → the first day of that month, or a clear error."""
    match = PERIOD_RE.match((value or "").strip())
    if not match:
        raise InvalidInput(
            _("Kỳ “%(value)s” không hợp lệ: cần dạng YYYY-MM, ví dụ 2026-05.") % {"value": value},
            code="invalid_period",
            extra={"fields": {"period": ["YYYY-MM"]}},
        )
    year = int(match.group(1))
    if not 2000 <= year <= 2100:
        raise InvalidInput(
            _("Kỳ “%(value)s” nằm ngoài khoảng năm 2000–2100.") % {"value": value},
            code="invalid_period",
            extra={"fields": {"period": ["2000-01 … 2100-12"]}},
        )
    return date(year, int(match.group(2)), 1)


# --- scope ---------------------------------------------------------------------------


def markets_for(user: Any, *, roles: tuple[str, ...] | None = None) -> QuerySet[Market]:
    """The markets a user may see (or act on with one of ``roles``)."""
    if not getattr(user, "is_authenticated", False):
        return Market.objects.none()
    if user.is_superuser:
        return Market.objects.all()
    memberships = Membership.objects.filter(user=user)
    if roles:
        memberships = memberships.filter(role__in=roles)
    return Market.objects.filter(id__in=memberships.values("market_id"))


def require_market_role(user: Any, market: Market, *roles: str) -> None:
    if not markets_for(user, roles=roles or None).filter(pk=market.pk).exists():
        raise Forbidden(
            _("Bạn không có quyền thực hiện thao tác này ở chợ %(market)s.")
            % {"market": market.code}
        )


# --- validated saves -----------------------------------------------------------------


def _labels(model: type[models.Model]) -> dict[str, str]:
    return {
        f.name: str(f.verbose_name) for f in model._meta.get_fields() if hasattr(f, "verbose_name")
    }


def save_validated(instance: M, *, exclude: list[str] | None = None) -> M:
    """``full_clean`` then save; a ``ValidationError`` becomes ``InvalidInput`` naming
    the fields in Vietnamese, and nothing is written."""
    try:
        instance.full_clean(exclude=exclude)
    except ValidationError as error:
        raise invalid_from_validation_error(error, _labels(type(instance))) from None
    instance.save()
    return instance


def update_validated(instance: M, changes: dict[str, Any]) -> M:
    for name, value in changes.items():
        setattr(instance, name, value)
    return save_validated(instance)


@transaction.atomic
def lease_create(
    *, stall: Stall, holder: Any, start_date: date, end_date: date | None = None, note: str = ""
) -> Lease:
    # Lock the stall so two clerks cannot create overlapping leases at the same time.
    Stall.objects.select_for_update().filter(pk=stall.pk).first()
    lease = Lease(stall=stall, holder=holder, start_date=start_date, end_date=end_date, note=note)
    return save_validated(lease)


# --- payment codes -------------------------------------------------------------------


def allocate_codes(kind: str, count: int) -> list[str]:
    """Reserve ``count`` consecutive code numbers with one locked row update."""
    if count <= 0:
        return []
    code_kind = CodeKind(kind)
    with transaction.atomic():
        CodeSequence.objects.get_or_create(name=code_kind.value)
        seq = CodeSequence.objects.select_for_update().get(name=code_kind.value)
        first = seq.next_value
        CodeSequence.objects.filter(name=code_kind.value).update(next_value=first + count)
    scheme = code_scheme()
    return [scheme.make(code_kind, number) for number in range(first, first + count)]


# --- billing -------------------------------------------------------------------------


@dataclass
class BillingResult:
    run: BillingRun | None
    period: date
    created: int = 0
    already_billed: int = 0
    nothing_to_bill: int = 0
    missing_readings: list[str] = field(default_factory=list)
    total_vnd: int = 0

    @property
    def changed_nothing(self) -> bool:
        return self.created == 0


Progress = Callable[[int, int], None]


def _tariff_book(market: Market, period: date) -> billing.TariffBook:
    rows = [
        billing.TariffRow(
            t.id,
            t.fee_kind,
            t.name,
            t.basis,
            t.stall_class,
            t.unit,
            t.unit_price_vnd,
            t.vat_rate,
            t.valid_from,
            t.valid_to,
        )
        for t in Tariff.objects.filter(market=market)
    ]
    return billing.TariffBook(rows, period)


def billing_run_create(
    *, market: Market, period: date, user: Any = None, progress: Progress | None = None
) -> BillingResult:
    """Bill every active lease of ``market`` for the month ``period`` that has no live
    demand for it yet. Running it again changes nothing and says so.

    The number of queries does not depend on the number of stalls: leases, tariffs and
    readings are read in one query each, codes are reserved as one block, and demands
    and lines are inserted in fixed-size batches.
    """
    first, last = billing.period_bounds(period)
    with transaction.atomic():
        # One billing run per market at a time: a second one waits here, then finds
        # the leases already billed.
        Market.objects.select_for_update().filter(pk=market.pk).first()
        already = FeeDemand.objects.filter(period=first, lease=OuterRef("pk")).exclude(
            status=FeeDemand.Status.CANCELLED
        )
        active = Lease.objects.filter(
            stall__market=market, stall__active=True, start_date__lte=last
        ).filter(Q(end_date__isnull=True) | Q(end_date__gte=first))
        rows = list(
            active.annotate(billed=Exists(already))
            .order_by("stall__code", "start_date")
            .values_list(
                "id",
                "stall_id",
                "holder_id",
                "start_date",
                "end_date",
                "billed",
                "stall__stall_class",
                "stall__area_m2",
                "stall__code",
            )
        )
        result = BillingResult(run=None, period=first)
        todo = [r for r in rows if not r[5]]
        result.already_billed = len(rows) - len(todo)
        if not todo:
            return result

        book = _tariff_book(market, first)
        usage: dict[int, dict[str, Decimal]] = {}
        for stall_id, utility, prev, cur in MeterReading.objects.filter(
            stall__market=market, period=first
        ).values_list("stall_id", "utility", "previous_value", "current_value"):
            usage.setdefault(stall_id, {})[utility] = cur - prev
        # A reading is "missing" when the stall had one for the previous month but has
        # none now: not every stall has a water meter, but one that had must be read.
        previous = billing.period_bounds(first - timedelta(days=1))[0]
        expected = set(
            MeterReading.objects.filter(stall__market=market, period=previous).values_list(
                "stall_id", "utility"
            )
        )

        planned: list[tuple[tuple, list[billing.Line]]] = []
        for n, row in enumerate(todo, 1):
            lease_id, stall_id, holder_id, start, end, _b, stall_class, area, stall_code = row
            stall_usage = usage.get(stall_id, {})
            lines = book.lines_for(
                stall_class=stall_class,
                area_m2=area,
                lease_start=start,
                lease_end=end,
                usage=stall_usage,
            )
            for kind, _tariffs in book.for_class(stall_class):
                if (stall_id, kind) in expected and kind not in stall_usage:
                    result.missing_readings.append(f"{stall_code}:{kind}")
            if lines:
                planned.append((row, lines))
            else:
                result.nothing_to_bill += 1
            if progress and n % 5000 == 0:
                progress(n, len(todo) * 2)
        if not planned:
            return result

        run = BillingRun.objects.create(market=market, period=first, created_by=user)
        codes = allocate_codes(CodeKind.DEMAND, len(planned))
        due = billing.due_date(first, market.due_day)
        now = timezone.now()
        total = len(todo) * 2
        insert_rows(
            FeeDemand,
            DEMAND_INSERT_FIELDS,
            (
                (
                    market.pk,
                    run.pk,
                    row[0],
                    row[1],
                    row[2],
                    first,
                    code,
                    FeeDemand.new_pay_token(),
                    billing.total_of(lines),
                    0,
                    FeeDemand.Status.OPEN,
                    due,
                    now,
                )
                for (row, lines), code in zip(planned, codes, strict=True)
            ),
        )
        if progress:
            progress(len(todo) + len(todo) // 3, total)
        # Lines need their demand's id: one query maps the run's codes to ids.
        ids = dict(FeeDemand.objects.filter(billing_run=run).values_list("payment_code", "id"))
        insert_rows(
            DemandLine,
            LINE_INSERT_FIELDS,
            (
                (
                    ids[code],
                    line.tariff_id,
                    line.fee_kind,
                    line.description,
                    line.quantity,
                    line.unit,
                    line.unit_price_vnd,
                    line.amount_vnd,
                    line.vat_rate,
                )
                for (_row, lines), code in zip(planned, codes, strict=True)
                for line in lines
            ),
        )
        result.created = len(planned)
        result.total_vnd = sum(billing.total_of(lines) for _row, lines in planned)
        BillingRun.objects.filter(pk=run.pk).update(
            demand_count=result.created, total_vnd=result.total_vnd
        )
        run.demand_count, run.total_vnd = result.created, result.total_vnd
        result.run = run
        transaction.on_commit(lambda: signals.demands_billed.send(sender=BillingRun, run=run))
        if progress:
            progress(len(todo) * 2, len(todo) * 2)
    return result


def billing_run_cancel(*, run: BillingRun, user: Any = None) -> int:
    """Cancel a whole run while none of its demands has received money."""
    with transaction.atomic():
        run = BillingRun.objects.select_for_update().get(pk=run.pk)
        if run.status == BillingRun.Status.CANCELLED:
            raise Conflict(_("Đợt lập phí này đã bị hủy trước đó."))
        live = run.demands.exclude(status=FeeDemand.Status.CANCELLED)
        total = live.count()
        # Conditional update: a demand that a payment touched meanwhile is not "open
        # with nothing paid" any more, so the counts differ and everything rolls back.
        cancelled = live.filter(status=FeeDemand.Status.OPEN, paid_vnd=0).update(
            status=FeeDemand.Status.CANCELLED
        )
        if cancelled != total:
            transaction.set_rollback(True)
            raise Conflict(
                _("Không thể hủy đợt lập phí: %(n)s phiếu đã nhận thanh toán.")
                % {"n": total - cancelled},
                code="run_has_payments",
            )
        run.status = BillingRun.Status.CANCELLED
        run.cancelled_at = timezone.now()
        run.save(update_fields=["status", "cancelled_at"])
    return cancelled


def market_period_overview(*, market: Market, period: date) -> dict[str, int]:
    """Billed, collected and outstanding đồng for a market and month."""
    demands = FeeDemand.objects.filter(market=market, period=period).exclude(
        status=FeeDemand.Status.CANCELLED
    )
    agg = demands.aggregate(
        billed=models.Sum("total_vnd"),
        collected=models.Sum("paid_vnd"),
        count=models.Count("id"),
        paid_count=models.Count("id", filter=Q(status__in=["paid", "overpaid"])),
        partial_count=models.Count("id", filter=Q(status="partial")),
    )
    billed = agg["billed"] or 0
    collected = agg["collected"] or 0
    over = (
        demands.filter(paid_vnd__gt=models.F("total_vnd")).aggregate(
            s=models.Sum(models.F("paid_vnd") - models.F("total_vnd"))
        )["s"]
        or 0
    )
    return {
        "billed_vnd": billed,
        "collected_vnd": collected,
        "outstanding_vnd": billed - collected + over,
        "demand_count": agg["count"],
        "paid_count": agg["paid_count"],
        "partial_count": agg["partial_count"],
        "open_count": agg["count"] - agg["paid_count"] - agg["partial_count"],
    }


# --- stall import --------------------------------------------------------------------

STALL_COLUMNS = {
    "code": ("ma_sap", "ma_kiot", "ma_ki_ot", "ma_sap_ki_ot", "ma", "code", "stall"),
    "zone": ("khu", "ma_khu", "zone"),
    "stall_class": ("loai", "loai_sap", "loai_vi_tri", "hang", "class", "stall_class"),
    "area_m2": ("dien_tich", "dien_tich_m2", "area", "area_m2"),
    "active": ("dang_hoat_dong", "hoat_dong", "active"),
    "holder_name": ("ho_ten", "ho_va_ten", "tieu_thuong", "ten_tieu_thuong", "holder"),
    "holder_phone": ("dien_thoai", "so_dien_thoai", "sdt", "phone"),
    "holder_tax_code": ("mst", "ma_so_thue", "tax_code"),
    "holder_citizen_id": ("cccd", "so_cccd", "citizen_id"),
    "holder_address": ("dia_chi", "address"),
    "lease_start": ("ngay_bat_dau", "tu_ngay", "start_date", "lease_start"),
}
REQUIRED_STALL_COLUMNS = ("code", "stall_class", "area_m2")


@dataclass
class ImportReport:
    rows: int = 0
    stalls: int = 0
    holders: int = 0
    leases: int = 0
    errors: list[str] = field(default_factory=list)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _parse_date(value: object) -> date:
    from datetime import datetime

    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _cell(value)
    for fmt in ("%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(_("ngày “%(value)s” không hợp lệ (dd/mm/yyyy)") % {"value": text})


def stalls_import(*, market: Market, path: Any, dry_run: bool = False) -> ImportReport:
    """Create the stalls (and optionally holders and leases) of a spreadsheet.

    Every row is validated first; if any row is bad, the report lists each problem with
    its spreadsheet row number and nothing is written.
    """
    from market40.models import StallHolder, Zone
    from market40.tables import read_rows

    headers, rows = read_rows(path)
    index: dict[str, int] = {}
    for name, aliases in STALL_COLUMNS.items():
        for position, header in enumerate(headers):
            if header in aliases:
                index[name] = position
                break
    missing = [n for n in REQUIRED_STALL_COLUMNS if n not in index]
    if missing:
        raise InvalidInput(
            _("Thiếu cột bắt buộc: %(cols)s (tiêu đề cần có: mã sạp, loại, diện tích).")
            % {"cols": ", ".join(missing)},
            code="missing_columns",
            extra={"missing": missing},
        )
    report = ImportReport()
    zones = {z.code: z for z in Zone.objects.filter(market=market)}
    existing = set(Stall.objects.filter(market=market).values_list("code", flat=True))
    seen: dict[str, int] = {}
    planned: list[tuple[Stall, StallHolder | None, date | None]] = []
    holder_seq = StallHolder.objects.filter(market=market).count()
    for number, cells in rows:
        report.rows += 1

        def get(name: str, cells: list[object] = cells) -> object:
            position = index.get(name)
            return cells[position] if position is not None and position < len(cells) else ""

        problems: list[str] = []
        code = _cell(get("code")).upper()
        if code in existing:
            problems.append(_("mã sạp %(code)s đã có trong chợ") % {"code": code})
        if code in seen:
            problems.append(
                _("mã sạp %(code)s trùng với dòng %(row)s") % {"code": code, "row": seen[code]}
            )
        seen.setdefault(code, number)
        zone_code = _cell(get("zone")).upper()
        zone = None
        if zone_code:
            zone = zones.get(zone_code)
            if zone is None:
                zone = Zone(market=market, code=zone_code, name=f"Khu {zone_code}")
                zones[zone_code] = zone
        try:
            area = Decimal(_cell(get("area_m2")).replace(",", "."))
        except ArithmeticError:
            problems.append(
                _("diện tích “%(value)s” không phải là số") % {"value": _cell(get("area_m2"))}
            )
            area = Decimal(0)
        active_text = _cell(get("active")).lower()
        stall = Stall(
            market=market,
            zone=zone,
            code=code,
            stall_class=_cell(get("stall_class")).upper(),
            area_m2=area,
            active=active_text not in {"0", "khong", "không", "no", "false"},
            payment_code="pending",
        )
        try:
            stall.full_clean(exclude=["zone", "market"], validate_unique=False)
        except ValidationError as error:
            problems.extend(
                invalid_from_validation_error(error, _labels(Stall))
                .message.split(" — ", 1)[-1]
                .split(" | ")
            )
        holder = None
        lease_start = None
        name = _cell(get("holder_name"))
        if name:
            holder_seq += 1
            holder = StallHolder(
                market=market,
                code=f"TT{holder_seq:05d}",
                full_name=name,
                phone=_cell(get("holder_phone")),
                tax_code=_cell(get("holder_tax_code")),
                citizen_id=_cell(get("holder_citizen_id")),
                address=_cell(get("holder_address")),
            )
            try:
                holder.clean()
                holder.full_clean(exclude=["market"], validate_unique=False)
            except ValidationError as error:
                problems.extend(
                    invalid_from_validation_error(error, _labels(StallHolder))
                    .message.split(" — ", 1)[-1]
                    .split(" | ")
                )
            try:
                raw = get("lease_start")
                lease_start = _parse_date(raw) if _cell(raw) else timezone.localdate()
            except ValueError as error:
                problems.append(str(error))
        if problems:
            report.errors.extend(
                _("Dòng %(row)s: %(problem)s") % {"row": number, "problem": p} for p in problems
            )
        else:
            planned.append((stall, holder, lease_start))
    if report.errors:
        raise InvalidInput(
            _("Tệp có %(n)s lỗi; chưa ghi gì vào cơ sở dữ liệu.") % {"n": len(report.errors)},
            code="import_rows_invalid",
            extra={"errors": report.errors},
        )
    if dry_run:
        report.stalls = len(planned)
        report.holders = sum(1 for _s, h, _d in planned if h)
        report.leases = report.holders
        return report
    with transaction.atomic():
        for zone in zones.values():
            if zone.pk is None:
                zone.save()
        codes = allocate_codes(CodeKind.STALL, len(planned))
        for (stall, _holder, _start), code in zip(planned, codes, strict=True):
            stall.payment_code = code
            if stall.zone is not None:
                stall.zone = zones[stall.zone.code]  # now saved, so zone_id is set
        Stall.objects.bulk_create([s for s, _h, _d in planned], batch_size=BATCH_SIZE)
        holders = [h for _s, h, _d in planned if h is not None]
        StallHolder.objects.bulk_create(holders, batch_size=BATCH_SIZE)
        Lease.objects.bulk_create(
            [
                Lease(stall=s, holder=h, start_date=d)
                for s, h, d in planned
                if h is not None and d is not None
            ],
            batch_size=BATCH_SIZE,
        )
    report.stalls = len(planned)
    report.holders = report.leases = len(holders)
    return report
