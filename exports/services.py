"""Export workflows: validate a request, create the job, run it (in a task) and write the file.

Pages, the API and the command parse and authorise, then call these keyword-only functions.
A file is written under a temporary name in its final folder and renamed when complete
(``os.replace`` is atomic on one file system), so a half-written export is never served.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import F, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from exports import writers
from exports.models import ExportJob, ExportKind
from market40.errors import Conflict, DomainError, InvalidInput, NotFound
from market40.models import Market, Membership
from market40.services import markets_for, parse_period, require_market_role

logger = logging.getLogger(__name__)

EXPORTER_ROLES = (Membership.Role.ACCOUNTANT, Membership.Role.MANAGER)
MAX_SELECTED_INVOICES = 5000
PROGRESS_INTERVAL_S = 0.5
EXPORTS_DIR = "exports"


# --- scope ---------------------------------------------------------------------------


def require_exporter(user: Any, market: Market) -> None:
    """Exports are for the market's accountants and managers (or a platform admin)."""
    require_market_role(user, market, *EXPORTER_ROLES)


def jobs_visible_to(user: Any) -> QuerySet[ExportJob]:
    return ExportJob.objects.filter(market__in=markets_for(user, roles=EXPORTER_ROLES))


# --- validation ------------------------------------------------------------------------


def kind_choices_text() -> str:
    return "; ".join(f"{value} ({label})" for value, label in ExportKind.choices)


def parse_kind(value: str | None) -> str:
    kind = (value or "").strip().lower()
    if kind not in ExportKind.values:
        raise InvalidInput(
            _("Loại tệp xuất “%(value)s” không hợp lệ. Chọn một trong: %(choices)s.")
            % {"value": value or "", "choices": kind_choices_text()},
            code="invalid_kind",
            extra={"fields": {"kind": list(ExportKind.values)}},
        )
    return kind


def parse_request(
    *, kind: str | None, period: str | None, invoice_ids: Sequence[int] | None = None
) -> tuple[str, date | None, list[int] | None]:
    """``(kind, period, invoice_ids)`` from what a person or a client typed, or a clear
    Vietnamese ``InvalidInput``. A period is needed except for a ZIP of chosen invoices."""
    kind = parse_kind(kind)
    ids: list[int] | None = None
    if invoice_ids is not None:
        if kind != ExportKind.XML_ZIP:
            raise InvalidInput(
                _("Chỉ tệp ZIP hóa đơn XML mới xuất được theo danh sách hóa đơn chọn."),
                code="selection_not_supported",
                extra={"fields": {"invoice_ids": [_("chỉ dùng với xml-zip")]}},
            )
        ids = sorted({int(pk) for pk in invoice_ids})
        if not ids:
            raise InvalidInput(
                _("Danh sách hóa đơn chọn đang trống."),
                code="empty_selection",
                extra={"fields": {"invoice_ids": [_("cần ít nhất một hóa đơn")]}},
            )
        if len(ids) > MAX_SELECTED_INVOICES:
            raise InvalidInput(
                _("Chọn tối đa %(max)s hóa đơn; muốn nhiều hơn, hãy xuất cả kỳ.")
                % {"max": MAX_SELECTED_INVOICES},
                code="selection_too_large",
            )
    raw = (period or "").strip()
    if not raw:
        if ids is None:
            raise InvalidInput(
                _("Cần chọn kỳ (tháng) cần xuất, dạng YYYY-MM, ví dụ 2026-05."),
                code="invalid_period",
                extra={"fields": {"period": ["YYYY-MM"]}},
            )
        return kind, None, ids
    return kind, parse_period(raw), ids


def check_selection(market: Market, ids: list[int] | None) -> None:
    if ids is None:
        return
    found = set(writers.invoice_selection(market, None, ids).values_list("pk", flat=True))
    missing = [pk for pk in ids if pk not in found]
    if missing:
        raise NotFound(
            _("Không tìm thấy hóa đơn %(ids)s trong chợ %(market)s.")
            % {"ids": ", ".join(f"#{pk}" for pk in missing[:10]), "market": market.code},
            code="invoices_not_found",
        )


# --- files ---------------------------------------------------------------------------------


def export_root() -> Path:
    return Path(settings.MEDIA_ROOT) / EXPORTS_DIR


