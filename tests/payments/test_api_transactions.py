"""The workbench over JSON: transactions with their allocations, and match, split,
unmatch, write-off and refund through ``payments.ledger`` — audited, scoped, with the
one error envelope."""

from __future__ import annotations

from datetime import date
from itertools import count

import pytest

from market40.models import ApiToken, FeeDemand
from market40.services import billing_run_create
from payments import ledger
from payments.models import Allocation, AuditEntry, BankTransaction
from payments.reconciliation import reconcile
from payments.services import connection_create
from tests import factories

MAY = date(2026, 5, 1)
PER_STALL = 6 * 120_000 + 20_000 + 15_000
_numbers = count(1)


@pytest.fixture
def board(market_a, tariffs_a):
    stalls = [factories.make_stall(market_a, f"T{i}") for i in range(3)]
    holder = factories.make_holder(market_a, "Võ Thị Sáu")
    factories.make_lease(stalls[0], holder)
    factories.make_lease(stalls[1])
    factories.make_lease(stalls[2])
    billing_run_create(market=market_a, period=MAY)
    connection, _s, _g = connection_create(market=market_a, provider="simulator")
    return {
        "market": market_a,
        "connection": connection,
        "demands": list(FeeDemand.objects.order_by("stall__code")),
        "holder": holder,
    }


def transfer(connection, amount, content="chuyen tien", **fields) -> BankTransaction:
    values = dict(
        connection=connection,
        provider_transaction_id=f"A{next(_numbers)}",
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


def post(client, path, body):
    return client.post(f"/api/v1{path}", body, content_type="application/json")


def get(client, path, params=None):
    return client.get(f"/api/v1{path}", params or {})


def snapshot(tx: BankTransaction, *demands: FeeDemand) -> tuple:
    tx.refresh_from_db()
    out = [(tx.status, tx.allocated_vnd, tx.credit_vnd, tx.unmatched_vnd)]
    for demand in demands:
        demand.refresh_from_db()
        out.append((demand.status, demand.paid_vnd, demand.paid_at))
    return tuple(out)


# --- reading -------------------------------------------------------------------------


def test_transactions_are_listed_with_allocations_credit_and_unmatched_amount(
    board, accountant_a_client
):
    demand = board["demands"][0]
    paid = transfer(board["connection"], PER_STALL + 50_000, demand.payment_code)
    lost = transfer(board["connection"], 10_000, "khong ma", bank_time="2026-05-11T10:00+07:00")

    response = get(accountant_a_client, "/transactions")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2 and [t["id"] for t in body["items"]] == [lost.pk, paid.pk]
    first = body["items"][1]
    assert first["market"] == "CHOA" and first["provider"] == "simulator"
    assert (first["allocated_vnd"], first["credit_vnd"], first["unmatched_vnd"]) == (
        PER_STALL,
        50_000,
        0,
    )
    assert [(a["kind"], a["amount_vnd"], a["payment_code"]) for a in first["allocations"]] == [
        ("demand", PER_STALL, demand.payment_code),
        ("credit", 50_000, None),
    ]
    assert first["allocations"][1]["holder_id"] == board["holder"].pk
    assert body["items"][0]["status"] == "unmatched"
    assert body["items"][0]["unmatched_vnd"] == 10_000
    assert body["items"][0]["unmatched_reason"] == "không tìm thấy mã thanh toán hợp lệ"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "unmatched"}, {"lost"}),
        ({"status": "matched"}, {"paid"}),
        ({"status": "ignored"}, {"out"}),
        ({"date_from": "2026-05-11"}, {"lost", "out"}),
        ({"date_to": "2026-05-10"}, {"paid"}),
        ({"date_from": "2026-05-11", "date_to": "2026-05-11"}, {"lost"}),
        ({"market": "CHOA", "direction": "out"}, {"out"}),
    ],
)
def test_transactions_are_filtered(board, accountant_a_client, params, expected):
    made = {
        "paid": transfer(board["connection"], PER_STALL, board["demands"][0].payment_code),
        "lost": transfer(board["connection"], 10_000, bank_time="2026-05-11T23:59:00+07:00"),
        "out": transfer(
            board["connection"], 5_000, direction="out", bank_time="2026-05-12T00:00:00+07:00"
        ),
    }
    ids = {t["id"] for t in get(accountant_a_client, "/transactions", params).json()["items"]}
    assert ids == {made[name].pk for name in expected}


