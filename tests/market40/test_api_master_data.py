"""Managers keep a market's master data through the API: markets, zones, stalls,
holders, leases, tariffs and meter readings; lists page and filter."""

from datetime import date

import pytest

from market40.models import Lease, Market, MeterReading, Stall, StallHolder, Tariff, Zone
from market40.services import billing_run_create
from tests import factories


def post(client, url, body):
    return client.post("/api/v1" + url, body, content_type="application/json")


def patch(client, url, body):
    return client.patch("/api/v1" + url, body, content_type="application/json")


def test_a_manager_updates_their_market_and_only_the_fields_sent(manager_a_client, market_a):
    response = patch(manager_a_client, "/markets/CHOA", {"due_day": 10, "phone": "0283822111"})
    assert response.status_code == 200
    market = Market.objects.get(code="CHOA")
    assert (market.due_day, market.phone, market.name) == (10, "0283822111", market_a.name)


def test_a_market_code_cannot_be_patched(manager_a_client, market_a):
    response = patch(manager_a_client, "/markets/CHOA", {"code": "CHOZ"})
    assert response.status_code == 422
    assert response.json()["extra"]["fields"] == {"code": ["không có trường này"]}


def test_zones_are_created_and_listed(manager_a_client, market_a):
    assert post(manager_a_client, "/markets/CHOA/zones", {"code": "B", "name": "Khu B"}).json() == {
        "id": Zone.objects.get(code="B").id,
        "market": "CHOA",
        "code": "B",
        "name": "Khu B",
    }
    listed = manager_a_client.get("/api/v1/markets/CHOA/zones").json()
    assert listed["count"] == 1 and listed["items"][0]["code"] == "B"


def test_a_stall_is_created_fetched_and_updated_with_area_as_a_decimal_string(
    manager_a_client, market_a
):
    factories.make_zone(market_a, "A")
    created = post(
        manager_a_client,
        "/markets/CHOA/stalls",
        {"code": "A001", "zone": "A", "stall_class": "L1", "area_m2": 6.5},
    )
    assert created.status_code == 201
    stall = created.json()
    assert stall["area_m2"] == "6.50" and stall["zone"] == "A" and stall["market"] == "CHOA"
    assert stall["payment_code"] == Stall.objects.get().payment_code
    assert manager_a_client.get(f"/api/v1/stalls/{stall['id']}").json() == stall

    updated = patch(manager_a_client, f"/stalls/{stall['id']}", {"zone": None, "area_m2": "8"})
    assert updated.status_code == 200
    assert updated.json()["zone"] is None and updated.json()["area_m2"] == "8.00"
    assert updated.json()["payment_code"] == stall["payment_code"]


def test_stall_list_filters_by_zone_active_and_search(manager_a_client, market_a):
    north, south = factories.make_zone(market_a, "N"), factories.make_zone(market_a, "S")
    factories.make_stall(market_a, "N001", zone=north)
    factories.make_stall(market_a, "N002", zone=north, active=False)
    factories.make_stall(market_a, "S001", zone=south, stall_class="L2")

    def codes(query):
        items = manager_a_client.get(f"/api/v1/markets/CHOA/stalls?{query}").json()["items"]
        return [s["code"] for s in items]

    assert codes("") == ["N001", "N002", "S001"]
    assert codes("zone=N") == ["N001", "N002"]
    assert codes("active=false") == ["N002"]
    assert codes("zone=N&active=true") == ["N001"]
    assert codes("q=s00") == ["S001"]
    assert codes("q=L2") == ["S001"]


def test_lists_count_every_row_and_page_with_limit_and_offset(manager_a_client, market_a):
    for i in range(7):
        factories.make_stall(market_a, f"A{i:03d}")
    pages = [
        manager_a_client.get(f"/api/v1/markets/CHOA/stalls?limit=3&offset={offset}").json()
        for offset in (0, 3, 6)
    ]
    assert [p["count"] for p in pages] == [7, 7, 7]
    assert [len(p["items"]) for p in pages] == [3, 3, 1]
    codes = [s["code"] for p in pages for s in p["items"]]
    assert codes == [f"A{i:03d}" for i in range(7)]


def test_a_stall_in_use_is_not_deleted_but_can_be_deactivated(manager_a_client, market_a):
    stall = factories.make_stall(market_a, "A001")
    factories.make_lease(stall)
    refused = manager_a_client.delete(f"/api/v1/stalls/{stall.id}")
    assert refused.status_code == 409
    assert "active = false" in refused.json()["message"]
    assert Stall.objects.filter(pk=stall.pk).exists()
    deactivated = patch(manager_a_client, f"/stalls/{stall.id}", {"active": False})
    assert deactivated.json()["active"] is False


def test_an_unused_stall_is_deleted(manager_a_client, market_a):
    stall = factories.make_stall(market_a, "A001")
    response = manager_a_client.delete(f"/api/v1/stalls/{stall.id}")
    assert response.status_code == 204
    assert not Stall.objects.exists()


def test_a_holder_is_created_with_the_phone_normalised_and_found_by_search(
    manager_a_client, market_a
):
    response = post(
        manager_a_client,
        "/markets/CHOA/holders",
        {
            "code": "TT001",
            "full_name": "Phạm Thị Thu",
            "phone": "+84 912 345 678",
            "tax_code": "8012345678",
            "citizen_id": "079190001234",
        },
    )
    assert response.status_code == 201
    assert response.json()["phone"] == "0912345678"
    factories.make_holder(market_a, "Nguyễn Văn Hùng")
    found = manager_a_client.get("/api/v1/markets/CHOA/holders?q=Thu").json()
    assert found["count"] == 1 and found["items"][0]["code"] == "TT001"
    holder_id = response.json()["id"]
    updated = patch(manager_a_client, f"/holders/{holder_id}", {"address": "Chợ Lớn"})
    assert updated.json()["address"] == "Chợ Lớn" and updated.json()["phone"] == "0912345678"


