"""A market that issues invoices on payment but cannot sign is refused by the system
check (``manage.py check --database default``), naming the market and the reason."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from invoicing import testing
from invoicing.certificates import clear_cache
from invoicing.checks import check_auto_issue_certificates
from invoicing.models import InvoiceSettings


def test_auto_issue_with_a_usable_certificate_passes(market_a, tmp_path):
    testing.configure_market(market_a, tmp_path, auto_issue=True)
    assert check_auto_issue_certificates() == []


def test_auto_issue_with_a_missing_certificate_file_is_an_error(market_a, tmp_path):
    settings, _pem = testing.configure_market(market_a, tmp_path, auto_issue=True)
    InvoiceSettings.objects.filter(pk=settings.pk).update(
        certificate_path=str(tmp_path / "gone.p12")
    )
    clear_cache()

    [error] = check_auto_issue_certificates()

    assert error.id == "invoicing.E001"
    assert "CHOA" in error.msg and "gone.p12" in error.msg


def test_an_expired_certificate_fails_the_database_check_command(market_a, tmp_path):
    from datetime import UTC, datetime

    testing.configure_market(
        market_a, tmp_path, auto_issue=True, not_before=datetime(2024, 1, 1, tzinfo=UTC)
    )
    with pytest.raises(SystemCheckError, match="invoicing.E001"):
        call_command("check", databases=["default"])


def test_a_market_that_does_not_auto_issue_is_not_checked(market_a, tmp_path):
    settings, _pem = testing.configure_market(market_a, tmp_path, auto_issue=False)
    InvoiceSettings.objects.filter(pk=settings.pk).update(certificate_path="")
    assert check_auto_issue_certificates() == []
