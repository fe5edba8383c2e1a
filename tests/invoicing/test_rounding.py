"""Whole-đồng rounding and the VAT-inclusive derivation (spec einvoice.md §10, §10.1)."""

from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from invoicing.rounding import (
    RATE_CODES,
    GrossLine,
    RateGroup,
    rate_percent,
    round_vnd,
    sales_invoice_totals,
    vat_inclusive_breakdown,
)

RATE = {"0%": Decimal(0), "5%": Decimal("0.05"), "8%": Decimal("0.08"), "10%": Decimal("0.10")}


def _reference_net(gross: int, rate: str) -> int:
    """§10.1 literally: round_half_up(gross / (1 + rate)) with Decimal, enough digits."""
    if rate not in RATE:
        return gross
    with localcontext() as context:
        context.prec = 60
        return round_vnd(Decimal(gross) / (1 + RATE[rate]))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("0.5"), 1),
        (Decimal("1.5"), 2),
        (Decimal("2.5"), 3),  # half-up, not banker's rounding (which gives 2)
        (Decimal("2.4999"), 2),
        (Decimal("10945750.72"), 10_945_751),
        (Decimal("-0.5"), -1),  # ties away from zero
        (Decimal("7"), 7),
    ],
)
def test_round_vnd_rounds_half_up_to_whole_dong(value, expected):
    assert round_vnd(value) == expected


def test_round_vnd_refuses_floats_and_non_finite_values():
    with pytest.raises(TypeError):
        round_vnd(0.5)
    with pytest.raises(ValueError):
        round_vnd(Decimal("NaN"))


def test_the_real_invoice_vat_of_136_821_884_at_8_percent_rounds_up_to_10_945_751():
    # §10: invoice-06786dcf, group ThTien 136,821,884 × 8% = 10,945,750.72 -> 10,945,751.
    assert round_vnd(Decimal(136_821_884) * RATE["8%"]) == 10_945_751


def test_deriving_from_that_invoice_payable_gives_back_its_net_and_vat():
    breakdown = vat_inclusive_breakdown([GrossLine(gross_vnd=147_767_635, rate="8%")])
    assert breakdown.groups == (RateGroup(rate="8%", net_vnd=136_821_884, vat_vnd=10_945_751),)


@pytest.mark.parametrize(
    ("gross", "rate", "net", "vat"),
    [  # §10.1 worked values
        (1_080_000, "8%", 1_000_000, 80_000),
        (2_500_000, "8%", 2_314_815, 185_185),
        (187_000, "8%", 173_148, 13_852),
        (20_000, "8%", 18_519, 1_481),
        (61_000, "10%", 55_455, 5_545),
        (6_000, "10%", 5_455, 545),
    ],
)
def test_each_worked_value_of_the_spec_is_reproduced(gross, rate, net, vat):
    breakdown = vat_inclusive_breakdown([GrossLine(gross_vnd=gross, rate=rate)])
    assert breakdown.groups == (RateGroup(rate=rate, net_vnd=net, vat_vnd=vat),)
    assert breakdown.total_net_vnd == net
    assert breakdown.total_vat_vnd == vat
    assert breakdown.total_payable_vnd == gross
    # §10.1: VAT may differ from round(net × rate) by at most 1 đồng.
    assert abs(vat - round_vnd(net * RATE[rate])) <= 1


@pytest.mark.parametrize("rate", ["KCT", "KKKNT", "0%"])
def test_groups_without_vat_keep_the_whole_amount_as_net(rate):
    breakdown = vat_inclusive_breakdown(
        [GrossLine(gross_vnd=30_000, rate=rate), GrossLine(gross_vnd=15_001, rate=rate)]
    )
    assert breakdown.groups == (RateGroup(rate=rate, net_vnd=45_001, vat_vnd=0),)
    assert [line.net_vnd for line in breakdown.lines] == [30_000, 15_001]
    assert [line.vat_vnd for line in breakdown.lines] == [0, 0]


def test_vat_is_computed_per_group_not_summed_from_rounded_lines():
    # Three 20,000 charges at 8%: per line 18,519 each (Σ 55,557), but the group gives
    # round(60,000 / 1.08) = 55,556, and the lines are allocated to sum to it.
    breakdown = vat_inclusive_breakdown([GrossLine(gross_vnd=20_000, rate="8%")] * 3)
    assert breakdown.groups == (RateGroup(rate="8%", net_vnd=55_556, vat_vnd=4_444),)
    assert [line.net_vnd for line in breakdown.lines] == [18_519, 18_519, 18_518]
    assert sum(line.vat_vnd for line in breakdown.lines) == 4_444


