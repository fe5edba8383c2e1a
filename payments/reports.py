"""Read-only figures of the accountant's workbench: the period view, the daily close of
each bank connection, and a stall holder's statement (công nợ).

Queries only; nothing here writes. Every figure is computed from the allocation rows
(the ledger), not from the caches on demands and transactions, so the pages double as a
check of those caches: the tests compare both.

Days and months are those of the market's calendar (Asia/Ho_Chi_Minh), whatever the
server's time zone: a transfer at 23:30 local time on the 31st belongs to that month.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Q, Sum
from django.utils.translation import gettext as _

from market40.models import FeeDemand, Market, StallHolder
from payments.models import Allocation, BankConnection, BankTransaction
from payments.providers.base import VN_TZ

OPEN_TX_STATUSES = (BankTransaction.Status.UNMATCHED, BankTransaction.Status.PARTLY)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a local calendar day, as aware datetimes."""
    start = datetime.combine(day, time.min, tzinfo=VN_TZ)
    return start, start + timedelta(days=1)


def month_bounds(period: date) -> tuple[datetime, datetime]:
    """[start, end) of the local calendar month that starts on ``period``."""
    start = datetime.combine(period.replace(day=1), time.min, tzinfo=VN_TZ)
    following = (period.replace(day=1) + timedelta(days=32)).replace(day=1)
    return start, datetime.combine(following, time.min, tzinfo=VN_TZ)


def signed_vnd(tx: BankTransaction) -> int:
    """The effect of a transaction on the account balance."""
    return tx.amount_vnd if tx.direction == BankTransaction.Direction.IN else -tx.amount_vnd


def holder_credits(holder_ids: Any) -> dict[int, int]:
    """Credit (surplus kept for later) of each holder, from the credit rows."""
    rows = (
        Allocation.objects.filter(holder_id__in=holder_ids, kind=Allocation.Kind.CREDIT)
        .values("holder_id")
        .annotate(s=Sum("amount_vnd"))
    )
    return {r["holder_id"]: r["s"] or 0 for r in rows}


def demand_sums(demand_ids: Any) -> dict[int, dict[str, int]]:
    """``{demand_id: {"collected": …, "written_off": …}}`` from the allocation rows:
    money from transfers (credit applied included) and write-offs, net of reversals."""
    sums: dict[int, dict[str, int]] = defaultdict(lambda: {"collected": 0, "written_off": 0})
    rows = (
        Allocation.objects.filter(
            demand_id__in=demand_ids, kind__in=[Allocation.Kind.DEMAND, Allocation.Kind.WRITEOFF]
        )
        .values("demand_id", "kind")
        .annotate(s=Sum("amount_vnd"))
    )
    for row in rows:
        key = "collected" if row["kind"] == Allocation.Kind.DEMAND else "written_off"
        sums[row["demand_id"]][key] += row["s"] or 0
    return sums


# --- period view ---------------------------------------------------------------------


@dataclass
class DemandFigures:
    id: int
    payment_code: str
    holder_id: int
    holder_name: str
    status: str
    billed_vnd: int
    collected_vnd: int
    written_off_vnd: int

    @property
    def outstanding_vnd(self) -> int:
        return max(self.billed_vnd - self.collected_vnd - self.written_off_vnd, 0)


@dataclass
class PeriodRow:
    """Figures of a group of demands: one stall, one zone, or the whole market."""

    key: str
    label: str
    zone_code: str = ""
    stall_id: int | None = None
    demands: list[DemandFigures] = field(default_factory=list)
    holder_ids: set[int] = field(default_factory=set)
    credit_vnd: int = 0

    @property
    def billed_vnd(self) -> int:
        return sum(d.billed_vnd for d in self.demands)

    @property
    def collected_vnd(self) -> int:
        return sum(d.collected_vnd for d in self.demands)

    @property
    def written_off_vnd(self) -> int:
        return sum(d.written_off_vnd for d in self.demands)

    @property
    def outstanding_vnd(self) -> int:
        return sum(d.outstanding_vnd for d in self.demands)

    @property
    def holder_names(self) -> list[str]:
        return sorted({d.holder_name for d in self.demands})


