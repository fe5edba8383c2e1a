"""The accountant's workbench pages: the unmatched queue, matching by hand (split, credit),
unmatching, write-off, refund and the holder statement — each with a required note and
an audit row — and who may see and do what."""

from __future__ import annotations

from datetime import date
from itertools import count

import pytest
from django.urls import reverse

from market40.models import FeeDemand
from market40.services import billing_run_create
from payments import ledger
from payments.ledger import Share
from payments.models import Allocation, AuditEntry, BankTransaction
from payments.reconciliation import reconcile
from payments.services import connection_create
from tests import factories

MAY = date(2026, 5, 1)
PER_STALL = 6 * 120_000 + 20_000 + 15_000  # 755.000 đ: rent, sanitation, security
_numbers = count(1)


@pytest.fixture
def board(market_a, tariffs_a, accountant_a):
    """Market A billed for May: three stalls, Đỗ Thị Hoa holds the first."""
    stalls = [
        factories.make_stall(market_a, f"S{i}", zone=factories.make_zone(market_a, "A"))
        for i in range(3)
    ]
    holder = factories.make_holder(market_a, "Đỗ Thị Hoa")
    factories.make_lease(stalls[0], holder)
    factories.make_lease(stalls[1])
    factories.make_lease(stalls[2])
    billing_run_create(market=market_a, period=MAY)
    connection, _secret, _generated = connection_create(market=market_a, provider="simulator")
    return {
        "market": market_a,
        "connection": connection,
        "demands": list(FeeDemand.objects.order_by("stall__code")),
        "holder": holder,
        "user": accountant_a,
    }


def transfer(connection, amount, content="chuyen tien", **fields) -> BankTransaction:
    values = dict(
        connection=connection,
        provider_transaction_id=f"P{next(_numbers)}",
        direction="in",
        amount_vnd=amount,
        content=content,
        bank_time="2026-05-10T09:00:00+07:00",
    )
    values.update(fields)
    tx = BankTransaction.objects.create(**values)
    reconcile(tx.pk)
    tx.refresh_from_db()
    return tx


def url(name, *args, market="CHOA"):
    return reverse(name, args=[market, *args])


def state(tx: BankTransaction, *demands: FeeDemand) -> tuple:
    tx.refresh_from_db()
    rows = []
    for demand in demands:
        demand.refresh_from_db()
        rows.append((demand.paid_vnd, demand.status, demand.paid_at))
    return (tx.status, tx.allocated_vnd, tx.credit_vnd, tx.unmatched_vnd, *rows)


def assert_invariants():
    for tx in BankTransaction.objects.all():
        assert tx.allocated_vnd + tx.credit_vnd + tx.unmatched_vnd == tx.amount_vnd
        assert min(tx.allocated_vnd, tx.credit_vnd, tx.unmatched_vnd) >= 0
    for demand in FeeDemand.objects.all():
        rows = Allocation.objects.filter(demand=demand)
        assert demand.paid_vnd == sum(r.amount_vnd for r in rows)


# --- the queue -----------------------------------------------------------------------


def test_the_queue_lists_unmatched_transfers_with_reason_and_suggestions_and_guesses_nothing(
    board, accountant_a_client
):
    second = board["demands"][1]
    lost = transfer(board["connection"], PER_STALL, "tien cho thang 5", counter_name="LE VAN BA")
    paid = transfer(board["connection"], PER_STALL, second.payment_code)
    partly = transfer(board["connection"], 900_000, "hai sap")
    ledger.manual_match(
        transaction_id=partly.pk,
        shares=[Share(board["demands"][2].pk, 500_000)],
        user=board["user"],
        note="một phần",
    )

    response = accountant_a_client.get(url("workbench-unmatched"))

    assert response.status_code == 200
    page = response.content.decode()
    assert f'id="tx-{lost.pk}"' in page and f'id="tx-{partly.pk}"' in page
    assert f'id="tx-{paid.pk}"' not in page
    assert "không tìm thấy mã thanh toán hợp lệ" in page
    assert "LE VAN BA" in page
    # The demand with exactly that amount outstanding is suggested, with why.
    assert board["demands"][0].payment_code in page and "đúng số tiền còn nợ" in page
    assert f"?demand={board['demands'][0].pk}" in page
    lost.refresh_from_db()
    assert lost.status == "unmatched" and not lost.allocations.exists()


