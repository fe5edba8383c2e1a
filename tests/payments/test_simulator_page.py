"""The demo's simulator page: a manager pays an open demand with one click, through the
signed webhook path; accountants get 403, other markets 404, and without
``BANK_SIMULATOR_ENABLED`` the page does not exist."""

from __future__ import annotations

from datetime import date

import pytest
from django.urls import reverse

from market40.models import FeeDemand
from payments.models import BankTransaction, WebhookEvent
from payments.services import connection_create

MAY = date(2026, 5, 1)


@pytest.fixture(autouse=True)
def simulator_on(settings):
    settings.BANK_SIMULATOR_ENABLED = True


@pytest.fixture
def simulator_a(market_a):
    return connection_create(market=market_a, provider="simulator")[0]


def page(market_code: str = "CHOA") -> str:
    return reverse("bank-simulator", args=[market_code])


def pay(demand: FeeDemand) -> str:
    return reverse("bank-simulator-pay", args=[demand.market.code, demand.pk])


def test_the_page_lists_the_open_demands_of_the_period_with_a_pay_button(
    manager_a_client, billed_a, simulator_a
):
    response = manager_a_client.get(page(), {"period": "2026-05"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Ngân hàng mô phỏng" in html
    for demand in FeeDemand.objects.filter(market__code="CHOA"):
        assert demand.payment_code in html
        assert pay(demand) in html
    assert html.count("Thanh toán thử") >= 3


def test_one_click_pays_the_demand_through_a_signed_webhook(
    manager_a_client, billed_a, simulator_a
):
    demand = FeeDemand.objects.filter(market__code="CHOA").order_by("id").first()
    response = manager_a_client.post(pay(demand), follow=True)

    assert response.redirect_chain[-1][0] == f"{page()}?period=2026-05"
    demand.refresh_from_db()
    assert demand.status == FeeDemand.Status.PAID
    assert demand.paid_vnd == demand.total_vnd
    event = WebhookEvent.objects.get(connection=simulator_a)
    assert event.outcome == WebhookEvent.Outcome.ACCEPTED and event.http_status == 200
    assert event.verify_scheme == "market40-v1"  # verified with the connection's secret
    tx = BankTransaction.objects.get(connection=simulator_a)
    assert tx.amount_vnd == demand.total_vnd and demand.payment_code in tx.content
    assert list(tx.allocations.values_list("demand_id", "amount_vnd")) == [
        (demand.pk, demand.total_vnd)
    ]
    html = response.content.decode()
    assert "đã thanh toán" in html and demand.payment_code in html
    # The paid demand is no longer offered.
    assert pay(demand) not in html


def test_a_demand_already_paid_is_not_paid_twice(manager_a_client, billed_a, simulator_a):
    demand = FeeDemand.objects.filter(market__code="CHOA").order_by("id").first()
    manager_a_client.post(pay(demand))
    response = manager_a_client.post(pay(demand), follow=True)
    assert "không còn tiền phải thu" in response.content.decode()
    assert BankTransaction.objects.filter(connection=simulator_a).count() == 1


def test_a_platform_admin_may_pay_too(admin_client_, billed_a, simulator_a):
    demand = FeeDemand.objects.filter(market__code="CHOA").order_by("id").last()
    assert admin_client_.post(pay(demand)).status_code == 302
    demand.refresh_from_db()
    assert demand.status == FeeDemand.Status.PAID


def test_without_a_simulator_connection_the_manager_is_told_how_to_make_one(
    manager_a_client, billed_a
):
    demand = FeeDemand.objects.filter(market__code="CHOA").first()
    response = manager_a_client.post(pay(demand), follow=True)
    assert "add_connection CHOA simulator" in response.content.decode()
    demand.refresh_from_db()
    assert demand.status == FeeDemand.Status.OPEN


def test_an_accountant_of_the_market_gets_403_and_pays_nothing(
    accountant_a_client, billed_a, simulator_a
):
    demand = FeeDemand.objects.filter(market__code="CHOA").first()
    assert accountant_a_client.get(page()).status_code == 403
    assert accountant_a_client.post(pay(demand)).status_code == 403
    demand.refresh_from_db()
    assert demand.status == FeeDemand.Status.OPEN
    assert not WebhookEvent.objects.exists()


def test_a_manager_of_another_market_gets_404(manager_b_client, billed_a, simulator_a):
    demand = FeeDemand.objects.filter(market__code="CHOA").first()
    assert manager_b_client.get(page("CHOA")).status_code == 404
    assert manager_b_client.post(pay(demand)).status_code == 404
    # Nor through their own market's URL with a demand of market A.
    url = reverse("bank-simulator-pay", args=["CHOB", demand.pk])
    assert manager_b_client.post(url).status_code == 404
    demand.refresh_from_db()
    assert demand.status == FeeDemand.Status.OPEN


def test_an_anonymous_visitor_is_sent_to_log_in(client, billed_a, simulator_a):
    response = client.get(page())
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_paying_needs_a_post(manager_a_client, billed_a, simulator_a):
    demand = FeeDemand.objects.filter(market__code="CHOA").first()
    assert manager_a_client.get(pay(demand)).status_code == 405


def test_the_page_does_not_exist_unless_the_simulator_is_enabled(
    settings, manager_a_client, billed_a, simulator_a
):
    settings.BANK_SIMULATOR_ENABLED = False
    demand = FeeDemand.objects.filter(market__code="CHOA").first()
    assert manager_a_client.get(page()).status_code == 404
    assert manager_a_client.post(pay(demand)).status_code == 404
