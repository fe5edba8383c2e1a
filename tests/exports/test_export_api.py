"""Exports over the API: ``POST /markets/{code}/exports`` → a job; ``GET /exports/{id}`` →
status, progress, download_url; ``GET /exports/{id}/file`` → the file. Scope, errors in the
shared envelope, and the background path (a queued job, run later by the worker)."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from django.db import connection
from django.test import override_settings

from exports import services
from exports.models import ExportJob
from exports.tasks import run_export
from invoicing.models import Invoice

DUMMY_TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}


def post(client, path: str, body: dict):
    return client.post("/api/v1" + path, body, content_type="application/json")


def assert_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "extra"} and body["code"] == code
    return body


def test_an_export_is_created_followed_and_downloaded(accountant_a_client, month):
    response = post(
        accountant_a_client, "/markets/CHOA/exports", {"period": "2026-05", "kind": "bangke-csv"}
    )

    assert response.status_code == 201, response.content
    job = response.json()
    assert job["market"] == "CHOA" and job["period"] == "2026-05" and job["kind"] == "bangke-csv"
    assert job["status"] == "done" and job["percent"] == 100
    assert job["summary"]["rows"] == 4
    assert job["download_url"] == f"http://testserver/api/v1/exports/{job['id']}/file"

    detail = accountant_a_client.get(f"/api/v1/exports/{job['id']}")
    assert detail.status_code == 200 and detail.json()["status"] == "done"

    response = accountant_a_client.get(job["download_url"])
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    data = b"".join(response.streaming_content)
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][0] == "STT" and rows[-1][1] == "Tổng cộng"

    listing = accountant_a_client.get("/api/v1/markets/CHOA/exports")
    assert listing.json()["count"] == 1


def test_a_zip_of_chosen_invoices_needs_no_period(manager_a_client, month):
    chosen = [month.invoices[0].pk, month.invoices[2].pk]

    response = post(
        manager_a_client, "/markets/CHOA/exports", {"kind": "xml-zip", "invoice_ids": chosen}
    )

    assert response.status_code == 201, response.content
    job = response.json()
    assert job["period"] is None and job["summary"]["rows"] == 2
    data = b"".join(manager_a_client.get(job["download_url"]).streaming_content)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert len(names) == 3 and names[-1] == "manifest.csv"


def test_another_markets_manager_sees_neither_the_market_nor_its_jobs(
    manager_b_client, accountant_a_client, month
):
    job = post(
        accountant_a_client, "/markets/CHOA/exports", {"period": "2026-05", "kind": "xml-zip"}
    ).json()

    assert_envelope(
        post(manager_b_client, "/markets/CHOA/exports", {"period": "2026-05", "kind": "xml-zip"}),
        404,
        "not_found",
    )
    assert_envelope(manager_b_client.get(f"/api/v1/exports/{job['id']}"), 404, "not_found")
    assert_envelope(manager_b_client.get(f"/api/v1/exports/{job['id']}/file"), 404, "not_found")
    assert_envelope(manager_b_client.get("/api/v1/markets/CHOA/exports"), 404, "not_found")
    assert manager_b_client.get("/api/v1/markets/CHOB/exports").json()["count"] == 0


def test_another_markets_invoices_cannot_be_chosen(manager_b_client, month):
    body = assert_envelope(
        post(
            manager_b_client,
            "/markets/CHOB/exports",
            {"kind": "xml-zip", "invoice_ids": [month.invoices[0].pk]},
        ),
        404,
        "invoices_not_found",
    )
    assert "Không tìm thấy hóa đơn" in body["message"]
    assert not ExportJob.objects.exists()


@pytest.mark.parametrize(
    ("payload", "code", "words"),
    [
        ({"period": "2026-05", "kind": "pdf"}, "invalid_kind", "Loại tệp xuất “pdf” không hợp lệ"),
        ({"period": "2026-13", "kind": "bangke-xlsx"}, "invalid_period", "không hợp lệ"),
        ({"period": "tháng 5", "kind": "bangke-xlsx"}, "invalid_period", "cần dạng YYYY-MM"),
        ({"kind": "bangke-xlsx"}, "invalid_period", "Cần chọn kỳ"),
        (
            {"period": "2026-05", "kind": "bangke-xlsx", "invoice_ids": [1]},
            "selection_not_supported",
            "Chỉ tệp ZIP",
        ),
    ],
)
def test_a_bad_kind_or_period_is_a_clear_vietnamese_400(
    accountant_a_client, month, payload, code, words
):
    body = assert_envelope(post(accountant_a_client, "/markets/CHOA/exports", payload), 400, code)
    assert words in body["message"]
    assert not ExportJob.objects.exists()


def test_an_unknown_field_is_refused(accountant_a_client, month):
    response = post(
        accountant_a_client,
        "/markets/CHOA/exports",
        {"period": "2026-05", "kind": "xml-zip", "format": "rar"},
    )
    assert_envelope(response, 422, "invalid")


@override_settings(TASKS=DUMMY_TASKS)
def test_with_a_worker_the_job_is_queued_then_run_once_and_downloadable(accountant_a_client, month):
    response = post(
        accountant_a_client,
        "/markets/CHOA/exports",
        {"period": "2026-05", "kind": "misa-sales-xlsx"},
    )

    assert response.status_code == 202, response.content
    job = response.json()
    assert job["status"] == "queued" and job["download_url"] is None and job["percent"] == 0
    assert job["file_name"] == "CHOA_2026-05_misa-ban-hang.xlsx"
    assert_envelope(
        accountant_a_client.get(f"/api/v1/exports/{job['id']}/file"), 409, "export_not_ready"
    )

    assert run_export.call(job["id"])["ran"] is True  # what the worker does
    assert run_export.call(job["id"]) == {"job_id": job["id"], "ran": False}  # redelivered

    done = accountant_a_client.get(f"/api/v1/exports/{job['id']}").json()
    assert done["status"] == "done" and done["done"] == done["total"] == 10
    assert done["download_url"]
    assert accountant_a_client.get(done["download_url"]).status_code == 200


def test_a_failed_export_keeps_its_reason_and_leaves_no_file(accountant_a_client, month, media):
    invoice = month.invoices[0]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Invoice._meta.db_table} SET xml = %s WHERE id = %s",
            [invoice.xml_bytes + b" ", invoice.pk],
        )

    response = post(
        accountant_a_client, "/markets/CHOA/exports", {"period": "2026-05", "kind": "xml-zip"}
    )

    job = response.json()
    assert response.status_code == 201 and job["status"] == "failed"
    assert "SHA-256" in job["error"] and job["download_url"] is None
    body = assert_envelope(
        accountant_a_client.get(f"/api/v1/exports/{job['id']}/file"), 409, "export_failed"
    )
    assert "SHA-256" in body["message"]
    assert not any(path.is_file() for path in (media / "exports").rglob("*"))


def test_a_file_removed_from_the_server_is_404(accountant_a_client, month):
    job = post(
        accountant_a_client, "/markets/CHOA/exports", {"period": "2026-05", "kind": "xml-zip"}
    ).json()
    services.job_file(ExportJob.objects.get(pk=job["id"])).unlink()

    assert_envelope(
        accountant_a_client.get(f"/api/v1/exports/{job['id']}/file"), 404, "export_file_missing"
    )
