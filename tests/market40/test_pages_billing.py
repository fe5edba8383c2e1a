"""Running and cancelling billing from the manager pages: POST, message, redirect."""

from datetime import date

import pytest
from django.urls import reverse

from market40.models import BillingRun, FeeDemand
from tests import factories

MAY = date(2026, 5, 1)


@pytest.fixture
def leased_a(market_a, tariffs_a):
    for i in range(1, 4):
        factories.make_lease(factories.make_stall(market_a, f"A{i:03d}"))
    return market_a


def run_billing(client, period):
    return client.post(reverse("run-billing", args=["CHOA"]), {"period": period}, follow=True)


def cancel(client, run):
    return client.post(reverse("cancel-run", args=["CHOA", run.pk]), follow=True)


def test_running_billing_through_the_page_creates_the_demands(manager_a_client, leased_a):
    response = run_billing(manager_a_client, "2026-05")
    assert response.redirect_chain == [
        (reverse("market-overview", args=["CHOA"]) + "?period=2026-05", 302)
    ]
    assert FeeDemand.objects.filter(period=MAY).count() == 3
    assert "Đã lập 3 phiếu báo phí, tổng 2.265.000 đ" in response.content.decode()
    run = BillingRun.objects.get()
    assert run.created_by.username == "manager_a"


def test_a_second_run_of_the_same_period_says_nothing_changed(manager_a_client, leased_a):
    run_billing(manager_a_client, "2026-05")
    response = run_billing(manager_a_client, "2026-05")
    assert "Kỳ 05/2026 đã được lập phí trước đó; không có gì thay đổi" in response.content.decode()
    assert FeeDemand.objects.count() == 3
    assert BillingRun.objects.count() == 1


def test_a_period_with_nothing_to_bill_says_so(manager_a_client, market_a):
    response = run_billing(manager_a_client, "2026-05")
    assert "không có gì thay đổi" in response.content.decode()
    assert BillingRun.objects.count() == 0


@pytest.mark.parametrize("bad", ["2026-13", "05/2026", "", "1999-01"])
def test_a_bad_period_is_refused_in_vietnamese_and_nothing_is_written(
    manager_a_client, leased_a, bad
):
    response = run_billing(manager_a_client, bad)
    assert response.status_code == 400
    assert "Kỳ “" in response.content.decode()
    assert FeeDemand.objects.count() == 0
    assert BillingRun.objects.count() == 0


def test_the_billing_form_suggests_the_current_month_until_it_is_billed(manager_a_client, leased_a):
    from market40.views import current_period, next_period

    url = reverse("run-billing", args=["CHOA"])
    this_month = current_period()
    assert manager_a_client.get(url).context["period_value"] == f"{this_month:%Y-%m}"
    run_billing(manager_a_client, f"{this_month:%Y-%m}")
    suggested = manager_a_client.get(url).context["period_value"]
    assert suggested == f"{next_period(this_month):%Y-%m}"


def test_a_manager_sees_the_billing_and_cancel_buttons(manager_a_client, billed_a):
    html = manager_a_client.get(
        reverse("market-overview", args=["CHOA"]), {"period": "2026-05"}
    ).content.decode()
    assert reverse("cancel-run", args=["CHOA", billed_a.run.pk]) in html
    assert reverse("run-billing", args=["CHOA"]) in html


def test_an_accountant_reads_the_pages_without_any_button(accountant_a_client, billed_a):
    overview = accountant_a_client.get(
        reverse("market-overview", args=["CHOA"]), {"period": "2026-05"}
    )
    assert overview.status_code == 200
    html = overview.content.decode()
    assert "2.265.000 đ" in html
    assert reverse("cancel-run", args=["CHOA", billed_a.run.pk]) not in html
    assert reverse("run-billing", args=["CHOA"]) not in html
    form = accountant_a_client.get(reverse("run-billing", args=["CHOA"]))
    assert form.status_code == 200
    assert "<button" not in form.content.decode().split("<main>")[1]


def test_an_accountant_gets_403_when_posting_billing(accountant_a_client, leased_a):
    response = accountant_a_client.post(
        reverse("run-billing", args=["CHOA"]), {"period": "2026-05"}
    )
    assert response.status_code == 403
    assert FeeDemand.objects.count() == 0


def test_an_accountant_gets_403_when_cancelling_a_run(accountant_a_client, billed_a):
    response = accountant_a_client.post(reverse("cancel-run", args=["CHOA", billed_a.run.pk]))
    assert response.status_code == 403
    assert BillingRun.objects.get().status == "completed"
    assert not FeeDemand.objects.filter(status="cancelled").exists()


def test_cancel_needs_a_post(manager_a_client, billed_a):
    response = manager_a_client.get(reverse("cancel-run", args=["CHOA", billed_a.run.pk]))
    assert response.status_code == 405
    assert BillingRun.objects.get().status == "completed"


def test_a_manager_cancels_a_run_without_payments(manager_a_client, billed_a):
    response = cancel(manager_a_client, billed_a.run)
    assert response.redirect_chain[-1][0].endswith("?period=2026-05")
    assert "Đã hủy đợt lập phí kỳ 05/2026 (3 phiếu báo phí)." in response.content.decode()
    assert BillingRun.objects.get().status == "cancelled"
    assert FeeDemand.objects.filter(status="cancelled").count() == 3
    assert response.context["figures"]["billed_vnd"] == 0


def test_a_run_with_a_payment_cannot_be_cancelled_and_nothing_changes(manager_a_client, billed_a):
    paid = FeeDemand.objects.order_by("id").first()
    FeeDemand.objects.filter(pk=paid.pk).update(paid_vnd=100_000, status="partial")
    response = cancel(manager_a_client, billed_a.run)
    assert "Không thể hủy đợt lập phí: 1 phiếu đã nhận thanh toán." in response.content.decode()
    assert BillingRun.objects.get().status == "completed"
    assert sorted(FeeDemand.objects.values_list("status", flat=True)) == [
        "open",
        "open",
        "partial",
    ]


def test_cancelling_twice_is_refused_with_a_message(manager_a_client, billed_a):
    cancel(manager_a_client, billed_a.run)
    response = cancel(manager_a_client, billed_a.run)
    assert "Đợt lập phí này đã bị hủy trước đó." in response.content.decode()


def test_a_platform_admin_may_run_billing(admin_client_, leased_a):
    response = run_billing(admin_client_, "2026-05")
    assert "Đã lập 3 phiếu báo phí" in response.content.decode()
