"""Billing arithmetic: which tariff lines a lease owes for one month, and how much.

Pure module (no Django): ``services.billing_run_create`` feeds it plain values so the
same code bills one stall in a test and 100,000 in a batch.

Rules:
* Monthly bases (per m², per stall) are prorated by the days the lease covers in the
  month: amount = round_vnd(price × quantity × covered_days / days_in_month).
* A price change inside the month splits the line: each tariff covers its own days.
* Per-day tariffs bill each covered day. Metered and per-entry tariffs bill the
  period's recorded quantity at the price valid on the last covered day.
* Class-specific tariffs win over tariffs for every class (``stall_class`` empty) for
  the same fee kind.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

MONTHLY = {"per_m2_month", "per_stall_month"}


def round_vnd(value: Decimal) -> int:
    """Round a đồng amount half-up (0.5 → 1), the rounding Vietnamese invoices use."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def period_bounds(period: date) -> tuple[date, date]:
    last = calendar.monthrange(period.year, period.month)[1]
    return period.replace(day=1), period.replace(day=last)


@dataclass(frozen=True, slots=True)
class TariffRow:
    id: int
    fee_kind: str
    name: str
    basis: str
    stall_class: str
    unit: str
    unit_price_vnd: int
    vat_rate: str
    valid_from: date
    valid_to: date | None


@dataclass(frozen=True, slots=True)
class Line:
    tariff_id: int
    fee_kind: str
    description: str
    quantity: Decimal
    unit: str
    unit_price_vnd: int
    amount_vnd: int
    vat_rate: str


def _overlap(a0: date, a1: date, b0: date, b1: date | None) -> tuple[date, date] | None:
    start = max(a0, b0)
    end = a1 if b1 is None else min(a1, b1)
    return (start, end) if start <= end else None


class TariffBook:
    """The market's tariffs for one period, indexed for fast lookup per stall class."""

    def __init__(self, tariffs: Iterable[TariffRow], period: date) -> None:
        self.first, self.last = period_bounds(period)
        self.days_in_month = (self.last - self.first).days + 1
        self._by_kind: dict[str, list[TariffRow]] = {}
        for tariff in tariffs:
            if _overlap(self.first, self.last, tariff.valid_from, tariff.valid_to):
                self._by_kind.setdefault(tariff.fee_kind, []).append(tariff)
        self._cache: dict[str, list[tuple[str, list[TariffRow]]]] = {}

    def for_class(self, stall_class: str) -> list[tuple[str, list[TariffRow]]]:
        cached = self._cache.get(stall_class)
        if cached is None:
            cached = []
            for kind, rows in self._by_kind.items():
                specific = [t for t in rows if t.stall_class == stall_class]
                chosen = specific or [t for t in rows if t.stall_class == ""]
                if chosen:
                    cached.append((kind, sorted(chosen, key=lambda t: t.valid_from)))
            self._cache[stall_class] = cached
        return cached

    def lines_for(
        self,
        *,
        stall_class: str,
        area_m2: Decimal,
        lease_start: date,
        lease_end: date | None,
        usage: dict[str, Decimal],
    ) -> list[Line]:
        covered = _overlap(self.first, self.last, lease_start, lease_end)
        if covered is None:
            return []
        lines: list[Line] = []
        month = f"{self.first:%m/%Y}"
        for kind, tariffs in self.for_class(stall_class):
            for tariff in tariffs:
                span = _overlap(covered[0], covered[1], tariff.valid_from, tariff.valid_to)
                if span is None:
                    continue
                days = (span[1] - span[0]).days + 1
                line = self._line(tariff, kind, area_m2, days, span, covered, usage, month)
                if line is not None and line.amount_vnd > 0:
                    lines.append(line)
        return lines

    def _line(
        self,
        tariff: TariffRow,
        kind: str,
        area_m2: Decimal,
        days: int,
        span: tuple[date, date],
        covered: tuple[date, date],
        usage: dict[str, Decimal],
        month: str,
    ) -> Line | None:
        price = tariff.unit_price_vnd
        full_month = days == self.days_in_month
        note = "" if full_month else f" ({span[0]:%d/%m}–{span[1]:%d/%m}: {days} ngày)"
        if tariff.basis in MONTHLY:
            base = area_m2 if tariff.basis == "per_m2_month" else Decimal(1)
            amount = round_vnd(Decimal(price) * base * days / self.days_in_month)
            quantity = base if full_month else (base * days / self.days_in_month)
            return Line(
                tariff.id,
                kind,
                f"{tariff.name} tháng {month}{note}",
                quantity.quantize(Decimal("0.0001")),
                tariff.unit,
                price,
                amount,
                tariff.vat_rate,
            )
        if tariff.basis == "per_day":
            return Line(
                tariff.id,
                kind,
                f"{tariff.name} tháng {month}{note}",
                Decimal(days),
                tariff.unit,
                price,
                price * days,
                tariff.vat_rate,
            )
        # Metered and per-entry: the whole period's quantity at the price of the last
        # covered day, so a reading is never billed twice when the price changes.
        if span[1] != covered[1]:
            return None
        quantity = usage.get(kind)
        if quantity is None:
            return None
        return Line(
            tariff.id,
            kind,
            f"{tariff.name} tháng {month}",
            quantity.quantize(Decimal("0.0001")),
            tariff.unit,
            price,
            round_vnd(Decimal(price) * quantity),
            tariff.vat_rate,
        )


def due_date(period: date, due_day: int) -> date:
    first, last = period_bounds(period)
    return first + timedelta(days=min(due_day, last.day) - 1)


def total_of(lines: Sequence[Line]) -> int:
    return sum(line.amount_vnd for line in lines)
