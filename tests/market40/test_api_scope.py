"""A user of market A never sees or changes market B through the API; inside their
market, accountants read and managers write; platform admins do everything."""

from datetime import date
from decimal import Decimal

import pytest

from market40.models import (
    BillingRun,
    DemandLine,
    FeeDemand,
    Lease,
    Market,
    MeterReading,
    Stall,
    StallHolder,
    Tariff,
    Zone,
)
from market40.services import billing_run_create
from tests import factories

MODELS = (Market, Zone, Stall, StallHolder, Lease, Tariff, MeterReading, BillingRun, FeeDemand)


def snapshot() -> dict[str, list[dict]]:
    """Every row of the market domain, to show that a refused request changed nothing."""
    rows = {m.__name__: list(m.objects.order_by("pk").values()) for m in MODELS}
    rows["DemandLine"] = list(DemandLine.objects.order_by("pk").values())
    return rows


@pytest.fixture
def world_a(market_a, tariffs_a):
    """Market A with one of everything; the "spare" objects are unused, so deleting
    them is allowed."""
    zone = factories.make_zone(market_a, "A")
    stall = factories.make_stall(market_a, "A001", zone=zone)
    lease = factories.make_lease(stall)
    reading = MeterReading.objects.create(
        stall=stall,
        utility="electricity",
        period=date(2026, 5, 1),
        previous_value=Decimal("100"),
        current_value=Decimal("150"),
    )
    run = billing_run_create(market=market_a, period=date(2026, 5, 1)).run
    spare_tariff = Tariff.objects.create(
        market=market_a,
        fee_kind="management",
        basis="per_stall_month",
        name="Phí quản lý",
        unit="tháng",
        unit_price_vnd=10_000,
        vat_rate="10%",
        valid_from=date(2027, 1, 1),
    )
    return {
        "market": market_a.code,
        "zone": zone.code,
        "stall": stall.id,
        "holder": lease.holder_id,
        "lease": lease.id,
        "tariff": tariffs_a["sanitation"].id,
        "reading": reading.id,
        "run": run.id,
        "demand": FeeDemand.objects.get().id,
        "spare_stall": factories.make_stall(market_a, "A099", zone=zone).id,
        "spare_holder": factories.make_holder(market_a, "Trần Văn Bình").id,
        "spare_tariff": spare_tariff.id,
    }


READS = [
    "/markets/{market}",
    "/markets/{market}/zones",
    "/markets/{market}/stalls",
    "/markets/{market}/holders",
    "/markets/{market}/tariffs",
    "/markets/{market}/readings",
    "/stalls/{stall}",
    "/holders/{holder}",
    "/leases/{lease}",
    "/tariffs/{tariff}",
    "/billing-runs/{run}",
    "/demands/{demand}",
    "/leases?market={market}",
    "/billing-runs?market={market}",
    "/demands?market={market}",
]

WRITES = [
    ("patch", "/markets/{market}", lambda w: {"name": "Chợ đổi tên"}),
    ("post", "/markets/{market}/zones", lambda w: {"code": "B", "name": "Khu B"}),
    (
        "post",
        "/markets/{market}/stalls",
        lambda w: {"code": "A100", "zone": "A", "stall_class": "L1", "area_m2": "4.00"},
    ),
    ("patch", "/stalls/{stall}", lambda w: {"active": False}),
    ("delete", "/stalls/{spare_stall}", None),
    (
        "post",
        "/markets/{market}/holders",
        lambda w: {"code": "TT999", "full_name": "Lê Thị Hoa", "phone": "0912345678"},
    ),
    ("patch", "/holders/{holder}", lambda w: {"address": "Quận 3"}),
    ("delete", "/holders/{spare_holder}", None),
    (
        "post",
        "/markets/{market}/leases",
        lambda w: {
            "stall_id": w["spare_stall"],
            "holder_id": w["spare_holder"],
            "start_date": "2026-06-01",
        },
    ),
    ("patch", "/leases/{lease}", lambda w: {"end_date": "2026-12-31"}),
    (
        "post",
        "/markets/{market}/tariffs",
        lambda w: {
            "fee_kind": "entry",
            "name": "Vé lượt",
            "basis": "per_entry",
            "unit": "lượt",
            "unit_price_vnd": 2000,
            "vat_rate": "10%",
            "valid_from": "2026-01-01",
        },
    ),
    ("patch", "/tariffs/{tariff}", lambda w: {"name": "Phí vệ sinh môi trường"}),
    ("delete", "/tariffs/{spare_tariff}", None),
    (
        "post",
        "/markets/{market}/readings",
        lambda w: {
            "stall_id": w["stall"],
            "utility": "water",
            "period": "2026-05",
            "current_value": 9,
        },
    ),
    ("patch", "/readings/{reading}", lambda w: {"current_value": "160"}),
    ("post", "/markets/{market}/billing-runs", lambda w: {"period": "2026-06"}),
    ("post", "/billing-runs/{run}/cancel", None),
]
WRITE_IDS = [f"{method} {path}" for method, path, _body in WRITES]


