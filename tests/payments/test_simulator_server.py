"""The simulator against a real server process: ``manage.py runserver`` on a free
loopback port with its own SQLite file, a demo market of 200 stalls billed for the
month, every fault on, deliveries over real HTTP from a separate ``simulate_bank``
process; then the server's database is read by a third process and compared with the
ledger one for one (``assert_ledger_matches``)."""

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


def test_a_month_of_200_stalls_with_every_fault_over_real_http_matches_the_ledger(
    server_env, tmp_path
):
    manage(server_env, "migrate", "--noinput", "-v", "0")
    seeded = manage(server_env, "seed_demo", "--stalls", "200", "--market", "CHOSRV")
    connection_id = re.search(r"/webhooks/sepay/(cn[0-9a-f]+)/", seeded).group(1)
    billed = manage(server_env, "bill_period", "CHOSRV", PERIOD)
    assert "phiếu báo phí" in billed

    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=REPO,
        env=server_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, server)
        ledger_path = tmp_path / "ledger.json"
        output = manage(
            server_env,
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

        dump = manage(
            server_env,
            "shell",
            "-v",
            "0",
            "-c",
            "import json; from tests.payments.test_simulator import snapshot; "
            f"print(json.dumps(snapshot({connection_id!r})))",
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()

    ledger = json.loads(ledger_path.read_text(encoding="utf-8"))
    snap = json.loads(dump)
    assert ledger["target"] == f"http://127.0.0.1:{port}"
    assert len(ledger["demands"]) >= 190  # every open demand of the 200 stalls
    assert sum(1 for t in ledger["transfers"] if t["expected"] != "rejected-signature") >= 150
    assert_ledger_matches(ledger, snap)

    # The deliveries really went through the server process: one logged POST each.
    served = (tmp_path / "server.log").read_text(encoding="utf-8")
    posts = len(re.findall(rf'"POST /webhooks/sepay/{connection_id}/ HTTP/1.1" (\d+)', served))
    reached = sum(1 for d in ledger["deliveries"] for a in d["attempts"] if a["via"] == "endpoint")
    assert posts == reached == len(snap["events"])