@pytest.mark.parametrize(
    ("params", "shown"),
    [
        ({"amount": "123.456"}, {"small"}),
        ({"q": "tran thi"}, {"named"}),
        ({"from": "2026-05-12"}, {"late"}),
        ({"to": "2026-05-11"}, {"small", "named"}),
        ({"from": "2026-05-10", "to": "2026-05-10", "amount": "123456"}, {"small"}),
    ],
)
def test_the_queue_filters_by_amount_text_and_date(board, accountant_a_client, params, shown):
    txs = {
        "small": transfer(board["connection"], 123_456, "khong ma"),
        "named": transfer(
            board["connection"],
            99_000,
            "ck",
            counter_name="TRAN THI MAI",
            bank_time="2026-05-11T08:00:00+07:00",
        ),
        "late": transfer(board["connection"], 77_000, "ck", bank_time="2026-05-12T00:10:00+07:00"),
    }
    page = accountant_a_client.get(url("workbench-unmatched"), params).content.decode()
    assert {name for name, tx in txs.items() if f'id="tx-{tx.pk}"' in page} == shown


def test_the_queue_filters_by_connection(board, accountant_a_client):
    other, _s, _g = connection_create(market=board["market"], provider="sepay")
    here = transfer(board["connection"], 10_000)
    there = transfer(other, 20_000)
    page = accountant_a_client.get(
        url("workbench-unmatched"), {"connection": other.pk}
    ).content.decode()
    assert f'id="tx-{there.pk}"' in page and f'id="tx-{here.pk}"' not in page


def test_a_bad_filter_value_is_explained_in_vietnamese(board, accountant_a_client):
    response = accountant_a_client.get(url("workbench-unmatched"), {"amount": "mười nghìn"})
    assert response.status_code == 200
    assert "Số tiền “mười nghìn” không hợp lệ" in response.content.decode()


# --- match, split, credit ------------------------------------------------------------


def test_a_transfer_is_matched_by_hand_from_its_page_and_the_audit_trail_says_who_and_why(
    board, accountant_a, accountant_a_client
):
    demand = board["demands"][1]
    tx = transfer(board["connection"], PER_STALL, "tien thang 5")
    form = accountant_a_client.get(url("workbench-transaction", tx.pk), {"demand": demand.pk})
    assert form.status_code == 200
    assert f'value="{demand.payment_code}"' in form.content.decode()
    assert f'value="{PER_STALL}"' in form.content.decode()

    response = accountant_a_client.post(
        url("workbench-match", tx.pk),
        {
            "code_1": demand.payment_code.lower(),
            "amount_1": "755.000",
            "note": "chị Lan gọi điện xác nhận",
        },
    )

    assert response.status_code == 302
    assert response["Location"] == url("workbench-transaction", tx.pk)
    assert state(tx, demand)[:4] == ("matched", PER_STALL, 0, 0)
    assert demand.status == "paid"
    entry = AuditEntry.objects.get(action="match")
    assert entry.user == accountant_a and entry.note == "chị Lan gọi điện xác nhận"
    assert entry.created_at is not None
    assert entry.before["transaction"]["status"] == "unmatched"
    assert entry.after["transaction"]["status"] == "matched"
    assert entry.after["demands"][str(demand.pk)]["status"] == "paid"
    page = accountant_a_client.get(response["Location"]).content.decode()
    assert "Đã khớp 755.000 đ vào 1 phiếu báo phí." in page
    assert "accountant_a" in page and "chị Lan gọi điện xác nhận" in page
    assert "giao dịch: Chưa khớp" in page and "giao dịch: Đã khớp" in page
    assert_invariants()


