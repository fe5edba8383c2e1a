"""The simulator retries like SePay (webhooks.md §3.3): any 5xx, refused connection or
other non-2xx answer to a genuine delivery is sent again after 1, 1, 2, 3, 5, 8 and 13
units of backoff, 8 attempts at most; forged deliveries are never retried."""

from __future__ import annotations

import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from payments.models import BankTransaction, WebhookEvent
from payments.simulator import (
    MAX_ATTEMPTS,
    HttpTransport,
    InProcessTransport,
    PlannedDelivery,
    SimulationOptions,
    deliver,
    parse_faults,
    retry_delays_ms,
    simulation_run,
)
from tests.payments.test_simulator import (
    FAST,
    PERIOD,
    assert_ledger_matches,
    connect,
    demo_market,  # noqa: F401  (fixture)
    snapshot,
)

BACKOFF_MS = 20


class FailingEndpoint:
    """A real loopback HTTP endpoint that answers ``failures`` with their status codes
    (one per request, in order), then 200 ``{"success": true}``."""

    def __init__(self, failures: list[int]):
        endpoint = self
        self.failures = list(failures)
        self.requests: list[tuple[str, bytes, dict[str, str]]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                endpoint.requests.append((self.path, body, dict(self.headers)))
                status = endpoint.failures.pop(0) if endpoint.failures else 200
                payload = b'{"success": true}' if status == 200 else b'{"success": false}'
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def failing_endpoint():
    endpoints: list[FailingEndpoint] = []

    def make(failures: list[int]) -> FailingEndpoint:
        endpoints.append(FailingEndpoint(failures))
        return endpoints[-1]

    yield make
    for endpoint in endpoints:
        endpoint.close()


def one_delivery(kind: str = "original") -> PlannedDelivery:
    return PlannedDelivery(number=1, transfers=[0], kind=kind, variant={})


def send(delivery: PlannedDelivery, transport, backoff_ms: int = BACKOFF_MS) -> None:
    deliver(
        [delivery],
        sign=lambda d: (b'{"id": 1}', {"Content-Type": "application/json"}),
        transport=transport,
        path="/webhooks/sepay/cnx/",
        backoff_ms=backoff_ms,
    )


def test_the_retry_schedule_is_sepays_fibonacci_in_units_of_the_backoff():
    assert retry_delays_ms(60_000) == [
        m * 60_000 for m in (1, 1, 2, 3, 5, 8, 13)
    ]  # minutes, as SePay
    assert retry_delays_ms(1000) == [1000, 1000, 2000, 3000, 5000, 8000, 13000]
    assert MAX_ATTEMPTS == 8


def test_an_endpoint_failing_three_times_with_503_is_retried_on_schedule_and_accepted(
    failing_endpoint,
):
    endpoint = failing_endpoint([503, 503, 503])
    delivery = one_delivery()
    send(delivery, HttpTransport(endpoint.url))

    assert [a["status"] for a in delivery.attempts] == [503, 503, 503, 200]
    assert delivery.outcome == "delivered"
    assert len(endpoint.requests) == 4
    planned = [a["planned_delay_ms"] for a in delivery.attempts]
    assert planned == [0, *retry_delays_ms(BACKOFF_MS)[:3]]  # 0, 1, 1, 2 units
    # Each retry went out no sooner than its planned wait after the failed attempt.
    times = [a["at_ms"] for a in delivery.attempts]
    for before, after, wait in zip(times[:-1], times[1:], planned[1:], strict=True):
        assert after - before >= wait - 1
    assert all(path == "/webhooks/sepay/cnx/" for path, _b, _h in endpoint.requests)


def test_a_delivery_is_given_up_after_eight_attempts(failing_endpoint):
    endpoint = failing_endpoint([500] * 20)
    delivery = one_delivery()
    send(delivery, HttpTransport(endpoint.url), backoff_ms=2)
    assert len(delivery.attempts) == MAX_ATTEMPTS == len(endpoint.requests)
    assert delivery.outcome == "failed"
    assert [a["planned_delay_ms"] for a in delivery.attempts] == [0, *retry_delays_ms(2)]


def test_a_refused_connection_is_retried_like_a_5xx(failing_endpoint):
    endpoint = failing_endpoint([])
    url = endpoint.url
    endpoint.close()  # nothing listens there any more
    delivery = one_delivery()
    send(delivery, HttpTransport(url), backoff_ms=1)
    assert [a["status"] for a in delivery.attempts] == [None] * MAX_ATTEMPTS
    assert all("Connection" in a["error"] or "refused" in a["error"] for a in delivery.attempts)
    assert delivery.outcome == "failed"


def test_a_forged_delivery_is_sent_once_whatever_the_answer(failing_endpoint):
    endpoint = failing_endpoint([401, 401])
    delivery = one_delivery(kind="forged")
    send(delivery, HttpTransport(endpoint.url))
    assert [a["status"] for a in delivery.attempts] == [401]
    assert delivery.outcome == "rejected"


class FlakyFront:
    """The real endpoint in-process, behind a front that answers 503 to the first
    ``failures`` attempts of the first delivery it sees."""

    label = "flaky-in-process"

    def __init__(self, failures: int):
        self.failures = failures
        self.first_body: bytes | None = None
        self.inner = InProcessTransport()
        self.signatures: list[str] = []

    def post(self, path, body, headers):
        self.first_body = self.first_body or body
        if body == self.first_body:
            self.signatures.append(headers["X-SePay-Signature"])
            if self.failures:
                self.failures -= 1
                return 503, b"Service Unavailable"
        return self.inner.post(path, body, headers)

    def close(self) -> None:
        pass


def test_retries_reach_the_real_endpoint_re_signed_and_the_transfer_is_stored_once(
    demo_market,  # noqa: F811
):
    connection = connect(demo_market, "sepay", mode="hmac")
    front = FlakyFront(3)
    ledger = simulation_run(
        connection=connection,
        period=PERIOD,
        options=SimulationOptions(seed=1, share_paid=0.1, faults=frozenset(), **FAST),
        transport=front,
    ).as_json()
    first = ledger["deliveries"][0]
    assert [a["status"] for a in first["attempts"]] == [503, 503, 503, 200]
    assert [a["planned_delay_ms"] for a in first["attempts"]] == [0, 2, 2, 4]
    assert ledger["summary"]["5xx"] == 3 and ledger["summary"]["retried"] == 3
    # Each attempt was signed anew (same body, fresh timestamp), as a provider's retry.
    assert len(front.signatures) == 4
    # Only the fourth attempt reached the service: one event, one transaction.
    ptid = first["provider_transaction_ids"][0]
    assert BankTransaction.objects.filter(provider_transaction_id=ptid).count() == 1
    assert WebhookEvent.objects.filter(connection=connection).count() == len(ledger["deliveries"])


def test_the_server_error_fault_goes_through_a_real_503_gateway_and_loses_nothing(
    demo_market,  # noqa: F811
):
    connection = connect(demo_market, "casso", version="v2")
    ledger = simulation_run(
        connection=connection,
        period=PERIOD,
        options=SimulationOptions(seed=8, faults=parse_faults("server_error"), **FAST),
    ).as_json()
    flaky = [d for d in ledger["deliveries"] if d["gateway_failures"]]
    assert flaky[0]["gateway_failures"] == ["503", "502", "refused"]
    assert [a["status"] for a in flaky[0]["attempts"]] == [503, 502, None, 200]
    assert all(d["outcome"] == "delivered" for d in ledger["deliveries"])
    assert_ledger_matches(ledger, snapshot(connection.pk))


def test_period_and_connection_are_what_the_ledger_names(demo_market):  # noqa: F811
    connection = connect(demo_market, "payos")
    ledger = simulation_run(
        connection=connection,
        period=PERIOD,
        options=SimulationOptions(seed=1, share_paid=0.2, **FAST),
    ).as_json()
    assert ledger["period"] == f"{PERIOD:%Y-%m}" == "2026-05"
    assert ledger["connection"] == connection.pk and ledger["provider"] == "payos"
    assert ledger["target"] == "in-process"
    assert date.fromisoformat(ledger["transfers"][0]["bank_time"][:10]).month == 5
