"""Managers send a pay link, and configure the accounts a VietQR points to."""

import json
from urllib.parse import unquote

from market40 import vietqr
from market40.models import FeeDemand, ReceivingAccount


def test_the_demand_page_offers_the_qr_the_link_and_a_prepared_message(manager_a_client, billed_a):
    demand = FeeDemand.objects.order_by("id").first()
    html = manager_a_client.get(f"/manage/CHOA/demands/{demand.pk}/").content.decode()
    assert f"/pay/{demand.pay_token}/" in html
    assert 'data-testid="demand-qr"' in html
    assert "Gửi SMS" in html and f"sms:{demand.holder.phone}" in html
    sms = html.split(f"sms:{demand.holder.phone}?&amp;body=", 1)[1].split('"', 1)[0]
    text = unquote(sms)
    assert demand.payment_code in text and f"/pay/{demand.pay_token}/" in text
    assert "05/2026" in text


def _post(client, url, body):
    return client.post(url, data=json.dumps(body), content_type="application/json")


def test_a_manager_adds_a_receiving_account_that_new_qrs_use(manager_a_client, billed_a):
    response = _post(
        manager_a_client,
        "/api/v1/markets/CHOA/accounts",
        {"bin": "971025", "account_number": "PSP0123456789", "account_name": "bql cho a"},
    )
    assert response.status_code == 201, response.content
    assert response.json()["bank_name"] == "MoMo" and response.json()["account_name"] == "BQL CHO A"
    demand = FeeDemand.objects.order_by("id").first()
    payload = manager_a_client.get(f"/api/v1/demands/{demand.pk}").json()["vietqr_payload"]
    assert vietqr.decode(payload).bin == "971025"
    listed = manager_a_client.get("/api/v1/markets/CHOA/accounts").json()
    assert [a["is_default"] for a in listed] == [True, False]


def test_a_bin_outside_the_napas_list_is_refused(manager_a_client, market_a):
    response = _post(
        manager_a_client,
        "/api/v1/markets/CHOA/accounts",
        {"bin": "970499", "account_number": "0123", "account_name": "X"},
    )
    assert response.status_code == 400
    assert "970499" in response.json()["message"] and "NAPAS" in response.json()["message"]
    assert ReceivingAccount.objects.count() == 1


def test_an_account_number_with_spaces_is_refused(manager_a_client, market_a):
    response = _post(
        manager_a_client,
        "/api/v1/markets/CHOA/accounts",
        {"bin": "970436", "account_number": "0071 000 123", "account_name": "X"},
    )
    assert response.status_code == 400
    assert "Số tài khoản" in response.json()["message"]
    assert ReceivingAccount.objects.count() == 1


def test_accounts_are_scoped_and_only_managers_add_them(
    accountant_a_client, manager_b_client, market_a
):
    body = {"bin": "970436", "account_number": "123456", "account_name": "X"}
    assert _post(accountant_a_client, "/api/v1/markets/CHOA/accounts", body).status_code == 403
    assert _post(manager_b_client, "/api/v1/markets/CHOA/accounts", body).status_code == 404
    assert manager_b_client.get("/api/v1/markets/CHOA/accounts").status_code == 404