def test_one_transfer_is_split_across_two_demands_and_the_rest_kept_as_credit(
    board, accountant_a_client
):
    a, b = board["demands"][0], board["demands"][1]
    tx = transfer(board["connection"], 1_000_000, "tien hai sap")
    response = accountant_a_client.post(
        url("workbench-match", tx.pk),
        {
            "code_1": a.payment_code,
            "amount_1": "755000",
            "code_2": f"#{b.pk}",
            "amount_2": "200.000 đ",
            "surplus_to_credit": "on",
            "note": "tách cho hai sạp",
        },
    )
    assert response.status_code == 302
    assert state(tx, a, b)[:4] == ("matched", 955_000, 45_000, 0)
    assert (a.status, b.status, b.paid_vnd) == ("paid", "partial", 200_000)
    assert ledger.holder_credit_vnd(board["holder"].pk) == 45_000
    assert_invariants()


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"amount_1": "755000", "note": ""}, "Cần ghi chú lý do"),
        ({"amount_1": "755000", "note": "ok"}, "Cần ghi chú lý do"),
        ({"amount_1": "900000", "note": "quá số nợ"}, "chỉ còn nợ 755.000 đ"),
        ({"amount_1": "bảy trăm", "note": "chữ"}, "không hợp lệ"),
        ({"amount_1": "755000", "note": "mã sai", "code_1": "PX0000000"}, "không có phiếu"),
    ],
)
def test_a_refused_match_writes_nothing_and_shows_the_form_again_with_the_reason(
    board, accountant_a_client, form, message
):
    demand = board["demands"][0]
    tx = transfer(board["connection"], 1_000_000, "khong ma")
    response = accountant_a_client.post(
        url("workbench-match", tx.pk), {"code_1": demand.payment_code, **form}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert message in page
    assert f'value="{form.get("code_1", demand.payment_code)}"' in page
    assert not Allocation.objects.exists() and not AuditEntry.objects.exists()


def test_a_transfer_of_another_market_cannot_be_matched_to_a_demand_of_this_one(
    board, market_b, manager_b_client, manager_b
):
    connection_b, _s, _g = connection_create(market=market_b, provider="simulator")
    tx_b = transfer(connection_b, 100_000)
    response = manager_b_client.post(
        url("workbench-match", tx_b.pk, market="CHOB"),
        {"code_1": board["demands"][0].payment_code, "amount_1": "100000", "note": "thử"},
    )
    assert response.status_code == 400
    assert "không có phiếu báo phí" in response.content.decode()
    assert not Allocation.objects.exists()


# --- unmatch -------------------------------------------------------------------------


def test_unmatching_from_the_page_restores_exactly_the_previous_state(board, accountant_a_client):
    a, b = board["demands"][0], board["demands"][1]
    other = transfer(board["connection"], 70_000, b.payment_code)
    tx = transfer(board["connection"], 800_000, "khong ma")
    before = state(tx, a, b)
    other_rows = list(Allocation.objects.filter(transaction=other).values())
    accountant_a_client.post(
        url("workbench-match", tx.pk),
        {
            "code_1": a.payment_code,
            "amount_1": "755000",
            "surplus_to_credit": "on",
            "note": "khớp nhầm sạp",
        },
    )
    assert state(tx, a, b) != before
    for row in Allocation.objects.filter(transaction=tx, amount_vnd__gt=0):
        response = accountant_a_client.post(
            url("workbench-unmatch", row.pk), {"note": "khớp nhầm, trả lại hàng chờ"}
        )
        assert response.status_code == 302
        assert response["Location"] == url("workbench-transaction", tx.pk)

    assert state(tx, a, b) == before
    assert list(Allocation.objects.filter(transaction=other).values()) == other_rows
    reversals = Allocation.objects.filter(transaction=tx, reverses__isnull=False)
    assert reversals.count() == 2
    assert all(r.amount_vnd == -r.reverses.amount_vnd for r in reversals)
    entries = AuditEntry.objects.filter(action="unmatch")
    assert entries.count() == 2 and {e.note for e in entries} == {"khớp nhầm, trả lại hàng chờ"}
    page = accountant_a_client.get(url("workbench-transaction", tx.pk)).content.decode()
    assert "đã hủy bởi dòng #" in page and "đảo dòng #" in page
    assert_invariants()


def test_an_unmatch_without_a_note_changes_nothing(board, accountant_a_client):
    demand = board["demands"][0]
    tx = transfer(board["connection"], PER_STALL, demand.payment_code)
    row = Allocation.objects.get(transaction=tx)
    response = accountant_a_client.post(url("workbench-unmatch", row.pk), {"note": " "})
    assert response.status_code == 400
    assert "Cần ghi chú lý do" in response.content.decode()
    assert not Allocation.objects.filter(reverses=row).exists()
    assert state(tx, demand)[:4] == ("matched", PER_STALL, 0, 0)


def test_an_allocation_already_reversed_cannot_be_reversed_again(board, accountant_a_client):
    demand = board["demands"][0]
    tx = transfer(board["connection"], PER_STALL, demand.payment_code)
    row = Allocation.objects.get(transaction=tx)
    accountant_a_client.post(url("workbench-unmatch", row.pk), {"note": "lần một"})
    again = accountant_a_client.post(url("workbench-unmatch", row.pk), {"note": "lần hai"})
    assert again.status_code == 400
    assert "đã được hủy trước đó" in again.content.decode()
    assert Allocation.objects.filter(reverses=row).count() == 1


# --- write-off -----------------------------------------------------------------------


def test_a_bank_fee_is_written_off_on_the_demand_ledger_page_with_a_reason(
    board, accountant_a, accountant_a_client
):
    demand = board["demands"][0]
    tx = transfer(board["connection"], PER_STALL - 3_300, demand.payment_code)
    page = accountant_a_client.get(url("workbench-demand-ledger", demand.pk)).content.decode()
    assert f"#{tx.pk}" in page and 'id="write-off"' in page

    response = accountant_a_client.post(
        url("workbench-write-off", demand.pk),
        {"amount": "3.300", "reason": "bank_fee", "note": "ngân hàng trừ phí chuyển"},
    )

    assert response.status_code == 302
    demand.refresh_from_db()
    assert (demand.status, demand.paid_vnd) == ("paid", PER_STALL)
    row = Allocation.objects.get(kind="writeoff")
    assert row.note == "Phí ngân hàng: ngân hàng trừ phí chuyển" and row.created_by == accountant_a
    entry = AuditEntry.objects.get(action="writeoff")
    assert entry.user == accountant_a and entry.demand == demand
    assert entry.before["demand"]["outstanding_vnd"] == 3_300
    assert entry.after["demand"]["outstanding_vnd"] == 0
    page = accountant_a_client.get(response["Location"]).content.decode()
    assert "Phí ngân hàng: ngân hàng trừ phí chuyển" in page and "Xóa nợ" in page
    assert_invariants()


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"amount": "3300", "reason": "", "note": "phí"}, "Chọn lý do xóa nợ"),
        ({"amount": "3300", "reason": "bank_fee", "note": ""}, "Cần ghi chú lý do"),
        ({"amount": "60000", "reason": "other", "note": "quá lớn"}, "Chỉ xóa nợ được"),
    ],
)
def test_a_refused_write_off_changes_nothing(board, accountant_a_client, form, message):
    demand = board["demands"][0]
    response = accountant_a_client.post(url("workbench-write-off", demand.pk), form)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Allocation.objects.exists() and not AuditEntry.objects.exists()