@dataclass
class PeriodReport:
    market: Market
    period: date
    totals: PeriodRow
    zones: list[PeriodRow]
    stalls: list[PeriodRow]
    # Transfers received in the month (by bank time), and where their money is now.
    received_count: int = 0
    received_vnd: int = 0
    received_allocated_vnd: int = 0
    received_credit_vnd: int = 0
    unmatched_count: int = 0
    unmatched_vnd: int = 0
    # Credit held now by every holder of the market, demands this month or not.
    market_credit_vnd: int = 0


NO_ZONE = "—"


def period_report(*, market: Market, period: date) -> PeriodReport:
    """Billed, collected, written off, outstanding and credits of the live (not
    cancelled) demands of one month, per stall, per zone and in total; and the
    transfers received that month: how much is allocated, kept as credit, unmatched.

    Credits belong to holders, not to demands: a stall's (and a zone's) credit is the
    credit held now by the holders of its demands of the month, each holder counted
    once; the total counts each holder of the month once. ``market_credit_vnd`` is the
    credit of every holder of the market.
    """
    rows = list(
        FeeDemand.objects.filter(market=market, period=period)
        .exclude(status=FeeDemand.Status.CANCELLED)
        .order_by("stall__zone__code", "stall__code", "id")
        .values_list(
            "id",
            "payment_code",
            "holder_id",
            "holder__full_name",
            "status",
            "total_vnd",
            "stall_id",
            "stall__code",
            "stall__zone__code",
            "stall__zone__name",
        )
    )
    sums = demand_sums([r[0] for r in rows])
    credits = holder_credits({r[2] for r in rows})
    totals = PeriodRow(key="", label=_("Toàn chợ"))
    zones: dict[str, PeriodRow] = {}
    stalls: dict[int, PeriodRow] = {}
    for pk, code, holder_id, holder_name, status, total, stall_id, stall_code, zcode, zname in rows:
        figures = DemandFigures(
            id=pk,
            payment_code=code,
            holder_id=holder_id,
            holder_name=holder_name,
            status=status,
            billed_vnd=total,
            collected_vnd=sums[pk]["collected"],
            written_off_vnd=sums[pk]["written_off"],
        )
        zone_key = zcode or NO_ZONE
        zone = zones.setdefault(
            zone_key,
            PeriodRow(key=zone_key, label=zname or _("Không thuộc khu nào"), zone_code=zone_key),
        )
        stall = stalls.setdefault(
            stall_id,
            PeriodRow(key=stall_code, label=stall_code, zone_code=zone_key, stall_id=stall_id),
        )
        for group in (totals, zone, stall):
            group.demands.append(figures)
            group.holder_ids.add(holder_id)
    for group in [totals, *zones.values(), *stalls.values()]:
        group.credit_vnd = sum(credits.get(h, 0) for h in group.holder_ids)

    report = PeriodReport(
        market=market,
        period=period,
        totals=totals,
        zones=list(zones.values()),
        stalls=list(stalls.values()),
    )
    start, end = month_bounds(period)
    received = BankTransaction.objects.filter(
        connection__market=market,
        direction=BankTransaction.Direction.IN,
        is_test=False,
        bank_time__gte=start,
        bank_time__lt=end,
    ).exclude(status=BankTransaction.Status.IGNORED)
    for amount, allocated, credit, status in received.values_list(
        "amount_vnd", "allocated_vnd", "credit_vnd", "status"
    ):
        report.received_count += 1
        report.received_vnd += amount
        report.received_allocated_vnd += allocated
        report.received_credit_vnd += credit
        if status in OPEN_TX_STATUSES:
            report.unmatched_count += 1
        report.unmatched_vnd += amount - allocated - credit
    report.market_credit_vnd = (
        Allocation.objects.filter(kind=Allocation.Kind.CREDIT, holder__market=market).aggregate(
            s=Sum("amount_vnd")
        )["s"]
        or 0
    )
    return report


