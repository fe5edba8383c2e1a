"""Reconciliation speed (issue 5): one function per section, run by ``main``.

Section "reconcile": N open demands and N transactions of mixed kinds (exact, partial,
over-payment with a split code, static stall code, no code, two codes) matched by
``reconcile_many``, for N = 10,000 and 100,000, each in a fresh child process; prints
seconds, transactions/s, peak RSS, invariant violations (must be 0) and the linearity
ratio. The seeding runs in one child and the matching in another, so the peak RSS is
the matching's alone. Baseline in the same run: reading every content and finding its
codes, the floor any matcher pays.

Section "statement": statement import of 10,000 and 100,000 rows.
    A market is seeded and billed (one stall per 20 rows), and a Vietcombank-layout CSV
    is written: 10 % of the lines pay a demand with its code, 5 % are money out (fees),
    the rest are transfers without a code; 1 % of the lines were already received by
    webhook (stored first, with another wording of the note) and must be skipped. Each
    size is imported in a fresh child process, so the peak RSS (``ru_maxrss``) is that
    of the import alone. Printed per size: seconds by phase (parse, duplicate check,
    insert, reconcile), rows/s, peak RSS, the re-import of the same file (creates
    nothing); then the 100k/10k time ratio (10 = linear). Baseline in the same run:
    reading the same file with the csv module and parsing its dates and amounts, the
    floor any importer pays, and the ratio of the import to it.

Targets: ≤ 60 s for 100,000 rows on PostgreSQL on a 2-core machine, peak ≤ 300 MB,
time growing linearly. The reconcile phase calls ``payments.reconciliation.reconcile``
once per new transaction (one database transaction each: 5 queries for a transfer
without a code, 17 for one that pays a demand), so it dominates; ``--skip-reconcile``
measures the import alone.

    python benchmarks/bench_reconcile.py [--section statement] [--rows 10000 100000]
        [--database-url postgres://…] [--skip-reconcile]

SQLite by default; PostgreSQL with --database-url (a fresh database per size, created
next to the one in the URL by ``_setup.setup_django``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

from _setup import REPO, setup_django

HERE = Path(__file__).resolve()
SAMPLE_NAMES = ("NGUYEN VAN AN", "TRAN THI BICH", "LE VAN CUONG", "PHAM THI DUNG", "HOANG VAN EM")


# --- section: statement import ----------------------------------------------------------


def _statement_prepare(rows: int, database_url: str | None, folder: Path) -> dict:
    """Child step 1: a seeded, billed market, its connection, the CSV, a few webhooks."""
    setup_django(database_url, f"stmt{rows}")
    from market40.demo import seed_demo
    from market40.models import FeeDemand
    from market40.services import billing_run_create
    from payments.models import BankTransaction
    from payments.providers.base import VN_TZ
    from payments.services import connection_create

    market = seed_demo(code="BENCH", stalls=max(rows // 20, 50), today=date(2026, 5, 20)).market
    billing_run_create(market=market, period=date(2026, 5, 1))
    connection, _secret, _generated = connection_create(
        market=market, provider="simulator", secret="bench-statement-secret"
    )
    demands = list(FeeDemand.objects.values_list("payment_code", "total_vnd"))
    account = connection.account.account_number
    rng = random.Random(rows)
    path = folder / f"saoke-{rows}.csv"
    balance = 50_000_000
    webhooks = []
    start = datetime(2026, 5, 1, 7, 0, tzinfo=VN_TZ)
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(["NGÂN HÀNG TMCP NGOẠI THƯƠNG VIỆT NAM (VIETCOMBANK)"])
        writer.writerow(["SAO KÊ TÀI KHOẢN / STATEMENT OF ACCOUNT"])
        writer.writerow(["Số tài khoản / Account number:", account])
        writer.writerow(["Số dư đầu kỳ / Opening balance:", f"{balance:,}"])
        writer.writerow(
            [
                "STT/No.",
                "Ngày giao dịch/Transaction Date",
                "Số tham chiếu/Reference No.",
                "Số tiền ghi nợ/Debit",
                "Số tiền ghi có/Credit",
                "Số dư/Balance",
                "Mô tả/Description",
            ]
        )
        step = timedelta(days=30) / rows
        for n in range(rows):
            when = start + step * n
            kind = rng.random()
            name = rng.choice(SAMPLE_NAMES)
            if kind < 0.10 and demands:
                code, amount = demands.pop()
                note = f"MBVCB.{rng.randint(10**9, 10**10)}.{name} chuyen tien {code} phi T5"
            elif kind < 0.15:
                amount = -rng.choice((5_500, 11_000, 22_000))
                note = f"Phi dich vu SMS Banking {n}"
            else:
                amount = rng.randrange(20_000, 2_000_000, 1_000)
                note = f"{name} chuyen tien cho ban quan ly {n}"
            balance += amount
            reference = f"FT26{n:010d}"
            writer.writerow(
                [
                    n + 1,
                    when.strftime("%d/%m/%Y"),
                    reference,
                    f"{-amount:,}" if amount < 0 else "",
                    f"{amount:,}" if amount > 0 else "",
                    f"{balance:,}",
                    note,
                ]
            )
            if amount > 0 and rng.random() < 0.01:
                webhooks.append(
                    BankTransaction(
                        connection=connection,
                        provider_transaction_id=f"wh{n}",
                        direction="in",
                        amount_vnd=amount,
                        content=note.lower(),
                        bank_time=when,
                    )
                )
    BankTransaction.objects.bulk_create(webhooks, batch_size=2000)
    return {
        "label": "PostgreSQL" if os.environ.get("DATABASE_URL") else "SQLite",
        "env": {k: os.environ[k] for k in ("DATABASE_URL", "MARKET40_VAR_DIR") if k in os.environ},
        "path": str(path),
        "connection": connection.pk,
        "webhooks": len(webhooks),
    }


def _csv_floor(path: str) -> float:
    """Read the file with the csv module and parse dates and amounts: nothing else."""
    started = time.perf_counter()
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=";")
        for row in reader:
            if len(row) < 7 or not row[0].isdigit():
                continue
            datetime.strptime(row[1], "%d/%m/%Y")
            for cell in row[3:6]:
                if cell:
                    int(cell.replace(",", ""))
    return time.perf_counter() - started


def _statement_import(prepared: dict, skip_reconcile: bool) -> dict:
    """Child step 2: the timed import, then a re-import of the same file."""
    os.environ.update(prepared["env"])
    if "DATABASE_URL" not in prepared["env"]:
        os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "market40.settings")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from payments.models import BankConnection
    from payments.statements import statement_import

    floor_s = _csv_floor(prepared["path"])
    connection = BankConnection.objects.get(pk=prepared["connection"])
    started = time.perf_counter()
    report = statement_import(
        connection=connection, path=prepared["path"], bank="vcb", reconcile=not skip_reconcile
    )
    total_s = time.perf_counter() - started
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "lines": report.lines,
        "created": report.created,
        "duplicates": len(report.duplicates),
        "webhooks": prepared["webhooks"],
        "timings": report.timings,
        "total_s": total_s,
        "floor_s": floor_s,
        "reconciled": dict(report.reconciled),
        "peak_rss_mb": peak_rss_mb,
    }
    del report
    started = time.perf_counter()
    again = statement_import(
        connection=connection, path=prepared["path"], bank="vcb", reconcile=not skip_reconcile
    )
    reimport_s = time.perf_counter() - started
    assert again.created == 0, "a re-import must create nothing"
    result["reimport_s"] = reimport_s
    return result


def _child(args: argparse.Namespace) -> None:
    if args.child == "reconcile-prepare":
        print("RESULT " + json.dumps(_reconcile_prepare(args.rows[0], args.database_url)))
        return
    if args.child == "reconcile":
        print("RESULT " + json.dumps(_reconcile_run(json.loads(args.prepared))))
        return
    if args.child == "statement-prepare":
        result = _statement_prepare(args.rows[0], args.database_url, Path(args.folder))
    else:
        result = _statement_import(json.loads(args.prepared), args.skip_reconcile)
    print("RESULT " + json.dumps(result))


def _spawn(*argv: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(HERE), *argv], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"benchmark child failed: {' '.join(argv[:2])}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def bench_statement_import(args: argparse.Namespace) -> None:
    import tempfile

    folder = tempfile.mkdtemp(prefix="market40-bench-statement-")
    results: dict[int, dict] = {}
    label = ""
    for rows in args.rows:
        common = ["--rows", str(rows), "--folder", folder]
        if args.database_url:
            common += ["--database-url", args.database_url]
        prepared = _spawn("--child", "statement-prepare", *common)
        label = prepared["label"]
        extra = ["--skip-reconcile"] if args.skip_reconcile else []
        result = _spawn(
            "--child", "statement-import", "--prepared", json.dumps(prepared), *common, *extra
        )
        results[rows] = result
        t = result["timings"]
        rate = result["lines"] / result["total_s"]
        print(f"\nStatement import, {rows:,} rows ({label})")
        print(
            f"  parse {t['parse']:.2f} s · duplicate check {t['plan']:.2f} s · "
            f"insert {t['insert']:.2f} s · reconcile {t.get('reconcile', 0):.2f} s"
        )
        print(
            f"  total {result['total_s']:.2f} s = {rate:,.0f} rows/s · created "
            f"{result['created']:,} · skipped {result['duplicates']:,} "
            f"(of {result['webhooks']:,} webhooks) · reconciled {result['reconciled']}"
        )
        print(f"  peak RSS {result['peak_rss_mb']:.0f} MB · re-import {result['reimport_s']:.2f} s")
        import_only = t["parse"] + t["plan"] + t["insert"]
        print(
            f"  baseline (csv module read + parse) {result['floor_s']:.2f} s · import without "
            f"reconcile {import_only:.2f} s = {import_only / result['floor_s']:.1f}× the floor"
        )
    if len(results) >= 2:
        small, large = sorted(results)
        ratio = results[large]["total_s"] / results[small]["total_s"]
        print(
            f"\nLinearity: {large:,} rows took {ratio:.1f}× the time of {small:,} rows "
            f"(linear = {large / small:.0f}×)"
        )


# --- section: reconciliation of transactions ---------------------------------------------


def _reconcile_prepare(rows: int, database_url: str | None) -> dict:
    """Child step 1: N open demands and N unreconciled transactions (mixed rules)."""
    label = setup_django(database_url, f"rec{rows}")
    from market40.demo import seed_demo
    from market40.models import FeeDemand
    from market40.services import billing_run_create
    from payments.models import BankTransaction
    from payments.services import connection_create

    rng = random.Random(rows)
    market = seed_demo(code="RECBENCH", stalls=rows, today=date(2026, 5, 20)).market
    billing_run_create(market=market, period=date(2026, 5, 1))
    connection, _secret, _generated = connection_create(market=market, provider="simulator")
    demands = list(
        FeeDemand.objects.filter(market=market).values_list(
            "payment_code", "total_vnd", "stall__payment_code"
        )
    )
    txs = []
    from payments.providers.base import VN_TZ

    when = datetime(2026, 5, 10, 9, 0, tzinfo=VN_TZ)
    for n in range(rows):
        code, total, stall_code = demands[n % len(demands)]
        pick = rng.random()
        if pick < 0.6:
            content, amount = f"MBVCB.{n}.{code} phi thang 5", total  # exact
        elif pick < 0.7:
            content, amount = f"{code} tra truoc", max(total // 2, 1)  # partial
        elif pick < 0.8:
            content, amount = f"{code[:5]} {code[5:]}", total + 50_000  # over, split code
        elif pick < 0.85:
            content, amount = f"nop tien sap {stall_code}", total  # static code
        elif pick < 0.95:
            content, amount = "chuyen tien cho ban quan ly", rng.randint(10_000, 900_000)
        else:
            other = demands[(n + 1) % len(demands)][0]
            content, amount = f"{code} va {other}", total + 10_000  # two codes
        txs.append(
            BankTransaction(
                connection=connection,
                provider_transaction_id=f"R{n}",
                direction="in",
                amount_vnd=amount,
                content=content,
                bank_time=when + timedelta(seconds=n),
            )
        )
    BankTransaction.objects.bulk_create(txs, batch_size=5000)
    from django.db import connection as db

    if db.vendor == "postgresql":
        # The tables were filled a moment ago; in production autovacuum has long analysed
        # them. Without statistics the planner's per-chunk lookups slow down with the table
        # size (100k took 14.5× the time of 10k; with statistics 10.2×).
        with db.cursor() as cursor:
            cursor.execute("ANALYZE")
    env_keys = ("DATABASE_URL", "MARKET40_VAR_DIR")
    return {
        "label": label,
        "connection": connection.pk,
        "env": {k: os.environ[k] for k in env_keys if k in os.environ},
    }


def _reconcile_run(prepared: dict) -> dict:
    """Child step 2, in a fresh process so its peak RSS is the matching's alone: the
    baseline (read every content, find its codes), then ``reconcile_many``."""
    os.environ.update(prepared["env"])
    if "DATABASE_URL" not in prepared["env"]:
        os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "market40.settings")
    import django

    django.setup()
    from market40.paymentcode import find_codes
    from market40.services import code_scheme
    from payments.models import Allocation, BankTransaction
    from payments.reconciliation import reconcile_many

    connection = prepared["connection"]
    ids = list(BankTransaction.objects.filter(connection=connection).values_list("id", flat=True))
    before_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    started = time.perf_counter()
    contents = BankTransaction.objects.filter(connection=connection).values_list(
        "content", flat=True
    )
    scheme = code_scheme()
    found = sum(len(find_codes(c, scheme).codes) for c in contents.iterator(chunk_size=5000))
    floor_s = time.perf_counter() - started

    started = time.perf_counter()
    outcomes = reconcile_many(ids)
    total_s = time.perf_counter() - started
    statuses: dict[str, int] = {}
    for outcome in outcomes:
        statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
    bad = sum(
        1
        for tx in BankTransaction.objects.filter(connection=connection).only(
            "amount_vnd", "allocated_vnd", "credit_vnd", "status"
        )
        if tx.allocated_vnd + tx.credit_vnd > tx.amount_vnd
    )
    return {
        "label": prepared["label"],
        "transactions": len(ids),
        "allocations": Allocation.objects.count(),
        "codes_found": found,
        "statuses": statuses,
        "invariant_violations": bad,
        "floor_s": floor_s,
        "total_s": total_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "start_rss_mb": before_rss_mb,
    }


def bench_reconcile(args: argparse.Namespace) -> None:
    results = {}
    for rows in args.rows:
        extra = ["--database-url", args.database_url] if args.database_url else []
        prepared = _spawn("--child", "reconcile-prepare", "--rows", str(rows), *extra)
        result = _spawn("--child", "reconcile", "--prepared", json.dumps(prepared))
        results[rows] = result
        print(
            f"\nReconciliation, {rows:,} open demands and {rows:,} transactions ({result['label']})"
        )
        print(
            f"  reconcile_many {result['total_s']:.2f} s = {rows / result['total_s']:,.0f} tx/s · "
            f"allocations {result['allocations']:,} · {result['statuses']}"
        )
        print(
            f"  peak RSS {result['peak_rss_mb']:.0f} MB (the matching's own process; "
            f"{result['start_rss_mb']:.0f} MB after Django set-up and the id list) · invariant "
            f"violations {result['invariant_violations']} · target ≤ 60 s, ≤ 300 MB"
        )
        print(
            f"  baseline (read every content + find codes) {result['floor_s']:.2f} s · "
            f"ratio {result['total_s'] / result['floor_s']:.1f}×"
        )
    if len(results) >= 2:
        small, large = sorted(results)
        ratio = results[large]["total_s"] / results[small]["total_s"]
        print(
            f"\nLinearity: {large:,} took {ratio:.1f}× the time of {small:,} "
            f"(linear = {large / small:.0f}×)"
        )


SECTIONS: dict[str, Callable[[argparse.Namespace], None]] = {
    "statement": bench_statement_import,
    "reconcile": bench_reconcile,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--section", choices=["all", *SECTIONS], default="all")
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument(
        "--skip-reconcile", action="store_true", help="Import only; leave matching out."
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--prepared", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    for name, section in SECTIONS.items():
        if args.section in ("all", name):
            section(args)


if __name__ == "__main__":
    main()