def call(client, world, method, path, body=None):
    url = "/api/v1" + path.format(**world)
    data = body(world) if body else None
    if data is None:
        return getattr(client, method)(url)
    return getattr(client, method)(url, data, content_type="application/json")


@pytest.mark.parametrize("path", READS)
def test_a_manager_of_another_market_gets_404_for_every_read(manager_b_client, world_a, path):
    response = call(manager_b_client, world_a, "get", path)
    assert response.status_code == 404, response.content
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_a_manager_of_another_market_gets_404_for_every_write_and_nothing_changes(
    manager_b_client, world_a, method, path, body
):
    before = snapshot()
    response = call(manager_b_client, world_a, method, path, body)
    assert response.status_code == 404, response.content
    assert response.json()["code"] == "not_found"
    assert snapshot() == before


@pytest.mark.parametrize("path", READS)
def test_an_accountant_reads_everything_in_their_market(accountant_a_client, world_a, path):
    assert call(accountant_a_client, world_a, "get", path).status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_an_accountant_gets_403_for_every_write_and_nothing_changes(
    accountant_a_client, world_a, method, path, body
):
    before = snapshot()
    response = call(accountant_a_client, world_a, method, path, body)
    assert response.status_code == 403, response.content
    assert response.json()["code"] == "forbidden"
    assert snapshot() == before


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_the_manager_of_the_market_may_do_every_write(
    manager_a_client, world_a, method, path, body
):
    response = call(manager_a_client, world_a, method, path, body)
    assert response.status_code in (200, 201, 204), response.content


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_a_platform_admin_may_do_every_write(admin_client_, world_a, method, path, body):
    response = call(admin_client_, world_a, method, path, body)
    assert response.status_code in (200, 201, 204), response.content


@pytest.mark.parametrize(
    "path", ["/markets", "/leases", "/billing-runs", "/demands"], ids=lambda p: p
)
def test_lists_never_include_another_markets_rows(
    manager_b_client, admin_client_, world_a, market_b, path
):
    factories.make_tariffs(market_b)
    factories.make_lease(factories.make_stall(market_b, "B001"))
    billing_run_create(market=market_b, period=date(2026, 5, 1))
    theirs = manager_b_client.get("/api/v1" + path).json()
    assert theirs["count"] == len(theirs["items"]) >= 1
    assert all(item.get("market", item.get("code")) == "CHOB" for item in theirs["items"])
    everyone = admin_client_.get("/api/v1" + path).json()
    assert any(item.get("market", item.get("code")) == "CHOA" for item in everyone["items"])


def test_markets_list_shows_each_user_only_their_markets(
    manager_a_client, manager_b_client, admin_client_, world_a
):
    def codes(client):
        return [m["code"] for m in client.get("/api/v1/markets").json()["items"]]

    assert codes(manager_a_client) == ["CHOA"]
    assert codes(manager_b_client) == ["CHOB"]
    assert codes(admin_client_) == ["CHOA", "CHOB"]


def test_another_markets_stall_named_in_a_body_reads_like_an_unknown_one(manager_b_client, world_a):
    market_b = Market.objects.get(code="CHOB")
    holder_b = factories.make_holder(market_b)
    before = snapshot()

    def lease_with(stall_id):
        body = {"stall_id": stall_id, "holder_id": holder_b.id, "start_date": "2026-06-01"}
        return manager_b_client.post(
            "/api/v1/markets/CHOB/leases", body, content_type="application/json"
        ).json()

    hidden, missing = lease_with(world_a["stall"]), lease_with(987654)
    assert hidden["code"] == missing["code"] == "invalid"
    assert set(hidden["extra"]["fields"]) == {"stall_id"}
    assert hidden["message"].replace(str(world_a["stall"]), "N") == missing["message"].replace(
        "987654", "N"
    )
    assert snapshot() == before


def test_a_zone_of_another_market_cannot_be_given_to_a_stall(manager_a_client, world_a, market_b):
    factories.make_zone(market_b, "Z")
    response = manager_a_client.patch(
        f"/api/v1/stalls/{world_a['stall']}", {"zone": "Z"}, content_type="application/json"
    )
    assert response.status_code == 400
    assert set(response.json()["extra"]["fields"]) == {"zone"}
    assert Stall.objects.get(pk=world_a["stall"]).zone.code == "A"


def test_only_a_platform_admin_creates_markets(manager_a_client, admin_client_, market_a):
    body = {
        "code": "CHOC",
        "name": "Ban quản lý chợ C",
        "tax_code": "0100109106",
        "address": "2 Hàng Bạc, Hà Nội",
    }
    refused = manager_a_client.post("/api/v1/markets", body, content_type="application/json")
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert not Market.objects.filter(code="CHOC").exists()
    created = admin_client_.post("/api/v1/markets", body, content_type="application/json")
    assert created.status_code == 201
    assert created.json()["code"] == "CHOC" and created.json()["due_day"] == 15
