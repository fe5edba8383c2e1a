"""Bad input is refused with 400, a Vietnamese message naming the field, and no change
to the database."""

from datetime import date

import pytest

from market40.models import (
    BillingRun,
    FeeDemand,
    Lease,
    Market,
    MeterReading,
    Stall,
    StallHolder,
    Tariff,
)
from tests import factories

MODELS = (Market, Stall, StallHolder, Lease, Tariff, MeterReading, BillingRun, FeeDemand)


def counts() -> dict[str, int]:
    return {m.__name__: m.objects.count() for m in MODELS}


HOLDER = {"code": "TT001", "full_name": "Đặng Thị Mai", "phone": "0912345678"}
TARIFF = {
    "fee_kind": "management",
    "name": "Phí quản lý",
    "basis": "per_stall_month",
    "unit": "tháng",
    "unit_price_vnd": 25_000,
    "vat_rate": "10%",
    "valid_from": "2026-01-01",
}
MARKET = {
    "code": "CHOC",
    "name": "Ban quản lý chợ C",
    "tax_code": "0100109106",
    "address": "2 Hàng Bạc, Hà Nội",
}


@pytest.fixture
def stall_a(market_a, tariffs_a):
    return factories.make_stall(market_a, "A001")


# (persona client fixture, url, body builder, field named, words in the message)
CASES = {
    "MST 12345": (
        "manager_a_client",
        "/markets/CHOA/holders",
        lambda w: {**HOLDER, "tax_code": "12345"},
        "tax_code",
        "Mã số thuế",
    ),
    "phone 0123": (
        "manager_a_client",
        "/markets/CHOA/holders",
        lambda w: {**HOLDER, "phone": "0123"},
        "phone",
        "điện thoại",
    ),
    "CCCD of 11 digits": (
        "manager_a_client",
        "/markets/CHOA/holders",
        lambda w: {**HOLDER, "citizen_id": "12345678901"},
        "citizen_id",
        "CCCD",
    ),
    "market MST 12345": (
        "admin_client_",
        "/markets",
        lambda w: {**MARKET, "tax_code": "12345"},
        "tax_code",
        "Mã số thuế",
    ),
    "negative area": (
        "manager_a_client",
        "/markets/CHOA/stalls",
        lambda w: {"code": "A100", "stall_class": "L1", "area_m2": "-2"},
        "area_m2",
        "Diện tích không được âm",
    ),
    "unknown zone": (
        "manager_a_client",
        "/markets/CHOA/stalls",
        lambda w: {"code": "A100", "zone": "ZZ", "stall_class": "L1", "area_m2": "2"},
        "zone",
        "không có khu “ZZ”",
    ),
    "billing period 2026-13": (
        "manager_a_client",
        "/markets/CHOA/billing-runs",
        lambda w: {"period": "2026-13"},
        "period",
        "Kỳ “2026-13” không hợp lệ",
    ),
    "reading period 2026-13": (
        "manager_a_client",
        "/markets/CHOA/readings",
        lambda w: {"stall_id": w.id, "utility": "water", "period": "2026-13", "current_value": 3},
        "period",
        "Kỳ",
    ),
    "reading going backwards": (
        "manager_a_client",
        "/markets/CHOA/readings",
        lambda w: {
            "stall_id": w.id,
            "utility": "water",
            "period": "2026-05",
            "previous_value": 10,
            "current_value": 3,
        },
        "current_value",
        "Chỉ số cuối kỳ",
    ),
    "reading of an unknown stall": (
        "manager_a_client",
        "/markets/CHOA/readings",
        lambda w: {"stall_id": 987654, "utility": "water", "period": "2026-05", "current_value": 3},
        "stall_id",
        "không có sạp #987654",
    ),
    "unknown utility": (
        "manager_a_client",
        "/markets/CHOA/readings",
        lambda w: {"stall_id": w.id, "utility": "gas", "period": "2026-05", "current_value": 3},
        "utility",
        "loại",
    ),
    "overlapping lease": (
        "manager_a_client",
        "/markets/CHOA/leases",
        lambda w: {
            "stall_id": w.id,
            "holder_id": factories.make_holder(w.market).id,
            "start_date": "2026-04-01",
        },
        "start_date",
        "trùng thời gian",
    ),
    "lease ending before it starts": (
        "manager_a_client",
        "/markets/CHOA/leases",
        lambda w: {
            "stall_id": factories.make_stall(w.market, "A777").id,
            "holder_id": factories.make_holder(w.market).id,
            "start_date": "2026-04-01",
            "end_date": "2026-03-01",
        },
        "end_date",
        "Ngày kết thúc",
    ),
    "lease of an unknown holder": (
        "manager_a_client",
        "/markets/CHOA/leases",
        lambda w: {"stall_id": w.id, "holder_id": 987654, "start_date": "2027-01-01"},
        "holder_id",
        "không có tiểu thương #987654",
    ),
    "VAT rate 7%": (
        "manager_a_client",
        "/markets/CHOA/tariffs",
        lambda w: {**TARIFF, "vat_rate": "7%"},
        "vat_rate",
        "thuế suất GTGT",
    ),
    "unknown tariff basis": (
        "manager_a_client",
        "/markets/CHOA/tariffs",
        lambda w: {**TARIFF, "basis": "per_hour"},
        "basis",
        "cách tính",
    ),
    "unknown fee kind": (
        "manager_a_client",
        "/markets/CHOA/tariffs",
        lambda w: {**TARIFF, "fee_kind": "parking"},
        "fee_kind",
        "loại phí",
    ),
    "negative price": (
        "manager_a_client",
        "/markets/CHOA/tariffs",
        lambda w: {**TARIFF, "unit_price_vnd": -1},
        "unit_price_vnd",
        "Đơn giá không được âm",
    ),
    "overlapping tariff validity": (
        "manager_a_client",
        "/markets/CHOA/tariffs",
        lambda w: {**TARIFF, "fee_kind": "sanitation", "basis": "per_stall_month"},
        "valid_from",
        "trùng thời gian hiệu lực",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input_is_a_400_naming_the_field_in_vietnamese_and_changes_nothing(
    request, stall_a, admin_user, case
):
    persona, url, body, field, words = CASES[case]
    client = request.getfixturevalue(persona)
    factories.make_lease(stall_a, start=date(2026, 1, 1))
    payload = body(stall_a)
    before = counts()
    response = client.post("/api/v1" + url, payload, content_type="application/json")
    assert response.status_code == 400, response.content
    error = response.json()
    assert error["code"].startswith("invalid")
    assert field in error["extra"]["fields"]
    assert words in error["message"]
    assert counts() == before


PATCHES = {
    "holder MST": ("holder", {"tax_code": "12345"}, "tax_code", "Mã số thuế"),
    "holder phone": ("holder", {"phone": "0123"}, "phone", "điện thoại"),
    "holder CCCD": ("holder", {"citizen_id": "12345678901"}, "citizen_id", "CCCD"),
    "stall area": ("stall", {"area_m2": "-0.5"}, "area_m2", "Diện tích"),
    "lease end": ("lease", {"end_date": "2025-12-31"}, "end_date", "Ngày kết thúc"),
    "tariff VAT": ("tariff", {"vat_rate": "7%"}, "vat_rate", "thuế suất GTGT"),
    "market MST": ("market", {"tax_code": "12345"}, "tax_code", "Mã số thuế"),
}


@pytest.mark.parametrize("case", PATCHES, ids=list(PATCHES))
def test_a_bad_patch_is_a_400_naming_the_field_and_the_row_is_unchanged(
    manager_a_client, stall_a, tariffs_a, case
):
    kind, body, field, words = PATCHES[case]
    lease = factories.make_lease(stall_a)
    target = {
        "holder": (f"/holders/{lease.holder_id}", StallHolder, lease.holder_id),
        "stall": (f"/stalls/{stall_a.id}", Stall, stall_a.id),
        "lease": (f"/leases/{lease.id}", Lease, lease.id),
        "tariff": (f"/tariffs/{tariffs_a['rent_l1'].id}", Tariff, tariffs_a["rent_l1"].id),
        "market": ("/markets/CHOA", Market, stall_a.market_id),
    }[kind]
    url, model, pk = target
    row_before = model.objects.filter(pk=pk).values().get()
    response = manager_a_client.patch("/api/v1" + url, body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert field in response.json()["extra"]["fields"]
    assert words in response.json()["message"]
    assert model.objects.filter(pk=pk).values().get() == row_before


def test_a_period_filter_of_2026_13_is_refused(manager_a_client):
    response = manager_a_client.get("/api/v1/demands?period=2026-13")
    assert response.status_code == 400
    assert "Kỳ “2026-13”" in response.json()["message"]


@pytest.mark.parametrize("url", ["/tariffs/987654", "/stalls/987654", "/demands/987654"])
def test_an_unknown_id_in_the_path_is_a_404(manager_a_client, url):
    response = manager_a_client.get("/api/v1" + url)
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert "987654" in response.json()["message"]


def test_an_unknown_tariff_cannot_be_patched(manager_a_client, tariffs_a):
    before = list(Tariff.objects.values())
    response = manager_a_client.patch(
        "/api/v1/tariffs/987654", {"unit_price_vnd": 1}, content_type="application/json"
    )
    assert response.status_code == 404
    assert list(Tariff.objects.values()) == before
