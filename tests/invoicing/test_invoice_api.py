"""The invoice API: lists with filters and ``xml_url``, the stored bytes, issuing, corrections,
scope (another market's invoice is 404) and the error envelope."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from invoicing import services, testing
from invoicing.models import Invoice
from market40.models import ApiToken, FeeDemand

pytestmark = pytest.mark.usefixtures("every_invoice_verifies")


@pytest.fixture
def paid_a(billed_a, market_a, tmp_path):
    testing.configure_market(market_a, tmp_path / "certs")
    demands = list(FeeDemand.objects.filter(billing_run=billed_a.run).order_by("stall__code"))
    testing.mark_paid(demands)
    return demands


@pytest.fixture
def invoice_a(paid_a):
    return services.invoice_issue_for_demand(demand=paid_a[0])


def post(client, path: str, body: dict):
    return client.post("/api/v1" + path, body, content_type="application/json")


def assert_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "extra"}
    assert body["code"] == code
    return body


def test_the_list_gives_each_invoice_with_its_xml_url(manager_a_client, invoice_a):
    response = manager_a_client.get("/api/v1/invoices")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    (item,) = body["items"]
    assert item["id"] == invoice_a.pk
    assert item["market"] == "CHOA"
    assert (item["form"], item["serial"], item["number"]) == ("1", invoice_a.serial_code, 1)
    assert item["total_payable_vnd"] == invoice_a.total_payable_vnd
    assert item["period"] == "2026-05"
    assert item["xml_url"] == f"http://testserver/api/v1/invoices/{invoice_a.pk}/xml"
    xml = manager_a_client.get(item["xml_url"])
    assert xml.status_code == 200 and xml.content == invoice_a.xml_bytes


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("market=CHOA", 2),
        ("period=2026-05", 2),
        ("period=2026-06", 0),
        ("status=signed", 1),
        ("status=replaced", 1),
        ("kind=replacement", 1),
        ("serial=C99TAA", 0),
        ("buyer=Nguy", 2),
        ("buyer=CHO0000000013", 2),
    ],
)
def test_the_list_filters(manager_a_client, invoice_a, query, expected):
    services.invoice_replace(invoice=invoice_a, reason="Sai tên")

    response = manager_a_client.get(f"/api/v1/invoices?{query}")

    assert response.status_code == 200
    assert response.json()["count"] == expected


def test_a_bad_filter_value_is_an_envelope(manager_a_client, invoice_a):
    assert_envelope(manager_a_client.get("/api/v1/invoices?status=lost"), 422, "invalid")
    assert_envelope(manager_a_client.get("/api/v1/invoices?period=2026-13"), 400, "invalid_period")


def test_the_detail_has_the_lines_and_the_corrections(manager_a_client, invoice_a):
    replacement = services.invoice_replace(invoice=invoice_a, reason="Sai tên")

    body = manager_a_client.get(f"/api/v1/invoices/{invoice_a.pk}").json()

    assert body["status"] == "replaced"
    assert body["correction_ids"] == [replacement.pk]
    assert [line["number"] for line in body["lines"]] == [1, 2, 3]
    assert sum(line["net_vnd"] for line in body["lines"]) == body["total_net_vnd"]
    replacement_body = manager_a_client.get(f"/api/v1/invoices/{replacement.pk}").json()
    assert replacement_body["related_invoice_id"] == invoice_a.pk
    assert replacement_body["reason"] == "Sai tên"


def test_the_xml_endpoint_returns_the_stored_bytes(manager_a_client, invoice_a):
    response = manager_a_client.get(f"/api/v1/invoices/{invoice_a.pk}/xml")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/xml"
    assert response.content == invoice_a.xml_bytes
    assert response["ETag"] == f'"{invoice_a.sha256}"'


def test_issuing_for_a_demand_is_201_then_200_with_the_same_invoice(accountant_a_client, paid_a):
    first = post(accountant_a_client, "/invoices", {"demand_id": paid_a[0].pk})
    again = post(accountant_a_client, "/invoices", {"demand_id": paid_a[0].pk})

    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["issued_by"] == "accountant_a"
    assert Invoice.objects.count() == 1


def test_issuing_for_an_unpaid_demand_is_a_409_envelope(accountant_a_client, paid_a):
    FeeDemand.objects.filter(pk=paid_a[0].pk).update(status="open", paid_vnd=0)

    body = assert_envelope(
        post(accountant_a_client, "/invoices", {"demand_id": paid_a[0].pk}), 409, "demand_not_paid"
    )

    assert "chưa được thanh toán đủ" in body["message"]


def test_an_expired_certificate_is_a_409_envelope_and_stores_nothing(
    accountant_a_client, paid_a, market_a, tmp_path
):
    testing.configure_market(
        market_a, tmp_path / "old", not_before=datetime(2024, 1, 1, tzinfo=UTC), days=30
    )

    single = post(accountant_a_client, "/invoices", {"demand_id": paid_a[0].pk})
    period = post(
        accountant_a_client, "/invoices/issue-period", {"market": "CHOA", "period": "2026-05"}
    )

    assert (
        "Chứng thư số đã hết hạn" in assert_envelope(single, 409, "certificate_expired")["message"]
    )
    assert_envelope(period, 409, "certificate_expired")
    assert not Invoice.objects.exists()


def test_a_period_run_reports_what_it_did(accountant_a_client, paid_a):
    response = post(
        accountant_a_client, "/invoices/issue-period", {"market": "CHOA", "period": "2026-05"}
    )
    again = post(
        accountant_a_client, "/invoices/issue-period", {"market": "CHOA", "period": "2026-05"}
    )

    body = response.json()
    assert response.status_code == 200
    assert (body["queued"], body["issued"], body["first_number"], body["last_number"]) == (
        False,
        3,
        1,
        3,
    )
    assert body["message"].startswith("Đã xuất 3 hóa đơn kỳ 05/2026")
    assert again.json()["issued"] == 0 and again.json()["already_issued"] == 3


def test_a_replacement_needs_a_reason(accountant_a_client, invoice_a):
    body = assert_envelope(
        post(accountant_a_client, f"/invoices/{invoice_a.pk}/replace", {"reason": " "}),
        400,
        "reason_required",
    )

    assert body["extra"]["fields"] == {"reason": ["bắt buộc"]}
    assert Invoice.objects.count() == 1


def test_replacing_and_adjusting_through_the_api(accountant_a_client, invoice_a):
    replaced = post(
        accountant_a_client,
        f"/invoices/{invoice_a.pk}/replace",
        {"reason": "Bổ sung MST", "buyer_tax_code": "0312345679"},
    )
    adjusted = post(
        accountant_a_client,
        f"/invoices/{replaced.json()['id']}/adjust",
        {
            "reason": "Thu bổ sung",
            "lines": [{"description": "Tiền điện bổ sung", "amount_vnd": 20000, "vat_rate": "8%"}],
        },
    )
    twice = post(accountant_a_client, f"/invoices/{invoice_a.pk}/replace", {"reason": "Lần hai"})

    assert replaced.status_code == 201
    assert replaced.json()["kind"] == "replacement" and replaced.json()["number"] == 2
    assert replaced.json()["buyer_tax_code"] == "0312345679"
    assert adjusted.status_code == 201
    assert adjusted.json()["total_vat_vnd"] == 1481 and adjusted.json()["number"] == 3
    assert_envelope(twice, 409, "invoice_already_replaced")


def test_an_unknown_field_in_a_body_is_refused(accountant_a_client, invoice_a):
    response = post(
        accountant_a_client, f"/invoices/{invoice_a.pk}/replace", {"reason": "x", "colour": 1}
    )

    body = assert_envelope(response, 422, "invalid")
    assert "colour" in body["extra"]["fields"]


def test_another_markets_manager_sees_none_of_its_invoices(manager_b_client, paid_a, invoice_a):
    listed = manager_b_client.get("/api/v1/invoices").json()
    filtered = manager_b_client.get("/api/v1/invoices?market=CHOA")

    assert listed == {"items": [], "count": 0}
    assert_envelope(filtered, 404, "not_found")
    for path in (f"/api/v1/invoices/{invoice_a.pk}", f"/api/v1/invoices/{invoice_a.pk}/xml"):
        assert_envelope(manager_b_client.get(path), 404, "not_found")
    for path, body in (
        ("/invoices", {"demand_id": paid_a[1].pk}),
        ("/invoices/issue-period", {"market": "CHOA", "period": "2026-05"}),
        (f"/invoices/{invoice_a.pk}/replace", {"reason": "x"}),
        (f"/invoices/{invoice_a.pk}/adjust", {"reason": "x"}),
    ):
        assert_envelope(post(manager_b_client, path, body), 404, "not_found")
    assert Invoice.objects.count() == 1


def test_a_bearer_token_works_and_no_credentials_is_401(client, manager_a, invoice_a):
    _row, token = ApiToken.issue(manager_a, "kế toán")

    allowed = client.get("/api/v1/invoices", HTTP_AUTHORIZATION=f"Bearer {token}")
    refused = client.get("/api/v1/invoices")

    assert allowed.status_code == 200 and allowed.json()["count"] == 1
    assert_envelope(refused, 401, "unauthenticated")