# --- statement and refund ------------------------------------------------------------


def test_the_holder_statement_lists_every_demand_payment_and_credit_and_prints(
    board, accountant_a_client, django_capture_on_commit_callbacks
):
    may = board["demands"][0]
    transfer(board["connection"], PER_STALL + 150_000, may.payment_code, bank_reference="FT111")
    with django_capture_on_commit_callbacks(execute=True):
        billing_run_create(market=board["market"], period=date(2026, 6, 1))
    june = FeeDemand.objects.get(holder=board["holder"], period=date(2026, 6, 1))
    part = transfer(board["connection"], 300_000, june.payment_code, bank_reference="FT222")
    ledger.write_off(demand_id=june.pk, amount_vnd=5_000, user=board["user"], note="làm tròn")

    response = accountant_a_client.get(url("workbench-holder-statement", board["holder"].pk))

    assert response.status_code == 200
    page = response.content.decode()
    for text in (
        may.payment_code,
        june.payment_code,
        "FT111",
        "FT222",
        "Tiền thừa ghi có",
        "Trừ tiền thừa vào phiếu",
        "Xóa nợ phiếu",
        "làm tròn",
        "@media print",
        "Bảng kê công nợ",
    ):
        assert text in page, text
    june.refresh_from_db()
    assert june.outstanding_vnd == PER_STALL - 150_000 - 300_000 - 5_000
    # The running balance ends at what is still owed (no credit left).
    assert f"{june.outstanding_vnd:,} đ".replace(",", ".") in page
    assert part.pk and 'id="refund"' not in page  # nothing left to refund


