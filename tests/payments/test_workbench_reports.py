"""The period view and the daily close: their figures equal a direct computation from
the demands and transactions, and a balance that does not add up is flagged."""

from __future__ import annotations

from datetime import date
from itertools import count

import pytest
from django.urls import reverse

from market40.models import FeeDemand
from market40.services import billing_run_create
from payments import ledger, reports
from payments.ledger import Share
from payments.models import BankConnection, BankTransaction
from payments.reconciliation import reconcile
from payments.services import connection_create
from tests import factories

MAY = date(2026, 5, 1)
PER_STALL = 6 * 120_000 + 20_000 + 15_000
_numbers = count(1)


def vnd(amount: int) -> str:
    return f"{amount:,} đ".replace(",", ".")


@pytest.fixture
def board(market_a, tariffs_a, accountant_a):
    """Zone A with stalls A1, A2 (one holder holds both), zone B with B1 and B2."""
    zone_a, zone_b = factories.make_zone(market_a, "A"), factories.make_zone(market_a, "B")
    stalls = {
        code: factories.make_stall(market_a, code, zone=zone)
        for code, zone in (("A1", zone_a), ("A2", zone_a), ("B1", zone_b), ("B2", zone_b))
    }
    twice = factories.make_holder(market_a, "Phạm Thị Hai Sạp")
    factories.make_lease(stalls["A1"], twice)
    factories.make_lease(stalls["A2"], twice)
    factories.make_lease(stalls["B1"])
    factories.make_lease(stalls["B2"])
    billing_run_create(market=market_a, period=MAY)
    connection, _s, _g = connection_create(market=market_a, provider="simulator")
    demands = {d.stall.code: d for d in FeeDemand.objects.select_related("stall")}
    return {"market": market_a, "connection": connection, "demands": demands, "user": accountant_a}


def transfer(connection, amount, content="chuyen tien", when="2026-05-10T09:00:00+07:00", **kw):
    tx = BankTransaction.objects.create(
        connection=connection,
        provider_transaction_id=f"R{next(_numbers)}",
        direction=kw.pop("direction", "in"),
        amount_vnd=amount,
        content=content,
        bank_time=when,
        **kw,
    )
    reconcile(tx.pk)
    tx.refresh_from_db()
    return tx


# --- period view ---------------------------------------------------------------------


@pytest.fixture
def busy_may(board):
    """Every kind of outcome in May, and transfers around the month's edges."""
    d, c, user = board["demands"], board["connection"], board["user"]
    transfer(c, PER_STALL, d["A1"].payment_code)  # paid
    transfer(c, PER_STALL + 120_000, d["A2"].payment_code)  # paid, 120.000 credit
    transfer(c, 300_000, d["B1"].payment_code)  # partial
    transfer(c, PER_STALL - 2_200, d["B2"].payment_code)  # partial, then written off
    ledger.write_off(demand_id=d["B2"].pk, amount_vnd=2_200, user=user, note="phí ngân hàng")
    lost = transfer(c, 450_000, "khong ma")  # unmatched
    half = transfer(c, 500_000, "hai khoan")  # partly: 200.000 to B1
    ledger.manual_match(
        transaction_id=half.pk, shares=[Share(d["B1"].pk, 200_000)], user=user, note="một phần"
    )
    # Late on 31 May (local time) is May; early on 1 June is not.
    transfer(c, 11_000, "cuoi thang", when="2026-05-31T23:59:00+07:00")
    transfer(c, 22_000, "dau thang", when="2026-06-01T00:01:00+07:00")
    transfer(c, 33_000, "test", is_test=True)
    transfer(c, 44_000, "rut tien", direction="out")
    return {"lost": lost, "half": half}


def direct_figures(demands):
    live = [d for d in demands if d.status != "cancelled"]
    return {
        "billed": sum(d.total_vnd for d in live),
        "paid": sum(d.paid_vnd for d in live),
        "outstanding": sum(d.outstanding_vnd for d in live),
        "credit": sum(ledger.holder_credit_vnd(h) for h in {d.holder_id for d in live}),
    }


