"""Worked examples of automatic matching (payments/reconciliation.py), each delivered as
a real signed transfer through the webhook endpoint (simulator format, which carries
every field), then read back from the ledger.

After every test the ledger holds: allocated + credit + unmatched = amount for every
transaction, and a demand's paid amount is the sum of its allocations.
"""

from __future__ import annotations

from datetime import date

import pytest

from market40 import signals, vietqr
from market40.models import FeeDemand
from market40.services import billing_run_create
from market40.vietqr_service import demand_payload
from payments.models import Allocation, BankTransaction
from tests import factories
from tests.payments.helpers import assert_ledger_consistent, connect, deliver, make_transfer


@pytest.fixture(autouse=True)
def ledger_stays_consistent(db):
    yield
    assert_ledger_consistent()


@pytest.fixture
def bank(market_a):
    return connect(market_a, "simulator")


@pytest.fixture
def pay(client, bank):
    """``pay(content, amount)`` sends one transfer; returns its BankTransaction."""
    numbers = iter(range(1, 10_000))

    def send(content: str, amount_vnd: int) -> BankTransaction:
        transfer = make_transfer(bank, next(numbers), amount_vnd=amount_vnd, content=content)
        response = deliver(client, bank, [transfer])
        assert response.status_code == 200
        return BankTransaction.objects.get(provider_transaction_id=transfer.provider_transaction_id)

    return send


@pytest.fixture
def demands(billed_a):
    """The three demands of market A for 05/2026, one per stall and holder."""
    return list(FeeDemand.objects.order_by("stall__code"))


def fresh(obj):
    obj.refresh_from_db()
    return obj


def demand_rows(tx: BankTransaction) -> list[tuple[int, int]]:
    return list(
        tx.allocations.filter(kind=Allocation.Kind.DEMAND)
        .order_by("id")
        .values_list("demand_id", "amount_vnd")
    )


def credit_rows(tx: BankTransaction) -> list[tuple[int, int]]:
    return list(
        tx.allocations.filter(kind=Allocation.Kind.CREDIT).values_list("holder_id", "amount_vnd")
    )


# --- one code, one demand -----------------------------------------------------------------


def test_an_exact_payment_pays_the_demand_and_matches_the_transaction(demands, pay):
    demand = demands[0]

    tx = pay(f"{demand.payment_code} phi thang 05", demand.total_vnd)

    demand = fresh(demand)
    assert (demand.status, demand.paid_vnd) == (FeeDemand.Status.PAID, demand.total_vnd)
    assert demand.paid_at is not None
    tx = fresh(tx)
    assert tx.status == BankTransaction.Status.MATCHED
    assert (tx.allocated_vnd, tx.credit_vnd, tx.unmatched_vnd) == (demand.total_vnd, 0, 0)
    assert demand_rows(tx) == [(demand.pk, demand.total_vnd)]
    assert tx.allocations.get().rule == "code"
    assert demand_payload(demand) is None  # nothing left to ask for


def test_a_partial_payment_leaves_the_rest_outstanding_and_the_qr_asks_for_it(demands, pay):
    demand = demands[0]
    paid = demand.total_vnd // 3

    tx = pay(demand.payment_code, paid)

    demand = fresh(demand)
    assert (demand.status, demand.paid_vnd) == (FeeDemand.Status.PARTIAL, paid)
    assert demand.outstanding_vnd == demand.total_vnd - paid
    assert demand.paid_at is None
    assert fresh(tx).status == BankTransaction.Status.MATCHED
    qr = vietqr.decode(demand_payload(demand))
    assert qr.amount_vnd == demand.total_vnd - paid
    assert qr.purpose == demand.payment_code


def test_an_over_payment_pays_the_demand_and_credits_the_surplus_to_the_holder(demands, pay):
    demand = demands[0]

    tx = pay(demand.payment_code, demand.total_vnd + 45_000)

    demand = fresh(demand)
    assert (demand.status, demand.paid_vnd) == (FeeDemand.Status.PAID, demand.total_vnd)
    tx = fresh(tx)
    assert tx.status == BankTransaction.Status.MATCHED
    assert (tx.allocated_vnd, tx.credit_vnd) == (demand.total_vnd, 45_000)
    assert tx.allocated_vnd + tx.credit_vnd == tx.amount_vnd
    assert credit_rows(tx) == [(demand.holder_id, 45_000)]