def write_file(
    *,
    kind: str,
    market: Market,
    period: date | None,
    path: Path,
    progress: writers.Progress | None = None,
    invoice_ids: Sequence[int] | None = None,
) -> writers.ExportResult:
    """Write one export to ``path``: to ``<path>.part-<random>`` first, renamed when whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part-{uuid.uuid4().hex[:8]}")
    try:
        with partial.open("wb") as out:
            result = writers.write_export(
                kind=kind,
                market=market,
                period=period,
                out=out,
                progress=progress,
                invoice_ids=invoice_ids,
            )
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return result


# --- jobs ----------------------------------------------------------------------------------


def export_job_create(
    *,
    market: Market,
    kind: str,
    period: date | None,
    user: Any = None,
    invoice_ids: list[int] | None = None,
) -> ExportJob:
    """Record the request and hand it to the background task (the immediate backend of
    tests and ``make run`` finishes it before returning; production's database backend
    leaves it to ``manage.py db_worker``)."""
    from exports.tasks import run_export

    check_selection(market, invoice_ids)
    job = ExportJob.objects.create(
        market=market,
        kind=kind,
        period=period,
        invoice_ids=invoice_ids,
        file_name=writers.file_name(kind, market, period, invoice_ids),
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    result = run_export.enqueue(job.pk)
    ExportJob.objects.filter(pk=job.pk).update(task_id=str(result.id))
    job.refresh_from_db()
    return job


class _ProgressWriter:
    """Progress of a running job, written at most every ``PROGRESS_INTERVAL_S`` (and always
    at the end), so a 100,000-row export costs a few hundred small updates, not 100,000."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < PROGRESS_INTERVAL_S:
            return
        self.last = now
        ExportJob.objects.filter(pk=self.job_id, status=ExportJob.Status.RUNNING).update(
            done=done, total=total
        )


def export_job_run(*, job_id: int) -> dict[str, Any]:
    """Run a queued job once: a duplicate delivery of the task finds it no longer queued and
    does nothing. Failures are kept on the job (status ``failed`` with a message for people;
    the traceback goes to the log) and re-raised so the task backend records them too."""
    started = ExportJob.objects.filter(pk=job_id, status=ExportJob.Status.QUEUED).update(
        status=ExportJob.Status.RUNNING, started_at=timezone.now()
    )
    if started != 1:
        return {"job_id": job_id, "ran": False}
    job = ExportJob.objects.select_related("market").get(pk=job_id)
    relative = Path(EXPORTS_DIR) / job.market.code / f"{job.pk}-{job.file_name}"
    try:
        result = write_file(
            kind=job.kind,
            market=job.market,
            period=job.period,
            path=Path(settings.MEDIA_ROOT) / relative,
            progress=_ProgressWriter(job.pk),
            invoice_ids=job.invoice_ids,
        )
    except Exception as error:
        if isinstance(error, DomainError):
            message = error.message
        else:
            reference = uuid.uuid4().hex[:12]
            logger.exception("export job %s failed (reference %s)", job_id, reference)
            message = _(
                "Lỗi hệ thống khi xuất (mã tham chiếu %(ref)s); vui lòng thử lại hoặc báo quản trị."
            ) % {"ref": reference}
        ExportJob.objects.filter(pk=job_id, status=ExportJob.Status.RUNNING).update(
            status=ExportJob.Status.FAILED, error=message, finished_at=timezone.now()
        )
        raise
    size = (Path(settings.MEDIA_ROOT) / relative).stat().st_size
    summary = {"rows": result.rows, **result.totals}
    ExportJob.objects.filter(pk=job_id, status=ExportJob.Status.RUNNING).update(
        status=ExportJob.Status.DONE,
        file_path=str(relative),
        file_size=size,
        summary=summary,
        finished_at=timezone.now(),
        done=F("total"),
    )
    return {"job_id": job_id, "ran": True, **summary}


def job_file(job: ExportJob) -> Path:
    """The finished file of a job, or a Conflict saying why it cannot be downloaded."""
    if job.status != ExportJob.Status.DONE:
        if job.status == ExportJob.Status.FAILED:
            raise Conflict(
                _("Lần xuất #%(id)s bị lỗi, không có tệp: %(error)s")
                % {"id": job.pk, "error": job.error},
                code="export_failed",
            )
        raise Conflict(
            _("Tệp của lần xuất #%(id)s chưa sẵn sàng (%(done)s/%(total)s); thử lại sau ít phút.")
            % {"id": job.pk, "done": job.done, "total": job.total},
            code="export_not_ready",
        )
    path = job.path
    root = export_root().resolve()
    if path is None or not path.resolve().is_relative_to(root) or not path.exists():
        raise NotFound(
            _("Tệp của lần xuất #%(id)s không còn trên máy chủ; hãy xuất lại.") % {"id": job.pk},
            code="export_file_missing",
        )
    return path


def content_type(job: ExportJob) -> str:
    return writers.SPECS[job.kind].content_type
