"""The statement upload page: /manage/<market>/statements/.

Any member of the market (accountant or manager) may import; others get a 404 from
``market_page``. Two steps, both POSTs: "preview" stores the upload under a random name
and shows the dry run (what would be created, the duplicates skipped, the bad rows);
"confirm" imports that stored file. The confirm form carries a signed token naming the
stored file, the user, the market, the connection and the chosen layout, so a form
cannot be replayed by another user or pointed at another file.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from market40.errors import DomainError
from market40.models import Market
from market40.views import market_page, render_market
from payments.models import BankConnection
from payments.statements import (
    BANK_CHOICES,
    BANK_PROFILES,
    StatementProfile,
    StatementRejected,
    StatementReport,
    profile_from_json,
    statement_import,
)

SIGNING_SALT = "payments.statement-upload"
TOKEN_MAX_AGE = 3600  # seconds between preview and confirm
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_PROFILE_BYTES = 64 * 1024
PREVIEW_ROWS = 200
SUFFIXES = {".csv", ".txt", ".xlsx", ".xlsm"}
TEMPLATE = "payments/statement_upload.html"


def upload_dir() -> Path:
    path = Path(settings.VAR_DIR) / "statement-uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sweep(folder: Path) -> None:
    """Forget uploads nobody confirmed (older than the token's lifetime)."""
    cutoff = time.time() - TOKEN_MAX_AGE
    for stale in folder.iterdir():
        if stale.stat().st_mtime < cutoff:
            stale.unlink(missing_ok=True)


def _bank_choices() -> list[tuple[str, str]]:
    return [("auto", _("Tự nhận diện"))] + [(c, p.name) for c, p in BANK_PROFILES.items()]


@market_page
@require_http_methods(["GET", "POST"])
def statement_upload(request: HttpRequest, market: Market) -> HttpResponse:
    connections = list(
        BankConnection.objects.filter(market=market, active=True).select_related(
            "account", "account__bank"
        )
    )
    context = {"connections": connections, "banks": _bank_choices(), "bank": "auto"}
    if request.method == "GET":
        return render_market(request, market, TEMPLATE, context)
    if request.POST.get("action") == "confirm":
        return _confirm(request, market, connections, context)
    return _preview(request, market, connections, context)


def _chosen_connection(
    request: HttpRequest, connections: list[BankConnection]
) -> BankConnection | None:
    wanted = request.POST.get("connection", "")
    return next((c for c in connections if c.pk == wanted), None)


def _preview(
    request: HttpRequest, market: Market, connections: list[BankConnection], context: dict
) -> HttpResponse:
    connection = _chosen_connection(request, connections)
    bank = request.POST.get("bank", "auto")
    upload = request.FILES.get("statement")
    context.update(bank=bank, connection=connection)
    problem = None
    suffix = Path(upload.name).suffix.lower() if upload else ""
    if connection is None:
        problem = _("Chọn tài khoản (kết nối ngân hàng) để nhập sao kê.")
    elif bank not in BANK_CHOICES:
        problem = _("Chọn mẫu sao kê của ngân hàng.")
    elif upload is None:
        problem = _("Chọn tệp sao kê (.csv hoặc .xlsx).")
    elif suffix not in SUFFIXES:
        problem = _("Tệp sao kê phải là .csv hoặc .xlsx.")
    elif upload.size > MAX_UPLOAD_BYTES:
        problem = _("Tệp sao kê lớn hơn 20 MB; hãy tách theo tháng.")
    profile_data = None
    if problem is None and (profile_file := request.FILES.get("profile")):
        try:
            if profile_file.size > MAX_PROFILE_BYTES:
                raise ValueError("too large")
            profile_data = json.loads(profile_file.read().decode("utf-8-sig"))
        except ValueError:
            problem = _("Hồ sơ cột phải là tệp JSON (UTF-8).")
    if problem:
        messages.error(request, problem)
        return render_market(request, market, TEMPLATE, context, status=400)
    folder = upload_dir()
    _sweep(folder)
    name = secrets.token_hex(16) + suffix
    with (folder / name).open("wb") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
    context["file_name"] = upload.name
    try:
        profile = profile_from_json(profile_data) if profile_data is not None else None
        report = _run(connection, folder / name, bank, profile, dry_run=True)
    except DomainError as error:
        (folder / name).unlink(missing_ok=True)
        return _rejected(request, market, context, error)
    token = signing.dumps(
        {
            "file": name,
            "name": upload.name[:200],
            "user": request.user.pk,
            "market": market.pk,
            "connection": connection.pk,
            "bank": bank,
            "profile": profile_data,
        },
        salt=SIGNING_SALT,
    )
    context.update(_report_context(report), token=token)
    return render_market(request, market, TEMPLATE, context)


def _confirm(
    request: HttpRequest, market: Market, connections: list[BankConnection], context: dict
) -> HttpResponse:
    try:
        data = signing.loads(
            request.POST.get("token", ""), salt=SIGNING_SALT, max_age=TOKEN_MAX_AGE
        )
    except signing.BadSignature:
        messages.error(request, _("Phiên xem trước đã hết hạn; hãy tải tệp lên lại."))
        return redirect(reverse("statement-upload", args=[market.code]))
    connection = next((c for c in connections if c.pk == data["connection"]), None)
    path = upload_dir() / Path(data["file"]).name
    if (
        data["user"] != request.user.pk
        or data["market"] != market.pk
        or connection is None
        or not path.exists()
    ):
        messages.error(request, _("Phiên xem trước đã hết hạn; hãy tải tệp lên lại."))
        return redirect(reverse("statement-upload", args=[market.code]))
    context.update(connection=connection, bank=data["bank"], file_name=data["name"])
    try:
        profile = profile_from_json(data["profile"]) if data["profile"] is not None else None
        report = _run(connection, path, data["bank"], profile, dry_run=False)
    except DomainError as error:
        return _rejected(request, market, context, error)
    finally:
        path.unlink(missing_ok=True)
    matched = report.reconciled.get("matched", 0) + report.reconciled.get("partly", 0)
    messages.success(
        request,
        _(
            "Đã nhập %(created)s giao dịch từ %(file)s (bỏ qua %(dup)s giao dịch đã có); "
            "đối soát: %(matched)s khớp, %(unmatched)s chờ xử lý."
        )
        % {
            "created": report.created,
            "file": data["name"],
            "dup": len(report.duplicates),
            "matched": matched,
            "unmatched": report.reconciled.get("unmatched", 0),
        },
    )
    for warning in report.warnings[:20]:
        messages.warning(request, warning)
    return redirect(reverse("statement-upload", args=[market.code]))


def _run(
    connection: BankConnection,
    path: Path,
    bank: str,
    profile: StatementProfile | None,
    *,
    dry_run: bool,
) -> StatementReport:
    return statement_import(
        connection=connection, path=path, bank=bank, profile=profile, dry_run=dry_run
    )


def _rejected(
    request: HttpRequest, market: Market, context: dict, error: DomainError
) -> HttpResponse:
    messages.error(request, error.message)
    if isinstance(error, StatementRejected):
        context.update(_report_context(error.report))
    return render_market(request, market, TEMPLATE, context, status=400)


def _report_context(report: StatementReport) -> dict:
    return {
        "report": report,
        "preview_lines": report.to_create[:PREVIEW_ROWS],
        "preview_duplicates": report.duplicates[:PREVIEW_ROWS],
        "more_lines": max(len(report.to_create) - PREVIEW_ROWS, 0),
        "more_duplicates": max(len(report.duplicates) - PREVIEW_ROWS, 0),
        "more_errors": report.error_count - len(report.errors),
    }