def test_the_period_figures_equal_a_direct_computation_in_total_per_zone_and_per_stall(
    board, busy_may
):
    report = reports.period_report(market=board["market"], period=MAY)
    demands = list(FeeDemand.objects.filter(market=board["market"], period=MAY))

    groups = [(report.totals, demands)]
    groups += [(z, [d for d in demands if d.stall.zone.code == z.key]) for z in report.zones]
    groups += [(s, [d for d in demands if d.stall_id == s.stall_id]) for s in report.stalls]
    for row, members in groups:
        expected = direct_figures(members)
        assert row.billed_vnd == expected["billed"], row.key
        assert row.collected_vnd + row.written_off_vnd == expected["paid"], row.key
        assert row.outstanding_vnd == expected["outstanding"], row.key
        assert row.credit_vnd == expected["credit"], row.key
    assert [z.key for z in report.zones] == ["A", "B"]
    assert [s.key for s in report.stalls] == ["A1", "A2", "B1", "B2"]
    assert report.totals.written_off_vnd == 2_200
    assert report.totals.credit_vnd == 120_000
    # The holder of A1 and A2 has the credit: each stall shows it, zone A counts it once.
    assert [s.credit_vnd for s in report.stalls] == [120_000, 120_000, 0, 0]
    assert report.zones[0].credit_vnd == 120_000

    in_may = BankTransaction.objects.filter(
        direction="in", is_test=False, bank_time__lt="2026-06-01T00:00:00+07:00"
    )
    assert report.unmatched_vnd == sum(t.unmatched_vnd for t in in_may)
    assert report.unmatched_vnd == 450_000 + 300_000 + 11_000  # not 1 June's 22.000
    assert report.unmatched_count == 3
    assert report.received_vnd == sum(t.amount_vnd for t in in_may)
    assert (
        report.received_allocated_vnd + report.received_credit_vnd + report.unmatched_vnd
        == report.received_vnd
    )
    assert report.market_credit_vnd == 120_000


def test_the_period_page_shows_the_figures_and_drills_down_to_demands_and_transactions(
    board, busy_may, accountant_a_client
):
    response = accountant_a_client.get(
        reverse("workbench-period", args=["CHOA"]), {"period": "2026-05"}
    )
    assert response.status_code == 200
    page = response.content.decode()
    report = reports.period_report(market=board["market"], period=MAY)
    for figure in (
        report.totals.billed_vnd,
        report.totals.collected_vnd,
        report.totals.outstanding_vnd,
        report.totals.credit_vnd,
        report.unmatched_vnd,
    ):
        assert vnd(figure) in page
    for demand in board["demands"].values():
        assert reverse("workbench-demand-ledger", args=["CHOA", demand.pk]) in page
    assert "?from=2026-05-01&amp;to=2026-05-31" in page  # unmatched → the queue
    ledger_page = accountant_a_client.get(
        reverse("workbench-demand-ledger", args=["CHOA", board["demands"]["B1"].pk])
    ).content.decode()
    assert reverse("workbench-transaction", args=["CHOA", busy_may["half"].pk]) in ledger_page

    zone_b = accountant_a_client.get(
        reverse("workbench-period", args=["CHOA"]), {"period": "2026-05", "zone": "B"}
    ).content.decode()
    assert 'id="stall-B1"' in zone_b and 'id="stall-A1"' not in zone_b


def test_a_bad_period_is_explained_and_the_current_one_shown(board, accountant_a_client):
    response = accountant_a_client.get(
        reverse("workbench-period", args=["CHOA"]), {"period": "2026-13"}
    )
    assert response.status_code == 200
    assert "không hợp lệ" in response.content.decode()


# --- daily close ---------------------------------------------------------------------

DAY = date(2026, 5, 10)


def close_line(board, **typed) -> reports.CloseLine:
    lines = reports.daily_close(market=board["market"], day=DAY, **typed)
    return next(line for line in lines if line.connection == board["connection"])


def chain(board, moves, start_balance=5_000_000, skip=()):
    """Transfers on 10 May with running balances; the ones in ``skip`` are the bank's
    but never reached us (a missed webhook): the balance moves, no transaction."""
    balance = start_balance
    transfer(
        board["connection"],
        1_000,
        "hom truoc",
        when="2026-05-09T17:00:00+07:00",
        running_balance_vnd=balance,
    )
    made = []
    for n, (hour, amount) in enumerate(moves):
        balance += amount
        if n in skip:
            continue
        made.append(
            transfer(
                board["connection"],
                abs(amount),
                f"giao dich {n}",
                when=f"2026-05-10T{hour}:00+07:00",
                direction="in" if amount > 0 else "out",
                running_balance_vnd=balance,
            )
        )
    return made, balance