def test_two_transfers_for_one_demand_make_it_partial_then_paid(demands, pay):
    demand = demands[1]
    first = demand.total_vnd - 100_000

    pay(demand.payment_code, first)
    assert fresh(demand).status == FeeDemand.Status.PARTIAL
    pay(demand.payment_code, 100_000)

    demand = fresh(demand)
    assert (demand.status, demand.paid_vnd) == (FeeDemand.Status.PAID, demand.total_vnd)
    assert demand.allocations.count() == 2


def test_paying_a_demand_again_credits_the_whole_second_transfer_to_the_holder(demands, pay):
    demand = demands[0]
    pay(demand.payment_code, demand.total_vnd)

    again = pay(demand.payment_code, demand.total_vnd)

    again = fresh(again)
    assert demand_rows(again) == []
    assert credit_rows(again) == [(demand.holder_id, demand.total_vnd)]
    assert fresh(demand).paid_vnd == demand.total_vnd


# --- several codes, static stall codes ------------------------------------------------------


def test_one_transfer_with_two_demand_codes_pays_both_and_credits_the_surplus(demands, pay):
    first, second = demands[0], demands[1]
    amount = first.total_vnd + second.total_vnd + 30_000

    tx = pay(f"TT {first.payment_code} VA {second.payment_code}", amount)

    assert fresh(first).status == fresh(second).status == FeeDemand.Status.PAID
    tx = fresh(tx)
    assert demand_rows(tx) == [(first.pk, first.total_vnd), (second.pk, second.total_vnd)]
    assert credit_rows(tx) == [(first.holder_id, 30_000)]
    assert {a.rule for a in tx.allocations.filter(kind="demand")} == {"codes_in_order"}
    assert tx.status == BankTransaction.Status.MATCHED


def test_two_demand_codes_are_paid_in_the_order_written(demands, pay):
    first, second = demands[0], demands[1]
    amount = second.total_vnd + 50_000  # enough for the one written first only

    tx = pay(f"{second.payment_code} {first.payment_code}", amount)

    assert fresh(second).status == FeeDemand.Status.PAID
    first = fresh(first)
    assert (first.status, first.paid_vnd) == (FeeDemand.Status.PARTIAL, 50_000)
    assert demand_rows(tx) == [(second.pk, second.total_vnd), (first.pk, 50_000)]


@pytest.fixture
def stall_billed_two_months(market_a, tariffs_a):
    stall = factories.make_stall(market_a, "C007")
    factories.make_lease(stall)
    billing_run_create(market=market_a, period=date(2026, 4, 1))
    billing_run_create(market=market_a, period=date(2026, 5, 1))
    april, may = FeeDemand.objects.filter(stall=stall).order_by("period")
    return stall, april, may


def test_the_static_stall_code_pays_that_stalls_open_demands_oldest_first(
    stall_billed_two_months, pay
):
    stall, april, may = stall_billed_two_months

    tx = pay(f"{stall.payment_code} dong tien sap", april.total_vnd + 200_000)

    april, may = fresh(april), fresh(may)
    assert april.status == FeeDemand.Status.PAID
    assert (may.status, may.paid_vnd) == (FeeDemand.Status.PARTIAL, 200_000)
    assert demand_rows(tx) == [(april.pk, april.total_vnd), (may.pk, 200_000)]


def test_the_static_stall_code_settles_both_months_and_credits_the_rest(
    stall_billed_two_months, pay
):
    stall, april, may = stall_billed_two_months

    tx = pay(stall.payment_code, april.total_vnd + may.total_vnd + 10_000)

    assert fresh(april).status == fresh(may).status == FeeDemand.Status.PAID
    assert credit_rows(fresh(tx)) == [(april.holder_id, 10_000)]


def test_the_static_stall_code_skips_a_month_already_paid(stall_billed_two_months, pay):
    stall, april, may = stall_billed_two_months
    pay(april.payment_code, april.total_vnd)

    tx = pay(stall.payment_code, may.total_vnd)

    assert fresh(may).status == FeeDemand.Status.PAID
    assert demand_rows(tx) == [(may.pk, may.total_vnd)]


# --- what stays unmatched -----------------------------------------------------------------------


@pytest.fixture
def demand_of_market_b(market_b):
    factories.make_tariffs(market_b)
    stall = factories.make_stall(market_b, "B001")
    factories.make_lease(stall)
    billing_run_create(market=market_b, period=date(2026, 5, 1))
    return FeeDemand.objects.get(market=market_b)


def _wrong_check_digit(code: str) -> str:
    return code[:-1] + str((int(code[-1]) + 1) % 10)


