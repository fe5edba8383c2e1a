"""The upload page /manage/<market>/statements/: an accountant previews a statement
(dry run: what would be created, duplicates, bad rows), then confirms; people of another
market get a 404."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from payments.models import BankTransaction
from tests.payments.test_statement_layouts import (
    SAMPLE,
    statement_connection,
    write_statement,
)


@pytest.fixture
def bank_a(market_a):
    return statement_connection(market_a)


@pytest.fixture(autouse=True)
def uploads_in_tmp(settings, tmp_path):
    """Previewed uploads wait under VAR_DIR; keep the test's out of the work tree."""
    settings.VAR_DIR = tmp_path / "var"
    return settings.VAR_DIR / "statement-uploads"


def url(market) -> str:
    return f"/manage/{market.code}/statements/"


def upload(path, **extra):
    return {
        "action": "preview",
        "statement": SimpleUploadedFile(path.name, path.read_bytes()),
        **extra,
    }


def test_an_accountant_previews_then_confirms_a_statement(
    tmp_path, accountant_a_client, market_a, bank_a
):
    path = write_statement(tmp_path, "vcb", SAMPLE)

    page = accountant_a_client.get(url(market_a))
    assert page.status_code == 200
    assert "Nhập sao kê ngân hàng" in page.text

    preview = accountant_a_client.post(
        url(market_a), upload(path, connection=bank_a.pk, bank="auto")
    )
    assert preview.status_code == 200
    assert "Vietcombank" in preview.text
    assert "NGUYEN VAN A chuyen tien phi cho thang 5 sap A12" in preview.text
    assert "Nhập 3 giao dịch" in preview.text
    assert not BankTransaction.objects.exists()

    token = re.search(r'name="token" value="([^"]+)"', preview.text).group(1)
    done = accountant_a_client.post(url(market_a), {"action": "confirm", "token": token})

    assert done.status_code == 302
    assert BankTransaction.objects.filter(connection=bank_a, source="statement").count() == 3
    followed = accountant_a_client.get(done.url)
    assert "Đã nhập 3 giao dịch" in followed.text


def test_a_statement_with_a_bad_row_shows_the_row_and_offers_no_confirm(
    tmp_path, accountant_a_client, market_a, bank_a
):
    path = write_statement(tmp_path, "vcb", SAMPLE)
    path.write_text(
        path.read_text(encoding="utf-8-sig").replace("03/05/2026", "3 tháng 5"), encoding="utf-8"
    )

    response = accountant_a_client.post(url(market_a), upload(path, connection=bank_a.pk))

    assert response.status_code == 400
    assert "Dòng 10: ngày giao dịch “3 tháng 5” không đúng định dạng" in response.text
    assert 'name="token"' not in response.text
    assert not BankTransaction.objects.exists()


def test_a_confirm_token_is_good_once_and_only_for_its_user(
    tmp_path, accountant_a_client, manager_a_client, market_a, bank_a
):
    path = write_statement(tmp_path, "vcb", SAMPLE)
    preview = accountant_a_client.post(url(market_a), upload(path, connection=bank_a.pk))
    token = re.search(r'name="token" value="([^"]+)"', preview.text).group(1)

    stolen = manager_a_client.post(url(market_a), {"action": "confirm", "token": token})
    assert stolen.status_code == 302 and not BankTransaction.objects.exists()

    accountant_a_client.post(url(market_a), {"action": "confirm", "token": token})
    again = accountant_a_client.post(url(market_a), {"action": "confirm", "token": token})
    assert again.status_code == 302
    assert BankTransaction.objects.count() == 3


def test_a_confirmed_upload_is_deleted_and_a_failed_preview_keeps_nothing(
    tmp_path, accountant_a_client, market_a, bank_a, uploads_in_tmp
):
    bad = write_statement(tmp_path, "vcb", SAMPLE[:1])
    bad.write_text(bad.read_text(encoding="utf-8-sig").replace("02/05/2026", "x"), "utf-8")
    accountant_a_client.post(url(market_a), upload(bad, connection=bank_a.pk))
    assert list(uploads_in_tmp.iterdir()) == []

    good = write_statement(tmp_path, "vcb", SAMPLE)
    preview = accountant_a_client.post(url(market_a), upload(good, connection=bank_a.pk))
    assert len(list(uploads_in_tmp.iterdir())) == 1
    token = re.search(r'name="token" value="([^"]+)"', preview.text).group(1)
    accountant_a_client.post(url(market_a), {"action": "confirm", "token": token})
    assert list(uploads_in_tmp.iterdir()) == []


def test_the_page_is_a_404_for_another_markets_manager(
    tmp_path, manager_b_client, market_a, bank_a
):
    path = write_statement(tmp_path, "vcb", SAMPLE)

    assert manager_b_client.get(url(market_a)).status_code == 404
    response = manager_b_client.post(url(market_a), upload(path, connection=bank_a.pk))
    assert response.status_code == 404
    assert not BankTransaction.objects.exists()


def test_another_markets_connection_cannot_be_chosen(tmp_path, manager_b_client, market_b, bank_a):
    path = write_statement(tmp_path, "vcb", SAMPLE)

    response = manager_b_client.post(url(market_b), upload(path, connection=bank_a.pk))

    assert response.status_code == 400
    assert not BankTransaction.objects.exists()


def test_anonymous_visitors_are_sent_to_log_in(client, market_a):
    response = client.get(url(market_a))
    assert response.status_code == 302 and "/accounts/login/" in response.url
