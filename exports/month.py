"""A whole month of one market, end to end, on whatever database the settings name.

``month_run`` composes the existing workflows, in order, each timed as a stage:

1. **seed** — the demo market (``market40.demo.seed_demo`` and its ``demo_seeded`` receivers,
   which add one bank connection per provider) unless a market with that code exists, which is
   then reused as it is (``--stalls`` only applies to a new market);
2. **bill** — ``billing_run_create`` for the period (bills only leases not billed yet);
3. **certificate** — a self-signed test certificate (``make_test_certificate``) when the market
   has none configured; a configured but unusable one is refused with its own message;
4. **simulate** — a web server process (gunicorn, else ``runserver --noreload``) on a free
   loopback port with the same settings and database and ``TASKS_BACKEND=immediate``, and the
   bank simulator paying the period's open demands over real HTTP with the chosen faults;
   the server is always stopped (also on Ctrl-C) and its log kept in the out folder;
5. **reconcile** — catches up any authentic delivery not processed yet (none when the server
   ran tasks immediately; ``event_process`` otherwise);
6. **issue** — ``invoices_issue_for_period``: every fully paid demand without an invoice;
7. **verify** — every invoice of the period with our verifier: signatures valid, the seller
   certificate names the seller's tax code, the totals identities hold, the amount in words
   reads the total, and the document's serial, number and total are those stored;
8. **export** — every export kind (``exports.writers``) into the out folder;
9. **check** — the invariants (``month_checks``), each reported OK or not.

A second run on the same market and period is idempotent: billing and issuance find nothing to
do, and when the ledger of the connection's earlier simulation is in the out folder and billing
changed nothing, the simulation is not sent again (the stored ledger is checked instead); the
invariants are checked again on what the database holds.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.db.models import Count, Max, Min, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from exports import services as export_services
from exports import writers
from exports.models import ExportKind
from invoicing import services as invoicing_services
from invoicing.models import Invoice, InvoiceSerial, InvoiceSettings
from invoicing.signing import VerificationError, verify_invoice
from invoicing.xml import InvoiceXmlError, parse_invoice_summary
from market40.demo import seed_demo
from market40.errors import DomainError
from market40.models import FeeDemand, Market
from market40.services import billing_run_create
from payments.models import Allocation, BankConnection, BankTransaction, Provider, WebhookEvent
from payments.services import connection_create, event_process
from payments.simulator import (
    FAULTS,
    HttpTransport,
    InProcessTransport,
    SimulationOptions,
    Transport,
    deliver_plan,
    ledger_stored_check,
    simulation_plan,
)

logger = logging.getLogger(__name__)

DEMO_MARKET = "CHOMAU"
SERVERS = ("auto", "gunicorn", "runserver", "in-process")
PAID = (FeeDemand.Status.PAID, FeeDemand.Status.OVERPAID)

Progress = Callable[[int, int], None]
ProgressFactory = Callable[[str], Progress | None]
Say = Callable[[str], None]


class MonthError(DomainError):
    """A stage could not run at all (the server did not start, no connection, …)."""

    code = "demo_month_failed"
    status = 500


# --- options and results -------------------------------------------------------------------


@dataclass(frozen=True)
class MonthOptions:
    market_code: str = DEMO_MARKET
    stalls: int = 200
    provider: str = Provider.SEPAY
    period: date | None = None  # None: the current month
    out_dir: Path | None = None  # None: <VAR_DIR>/demo_month/<market>-<YYYY-MM>
    seed: int = 2026
    faults: frozenset[str] = frozenset(FAULTS)
    share_paid: float = 0.8
    concurrency: int = 8
    backoff_ms: int = 1000
    late_ms: int = 2000
    timeout_s: float = 60.0
    server: str = "auto"
    workers: int = 2

    def resolved_period(self) -> date:
        return (self.period or timezone.localdate()).replace(day=1)

    def resolved_out_dir(self) -> Path:
        if self.out_dir is not None:
            return Path(self.out_dir)
        period = self.resolved_period()
        return Path(settings.VAR_DIR) / "demo_month" / f"{self.market_code}-{period:%Y-%m}"


@dataclass(frozen=True)
class Check:
    """One invariant: a stable key, a short Vietnamese name, whether it holds, and the
    figures behind it."""

    key: str
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Stage:
    name: str
    seconds: float


@dataclass
class Figures:
    """What the month looks like in the database after the run (money in đồng)."""

    billed: int = 0
    billed_vnd: int = 0
    paid: int = 0
    paid_vnd: int = 0
    partial: int = 0
    partial_paid_vnd: int = 0
    partial_due_vnd: int = 0
    unpaid: int = 0
    unpaid_vnd: int = 0
    collected_vnd: int = 0
    received: int = 0
    received_vnd: int = 0
    credits: int = 0
    credit_vnd: int = 0
    unmatched: int = 0
    unmatched_vnd: int = 0
    invoices: int = 0
    invoices_vnd: int = 0
    serials: list[str] = field(default_factory=list)


@dataclass
class Verification:
    checked: int = 0
    valid: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.checked == self.valid and not self.failures


@dataclass
class MonthResult:
    market_code: str
    period: date
    out_dir: Path
    provider: str = ""
    connection_id: str = ""
    market_created: bool = False
    stalls: int = 0
    billed_now: int = 0
    already_billed: int = 0
    simulated: bool = False
    server: str = ""
    ledger_path: Path | None = None
    simulation: dict[str, int] = field(default_factory=dict)
    caught_up: int = 0
    certificate_created: bool = False
    issued_now: int = 0
    issue_failures: list[str] = field(default_factory=list)
    verification: Verification = field(default_factory=Verification)
    files: list[tuple[str, int]] = field(default_factory=list)
    figures: Figures = field(default_factory=Figures)
    checks: list[Check] = field(default_factory=list)
    stages: list[Stage] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    @property
    def total_seconds(self) -> float:
        return sum(stage.seconds for stage in self.stages)


# --- the web server ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_kind(requested: str) -> str:
    """``auto`` is gunicorn when it is installed (several worker processes, so the webhook
    requests use both cores), else Django's ``runserver`` (threads in one process)."""
    if requested != "auto":
        return requested
    return "gunicorn" if importlib.util.find_spec("gunicorn") else "runserver"