def test_the_list_costs_the_same_number_of_queries_for_ten_transactions_as_for_two(
    board, accountant_a_client
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert get(accountant_a_client, "/transactions").status_code == 200
        return len(captured)

    demand = board["demands"][0]
    for _ in range(2):
        transfer(board["connection"], 100_000, demand.payment_code)
    few = queries()
    for _ in range(8):
        transfer(board["connection"], 50_000, demand.payment_code)
    assert queries() == few


def test_transactions_are_filtered_by_connection_and_paginated(board, accountant_a_client):
    other, _s, _g = connection_create(market=board["market"], provider="sepay")
    for _ in range(3):
        transfer(other, 1_000)
    transfer(board["connection"], 2_000)
    body = get(
        accountant_a_client, "/transactions", {"connection": other.pk, "limit": 2, "offset": 0}
    ).json()
    assert body["count"] == 3 and len(body["items"]) == 2
    assert {t["connection_id"] for t in body["items"]} == {other.pk}


def test_a_transaction_comes_with_its_suggestions_and_audit_trail(board, accountant_a_client):
    demand = board["demands"][1]
    tx = transfer(board["connection"], PER_STALL, "tien thang nam")
    body = get(accountant_a_client, f"/transactions/{tx.pk}").json()
    assert any(
        s["demand_id"] == demand.pk and "đúng số tiền còn nợ" in s["reasons"]
        for s in body["suggestions"]
    )
    assert body["audit"] == [] and body["allocations"] == []
    assert not Allocation.objects.exists()  # a suggestion is never applied


def test_a_demand_is_read_with_its_allocations_and_transactions(board, accountant_a_client):
    demand = board["demands"][0]
    a = transfer(board["connection"], 300_000, demand.payment_code)
    b = transfer(board["connection"], 400_000, demand.payment_code)
    body = get(accountant_a_client, f"/demands/{demand.pk}/allocations").json()
    assert body["status"] == "partial" and body["paid_vnd"] == 700_000
    assert body["collected_vnd"] == 700_000 and body["outstanding_vnd"] == PER_STALL - 700_000
    assert [r["transaction_id"] for r in body["allocations"]] == [a.pk, b.pk]
    assert [t["id"] for t in body["transactions"]] == [a.pk, b.pk]


# --- acting --------------------------------------------------------------------------


def test_a_transfer_is_split_over_the_api_and_the_rest_kept_as_credit(
    board, accountant_a, accountant_a_client
):
    a, b = board["demands"][0], board["demands"][1]
    tx = transfer(board["connection"], 1_000_000, "khong ma")
    response = post(
        accountant_a_client,
        f"/transactions/{tx.pk}/match",
        {
            "shares": [
                {"demand_id": a.pk, "amount_vnd": PER_STALL},
                {"demand_id": b.pk, "amount_vnd": 200_000},
            ],
            "note": "anh Tư xác nhận qua điện thoại",
            "surplus_to_credit": True,
        },
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["allocated_vnd"], body["credit_vnd"], body["unmatched_vnd"]) == (
        "matched",
        955_000,
        45_000,
        0,
    )
    assert [(r["kind"], r["amount_vnd"], r["created_by"]) for r in body["allocations"]] == [
        ("demand", PER_STALL, "accountant_a"),
        ("demand", 200_000, "accountant_a"),
        ("credit", 45_000, "accountant_a"),
    ]
    [entry] = body["audit"]
    assert entry["action"] == "match" and entry["user"] == "accountant_a"
    assert entry["note"] == "anh Tư xác nhận qua điện thoại" and entry["created_at"]
    assert entry["before"]["transaction"]["unmatched_vnd"] == 1_000_000
    assert entry["after"]["transaction"]["unmatched_vnd"] == 0
    assert ledger.holder_credit_vnd(board["holder"].pk) == 45_000


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        ({"note": ""}, 400, "invalid", "Cần ghi chú lý do"),
        ({"note": "quá", "amount_vnd": 900_000}, 400, "invalid", "chỉ còn nợ 755.000 đ"),
        ({"note": "quá", "amount_vnd": 2_000_000}, 400, "invalid", "vượt số tiền chưa khớp"),
        ({"note": "số âm", "amount_vnd": -5}, 400, "invalid", "phải lớn hơn 0"),
        ({"note": "kiểu", "amount_vnd": "nhiều"}, 422, "invalid", "shares.0.amount_vnd"),
    ],
)
def test_a_refused_match_answers_the_envelope_and_writes_nothing(
    board, accountant_a_client, body, status, code, message
):
    demand = board["demands"][0]
    tx = transfer(board["connection"], 1_000_000, "khong ma")
    share = {"demand_id": demand.pk, "amount_vnd": body.pop("amount_vnd", 100_000)}
    path = f"/transactions/{tx.pk}/match"
    response = post(accountant_a_client, path, {"shares": [share], **body})
    assert response.status_code == status
    envelope = response.json()
    assert set(envelope) == {"code", "message", "extra"} and envelope["code"] == code
    assert message in envelope["message"]
    assert not Allocation.objects.exists() and not AuditEntry.objects.exists()


