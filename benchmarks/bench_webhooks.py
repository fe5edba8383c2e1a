"""Webhook ingestion speed: signed SePay deliveries against gunicorn on PostgreSQL.

Starts gunicorn (2 workers) with production's settings (``gunicorn.conf.py``: gevent
workers, each with a pool of ``--pool`` database connections) on a loopback port over a
fresh PostgreSQL database (``market40_bench_webhooks``: migrated, a demo market with one
stall per distinct transfer, billed for 05/2026), then sends ``--deliveries`` signed
SePay deliveries, 20 % of them redeliveries of earlier ones, at ``--concurrency`` from a
bounded load generator (threads with http.client keep-alive; stops after the count or
``--time-limit``). Each delivery is signed when it is sent, as SePay does. Prints
deliveries per second and p50/p99 latency, the same figures for a bare Django view
answering ``{"success": true}`` in the same server (the baseline, ``_webhook_urls.py``;
measured before and after the deliveries, as the machine's speed drifts), their ratio,
and what the database holds afterwards: every distinct transfer stored exactly once
(zero lost, zero doubled) and every delivery stored as an event. To explain the figures
it also prints the CPU each request costs the server, PostgreSQL and the load
generator, the queries and commits of one new delivery and one redelivery, and the
service time of one delivery alone, measured in-process on a separate connection.

Targets (issue 4): ≥ 40 % of the baseline's throughput, p99 ≤ 100 ms, zero lost, zero
doubled.

    python benchmarks/bench_webhooks.py [--deliveries 20000] [--concurrency 32]
        [--tasks immediate|database] [--worker-class gevent|gthread|sync]
        [--threads 16] [--pool 20]
        [--database-url postgres://postgres@127.0.0.1:5432/postgres]

``--tasks database`` (the default: production's setting) queues the reconciliation in
the deliveries' own commit; once the load is over, ``manage.py db_worker --batch``
drains that queue and its time is printed (the backlog a worker host clears).
``--tasks immediate`` (as ``make run``) reconciles inside the request.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import itertools
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from _setup import REPO, setup_django

PERIOD = date(2026, 5, 1)


@dataclass
class LoadResult:
    sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)  # delivery index → status
    errors: int = 0
    elapsed_s: float = 0.0
    stopped_by_time: bool = False

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.elapsed_s if self.elapsed_s else 0.0

    def merged(self, other: LoadResult) -> LoadResult:
        """Both runs as one: their requests over their summed time."""
        return LoadResult(
            sent=self.sent + other.sent,
            latencies_ms=self.latencies_ms + other.latencies_ms,
            errors=self.errors + other.errors,
            elapsed_s=self.elapsed_s + other.elapsed_s,
            stopped_by_time=self.stopped_by_time or other.stopped_by_time,
        )

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_load(
    *,
    port: int,
    path: str,
    requests: list[tuple[bytes, dict[str, str]]],
    concurrency: int,
    time_limit_s: float,
    sign,
) -> LoadResult:
    """``concurrency`` threads, each with one keep-alive connection, take the next
    request until all are sent or the time is up."""
    result = LoadResult()
    counter = itertools.count()
    lock = threading.Lock()
    start = time.perf_counter()
    deadline = start + time_limit_s

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        errors = 0
        while True:
            with lock:
                i = next(counter)
            if i >= len(requests):
                break
            if time.perf_counter() > deadline:
                result.stopped_by_time = True
                break
            body, headers = requests[i]
            headers = sign(body, headers)
            for retry in (0, 1):
                t0 = time.perf_counter()
                try:
                    conn.request("POST", path, body=body, headers=headers)
                    response = conn.getresponse()
                    response.read()
                except (OSError, http.client.HTTPException):
                    conn.close()
                    if retry == 0:
                        # A keep-alive connection the server closed: reconnect once.
                        continue
                    errors += 1
                    break
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[i] = response.status
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                break
        conn.close()
        with lock:
            result.latencies_ms.extend(latencies)
            result.statuses.update(statuses)
            result.errors += errors

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.elapsed_s = time.perf_counter() - start
    result.sent = len(result.statuses) + result.errors
    return result


def _cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(server_pid: int) -> dict[str, float]:
    """CPU seconds used so far by the gunicorn workers, the PostgreSQL server processes
    and this process (the load generator): where a request's cost is paid (Linux)."""
    children = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == server_pid or name == "postgres":
                children.append((name, int(pid)))
    return {
        "server": sum(_cpu_s(p) for n, p in children if n != "postgres") + _cpu_s(server_pid),
        "database": sum(_cpu_s(p) for n, p in children if n == "postgres"),
        "load generator": _cpu_s(os.getpid()),
    }