def server_command(kind: str, port: int, *, workers: int) -> list[str]:
    if kind == "gunicorn":
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "market40.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(max(1, workers)),
            "--timeout",
            "120",
            "--graceful-timeout",
            "10",
            "--access-logfile",
            "-",
            "--error-logfile",
            "-",
        ]
    manage = Path(settings.BASE_DIR) / "manage.py"
    return [sys.executable, str(manage), "runserver", f"127.0.0.1:{port}", "--noreload"]


def server_environment(kind: str) -> dict[str, str]:
    """This process's environment (so the same settings, database and secret key), with the
    background tasks run inside the request, as ``make run`` does: a delivery is reconciled
    before it is answered, so nothing is left queued when the simulator finishes.

    gunicorn's workers keep their database connection between requests unless told otherwise
    (``DB_CONN_MAX_AGE``): a new PostgreSQL connection per delivery doubled the time of the
    simulation stage. ``runserver`` starts a thread per request, so it keeps the default.
    """
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "market40.settings")
    env["TASKS_BACKEND"] = "immediate"
    env["PYTHONUNBUFFERED"] = "1"
    if kind == "gunicorn":
        env.setdefault("DB_CONN_MAX_AGE", "60")
    return env


def _wait_for_port(port: int, process: subprocess.Popen, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise MonthError(
                f"Máy chủ web dừng ngay khi khởi động (mã {process.returncode}); xem {log_path}."
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise MonthError(f"Máy chủ web không mở cổng {port} sau {timeout_s:.0f} giây; xem {log_path}.")


def stop_process(process: subprocess.Popen, *, grace_s: float = 15) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def web_server(kind: str, *, log_path: Path, workers: int = 2) -> Iterator[str]:
    """A server process on a free loopback port; yields its base URL and always stops it.

    It runs in its own session, so a Ctrl-C in the terminal reaches only this process, whose
    ``finally`` then stops the server cleanly.
    """
    port = free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            server_command(kind, port, workers=workers),
            cwd=settings.BASE_DIR,
            env=server_environment(kind),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_for_port(port, process, log_path, timeout_s=60)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_process(process)


class CountingTransport:
    """Passes requests on and reports how many deliveries have been answered so far."""

    def __init__(self, inner: Transport, total: int, progress: Progress | None) -> None:
        self.inner = inner
        self.label = inner.label
        self.total = total
        self.progress = progress
        self.answered = 0

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        answer = self.inner.post(path, body, headers)
        self.answered += 1
        if self.progress is not None:
            self.progress(min(self.answered, self.total), self.total)
        return answer

    def close(self) -> None:
        if self.progress is not None:
            self.progress(self.total, self.total)
        self.inner.close()


# --- the stages ----------------------------------------------------------------------------


def _seed(options: MonthOptions, period: date, result: MonthResult, say: Say) -> Market:
    market = Market.objects.filter(code=options.market_code).first()
    if market is not None:
        result.stalls = market.stalls.count()
        say(
            f"Chợ {market.code} đã có ({result.stalls} sạp): dùng lại, không tạo mới"
            + (f" (bỏ qua --stalls {options.stalls})" if options.stalls != result.stalls else "")
            + "."
        )
        return market
    # The demo's tariffs start on 1 January and its meters are read up to ``today``: seeding as
    # of the period's last day makes any period of the year billable with its readings.
    today = timezone.localdate()
    as_of = writers.period_end(period)
    if as_of.year == today.year:
        as_of = max(as_of, today)
    seeded = seed_demo(
        code=options.market_code, stalls=options.stalls, seed=options.seed, today=as_of
    )
    from market40.signals import demo_seeded

    demo_seeded.send(sender=Market, market=seeded.market)
    result.market_created = True
    result.stalls = seeded.stalls
    say(f"Đã tạo chợ mẫu {seeded.market.code}: {seeded.stalls} sạp, {seeded.holders} tiểu thương.")
    return seeded.market


def _connection(market: Market, provider: str, say: Say) -> BankConnection:
    connection = (
        BankConnection.objects.select_related("market", "account")
        .filter(market=market, provider=provider, active=True)
        .order_by("created_at", "id")
        .first()
    )
    if connection is None:
        created, _secret, _generated = connection_create(market=market, provider=provider)
        connection = BankConnection.objects.select_related("market", "account").get(pk=created.pk)
        say(f"Đã thêm kết nối {provider} cho chợ {market.code}: {connection.webhook_path}")
    return connection


def _bill(market: Market, period: date, result: MonthResult, progress: Progress | None, say: Say):
    billed = billing_run_create(market=market, period=period, progress=progress)
    result.billed_now = billed.created
    result.already_billed = billed.already_billed
    if billed.changed_nothing:
        say(
            f"Kỳ {period:%m/%Y} đã được lập phí trước đó ({billed.already_billed} hợp đồng); "
            "không lập thêm."
        )
    else:
        say(f"Đã lập {billed.created} phiếu báo phí kỳ {period:%m/%Y}.")
    if billed.missing_readings:
        say(f"  Thiếu chỉ số công tơ: {len(billed.missing_readings)} mục.")
    return billed


def _certificate(market: Market, result: MonthResult, say: Say) -> None:
    """A test certificate when the market has none; a configured one is never replaced."""
    configured = InvoiceSettings.objects.filter(market=market).exclude(certificate_path="").first()
    if configured is None or not Path(configured.certificate_path).exists():
        call_command("make_test_certificate", market.code, "--force", stdout=io.StringIO())
        result.certificate_created = True
        say(f"Đã tạo chứng thư số thử nghiệm cho chợ {market.code}.")
    invoicing_services.check_ready_to_issue(market=market)


def _simulate(
    options: MonthOptions,
    connection: BankConnection,
    period: date,
    ledger_path: Path,
    out_dir: Path,
    result: MonthResult,
    progress: Progress | None,
    say: Say,
) -> dict[str, Any]:
    kind = server_kind(options.server)
    result.server = kind
    simulation = SimulationOptions(
        seed=options.seed,
        share_paid=options.share_paid,
        faults=options.faults,
        backoff_ms=options.backoff_ms,
        late_ms=options.late_ms,
        # In-process deliveries share this thread's database connection: one at a time.
        concurrency=1 if kind == "in-process" else options.concurrency,
        timeout_s=options.timeout_s,
    )
    plan = simulation_plan(connection=connection, period=period, options=simulation)
    if kind == "in-process":
        transport = CountingTransport(InProcessTransport(), len(plan.deliveries), progress)
        ledger = deliver_plan(plan, transport=transport)
    else:
        log_path = out_dir / "server.log"
        with web_server(kind, log_path=log_path, workers=options.workers) as url:
            say(f"Máy chủ {kind} tại {url} (nhật ký: {log_path}).")
            inner = HttpTransport(url, timeout_s=simulation.timeout_s)
            transport = CountingTransport(inner, len(plan.deliveries), progress)
            ledger = deliver_plan(plan, transport=transport)
    ledger.write(ledger_path)
    result.simulation = ledger.summary
    return ledger.as_json()


def _catch_up(connection: BankConnection) -> int:
    """Process the authentic deliveries the server left unprocessed (a task backend that
    queues instead of running, or a failure recorded on the event)."""
    pending = WebhookEvent.objects.filter(connection=connection).filter(
        Q(outcome=WebhookEvent.Outcome.ACCEPTED, processed_at__isnull=True)
        | (
            Q(outcome__in=[WebhookEvent.Outcome.ACCEPTED, WebhookEvent.Outcome.DUPLICATE])
            & ~Q(processing_error="")
        )
    )
    done = 0
    for event_id in pending.order_by("pk").values_list("pk", flat=True):
        try:
            event_process(event_id)
        except Exception:  # recorded on the event by event_process; the invariants report it
            logger.exception("webhook event %s could not be processed", event_id)
        done += 1
    return done


def _issue(market: Market, period: date, result: MonthResult, progress: Progress | None, say):
    issued = invoicing_services.invoices_issue_for_period(
        market=market, period=period, progress=progress
    )
    result.issued_now = issued.issued
    result.issue_failures = [f"{f.payment_code}: {f.message}" for f in issued.failures]
    if issued.issued:
        say(
            f"Đã xuất {issued.issued} hóa đơn ({issued.serial}, số "
            f"{issued.first_number}–{issued.last_number})."
        )
    else:
        say(f"Không có hóa đơn mới ({issued.already_issued} phiếu đã có hóa đơn).")
    if result.issue_failures:
        say(f"  Chưa xuất được {len(result.issue_failures)}: {_limited(result.issue_failures)}")


def verify_invoices(
    market: Market, period: date, *, progress: Progress | None = None
) -> Verification:
    """Every invoice of the period through our own verifier and the totals identities."""
    report = Verification()
    invoices = writers.invoice_selection(market, period)
    total = invoices.count()
    rows = (
        invoices.order_by("pk")
        .values_list("pk", "form", "serial_code", "number", "total_payable_vnd", "seller_tax_code")
        .iterator(chunk_size=writers.CHUNK)
    )
    for batch in writers._batches(rows, writers.ZIP_BATCH):
        documents = dict(
            Invoice.objects.filter(pk__in=[row[0] for row in batch]).values_list("pk", "xml")
        )
        for pk, form, serial, number, payable, seller in batch:
            label = f"{form}{serial} số {number}"
            problem = _invoice_problem(bytes(documents.pop(pk)), serial, number, payable, seller)
            report.checked += 1
            if problem:
                report.failures.append(f"{label}: {problem}")
            else:
                report.valid += 1
        if progress is not None:
            progress(report.checked, total)
    return report


def _invoice_problem(xml: bytes, serial: str, number: int, payable: int, seller: str) -> str:
    try:
        signatures = verify_invoice(xml)
        summary = parse_invoice_summary(xml)
    except (VerificationError, InvoiceXmlError) as error:
        return str(getattr(error, "message_vi", error))
    if not signatures.valid:
        errors = "; ".join(e for s in signatures.signatures for e in s.errors)
        return f"chữ ký không hợp lệ ({errors or 'không có chữ ký'})"
    if signatures.seller is None or signatures.seller.signer_mst != seller:
        return "chứng thư ký không mang MST người bán"
    if summary["identity_problems"]:
        return "đẳng thức tổng tiền sai: " + "; ".join(summary["identity_problems"])
    if summary["words_match"] is not True:
        return "số tiền bằng chữ không đọc đúng tổng tiền"
    if (summary["serial"], summary["number"], summary["total_payable"]) != (
        serial,
        number,
        payable,
    ):
        return "ký hiệu, số hoặc tổng tiền trong XML khác với bản đã lưu"
    return ""


def write_exports(
    market: Market, period: date, out_dir: Path, *, progress: ProgressFactory | None = None
) -> list[Path]:
    paths = []
    for kind in ExportKind.values:
        path = out_dir / writers.file_name(kind, market, period)
        bar = progress(f"Xuất {kind}") if progress else None
        export_services.write_file(kind=kind, market=market, period=period, path=path, progress=bar)
        paths.append(path)
    return paths


# --- figures -------------------------------------------------------------------------------


def month_figures(market: Market, period: date) -> Figures:
    figures = Figures()
    demands = FeeDemand.objects.filter(market=market, period=period).exclude(
        status=FeeDemand.Status.CANCELLED
    )
    for status, n, total, paid in (
        demands.order_by()
        .values_list("status")
        .annotate(n=Count("id"), total=Sum("total_vnd"), paid=Sum("paid_vnd"))
    ):
        figures.billed += n
        figures.billed_vnd += total or 0
        figures.collected_vnd += paid or 0
        if status in PAID:
            figures.paid += n
            figures.paid_vnd += paid or 0
        elif status == FeeDemand.Status.PARTIAL:
            figures.partial += n
            figures.partial_paid_vnd += paid or 0
            figures.partial_due_vnd += (total or 0) - (paid or 0)
        else:
            figures.unpaid += n
            figures.unpaid_vnd += total or 0

    start, end = writers.month_bounds(period)
    incoming = BankTransaction.objects.filter(
        connection__market=market,
        direction=BankTransaction.Direction.IN,
        is_test=False,
        bank_time__gte=start,
        bank_time__lt=end,
    )
    received = incoming.aggregate(n=Count("id"), s=Sum("amount_vnd"))
    figures.received, figures.received_vnd = received["n"], received["s"] or 0
    credits = incoming.filter(credit_vnd__gt=0).aggregate(n=Count("id"), s=Sum("credit_vnd"))
    figures.credits, figures.credit_vnd = credits["n"], credits["s"] or 0
    unmatched = incoming.filter(
        status__in=[BankTransaction.Status.UNMATCHED, BankTransaction.Status.PARTLY]
    ).aggregate(n=Count("id"), a=Sum("amount_vnd"), u=Sum("allocated_vnd"), c=Sum("credit_vnd"))
    figures.unmatched = unmatched["n"]
    figures.unmatched_vnd = (unmatched["a"] or 0) - (unmatched["u"] or 0) - (unmatched["c"] or 0)

    invoices = writers.invoice_selection(market, period)
    counted = invoices.aggregate(n=Count("id"), s=Sum("total_payable_vnd"))
    figures.invoices, figures.invoices_vnd = counted["n"], counted["s"] or 0
    for form, serial, first, last in (
        invoices.order_by("form", "serial_code")
        .values_list("form", "serial_code")
        .annotate(first=Min("number"), last=Max("number"))
    ):
        figures.serials.append(f"{form}{serial} số {first}–{last}")
    return figures


# --- invariants ----------------------------------------------------------------------------


def _limited(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" và {len(items) - limit} mục khác" if len(items) > limit else "")


LEDGER_NAME = "Sổ ghi ngân hàng mô phỏng khớp giao dịch đã lưu"


def check_ledger(ledger: dict[str, Any] | None, market: Market) -> list[Check]:
    """The simulator's ledger against what the service stored: every transfer that a 2xx
    delivery carried is stored once, nothing else is; no delivery failed; every targeted demand
    ended where the ledger says it should."""
    if ledger is None:
        return [Check("ledger", LEDGER_NAME, True, "không có sổ ghi để so")]
    connection = BankConnection.objects.filter(pk=ledger["connection"], market=market).first()
    if connection is None:
        return [
            Check(
                "ledger",
                LEDGER_NAME,
                False,
                f"kết nối {ledger['connection']} không thuộc chợ {market.code}",
            )
        ]
    stored = ledger_stored_check(ledger, connection)
    failed = sum(1 for d in ledger["deliveries"] if d["outcome"] == "failed")
    checks = [
        Check(
            "ledger",
            LEDGER_NAME,
            stored["missing"] == 0 and stored["unexpected"] == 0 and failed == 0,
            f"{stored['stored']}/{stored['expected']} đã lưu, thiếu {stored['missing']}, "
            f"thừa {stored['unexpected']}, lần gửi thất bại {failed}",
        )
    ]
    expected = ledger["demands"]
    actual = {
        code: (paid, status)
        for code, paid, status in FeeDemand.objects.filter(
            market=market, payment_code__in=list(expected)
        ).values_list("payment_code", "paid_vnd", "status")
    }
    wrong = [
        code
        for code, want in expected.items()
        if actual.get(code) != (want["expected_paid_vnd"], want["expected_status"])
    ]
    checks.append(
        Check(
            "ledger_demands",
            "Phiếu được trả đúng như sổ ghi",
            not wrong,
            f"{len(expected) - len(wrong)}/{len(expected)} phiếu đúng"
            + (f"; sai: {_limited(wrong)}" if wrong else ""),
        )
    )
    return checks


def check_transactions(market: Market) -> Check:
    """For every transaction of the market: the cached allocated/credit amounts equal its
    allocation rows, allocated + credit + unmatched = amount with nothing negative, its status
    follows from them, and it has been through reconciliation."""
    rows = (
        BankTransaction.objects.filter(connection__market=market)
        .order_by("pk")
        .values_list("pk", "amount_vnd", "allocated_vnd", "credit_vnd", "status", "reconciled_at")
        .annotate(
            to_demands=Coalesce(
                Sum("allocations__amount_vnd", filter=Q(allocations__kind=Allocation.Kind.DEMAND)),
                0,
            ),
            refunded=Coalesce(
                Sum("allocations__amount_vnd", filter=Q(allocations__kind=Allocation.Kind.REFUND)),
                0,
            ),
            credited=Coalesce(
                Sum("allocations__amount_vnd", filter=Q(allocations__kind=Allocation.Kind.CREDIT)),
                0,
            ),
        )
    )
    bad: list[str] = []
    count = total = 0
    for (
        pk,
        amount,
        allocated,
        credit,
        status,
        reconciled_at,
        to_demands,
        refunded,
        credited,
    ) in rows:
        count += 1
        total += amount
        problem = ""
        if allocated != to_demands + refunded or credit != credited:
            problem = "số đã phân bổ khác các dòng phân bổ"
        elif status == BankTransaction.Status.IGNORED:
            if allocated or credit:
                problem = "giao dịch bỏ qua mà có phân bổ"
        else:
            unmatched = amount - allocated - credit
            if allocated < 0 or credit < 0 or unmatched < 0:
                problem = "phân bổ + tiền thừa vượt số tiền"
            elif allocated + credit + unmatched != amount:
                problem = "phân bổ + tiền thừa + chưa khớp ≠ số tiền"
            elif status != (
                BankTransaction.Status.UNMATCHED
                if unmatched == amount
                else BankTransaction.Status.MATCHED
                if unmatched == 0
                else BankTransaction.Status.PARTLY
            ):
                problem = f"trạng thái {status} không khớp số tiền"
        if not problem and reconciled_at is None:
            problem = "chưa được đối soát"
        if problem:
            bad.append(f"#{pk} ({problem})")
    return Check(
        "transactions",
        "Mỗi giao dịch: phân bổ + tiền thừa + chưa khớp = số tiền",
        not bad,
        f"{count - len(bad)}/{count} giao dịch đúng" + (f"; sai: {_limited(bad)}" if bad else ""),
    )


def check_demands(market: Market) -> Check:
    """For every demand of the market: paid = Σ its allocations (payments and write-offs),
    0 ≤ paid ≤ total, and the status follows from them."""
    rows = (
        FeeDemand.objects.filter(market=market)
        .order_by("pk")
        .values_list("payment_code", "total_vnd", "paid_vnd", "status")
        .annotate(
            allocated=Coalesce(
                Sum(
                    "allocations__amount_vnd",
                    filter=Q(
                        allocations__kind__in=[Allocation.Kind.DEMAND, Allocation.Kind.WRITEOFF]
                    ),
                ),
                0,
            )
        )
    )
    bad: list[str] = []
    count = 0
    for code, total, paid, status, allocated in rows:
        count += 1
        if paid != allocated:
            bad.append(f"{code} (đã thu {paid} ≠ phân bổ {allocated})")
        elif not 0 <= paid <= total:
            bad.append(f"{code} (đã thu {paid} ngoài 0…{total})")
        elif status != FeeDemand.Status.CANCELLED and status != FeeDemand.status_for(total, paid):
            bad.append(f"{code} (trạng thái {status})")
    return Check(
        "demands",
        "Mỗi phiếu: đã thu = tổng phân bổ ≤ tổng tiền",
        not bad,
        f"{count - len(bad)}/{count} phiếu đúng" + (f"; sai: {_limited(bad)}" if bad else ""),
    )


def check_invoice_per_paid_demand(market: Market, period: date) -> Check:
    """Every fully paid demand of the period has exactly one original invoice, and no other
    demand has one."""
    rows = (
        FeeDemand.objects.filter(market=market, period=period)
        .order_by("pk")
        .values_list("payment_code", "status")
        .annotate(n=Count("invoices", filter=Q(invoices__kind=Invoice.Kind.ORIGINAL)))
    )
    bad: list[str] = []
    paid = right = 0
    for code, status, n in rows:
        if status in PAID:
            paid += 1
            if n == 1:
                right += 1
            else:
                bad.append(f"{code} ({n} hóa đơn)")
        elif n:
            bad.append(f"{code} (chưa trả đủ mà có {n} hóa đơn)")
    return Check(
        "invoice_per_paid_demand",
        "Mỗi phiếu đã trả đủ có đúng một hóa đơn",
        not bad,
        f"{right}/{paid} phiếu đã trả đủ có đúng một hóa đơn"
        + (f"; sai: {_limited(bad)}" if bad else ""),
    )


def check_numbering(market: Market) -> Check:
    """Per serial of the market: numbers 1..n without gap or repeat, and the counter at n + 1."""
    bad: list[str] = []
    described: list[str] = []
    for serial in InvoiceSerial.objects.filter(market=market).order_by("form", "serial"):
        numbers = sorted(serial.invoices.values_list("number", flat=True))
        label = f"{serial.form}{serial.serial}"
        described.append(f"{label} 1–{len(numbers)}")
        if numbers != list(range(1, len(numbers) + 1)):
            missing = sorted(set(range(1, (numbers[-1] if numbers else 0) + 1)) - set(numbers))
            repeated = sorted(n for n, k in Counter(numbers).items() if k > 1)
            bad.append(f"{label}: thiếu số {missing[:5]}, trùng số {repeated[:5]}")
        elif serial.next_number != len(numbers) + 1:
            bad.append(f"{label}: số tiếp theo {serial.next_number} ≠ {len(numbers) + 1}")
    return Check(
        "numbering",
        "Số hóa đơn liên tục 1..n theo ký hiệu",
        not bad,
        ("; ".join(bad) if bad else ", ".join(described) or "chưa có ký hiệu nào"),
    )


def check_verification(report: Verification) -> Check:
    return Check(
        "verification",
        "Mọi hóa đơn kiểm tra đạt (chữ ký, đẳng thức tổng tiền)",
        report.ok,
        f"{report.valid}/{report.checked} đạt"
        + (f"; không đạt: {_limited(report.failures, 3)}" if report.failures else ""),
    )


def check_zip(path: Path, market: Market, period: date) -> Check:
    """The archive holds every invoice of the period once, each file's SHA-256 equal to its
    manifest line and to the digest stored at signing."""
    name = "Tệp ZIP: SHA-256 trong danh sách khớp hóa đơn đã lưu"
    stored = {
        (form, serial, number): sha
        for form, serial, number, sha in writers.invoice_selection(market, period).values_list(
            "form", "serial_code", "number", "sha256"
        )
    }
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = archive.read(writers.MANIFEST_NAME).decode("utf-8-sig")
            rows = list(csv.reader(io.StringIO(manifest)))[1:]
            bad: list[str] = []
            seen: set[tuple[str, str, int]] = set()
            for row in rows:
                entry, form, serial, number, digest = row[0], row[1], row[2], int(row[3]), row[11]
                key = (form, serial, number)
                actual = hashlib.sha256(archive.read(entry)).hexdigest()
                if actual != digest or stored.get(key) != digest or key in seen:
                    bad.append(entry)
                seen.add(key)
            entries = len(archive.namelist()) - 1
    except (OSError, KeyError, ValueError, IndexError, zipfile.BadZipFile) as error:
        return Check("zip", name, False, f"không đọc được {path.name}: {error}")
    missing = len(set(stored) - seen)
    ok = not bad and not missing and entries == len(rows) == len(stored)
    return Check(
        "zip",
        name,
        ok,
        f"{len(rows) - len(bad)}/{len(stored)} tệp khớp"
        + (f"; sai: {_limited(bad)}" if bad else "")
        + (f"; thiếu {missing}" if missing else ""),
    )


def _bangke_totals_row(rows: list[list[Any]]) -> tuple[int, int, int] | None:
    for row in reversed(rows):
        if len(row) > 11 and row[1] == writers.BANGKE_TOTAL_LABEL:
            return int(row[8] or 0), int(row[10] or 0), int(row[11] or 0)
    return None


def check_bangke(paths: list[Path], market: Market, period: date) -> Check:
    """The totals row of each bảng kê equals the sum of the period's invoices (replaced ones
    left out, as the bảng kê does)."""
    sums = (
        writers.invoice_selection(market, period)
        .exclude(status=Invoice.Status.REPLACED)
        .aggregate(
            net=Coalesce(Sum("total_net_vnd"), 0),
            vat=Coalesce(Sum("total_vat_vnd"), 0),
            payable=Coalesce(Sum("total_payable_vnd"), 0),
        )
    )
    want = (sums["net"], sums["vat"], sums["payable"])
    bad: list[str] = []
    for path in paths:
        try:
            if path.suffix == ".csv":
                text = path.read_text(encoding="utf-8-sig")
                rows = [list(row) for row in csv.reader(io.StringIO(text))]
            else:
                from openpyxl import load_workbook

                workbook = load_workbook(path, read_only=True, data_only=True)
                rows = [list(row) for row in workbook.worksheets[0].iter_rows(values_only=True)]
                workbook.close()
            got = _bangke_totals_row(rows)
        except (OSError, ValueError) as error:
            bad.append(f"{path.name}: {error}")
            continue
        if got != want:
            bad.append(f"{path.name}: {got} ≠ {want}")
    return Check(
        "bangke",
        "Bảng kê: dòng tổng cộng = tổng các hóa đơn",
        not bad and bool(paths),
        "; ".join(bad)
        if bad
        else f"chưa thuế {want[0]}, thuế {want[1]}, tổng {want[2]} đồng ({len(paths)} tệp)",
    )


def month_checks(
    *,
    market: Market,
    period: date,
    ledger: dict[str, Any] | None,
    verification: Verification,
    files: list[Path],
) -> list[Check]:
    """Every invariant of the month, each a ``Check`` (never an exception)."""
    by_kind = {path.name: path for path in files}

    def export(kind: str) -> Path:
        return by_kind.get(writers.file_name(kind, market, period), Path("/nonexistent"))

    return [
        *check_ledger(ledger, market),
        check_transactions(market),
        check_demands(market),
        check_invoice_per_paid_demand(market, period),
        check_numbering(market),
        check_verification(verification),
        check_zip(export(ExportKind.XML_ZIP), market, period),
        check_bangke(
            [export(ExportKind.BANGKE_XLSX), export(ExportKind.BANGKE_CSV)], market, period
        ),
    ]


# --- the whole month -----------------------------------------------------------------------


@contextmanager
def _stage(result: MonthResult, name: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        result.stages.append(Stage(name, time.monotonic() - started))


def _read_ledger(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def month_run(
    *,
    options: MonthOptions,
    progress: ProgressFactory | None = None,
    say: Say | None = None,
) -> MonthResult:
    """Run the month (see the module docstring); stages that cannot run raise a ``DomainError``,
    failed invariants are reported in ``MonthResult.checks``."""
    say = say or (lambda _line: None)

    def bar(label: str) -> Progress | None:
        return progress(label) if progress else None

    period = options.resolved_period()
    out_dir = options.resolved_out_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    result = MonthResult(market_code=options.market_code, period=period, out_dir=out_dir)
    result.provider = options.provider

    with _stage(result, "Chợ mẫu / seed"):
        market = _seed(options, period, result, say)
        connection = _connection(market, options.provider, say)
        result.connection_id = connection.pk
    with _stage(result, "Lập phí / bill"):
        billed = _bill(market, period, result, bar(f"Lập phí {market.code} {period:%m/%Y}"), say)
    with _stage(result, "Chứng thư số / certificate"):
        _certificate(market, result, say)

    ledger_path = out_dir / f"ledger-{options.provider}.json"
    result.ledger_path = ledger_path
    previous = _read_ledger(ledger_path)
    with _stage(result, "Ngân hàng mô phỏng / simulate"):
        if (
            previous is not None
            and previous.get("connection") == connection.pk
            and previous.get("period") == f"{period:%Y-%m}"
            and billed.changed_nothing
        ):
            ledger = previous
            result.simulation = previous.get("summary", {})
            say(
                f"Kỳ {period:%m/%Y} đã được mô phỏng trước đó ({ledger_path.name}); không gửi "
                "lại, chỉ kiểm tra lại."
            )
        else:
            ledger = _simulate(
                options,
                connection,
                period,
                ledger_path,
                out_dir,
                result,
                bar(f"Gửi webhook {options.provider}"),
                say,
            )
            result.simulated = True
    with _stage(result, "Đối soát / reconcile"):
        result.caught_up = _catch_up(connection)
        if result.caught_up:
            say(f"Đã đối soát bù {result.caught_up} lần gọi webhook chưa được xử lý.")
    with _stage(result, "Xuất hóa đơn / issue"):
        _issue(market, period, result, bar(f"Ký hóa đơn {market.code} {period:%m/%Y}"), say)
    with _stage(result, "Kiểm tra hóa đơn / verify"):
        result.verification = verify_invoices(market, period, progress=bar("Kiểm tra hóa đơn"))
    with _stage(result, "Tệp xuất / export"):
        files = write_exports(market, period, out_dir, progress=progress)
        result.files = [(path.name, path.stat().st_size) for path in files]
    with _stage(result, "Bất biến / invariants"):
        result.figures = month_figures(market, period)
        result.checks = month_checks(
            market=market,
            period=period,
            ledger=ledger,
            verification=result.verification,
            files=files,
        )
    return result


def format_summary(result: MonthResult) -> list[str]:
    """The summary table, as lines (Vietnamese label / English label, figures)."""
    from market40.formatting import group_thousands, vnd

    f = result.figures
    rows: list[tuple[str, str]] = [
        ("Chợ, kỳ / market, period", f"{result.market_code} {result.period:%m/%Y}"),
        ("Lập phí / billed", f"{group_thousands(f.billed)} phiếu, {vnd(f.billed_vnd)}"),
        (
            "Đã thu / collected",
            f"{vnd(f.collected_vnd)}; trả đủ {group_thousands(f.paid)} phiếu, {vnd(f.paid_vnd)}",
        ),
        (
            "Trả một phần / partially paid",
            f"{group_thousands(f.partial)} phiếu, đã trả {vnd(f.partial_paid_vnd)}, "
            f"còn nợ {vnd(f.partial_due_vnd)}",
        ),
        ("Chưa trả / unpaid", f"{group_thousands(f.unpaid)} phiếu, {vnd(f.unpaid_vnd)}"),
        ("Tiền vào / received", f"{group_thousands(f.received)} giao dịch, {vnd(f.received_vnd)}"),
        ("Tiền thừa / credits", f"{group_thousands(f.credits)} giao dịch, {vnd(f.credit_vnd)}"),
        (
            "Chưa khớp / unmatched",
            f"{group_thousands(f.unmatched)} giao dịch, {vnd(f.unmatched_vnd)}",
        ),
        (
            "Hóa đơn / invoices",
            f"{group_thousands(f.invoices)} hóa đơn, {vnd(f.invoices_vnd)}"
            + (f" ({', '.join(f.serials)})" if f.serials else ""),
        ),
        (
            "Kiểm tra / verification",
            f"{result.verification.valid}/{result.verification.checked} hóa đơn đạt"
            if result.verification.ok
            else f"KHÔNG ĐẠT: {result.verification.valid}/{result.verification.checked}",
        ),
    ]
    if result.simulation:
        s = result.simulation
        rows.insert(
            1,
            (
                "Webhook / deliveries",
                f"đã gửi {s.get('sent', 0)} (lượt thử {s.get('attempts', 0)}), "
                f"trùng {s.get('duplicates', 0)}, bị từ chối {s.get('rejected', 0)}, "
                f"gửi lại {s.get('retried', 0)}, thất bại {s.get('failed', 0)}"
                + ("" if result.simulated else " (lần chạy trước)"),
            ),
        )
    width = max(len(label) for label, _ in rows)
    lines = [f"  {label:<{width}}  {value}" for label, value in rows]
    lines.append("  Tệp / files written:")
    for name, size in result.files:
        lines.append(f"    {name:<44} {group_thousands(size):>12} byte")
    if result.ledger_path is not None:
        lines.append(f"    (sổ ghi / ledger: {result.ledger_path.name})")
    lines.append("  Thời gian / elapsed:")
    for stage in result.stages:
        lines.append(f"    {stage.name:<34} {stage.seconds:8.1f} s")
    lines.append(f"    {'Tổng / total':<34} {result.total_seconds:8.1f} s")
    return lines
