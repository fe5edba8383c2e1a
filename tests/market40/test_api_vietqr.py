"""VietQR in the API: each demand's payload, pay link and image, and a decoder."""

import json

from market40 import vietqr
from market40.models import FeeDemand

DECODE = "/api/v1/vietqr/decode"


def test_a_demand_carries_its_vietqr_payload_pay_url_and_image(manager_a_client, billed_a):
    demand = FeeDemand.objects.order_by("id").first()
    body = manager_a_client.get(f"/api/v1/demands/{demand.pk}").json()
    fields = vietqr.decode(body["vietqr_payload"])
    assert fields.amount_vnd == demand.total_vnd and fields.purpose == demand.payment_code
    assert body["pay_url"].endswith(f"/pay/{demand.pay_token}/")
    assert f"/pay/{demand.pay_token}/qr.png?v=" in body["qr_png_url"]
    image = manager_a_client.get(body["qr_png_url"].split("8000", 1)[-1])
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    listed = manager_a_client.get("/api/v1/demands?market=CHOA").json()["items"]
    assert all(vietqr.decode(item["vietqr_payload"]) for item in listed)


def test_a_paid_demand_has_no_payload(manager_a_client, billed_a):
    demand = FeeDemand.objects.order_by("id").first()
    FeeDemand.objects.filter(pk=demand.pk).update(paid_vnd=demand.total_vnd, status="paid")
    body = manager_a_client.get(f"/api/v1/demands/{demand.pk}").json()
    assert body["vietqr_payload"] is None and body["qr_png_url"] is None


def _decode(client, payload):
    return client.post(
        DECODE, data=json.dumps({"payload": payload}), content_type="application/json"
    )


V4 = (
    "00020101021238530010A0000007270123000697041601092576788590208QRIBFTTA5303704540410005802VN"
    "62150811Chuyen tien6304BBB8"
)


def test_an_accountant_can_decode_a_pasted_payload(accountant_a_client):
    response = _decode(accountant_a_client, V4)
    assert response.status_code == 200
    body = response.json()
    assert body["bin"] == "970416" and body["account"] == "257678859"
    assert body["amount_vnd"] == 1000 and body["purpose"] == "Chuyen tien"


def test_a_bad_payload_gets_the_precise_error_in_the_envelope(accountant_a_client):
    response = _decode(accountant_a_client, V4[:-1] + "5")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "vietqr_crc_mismatch"
    assert "BBB5" in body["message"] and "BBB8" in body["message"]
    truncated = _decode(accountant_a_client, V4[:40])
    assert truncated.status_code == 400 and truncated.json()["code"].startswith("vietqr_")


def test_decoding_needs_a_login(client):
    assert _decode(client, V4).status_code == 401
