"""Billing a period over the API, cancelling a run, and reading the demands it made."""

from datetime import date

import pytest

from market40.models import BillingRun, FeeDemand
from market40.services import billing_run_create
from tests import factories

MAY = date(2026, 5, 1)
# Each stall: 6 m² × 120.000 đ rent + 20.000 đ sanitation + 15.000 đ security.
PER_STALL = 6 * 120_000 + 20_000 + 15_000


def run_billing(client, period="2026-05", market="CHOA"):
    url = f"/api/v1/markets/{market}/billing-runs"
    return client.post(url, {"period": period}, content_type="application/json")


@pytest.fixture
def leased_a(market_a, tariffs_a):
    """Three stalls of market A, each leased since January."""
    stalls = [factories.make_stall(market_a, f"A{i:03d}") for i in range(1, 4)]
    return [factories.make_lease(stall) for stall in stalls]


def test_a_billing_run_bills_every_active_lease_and_says_how_much(manager_a_client, leased_a):
    response = run_billing(manager_a_client)
    assert response.status_code == 201
    result = response.json()
    run = BillingRun.objects.get()
    assert result == {
        "run_id": run.id,
        "period": "2026-05",
        "created": 3,
        "already_billed": 0,
        "nothing_to_bill": 0,
        "missing_readings": [],
        "total_vnd": 3 * PER_STALL,
        "changed_nothing": False,
        "message": "Đã lập 3 phiếu báo phí, tổng 2.265.000 đ",
    }
    assert FeeDemand.objects.filter(billing_run=run).count() == 3
    assert run.created_by.username == "manager_a"


def test_billing_the_same_period_again_changes_nothing_and_says_so(manager_a_client, leased_a):
    run_billing(manager_a_client)
    again = run_billing(manager_a_client)
    assert again.status_code == 200
    result = again.json()
    assert result["run_id"] is None and result["created"] == 0
    assert result["already_billed"] == 3 and result["changed_nothing"] is True
    assert result["message"] == "Kỳ 05/2026 đã được lập phí trước đó; không có gì thay đổi"
    assert FeeDemand.objects.count() == 3 and BillingRun.objects.count() == 1


def test_a_period_without_leases_says_there_was_nothing_to_bill(manager_a_client, market_a):
    result = run_billing(manager_a_client).json()
    assert result["changed_nothing"] is True
    assert "không có hợp đồng thuê nào" in result["message"]


def test_a_new_lease_is_billed_on_a_rerun_and_the_message_counts_both(
    manager_a_client, market_a, leased_a
):
    run_billing(manager_a_client)
    factories.make_lease(factories.make_stall(market_a, "A004"))
    result = run_billing(manager_a_client).json()
    assert result["created"] == 1 and result["already_billed"] == 3
    assert result["message"] == (
        "Đã lập 1 phiếu báo phí, tổng 755.000 đ; 3 hợp đồng đã được lập phí trước đó"
    )


def test_an_accountant_may_not_run_billing(accountant_a_client, leased_a):
    response = run_billing(accountant_a_client)
    assert response.status_code == 403
    assert not FeeDemand.objects.exists()


def test_a_platform_admin_may_run_billing(admin_client_, leased_a):
    assert run_billing(admin_client_).status_code == 201


def test_cancelling_a_run_cancels_its_demands_and_a_second_cancel_is_a_conflict(
    manager_a_client, leased_a
):
    run_id = run_billing(manager_a_client).json()["run_id"]
    response = manager_a_client.post(f"/api/v1/billing-runs/{run_id}/cancel")
    assert response.status_code == 200
    body = response.json()
    assert body["cancelled_demands"] == 3 and body["run"]["status"] == "cancelled"
    assert body["run"]["cancelled_at"] is not None
    assert set(FeeDemand.objects.values_list("status", flat=True)) == {"cancelled"}
    again = manager_a_client.post(f"/api/v1/billing-runs/{run_id}/cancel")
    assert again.status_code == 409 and again.json()["code"] == "conflict"


