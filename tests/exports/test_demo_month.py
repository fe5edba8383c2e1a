"""``manage.py demo_month``: a whole month end to end.

The first test runs it the way CI must: separate processes (``migrate``, then
``demo_month --stalls 200``) on a database of their own — a temporary SQLite file in the
SQLite pass, a fresh throw-away PostgreSQL database in the PostgreSQL pass — with a real web
server process and real HTTP, then checks what it printed and wrote, verifies the archived
invoices again in another process, and runs it a second time (idempotent).

The other tests run the month in-process (no server) on the test database and damage it one
way at a time: each invariant check must catch its own kind of damage, and the command must
then exit non-zero.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import uuid
import zipfile
from datetime import date
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import F

from exports import writers
from exports.models import ExportKind
from exports.month import MonthOptions, month_checks, month_run, verify_invoices
from invoicing.models import Invoice, InvoiceSerial
from market40.models import FeeDemand, Market
from payments.models import BankTransaction
from tests.conftest import run_manage

REPO = Path(__file__).resolve().parents[2]
PERIOD = "2026-05"
MAY = date(2026, 5, 1)
FAST = ["--backoff-ms", "20", "--late-ms", "50"]
SUMMARY_LABELS = [
    "Lập phí / billed",
    "Đã thu / collected",
    "Trả một phần / partially paid",
    "Tiền thừa / credits",
    "Chưa khớp / unmatched",
    "Hóa đơn / invoices",
    "Kiểm tra / verification",
    "Tệp / files written",
    "Tổng / total",
]
CHECK_KEYS = {
    "ledger",
    "ledger_demands",
    "transactions",
    "demands",
    "invoice_per_paid_demand",
    "numbering",
    "verification",
    "zip",
    "bangke",
}


def export_names(market_code: str) -> set[str]:
    return {
        f"{market_code}_{PERIOD}_{spec.slug}.{spec.extension}" for spec in writers.SPECS.values()
    }


# --- as CI runs it: separate processes, a database of their own --------------------------------


@pytest.fixture
def month_env(tmp_path):
    """The environment of the ``manage.py`` processes: their own var/ folder, and a database
    of this session's vendor that nothing else uses (created here, dropped afterwards)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.pop("DATABASE_URL_FILE", None)
    env.update(
        MARKET40_VAR_DIR=str(tmp_path / "var"),
        DJANGO_SETTINGS_MODULE="market40.settings",
        PYTHONUNBUFFERED="1",
    )
    if connection.vendor != "postgresql":
        env.pop("DATABASE_URL", None)
        yield env
        return

    import psycopg
    from psycopg import sql

    params = settings.DATABASES["default"]
    name = f"demo_month_{uuid.uuid4().hex[:12]}"
    server = dict(
        host=params.get("HOST") or "127.0.0.1",
        port=int(params.get("PORT") or 5432),
        user=params.get("USER") or "postgres",
        password=params.get("PASSWORD") or None,
    )
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    credentials = quote(server["user"], safe="")
    if server["password"]:
        credentials += ":" + quote(server["password"], safe="")
    env["DATABASE_URL"] = f"postgres://{credentials}@{server['host']}:{server['port']}/{name}"
    try:
        yield env
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return run_manage(env, *args, timeout=600)  # a month of 200 stalls, twice over HTTP


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def invariant_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if re.match(r"^  (OK|FAIL) ", line)]


def figure(output: str, label: str) -> str:
    line = next(line for line in output.splitlines() if line.strip().startswith(label))
    return line.split(label, 1)[1].strip()


