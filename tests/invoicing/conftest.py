"""Fixtures shared by the invoicing tests."""

from __future__ import annotations

import pytest

from invoicing import testing


@pytest.fixture
def every_invoice_verifies(db, tmp_path):
    """After the test, every invoice it stored verifies with the project's verifier and with
    xmlsec1 (issue 6). A module opts in with
    ``pytestmark = pytest.mark.usefixtures("every_invoice_verifies")``."""
    yield
    testing.check_stored_invoices(tmp_path / "xmlsec1")
