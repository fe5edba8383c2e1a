"""Whole-đồng rounding and the VAT-inclusive derivation of spec einvoice.md §10.

Pure module: no Django. Money is integer đồng; `Decimal` appears only for rates and is turned
into đồng by `round_vnd` alone.

Market tariffs are VAT-inclusive (§10.1). For each rate group (`LTSuat`):

    net = round_half_up(gross / (1 + rate))      -> LTSuat/ThTien
    vat = gross - net                            -> LTSuat/TThue

so the payable equals the quoted price exactly, and `TgTCThue = Σ ThTien`,
`TgTThue = Σ TThue`, `TgTTTBSo = TgTCThue + TgTThue = Σ gross` hold exactly (§10). `vat` may
differ from `round(net × rate)` by at most 1 đồng (§10.1, §8.4).

The group net is then spread over the group's lines by the largest-remainder method (the spec
only asks that lines sum to the group, §10): each line gets the floor of its exact share
gross_i / (1 + rate), and the units still missing go one each to the lines with the largest
fractional parts, earlier lines first on ties. Every line net is therefore its exact share
rounded down or up, and Σ line net equals the group net exactly. All of this is integer
arithmetic on the rate as a fraction of 100, so nothing depends on a decimal context.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, get_args

__all__ = [
    "RATE_CODES",
    "GrossLine",
    "LineAmounts",
    "RateGroup",
    "SalesTotals",
    "VatBreakdown",
    "VatRateCode",
    "rate_percent",
    "round_vnd",
    "sales_invoice_totals",
    "vat_inclusive_breakdown",
]

VatRateCode = Literal["0%", "5%", "8%", "10%", "KCT", "KKKNT"]

# Also the order of LTSuat groups in the output (deterministic whatever the line order).
RATE_CODES: tuple[str, ...] = get_args(VatRateCode)

# Percent per code; KCT (not subject to VAT) and KKKNT (not declared) carry no VAT (§10).
_RATE_PERCENT: dict[str, int | None] = {
    "0%": 0,
    "5%": 5,
    "8%": 8,
    "10%": 10,
    "KCT": None,
    "KKKNT": None,
}


def rate_percent(rate: str) -> int | None:
    """The VAT percentage of a `TSuat` code, None for KCT/KKKNT; ValueError if unknown."""
    try:
        return _RATE_PERCENT[rate]
    except KeyError:
        raise ValueError(
            f"unsupported VAT rate code {rate!r}; expected one of {RATE_CODES}"
        ) from None


def round_vnd(value: Decimal) -> int:
    """Round to whole đồng, half-up (ties away from zero: 0.5 -> 1, -0.5 -> -1).

    §10: no official rounding rule was found; half-up is what every real invoice is consistent
    with (136,821,884 × 8% = 10,945,750.72 -> 10,945,751). Floats are refused because they
    cannot hold amounts like 0.1 exactly.
    """
    if not isinstance(value, Decimal):
        raise TypeError(f"round_vnd takes a Decimal, not {type(value).__name__}")
    if not value.is_finite():
        raise ValueError(f"cannot round {value} to đồng")
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _div_round_half_up(numerator: int, denominator: int) -> int:
    """round_half_up(numerator / denominator) for numerator >= 0, denominator > 0, exactly."""
    return (2 * numerator + denominator) // (2 * denominator)


@dataclass(frozen=True)
class GrossLine:
    """One charge as quoted: its VAT-inclusive amount and VAT rate code."""

    gross_vnd: int
    rate: str


@dataclass(frozen=True)
class LineAmounts:
    """A line after the derivation: net is its `HHDVu/ThTien`; vat is informational (the VAT
    layout has no line VAT field; vendors put it in `HHDVu/TTKhac`, §10)."""

    rate: str
    gross_vnd: int
    net_vnd: int
    vat_vnd: int


@dataclass(frozen=True)
class RateGroup:
    """One `TToan/THTTLTSuat/LTSuat`: TSuat, ThTien, TThue."""

    rate: str
    net_vnd: int
    vat_vnd: int

    @property
    def gross_vnd(self) -> int:
        return self.net_vnd + self.vat_vnd


@dataclass(frozen=True)
class VatBreakdown:
    """Totals of a VAT invoice (KHMSHDon 1).

    total_net_vnd = TgTCThue, total_vat_vnd = TgTThue, total_payable_vnd = TgTTTBSo.
    `lines` follow the input order; `groups` follow `RATE_CODES`.
    """

    lines: tuple[LineAmounts, ...]
    groups: tuple[RateGroup, ...]
    total_net_vnd: int
    total_vat_vnd: int
    total_payable_vnd: int


@dataclass(frozen=True)
class SalesTotals:
    """Totals of a sales invoice (KHMSHDon 2): no VAT fields at all (§4.7); the line amounts
    are the amounts paid and total_payable_vnd = TgTTTBSo = Σ lines."""

    line_amounts_vnd: tuple[int, ...]
    total_payable_vnd: int


def _check_amount(amount: object, what: str) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"{what} must be an int number of đồng, not {type(amount).__name__}")
    if amount < 0:
        raise ValueError(f"{what} must not be negative: {amount}")
    return amount


def _allocate(grosses: Sequence[int], percent: int, group_net: int) -> list[int]:
    """Largest-remainder split of group_net over lines with exact shares g * 100 / (100 + p)."""
    denominator = 100 + percent
    floors: list[int] = []
    remainders: list[int] = []
    for gross in grosses:
        quotient, remainder = divmod(gross * 100, denominator)
        floors.append(quotient)
        remainders.append(remainder)
    missing = group_net - sum(floors)
    # 0 <= missing <= len(grosses): group_net rounds Σ shares, and Σ shares - Σ floors < n.
    assert 0 <= missing <= len(grosses), (missing, grosses, percent)
    order = sorted(range(len(grosses)), key=lambda i: (-remainders[i], i))
    nets = floors[:]
    for i in order[:missing]:
        nets[i] += 1
    return nets


def vat_inclusive_breakdown(lines: Iterable[GrossLine]) -> VatBreakdown:
    """Derive ThTien/TThue per rate group from VAT-inclusive line amounts (§10.1).

    Raises ValueError for an unknown rate code or a negative amount (discounts are separate
    TChat 3 lines, not negative charges), TypeError for a non-int amount.
    """
    lines = list(lines)
    by_rate: dict[str, list[int]] = {}
    for position, line in enumerate(lines):
        _check_amount(line.gross_vnd, f"line {position + 1} gross_vnd")
        rate_percent(line.rate)
        by_rate.setdefault(line.rate, []).append(position)

    line_net: dict[int, int] = {}
    groups: list[RateGroup] = []
    for rate in RATE_CODES:
        positions = by_rate.get(rate)
        if not positions:
            continue
        grosses = [lines[i].gross_vnd for i in positions]
        gross = sum(grosses)
        percent = rate_percent(rate)
        if not percent:  # 0%, KCT, KKKNT: nothing to take out
            nets = grosses
            net = gross
        else:
            net = _div_round_half_up(gross * 100, 100 + percent)
            nets = _allocate(grosses, percent, net)
        line_net.update(zip(positions, nets, strict=True))
        groups.append(RateGroup(rate=rate, net_vnd=net, vat_vnd=gross - net))

    amounts = tuple(
        LineAmounts(
            rate=line.rate,
            gross_vnd=line.gross_vnd,
            net_vnd=line_net[i],
            vat_vnd=line.gross_vnd - line_net[i],
        )
        for i, line in enumerate(lines)
    )
    total_net = sum(group.net_vnd for group in groups)
    total_vat = sum(group.vat_vnd for group in groups)
    return VatBreakdown(
        lines=amounts,
        groups=tuple(groups),
        total_net_vnd=total_net,
        total_vat_vnd=total_vat,
        total_payable_vnd=total_net + total_vat,
    )


def sales_invoice_totals(line_amounts_vnd: Iterable[int]) -> SalesTotals:
    """Totals of a sales invoice (KHMSHDon 2): the quoted amounts are the line amounts."""
    amounts = tuple(
        _check_amount(amount, f"line {i + 1} amount") for i, amount in enumerate(line_amounts_vnd)
    )
    return SalesTotals(line_amounts_vnd=amounts, total_payable_vnd=sum(amounts))