def test_a_holder_with_a_lease_is_not_deleted(manager_a_client, market_a):
    lease = factories.make_lease(factories.make_stall(market_a, "A001"))
    response = manager_a_client.delete(f"/api/v1/holders/{lease.holder_id}")
    assert response.status_code == 409
    assert StallHolder.objects.filter(pk=lease.holder_id).exists()


def test_a_lease_is_created_listed_by_stall_and_holder_and_ended_with_patch(
    manager_a_client, market_a
):
    stall = factories.make_stall(market_a, "A001")
    other = factories.make_stall(market_a, "A002")
    holder = factories.make_holder(market_a, "Võ Thị Sáu")
    factories.make_lease(other)
    created = post(
        manager_a_client,
        "/markets/CHOA/leases",
        {"stall_id": stall.id, "holder_id": holder.id, "start_date": "2026-03-01"},
    )
    assert created.status_code == 201
    lease = created.json()
    assert lease["stall_code"] == "A001" and lease["holder_name"] == "Võ Thị Sáu"
    assert lease["end_date"] is None and lease["market"] == "CHOA"

    def ids(query):
        items = manager_a_client.get(f"/api/v1/leases?{query}").json()["items"]
        return [item["id"] for item in items]

    assert len(ids("market=CHOA")) == 2
    assert ids(f"stall={stall.id}") == [lease["id"]]
    assert ids(f"holder={holder.id}") == [lease["id"]]

    ended = patch(manager_a_client, f"/leases/{lease['id']}", {"end_date": "2026-06-30"})
    assert ended.status_code == 200 and ended.json()["end_date"] == "2026-06-30"
    assert ids("active_on=2026-07-01&market=CHOA") == [Lease.objects.get(stall=other).id]


def test_a_tariff_is_created_filtered_and_a_used_one_is_not_deleted(
    manager_a_client, market_a, tariffs_a
):
    body = {
        "fee_kind": "management",
        "name": "Phí quản lý",
        "basis": "per_stall_month",
        "unit": "tháng",
        "unit_price_vnd": 25_000,
        "vat_rate": "10%",
        "valid_from": "2027-01-01",  # not in force in the billed month, so unused
    }
    created = post(manager_a_client, "/markets/CHOA/tariffs", body)
    assert created.status_code == 201
    assert created.json()["unit_price_vnd"] == 25_000 and created.json()["stall_class"] == ""
    listed = manager_a_client.get("/api/v1/markets/CHOA/tariffs?fee_kind=management").json()
    assert listed["count"] == 1

    factories.make_lease(factories.make_stall(market_a, "A001"))
    billing_run_create(market=market_a, period=date(2026, 5, 1))
    used = tariffs_a["sanitation"]
    assert manager_a_client.delete(f"/api/v1/tariffs/{used.id}").status_code == 409
    ended = patch(manager_a_client, f"/tariffs/{used.id}", {"valid_to": "2026-12-31"})
    assert ended.status_code == 200 and ended.json()["valid_to"] == "2026-12-31"
    unused = Tariff.objects.get(fee_kind="management")
    assert manager_a_client.delete(f"/api/v1/tariffs/{unused.id}").status_code == 204


def test_a_tariff_valid_on_a_date_is_found_by_valid_on(manager_a_client, market_a, tariffs_a):
    rent = tariffs_a["rent_l1"]
    rent.valid_to = date(2026, 6, 30)
    rent.save()
    items = manager_a_client.get(
        "/api/v1/markets/CHOA/tariffs?valid_on=2026-07-01&fee_kind=rent"
    ).json()["items"]
    assert [t["stall_class"] for t in items] == ["L2"]


def test_meter_readings_are_recorded_corrected_and_listed_by_period(manager_a_client, market_a):
    stall = factories.make_stall(market_a, "A001")
    body = {
        "stall_id": stall.id,
        "utility": "electricity",
        "period": "2026-05",
        "previous_value": "1200",
        "current_value": 1342.5,
    }
    created = post(manager_a_client, "/markets/CHOA/readings", body)
    assert created.status_code == 201
    reading = created.json()
    assert reading["period"] == "2026-05" and reading["quantity"] == "142.50"
    assert reading["stall_code"] == "A001"
    fixed = patch(manager_a_client, f"/readings/{reading['id']}", {"current_value": "1300"})
    assert fixed.json()["quantity"] == "100.00"

    post(manager_a_client, "/markets/CHOA/readings", {**body, "period": "2026-06"})
    may = manager_a_client.get("/api/v1/markets/CHOA/readings?period=2026-05").json()
    assert may["count"] == 1 and may["items"][0]["id"] == reading["id"]
    assert MeterReading.objects.count() == 2


@pytest.mark.parametrize("url", ["/markets/CHOA/readings", "/markets/CHOA/stalls"])
def test_the_same_reading_or_stall_code_twice_is_refused(manager_a_client, market_a, url):
    stall = factories.make_stall(market_a, "A001")
    body = (
        {"stall_id": stall.id, "utility": "water", "period": "2026-05", "current_value": 5}
        if "readings" in url
        else {"code": "A001", "stall_class": "L1", "area_m2": "5"}
    )
    if "readings" in url:
        assert post(manager_a_client, url, body).status_code == 201
    count = (MeterReading.objects.count(), Stall.objects.count())
    response = post(manager_a_client, url, body)
    assert response.status_code == 400
    assert "đã tồn tại" in response.json()["message"]
    assert (MeterReading.objects.count(), Stall.objects.count()) == count
