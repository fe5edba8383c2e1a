"""The accountant's ledger operations: manual match, split, unmatch, write-off, refund,
and credits carried to the next bill — each a worked example, each audited."""

from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market40.errors import Conflict, InvalidInput
from market40.models import FeeDemand
from market40.services import billing_run_create
from payments import ledger
from payments.ledger import Share
from payments.models import Allocation, AuditEntry, BankTransaction
from payments.reconciliation import reconcile
from payments.services import connection_create
from tests import factories

MAY, JUNE = date(2026, 5, 1), date(2026, 6, 1)


@pytest.fixture
def setup(market_a, tariffs_a, accountant_a):
    stalls = [factories.make_stall(market_a, f"L{i}") for i in range(3)]
    holder = factories.make_holder(market_a, "Đỗ Thị Hoa")
    factories.make_lease(stalls[0], holder)
    factories.make_lease(stalls[1])
    factories.make_lease(stalls[2])
    billing_run_create(market=market_a, period=MAY)
    connection, _secret, _gen = connection_create(market=market_a, provider="simulator")
    demands = list(FeeDemand.objects.order_by("stall__code"))
    return {
        "connection": connection,
        "demands": demands,
        "holder": holder,
        "user": accountant_a,
        "market": market_a,
        "stalls": stalls,
    }


_n = iter(range(1, 10**6))


def transfer(connection, amount, content="chuyen tien", counter_account="") -> BankTransaction:
    tx = BankTransaction.objects.create(
        connection=connection,
        provider_transaction_id=f"T{next(_n)}",
        direction="in",
        amount_vnd=amount,
        content=content,
        counter_account=counter_account,
        bank_time="2026-05-10T09:00:00+07:00",
    )
    reconcile(tx.pk)
    tx.refresh_from_db()
    return tx


def assert_invariants():
    for tx in BankTransaction.objects.all():
        assert tx.allocated_vnd + tx.credit_vnd + tx.unmatched_vnd == tx.amount_vnd
        assert tx.unmatched_vnd >= 0 and tx.credit_vnd >= 0
    for demand in FeeDemand.objects.all():
        rows = Allocation.objects.filter(demand=demand, kind__in=["demand", "writeoff"])
        assert demand.paid_vnd == sum(r.amount_vnd for r in rows)
        assert demand.status == (
            "cancelled"
            if demand.status == "cancelled"
            else FeeDemand.status_for(demand.total_vnd, demand.paid_vnd)
        )


def test_an_unmatched_transfer_is_matched_by_hand_and_audited(setup):
    demand = setup["demands"][1]
    tx = transfer(setup["connection"], demand.total_vnd, "tien cho thang 5")
    assert tx.status == "unmatched"
    ledger.manual_match(
        transaction_id=tx.pk,
        shares=[Share(demand.pk, demand.total_vnd)],
        user=setup["user"],
        note="chị Lan gọi điện xác nhận",
    )
    tx.refresh_from_db()
    demand.refresh_from_db()
    assert tx.status == "matched" and demand.status == "paid"
    entry = AuditEntry.objects.get(action="match")
    assert entry.user == setup["user"] and entry.note == "chị Lan gọi điện xác nhận"
    assert entry.before["transaction"]["status"] == "unmatched"
    assert entry.after["transaction"]["status"] == "matched"
    assert_invariants()


def test_one_transfer_is_split_across_two_demands(setup):
    a, b = setup["demands"][1], setup["demands"][2]
    tx = transfer(setup["connection"], a.total_vnd + 100_000)
    ledger.manual_match(
        transaction_id=tx.pk,
        user=setup["user"],
        note="tách hai sạp",
        shares=[Share(a.pk, a.total_vnd), Share(b.pk, 100_000)],
    )
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.status == "paid" and b.status == "partial" and b.paid_vnd == 100_000
    assert_invariants()


def test_a_match_over_what_is_unmatched_or_outstanding_is_refused_and_changes_nothing(setup):
    a = setup["demands"][1]
    tx = transfer(setup["connection"], 50_000)
    with pytest.raises(InvalidInput):
        ledger.manual_match(
            transaction_id=tx.pk,
            shares=[Share(a.pk, 60_000)],
            user=setup["user"],
            note="quá số tiền",
        )
    with pytest.raises(InvalidInput, match="ghi chú"):
        ledger.manual_match(
            transaction_id=tx.pk, shares=[Share(a.pk, 10_000)], user=setup["user"], note=""
        )
    assert not Allocation.objects.exists() and not AuditEntry.objects.exists()


def test_unmatch_restores_exactly_the_previous_state_and_touches_nothing_else(setup):
    a, b = setup["demands"][0], setup["demands"][1]
    first = transfer(setup["connection"], a.total_vnd, a.payment_code)
    second = transfer(setup["connection"], 70_000, b.payment_code)
    b.refresh_from_db()
    before = (b.paid_vnd, b.status)
    allocation = Allocation.objects.get(transaction=first)
    other = Allocation.objects.get(transaction=second)
    ledger.unmatch(allocation_id=allocation.pk, user=setup["user"], note="khớp nhầm")
    a.refresh_from_db()
    b.refresh_from_db()
    first.refresh_from_db()
    assert (a.paid_vnd, a.status) == (0, "open")
    assert first.status == "unmatched" and first.unmatched_vnd == first.amount_vnd
    assert (b.paid_vnd, b.status) == before
    assert Allocation.objects.get(pk=other.pk).amount_vnd == 70_000  # untouched
    reversal = Allocation.objects.get(reverses=allocation)
    assert reversal.amount_vnd == -allocation.amount_vnd
    with pytest.raises(Conflict):
        ledger.unmatch(allocation_id=allocation.pk, user=setup["user"], note="lần hai")
    assert_invariants()


