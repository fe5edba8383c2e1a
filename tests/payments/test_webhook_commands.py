"""The operators' side of bank connections: add_connection, seed_demo's connections,
reprocess_webhooks, and the admin, which never shows a connection's secret."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from market40.models import FeeDemand, Market, ReceivingAccount
from payments.models import Allocation, BankConnection, BankTransaction, WebhookEvent
from tests.payments.helpers import (
    SECRET,
    assert_ledger_consistent,
    connect,
    deliver,
    last_event,
    make_transfer,
)


def run(*args, **options):
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


# --- add_connection -------------------------------------------------------------------------


def test_add_connection_prints_the_id_the_webhook_path_and_a_generated_secret(market_a):
    out, _ = run("add_connection", "choa", "sepay", "--mode", "hmac")

    connection = BankConnection.objects.get()
    assert (connection.market, connection.provider) == (market_a, "sepay")
    assert connection.options == {"mode": "hmac"}
    assert connection.account == market_a.default_account
    assert f"id: {connection.id}" in out
    assert f"webhook: /webhooks/sepay/{connection.id}/" in out
    printed = re.search(r"secret: (\S+)", out).group(1)
    assert printed == connection.secret
    assert len(printed) >= 32
    assert "chỉ hiện một lần" in out


def test_add_connection_with_a_given_secret_never_prints_it(market_a):
    out, err = run("add_connection", "CHOA", "casso", "--secret", "khoa-bi-mat-casso-123")

    connection = BankConnection.objects.get()
    assert connection.secret == "khoa-bi-mat-casso-123"
    assert "khoa-bi-mat-casso-123" not in out + err
    assert "secret:" not in out
    assert f"webhook: {connection.webhook_path}" in out


def test_add_connection_stores_the_secret_encrypted(market_a):
    run("add_connection", "CHOA", "payos", "--secret", "checksum-key-payos-0001")

    connection = BankConnection.objects.get()
    stored = BankConnection.objects.filter(pk=connection.pk).values_list(
        "secret_encrypted", flat=True
    )[0]
    assert stored != "checksum-key-payos-0001"
    assert "checksum-key-payos-0001" not in stored
    assert BankConnection.objects.get(pk=connection.pk).secret == "checksum-key-payos-0001"


def test_add_connection_picks_the_account_given_as_bin_and_number(market_a):
    second = ReceivingAccount.objects.create(
        market=market_a, bank_id="970415", account_number="1020304050", account_name="BQL CHO A"
    )

    run("add_connection", "CHOA", "simulator", "--account", "970415:1020304050")

    assert BankConnection.objects.get().account == second


def test_add_connection_refuses_an_unknown_market_in_vietnamese(market_a):
    with pytest.raises(CommandError, match="Không tìm thấy chợ có mã “NOPE”"):
        run("add_connection", "NOPE", "sepay")
    assert not BankConnection.objects.exists()


def test_add_connection_refuses_an_account_of_the_market_it_does_not_have(market_a, market_b):
    with pytest.raises(CommandError, match="không có tài khoản 970436:999"):
        run("add_connection", "CHOA", "sepay", "--account", "970436:999")
    # Another market's account is not this market's either.
    ReceivingAccount.objects.create(
        market=market_b, bank_id="970418", account_number="5566778899", account_name="BQL CHO B"
    )
    with pytest.raises(CommandError, match="không có tài khoản"):
        run("add_connection", "CHOA", "sepay", "--account", "970418:5566778899")
    assert not BankConnection.objects.exists()


def test_add_connection_refuses_a_secret_shorter_than_8_characters_in_vietnamese(market_a):
    with pytest.raises(CommandError, match="ít nhất 8 ký tự"):
        run("add_connection", "CHOA", "sepay", "--secret", "short")
    assert not BankConnection.objects.exists()


def test_add_connection_refuses_an_unknown_provider_in_vietnamese(market_a):
    with pytest.raises(CommandError) as error:
        run("add_connection", "CHOA", "momo")

    assert "Nhà cung cấp" in str(error.value)
    assert not BankConnection.objects.exists()


def test_add_connection_refuses_an_unknown_provider(market_a):
    with pytest.raises(CommandError, match="momo"):
        run("add_connection", "CHOA", "momo")
    assert not BankConnection.objects.exists()


def test_a_connection_made_by_the_command_receives_real_deliveries(client, market_a):
    out, _ = run("add_connection", "CHOA", "sepay", "--mode", "hmac")
    connection = BankConnection.objects.get()
    assert connection.secret in out

    response = deliver(client, connection, [make_transfer(connection, 1)])

    assert response.status_code == 200
    assert BankTransaction.objects.count() == 1


# --- seed_demo --------------------------------------------------------------------------------


def test_seed_demo_creates_one_connection_per_provider_and_prints_url_and_secret(db):
    out, _ = run("seed_demo", "--stalls", "3", "--market", "DEMO")

    market = Market.objects.get(code="DEMO")
    connections = list(BankConnection.objects.filter(market=market))
    assert sorted(c.provider for c in connections) == ["casso", "payos", "sepay", "simulator"]
    for connection in connections:
        url = f"{settings.PUBLIC_BASE_URL}{connection.webhook_path}"
        line = next(line for line in out.splitlines() if url in line)
        assert f"secret: {connection.secret}" in line
        assert connection.account == market.default_account
    options = {c.provider: c.options for c in connections}
    assert options["sepay"] == {"mode": "hmac"}
    assert options["casso"] == {"version": "v2"}


def test_the_demo_connections_accept_deliveries_signed_with_the_printed_secret(client, db):
    run("seed_demo", "--stalls", "3", "--market", "DEMO")

    for connection in BankConnection.objects.all():
        response = deliver(client, connection, [make_transfer(connection, 11)])
        assert response.status_code == 200, connection.provider

    assert BankTransaction.objects.count() == 4


# --- reprocess_webhooks selections ---------------------------------------------------------------


def test_reprocess_webhooks_never_replays_rejected_or_malformed_events(client, market_a):
    connection = connect(market_a, "simulator")
    deliver(client, connection, [make_transfer(connection, 1)], wrong_key=True)
    rejected = last_event()

    out, _ = run("reprocess_webhooks", "--ids", str(rejected.pk))

    assert "Đã xử lý lại 0 lần gọi" in out
    assert BankTransaction.objects.count() == 0
    rejected.refresh_from_db()
    assert rejected.attempts == 0


def test_reprocess_webhooks_by_id_is_idempotent_on_a_processed_event(client, billed_a, market_a):
    connection = connect(market_a, "simulator")
    demand = FeeDemand.objects.order_by("pk").first()
    overpaid = make_transfer(
        connection, 1, amount_vnd=demand.total_vnd + 5_000, content=demand.payment_code
    )
    deliver(client, connection, [overpaid])
    event = last_event()
    before = list(Allocation.objects.values_list("id", "amount_vnd"))

    for _ in range(2):
        out, _ = run("reprocess_webhooks", "--ids", str(event.pk))
        assert "0 giao dịch được đối soát" in out

    assert list(Allocation.objects.values_list("id", "amount_vnd")) == before
    assert len(before) == 2  # the demand, and the 5 000 đồng credit
    assert_ledger_consistent()


# --- admin: secrets are write-only ----------------------------------------------------------------


def test_the_connection_admin_pages_never_display_the_secret(admin_client_, market_a):
    connection = connect(market_a, "sepay", mode="hmac")
    base = "/admin/payments/bankconnection/"

    for path in (base, f"{base}{connection.pk}/change/", f"{base}add/"):
        response = admin_client_.get(path)
        assert response.status_code == 200, path
        html = response.content.decode()
        assert SECRET not in html, path
        assert connection.secret_encrypted not in html, path


def test_changing_a_connection_in_the_admin_keeps_the_secret_unless_a_new_one_is_typed(
    admin_client_, market_a
):
    connection = connect(market_a, "simulator")
    path = f"/admin/payments/bankconnection/{connection.pk}/change/"
    form = {
        "market": market_a.pk,
        "account": connection.account_id,
        "provider": "simulator",
        "options": "{}",
        "active": "on",
        "new_secret": "",
    }

    assert admin_client_.post(path, form).status_code == 302
    assert BankConnection.objects.get().secret == SECRET

    # A form error re-renders the page: the typed secret is not echoed back.
    response = admin_client_.post(
        path, {**form, "options": "{not json", "new_secret": "khoa-moi-khong-hien-lai"}
    )
    assert response.status_code == 200
    assert "khoa-moi-khong-hien-lai" not in response.content.decode()
    assert BankConnection.objects.get().secret == SECRET

    assert admin_client_.post(path, {**form, "new_secret": "khoa-moi-0002"}).status_code == 302
    assert BankConnection.objects.get().secret == "khoa-moi-0002"


@pytest.mark.parametrize(
    ("provider", "options"),
    [("sepay", {"mode": "apikey"}), ("casso", {"version": "v1"})],
    ids=["sepay-apikey", "casso-v1"],
)
def test_the_webhook_event_admin_never_displays_a_token_secret(
    client, admin_client_, market_a, provider, options
):
    connection = connect(market_a, provider, **options)
    deliver(client, connection, [make_transfer(connection, 1)])
    event = WebhookEvent.objects.get()

    html = admin_client_.get(f"/admin/payments/webhookevent/{event.pk}/change/").content.decode()

    assert SECRET not in html
