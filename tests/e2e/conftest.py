"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright.

Playwright's own browser download is not used: `.ci/run` installs Debian's chromium and
these fixtures point Playwright at it. Without it, CI fails and a laptop skips visibly.
"""

from __future__ import annotations

import os
import shutil

import pytest
from django.db import connections

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--lang=vi-VN",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        reason = f"headless Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture
def browser(chromium_path, live_server):
    # Playwright's sync API runs an event loop in this thread; the Django ORM calls the
    # test makes around it are synchronous and safe here.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=ARGS)
        try:
            yield browser
        finally:
            # The test's ORM calls made while Playwright runs get their own connection
            # (Django keeps connections in context-local storage); close it here, in that
            # context, or PostgreSQL refuses to drop the test database at the end.
            connections.close_all()
            browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def phone(browser):
    context = browser.new_context(
        viewport={"width": 360, "height": 740},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="vi-VN",
    )
    page = context.new_page()
    yield page
    context.close()