def test_unmatch_over_the_api_restores_exactly_the_previous_state(board, accountant_a_client):
    a, b = board["demands"][0], board["demands"][1]
    other = transfer(board["connection"], 70_000, b.payment_code)
    tx = transfer(board["connection"], 800_000, "khong ma")
    before = snapshot(tx, a, b)
    other_rows = list(Allocation.objects.filter(transaction=other).values())
    post(
        accountant_a_client,
        f"/transactions/{tx.pk}/match",
        {
            "shares": [{"demand_id": a.pk, "amount_vnd": PER_STALL}],
            "note": "khớp nhầm",
            "surplus_to_credit": True,
        },
    )
    for row in Allocation.objects.filter(transaction=tx, amount_vnd__gt=0):
        response = post(accountant_a_client, f"/allocations/{row.pk}/unmatch", {"note": "sai sạp"})
        assert response.status_code == 200
        body = response.json()
        assert body["reversal"]["reverses_id"] == row.pk
        assert body["reversal"]["amount_vnd"] == -row.amount_vnd
        assert body["reversal"]["created_by"] == "accountant_a"
        reversed_row = next(r for r in body["transaction"]["allocations"] if r["id"] == row.pk)
        assert reversed_row["reversed_by_id"] == body["reversal"]["id"]

    assert snapshot(tx, a, b) == before
    assert list(Allocation.objects.filter(transaction=other).values()) == other_rows
    assert AuditEntry.objects.filter(action="unmatch", note="sai sạp").count() == 2

    row = Allocation.objects.filter(transaction=tx, amount_vnd__gt=0).first()
    again = post(accountant_a_client, f"/allocations/{row.pk}/unmatch", {"note": "lần hai"})
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    missing_note = post(accountant_a_client, f"/allocations/{other_rows[0]['id']}/unmatch", {})
    assert missing_note.status_code == 400 and "ghi chú" in missing_note.json()["message"]


