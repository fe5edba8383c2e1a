"""Export pages of a market: request an export (period, kind), follow its progress, download it.

Same conventions as the manager pages (``market40.views``): ``market_page`` resolves the market
among the user's (404 otherwise, so another market's jobs and files are invisible); exports are
for the market's accountants and managers (or a platform admin). Views parse, authorise and
call ``exports.services``. The list refreshes itself (a meta refresh, no JavaScript) while a
job is queued or running.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.translation import gettext as _

from exports import services
from exports.models import ExportJob, ExportKind
from market40.errors import DomainError, Forbidden
from market40.models import Market
from market40.views import current_period, market_page, paginate, render_market

REFRESH_SECONDS = 3


def _require_exporter(request: HttpRequest, market: Market) -> None:
    try:
        services.require_exporter(request.user, market)
    except Forbidden:
        raise PermissionDenied from None


@market_page
def export_list(request: HttpRequest, market: Market) -> HttpResponse:
    _require_exporter(request, market)
    form = {
        "period": request.POST.get("period", "") or f"{current_period():%Y-%m}",
        "kind": request.POST.get("kind", ExportKind.BANGKE_XLSX),
    }
    status = 200
    if request.method == "POST":
        try:
            kind, period, _ids = services.parse_request(
                kind=request.POST.get("kind"), period=request.POST.get("period")
            )
            job = services.export_job_create(
                market=market, kind=kind, period=period, user=request.user
            )
        except DomainError as error:
            # Nothing was queued: show the form again with what was typed and the reason.
            messages.error(request, error.message)
            status = 400
        else:
            _report(request, job)
            return redirect("export-list", market.code)
    jobs = ExportJob.objects.filter(market=market).select_related("created_by")
    page = paginate(request, jobs)
    busy = any(not job.finished for job in page.object_list)
    return render_market(
        request,
        market,
        "exports/export_list.html",
        {
            "page": page,
            "form": form,
            "kinds": ExportKind.choices,
            "refresh_seconds": REFRESH_SECONDS if busy else None,
        },
        status=status,
    )


def _report(request: HttpRequest, job: ExportJob) -> None:
    label = job.get_kind_display()
    if job.status == ExportJob.Status.DONE:
        messages.success(
            request,
            _("Đã xuất xong “%(kind)s”: %(file)s.") % {"kind": label, "file": job.file_name},
        )
    elif job.status == ExportJob.Status.FAILED:
        messages.error(
            request, _("Xuất “%(kind)s” bị lỗi: %(error)s") % {"kind": label, "error": job.error}
        )
    else:
        messages.info(
            request,
            _("Đã xếp hàng xuất “%(kind)s”; trang này tự cập nhật tiến độ.") % {"kind": label},
        )


@market_page
def export_download(request: HttpRequest, market: Market, job_id: int) -> HttpResponse:
    _require_exporter(request, market)
    job = get_object_or_404(ExportJob, pk=job_id, market=market)
    try:
        path = services.job_file(job)
    except DomainError as error:
        if error.status == 404:
            raise Http404(error.message) from None
        messages.error(request, error.message)
        return redirect(reverse("export-list", args=[market.code]))
    return FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=job.file_name,
        content_type=services.content_type(job),
    )
