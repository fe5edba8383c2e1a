"""Accountant exports over JSON, mounted on ``market40.api.api`` under /api/v1/.

``POST /markets/{code}/exports`` records a job and hands it to the background task; the
answer is the job (201 when it already finished in-process, 202 while a worker has it).
``GET /exports/{id}`` gives its status, progress and, once done, ``download_url``;
``GET /exports/{id}/file`` streams the file. Scope as everywhere: another market's jobs
answer 404, worded like jobs that do not exist; exports need the accountant or manager role
(or a platform admin), 403 otherwise. Errors are the shared envelope.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import FileResponse, HttpRequest
from django.urls import reverse
from django.utils.translation import gettext as _
from ninja import Field, Router, Schema, Status
from ninja.pagination import paginate
from pydantic import ConfigDict

from exports import services
from exports.models import ExportJob, ExportKind
from market40.api_markets import Page
from market40.errors import NotFound
from market40.services import markets_for

router = Router(tags=["exports"])


class ExportIn(Schema):
    model_config = ConfigDict(extra="forbid")

    period: str | None = Field(
        None,
        description="Kỳ YYYY-MM; bỏ trống chỉ khi xuất ZIP theo invoice_ids.",
        examples=["2026-05"],
    )
    kind: str = Field(description="Loại tệp: " + ", ".join(ExportKind.values))
    invoice_ids: list[int] | None = Field(
        None, description="Chỉ với xml-zip: id các hóa đơn cần xuất (thay cho cả kỳ)."
    )


class ExportJobOut(Schema):
    id: int
    market: str
    period: str | None = Field(description="Kỳ YYYY-MM")
    kind: str
    kind_label: str
    status: str = Field(description="queued | running | done | failed")
    done: int
    total: int
    percent: int
    file_name: str
    file_size: int | None
    summary: dict[str, Any] = Field(description="Số dòng và các tổng (đồng) của tệp.")
    error: str
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    download_url: str | None = Field(description="Có khi status = done.")

    @staticmethod
    def resolve_market(obj: ExportJob) -> str:
        return obj.market.code

    @staticmethod
    def resolve_period(obj: ExportJob) -> str | None:
        return f"{obj.period:%Y-%m}" if obj.period else None

    @staticmethod
    def resolve_kind_label(obj: ExportJob) -> str:
        return str(obj.get_kind_display())

    @staticmethod
    def resolve_created_by(obj: ExportJob) -> str | None:
        return obj.created_by.get_username() if obj.created_by_id else None

    @staticmethod
    def resolve_download_url(obj: ExportJob, context: dict[str, Any]) -> str | None:
        if obj.status != ExportJob.Status.DONE:
            return None
        url = reverse("api:export_file", args=[obj.pk])
        request = context.get("request") if context else None
        return request.build_absolute_uri(url) if request is not None else url


def _jobs(request: HttpRequest):
    return services.jobs_visible_to(request.auth).select_related("market", "created_by")


def _job(request: HttpRequest, job_id: int) -> ExportJob:
    job = _jobs(request).filter(pk=job_id).first()
    if job is None:
        raise NotFound(_("Không tìm thấy lần xuất #%(id)s.") % {"id": job_id})
    return job


@router.post(
    "/markets/{code}/exports",
    response={201: ExportJobOut, 202: ExportJobOut},
    summary="Xuất dữ liệu kế toán của một kỳ",
)
def export_create(request: HttpRequest, code: str, payload: ExportIn):
    """400 with a Vietnamese message for an unknown kind or a malformed period (nothing is
    queued); 404 for a market the caller cannot see or invoices not in it."""
    market = markets_for(request.auth).filter(code=code).first()
    if market is None:
        raise NotFound(_("Không tìm thấy chợ “%(code)s”.") % {"code": code})
    services.require_exporter(request.auth, market)
    kind, period, ids = services.parse_request(
        kind=payload.kind, period=payload.period, invoice_ids=payload.invoice_ids
    )
    job = services.export_job_create(
        market=market, kind=kind, period=period, user=request.auth, invoice_ids=ids
    )
    job = _jobs(request).get(pk=job.pk)
    return Status(201 if job.finished else 202, job)


@router.get(
    "/markets/{code}/exports",
    response=list[ExportJobOut],
    summary="Các lần xuất của một chợ",
)
@paginate(Page)
def export_list(request: HttpRequest, code: str):
    market = markets_for(request.auth).filter(code=code).first()
    if market is None:
        raise NotFound(_("Không tìm thấy chợ “%(code)s”.") % {"code": code})
    services.require_exporter(request.auth, market)
    return _jobs(request).filter(market=market)


@router.get("/exports/{int:job_id}", response=ExportJobOut, summary="Trạng thái một lần xuất")
def export_detail(request: HttpRequest, job_id: int):
    return _job(request, job_id)


@router.get(
    "/exports/{int:job_id}/file",
    url_name="export_file",
    response={200: None},
    summary="Tải tệp đã xuất",
)
def export_file(request: HttpRequest, job_id: int):
    """409 while the job is queued or running, or when it failed; 404 when the file is gone."""
    job = _job(request, job_id)
    path = services.job_file(job)
    return FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=job.file_name,
        content_type=services.content_type(job),
    )