def test_a_small_difference_is_written_off_over_the_api_with_a_reason(
    board, accountant_a, accountant_a_client
):
    demand = board["demands"][0]
    transfer(board["connection"], PER_STALL - 1_100, demand.payment_code)
    response = post(
        accountant_a_client,
        f"/demands/{demand.pk}/write-off",
        {"amount_vnd": 1_100, "reason": "small_difference", "note": "thiếu lẻ"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "paid" and body["written_off_vnd"] == 1_100
    assert body["allocations"][-1]["kind"] == "writeoff"
    assert body["allocations"][-1]["note"] == "Chênh lệch nhỏ: thiếu lẻ"
    entry = AuditEntry.objects.get(action="writeoff")
    assert entry.user == accountant_a and entry.demand_id == demand.pk

    bad = post(
        accountant_a_client,
        f"/demands/{board['demands'][1].pk}/write-off",
        {"amount_vnd": 1_000, "reason": "because", "note": "lý do lạ"},
    )
    assert bad.status_code == 400 and "reason" in bad.json()["extra"]["fields"]
    too_big = post(
        accountant_a_client,
        f"/demands/{board['demands'][1].pk}/write-off",
        {"amount_vnd": 100_000, "note": "quá lớn"},
    )
    assert too_big.status_code == 400 and "Chỉ xóa nợ được" in too_big.json()["message"]
    assert AuditEntry.objects.count() == 1


def test_a_credit_is_refunded_over_the_api_with_its_reference(
    board, accountant_a, accountant_a_client
):
    demand = board["demands"][0]
    transfer(board["connection"], PER_STALL + 150_000, demand.payment_code)
    path = f"/holders/{board['holder'].pk}/refunds"
    no_reference = post(accountant_a_client, path, {"amount_vnd": 100_000, "note": "hoàn"})
    assert no_reference.status_code == 400
    assert no_reference.json()["extra"]["fields"] == {"reference": ["required"]}
    too_much = post(
        accountant_a_client, path, {"amount_vnd": 200_000, "reference": "FT1", "note": "hoàn"}
    )
    assert too_much.status_code == 400

    response = post(
        accountant_a_client,
        path,
        {"amount_vnd": 100_000, "reference": " FT26130555 ", "note": "hoàn một phần"},
    )

    assert response.status_code == 201
    assert response.json() == {
        "holder_id": board["holder"].pk,
        "refunded_vnd": 100_000,
        "reference": "FT26130555",
        "credit_vnd": 50_000,
    }
    entry = AuditEntry.objects.get(action="refund")
    assert entry.user == accountant_a and "FT26130555" in entry.note
    assert entry.before == {"credit_vnd": 150_000} and entry.after == {"credit_vnd": 50_000}
    for tx in BankTransaction.objects.all():
        assert tx.allocated_vnd + tx.credit_vnd + tx.unmatched_vnd == tx.amount_vnd


# --- scope ---------------------------------------------------------------------------


@pytest.fixture
def objects_of_a(board):
    demand = board["demands"][0]
    tx = transfer(board["connection"], PER_STALL + 10_000, demand.payment_code)
    return {
        "tx": tx.pk,
        "allocation": Allocation.objects.filter(transaction=tx).first().pk,
        "demand": demand.pk,
        "holder": board["holder"].pk,
    }


def every_endpoint(o):
    return [
        ("get", f"/transactions/{o['tx']}", None),
        ("get", f"/demands/{o['demand']}/allocations", None),
        (
            "post",
            f"/transactions/{o['tx']}/match",
            {"shares": [{"demand_id": o["demand"], "amount_vnd": 1}], "note": "thử"},
        ),
        ("post", f"/allocations/{o['allocation']}/unmatch", {"note": "thử"}),
        ("post", f"/demands/{o['demand']}/write-off", {"amount_vnd": 1, "note": "thử"}),
        (
            "post",
            f"/holders/{o['holder']}/refunds",
            {"amount_vnd": 1, "reference": "FT1", "note": "thử"},
        ),
    ]


def test_another_markets_manager_gets_404_on_everything_of_market_a(objects_of_a, manager_b_client):
    rows = list(Allocation.objects.values())
    for method, path, body in every_endpoint(objects_of_a):
        response = (
            post(manager_b_client, path, body) if method == "post" else get(manager_b_client, path)
        )
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"
    assert get(manager_b_client, "/transactions").json()["count"] == 0
    assert get(manager_b_client, "/transactions", {"market": "CHOA"}).status_code == 404
    assert list(Allocation.objects.values()) == rows and not AuditEntry.objects.exists()


def test_an_accountant_with_a_bearer_token_can_act(objects_of_a, accountant_a, client):
    _token, key = ApiToken.issue(accountant_a)
    response = client.post(
        f"/api/v1/allocations/{objects_of_a['allocation']}/unmatch",
        {"note": "kiểm tra bằng khóa API"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 200
    assert AuditEntry.objects.get().user == accountant_a


def test_an_anonymous_caller_gets_401(objects_of_a, client):
    for method, path, body in every_endpoint(objects_of_a):
        response = post(client, path, body) if method == "post" else get(client, path)
        assert response.status_code == 401, path
    assert get(client, "/transactions").status_code == 401
