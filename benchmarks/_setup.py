"""Shared set-up for benchmark scripts: a throw-away database (SQLite file in a temp
folder, or a fresh PostgreSQL database next to the one in DATABASE_URL), migrated."""

from __future__ import annotations

import os
import resource
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def setup_django(database_url: str | None, name: str) -> str:
    """Point Django at an empty database and migrate it; returns a label."""
    if database_url and database_url.startswith("postgres"):
        import psycopg

        base, _, _db = database_url.rpartition("/")
        bench_db = f"market40_bench_{name}"
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{bench_db}"')
        os.environ["DATABASE_URL"] = f"{base}/{bench_db}"
        label = "PostgreSQL"
    else:
        tmp = tempfile.mkdtemp(prefix=f"market40-bench-{name}-")
        os.environ.pop("DATABASE_URL", None)
        os.environ["MARKET40_VAR_DIR"] = tmp
        label = "SQLite"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "market40.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return label


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
