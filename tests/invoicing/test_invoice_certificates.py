"""The signing certificate: from a PKCS#12 file whose password comes from the environment or a
secret file (never the database); an expired or foreign certificate refuses to sign with a
clear Vietnamese message, and then nothing is stored and no number is used."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from invoicing import services, testing
from invoicing.certificates import CertificateError, clear_cache
from invoicing.models import Invoice, InvoiceSerial, InvoiceSettings
from invoicing.signing import make_test_certificate
from market40.models import FeeDemand

pytestmark = pytest.mark.usefixtures("every_invoice_verifies")


@pytest.fixture
def paid_a(billed_a):
    demands = list(FeeDemand.objects.filter(billing_run=billed_a.run).order_by("stall__code"))
    testing.mark_paid(demands)
    return demands


def use_certificate(market, path: Path, p12: bytes, password_ref: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(p12)
    InvoiceSettings.objects.filter(market=market).update(
        certificate_path=str(path), certificate_password_ref=password_ref
    )
    clear_cache()


def test_an_expired_certificate_refuses_to_sign_and_nothing_is_stored(paid_a, market_a, tmp_path):
    testing.configure_market(market_a, tmp_path / "certs")
    services.invoice_issue_for_demand(demand=paid_a[0])
    expired, _pem = testing.cached_certificate(
        market_a.tax_code, not_before=datetime(2024, 1, 1, tzinfo=UTC), days=365
    )
    use_certificate(market_a, tmp_path / "expired.p12", expired)

    with pytest.raises(CertificateError) as error:
        services.invoice_issue_for_demand(demand=paid_a[1])

    assert error.value.code == "certificate_expired"
    assert error.value.status == 409
    assert "Chứng thư số đã hết hạn lúc" in error.value.message
    assert "31/12/2024" in error.value.message
    assert "không thể ký hóa đơn" in error.value.message
    assert Invoice.objects.count() == 1
    assert InvoiceSerial.objects.get().next_number == 2  # no number consumed

    testing.configure_market(market_a, tmp_path / "certs")  # a renewed certificate
    renewed = services.invoice_issue_for_demand(demand=paid_a[1])
    assert renewed.number == 2


def test_a_period_run_with_an_expired_certificate_issues_nothing(paid_a, market_a, tmp_path):
    from datetime import date

    testing.configure_market(market_a, tmp_path / "certs")
    expired, _pem = testing.cached_certificate(
        market_a.tax_code, not_before=datetime(2024, 1, 1, tzinfo=UTC), days=365
    )
    use_certificate(market_a, tmp_path / "expired.p12", expired)

    with pytest.raises(CertificateError, match="hết hạn"):
        services.invoices_issue_for_period(market=market_a, period=date(2026, 5, 1))

    assert not Invoice.objects.exists() and not InvoiceSerial.objects.exists()


def test_a_certificate_not_yet_valid_refuses_to_sign(paid_a, market_a, tmp_path):
    testing.configure_market(market_a, tmp_path / "certs")
    future, _pem = testing.cached_certificate(
        market_a.tax_code, not_before=datetime.now(UTC) + timedelta(days=30)
    )
    use_certificate(market_a, tmp_path / "future.p12", future)

    with pytest.raises(CertificateError) as error:
        services.invoice_issue_for_demand(demand=paid_a[0])

    assert error.value.code == "certificate_not_yet_valid"
    assert "chỉ có hiệu lực từ" in error.value.message
    assert not Invoice.objects.exists()


def test_a_certificate_of_another_tax_code_refuses_to_sign(paid_a, market_a, tmp_path):
    testing.configure_market(market_a, tmp_path / "certs", tax_code="0301234567")

    with pytest.raises(CertificateError) as error:
        services.invoice_issue_for_demand(demand=paid_a[0])

    assert error.value.code == "certificate_mst_mismatch"
    assert "MST 0301234567, khác MST người bán 0312345678" in error.value.message
    assert not Invoice.objects.exists()


def test_a_missing_certificate_file_is_named(paid_a, market_a, tmp_path):
    testing.configure_market(market_a, tmp_path / "certs")
    InvoiceSettings.objects.update(certificate_path=str(tmp_path / "gone.p12"))

    with pytest.raises(CertificateError) as error:
        services.invoice_issue_for_demand(demand=paid_a[0])

    assert error.value.code == "certificate_missing"
    assert "gone.p12" in error.value.message


def test_no_configured_certificate_says_how_to_make_a_test_one(paid_a, market_a, tmp_path):
    testing.configure_market(market_a, tmp_path / "certs")
    InvoiceSettings.objects.update(certificate_path="")

    with pytest.raises(CertificateError, match="make_test_certificate CHOA"):
        services.invoice_issue_for_demand(demand=paid_a[0])


@pytest.fixture
def encrypted_a(market_a, tmp_path):
    testing.configure_market(market_a, tmp_path / "certs")
    p12, _pem = make_test_certificate(
        tax_code=market_a.tax_code, common_name=market_a.name, password=b"mat-khau-bi-mat"
    )
    return tmp_path / "encrypted.p12", p12


def test_the_password_comes_from_the_environment_variable_named_in_the_settings(
    paid_a, market_a, encrypted_a, monkeypatch
):
    path, p12 = encrypted_a
    use_certificate(market_a, path, p12, "env:INVOICING_CERT_PASSWORD_CHOA")
    monkeypatch.setenv("INVOICING_CERT_PASSWORD_CHOA", "mat-khau-bi-mat")

    invoice = services.invoice_issue_for_demand(demand=paid_a[0])

    assert invoice.number == 1
    stored = InvoiceSettings.objects.values_list("certificate_password_ref", flat=True).get()
    assert "mat-khau" not in stored  # only the reference is in the database


def test_the_password_can_come_from_a_file_secret(
    paid_a, market_a, encrypted_a, monkeypatch, tmp_path
):
    path, p12 = encrypted_a
    secret = tmp_path / "secret"
    secret.write_text("mat-khau-bi-mat\n", encoding="utf-8")
    use_certificate(market_a, path, p12, "env:INVOICING_CERT_PASSWORD_CHOA")
    monkeypatch.setenv("INVOICING_CERT_PASSWORD_CHOA_FILE", str(secret))
    services.invoice_issue_for_demand(demand=paid_a[0])

    use_certificate(market_a, path, p12, f"file:{secret}")
    services.invoice_issue_for_demand(demand=paid_a[1])

    assert Invoice.objects.count() == 2


def test_an_unset_password_variable_is_named(paid_a, market_a, encrypted_a, monkeypatch):
    path, p12 = encrypted_a
    monkeypatch.delenv("INVOICING_CERT_PASSWORD_CHOA", raising=False)
    monkeypatch.delenv("INVOICING_CERT_PASSWORD_CHOA_FILE", raising=False)
    use_certificate(market_a, path, p12, "env:INVOICING_CERT_PASSWORD_CHOA")

    with pytest.raises(CertificateError) as error:
        services.invoice_issue_for_demand(demand=paid_a[0])

    assert error.value.code == "certificate_password_missing"
    assert "INVOICING_CERT_PASSWORD_CHOA" in error.value.message


def test_a_wrong_password_is_reported_without_signing(paid_a, market_a, encrypted_a, monkeypatch):
    path, p12 = encrypted_a
    use_certificate(market_a, path, p12, "env:INVOICING_CERT_PASSWORD_CHOA")
    monkeypatch.setenv("INVOICING_CERT_PASSWORD_CHOA", "sai")

    with pytest.raises(CertificateError) as error:
        services.invoice_issue_for_demand(demand=paid_a[0])

    assert error.value.code == "certificate_unreadable"
    assert "sai mật khẩu" in error.value.message
    assert not Invoice.objects.exists()


@pytest.mark.parametrize("reference", ["INVOICING_X", "env:lower", "vault:x", "env:"])
def test_a_password_reference_must_be_env_or_file(market_a, reference):
    from django.core.exceptions import ValidationError

    settings = InvoiceSettings(
        market=market_a, provider_tax_code="0101360697", certificate_password_ref=reference
    )

    with pytest.raises(ValidationError):
        settings.full_clean()
