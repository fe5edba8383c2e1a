"""Personas and shared fixtures.

Two markets, A and B. ``manager_a`` and ``accountant_a`` work in A only; ``manager_b``
in B only; ``admin`` is a platform admin. Tests of scope check that A's people never
see or change B's data.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from hypothesis import HealthCheck, settings

from tests import factories

# Wall-clock deadlines make property tests flaky on a loaded 2-core CI machine; the
# properties are what we test, speed lives in benchmarks/.
settings.register_profile(
    "market40", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False
)
settings.load_profile("market40")

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def run_manage(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess:
    """``manage.py *args`` in a child process with the environment ``env``; its output is
    captured as text."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def shared_data_or_skip(*parts: str) -> Path:
    """A path under ../shared/data; CI always has it, elsewhere the test skips visibly."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing; CI must have ../shared next to the repository")
        pytest.skip(f"conformance data not available: {path} (needs ../shared)")
    return path


@pytest.fixture
def market_a(db):
    return factories.make_market("CHOA", tax_code="0312345678")


@pytest.fixture
def market_b(db):
    return factories.make_market("CHOB", tax_code="0301234567")


@pytest.fixture
def manager_a(market_a):
    user = factories.make_user("manager_a")
    factories.grant(user, market_a, "manager")
    return user


@pytest.fixture
def accountant_a(market_a):
    user = factories.make_user("accountant_a")
    factories.grant(user, market_a, "accountant")
    return user


@pytest.fixture
def manager_b(market_b):
    user = factories.make_user("manager_b")
    factories.grant(user, market_b, "manager")
    return user


@pytest.fixture
def admin_user(db):
    return factories.make_user("admin", superuser=True)


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def manager_a_client(manager_a):
    return _client_for(manager_a)


@pytest.fixture
def accountant_a_client(accountant_a):
    return _client_for(accountant_a)


@pytest.fixture
def manager_b_client(manager_b):
    return _client_for(manager_b)


@pytest.fixture
def admin_client_(admin_user):
    return _client_for(admin_user)


@pytest.fixture
def tariffs_a(market_a):
    return factories.make_tariffs(market_a)


@pytest.fixture
def billed_a(market_a, tariffs_a):
    """Market A with three leased stalls billed for 2026-05."""
    from datetime import date

    from market40.services import billing_run_create

    stalls = [factories.make_stall(market_a, f"A{i:03d}") for i in range(1, 4)]
    for stall in stalls:
        factories.make_lease(stall)
    result = billing_run_create(market=market_a, period=date(2026, 5, 1))
    return result
