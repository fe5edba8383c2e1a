"""Export speed and memory: a period with ``--invoices`` (100,000) invoices, each export timed
and its peak memory measured in a child process, against a floor measured the same way.

Data (not measured): ``seed_demo`` with a quarter more stalls than invoices (some are vacant),
billed for 01/2026 (rent, sanitation, security, electricity, water: ~5 lines a demand); one
demand is marked paid and issued by ``invoicing.services`` with a test certificate: a real
signed invoice. The others are **bulk-inserted**: their invoice rows reuse that signed XML with
their own ``SHDon`` written in (so every file differs and has its own SHA-256; their signatures
no longer verify, which no export checks: signing 100,000 invoices is ``bench_invoices.py``'s
subject, not this one), their lines derived from the demand lines like the invoicing services
do (VAT-inclusive breakdown), and one settling transfer with its allocation each. Then
``ANALYZE``, as a live database has planner statistics. The database is a throw-away one
(``_setup.py``), removed at the end unless ``--keep``.

Measured, each in a fresh child process (forked from a fork server started before the data
was built, so it inherits none of this process's memory) that sets Django up on the same
database, runs one thing and reports its own ``resource.getrusage(RUSAGE_SELF).ru_maxrss``
(and ``VmHWM`` from /proc as a cross-check):

* ``xml-zip``, ``bangke-xlsx``, ``misa-sales-xlsx`` through ``exports.writers.write_export``
  into a file (``--kinds`` adds others);
* the floor of each: iterating the same rows with ``.values_list(...).iterator()`` and doing
  nothing (the invoices with their XML for the ZIP; the bảng kê's invoice columns; the invoice
  lines joined to their invoices for MISA), in a child of its own.

Targets (issue 7): ≤ 60 s and ≤ 300 MB each (on a 2-core machine). Prints seconds, peak MB,
rows, file size and the ratio export / floor.

    python benchmarks/bench_exports.py [--invoices 100000] [--database-url postgres://…]
        [--kinds xml-zip,bangke-xlsx,misa-sales-xlsx] [--stock-openpyxl] [--keep]

``--stock-openpyxl`` also times each XLSX export through openpyxl's own per-cell path
(``exports.xlsx.FAST_ROWS = False``) for comparison with the fast row path.
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.forkserver
import os
import resource
import shutil
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

from _setup import setup_django

PERIOD = date(2026, 1, 1)
MARKET = "BENCHEXP"
TARGET_S = 60.0
TARGET_MB = 300.0
DEFAULT_KINDS = ("xml-zip", "bangke-xlsx", "misa-sales-xlsx")
INSERT_BATCH = 1000


# --- data ------------------------------------------------------------------------------


def build_period(count: int) -> dict[str, float]:
    """Bill a market and give ``count`` of its demands an invoice, a transfer and an
    allocation; returns timings of the set-up (printed, not targets)."""
    import hashlib
    from decimal import ROUND_HALF_UP, Decimal

    from django.db import connection, transaction
    from django.db.models import F
    from django.utils import timezone

    from invoicing import services as invoicing_services
    from invoicing import testing
    from invoicing.models import Invoice, InvoiceLine, InvoiceSerial
    from invoicing.rounding import GrossLine, vat_inclusive_breakdown
    from invoicing.words import amount_in_words
    from market40.demo import seed_demo
    from market40.models import DemandLine, FeeDemand
    from market40.services import billing_run_create
    from payments.models import Allocation, BankTransaction
    from payments.services import connection_create

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    market = seed_demo(code=MARKET, stalls=int(count * 1.25) + 50, today=date(2026, 1, 20)).market
    billing_run_create(market=market, period=PERIOD)
    ids = list(
        FeeDemand.objects.filter(market=market, period=PERIOD)
        .order_by("id")
        .values_list("id", flat=True)[:count]
    )
    if len(ids) < count:
        raise SystemExit(f"only {len(ids)} demands were billed; need {count}")
    timings["seed and bill"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    FeeDemand.objects.filter(pk__in=ids[:1]).update(
        status="paid", paid_vnd=F("total_vnd"), paid_at=timezone.now()
    )
    testing.configure_market(market, Path(tempfile.mkdtemp(prefix="market40-bench-certs-")))
    template = invoicing_services.invoice_issue_for_demand(demand=ids[0])
    xml = template.xml_bytes
    marker = f"<SHDon>{template.number}</SHDon>".encode()
    assert xml.count(marker) == 1, "the template invoice must carry its SHDon once"
    serial = InvoiceSerial.objects.get(pk=template.serial_id)
    bank_connection, _secret, _generated = connection_create(market=market, provider="simulator")
    bank_time = datetime.fromisoformat("2026-01-10T09:00:00+07:00")
    now = timezone.now()

    def lines_of(demand_ids: list[int]) -> dict[int, list[DemandLine]]:
        found: dict[int, list[DemandLine]] = {}
        for line in DemandLine.objects.filter(demand_id__in=demand_ids).order_by("demand", "id"):
            found.setdefault(line.demand_id, []).append(line)
        return found

    number = template.number
    rest = ids[1:]
    for start in range(0, len(rest), INSERT_BATCH):
        chunk = rest[start : start + INSERT_BATCH]
        demands = {
            d.pk: d
            for d in FeeDemand.objects.filter(pk__in=chunk).select_related("stall", "holder")
        }
        demand_lines = lines_of(chunk)
        invoices, invoice_lines, transfers = [], [], []
        for demand_id in chunk:
            demand = demands[demand_id]
            rows = demand_lines[demand_id]
            totals = vat_inclusive_breakdown(GrossLine(r.amount_vnd, r.vat_rate) for r in rows)
            number += 1
            document = xml.replace(marker, f"<SHDon>{number}</SHDon>".encode())
            holder = demand.holder
            invoice = Invoice(
                market=market,
                demand_id=demand_id,
                serial=serial,
                seller_tax_code=serial.seller_tax_code,
                form=template.form,
                serial_code=serial.serial,
                number=number,
                issue_date=template.issue_date,
                period=PERIOD,
                buyer_name=holder.full_name,
                buyer_tax_code=holder.tax_code,
                buyer_citizen_id="" if holder.tax_code else holder.citizen_id,
                buyer_address=holder.address,
                buyer_code=holder.code,
                stall_code=demand.stall.code,
                payment_code=demand.payment_code,
                total_net_vnd=totals.total_net_vnd,
                total_vat_vnd=totals.total_vat_vnd,
                total_payable_vnd=totals.total_payable_vnd,
                amount_in_words=amount_in_words(totals.total_payable_vnd),
                invoice_id=f"bench-{number}",
                xml=document,
                sha256=hashlib.sha256(document).hexdigest(),
                signing_time=template.signing_time,
                certificate_subject=template.certificate_subject,
            )
            invoices.append(invoice)
            for position, (row, amounts) in enumerate(zip(rows, totals.lines, strict=True), 1):
                quantity = row.quantity if row.quantity > 0 else Decimal(1)
                invoice_lines.append(
                    InvoiceLine(
                        invoice=invoice,
                        number=position,
                        name=row.description,
                        unit=row.unit,
                        quantity=quantity,
                        unit_price=(Decimal(amounts.net_vnd) / quantity).quantize(
                            Decimal("0.000001"), rounding=ROUND_HALF_UP
                        ),
                        net_vnd=amounts.net_vnd,
                        vat_rate=row.vat_rate,
                        vat_vnd=amounts.vat_vnd,
                        gross_vnd=amounts.gross_vnd,
                    )
                )
            transfers.append(
                BankTransaction(
                    connection=bank_connection,
                    provider_transaction_id=f"SIM-{demand_id}",
                    direction="in",
                    amount_vnd=demand.total_vnd,
                    content=f"TT {demand.payment_code}",
                    bank_reference=f"FT26010{demand_id:09d}",
                    bank_time=bank_time,
                    status="matched",
                    allocated_vnd=demand.total_vnd,
                    reconciled_at=now,
                )
            )
        with transaction.atomic():
            # Invoice.save() would compute the same SHA-256; bulk_create skips it, as it skips
            # the immutability guard that only concerns updates.
            Invoice.objects.bulk_create(invoices)
            InvoiceLine.objects.bulk_create(invoice_lines)
            BankTransaction.objects.bulk_create(transfers)
            Allocation.objects.bulk_create(
                Allocation(
                    transaction=tx,
                    kind="demand",
                    demand_id=demand_id,
                    amount_vnd=tx.amount_vnd,
                    rule="code",
                )
                for tx, demand_id in zip(transfers, chunk, strict=True)
            )
            FeeDemand.objects.filter(pk__in=chunk).update(
                status="paid", paid_vnd=F("total_vnd"), paid_at=now
            )
    InvoiceSerial.objects.filter(pk=serial.pk).update(next_number=number + 1)
    timings["invoices, lines, transfers (bulk)"] = time.perf_counter() - t0

    # A live database has planner statistics (PostgreSQL's autovacuum gathers them soon
    # after a billing run); freshly bulk-loaded tables have none, and the planner then
    # seq-scans for the per-batch look-ups.
    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    timings["ANALYZE"] = time.perf_counter() - t0
    return timings


# --- children: one export, or one floor --------------------------------------------------

ENV_KEYS = ("DATABASE_URL", "MARKET40_VAR_DIR", "DJANGO_SETTINGS_MODULE")


def child(what: str, out_dir: str, stock: bool, env: dict[str, str]) -> dict[str, object]:
    """Runs in a fresh process forked from the small fork server: Django on the benchmark's
    database, one measured job, its own peak memory."""
    for key in ENV_KEYS:
        if key in env:
            os.environ[key] = env[key]
        else:
            os.environ.pop(key, None)
    import django

    django.setup()
    from exports import writers, xlsx
    from invoicing.models import Invoice, InvoiceLine
    from market40.models import Market

    if stock:
        xlsx.FAST_ROWS = False
    market = Market.objects.get(code=MARKET)
    invoices = Invoice.objects.filter(market=market, period=PERIOD)
    rows = 0
    size = 0
    start = time.perf_counter()
    if what.startswith("floor:"):
        kind = what.split(":", 1)[1]
        if kind == "xml-zip":
            stream = invoices.values_list("pk", "serial_code", "number", "sha256", "xml")
        elif kind == "misa-sales-xlsx":
            stream = InvoiceLine.objects.filter(
                invoice__market=market, invoice__period=PERIOD
            ).values_list(
                "number",
                "name",
                "unit",
                "quantity",
                "unit_price",
                "net_vnd",
                "vat_rate",
                "vat_vnd",
                "invoice__serial_code",
                "invoice__number",
                "invoice__issue_date",
                "invoice__buyer_code",
                "invoice__buyer_name",
                "invoice__buyer_tax_code",
                "invoice__stall_code",
                "invoice__demand_id",
            )
        else:
            stream = invoices.values_list(
                "pk",
                "form",
                "serial_code",
                "number",
                "issue_date",
                "buyer_name",
                "buyer_tax_code",
                "buyer_citizen_id",
                "stall_code",
                "total_net_vnd",
                "total_vat_vnd",
                "status",
                "demand_id",
            )
        for _row in stream.iterator(chunk_size=writers.CHUNK):
            rows += 1
    else:
        path = Path(out_dir) / f"export-{what}"
        with path.open("wb") as out:
            result = writers.write_export(kind=what, market=market, period=PERIOD, out=out)
        rows = result.rows
        size = path.stat().st_size
        path.unlink()
    elapsed = time.perf_counter() - start
    return {
        "what": what,
        "seconds": elapsed,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "hwm_mb": _vm_hwm_mb(),
        "rows": rows,
        "bytes": size,
    }


def _vm_hwm_mb() -> float:
    """Peak resident memory of this process image (Linux), a cross-check of ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def run_child(context, what: str, out_dir: str, *, stock: bool = False) -> dict[str, object]:
    """One job in a new process. Children are forked from a fork server started while this
    process was still small: Linux carries a parent's peak RSS into its children's ru_maxrss
    (even across exec), so children of this grown process would report its size instead."""
    env = {key: os.environ[key] for key in ENV_KEYS if key in os.environ}
    with context.Pool(processes=1, maxtasksperchild=1) as pool:
        return pool.apply(child, (what, out_dir, stock, env))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--kinds", default=",".join(DEFAULT_KINDS))
    parser.add_argument(
        "--keep", action="store_true", help="keep the benchmark's database afterwards"
    )
    parser.add_argument(
        "--stock-openpyxl",
        action="store_true",
        help="also time the XLSX exports through openpyxl's own per-cell path",
    )
    args = parser.parse_args(argv)

    context = multiprocessing.get_context("forkserver")
    multiprocessing.forkserver.ensure_running()  # now, while this process is small
    # Our own temporary folder (removed at the end): other runs sweep /tmp/market40-bench-*.
    scratch = tempfile.mkdtemp(prefix="m40-exports-bench-")
    tempfile.tempdir = scratch
    try:
        return measure(args, context)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
            drop_postgres_database(args.database_url)


