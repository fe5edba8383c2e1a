"""Who may call the API: bearer tokens, the session with CSRF, and the command that
issues tokens."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from market40.models import ApiToken, Zone


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


@pytest.fixture
def token_a(manager_a):
    return ApiToken.issue(manager_a, name="máy tính bảng")[1]


def test_a_bearer_token_authenticates_without_a_session(token_a):
    response = Client().get("/api/v1/me", **bearer(token_a))
    assert response.status_code == 200
    me = response.json()
    assert me["username"] == "manager_a" and me["auth"] == "token"
    assert me["memberships"] == [{"market": "CHOA", "role": "manager"}]


def test_a_bearer_token_writes_without_a_csrf_token(token_a):
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/api/v1/markets/CHOA/zones",
        {"code": "B", "name": "Khu B"},
        content_type="application/json",
        **bearer(token_a),
    )
    assert response.status_code == 201
    assert Zone.objects.filter(code="B").exists()


@pytest.mark.parametrize("header", ["Bearer m40_wrong", "Bearer ", "bearer nonsense"])
def test_a_wrong_token_gets_401(manager_a, header):
    response = Client().get("/api/v1/markets", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


def test_a_revoked_token_gets_401(manager_a, token_a):
    assert Client().get("/api/v1/markets", **bearer(token_a)).status_code == 200
    ApiToken.objects.filter(user=manager_a).delete()  # revoking = deleting the row
    response = Client().get("/api/v1/markets", **bearer(token_a))
    assert response.status_code == 401
    assert "thu hồi" in response.json()["message"]


def test_a_token_of_a_deactivated_user_gets_401(manager_a, token_a):
    manager_a.is_active = False
    manager_a.save()
    assert Client().get("/api/v1/markets", **bearer(token_a)).status_code == 401


def test_a_wrong_token_is_refused_even_alongside_a_valid_session(manager_a_client):
    response = manager_a_client.get("/api/v1/markets", **bearer("m40_stale"))
    assert response.status_code == 401


def test_only_the_hash_of_a_token_is_stored(manager_a, token_a):
    row = ApiToken.objects.get(user=manager_a)
    assert row.key_hash == ApiToken.hash(token_a) and token_a not in row.key_hash
    assert row.prefix == token_a[:8]


def test_last_used_at_is_written_at_most_once_a_minute(manager_a, token_a):
    row = ApiToken.objects.get(user=manager_a)
    assert row.last_used_at is None
    Client().get("/api/v1/me", **bearer(token_a))
    row.refresh_from_db()
    first = row.last_used_at
    assert first is not None

    recent = timezone.now() - timedelta(seconds=30)
    ApiToken.objects.filter(pk=row.pk).update(last_used_at=recent)
    Client().get("/api/v1/me", **bearer(token_a))
    row.refresh_from_db()
    assert row.last_used_at == recent

    stale = timezone.now() - timedelta(minutes=2)
    ApiToken.objects.filter(pk=row.pk).update(last_used_at=stale)
    Client().get("/api/v1/me", **bearer(token_a))
    row.refresh_from_db()
    assert row.last_used_at > stale + timedelta(minutes=1)


def test_an_anonymous_post_gets_401_rather_than_a_csrf_error(market_a):
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/api/v1/markets/CHOA/zones", {"code": "B", "name": "B"}, content_type="application/json"
    )
    assert response.status_code == 401


def test_a_session_post_without_the_csrf_token_is_forbidden_and_changes_nothing(manager_a):
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager_a)
    response = client.post(
        "/api/v1/markets/CHOA/zones", {"code": "B", "name": "B"}, content_type="application/json"
    )
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "forbidden" and body["extra"] == {"reason": "csrf"}
    assert "CSRF" in body["message"]
    assert not Zone.objects.exists()


def test_a_session_post_with_the_csrf_token_from_me_succeeds(manager_a):
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager_a)
    assert client.get("/api/v1/me").status_code == 200  # sets the csrftoken cookie
    csrf = client.cookies["csrftoken"].value
    response = client.post(
        "/api/v1/markets/CHOA/zones",
        {"code": "B", "name": "B"},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=csrf,
    )
    assert response.status_code == 201


def test_create_api_token_prints_a_working_token_once_with_a_vietnamese_warning(manager_a):
    out = StringIO()
    call_command("create_api_token", "manager_a", "--name", "máy POS", stdout=out)
    lines = out.getvalue().splitlines()
    token = lines[0]
    assert token.startswith("m40_") and len(token) > 40
    assert "chỉ hiển thị MỘT LẦN" in out.getvalue()
    row = ApiToken.objects.get(user=manager_a)
    assert row.name == "máy POS" and row.key_hash == ApiToken.hash(token)
    assert Client().get("/api/v1/me", **bearer(token)).json()["username"] == "manager_a"


def test_create_api_token_for_an_unknown_user_is_a_vietnamese_error(db):
    with pytest.raises(CommandError, match="Không có người dùng “ghost”"):
        call_command("create_api_token", "ghost", stdout=StringIO())
    assert not ApiToken.objects.exists()