def test_a_day_whose_running_balances_chain_closes_without_difference(board):
    made, closing = chain(board, [("09:10", 755_000), ("10:00", 300_000), ("15:00", -200_000)])
    line = close_line(board)
    assert (line.in_count, line.in_vnd, line.out_count, line.out_vnd) == (2, 1_055_000, 1, 200_000)
    assert line.opening_vnd == 5_000_000
    assert line.bank_closing_vnd == closing == line.expected_closing_vnd
    assert line.difference_vnd == 0 and line.status == "ok" and not line.gaps
    assert line.first_balance == made[0] and line.last_balance == made[-1]


def test_a_missed_transfer_is_flagged_and_located(board, accountant_a_client):
    chain(board, [("09:10", 755_000), ("10:00", 300_000), ("15:00", 100_000)], skip={1})
    line = close_line(board)
    assert line.difference_vnd == 300_000 and line.status == "flagged"
    assert [(g.text, g.amount_vnd) for g in line.gaps] == [
        ("Giữa 09:10 và 15:00: số dư ngân hàng không khớp chuỗi giao dịch", 300_000)
    ]
    page = accountant_a_client.get(
        reverse("workbench-close", args=["CHOA"]), {"date": "2026-05-10"}
    ).content.decode()
    assert "LỆCH — cần kiểm tra" in page and "Giữa 09:10 và 15:00" in page
    assert vnd(300_000) in page


def test_a_statement_closing_balance_typed_by_the_accountant_is_compared(
    board, accountant_a_client
):
    transfer(board["connection"], 755_000, "khong so du", when="2026-05-10T09:00:00+07:00")
    transfer(board["connection"], 100_000, "khong so du", when="2026-05-10T11:00:00+07:00")
    assert close_line(board).status == "no_balance"
    matching = close_line(
        board,
        opening_balances={board["connection"].pk: 1_000_000},
        closing_balances={board["connection"].pk: 1_855_000},
    )
    assert matching.status == "ok" and matching.difference_vnd == 0
    short = close_line(
        board,
        opening_balances={board["connection"].pk: 1_000_000},
        closing_balances={board["connection"].pk: 1_800_000},
    )
    assert short.status == "flagged" and short.difference_vnd == -55_000

    pk = board["connection"].pk
    page = accountant_a_client.get(
        reverse("workbench-close", args=["CHOA"]),
        {"date": "2026-05-10", f"opening-{pk}": "1.000.000", f"closing-{pk}": "1.800.000"},
    ).content.decode()
    assert "LỆCH — cần kiểm tra" in page and vnd(-55_000) in page
    assert 'value="1.800.000"' in page


def test_a_difference_from_a_transfer_booked_across_midnight_is_explained(board):
    transfer(board["connection"], 40_000, "sat nua dem", when="2026-05-09T23:50:00+07:00")
    transfer(board["connection"], 755_000, "trong ngay", when="2026-05-10T09:00:00+07:00")
    pk = board["connection"].pk
    # The bank's statement counts the 23:50 transfer in 10 May.
    line = close_line(board, opening_balances={pk: 1_000_000}, closing_balances={pk: 1_795_000})
    assert line.difference_vnd == 40_000 and line.status == "explained"
    assert "23:50" in line.explanations[0].text


def test_the_close_lists_unmatched_and_late_transfers_and_the_connections_gap_note(
    board, accountant_a_client
):
    lost = transfer(
        board["connection"],
        123_000,
        "khong ma",
        when="2026-05-10T10:00:00+07:00",
        received_at="2026-05-10T10:00:03+07:00",
    )
    late = transfer(
        board["connection"],
        755_000,
        board["demands"]["A1"].payment_code,
        when="2026-05-10T23:00:00+07:00",
        received_at="2026-05-11T08:00:00+07:00",
    )
    BankConnection.objects.filter(pk=board["connection"].pk).update(
        balance_gaps=2, last_gap_note="10/05/2026 15:00: số dư 1.000 ≠ 900 — có thể thiếu"
    )
    line = close_line(board)
    assert line.unmatched == [lost] and line.unmatched_vnd == 123_000
    assert line.late == [late]
    page = accountant_a_client.get(
        reverse("workbench-close", args=["CHOA"]), {"date": "2026-05-10"}
    ).content.decode()
    assert "2 lần số dư không liền mạch" in page and "có thể thiếu" in page
    assert "còn 123.000 đ chưa khớp" in page and "về trễ" in page
    assert "Chưa có số dư ngân hàng để đối chiếu" in page