def drop_postgres_database(database_url: str | None) -> None:
    """The benchmark's PostgreSQL database holds gigabytes at 100,000 invoices: drop it."""
    if not (database_url and database_url.startswith("postgres")):
        return
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "market40_bench_exports" WITH (FORCE)')


def measure(args: argparse.Namespace, context) -> int:
    label = setup_django(args.database_url, "exports")
    print(f"# export benchmark: {args.invoices:,} invoices, period {PERIOD:%m/%Y}, {label}")
    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    for name, seconds in build_period(args.invoices).items():
        print(f"set-up: {name:<40} {seconds:8.1f} s")
    from django.db import connections

    from invoicing.models import Invoice, InvoiceLine

    invoices = Invoice.objects.filter(market__code=MARKET, period=PERIOD)
    xml_mb = sum(len(x) for x in invoices.values_list("xml", flat=True)[:200]) / 200
    print(
        f"set-up: {invoices.count():,} invoices (XML ≈ {xml_mb / 1024:.1f} KiB each), "
        f"{InvoiceLine.objects.filter(invoice__in=invoices).count():,} invoice lines"
    )
    connections.close_all()

    out_dir = tempfile.mkdtemp(prefix="market40-bench-exports-out-")
    header = (
        f"{'export':<18} {'seconds':>8} {'peak MB':>8} {'VmHWM':>6} {'rows':>9} {'file MB':>8}"
        f" {'floor s':>8} {'floor MB':>8} {'ratio':>6}  verdict"
    )
    print("\n" + header)
    print("-" * len(header))
    failures = 0
    for kind in [k.strip() for k in args.kinds.split(",") if k.strip()]:
        floor = run_child(context, f"floor:{kind}", out_dir)
        runs = [("", run_child(context, kind, out_dir))]
        if args.stock_openpyxl and kind.endswith("xlsx"):
            runs.append(("  (openpyxl cells)", run_child(context, kind, out_dir, stock=True)))
        for suffix, export in runs:
            ratio = export["seconds"] / floor["seconds"] if floor["seconds"] else float("nan")
            peak = max(export["peak_mb"], export["hwm_mb"])
            ok = export["seconds"] <= TARGET_S and peak <= TARGET_MB
            if not suffix:
                failures += not ok
            print(
                f"{(suffix or kind):<18} {export['seconds']:8.1f} {export['peak_mb']:8.0f} "
                f"{export['hwm_mb']:6.0f} {export['rows']:9,} {export['bytes'] / 2**20:8.1f} "
                f"{floor['seconds']:8.2f} {floor['peak_mb']:8.0f} {ratio:6.1f}  "
                f"{'OK' if ok else 'ABOVE TARGET'}"
            )
    print(
        f"\ntargets: ≤ {TARGET_S:.0f} s and ≤ {TARGET_MB:.0f} MB per export. peak MB = the "
        "child's ru_maxrss (Python + Django + the export), VmHWM its cross-check; ratio = "
        f"export seconds / floor seconds; load average {os.getloadavg()[0]:.1f} at the end"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
