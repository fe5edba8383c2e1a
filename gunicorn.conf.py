"""gunicorn's settings for production: ``gunicorn --config gunicorn.conf.py``.

gevent workers: a request that waits for PostgreSQL (every webhook delivery does)
yields to the others of its worker instead of holding an OS thread, and the deliveries
a worker has in flight at the same moment are stored in one commit
(``payments/groupcommit.py``). Greenlets are short-lived, so each worker keeps a pool of
database connections (``DB_POOL``, Django's "pool" option) instead of one per thread.
Measured in ``benchmarks/bench_webhooks.py`` (README, Speed).

Environment: ``WEB_BIND`` (default 127.0.0.1:8000), ``WEB_WORKERS`` (2; about one per
core), ``WEB_CONNECTIONS`` (concurrent requests per worker, 200), ``DB_POOL``
(PostgreSQL connections per worker, 20).
"""

import os

wsgi_app = "market40.wsgi:application"
bind = os.environ.get("WEB_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_WORKERS", "2"))
worker_class = "gevent"
worker_connections = int(os.environ.get("WEB_CONNECTIONS", "200"))
# Read by market40/settings.py when each worker loads the application.
os.environ.setdefault("DB_POOL", "20")


def post_worker_init(worker):
    """Move what loading the application allocated out of the collector's sight.

    Django, the apps and their imports leave a few hundred thousand long-lived objects;
    without this every full collection walks all of them again, a pause of tens of
    milliseconds that lands on whichever requests are in flight (the p99).
    """
    import gc

    gc.collect()
    gc.freeze()