# --- daily close ---------------------------------------------------------------------


@dataclass
class Explanation:
    text: str
    amount_vnd: int | None = None


@dataclass
class CloseLine:
    """One connection's day: what we recorded against what the bank says."""

    connection: BankConnection
    transactions: list[BankTransaction]
    in_count: int = 0
    in_vnd: int = 0
    out_count: int = 0
    out_vnd: int = 0
    first_balance: BankTransaction | None = None
    last_balance: BankTransaction | None = None
    opening_vnd: int | None = None
    opening_source: str = ""
    bank_closing_vnd: int | None = None
    bank_closing_source: str = ""
    # "ok" (the balances agree), "explained", "flagged", or "no_balance".
    status: str = "no_balance"
    explanations: list[Explanation] = field(default_factory=list)
    gaps: list[Explanation] = field(default_factory=list)
    unmatched: list[BankTransaction] = field(default_factory=list)
    late: list[BankTransaction] = field(default_factory=list)

    @property
    def net_vnd(self) -> int:
        return self.in_vnd - self.out_vnd

    @property
    def expected_closing_vnd(self) -> int | None:
        """Opening balance plus every transaction we recorded for the day."""
        return None if self.opening_vnd is None else self.opening_vnd + self.net_vnd

    @property
    def difference_vnd(self) -> int | None:
        """Bank closing balance minus ours: positive when the bank holds money we have
        no transaction for (a missed webhook, a transfer not yet imported)."""
        if self.bank_closing_vnd is None or self.expected_closing_vnd is None:
            return None
        return self.bank_closing_vnd - self.expected_closing_vnd

    @property
    def unmatched_vnd(self) -> int:
        return sum(tx.unmatched_vnd for tx in self.unmatched)


# Transfers this close to midnight may be booked on the other day by the bank.
BOUNDARY = timedelta(minutes=30)


def _fmt_vnd(value: int) -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}{abs(value):,} đ".replace(",", ".")


def _local(moment: datetime) -> datetime:
    return moment.astimezone(VN_TZ)


def daily_close(
    *,
    market: Market,
    day: date,
    closing_balances: dict[str, int] | None = None,
    opening_balances: dict[str, int] | None = None,
) -> list[CloseLine]:
    """For each connection of the market (active, or with transactions that day): the
    day's transactions in and out against the bank's balances.

    Opening balance: typed by the accountant (from the statement), else the running
    balance after the last earlier transaction, else derived from the day's first
    running balance. Bank closing balance: typed from the statement, else the last
    running balance of the day (plus any later transfer that came without one).
    A difference is *explained* when transfers within ``BOUNDARY`` of midnight on the
    neighbouring days account for it exactly (the bank booked them on the other day);
    otherwise it is *flagged*, with the points where the running balances stop
    chaining (where a transfer is missing).
    """
    closing_balances = closing_balances or {}
    opening_balances = opening_balances or {}
    start, end = day_bounds(day)
    connections = (
        BankConnection.objects.filter(market=market)
        .filter(
            Q(active=True) | Q(transactions__bank_time__gte=start, transactions__bank_time__lt=end)
        )
        .select_related("account__bank")
        .distinct()
        .order_by("created_at", "id")
    )
    return [
        _close_line(
            connection,
            start,
            end,
            closing_balances.get(connection.pk),
            opening_balances.get(connection.pk),
        )
        for connection in connections
    ]


