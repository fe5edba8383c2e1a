"""Billing-run speed: bill N active stalls for one month, then re-run the same period.

Prints seconds and queries for the run and the idempotent re-run, and, as the
baseline measured in the same run, the time to bulk-insert the same number of demand
and line rows with the ORM directly (the floor any billing implementation pays).

Targets (issue 2): 100,000 stalls billed in ≤ 20 s on SQLite, ≤ 30 s on PostgreSQL,
queries independent of the stall count apart from fixed-size insert batches; re-run
≤ 5 s.

    python benchmarks/bench_billing.py [--stalls 100000] [--database-url postgres://…]
"""

from __future__ import annotations

import argparse
import os
import time

from _setup import peak_rss_mb, setup_django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stalls", type=int, default=100_000)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()
    label = setup_django(args.database_url, "billing")

    from datetime import date

    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from market40.demo import seed_demo
    from market40.models import DemandLine, FeeDemand
    from market40.services import billing_run_create

    t0 = time.perf_counter()
    market = seed_demo(code="BENCH", stalls=args.stalls, today=date(2026, 5, 20)).market
    seed_s = time.perf_counter() - t0
    period = date(2026, 5, 1)

    with CaptureQueriesContext(connection) as queries:
        t0 = time.perf_counter()
        result = billing_run_create(market=market, period=period)
        run_s = time.perf_counter() - t0
    run_queries = len(queries)
    line_count = DemandLine.objects.count()

    with CaptureQueriesContext(connection) as queries:
        t0 = time.perf_counter()
        again = billing_run_create(market=market, period=period)
        rerun_s = time.perf_counter() - t0
    rerun_queries = len(queries)
    assert again.changed_nothing and again.already_billed == result.created

    # Baseline: the same rows inserted with bulk_create and nothing else, rolled back.
    from collections import defaultdict

    by_demand = defaultdict(list)
    for line in DemandLine.objects.all().iterator(chunk_size=5000):
        by_demand[line.demand_id].append(line)
    demands = list(FeeDemand.objects.all())
    for d in demands:
        d.lines_copy = by_demand[d.pk]
        d.pk = None
        d.payment_code = "X" + d.payment_code
        d.pay_token = FeeDemand.new_pay_token()
        d.period = date(2026, 6, 1)
    t0 = time.perf_counter()
    with transaction.atomic():
        FeeDemand.objects.bulk_create(demands, batch_size=2000)
        copies = []
        for d in demands:
            for line in d.lines_copy:
                line.pk = None
                line.demand_id = d.pk
                copies.append(line)
        DemandLine.objects.bulk_create(copies, batch_size=4000)
        baseline_s = time.perf_counter() - t0
        transaction.set_rollback(True)

    print(f"bench_billing on {label}, {args.stalls:,} stalls (seeded in {seed_s:.1f} s)")
    print(f"  demands created          {result.created:>10,}   lines {line_count:,}")
    print(
        f"  billing run              {run_s:>10.2f} s  {run_queries:>5} queries"
        f"  target ≤ {20 if label == 'SQLite' else 30} s"
    )
    print(
        f"  idempotent re-run        {rerun_s:>10.2f} s  {rerun_queries:>5} queries   target ≤ 5 s"
    )
    print(f"  baseline bulk insert     {baseline_s:>10.2f} s   (same rows, ORM bulk_create only)")
    print(f"  ratio run / baseline     {run_s / baseline_s:>10.2f}")
    print(f"  peak RSS                 {peak_rss_mb():>10.0f} MB")


if __name__ == "__main__":
    main()