def test_demo_month_of_200_stalls_runs_end_to_end_over_real_http_and_every_invariant_holds(
    month_env, tmp_path
):
    ok(manage(month_env, "migrate", "--noinput", "-v", "0"))
    out = tmp_path / "out"
    args = ["demo_month", "--stalls", "200", "--market", "CHODEMO", "--period", PERIOD]
    args += ["--out", str(out), "--seed", "7", *FAST]
    first = ok(manage(month_env, *args))

    assert "Đã tạo chợ mẫu CHODEMO: 200 sạp" in first
    for label in SUMMARY_LABELS:
        assert label in first, label
    checks = invariant_lines(first)
    assert len(checks) == len(CHECK_KEYS) and all(line.startswith("  OK ") for line in checks)
    assert f"Mọi bất biến đều đạt ({len(CHECK_KEYS)}/{len(CHECK_KEYS)})" in first

    billed = int(re.match(r"([\d.]+) phiếu", figure(first, "Lập phí / billed"))[1].replace(".", ""))
    invoices = int(re.match(r"([\d.]+) hóa đơn", figure(first, "Hóa đơn / invoices"))[1])
    assert billed >= 190  # every active stall of 200 (about 2 % are inactive)
    assert 0.4 * billed < invoices < billed  # most paid in full, not all
    assert figure(first, "Kiểm tra / verification") == f"{invoices}/{invoices} hóa đơn đạt"

    # The processes used the database of this pass: their own SQLite file, or PostgreSQL.
    sqlite_file = tmp_path / "var" / "market40.sqlite3"
    assert sqlite_file.exists() == (connection.vendor != "postgresql")

    written = {path.name for path in out.iterdir()}
    assert export_names("CHODEMO") | {"ledger-sepay.json", "server.log"} <= written
    assert all((out / name).stat().st_size > 0 for name in export_names("CHODEMO"))
    for name in export_names("CHODEMO"):
        assert re.search(rf"{re.escape(name)}\s+[\d.]+ byte", first), name

    # The deliveries went through the server process, one logged POST per answered attempt.
    ledger = json.loads((out / "ledger-sepay.json").read_text(encoding="utf-8"))
    assert ledger["target"].startswith("http://127.0.0.1:")
    answered = sum(
        1
        for d in ledger["deliveries"]
        for a in d["attempts"]
        if a["via"] == "endpoint" and a["status"] is not None
    )
    served = (out / "server.log").read_text(encoding="utf-8")
    logged = re.findall(r'"POST /webhooks/sepay/cn[0-9a-f]+/ HTTP/1\.[01]" (\d{3})', served)
    assert len(logged) == answered > 150
    assert {"200", "401"} <= set(logged)

    # The archived invoices verify again in a process that reads only the files.
    xml_dir = tmp_path / "xml"
    with zipfile.ZipFile(out / f"CHODEMO_{PERIOD}_hoa-don-xml.zip") as archive:
        names = [n for n in archive.namelist() if n.endswith(".xml")]
        archive.extractall(xml_dir, members=names)
    assert len(names) == invoices
    verified = ok(manage(month_env, "verify_invoice", *(str(xml_dir / n) for n in names)))
    assert f"{invoices}/{invoices} tệp đạt." in verified

    # Again: nothing billed, sent or issued twice; the invariants are checked again.
    second = ok(manage(month_env, *args))
    assert "Chợ CHODEMO đã có (200 sạp)" in second
    assert "đã được lập phí trước đó" in second
    assert "không gửi lại" in second
    assert "Không có hóa đơn mới" in second
    assert figure(second, "Hóa đơn / invoices") == figure(first, "Hóa đơn / invoices")
    assert figure(second, "Lập phí / billed") == figure(first, "Lập phí / billed")
    assert all(line.startswith("  OK ") for line in invariant_lines(second))


# --- in-process: the checks catch damage ---------------------------------------------------------


@pytest.fixture
def in_process(db, tmp_path, monkeypatch):
    """Certificates under tmp_path (never the developer's var/), files under tmp_path."""
    monkeypatch.setenv("INVOICING_CERT_DIR", str(tmp_path / "certificates"))
    return tmp_path


def small_month(out_dir: Path, code: str = "CHOTHU", stalls: int = 40):
    options = MonthOptions(
        market_code=code,
        stalls=stalls,
        period=MAY,
        out_dir=out_dir,
        seed=3,
        server="in-process",
        backoff_ms=2,
        late_ms=5,
    )
    return month_run(options=options)


def failing(checks) -> set[str]:
    assert {check.key for check in checks} == CHECK_KEYS
    return {check.key for check in checks if not check.ok}