UNMATCHED = {
    "no code": (lambda d, b: "chuyen tien cho me", "không tìm thấy mã thanh toán hợp lệ"),
    "wrong check digit": (
        lambda d, b: f"{_wrong_check_digit(d.payment_code)} phi T05",
        "không tìm thấy mã thanh toán hợp lệ",
    ),
    "bare number only": (lambda d, b: d.payment_code[3:], "không tìm thấy mã thanh toán hợp lệ"),
    "another market's demand": (lambda d, b: b.payment_code, "thuộc chợ khác"),
    "valid code next to another market's": (
        lambda d, b: f"{d.payment_code} {b.payment_code}",
        "nhiều mã, có mã không hợp lệ",
    ),
}


@pytest.mark.parametrize("case", list(UNMATCHED))
def test_a_transfer_without_a_usable_code_stays_unmatched_with_a_reason(
    demands, demand_of_market_b, pay, case
):
    content_for, reason = UNMATCHED[case]
    demand = demands[0]

    tx = pay(content_for(demand, demand_of_market_b), demand.total_vnd)

    tx = fresh(tx)
    assert tx.status == BankTransaction.Status.UNMATCHED
    assert reason in tx.unmatched_reason
    assert tx.reconciled_at is not None
    assert tx.allocations.count() == 0
    assert tx.unmatched_vnd == tx.amount_vnd
    assert not FeeDemand.objects.exclude(status=FeeDemand.Status.OPEN).exists()


def test_a_transfer_to_a_cancelled_demand_stays_unmatched(demands, pay):
    demand = demands[0]
    FeeDemand.objects.filter(pk=demand.pk).update(status=FeeDemand.Status.CANCELLED)

    tx = pay(demand.payment_code, demand.total_vnd)

    tx = fresh(tx)
    assert tx.status == BankTransaction.Status.UNMATCHED
    assert "đã hủy" in tx.unmatched_reason
    assert tx.allocations.count() == 0
    demand = fresh(demand)
    assert (demand.status, demand.paid_vnd) == (FeeDemand.Status.CANCELLED, 0)


# --- content as banks mangle it ------------------------------------------------------------------


def _split(code: str, sep: str) -> str:
    return sep.join([code[:3], code[3:7], code[7:11], code[11:]])


MANGLED = {
    "lower case": lambda c: f"thanh toan {c.lower()} thang 5",
    "diacritics": lambda c: f"Thanh toán phí chợ {c} tháng 5 – Nguyễn Thị Lan",
    "lower case with diacritics": lambda c: f"đóng phí {c.lower()} ạ",
    "bank prefix and suffix": lambda c: f"MBVCB.3278907687.{c}.CT tu 0071000123456 NGUYEN VAN A",
    "FT reference glued before": lambda c: f"FT25308710231543 {c}",
    "split by spaces": lambda c: _split(c, " "),
    "split by dots": lambda c: _split(c, "."),
    "split by dashes, lower case": lambda c: _split(c.lower(), "-"),
    "phone number after it": lambda c: f"{c} 0912345678",
}


@pytest.mark.parametrize("case", list(MANGLED))
def test_content_mangled_by_banks_still_matches_its_demand(demands, pay, case):
    demand = demands[2]

    tx = pay(MANGLED[case](demand.payment_code), demand.total_vnd)

    assert fresh(tx).status == BankTransaction.Status.MATCHED, fresh(tx).unmatched_reason
    assert fresh(demand).status == FeeDemand.Status.PAID


# --- the signal invoicing listens to -------------------------------------------------------------


def test_demand_fully_paid_is_sent_once_when_the_demand_becomes_paid(
    demands, pay, django_capture_on_commit_callbacks
):
    demand = demands[0]
    sent: list[int] = []

    def receiver(sender, demand_ids, **kwargs):
        sent.extend(demand_ids)

    signals.demand_fully_paid.connect(receiver, weak=False)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            pay(demand.payment_code, 100_000)
        assert sent == []

        with django_capture_on_commit_callbacks(execute=True):
            pay(demand.payment_code, demand.total_vnd - 100_000)
        assert sent == [demand.pk]

        with django_capture_on_commit_callbacks(execute=True):
            pay(demand.payment_code, 20_000)  # more money: credit, not a second "paid"
            pay(demands[1].payment_code, 10_000)  # another demand, only partial
        assert sent == [demand.pk]
    finally:
        signals.demand_fully_paid.disconnect(receiver)
