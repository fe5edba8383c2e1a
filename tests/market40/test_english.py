"""Vietnamese first, English through Django i18n."""

from market40.models import FeeDemand


def test_pages_are_vietnamese_by_default_and_english_on_request(manager_a_client, billed_a):
    vi = manager_a_client.get("/manage/CHOA/stalls/").content.decode()
    en = manager_a_client.get("/manage/CHOA/stalls/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Sạp/ki-ốt" in vi
    assert 'lang="en"' in en and "Sạp/ki-ốt" not in en and "Stall" in en


def test_the_pay_page_speaks_english_to_an_english_phone(client, billed_a):
    demand = FeeDemand.objects.order_by("id").first()
    en = client.get(f"/pay/{demand.pay_token}/", HTTP_ACCEPT_LANGUAGE="en-US").content.decode()
    assert "Amount" in en or "amount" in en
    assert "Số tiền cần nộp" not in en


def test_api_errors_follow_the_language(manager_a_client):
    body = {"period": "2026-13"}
    vi = manager_a_client.post(
        "/api/v1/markets/CHOA/billing-runs", body, content_type="application/json"
    ).json()
    en = manager_a_client.post(
        "/api/v1/markets/CHOA/billing-runs",
        body,
        content_type="application/json",
        HTTP_ACCEPT_LANGUAGE="en",
    ).json()
    assert "Kỳ" in vi["message"] and "YYYY-MM" in en["message"] and "Kỳ" not in en["message"]