def _close_line(
    connection: BankConnection,
    start: datetime,
    end: datetime,
    typed_closing: int | None,
    typed_opening: int | None,
) -> CloseLine:
    base = BankTransaction.objects.filter(connection=connection, is_test=False)
    txs = list(base.filter(bank_time__gte=start, bank_time__lt=end).order_by("bank_time", "pk"))
    line = CloseLine(connection=connection, transactions=txs)
    for tx in txs:
        if tx.direction == BankTransaction.Direction.IN:
            line.in_count += 1
            line.in_vnd += tx.amount_vnd
        else:
            line.out_count += 1
            line.out_vnd += tx.amount_vnd
        if tx.status in OPEN_TX_STATUSES and tx.unmatched_vnd > 0:
            line.unmatched.append(tx)
        if tx.received_at >= end:
            line.late.append(tx)
    with_balance = [(i, tx) for i, tx in enumerate(txs) if tx.running_balance_vnd is not None]
    if with_balance:
        line.first_balance, line.last_balance = with_balance[0][1], with_balance[-1][1]

    # Opening balance, and the first place a transfer may be missing: before the day's
    # first running balance.
    derived_opening = None
    if with_balance:
        index, first = with_balance[0]
        derived_opening = first.running_balance_vnd - sum(signed_vnd(t) for t in txs[: index + 1])
    previous = (
        base.filter(bank_time__lt=start, running_balance_vnd__isnull=False)
        .order_by("-bank_time", "-pk")
        .first()
    )
    if typed_opening is not None:
        line.opening_vnd, line.opening_source = typed_opening, _("nhập theo sao kê")
    elif previous is not None:
        line.opening_vnd = previous.running_balance_vnd
        line.opening_source = _("số dư sau giao dịch lúc %(when)s") % {
            "when": f"{_local(previous.bank_time):%H:%M %d/%m/%Y}"
        }
    elif derived_opening is not None:
        line.opening_vnd = derived_opening
        line.opening_source = _("suy ra từ số dư của giao dịch đầu tiên trong ngày")
    if None not in (line.opening_vnd, derived_opening) and derived_opening != line.opening_vnd:
        first = with_balance[0][1]
        line.gaps.append(
            Explanation(
                _("Trước giao dịch lúc %(when)s: số dư ngân hàng lệch so với số dư đầu ngày")
                % {"when": f"{_local(first.bank_time):%H:%M}"},
                derived_opening - line.opening_vnd,
            )
        )
    # Inside the day: consecutive running balances that do not chain.
    for (i, earlier), (j, later) in zip(with_balance, with_balance[1:], strict=False):
        expected = earlier.running_balance_vnd + sum(signed_vnd(t) for t in txs[i + 1 : j + 1])
        if expected != later.running_balance_vnd:
            line.gaps.append(
                Explanation(
                    _("Giữa %(a)s và %(b)s: số dư ngân hàng không khớp chuỗi giao dịch")
                    % {
                        "a": f"{_local(earlier.bank_time):%H:%M}",
                        "b": f"{_local(later.bank_time):%H:%M}",
                    },
                    later.running_balance_vnd - expected,
                )
            )
    if typed_closing is not None:
        line.bank_closing_vnd, line.bank_closing_source = typed_closing, _("nhập theo sao kê")
        if with_balance:
            index, last = with_balance[-1]
            carried = last.running_balance_vnd + sum(signed_vnd(t) for t in txs[index + 1 :])
            if carried != typed_closing:
                line.gaps.append(
                    Explanation(
                        _("Sau giao dịch lúc %(when)s: sao kê lệch so với số dư ngân hàng gửi về")
                        % {"when": f"{_local(last.bank_time):%H:%M}"},
                        typed_closing - carried,
                    )
                )
    elif with_balance:
        index, last = with_balance[-1]
        later = txs[index + 1 :]
        line.bank_closing_vnd = last.running_balance_vnd + sum(signed_vnd(t) for t in later)
        line.bank_closing_source = _("số dư ngân hàng gửi kèm giao dịch lúc %(when)s") % {
            "when": f"{_local(last.bank_time):%H:%M}"
        }
        if later:
            line.bank_closing_source += _(" (cộng %(n)s giao dịch sau đó không có số dư)") % {
                "n": len(later)
            }

    difference = line.difference_vnd
    if difference is None:
        line.status = "no_balance"
    elif difference == 0:
        line.status = "ok"
    else:
        boundary = _boundary_explanation(base, start, end, difference)
        if boundary:
            line.status = "explained"
            line.explanations.extend(boundary)
        else:
            line.status = "flagged"
            line.explanations.append(
                Explanation(
                    _(
                        "Chưa giải thích được: có thể thiếu giao dịch (webhook bị lỡ) — nhập "
                        "sao kê của ngày để bổ sung, rồi xem lại."
                    )
                    if difference > 0
                    else _(
                        "Chưa giải thích được: hệ thống ghi nhận nhiều hơn số dư ngân hàng — "
                        "kiểm tra giao dịch trùng hoặc giao dịch tiền ra chưa về."
                    ),
                    difference,
                )
            )
    return line