def test_each_invariant_check_catches_its_own_kind_of_damage(in_process):
    out = in_process / "out"
    result = small_month(out)
    assert result.ok, [c for c in result.checks if not c.ok]
    assert failing(result.checks) == set()
    market = Market.objects.get(code="CHOTHU")
    ledger = json.loads(result.ledger_path.read_text(encoding="utf-8"))
    files = [out / name for name, _size in result.files]
    verification = result.verification
    assert verification.checked == verification.valid == Invoice.objects.count() > 10

    def checks():
        return month_checks(
            market=market, period=MAY, ledger=ledger, verification=verification, files=files
        )

    expected: set[str] = set()

    # An archived document that is not the one signed.
    zip_path = out / writers.file_name(ExportKind.XML_ZIP, market, MAY)
    with zipfile.ZipFile(zip_path) as archive:
        entries = {n: archive.read(n) for n in archive.namelist()}
    first_xml = next(n for n in entries if n.endswith(".xml"))
    entries[first_xml] = entries[first_xml].replace(b"<SHDon>", b"<SHDon>0", 1)
    with zipfile.ZipFile(zip_path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    expected.add("zip")
    assert failing(checks()) == expected

    # A bảng kê whose totals row is off by one đồng.
    csv_path = out / writers.file_name(ExportKind.BANGKE_CSV, market, MAY)
    rows = list(csv.reader(io.StringIO(csv_path.read_text(encoding="utf-8-sig"))))
    rows[-1][11] = str(int(rows[-1][11]) + 1)
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    csv_path.write_text(buffer.getvalue(), encoding="utf-8-sig")
    expected.add("bangke")
    assert failing(checks()) == expected

    # A delivered transfer that the service never stored.
    fake = dict(ledger["transfers"][0], provider_transaction_id="NEVER-STORED", delivered=True)
    fake["forged"] = False
    ledger["transfers"].append(fake)
    ledger["deliveries"][0]["provider_transaction_ids"].append("NEVER-STORED")
    ledger["deliveries"][0]["outcome"] = "delivered"
    expected.add("ledger")
    assert failing(checks()) == expected

    # A number skipped by the serial's counter.
    InvoiceSerial.objects.filter(market=market).update(next_number=F("next_number") + 1)
    expected.add("numbering")
    assert failing(checks()) == expected

    # A transaction whose cached allocation is not its allocation rows.
    unmatched = BankTransaction.objects.filter(
        connection__market=market, status="unmatched", direction="in"
    ).first()
    BankTransaction.objects.filter(pk=unmatched.pk).update(allocated_vnd=1000)
    expected.add("transactions")
    assert failing(checks()) == expected

    # A demand whose paid amount is not the sum of its allocations.
    partial = FeeDemand.objects.filter(market=market, period=MAY, status="partial").first()
    FeeDemand.objects.filter(pk=partial.pk).update(paid_vnd=F("paid_vnd") + 1000)
    expected |= {"demands", "ledger_demands"}
    assert failing(checks()) == expected

    # A stored invoice changed behind the application's back: its signature no longer holds.
    invoice = Invoice.objects.filter(market=market).order_by("pk").first()
    tampered = invoice.xml_bytes.replace(b"<TgTTTBSo>", b"<TgTTTBSo>1", 1)
    assert tampered != invoice.xml_bytes
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Invoice._meta.db_table} SET xml = %s WHERE id = %s", [tampered, invoice.pk]
        )
    verification = verify_invoices(market, MAY)
    assert verification.checked == verification.valid + 1
    assert invoice.label.split(" – ")[0] in verification.failures[0]
    expected.add("verification")
    assert failing(checks()) == expected

    # A demand settled without any invoice.
    unpaid = FeeDemand.objects.filter(market=market, period=MAY, status="open").first()
    FeeDemand.objects.filter(pk=unpaid.pk).update(status="paid", paid_vnd=F("total_vnd"))
    expected.add("invoice_per_paid_demand")
    assert failing(checks()) == expected == CHECK_KEYS


def test_demo_month_exits_non_zero_when_an_invariant_fails_and_a_rerun_checks_again(in_process):
    out = in_process / "out"
    args = ["--server", "in-process", "--stalls", "30", "--market", "CHOLOI", "--period", PERIOD]
    args += ["--out", str(out), "--backoff-ms", "2", "--late-ms", "5"]
    stdout = io.StringIO()
    call_command("demo_month", *args, stdout=stdout, stderr=io.StringIO())
    assert "Mọi bất biến đều đạt" in stdout.getvalue()
    assert export_names("CHOLOI") <= {path.name for path in out.iterdir()}
    invoices = Invoice.objects.count()

    demand = FeeDemand.objects.filter(market__code="CHOLOI", status="paid").first()
    FeeDemand.objects.filter(pk=demand.pk).update(paid_vnd=F("paid_vnd") - 1000)
    stdout = io.StringIO()
    with pytest.raises(CommandError, match="bất biến KHÔNG đạt") as raised:
        call_command("demo_month", *args, stdout=stdout, stderr=io.StringIO())
    assert raised.value.returncode != 0
    printed = stdout.getvalue()
    assert "không gửi lại" in printed and "Không có hóa đơn mới" in printed
    assert re.search(r"^  FAIL Mỗi phiếu: đã thu = tổng phân bổ", printed, re.M)
    assert demand.payment_code in printed
    assert Invoice.objects.count() == invoices
