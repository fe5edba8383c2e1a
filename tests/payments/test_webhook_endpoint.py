"""POST /webhooks/<provider>/<connection-id>/: real signatures, deliberate status codes.

Every delivery is built and signed by the provider module (as the bank simulator does)
with the connection's real secret and goes through the real URL, view and service.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from market40.models import FeeDemand
from payments.models import BankConnection, BankTransaction, WebhookEvent
from payments.providers import PROVIDERS, casso, payos, sepay, simulator
from tests.payments.helpers import (
    BANK_TIME,
    assert_ledger_consistent,
    build,
    connect,
    deliver,
    last_event,
    make_transfer,
    post,
    without_payos_signature,
)


@dataclass(frozen=True)
class Format:
    """One way a connection can be configured to receive deliveries."""

    id: str
    provider: str
    options: dict[str, Any]
    # Header that carries the credential; None when it is inside the body (payOS).
    auth_header: str | None
    # Whether the credential covers the body (token-only formats cannot see tampering).
    signs_body: bool
    timestamped: bool
    scheme: str

    def connect(self, market) -> BankConnection:
        return connect(market, self.provider, **self.options)

    @property
    def module(self):
        return PROVIDERS[self.provider]


FORMATS = [
    Format("sepay-hmac", "sepay", {"mode": "hmac"}, "X-SePay-Signature", True, True, "hmac-sha256"),
    Format("sepay-apikey", "sepay", {"mode": "apikey"}, "Authorization", False, False, "apikey"),
    Format("casso-v2", "casso", {"version": "v2"}, "X-Casso-Signature", True, True, "casso-v2"),
    Format("casso-v1", "casso", {"version": "v1"}, "secure-token", False, False, "casso-v1-token"),
    Format("payos", "payos", {}, None, True, False, "payos-checksum"),
    Format("simulator", "simulator", {}, "X-Market40-Signature", True, True, "market40-v1"),
]
BY_ID = {f.id: f for f in FORMATS}


def formats(*, where=lambda f: True):
    return [pytest.param(f, id=f.id) for f in FORMATS if where(f)]


def tamper_content(body: bytes) -> bytes:
    # The stall named in the transfer note decides where the money goes.
    assert body.count(b"SAP A12") == 1
    return body.replace(b"SAP A12", b"SAP B34")


def assert_nothing_created() -> None:
    assert BankTransaction.objects.count() == 0


# --- authentic deliveries -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", formats())
def test_a_valid_delivery_is_answered_200_and_stored_as_one_parsed_transaction(
    client, market_a, fmt
):
    connection = fmt.connect(market_a)
    transfer = make_transfer(connection, 7, running_balance_vnd=5_173_000)

    response = deliver(client, connection, [transfer])

    assert response.status_code == 200
    assert response.json() == fmt.module.success_response()[1] == {"success": True}
    tx = BankTransaction.objects.get()
    carried = fmt.module.carried_fields(**fmt.options)
    assert tx.connection == connection
    assert tx.provider_transaction_id == transfer.provider_transaction_id
    assert tx.direction == "in"
    assert tx.amount_vnd == 173_000
    assert tx.content == "TIEN PHI THANG 05 SAP A12"
    assert tx.bank_reference == transfer.bank_reference
    assert tx.counter_account == ("0123456789" if "counter_account" in carried else "")
    assert tx.bank_time == BANK_TIME + timedelta(minutes=7)
    expected_balance = 5_173_000 if "running_balance_vnd" in carried else None
    assert tx.running_balance_vnd == expected_balance
    assert tx.is_test is False
    event = WebhookEvent.objects.get()
    assert tx.event == event
    assert event.outcome == WebhookEvent.Outcome.ACCEPTED
    assert event.http_status == 200
    assert event.verify_scheme == fmt.scheme
    assert (event.transfer_count, event.new_transactions) == (1, 1)
    assert_ledger_consistent()


def test_casso_v2_records_which_serialisation_form_matched(client, market_a):
    connection = connect(market_a, "casso", version="v2")
    transfer = make_transfer(connection, 3, content="CK 12/05 Nguyễn SAP A12")
    body, headers = build(connection, [transfer], form="php")

    response = post(client, connection, body, headers)

    assert response.status_code == 200
    assert last_event().verify_detail == "php"
    assert BankTransaction.objects.get().content == "CK 12/05 Nguyễn SAP A12"


# --- refused deliveries: stored, answered 401/400, nothing created ----------------------------


@pytest.mark.parametrize("fmt", formats(where=lambda f: f.signs_body))
def test_a_tampered_body_is_answered_401_and_stored_as_rejected(client, market_a, fmt):
    connection = fmt.connect(market_a)

    response = deliver(client, connection, [make_transfer(connection, 1)], tamper=tamper_content)

    assert response.status_code == 401
    assert response.json()["success"] is False
    event = last_event()
    assert event.outcome == WebhookEvent.Outcome.REJECTED
    assert event.http_status == 401
    assert event.reason == "bad_signature"
    assert_nothing_created()


@pytest.mark.parametrize("fmt", formats(where=lambda f: not f.signs_body))
def test_a_token_only_format_cannot_see_a_tampered_body_as_its_spec_says(client, market_a, fmt):
    # webhooks.md §3.2 (SePay API key) and §5 (Casso v1): the token does not cover the
    # body. This documents the limitation; prefer HMAC / v2 connections.
    connection = fmt.connect(market_a)

    response = deliver(client, connection, [make_transfer(connection, 1)], tamper=tamper_content)

    assert response.status_code == 200
    assert BankTransaction.objects.get().content.endswith("SAP B34")


@pytest.mark.parametrize("fmt", formats())
def test_a_delivery_signed_with_the_wrong_key_is_answered_401(client, market_a, fmt):
    connection = fmt.connect(market_a)

    response = deliver(client, connection, [make_transfer(connection, 1)], wrong_key=True)

    assert response.status_code == 401
    event = last_event()
    assert event.outcome == WebhookEvent.Outcome.REJECTED
    assert event.reason in ("bad_signature", "bad_token")
    assert response.json()["code"] == event.reason
    assert_nothing_created()


@pytest.mark.parametrize(
    "drift", [timedelta(minutes=-6), timedelta(minutes=6)], ids=["old", "ahead"]
)
@pytest.mark.parametrize("fmt", formats(where=lambda f: f.timestamped))
def test_a_timestamp_more_than_five_minutes_off_is_answered_401_stale(client, market_a, fmt, drift):
    connection = fmt.connect(market_a)

    response = deliver(
        client, connection, [make_transfer(connection, 1)], now=timezone.now() + drift
    )

    assert response.status_code == 401
    assert response.json()["code"] == "stale_timestamp"
    event = last_event()
    assert (event.outcome, event.reason) == (WebhookEvent.Outcome.REJECTED, "stale_timestamp")
    assert_nothing_created()


@pytest.mark.parametrize("fmt", formats(where=lambda f: f.timestamped))
def test_a_timestamp_four_minutes_off_is_still_accepted(client, market_a, fmt):
    connection = fmt.connect(market_a)

    four_minutes_ago = timezone.now() - timedelta(minutes=4)

    response = deliver(client, connection, [make_transfer(connection, 1)], now=four_minutes_ago)

    assert response.status_code == 200


@pytest.mark.parametrize("fmt", formats())
def test_a_delivery_without_its_authentication_header_is_answered_401(client, market_a, fmt):
    connection = fmt.connect(market_a)
    transfers = [make_transfer(connection, 1)]

    if fmt.auth_header is None:
        response = deliver(client, connection, transfers, tamper=without_payos_signature)
    else:
        response = deliver(client, connection, transfers, drop_header=fmt.auth_header)

    assert response.status_code == 401
    event = last_event()
    assert (event.outcome, event.reason) == (WebhookEvent.Outcome.REJECTED, "missing_signature")
    assert_nothing_created()


def test_a_sepay_hmac_delivery_without_its_timestamp_is_answered_401(client, market_a):
    connection = connect(market_a, "sepay", mode="hmac")

    response = deliver(
        client, connection, [make_transfer(connection, 1)], drop_header="X-SePay-Timestamp"
    )

    assert response.status_code == 401
    assert last_event().reason == "missing_timestamp"
    assert_nothing_created()


def test_a_sepay_hmac_connection_refuses_an_api_key_delivery(client, market_a):
    # The connection's configured mode is enforced: the other mode is not a way in.
    connection = connect(market_a, "sepay", mode="hmac")
    body, headers = build(connection, [make_transfer(connection, 1)], mode="apikey")

    response = post(client, connection, body, headers)

    assert response.status_code == 401
    assert_nothing_created()


MALFORMED = b'{"id": 1, "transferAmount": 173000, "content": "SAP A12"'


def _malformed_headers(fmt: Format, connection: BankConnection) -> dict[str, str]:
    now = timezone.now()
    if fmt.provider == "sepay":
        return sepay.sign(MALFORMED, connection.secret, now=now, mode=fmt.options["mode"])
    if fmt.id == "casso-v1":
        return casso.sign(MALFORMED, connection.secret, now=now, version="v1")
    if fmt.id == "casso-v2":
        # v2 signs the parsed body, so a body that is not JSON cannot carry a valid
        # signature at all (casso module docstring): any well-formed header will do.
        millis = int(now.timestamp() * 1000)
        return {
            "Content-Type": "application/json",
            "X-Casso-Signature": f"t={millis},v1={'0' * 128}",
        }
    if fmt.provider == "payos":
        return payos.sign(MALFORMED, connection.secret, now=now)
    return simulator.sign(MALFORMED, connection.secret, now=now)


@pytest.mark.parametrize("fmt", formats())
def test_malformed_json_is_answered_400_and_stored_as_malformed(client, market_a, fmt):
    connection = fmt.connect(market_a)

    response = post(client, connection, MALFORMED, _malformed_headers(fmt, connection))

    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
    event = last_event()
    assert (event.outcome, event.http_status) == (WebhookEvent.Outcome.MALFORMED, 400)
    assert bytes(event.body) == MALFORMED
    assert_nothing_created()


@pytest.mark.parametrize("fmt", formats())
def test_an_unknown_connection_id_is_answered_404_and_nothing_is_stored(client, market_a, fmt):
    connection = fmt.connect(market_a)
    body, headers = build(connection, [make_transfer(connection, 1)])

    response = post(client, connection, body, headers, connection_id="cn" + "0" * 32)

    assert response.status_code == 404
    assert WebhookEvent.objects.count() == 0
    assert_nothing_created()


def test_a_connection_id_under_another_provider_is_answered_404(client, market_a):
    connection = connect(market_a, "sepay", mode="hmac")
    body, headers = build(connection, [make_transfer(connection, 1)])

    for provider in ("casso", "payos", "simulator", "momo"):
        response = post(client, connection, body, headers, provider=provider)
        assert response.status_code == 404, provider

    assert WebhookEvent.objects.count() == 0
    assert_nothing_created()


def test_an_inactive_connection_is_answered_404(client, market_a):
    connection = connect(market_a, "simulator")
    BankConnection.objects.filter(pk=connection.pk).update(active=False)
    body, headers = build(connection, [make_transfer(connection, 1)])

    assert post(client, connection, body, headers).status_code == 404
    assert WebhookEvent.objects.count() == 0


@pytest.mark.parametrize("method", ["get", "put"])
def test_only_post_is_allowed(client, market_a, method):
    connection = connect(market_a, "simulator")

    response = post(client, connection, b"", {}, method=method)

    assert response.status_code == 405
    assert WebhookEvent.objects.count() == 0


# --- redeliveries, batches, outgoing money, provider test calls -------------------------------


@pytest.mark.parametrize("fmt", formats())
def test_a_redelivery_of_the_same_transfer_is_answered_200_as_a_duplicate(client, market_a, fmt):
    connection = fmt.connect(market_a)
    transfer = make_transfer(connection, 5)

    first = deliver(client, connection, [transfer])
    again = deliver(client, connection, [transfer])

    assert (first.status_code, again.status_code) == (200, 200)
    assert BankTransaction.objects.count() == 1
    outcomes = list(WebhookEvent.objects.order_by("pk").values_list("outcome", flat=True))
    assert outcomes == [WebhookEvent.Outcome.ACCEPTED, WebhookEvent.Outcome.DUPLICATE]
    assert last_event().new_transactions == 0
    assert_ledger_consistent()


def test_a_casso_v1_batch_of_three_becomes_three_transactions(client, market_a):
    connection = connect(market_a, "casso", version="v1")
    transfers = [
        make_transfer(connection, n, amount_vnd=100_000 * n, running_balance_vnd=None)
        for n in (1, 2, 3)
    ]

    response = deliver(client, connection, transfers)

    assert response.status_code == 200
    assert sorted(BankTransaction.objects.values_list("amount_vnd", flat=True)) == [
        100_000,
        200_000,
        300_000,
    ]
    event = last_event()
    assert (event.outcome, event.transfer_count, event.new_transactions) == ("accepted", 3, 3)


def test_a_casso_v1_batch_with_one_known_transfer_stores_only_the_new_ones(client, market_a):
    connection = connect(market_a, "casso", version="v1")
    deliver(client, connection, [make_transfer(connection, 1)])

    response = deliver(client, connection, [make_transfer(connection, n) for n in (1, 2, 3)])

    assert response.status_code == 200
    assert BankTransaction.objects.count() == 3
    assert last_event().new_transactions == 2


@pytest.mark.parametrize("fmt", formats(where=lambda f: f.provider != "payos"))
def test_an_outgoing_transfer_is_stored_as_out_and_never_settles_a_demand(
    client, billed_a, market_a, fmt
):
    connection = fmt.connect(market_a)
    demand = FeeDemand.objects.order_by("pk").first()
    transfer = make_transfer(
        connection,
        9,
        direction="out",
        amount_vnd=demand.total_vnd,
        content=f"HOAN TIEN {demand.payment_code}",
    )

    response = deliver(client, connection, [transfer])

    assert response.status_code == 200
    tx = BankTransaction.objects.get()
    assert (tx.direction, tx.status) == ("out", BankTransaction.Status.IGNORED)
    assert tx.allocations.count() == 0
    demand.refresh_from_db()
    assert (demand.status, demand.paid_vnd) == (FeeDemand.Status.OPEN, 0)
    assert_ledger_consistent()


def test_the_payos_test_call_is_answered_200_and_recorded_as_a_test(client, billed_a, market_a):
    connection = connect(market_a, "payos")
    transfer = make_transfer(connection, 1, content=payos.TEST_DESCRIPTION)

    response = deliver(client, connection, [transfer])

    assert response.status_code == 200
    assert last_event().outcome == WebhookEvent.Outcome.TEST
    tx = BankTransaction.objects.get()
    assert tx.is_test is True
    assert tx.status == BankTransaction.Status.IGNORED
    assert tx.allocations.count() == 0
    assert not FeeDemand.objects.exclude(status=FeeDemand.Status.OPEN).exists()


def test_an_unsigned_payos_test_call_is_answered_200_recorded_and_never_processed(client, market_a):
    # Whether payOS signs its confirm-webhook call is not documented (webhooks.md §6.3):
    # answer 2xx so registration succeeds, but trust nothing of it.
    connection = connect(market_a, "payos")
    transfer = make_transfer(connection, 1, content=payos.TEST_DESCRIPTION)

    response = deliver(client, connection, [transfer], tamper=without_payos_signature)

    assert response.status_code == 200
    assert last_event().outcome == WebhookEvent.Outcome.TEST
    assert_nothing_created()


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_the_casso_test_call_with_id_0_is_answered_200_and_settles_nothing(
    client, billed_a, market_a, version
):
    connection = connect(market_a, "casso", version=version)
    demand = FeeDemand.objects.order_by("pk").first()
    transfer = make_transfer(
        connection, 0, amount_vnd=demand.total_vnd, content=demand.payment_code, is_test=True
    )

    response = deliver(client, connection, [transfer])

    assert response.status_code == 200
    assert last_event().outcome == WebhookEvent.Outcome.TEST
    tx = BankTransaction.objects.get()
    assert (tx.is_test, tx.status) == (True, BankTransaction.Status.IGNORED)
    demand.refresh_from_db()
    assert (demand.status, demand.paid_vnd) == (FeeDemand.Status.OPEN, 0)
    assert_ledger_consistent()


# --- running balance: missed webhooks ---------------------------------------------------------


def _sepay_chain(connection, amounts: list[int], *, opening: int = 2_000_000):
    """Consecutive SePay transfers whose ``accumulated`` balances chain correctly."""
    balance = opening
    chain = []
    for n, amount in enumerate(amounts, 1):
        balance += amount
        chain.append(make_transfer(connection, n, amount_vnd=amount, running_balance_vnd=balance))
    return chain


def test_a_skipped_transfer_in_the_running_balance_is_flagged_as_a_gap(client, market_a):
    connection = connect(market_a, "sepay", mode="hmac")
    first, _missed, third = _sepay_chain(connection, [150_000, 200_000, 250_000])

    deliver(client, connection, [first])
    deliver(client, connection, [third])

    connection.refresh_from_db()
    assert connection.balance_gaps == 1
    assert "số dư" in connection.last_gap_note
    assert "thiếu giao dịch" in connection.last_gap_note
    assert "2.600.000" in connection.last_gap_note  # the balance that did not chain


def test_a_consistent_running_balance_chain_has_no_gap(client, market_a):
    connection = connect(market_a, "sepay", mode="hmac")

    for transfer in _sepay_chain(connection, [150_000, 200_000, 250_000, 90_000]):
        assert deliver(client, connection, [transfer]).status_code == 200

    connection.refresh_from_db()
    assert (connection.balance_gaps, connection.last_gap_note) == (0, "")
    assert connection.last_balance_vnd == 2_690_000


def test_an_outgoing_transfer_continues_the_running_balance_chain(client, market_a):
    connection = connect(market_a, "sepay", mode="hmac")
    deliver(client, connection, [make_transfer(connection, 1, running_balance_vnd=1_000_000)])

    out = make_transfer(
        connection, 2, direction="out", amount_vnd=300_000, running_balance_vnd=700_000
    )
    deliver(client, connection, [out])

    connection.refresh_from_db()
    assert (connection.balance_gaps, connection.last_balance_vnd) == (0, 700_000)


def test_a_late_delivery_older_than_the_last_balance_creates_no_gap(client, market_a):
    connection = connect(market_a, "sepay", mode="hmac")
    first, second, third = _sepay_chain(connection, [150_000, 200_000, 250_000])

    for transfer in (second, first, third):  # the first one arrives late
        deliver(client, connection, [transfer])

    connection.refresh_from_db()
    assert connection.balance_gaps == 0
    assert BankTransaction.objects.count() == 3


def test_a_late_delivery_that_fills_a_flagged_gap_leaves_no_gap(client, market_a):
    connection = connect(market_a, "sepay", mode="hmac")
    first, second, third = _sepay_chain(connection, [150_000, 200_000, 250_000])

    for transfer in (first, third, second):  # the second one arrives late, not missed
        deliver(client, connection, [transfer])

    connection.refresh_from_db()
    assert BankTransaction.objects.count() == 3
    assert connection.balance_gaps == 0


def test_two_transfers_in_the_same_second_out_of_order_create_no_gap(client, market_a):
    connection = connect(market_a, "sepay", mode="hmac")
    same_second = BANK_TIME
    a = make_transfer(
        connection, 1, amount_vnd=150_000, running_balance_vnd=2_150_000, bank_time=same_second
    )
    b = make_transfer(
        connection, 2, amount_vnd=200_000, running_balance_vnd=2_350_000, bank_time=same_second
    )
    c = make_transfer(connection, 3, amount_vnd=50_000, running_balance_vnd=2_400_000)

    for transfer in (b, a, c):
        deliver(client, connection, [transfer])

    connection.refresh_from_db()
    assert connection.balance_gaps == 0
    assert connection.last_balance_vnd == 2_400_000


def test_a_provider_test_call_does_not_break_the_running_balance_chain(client, market_a):
    connection = connect(market_a, "casso", version="v2")
    # Casso's "Gọi thử" on registration carries a made-up balance (webhooks.md §4.1).
    test_call = make_transfer(
        connection, 0, amount_vnd=599_000, running_balance_vnd=25_000_000, is_test=True
    )
    deliver(client, connection, [test_call])
    real = [
        make_transfer(connection, 1, amount_vnd=150_000, running_balance_vnd=2_150_000),
        make_transfer(connection, 2, amount_vnd=200_000, running_balance_vnd=2_350_000),
    ]

    for transfer in real:
        deliver(client, connection, [transfer])

    connection.refresh_from_db()
    assert connection.balance_gaps == 0


def test_the_rejection_body_explains_in_vietnamese(client, market_a):
    connection = connect(market_a, "simulator")

    response = deliver(client, connection, [make_transfer(connection, 1)], wrong_key=True)

    body = response.json()
    assert body["success"] is False
    assert "chữ ký" in body["message"].lower()
    assert json.dumps(body, ensure_ascii=False)  # plain JSON, no HTML error page


def test_payos_ignores_the_unsigned_outer_success_flag(client, market_a):
    # webhooks.md §8.2: only ``data`` is signed; a changed outer ``success`` alone must
    # not change the verification result.
    connection = connect(market_a, "payos")
    body, headers = build(connection, [make_transfer(connection, 1)])
    value = json.loads(body)
    value["success"] = False
    tampered = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()

    response = post(client, connection, tampered, headers)

    assert response.status_code == 200
    assert BankTransaction.objects.count() == 1


def test_a_payos_transfer_whose_data_code_is_not_00_is_refused_and_kept(client, market_a):
    connection = connect(market_a, "payos")
    body, _headers = build(connection, [make_transfer(connection, 1)])
    value = json.loads(body)
    value["data"]["code"] = "01"
    value["signature"] = payos.signature_for_data(value["data"], connection.secret)
    raw = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()

    response = post(client, connection, raw, {"Content-Type": "application/json"})

    assert response.status_code == 400
    event = last_event()
    assert (event.outcome, event.reason) == ("malformed", "unsuccessful_transfer")
    assert_nothing_created()


def test_an_oversized_body_is_refused_before_anything_is_stored(client, market_a):
    connection = connect(market_a, "simulator")
    huge = b'{"version":1,"transfers":[],"padding":"' + b"x" * 3_000_000 + b'"}'
    headers = simulator.sign(huge, connection.secret, now=timezone.now())

    response = post(client, connection, huge, headers)

    assert response.status_code in (400, 413)
    assert WebhookEvent.objects.count() == 0
