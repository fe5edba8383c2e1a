"""Every failure of the JSON API has one shape: {"code", "message", "extra"}."""

import pytest
from django.test import Client

from market40 import api_markets
from market40.models import Stall, StallHolder
from tests import factories

ENVELOPE = {"code", "message", "extra"}


def post(client, url, body):
    return client.post(url, body, content_type="application/json")


def assert_envelope(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == ENVELOPE
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["extra"], dict)
    return body


def test_a_rule_broken_in_the_body_is_a_400_envelope_naming_the_field(manager_a_client):
    response = post(
        manager_a_client,
        "/api/v1/markets/CHOA/holders",
        {"code": "TT1", "full_name": "Nguyễn Văn An", "phone": "0123"},
    )
    body = assert_envelope(response, 400, "invalid")
    assert "phone" in body["extra"]["fields"]
    assert "điện thoại di động" in body["message"]
    assert StallHolder.objects.count() == 0


def test_a_request_without_credentials_is_a_401_envelope(market_a):
    response = Client().get("/api/v1/markets")
    body = assert_envelope(response, 401, "unauthenticated")
    assert "Bearer" in body["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_role_that_may_not_write_is_a_403_envelope(accountant_a_client):
    response = post(accountant_a_client, "/api/v1/markets/CHOA/zones", {"code": "B", "name": "B"})
    body = assert_envelope(response, 403, "forbidden")
    assert "CHOA" in body["message"]


def test_another_markets_object_is_a_404_envelope_worded_like_a_missing_one(
    manager_a_client, market_b
):
    theirs = factories.make_stall(market_b, "B001")
    hidden = assert_envelope(manager_a_client.get(f"/api/v1/stalls/{theirs.id}"), 404, "not_found")
    missing = assert_envelope(manager_a_client.get("/api/v1/stalls/987654"), 404, "not_found")
    assert hidden["message"].replace(str(theirs.id), "N") == missing["message"].replace(
        "987654", "N"
    )
    assert "B001" not in hidden["message"]


def test_a_body_of_the_wrong_shape_is_a_422_envelope_naming_each_field(manager_a_client):
    response = post(
        manager_a_client,
        "/api/v1/markets/CHOA/stalls",
        {"code": "A001", "area_m2": "sáu", "colour": "đỏ"},
    )
    body = assert_envelope(response, 422, "invalid")
    fields = body["extra"]["fields"]
    assert set(fields) == {"stall_class", "area_m2", "colour"}
    assert fields["stall_class"] == ["bắt buộc"]
    assert fields["area_m2"] == ["phải là số"]
    assert "stall_class" in body["message"] and "area_m2" in body["message"]
    assert Stall.objects.count() == 0


def test_a_bad_query_parameter_is_a_422_envelope_naming_it(manager_a_client):
    body = assert_envelope(manager_a_client.get("/api/v1/demands?limit=0"), 422, "invalid")
    assert "limit" in body["extra"]["fields"]


def test_a_body_that_is_not_json_is_a_400_envelope(manager_a_client):
    response = manager_a_client.post(
        "/api/v1/markets/CHOA/zones", "{not json", content_type="application/json"
    )
    assert_envelope(response, 400, "bad_request")


def test_an_unknown_api_path_is_a_404_envelope(manager_a_client):
    assert_envelope(manager_a_client.get("/api/v1/no-such-thing"), 404, "not_found")
    assert_envelope(manager_a_client.post("/api/v1/no/such/thing"), 404, "not_found")


def test_deleting_a_stall_in_use_is_a_409_envelope(manager_a_client, market_a):
    stall = factories.make_stall(market_a, "A001")
    factories.make_lease(stall)
    body = assert_envelope(manager_a_client.delete(f"/api/v1/stalls/{stall.id}"), 409, "in_use")
    assert "A001" in body["message"]
    assert Stall.objects.filter(pk=stall.pk).exists()


@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_error_is_a_500_envelope_without_a_traceback(
    manager_a_client, monkeypatch, settings, debug
):
    settings.DEBUG = debug

    def explode(**kwargs):
        raise RuntimeError("SELECT secret FROM bank_accounts")

    monkeypatch.setattr(api_markets.services, "billing_run_create", explode)
    response = post(manager_a_client, "/api/v1/markets/CHOA/billing-runs", {"period": "2026-05"})
    body = assert_envelope(response, 500, "server_error")
    text = response.content.decode()
    assert "secret" not in text and "Traceback" not in text and "RuntimeError" not in text
    assert body["extra"]["reference"] in body["message"]