def test_a_run_with_a_payment_is_not_cancelled(manager_a_client, leased_a):
    run_id = run_billing(manager_a_client).json()["run_id"]
    FeeDemand.objects.filter(stall__code="A001").update(paid_vnd=1_000, status="partial")
    response = manager_a_client.post(f"/api/v1/billing-runs/{run_id}/cancel")
    assert response.status_code == 409 and response.json()["code"] == "run_has_payments"
    assert not FeeDemand.objects.filter(status="cancelled").exists()
    assert BillingRun.objects.get().status == "completed"


def test_billing_runs_are_listed_by_market_period_and_status(manager_a_client, market_a, leased_a):
    run_billing(manager_a_client, "2026-05")
    run_billing(manager_a_client, "2026-06")

    def periods(query):
        items = manager_a_client.get(f"/api/v1/billing-runs?{query}").json()["items"]
        return [r["period"] for r in items]

    assert periods("market=CHOA") == ["2026-06", "2026-05"]
    assert periods("period=2026-05") == ["2026-05"]
    assert periods("status=cancelled") == []
    run = manager_a_client.get("/api/v1/billing-runs?period=2026-06").json()["items"][0]
    assert run["demand_count"] == 3 and run["total_vnd"] == 3 * PER_STALL
    assert run["created_by"] == "manager_a" and run["market"] == "CHOA"


def test_demands_carry_their_amounts_in_dong_and_their_lines(accountant_a_client, leased_a):
    billing_run_create(market=leased_a[0].stall.market, period=MAY)
    page = accountant_a_client.get("/api/v1/demands?market=CHOA").json()
    assert page["count"] == 3
    demand = page["items"][0]
    assert demand["stall_code"] == "A001" and demand["period"] == "2026-05"
    assert demand["holder_name"] == leased_a[0].holder.full_name
    assert demand["total_vnd"] == PER_STALL and isinstance(demand["total_vnd"], int)
    assert demand["paid_vnd"] == 0 and demand["outstanding_vnd"] == PER_STALL
    assert demand["status"] == "open" and demand["due_date"] == "2026-05-15"
    assert demand["payment_code"] == FeeDemand.objects.get(pk=demand["id"]).payment_code
    assert sum(line["amount_vnd"] for line in demand["lines"]) == demand["total_vnd"]
    rent = next(line for line in demand["lines"] if line["fee_kind"] == "rent")
    assert rent["quantity"] == "6.0000" and rent["unit_price_vnd"] == 120_000
    assert rent["vat_rate"] == "10%"


def test_demands_filter_by_period_status_stall_and_holder(manager_a_client, leased_a):
    market = leased_a[0].stall.market
    billing_run_create(market=market, period=MAY)
    billing_run_create(market=market, period=date(2026, 6, 1))
    FeeDemand.objects.filter(stall=leased_a[1].stall, period=MAY).update(
        paid_vnd=PER_STALL, status="paid"
    )

    def count(query):
        return manager_a_client.get(f"/api/v1/demands?{query}").json()["count"]

    assert count("") == 6
    assert count("period=2026-05") == 3
    assert count("status=paid") == 1
    assert count("status=open&period=2026-05") == 2
    assert count(f"stall={leased_a[0].stall_id}") == 2
    assert count(f"holder={leased_a[2].holder_id}&period=2026-06") == 1
    assert count("limit=2") == 6
    assert len(manager_a_client.get("/api/v1/demands?limit=2").json()["items"]) == 2


def test_an_unknown_status_filter_is_a_422_naming_it(manager_a_client):
    response = manager_a_client.get("/api/v1/demands?status=lost")
    assert response.status_code == 422
    assert "status" in response.json()["extra"]["fields"]


def test_one_demand_is_read_with_its_lines(accountant_a_client, leased_a):
    billing_run_create(market=leased_a[0].stall.market, period=MAY)
    demand = FeeDemand.objects.get(stall=leased_a[0].stall)
    body = accountant_a_client.get(f"/api/v1/demands/{demand.id}").json()
    assert body["id"] == demand.id and body["payment_code"] == demand.payment_code
    assert body["billing_run_id"] == demand.billing_run_id
    assert {line["fee_kind"] for line in body["lines"]} == {"rent", "sanitation", "security"}
