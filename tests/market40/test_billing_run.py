from datetime import date
from decimal import Decimal

import pytest

from market40.errors import Conflict, InvalidInput
from market40.models import BillingRun, FeeDemand, MeterReading
from market40.paymentcode import CodeKind
from market40.services import (
    billing_run_cancel,
    billing_run_create,
    code_scheme,
    parse_period,
)
from tests import factories

MAY = date(2026, 5, 1)


@pytest.fixture
def stall_a(market_a, tariffs_a):
    return factories.make_stall(market_a, "A001", stall_class="L1", area="6.00")


def test_a_full_month_lease_is_billed_rent_by_area_and_fixed_fees(market_a, stall_a):
    factories.make_lease(stall_a)
    result = billing_run_create(market=market_a, period=MAY)
    assert result.created == 1
    demand = FeeDemand.objects.get()
    lines = {line.fee_kind: line for line in demand.lines.all()}
    assert lines["rent"].amount_vnd == 6 * 120_000
    assert lines["rent"].quantity == Decimal("6.0000")
    assert lines["sanitation"].amount_vnd == 20_000
    assert lines["security"].amount_vnd == 15_000
    assert "electricity" not in lines  # no reading recorded
    assert demand.total_vnd == 720_000 + 35_000 == result.total_vnd
    assert demand.due_date == date(2026, 5, 15)
    assert demand.status == FeeDemand.Status.OPEN and demand.paid_vnd == 0


def test_metered_lines_bill_the_periods_reading(market_a, stall_a):
    factories.make_lease(stall_a)
    MeterReading.objects.create(
        stall=stall_a,
        utility="electricity",
        period=MAY,
        previous_value=Decimal("1200"),
        current_value=Decimal("1342.5"),
    )
    billing_run_create(market=market_a, period=MAY)
    line = FeeDemand.objects.get().lines.get(fee_kind="electricity")
    assert line.quantity == Decimal("142.5")
    assert line.amount_vnd == 498_750
    assert line.vat_rate == "8%"


def test_a_lease_starting_mid_month_is_prorated_by_days(market_a, stall_a):
    factories.make_lease(stall_a, start=date(2026, 5, 17))  # 15 of 31 days
    billing_run_create(market=market_a, period=MAY)
    lines = {line.fee_kind: line for line in FeeDemand.objects.get().lines.all()}
    assert lines["rent"].amount_vnd == round(720_000 * 15 / 31)  # 348,387.09 → 348,387
    assert lines["sanitation"].amount_vnd == 9_677  # 20,000 × 15/31 = 9,677.4
    assert "17/05–31/05: 15 ngày" in lines["rent"].description


def test_a_stall_that_changes_hands_mid_month_bills_both_holders(market_a, stall_a):
    factories.make_lease(stall_a, start=date(2026, 1, 1), end=date(2026, 5, 10))
    factories.make_lease(stall_a, start=date(2026, 5, 11))
    billing_run_create(market=market_a, period=MAY)
    totals = sorted(FeeDemand.objects.values_list("total_vnd", flat=True))
    rent_sani_sec = 720_000 + 35_000
    assert sum(totals) in (rent_sani_sec, rent_sani_sec + 1, rent_sani_sec - 1)
    assert len(totals) == 2


def test_a_price_change_mid_month_splits_the_line(market_a, tariffs_a, stall_a):
    old = tariffs_a["rent_l1"]
    old.valid_to = date(2026, 5, 15)
    old.save()
    factories.Tariff.objects.create(
        market=market_a,
        fee_kind="rent",
        basis="per_m2_month",
        stall_class="L1",
        name=old.name,
        unit="m²",
        unit_price_vnd=155_000,
        vat_rate="10%",
        valid_from=date(2026, 5, 16),
    )
    factories.make_lease(stall_a)
    billing_run_create(market=market_a, period=MAY)
    rents = FeeDemand.objects.get().lines.filter(fee_kind="rent").order_by("unit_price_vnd")
    assert [r.amount_vnd for r in rents] == [round(720_000 * 15 / 31), round(930_000 * 16 / 31)]


def test_rerunning_a_period_changes_nothing_and_says_so(market_a, stall_a):
    factories.make_lease(stall_a)
    first = billing_run_create(market=market_a, period=MAY)
    again = billing_run_create(market=market_a, period=MAY)
    assert first.created == 1
    assert again.created == 0 and again.changed_nothing and again.already_billed == 1
    assert again.run is None
    assert FeeDemand.objects.count() == 1 and BillingRun.objects.count() == 1


def test_payment_codes_are_unique_valid_and_of_the_demand_kind(market_a, tariffs_a):
    for i in range(5):
        factories.make_lease(factories.make_stall(market_a, f"B{i}"))
    billing_run_create(market=market_a, period=MAY)
    codes = list(FeeDemand.objects.values_list("payment_code", flat=True))
    assert len(set(codes)) == 5
    for code in codes:
        assert code_scheme().parse(code)[0] is CodeKind.DEMAND
        assert len(code) <= 20 and code.isalnum() and code.isupper()
    tokens = list(FeeDemand.objects.values_list("pay_token", flat=True))
    assert all(len(t) >= 22 for t in tokens) and len(set(tokens)) == 5


def test_inactive_stalls_and_ended_leases_are_not_billed(market_a, tariffs_a):
    factories.make_lease(factories.make_stall(market_a, "X1", active=False))
    factories.make_lease(factories.make_stall(market_a, "X2"), end=date(2026, 4, 30))
    factories.make_lease(factories.make_stall(market_a, "X3"), start=date(2026, 6, 1))
    assert billing_run_create(market=market_a, period=MAY).created == 0


def test_a_cancelled_run_can_be_billed_again(market_a, stall_a):
    factories.make_lease(stall_a)
    result = billing_run_create(market=market_a, period=MAY)
    assert billing_run_cancel(run=result.run) == 1
    assert FeeDemand.objects.get().status == FeeDemand.Status.CANCELLED
    again = billing_run_create(market=market_a, period=MAY)
    assert again.created == 1
    assert FeeDemand.objects.exclude(status="cancelled").count() == 1


def test_a_run_with_a_payment_cannot_be_cancelled_and_nothing_changes(market_a, stall_a):
    factories.make_lease(stall_a)
    factories.make_lease(factories.make_stall(market_a, "A002"))
    result = billing_run_create(market=market_a, period=MAY)
    FeeDemand.objects.filter(stall=stall_a).update(paid_vnd=1000, status="partial")
    with pytest.raises(Conflict):
        billing_run_cancel(run=result.run)
    assert FeeDemand.objects.filter(status="cancelled").count() == 0
    result.run.refresh_from_db()
    assert result.run.status == BillingRun.Status.COMPLETED


@pytest.mark.parametrize("bad", ["2026-13", "2026-5", "05-2026", "", "2026-00", "abcd-ef"])
def test_a_malformed_period_is_refused_in_vietnamese(bad):
    with pytest.raises(InvalidInput) as error:
        parse_period(bad)
    assert "YYYY-MM" in error.value.message and "Kỳ" in error.value.message