def test_a_bank_fee_difference_is_written_off_with_a_reason(setup):
    a = setup["demands"][0]
    transfer(setup["connection"], a.total_vnd - 3_300, a.payment_code)
    a.refresh_from_db()
    assert a.status == "partial"
    ledger.write_off(demand_id=a.pk, amount_vnd=3_300, user=setup["user"], note="phí ngân hàng")
    a.refresh_from_db()
    assert a.status == "paid"
    with pytest.raises(InvalidInput):
        ledger.write_off(
            demand_id=setup["demands"][1].pk, amount_vnd=500_000, user=setup["user"], note="quá lớn"
        )
    assert AuditEntry.objects.filter(action="writeoff").count() == 1
    assert_invariants()


def test_overpayment_then_next_months_bill_absorbs_the_credit(
    setup, django_capture_on_commit_callbacks
):
    a = setup["demands"][0]
    tx = transfer(setup["connection"], a.total_vnd + 200_000, a.payment_code)
    assert tx.credit_vnd == 200_000 and ledger.holder_credit_vnd(setup["holder"].pk) == 200_000
    with django_capture_on_commit_callbacks(execute=True):
        billing_run_create(market=setup["market"], period=JUNE)
    june = FeeDemand.objects.get(period=JUNE, holder=setup["holder"])
    assert june.paid_vnd == 200_000 and june.status == "partial"
    assert ledger.holder_credit_vnd(setup["holder"].pk) == 0
    tx.refresh_from_db()
    assert tx.credit_vnd == 0 and tx.allocated_vnd == tx.amount_vnd
    assert_invariants()


def test_a_credit_is_refunded_with_a_reference(setup):
    a = setup["demands"][0]
    transfer(setup["connection"], a.total_vnd + 150_000, a.payment_code)
    with pytest.raises(InvalidInput):
        ledger.refund_credit(
            holder=setup["holder"],
            amount_vnd=200_000,
            reference="FT1",
            user=setup["user"],
            note="hoàn",
        )
    ledger.refund_credit(
        holder=setup["holder"],
        amount_vnd=150_000,
        reference="FT99887766",
        user=setup["user"],
        note="hoàn tiền thừa",
    )
    assert ledger.holder_credit_vnd(setup["holder"].pk) == 0
    entry = AuditEntry.objects.get(action="refund")
    assert "FT99887766" in entry.note
    assert_invariants()


def test_suggestions_rank_a_near_miss_code_and_a_known_account_without_matching(setup):
    a, b = setup["demands"][0], setup["demands"][1]
    transfer(setup["connection"], 10_000, a.payment_code, counter_account="0011223344")
    wrong = b.payment_code[:-1] + str((int(b.payment_code[-1]) + 1) % 10)
    tx = transfer(setup["connection"], 12_345, f"tien cho {wrong}")
    assert tx.status == "unmatched"
    ranked = ledger.suggestions(tx)
    assert ranked and ranked[0]["demand_id"] == b.pk and "mã gần giống" in ranked[0]["reasons"]
    later = transfer(setup["connection"], 5_000, "khong ghi ma", counter_account="0011223344")
    assert later.status == "unmatched"
    assert any("tài khoản" in r for s in ledger.suggestions(later) for r in s["reasons"])
    assert not Allocation.objects.filter(transaction__in=[tx, later]).exists()


actions = st.lists(
    st.tuples(
        st.sampled_from(["pay_code", "pay_static", "pay_nothing", "redeliver", "match", "unmatch"]),
        st.integers(min_value=0, max_value=2),
        st.integers(min_value=1, max_value=3_000_000),
    ),
    max_size=12,
)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=actions)
def test_random_sequences_keep_every_invariant(setup, steps):
    from django.db import transaction as db_transaction

    sid = db_transaction.savepoint()
    try:
        connection, demands, stalls = setup["connection"], setup["demands"], setup["stalls"]
        for action, index, amount in steps:
            demand = FeeDemand.objects.get(pk=demands[index].pk)
            if action == "pay_code":
                transfer(connection, amount, f"MBVCB.1.{demand.payment_code.lower()}")
            elif action == "pay_static":
                transfer(connection, amount, f"tien sap {stalls[index].payment_code}")
            elif action == "pay_nothing":
                transfer(connection, amount, "khong co ma")
            elif action == "redeliver" and BankTransaction.objects.exists():
                tx = BankTransaction.objects.order_by("?").first()
                reconcile(tx.pk)
            elif action == "match":
                tx = BankTransaction.objects.filter(status__in=["unmatched", "partly"]).first()
                if tx and demand.outstanding_vnd and tx.unmatched_vnd:
                    take = min(tx.unmatched_vnd, demand.outstanding_vnd, amount)
                    ledger.manual_match(
                        transaction_id=tx.pk,
                        shares=[Share(demand.pk, take)],
                        user=setup["user"],
                        note="khớp tay",
                    )
            elif action == "unmatch":
                row = Allocation.objects.filter(
                    kind="demand", amount_vnd__gt=0, reversed_by__isnull=True
                ).first()
                if row:
                    ledger.unmatch(allocation_id=row.pk, user=setup["user"], note="hủy khớp")
            assert_invariants()
    finally:
        db_transaction.savepoint_rollback(sid)
