"""The exports page: an accountant or a manager of the market asks for an export (period,
kind), follows its progress and downloads the file; other markets' pages and files are 404;
a wrong kind or period is refused in Vietnamese and queues nothing."""

from __future__ import annotations

import io

import openpyxl

from exports.models import ExportJob
from tests.exports.conftest import MAY


def url(market_code: str = "CHOA") -> str:
    return f"/manage/{market_code}/exports/"


def test_an_accountant_exports_the_bangke_and_downloads_it(accountant_a_client, month):
    response = accountant_a_client.post(url(), {"period": "2026-05", "kind": "bangke-xlsx"})

    assert response.status_code == 302 and response.url == url()
    job = ExportJob.objects.get()
    assert (job.kind, job.period, job.status) == ("bangke-xlsx", MAY, "done")
    assert job.created_by.username == "accountant_a"
    assert job.done == job.total == 3 and job.summary["rows"] == 4
    page = accountant_a_client.get(url())
    content = page.content.decode()
    assert "Đã xuất xong" in content
    download = f"/manage/CHOA/exports/{job.pk}/download"
    assert download in content and "CHOA_2026-05_bang-ke.xlsx" in content
    assert 'http-equiv="refresh"' not in content  # nothing left running

    response = accountant_a_client.get(download)
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    assert "CHOA_2026-05_bang-ke.xlsx" in response["Content-Disposition"]
    body = b"".join(response.streaming_content)
    assert body == job.path.read_bytes()
    assert openpyxl.load_workbook(io.BytesIO(body)).active["A1"].value == "STT"


def test_a_manager_can_export_too(manager_a_client, month):
    response = manager_a_client.post(url(), {"period": "2026-05", "kind": "xml-zip"})

    assert response.status_code == 302
    assert ExportJob.objects.get().status == "done"


def test_another_markets_manager_gets_404_for_the_page_and_the_file(
    manager_b_client, accountant_a_client, month
):
    accountant_a_client.post(url(), {"period": "2026-05", "kind": "bangke-csv"})
    job = ExportJob.objects.get()

    assert manager_b_client.get(url()).status_code == 404
    response = manager_b_client.post(url(), {"period": "2026-05", "kind": "bangke-csv"})
    assert response.status_code == 404
    assert manager_b_client.get(f"/manage/CHOA/exports/{job.pk}/download").status_code == 404
    # Through their own market's address the job of A does not exist either.
    assert manager_b_client.get(f"/manage/CHOB/exports/{job.pk}/download").status_code == 404
    assert ExportJob.objects.count() == 1


def test_a_wrong_kind_or_period_is_refused_in_vietnamese_and_queues_nothing(
    accountant_a_client, month
):
    response = accountant_a_client.post(url(), {"period": "2026-05", "kind": "pdf"})
    assert response.status_code == 400
    assert "Loại tệp xuất “pdf” không hợp lệ" in response.content.decode()

    response = accountant_a_client.post(url(), {"period": "05/2026", "kind": "bangke-xlsx"})
    assert response.status_code == 400
    content = response.content.decode()
    assert "Kỳ “05/2026” không hợp lệ: cần dạng YYYY-MM" in content
    assert 'value="05/2026"' in content  # the form keeps what was typed
    assert not ExportJob.objects.exists()


def test_a_running_job_shows_its_progress_and_the_page_refreshes(accountant_a_client, month):
    ExportJob.objects.create(
        market=month.market,
        period=MAY,
        kind="misa-sales-xlsx",
        status="running",
        done=250,
        total=1000,
        file_name="CHOA_2026-05_misa-ban-hang.xlsx",
    )

    content = accountant_a_client.get(url()).content.decode()

    assert '<progress max="100" value="25">' in content
    assert "(250/1000)" in content
    assert 'http-equiv="refresh"' in content
    assert "/download" not in content


def test_a_job_that_is_not_finished_cannot_be_downloaded(accountant_a_client, month):
    job = ExportJob.objects.create(
        market=month.market, period=MAY, kind="bangke-xlsx", status="queued"
    )

    response = accountant_a_client.get(f"/manage/CHOA/exports/{job.pk}/download", follow=True)

    assert response.redirect_chain == [(url(), 302)]
    assert "chưa sẵn sàng" in response.content.decode()


def test_anonymous_visitors_are_sent_to_log_in(client, month):
    response = client.get(url())
    assert response.status_code == 302 and "/accounts/login/" in response.url