def _boundary_explanation(
    base: Any, start: datetime, end: datetime, difference: int
) -> list[Explanation]:
    """Transfers just before midnight of the previous day (booked today by the bank:
    +) or just before midnight today (booked tomorrow: −) whose amounts add up to the
    difference exactly. Tries each single transfer, then each side as a whole."""
    before = list(
        base.filter(bank_time__gte=start - BOUNDARY, bank_time__lt=start).order_by("bank_time")
    )
    tonight = list(base.filter(bank_time__gte=end - BOUNDARY, bank_time__lt=end))
    candidates: list[tuple[list[BankTransaction], int, str]] = []
    for tx in before:
        candidates.append(([tx], signed_vnd(tx), "previous"))
    for tx in tonight:
        candidates.append(([tx], -signed_vnd(tx), "next"))
    if len(before) > 1:
        candidates.append((before, sum(signed_vnd(t) for t in before), "previous"))
    if len(tonight) > 1:
        candidates.append((tonight, -sum(signed_vnd(t) for t in tonight), "next"))
    for txs, effect, side in candidates:
        if effect == difference:
            text = (
                _("Giao dịch lúc %(when)s ngày hôm trước được ngân hàng hạch toán vào ngày này")
                if side == "previous"
                else _(
                    "Giao dịch lúc %(when)s trong ngày được ngân hàng hạch toán sang ngày hôm sau"
                )
            )
            when = ", ".join(f"{_local(t.bank_time):%H:%M}" for t in txs)
            return [Explanation(text % {"when": when}, difference)]
    return []


# --- holder statement ----------------------------------------------------------------


@dataclass
class StatementLine:
    when: datetime
    text: str
    debit_vnd: int = 0  # increases what the holder owes
    credit_vnd: int = 0  # decreases it (payments, write-offs, credit received)
    balance_vnd: int = 0
    demand: FeeDemand | None = None
    allocation: Allocation | None = None
    transaction: BankTransaction | None = None


@dataclass
class HolderStatement:
    holder: StallHolder
    demands: list[tuple[FeeDemand, int, int]]  # (demand, collected, written off)
    lines: list[StatementLine]
    billed_vnd: int = 0
    collected_vnd: int = 0
    written_off_vnd: int = 0
    outstanding_vnd: int = 0
    credit_vnd: int = 0
    refunded_vnd: int = 0

    @property
    def balance_vnd(self) -> int:
        """What the holder owes net of their credit (negative: the board owes them)."""
        return self.lines[-1].balance_vnd if self.lines else 0


