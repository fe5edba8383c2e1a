"""The simulator against a real server process: ``manage.py runserver`` on a free
loopback port with its own SQLite file, and production's gunicorn (gevent workers,
pooled PostgreSQL connections, database task queue) on a PostgreSQL database of its
own; each time a demo market of 200 stalls billed for the month, every fault on,
deliveries over real HTTP from a separate ``simulate_bank`` process; then the server's
database is read by a third process and compared with the ledger one for one
(``assert_ledger_matches``)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_manage
from tests.payments.test_simulator import assert_ledger_matches

REPO = Path(__file__).resolve().parents[2]
PERIOD = "2026-05"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the server did not listen on {port} within {timeout_s} s")


@pytest.fixture
def server_env(tmp_path):
    """The environment of every process of this test: its own SQLite file and secret
    key under ``tmp_path``, tasks run immediately (as ``make run``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.pop("DATABASE_URL", None)
    env.pop("DATABASE_URL_FILE", None)
    env.update(
        MARKET40_VAR_DIR=str(tmp_path),
        DJANGO_SETTINGS_MODULE="market40.settings",
        TASKS_BACKEND="immediate",
        PYTHONUNBUFFERED="1",
    )
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    result = run_manage(env, *args, timeout=timeout)
    assert result.returncode == 0, f"manage.py {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def deliver_a_month(env: dict[str, str], log_path: Path, server_command: list[str]) -> None:
    """Seed and bill 200 stalls, start ``server_command`` (``{port}`` filled in) on a
    free port, send a month with every fault from ``simulate_bank`` and, on a database
    task queue, drain it; then compare the ledger with what the server recorded."""
    manage(env, "migrate", "--noinput", "-v", "0")
    seeded = manage(env, "seed_demo", "--stalls", "200", "--market", "CHOSRV")
    connection_id = re.search(r"/webhooks/sepay/(cn[0-9a-f]+)/", seeded).group(1)
    billed = manage(env, "bill_period", "CHOSRV", PERIOD)
    assert "phiếu báo phí" in billed

    port = free_port()
    log = log_path.open("w")
    server = subprocess.Popen(
        [part.format(port=port) for part in server_command],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, server)
        ledger_path = log_path.parent / "ledger.json"
        output = manage(
            env,
            "simulate_bank",
            "CHOSRV",
            PERIOD,
            "--connection",
            connection_id,
            "--url",
            f"http://127.0.0.1:{port}",
            "--faults",
            "all",
            "--seed",
            "40",
            "--backoff-ms",
            "20",
            "--late-ms",
            "50",
            "--concurrency",
            "4",
            "--ledger",
            str(ledger_path),
            timeout=180,
        )
        assert "thiếu 0, thừa 0" in output
        assert "sent " in output and "accepted " in output and "duplicates " in output
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    if env["TASKS_BACKEND"] == "database":
        manage(env, "db_worker", "--batch", "--no-startup-delay", timeout=300)
    dump = manage(
        env,
        "shell",
        "-v",
        "0",
        "-c",
        "import json; from tests.payments.test_simulator import snapshot; "
        f"print(json.dumps(snapshot({connection_id!r})))",
    )

    ledger = json.loads(ledger_path.read_text(encoding="utf-8"))
    snap = json.loads(dump)
    assert ledger["target"] == f"http://127.0.0.1:{port}"
    assert len(ledger["demands"]) >= 190  # every open demand of the 200 stalls
    assert sum(1 for t in ledger["transfers"] if t["expected"] != "rejected-signature") >= 150
    assert_ledger_matches(ledger, snap)

    # The deliveries really went through the server process: one logged POST each.
    served = log_path.read_text(encoding="utf-8")
    posts = len(re.findall(rf'"POST /webhooks/sepay/{connection_id}/ HTTP/1.1" (\d+)', served))
    reached = sum(1 for d in ledger["deliveries"] for a in d["attempts"] if a["via"] == "endpoint")
    assert posts == reached == len(snap["events"])


def test_a_month_of_200_stalls_with_every_fault_over_real_http_matches_the_ledger(
    server_env, tmp_path
):
    runserver = [sys.executable, "manage.py", "runserver", "127.0.0.1:{port}", "--noreload"]
    deliver_a_month(server_env, tmp_path / "server.log", runserver)


@pytest.fixture
def postgresql_env(server_env):
    """``server_env`` on a PostgreSQL database of its own (created and dropped here),
    next to the one in DATABASE_URL, with production's database task queue."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        pytest.skip(
            "needs PostgreSQL; run with DATABASE_URL=postgres://… as in the PostgreSQL "
            "pass of .ci/run"
        )
    import psycopg

    base = url.rpartition("/")[0]
    name = f"market40_test_server_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server_env | {"DATABASE_URL": f"{base}/{name}", "TASKS_BACKEND": "database"}
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_the_production_server_stores_a_month_with_every_fault_as_the_ledger_says(
    postgresql_env, tmp_path
):
    """gunicorn as README's production section runs it: 2 gevent workers, each with a
    pool of PostgreSQL connections, concurrent deliveries committed in groups, their
    reconciliation queued in the same commits and drained by ``db_worker``."""
    gunicorn = [
        sys.executable,
        "-m",
        "gunicorn",
        "market40.wsgi:application",
        "--config",
        str(REPO / "gunicorn.conf.py"),
        "--bind",
        "127.0.0.1:{port}",
        "--access-logfile",
        "-",
    ]
    deliver_a_month(postgresql_env | {"WEB_WORKERS": "2"}, tmp_path / "server.log", gunicorn)