def cpu_per_request(before: dict, after: dict, requests: int) -> str:
    return ", ".join(
        f"{name} {(after[name] - before[name]) / requests * 1000:.2f}" for name in before
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(port: int, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


def probe(*, secret_for, market, code: str) -> dict:
    from django.db import connection as db
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from payments.providers import sepay
    from payments.providers.base import VN_TZ, Transfer

    connection, secret, _generated = secret_for(
        market=market, provider="sepay", options={"mode": "hmac"}
    )
    transfer = Transfer(
        provider_transaction_id="1",
        direction="in",
        amount_vnd=100_000,
        content=f"{code} CK",
        bank_time=datetime(2026, 5, 1, 6, tzinfo=VN_TZ),
    )
    body, headers = sepay.build_delivery([transfer], secret, now=datetime.now(UTC))
    extra = {k: v for k, v in headers.items() if k != "Content-Type"}
    client = Client()
    costs = {}
    for label in ("new", "redelivery"):
        with CaptureQueriesContext(db) as queries:
            client.post(
                connection.webhook_path,
                data=body,
                content_type="application/json",
                headers=extra,
            )
        sql = [q["sql"].upper() for q in queries.captured_queries]

        def writes_rows(q: str) -> bool:
            # A WITH … INSERT (payments/groupwrite.py) writes as much as an INSERT.
            return q.startswith(("INSERT", "UPDATE")) or (
                q.startswith("WITH") and "INSERT INTO" in q
            )

        writes = sum(1 for q in sql if writes_rows(q))
        commits = sum(1 for q in sql if q == "COMMIT")
        # A write outside atomic() is a transaction, and a commit, of its own.
        in_atomic = depth = 0
        for q in sql:
            if q in ("BEGIN",) or q.startswith("SAVEPOINT"):
                depth += 1
            elif q == "COMMIT" or q.startswith("RELEASE SAVEPOINT"):
                depth -= 1
            elif depth and writes_rows(q):
                in_atomic += 1
        costs[label] = (len(sql), commits + writes - in_atomic)
    # Service time of one new delivery, one at a time (no queueing), in this process.
    started = time.perf_counter()
    for n in range(2, 42):
        body, headers = sepay.build_delivery(
            [dataclasses.replace(transfer, provider_transaction_id=str(n))],
            secret,
            now=datetime.now(UTC),
        )
        extra = {k: v for k, v in headers.items() if k != "Content-Type"}
        client.post(
            connection.webhook_path, data=body, content_type="application/json", headers=extra
        )
    costs["service_ms"] = (time.perf_counter() - started) / 40 * 1000
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--duplicates", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", choices=["sync", "gthread", "gevent"], default="gevent")
    parser.add_argument("--threads", type=int, default=16, help="per worker, for gthread")
    parser.add_argument("--pool", type=int, default=20, help="DB_POOL of each worker (0: none)")
    parser.add_argument("--tasks", choices=["immediate", "database"], default="database")
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds per phase")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--drain",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run db_worker --batch after the load (tasks database)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres",
    )
    args = parser.parse_args()
    if not args.database_url.startswith("postgres"):
        raise SystemExit("bench_webhooks needs PostgreSQL (--database-url postgres://…)")
    os.environ["TASKS_BACKEND"] = args.tasks
    label = setup_django(args.database_url, "webhooks")

    from django.db import connection as db
    from django.db.models import Count

    from market40.demo import seed_demo
    from market40.models import FeeDemand
    from market40.services import billing_run_create
    from payments.models import BankTransaction, WebhookEvent
    from payments.providers import sepay
    from payments.providers.base import VN_TZ, Transfer
    from payments.services import connection_create

    rng = random.Random(args.seed)
    distinct = round(args.deliveries * (1 - args.duplicates))
    duplicates = args.deliveries - distinct
    t0 = time.perf_counter()
    market = seed_demo(code="BENCH", stalls=distinct, today=date(2026, 5, 20)).market
    billing_run_create(market=market, period=PERIOD)
    connection, secret, _generated = connection_create(
        market=market, provider="sepay", options={"mode": "hmac"}
    )
    demands = list(
        FeeDemand.objects.filter(market=market)
        .order_by("id")
        .values_list("payment_code", "total_vnd", "stall__code")
    )
    setup_s = time.perf_counter() - t0

    # Distinct transfers in bank order with a consistent running balance; then each
    # redelivery is placed somewhere after its original.
    balance = 50_000_000
    first_time = datetime(2026, 5, 1, 6, tzinfo=VN_TZ)
    bodies: list[bytes] = []
    for n in range(distinct):
        code, total, stall = demands[n % len(demands)]
        balance += total
        note = rng.choice([f"{code}", f"{code} {stall} T05", f"MBVCB.{n:010d}.000001.{code} CK"])
        transfer = Transfer(
            provider_transaction_id=str(1_000_000 + n),
            direction="in",
            amount_vnd=total,
            content=note,
            bank_reference=f"FT26125{n:09d}",
            account_number="1023456789",
            bank_time=first_time + timedelta(seconds=10 * n),
            running_balance_vnd=balance,
            provider_code=code,
        )
        body, _headers = sepay.build_delivery([transfer], secret, now=datetime.now(UTC))
        bodies.append(body)
    keyed = [(float(n), n) for n in range(distinct)]
    for _ in range(duplicates):
        original = rng.randrange(distinct)
        keyed.append((rng.uniform(original + 0.5, distinct), original))
    keyed.sort()
    order = [n for _key, n in keyed]
    base_headers = {"Content-Type": "application/json"}
    requests = [(bodies[n], base_headers) for n in order]

    def sign(body: bytes, headers: dict[str, str]) -> dict[str, str]:
        return sepay.sign(body, secret, now=datetime.now(UTC))

    # What one new delivery and one redelivery cost in queries and commits, measured
    # in-process on a separate connection so the run's counts are untouched.
    probe_costs = probe(secret_for=connection_create, market=market, code=demands[-1][0])

    # Hand the database to the server.
    db.close()
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="_webhook_settings",
        TASKS_BACKEND=args.tasks,
        DB_CONN_MAX_AGE="60",  # unless pooled (DB_POOL)
        DB_POOL=str(args.pool),
        LOG_LEVEL="WARNING",
        PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "benchmarks")]),
    )
    port = free_port()
    # Production's settings (gunicorn.conf.py: gevent workers, pooled connections);
    # --worker-class sync|gthread measures the thread-based workers instead.
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        str(REPO / "gunicorn.conf.py"),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(args.workers),
        "--backlog",
        "512",
        "--keep-alive",
        "5",
        "--log-level",
        "warning",
        "--chdir",
        str(REPO),
    ]
    if args.worker_class != "gevent":
        command += ["--worker-class", args.worker_class, "--threads", str(args.threads)]
    server = subprocess.Popen(command, env=env, stdout=sys.stderr, stderr=sys.stderr)
    try:
        wait_for(port, server)

        def load(path: str, measured=requests, time_limit_s=args.time_limit) -> LoadResult:
            return run_load(
                port=port,
                path=path,
                requests=measured,
                concurrency=args.concurrency,
                time_limit_s=time_limit_s,
                sign=sign,
            )

        # Warm the server (imports, connections) with requests that are not measured.
        load("/bench/baseline/", requests[:200], 30)
        cpu_before = cpu_snapshot(server.pid)
        baseline = load("/bench/baseline/")
        cpu_between = cpu_snapshot(server.pid)
        webhooks = load(connection.webhook_path)
        cpu_after = cpu_snapshot(server.pid)
        # The baseline again, after: the machine's speed drifts over a run, and the
        # ratio is taken against both halves together.
        measured_first = len(baseline.latencies_ms)
        baseline = baseline.merged(load("/bench/baseline/"))
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    drain_s = None
    if args.tasks == "database" and args.drain:
        # The backlog was written a moment ago; in production autovacuum would have analysed
        # the task table by now (this machine's PostgreSQL runs with autovacuum off), and
        # without statistics every claim of a task scans the whole table.
        with db.cursor() as cursor:
            cursor.execute("ANALYZE")
        db.close()
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "manage.py", "db_worker", "--batch", "--no-startup-delay"],
            cwd=REPO,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,  # a log line per task
        )
        drain_s = time.perf_counter() - started

    # What the database holds now.
    sent_ok = {order[i] for i, status in webhooks.statuses.items() if status == 200}
    expected_ids = {str(1_000_000 + n) for n in sent_ok}
    stored = BankTransaction.objects.filter(connection=connection)
    stored_ids = set(stored.values_list("provider_transaction_id", flat=True))
    doubled = (
        stored.values("provider_transaction_id").annotate(n=Count("id")).filter(n__gt=1).count()
    )
    lost = len(expected_ids - stored_ids)
    extra = len(stored_ids - expected_ids)
    events = WebhookEvent.objects.filter(connection=connection)
    outcomes = dict(events.values_list("outcome").annotate(n=Count("id")))
    reconciled = stored.filter(reconciled_at__isnull=False).count()
    non_200 = sum(1 for s in webhooks.statuses.values() if s != 200)

    ratio = webhooks.rate / baseline.rate if baseline.rate else float("nan")
    print(
        f"bench_webhooks on {label}: gunicorn {args.workers} × {args.worker_class}"
        f"{f' ({args.threads} threads)' if args.worker_class == 'gthread' else ''}, "
        f"tasks {args.tasks}, concurrency {args.concurrency} (set-up {setup_s:.1f} s)"
    )
    print(
        f"  SePay deliveries   {webhooks.sent:>7,} sent ({distinct:,} distinct, "
        f"{duplicates:,} redeliveries)"
        f"{'  STOPPED BY TIME LIMIT' if webhooks.stopped_by_time else ''}"
    )
    print(
        f"  webhooks           {webhooks.rate:>9.0f} /s   p50 {webhooks.percentile(0.5):6.1f} ms"
        f"   p99 {webhooks.percentile(0.99):6.1f} ms   (mean "
        f"{statistics.fmean(webhooks.latencies_ms or [0]):.1f} ms)"
    )
    print(
        f"  baseline view      {baseline.rate:>9.0f} /s   p50 {baseline.percentile(0.5):6.1f} ms"
        f"   p99 {baseline.percentile(0.99):6.1f} ms"
    )
    print(f"  ratio webhooks / baseline {ratio:>6.1%}   target ≥ 40 %")
    print(
        "  CPU ms per request: webhooks "
        + cpu_per_request(cpu_between, cpu_after, len(webhooks.latencies_ms))
        + "; baseline "
        + cpu_per_request(cpu_before, cpu_between, measured_first)
    )
    print(f"  p99 target ≤ 100 ms: {'met' if webhooks.percentile(0.99) <= 100 else 'NOT met'}")
    print(
        f"  stored transactions {len(stored_ids):,} for {len(expected_ids):,} distinct "
        f"answered 200: lost {lost}, doubled {doubled}, unexpected {extra}"
    )
    by_outcome = ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items()))
    print(
        f"  events {events.count():,} ({by_outcome}); non-200 answers {non_200}; "
        f"connection errors {webhooks.errors}"
    )
    drained = f" by db_worker --batch in {drain_s:.1f} s after the load" if drain_s else ""
    print(f"  reconciled {reconciled:,} of {len(stored_ids):,}{drained}")
    service_ms = probe_costs.pop("service_ms")
    for label, (queries, commits) in probe_costs.items():
        print(f"  one {label} delivery: {queries} queries, {commits} commits")
    print(f"  one new delivery alone, in-process: {service_ms:.1f} ms")
    if lost or doubled or extra or non_200 or webhooks.errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
