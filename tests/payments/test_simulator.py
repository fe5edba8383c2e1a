"""The bank simulator, in-process: a month of stall holders paying with every fault on,
checked against its own ledger one for one.

The ledger is the oracle: it says which transfers the bank made, what each one carried,
which deliveries reached the service, and what the service should have made of them.
``snapshot`` reads what the service recorded; ``assert_ledger_matches`` compares the
two. The real-server test (``test_simulator_server.py``) uses the same two functions on
the database of a separate server process.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from datetime import date
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Sum

from market40.demo import seed_demo
from market40.models import FeeDemand
from market40.services import billing_run_create
from payments.models import Allocation, BankConnection, BankTransaction, WebhookEvent
from payments.services import connection_create
from payments.simulator import (
    FAULTS,
    SimulationOptions,
    parse_faults,
    simulation_plan,
    simulation_run,
)

PERIOD = date(2026, 5, 1)
FAST = {"backoff_ms": 2, "late_ms": 5}
SETTLING = {"exact", "partial", "over", "multi", "split", "static"}


# --- the oracle (also used by the real-server test) ---------------------------------------


def snapshot(connection_id: str) -> dict[str, Any]:
    """What the service recorded for one connection, as plain JSON-able data."""
    connection = BankConnection.objects.get(pk=connection_id)
    transactions = {}
    for tx in BankTransaction.objects.filter(connection=connection).prefetch_related(
        "allocations__demand"
    ):
        transactions[tx.provider_transaction_id] = {
            "amount_vnd": tx.amount_vnd,
            "direction": tx.direction,
            "content": tx.content,
            "status": tx.status,
            "is_test": tx.is_test,
            "allocated_vnd": tx.allocated_vnd,
            "credit_vnd": tx.credit_vnd,
            "unmatched_vnd": tx.unmatched_vnd,
            "reconciled": tx.reconciled_at is not None,
            "unmatched_reason": tx.unmatched_reason,
            "allocations": [
                [a.kind, a.demand.payment_code if a.demand else None, a.amount_vnd]
                for a in tx.allocations.all()
            ],
        }
    events = [
        {
            "outcome": e.outcome,
            "http_status": e.http_status,
            "body_sha256": hashlib.sha256(bytes(e.body)).hexdigest(),
            "new_transactions": e.new_transactions,
            "processing_error": e.processing_error,
        }
        for e in WebhookEvent.objects.filter(connection=connection).order_by("id")
    ]
    demands = {}
    for demand in FeeDemand.objects.filter(market=connection.market):
        allocated = (
            Allocation.objects.filter(demand=demand, kind=Allocation.Kind.DEMAND).aggregate(
                s=Sum("amount_vnd")
            )["s"]
            or 0
        )
        demands[demand.payment_code] = {
            "total_vnd": demand.total_vnd,
            "paid_vnd": demand.paid_vnd,
            "status": demand.status,
            "allocated_vnd": allocated,
        }
    return {
        "transactions": transactions,
        "events": events,
        "demands": demands,
        "balance_gaps": connection.balance_gaps,
    }


def assert_ledger_matches(ledger: dict[str, Any], snap: dict[str, Any]) -> None:
    """Everything the ledger says the service should have recorded, and nothing else.
    Assumes the connection was fresh when the run started."""
    transfers = {t["provider_transaction_id"]: t for t in ledger["transfers"]}
    deliveries = ledger["deliveries"]
    stored = snap["transactions"]

    # 1. One for one: a transaction for each transfer that a 2xx delivery carried.
    carried = {
        ptid
        for d in deliveries
        if d["outcome"] == "delivered" and d["kind"] != "forged"
        for ptid in d["provider_transaction_ids"]
    }
    assert set(stored) == carried
    for ptid in carried:
        t = transfers[ptid]
        assert t["delivered"] and not t["forged"]
        assert stored[ptid]["amount_vnd"] == t["amount_vnd"]
        assert stored[ptid]["content"] == t["content"]
        assert stored[ptid]["direction"] == t["direction"]
        assert stored[ptid]["is_test"] == t["is_test"]
    never = {p for p, t in transfers.items() if not t["delivered"] or t["forged"]}
    assert never.isdisjoint(stored)
    assert all(d["outcome"] != "failed" for d in deliveries)

    # 2. Every request that reached the endpoint is one stored event, with its bytes.
    reached = Counter(
        d["body_sha256"]
        for d in deliveries
        for attempt in d["attempts"]
        if attempt["via"] == "endpoint" and attempt["status"] is not None
    )
    assert Counter(e["body_sha256"] for e in snap["events"]) == reached
    assert all(not e["processing_error"] for e in snap["events"])

    # 3. Forged deliveries: 401 and stored as rejected; never anything else rejected.
    forged = Counter(d["body_sha256"] for d in deliveries if d["kind"] == "forged")
    rejected = Counter(e["body_sha256"] for e in snap["events"] if e["outcome"] == "rejected")
    assert rejected == forged
    assert all(e["http_status"] == 401 for e in snap["events"] if e["outcome"] == "rejected")
    assert all(
        d["final_status"] == 401 and len(d["attempts"]) == 1
        for d in deliveries
        if d["kind"] == "forged"
    )

    # 4. Per set of transfers, one delivery is new (or a test call), the others are
    #    duplicates that created nothing; which one depends on arrival order.
    by_sha = defaultdict(list)
    for e in snap["events"]:
        by_sha[e["body_sha256"]].append(e)
    outcomes_per_set: dict[frozenset, Counter] = defaultdict(Counter)
    expected_per_set: dict[frozenset, Counter] = defaultdict(Counter)
    for d in deliveries:
        if d["kind"] == "forged" or d["outcome"] != "delivered":
            continue
        key = frozenset(d["provider_transaction_ids"])
        expected_per_set[key][d["expected_event"]] += 1
    for sha, events in by_sha.items():
        sets = {
            frozenset(d["provider_transaction_ids"])
            for d in deliveries
            if d["body_sha256"] == sha and d["kind"] != "forged"
        }
        for e in events:
            if e["outcome"] == "rejected":
                continue
            assert len(sets) == 1
            outcomes_per_set[next(iter(sets))][e["outcome"]] += 1
    assert outcomes_per_set == expected_per_set
    for e in snap["events"]:
        if e["outcome"] in ("duplicate", "rejected"):
            assert e["new_transactions"] == 0
    assert sum(e["new_transactions"] for e in snap["events"]) == len(stored)

    # 5. Settlement, exactly as the ledger expects, whatever the arrival order.
    for ptid, tx in stored.items():
        t = transfers[ptid]
        assert tx["reconciled"], ptid
        demand_rows = Counter()
        for kind, code, amount in tx["allocations"]:
            if kind == "demand":
                demand_rows[code] += amount
        credit_rows = sum(a for kind, _code, a in tx["allocations"] if kind == "credit")
        # The cached totals equal the allocation rows, and nothing is over-allocated.
        assert tx["allocated_vnd"] == sum(demand_rows.values())
        assert tx["credit_vnd"] == credit_rows
        if tx["status"] != "ignored":
            assert tx["allocated_vnd"] + tx["credit_vnd"] + tx["unmatched_vnd"] == tx["amount_vnd"]
        assert 0 <= tx["allocated_vnd"] + tx["credit_vnd"] <= tx["amount_vnd"]
        expected_rows = Counter()
        for row in t["expected_allocations"]:
            expected_rows[row["demand"]] += row["amount_vnd"]
        if t["expected"] in SETTLING:
            assert demand_rows == expected_rows, (ptid, t["expected"], t["content"])
            assert tx["credit_vnd"] == t["expected_credit_vnd"], (ptid, t["content"])
            assert tx["unmatched_vnd"] == 0, (ptid, t["content"])
            assert tx["status"] == "matched"
        elif t["expected"] == "unmatched":
            assert tx["allocations"] == [], (ptid, t["content"])
            assert tx["status"] == "unmatched"
            assert tx["unmatched_reason"]
        elif t["expected"] in ("outgoing", "test"):
            assert tx["allocations"] == []
            assert tx["status"] == "ignored"
        else:
            raise AssertionError(f"stored transfer of class {t['expected']}: {ptid}")

    # 6. Demands end where the ledger says; paid is always the sum of allocations.
    for code, expected in ledger["demands"].items():
        demand = snap["demands"][code]
        assert demand["paid_vnd"] == expected["expected_paid_vnd"], code
        assert demand["status"] == expected["expected_status"], code
    for code, demand in snap["demands"].items():
        assert demand["paid_vnd"] == demand["allocated_vnd"], code


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def demo_market(db):
    market = seed_demo(code="CHOSIM", stalls=60, seed=7, today=date(2026, 5, 20)).market
    billing_run_create(market=market, period=PERIOD)
    return market


def connect(market, provider: str, **options) -> BankConnection:
    connection, _secret, _generated = connection_create(
        market=market, provider=provider, options=options
    )
    return connection


CONNECTIONS = [
    pytest.param("sepay", {"mode": "hmac"}, id="sepay-hmac"),
    pytest.param("sepay", {"mode": "apikey"}, id="sepay-apikey"),
    pytest.param("casso", {"version": "v2"}, id="casso-v2"),
    pytest.param("casso", {"version": "v1"}, id="casso-v1-batches"),
    pytest.param("payos", {}, id="payos"),
    pytest.param("simulator", {}, id="simulator"),
]


# --- tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("provider", "options"), CONNECTIONS)
def test_a_month_with_every_fault_is_recorded_one_for_one_and_settled_as_the_ledger_says(
    demo_market, provider, options
):
    connection = connect(demo_market, provider, **options)
    ledger = simulation_run(
        connection=connection,
        period=PERIOD,
        options=SimulationOptions(seed=11, faults=parse_faults("all"), **FAST),
    ).as_json()

    classes = Counter(t["expected"] for t in ledger["transfers"])
    for expected in ("exact", "partial", "over", "multi", "split", "static", "unmatched"):
        assert classes[expected] >= 1, expected
    assert classes["rejected-signature"] >= 1
    assert classes["not-delivered"] == 1
    summary = ledger["summary"]
    assert summary["duplicates"] >= 1
    assert summary["retried"] >= 3 and summary["5xx"] >= 1
    assert summary["rejected"] == classes["rejected-signature"]
    assert summary["failed"] == 0

    assert_ledger_matches(ledger, snapshot(connection.pk))


def test_with_no_faults_every_paying_demand_is_paid_exactly(demo_market):
    connection = connect(demo_market, "sepay", mode="hmac")
    ledger = simulation_run(
        connection=connection,
        period=PERIOD,
        options=SimulationOptions(seed=3, share_paid=1.0, faults=frozenset(), **FAST),
    ).as_json()
    assert {t["expected"] for t in ledger["transfers"]} == {"exact"}
    assert len(ledger["transfers"]) == FeeDemand.objects.filter(period=PERIOD).count()
    assert_ledger_matches(ledger, snapshot(connection.pk))
    assert set(FeeDemand.objects.values_list("status", flat=True)) == {"paid"}


def test_the_same_seed_plans_the_same_month_and_another_seed_does_not(demo_market):
    connection = connect(demo_market, "casso", version="v2")
    options = SimulationOptions(seed=5, faults=parse_faults("all"))

    def fingerprint(plan):
        return (
            [
                (t.transfer.provider_transaction_id, t.transfer.amount_vnd, t.transfer.content)
                for t in plan.transfers
            ],
            [(d.kind, d.transfers, d.variant, d.late, d.gateway_failures) for d in plan.deliveries],
        )

    first = fingerprint(simulation_plan(connection=connection, period=PERIOD, options=options))
    again = fingerprint(simulation_plan(connection=connection, period=PERIOD, options=options))
    other = fingerprint(
        simulation_plan(
            connection=connection,
            period=PERIOD,
            options=SimulationOptions(seed=6, faults=parse_faults("all")),
        )
    )
    assert first == again
    assert first != other


def test_a_second_run_uses_new_transaction_ids_and_pays_what_is_still_open(demo_market):
    connection = connect(demo_market, "sepay", mode="hmac")
    options = SimulationOptions(seed=9, share_paid=0.5, faults=parse_faults("partial"), **FAST)
    first = simulation_run(connection=connection, period=PERIOD, options=options).as_json()
    second = simulation_run(connection=connection, period=PERIOD, options=options).as_json()
    first_ids = {t["provider_transaction_id"] for t in first["transfers"]}
    second_ids = {t["provider_transaction_id"] for t in second["transfers"]}
    assert first_ids.isdisjoint(second_ids)
    assert all(int(p) > max(int(q) for q in first_ids) for p in second_ids)
    # The second run planned only demands that were still open, for what was left.
    for expected in second["demands"].values():
        assert expected["paid_before_vnd"] < expected["total_vnd"]
    assert BankTransaction.objects.filter(connection=connection).count() == len(first_ids) + len(
        second_ids
    )


def test_a_missed_webhook_shows_as_one_running_balance_gap(demo_market):
    connection = connect(demo_market, "sepay", mode="hmac")
    ledger = simulation_run(
        connection=connection,
        period=PERIOD,
        options=SimulationOptions(seed=4, faults=parse_faults("missed_webhook"), **FAST),
    ).as_json()
    missed = [t for t in ledger["transfers"] if not t["delivered"]]
    assert len(missed) == 1
    assert not BankTransaction.objects.filter(
        provider_transaction_id=missed[0]["provider_transaction_id"]
    ).exists()
    connection.refresh_from_db()
    assert connection.balance_gaps == 1
    # The balances the simulator sent are one consistent chain at the bank.
    balance = ledger["opening_balance_vnd"]
    for t in sorted(ledger["transfers"], key=lambda t: t["bank_time"]):
        balance += t["amount_vnd"] if t["direction"] == "in" else -t["amount_vnd"]
        assert t["running_balance_vnd"] == balance


def test_the_ledger_says_what_each_transfer_carried_and_why(demo_market):
    connection = connect(demo_market, "sepay", mode="hmac")
    ledger = simulation_run(
        connection=connection,
        period=PERIOD,
        options=SimulationOptions(seed=11, faults=parse_faults("all"), **FAST),
    ).as_json()
    assert ledger["format"] == "market40-simulator-ledger/1"
    assert ledger["faults"] == sorted(FAULTS)
    static = [t for t in ledger["transfers"] if t["expected"] == "static"]
    assert static and all(t["targets"]["kind"] == "stall" for t in static)
    assert all(t["targets"]["codes"][0].startswith("SAP") for t in static)
    multi = [t for t in ledger["transfers"] if t["expected"] == "multi"]
    assert multi and all(len(t["targets"]["codes"]) == 2 for t in multi)
    wrong = [t for t in ledger["transfers"] if t["targets"]["kind"] == "wrong"]
    assert wrong and all(t["expected"] == "unmatched" for t in wrong)
    mangled = [t for t in ledger["transfers"] if t["mangling"]]
    assert len(mangled) > len(ledger["transfers"]) // 2
    assert any(t["content"] != t["note_written"] for t in mangled)
    redeliveries = [d for d in ledger["deliveries"] if d["kind"] == "redelivery"]
    assert redeliveries and all(d["duplicate_of"] for d in redeliveries)
    flaky = [d for d in ledger["deliveries"] if d["gateway_failures"]]
    assert flaky and all(
        [a["via"] for a in d["attempts"][:-1]] == [f"gateway-{f}" for f in d["gateway_failures"]]
        for d in flaky
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("all", frozenset(FAULTS)),
        ("none", frozenset()),
        ("", frozenset()),
        ("duplicate, late,bad-signature", frozenset({"duplicate", "late", "bad_signature"})),
    ],
)
def test_faults_are_named_in_a_comma_list(text, expected):
    assert parse_faults(text) == expected


def test_an_unknown_fault_is_refused_with_the_list_of_known_ones():
    with pytest.raises(ValueError, match="unknown fault"):
        parse_faults("duplicate,earthquake")


def test_a_sepay_transfer_naming_two_demands_pays_both_though_sepay_extracts_only_one(
    demo_market,
):
    # SePay's own ``code`` field holds the first code it finds (webhooks.md §3.1); the
    # second demand named in the content must still be paid, not turned into credit.
    connection = connect(demo_market, "sepay", mode="hmac")
    ledger = simulation_run(
        connection=connection,
        period=PERIOD,
        options=SimulationOptions(seed=2, share_paid=1.0, faults=frozenset({"multi"}), **FAST),
    ).as_json()
    multi = [t for t in ledger["transfers"] if t["expected"] == "multi"]
    assert multi and all(t["provider_code"] == t["targets"]["codes"][0] for t in multi)
    assert_ledger_matches(ledger, snapshot(connection.pk))


def test_the_command_delivers_in_process_prints_a_summary_and_writes_the_ledger(
    demo_market, settings, tmp_path
):
    settings.VAR_DIR = tmp_path
    connection = connect(demo_market, "casso", version="v2")
    out = StringIO()
    call_command(
        "simulate_bank",
        "chosim",
        "2026-05",
        "--connection",
        connection.pk,
        "--faults",
        "duplicate,bad_signature",
        "--backoff-ms",
        "1",
        stdout=out,
    )
    text = out.getvalue()
    assert "in-process" in text and "thiếu 0, thừa 0" in text
    assert "sent " in text and "duplicates " in text and "rejected 1" in text
    path = tmp_path / "simulator-ledger-CHOSIM-2026-05.json"
    ledger = json.loads(path.read_text(encoding="utf-8"))
    assert ledger["connection"] == connection.pk
    assert_ledger_matches(ledger, snapshot(connection.pk))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["NOPE", "2026-05"], "Không tìm thấy chợ"),
        (["CHOSIM", "2026-13"], "không hợp lệ"),
        (["CHOSIM", "2026-05", "--faults", "flood"], "unknown fault"),
        (["CHOSIM", "2026-05", "--share-paid", "2"], "share_paid"),
    ],
)
def test_the_command_refuses_bad_input_with_a_clear_message(demo_market, args, message):
    connection = connect(demo_market, "sepay", mode="hmac")
    with pytest.raises(CommandError, match=message):
        call_command("simulate_bank", *args, "--connection", connection.pk)


def test_the_command_refuses_a_connection_of_another_market(demo_market, market_b):
    other = connect(market_b, "sepay", mode="hmac")
    with pytest.raises(CommandError, match="không có kết nối"):
        call_command("simulate_bank", "CHOSIM", "2026-05", "--connection", other.pk)