def _allocation_text(row: Allocation) -> str:
    code = row.demand.payment_code if row.demand_id else ""
    tx = row.transaction
    source = ""
    if tx is not None:
        source = _("GD %(when)s %(ref)s") % {
            "when": f"{_local(tx.bank_time):%d/%m/%Y %H:%M}",
            "ref": tx.bank_reference or f"#{tx.pk}",
        }
    reversal = row.reverses_id is not None
    if row.kind == Allocation.Kind.DEMAND:
        if reversal:
            text = _("Hủy khớp thanh toán phiếu %(code)s") % {"code": code}
        elif row.rule == "credit_applied":
            text = _("Trừ tiền thừa vào phiếu %(code)s") % {"code": code}
        else:
            text = _("Thanh toán phiếu %(code)s") % {"code": code}
    elif row.kind == Allocation.Kind.WRITEOFF:
        return _("Xóa nợ phiếu %(code)s: %(note)s") % {"code": code, "note": row.note}
    elif row.kind == Allocation.Kind.CREDIT:
        if reversal:
            text = _("Hủy ghi có tiền thừa")
        elif row.rule == "refund":
            return _("Hoàn trả tiền thừa: %(note)s") % {"note": row.note}
        elif row.rule == "credit_applied":
            text = _("Dùng tiền thừa (%(note)s)") % {"note": row.note}
        else:
            text = _("Tiền thừa ghi có")
    else:
        text = row.get_kind_display()
    return f"{text} · {source}" if source else text


def holder_statement(*, holder: StallHolder) -> HolderStatement:
    """Every demand of a holder, and every ledger row that changes what they owe, in
    time order with a running balance: billed (+), payments and write-offs (−), credit
    received (−), credit refunded or reversed (+). Credit applied to a new demand shows
    as two rows that cancel out. Refund rows themselves move no debt (the credit row
    of the refund does) and are counted in ``refunded_vnd``. Cancelled demands are
    listed but owe nothing."""
    demands = list(
        FeeDemand.objects.filter(holder=holder)
        .select_related("stall")
        .order_by("period", "stall__code", "id")
    )
    sums = demand_sums([d.pk for d in demands])
    statement = HolderStatement(
        holder=holder,
        demands=[(d, sums[d.pk]["collected"], sums[d.pk]["written_off"]) for d in demands],
        lines=[],
    )
    events: list[tuple[datetime, int, StatementLine]] = []
    for demand in demands:
        if demand.status == FeeDemand.Status.CANCELLED:
            continue
        statement.billed_vnd += demand.total_vnd
        statement.outstanding_vnd += demand.outstanding_vnd
        events.append(
            (
                demand.created_at,
                0,
                StatementLine(
                    when=demand.created_at,
                    text=_("Phí kỳ %(period)s · sạp %(stall)s · phiếu %(code)s")
                    % {
                        "period": demand.period_label,
                        "stall": demand.stall.code,
                        "code": demand.payment_code,
                    },
                    debit_vnd=demand.total_vnd,
                    demand=demand,
                ),
            )
        )
    rows = (
        Allocation.objects.filter(
            Q(demand__holder=holder)
            | Q(holder=holder, kind__in=[Allocation.Kind.CREDIT, Allocation.Kind.REFUND])
        )
        .select_related("demand", "transaction")
        .order_by("created_at", "id")
    )
    for row in rows:
        if row.kind == Allocation.Kind.REFUND:
            statement.refunded_vnd += row.amount_vnd
            continue
        if row.kind == Allocation.Kind.DEMAND:
            statement.collected_vnd += row.amount_vnd
        elif row.kind == Allocation.Kind.WRITEOFF:
            statement.written_off_vnd += row.amount_vnd
        else:
            statement.credit_vnd += row.amount_vnd
        # Every kind left here lowers what the holder owes by its (signed) amount.
        effect = -row.amount_vnd
        events.append(
            (
                row.created_at,
                1,
                StatementLine(
                    when=row.created_at,
                    text=_allocation_text(row),
                    debit_vnd=max(effect, 0),
                    credit_vnd=max(-effect, 0),
                    demand=row.demand,
                    allocation=row,
                    transaction=row.transaction,
                ),
            )
        )
    events.sort(key=lambda e: (e[0], e[1], e[2].allocation.pk if e[2].allocation else 0))
    balance = 0
    for _when, _order, line in events:
        balance += line.debit_vnd - line.credit_vnd
        line.balance_vnd = balance
        statement.lines.append(line)
    return statement