def test_the_group_net_goes_first_to_the_lines_with_the_largest_remainders():
    # 2,500,000 / 1.08 = 2,314,814.81 and 20,000 / 1.08 = 18,518.52; the group is
    # round(2,520,000 / 1.08) = 2,333,333, one more than the floors: the .81 line gets it.
    breakdown = vat_inclusive_breakdown(
        [GrossLine(gross_vnd=20_000, rate="8%"), GrossLine(gross_vnd=2_500_000, rate="8%")]
    )
    assert [line.net_vnd for line in breakdown.lines] == [18_518, 2_314_815]
    assert breakdown.groups[0].net_vnd == 2_333_333


def test_mixed_rates_make_one_group_each_in_a_fixed_order_and_totals_add_up():
    lines = [
        GrossLine(gross_vnd=30_000, rate="KCT"),
        GrossLine(gross_vnd=61_000, rate="10%"),
        GrossLine(gross_vnd=2_500_000, rate="8%"),
        GrossLine(gross_vnd=20_000, rate="8%"),
    ]
    breakdown = vat_inclusive_breakdown(lines)
    assert breakdown.groups == (
        RateGroup(rate="8%", net_vnd=2_333_333, vat_vnd=186_667),
        RateGroup(rate="10%", net_vnd=55_455, vat_vnd=5_545),
        RateGroup(rate="KCT", net_vnd=30_000, vat_vnd=0),
    )
    assert breakdown.total_net_vnd == 2_418_788  # TgTCThue = Σ ThTien
    assert breakdown.total_vat_vnd == 192_212  # TgTThue = Σ TThue
    assert breakdown.total_payable_vnd == 2_611_000 == sum(line.gross_vnd for line in lines)
    assert [line.rate for line in breakdown.lines] == ["KCT", "10%", "8%", "8%"]


def test_no_lines_give_zero_totals():
    breakdown = vat_inclusive_breakdown([])
    assert (breakdown.groups, breakdown.total_payable_vnd) == ((), 0)


def test_unknown_rate_codes_and_negative_amounts_are_refused():
    with pytest.raises(ValueError, match="unsupported VAT rate"):
        vat_inclusive_breakdown([GrossLine(gross_vnd=1_000, rate="7%")])
    with pytest.raises(ValueError, match="negative"):
        vat_inclusive_breakdown([GrossLine(gross_vnd=-1_000, rate="8%")])
    with pytest.raises(TypeError):
        vat_inclusive_breakdown([GrossLine(gross_vnd=Decimal(1_000), rate="8%")])
    with pytest.raises(ValueError):
        rate_percent("KHAC")


def test_a_sales_invoice_has_no_vat_and_its_total_is_the_sum_of_its_lines():
    totals = sales_invoice_totals([1_500_000, 30_000])
    assert totals.line_amounts_vnd == (1_500_000, 30_000)
    assert totals.total_payable_vnd == 1_530_000
    assert not hasattr(totals, "total_vat_vnd")
    with pytest.raises(ValueError):
        sales_invoice_totals([-1])


gross_lines = st.lists(
    st.builds(
        GrossLine,
        gross_vnd=st.integers(min_value=0, max_value=10**10),
        rate=st.sampled_from(RATE_CODES),
    ),
    max_size=30,
)


@given(gross_lines)
def test_net_plus_vat_is_exactly_the_gross_and_each_group_follows_the_formula(lines):
    breakdown = vat_inclusive_breakdown(lines)
    total_gross = sum(line.gross_vnd for line in lines)

    assert breakdown.total_net_vnd + breakdown.total_vat_vnd == total_gross
    assert breakdown.total_payable_vnd == total_gross
    assert breakdown.total_net_vnd == sum(line.net_vnd for line in breakdown.lines)
    assert breakdown.total_vat_vnd == sum(group.vat_vnd for group in breakdown.groups)

    for group in breakdown.groups:
        members = [line for line in breakdown.lines if line.rate == group.rate]
        gross = sum(line.gross_vnd for line in members)
        assert group.vat_vnd == gross - _reference_net(gross, group.rate)
        assert group.net_vnd == sum(line.net_vnd for line in members)
        if group.rate in ("KCT", "KKKNT", "0%"):
            assert group.vat_vnd == 0
        else:
            assert abs(group.vat_vnd - round_vnd(group.net_vnd * RATE[group.rate])) <= 1


@given(gross_lines)
def test_each_line_net_is_its_exact_share_rounded_down_or_up(lines):
    for line in vat_inclusive_breakdown(lines).lines:
        share = Decimal(line.gross_vnd) / (1 + RATE.get(line.rate, Decimal(0)))
        assert int(share) <= line.net_vnd <= int(share) + 1
        assert line.net_vnd + line.vat_vnd == line.gross_vnd
        assert line.vat_vnd >= 0