def test_a_credit_is_refunded_from_the_holder_statement_with_a_reference(
    board, accountant_a, accountant_a_client
):
    demand = board["demands"][0]
    transfer(board["connection"], PER_STALL + 150_000, demand.payment_code)
    statement = url("workbench-holder-statement", board["holder"].pk)
    assert 'id="refund"' in accountant_a_client.get(statement).content.decode()
    refused = accountant_a_client.post(
        url("workbench-refund", board["holder"].pk),
        {"amount": "150000", "reference": "", "note": "hoàn tiền thừa"},
    )
    assert refused.status_code == 400
    assert "mã tham chiếu" in refused.content.decode()
    assert ledger.holder_credit_vnd(board["holder"].pk) == 150_000

    response = accountant_a_client.post(
        url("workbench-refund", board["holder"].pk),
        {"amount": "150.000", "reference": "FT99887766", "note": "hoàn tiền thừa"},
    )

    assert response.status_code == 302 and response["Location"] == statement
    assert ledger.holder_credit_vnd(board["holder"].pk) == 0
    refund = Allocation.objects.get(kind="refund")
    assert refund.amount_vnd == 150_000 and refund.created_by == accountant_a
    entry = AuditEntry.objects.get(action="refund")
    assert entry.user == accountant_a and "FT99887766" in entry.note
    assert entry.before == {"credit_vnd": 150_000} and entry.after == {"credit_vnd": 0}
    page = accountant_a_client.get(statement).content.decode()
    assert "Hoàn trả tiền thừa" in page and "FT99887766" in page
    assert_invariants()


# --- who may see and act -------------------------------------------------------------


def every_page(market_code, tx_id, allocation_id, demand_id, holder_id):
    return [
        ("get", url("workbench-unmatched", market=market_code), {}),
        ("get", url("workbench-period", market=market_code), {}),
        ("get", url("workbench-close", market=market_code), {}),
        ("get", url("workbench-transaction", tx_id, market=market_code), {}),
        ("get", url("workbench-demand-ledger", demand_id, market=market_code), {}),
        ("get", url("workbench-holder-statement", holder_id, market=market_code), {}),
        (
            "post",
            url("workbench-match", tx_id, market=market_code),
            {"code_1": "X", "amount_1": "1", "note": "thử"},
        ),
        ("post", url("workbench-unmatch", allocation_id, market=market_code), {"note": "thử"}),
        (
            "post",
            url("workbench-write-off", demand_id, market=market_code),
            {"amount": "1", "reason": "other", "note": "thử"},
        ),
        (
            "post",
            url("workbench-refund", holder_id, market=market_code),
            {"amount": "1", "reference": "FT1", "note": "thử"},
        ),
    ]


@pytest.fixture
def objects_of_a(board):
    demand = board["demands"][0]
    tx = transfer(board["connection"], PER_STALL + 10_000, demand.payment_code)
    return tx.pk, Allocation.objects.filter(transaction=tx).first().pk, demand.pk, demand.holder_id


def test_another_markets_manager_gets_404_on_every_workbench_page_of_market_a(
    objects_of_a, manager_b_client
):
    snapshot = list(Allocation.objects.values())
    pages = every_page("CHOA", *objects_of_a) + every_page("CHOB", *objects_of_a)[3:]
    for method, path, data in pages:
        response = getattr(manager_b_client, method)(path, data)
        assert response.status_code == 404, (method, path)
    assert list(Allocation.objects.values()) == snapshot
    assert not AuditEntry.objects.exists()


def test_an_anonymous_visitor_is_sent_to_log_in(objects_of_a, client):
    for method, path, data in every_page("CHOA", *objects_of_a):
        response = getattr(client, method)(path, data)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("persona", ["accountant_a_client", "manager_a_client", "admin_client_"])
def test_accountants_managers_and_platform_admins_see_every_page_and_can_act(
    objects_of_a, persona, request
):
    client = request.getfixturevalue(persona)
    tx_id, allocation_id, demand_id, holder_id = objects_of_a
    for method, path, _data in every_page("CHOA", *objects_of_a):
        if method == "get":
            assert client.get(path).status_code == 200, path
    response = client.post(url("workbench-unmatch", allocation_id), {"note": "kiểm tra quyền"})
    assert response.status_code == 302
    assert AuditEntry.objects.get(action="unmatch").note == "kiểm tra quyền"


def test_the_workbench_needs_no_javascript_and_protects_forms_with_csrf(
    objects_of_a, accountant_a_client
):
    tx_id, _allocation, demand_id, holder_id = objects_of_a
    for path in (
        url("workbench-transaction", tx_id),
        url("workbench-demand-ledger", demand_id),
        url("workbench-holder-statement", holder_id),
    ):
        page = accountant_a_client.get(path).content.decode()
        assert "<script" not in page
        assert page.count('method="post"') == page.count("csrfmiddlewaretoken")
