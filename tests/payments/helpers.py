"""Real signed deliveries through the real webhook endpoint, and ledger checks.

Every delivery is built by the provider module's own ``build_delivery`` (or ``sign``)
with the connection's real secret, i.e. by the code the bank simulator uses, and is
POSTed to ``/webhooks/<provider>/<connection-id>/`` with Django's test client.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from market40.models import FeeDemand, Market
from payments.models import Allocation, BankConnection, BankTransaction, WebhookEvent
from payments.providers import PROVIDERS, payos
from payments.providers.base import VN_TZ, Transfer
from payments.services import connection_create

SECRET = "whsec_market40_endpoint_tests"
WRONG_SECRET = "whsec_not_the_connection_secret"
REMOTE_ADDR = "203.0.113.10"
# A fixed bank time (Vietnam local, whole seconds, as every format carries it).
BANK_TIME = datetime(2026, 5, 10, 9, 30, 0, tzinfo=VN_TZ)
# Headers that carry the credential itself (SePay API key, Casso v1 token).
CREDENTIAL_HEADERS = frozenset({"authorization", "secure-token"})


def connect(market: Market, provider: str, *, secret: str = SECRET, **options: Any):
    """A connection of ``market`` with a known secret (``options`` as stored)."""
    connection, _secret, _generated = connection_create(
        market=market, provider=provider, secret=secret, options=options
    )
    return connection


def build_options(connection: BankConnection) -> dict[str, Any]:
    """``build_delivery`` keyword arguments matching the connection's configuration."""
    options = connection.options or {}
    if connection.provider == "sepay":
        return {"mode": options.get("mode", "hmac")}
    if connection.provider == "casso":
        return {"version": options.get("version", "v2")}
    return {}


def make_transfer(
    connection: BankConnection,
    number: int,
    *,
    amount_vnd: int = 173_000,
    content: str = "TIEN PHI THANG 05 SAP A12",
    direction: str = "in",
    bank_time: datetime | None = None,
    running_balance_vnd: int | None = None,
    **fields: Any,
) -> Transfer:
    """A transfer the connection's provider can carry, with a provider-shaped id.

    ``number`` makes the id: SePay and Casso ids are integers, payOS ids are
    ``<paymentLinkId>:<reference>`` with the orderCode as ``provider_code``.
    """
    values: dict[str, Any] = dict(
        provider_transaction_id=str(number),
        direction=direction,
        amount_vnd=amount_vnd,
        content=content,
        bank_time=bank_time or BANK_TIME + timedelta(minutes=number),
        bank_reference=f"FT26130{number:09d}",
        counter_account="0123456789",
        counter_name="NGUYEN VAN A",
        counter_bank="VietinBank",
        account_number=connection.account.account_number,
        running_balance_vnd=running_balance_vnd,
    )
    if connection.provider == "payos":
        reference = f"FT26130{number:09d}"
        values.update(
            provider_transaction_id=f"{number:032x}:{reference}",
            bank_reference=reference,
            provider_code=str(100_000 + number),
            running_balance_vnd=None,
            is_test=content == payos.TEST_DESCRIPTION,
        )
    elif connection.provider == "simulator":
        values["provider_transaction_id"] = f"SIM-{number:06d}"
    values.update(fields)
    return Transfer(**values)


def build(
    connection: BankConnection,
    transfers: Iterable[Transfer],
    *,
    now: datetime | None = None,
    wrong_key: bool = False,
    **options: Any,
) -> tuple[bytes, dict[str, str]]:
    module = PROVIDERS[connection.provider]
    secret = WRONG_SECRET if wrong_key else connection.secret
    return module.build_delivery(
        list(transfers),
        secret,
        now=now or timezone.now(),
        **{**build_options(connection), **options},
    )


def post(
    client: Client,
    connection: BankConnection,
    body: bytes,
    headers: Mapping[str, str],
    *,
    provider: str | None = None,
    connection_id: str | None = None,
    remote_addr: str = REMOTE_ADDR,
    method: str = "post",
):
    """POST raw bytes with the provider's headers, as test-client META entries."""
    path = f"/webhooks/{provider or connection.provider}/{connection_id or connection.id}/"
    content_type = "application/json"
    meta: dict[str, str] = {"REMOTE_ADDR": remote_addr}
    for name, value in headers.items():
        if name.lower() == "content-type":
            content_type = value
        else:
            meta["HTTP_" + name.upper().replace("-", "_")] = value
    return getattr(client, method)(path, data=body, content_type=content_type, **meta)


def deliver(
    client: Client,
    connection: BankConnection,
    transfers: Iterable[Transfer],
    *,
    now: datetime | None = None,
    tamper: Callable[[bytes], bytes] | None = None,
    wrong_key: bool = False,
    drop_header: str | None = None,
    **post_options: Any,
):
    """Build a real signed delivery of ``transfers`` and POST it to the endpoint.

    ``tamper`` rewrites the body after signing; ``wrong_key`` signs with another
    secret; ``drop_header`` removes one header (case-insensitive) before sending.
    """
    body, headers = build(connection, transfers, now=now, wrong_key=wrong_key)
    if tamper is not None:
        body = tamper(body)
    if drop_header is not None:
        headers = {k: v for k, v in headers.items() if k.lower() != drop_header.lower()}
    return post(client, connection, body, headers, **post_options)


def without_payos_signature(body: bytes) -> bytes:
    """payOS carries its signature in the body: its "missing header" is this."""
    value = json.loads(body)
    value.pop("signature")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def last_event() -> WebhookEvent:
    return WebhookEvent.objects.order_by("-pk").first()


def header(event: WebhookEvent, name: str) -> str | None:
    """A stored header by case-insensitive name."""
    for key, value in event.headers.items():
        if key.lower() == name.lower():
            return value
    return None


def assert_ledger_consistent() -> None:
    """The matching invariants, for every transaction and demand in the database.

    allocated + credit + unmatched = amount (the caches equal their allocation rows),
    and a demand's ``paid_vnd`` equals the sum of its allocations.
    """
    for tx in BankTransaction.objects.all():
        sums = dict(
            Allocation.objects.filter(transaction=tx)
            .values_list("kind")
            .annotate(s=Sum("amount_vnd"))
        )
        demand_sum = sums.get(Allocation.Kind.DEMAND, 0) or 0
        credit_sum = sums.get(Allocation.Kind.CREDIT, 0) or 0
        assert tx.allocated_vnd == demand_sum, tx
        assert tx.credit_vnd == credit_sum, tx
        if tx.status == BankTransaction.Status.IGNORED:
            assert demand_sum == credit_sum == 0, tx
            continue
        unmatched = tx.amount_vnd - tx.allocated_vnd - tx.credit_vnd
        assert unmatched >= 0, tx
        assert tx.allocated_vnd + tx.credit_vnd + tx.unmatched_vnd == tx.amount_vnd, tx
        expected_status = (
            BankTransaction.Status.UNMATCHED
            if unmatched == tx.amount_vnd
            else BankTransaction.Status.MATCHED
            if unmatched == 0
            else BankTransaction.Status.PARTLY
        )
        assert tx.status == expected_status, (tx, tx.status)
    for demand in FeeDemand.objects.all():
        paid = (
            Allocation.objects.filter(demand=demand, kind=Allocation.Kind.DEMAND).aggregate(
                s=Sum("amount_vnd")
            )["s"]
            or 0
        )
        assert demand.paid_vnd == paid, demand
