"""Helpers for tests, benchmarks and demos: test certificates, market set-up, paid demands,
and the independent check with Debian ``xmlsec1``. Not used by the application itself.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from datetime import datetime
from pathlib import Path

from invoicing.certificates import clear_cache
from invoicing.models import InvoiceSettings
from invoicing.signing import make_test_certificate
from market40.models import FeeDemand, Market

_certificates: dict[tuple, tuple[bytes, bytes]] = {}


def cached_certificate(
    tax_code: str,
    *,
    common_name: str = "Ban quản lý chợ (thử nghiệm)",
    not_before: datetime | None = None,
    days: int = 365,
    password: str | None = None,
) -> tuple[bytes, bytes]:
    """``(pkcs12_bytes, cert_pem)``; RSA-2048 key generation is slow, so results are reused
    within a process for the same arguments (``not_before=None`` means "valid now")."""
    key = (tax_code, common_name, not_before, days, password)
    if key not in _certificates:
        _certificates[key] = make_test_certificate(
            tax_code=tax_code,
            common_name=common_name,
            not_before=not_before,
            days=days,
            password=password.encode() if password else None,
        )
    return _certificates[key]


def configure_market(
    market: Market,
    directory: Path,
    *,
    form: str = "1",
    auto_issue: bool = False,
    serial_scheme: str = "CYYTAA",
    not_before: datetime | None = None,
    days: int = 365,
    tax_code: str | None = None,
    provider_tax_code: str = "0101360697",
) -> tuple[InvoiceSettings, bytes]:
    """Give ``market`` invoice settings and a fresh test certificate file in ``directory``;
    returns the settings and the certificate PEM (for ``xmlsec1``)."""
    p12, pem = cached_certificate(
        tax_code or market.tax_code,
        common_name=market.name,
        not_before=not_before,
        days=days,
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{market.code}-{uuid.uuid4().hex[:8]}.p12"
    path.write_bytes(p12)
    settings, _created = InvoiceSettings.objects.update_or_create(
        market=market,
        defaults={
            "form": form,
            "serial_scheme": serial_scheme,
            "provider_tax_code": provider_tax_code,
            "auto_issue_on_payment": auto_issue,
            "certificate_path": str(path),
            "certificate_password_ref": "",
        },
    )
    clear_cache()
    return settings, pem


def mark_paid(demands) -> int:
    """Settle demands the way the payments app leaves them (tests only: a queryset update)."""
    from django.db.models import F

    return FeeDemand.objects.filter(pk__in=[d.pk for d in demands]).update(
        status=FeeDemand.Status.PAID, paid_vnd=F("total_vnd")
    )


def xmlsec1_available() -> bool:
    return shutil.which("xmlsec1") is not None


def xmlsec1_verify(xml: bytes, cert_pem: bytes, directory: Path) -> subprocess.CompletedProcess:
    """``xmlsec1 --verify --id-attr:Id DLHDon --pubkey-cert-pem cert.pem
    --enabled-key-data key-name invoice.xml`` (the command of ``invoicing/signing.py``)."""
    directory.mkdir(parents=True, exist_ok=True)
    name = uuid.uuid4().hex
    document = directory / f"invoice-{name}.xml"
    certificate = directory / f"cert-{name}.pem"
    document.write_bytes(xml)
    certificate.write_bytes(cert_pem)
    return subprocess.run(
        [
            "xmlsec1",
            "--verify",
            "--id-attr:Id",
            "DLHDon",
            "--pubkey-cert-pem",
            str(certificate),
            "--enabled-key-data",
            "key-name",
            str(document),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def require_xmlsec1() -> None:
    """Skip visibly without ``xmlsec1``; under CI (env ``CI`` set) fail instead."""
    import os

    import pytest

    if not xmlsec1_available():
        if os.environ.get("CI"):
            pytest.fail("xmlsec1 is required in CI (apt-get install xmlsec1)")
        pytest.skip("xmlsec1 not installed: apt-get install xmlsec1 to run this check")


def embedded_certificate_pem(xml: bytes) -> bytes:
    """The seller certificate of a signed invoice (``KeyInfo/X509Data/X509Certificate``)."""
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from invoicing.signing import DS_NS
    from invoicing.xml import safe_parse

    text = safe_parse(xml).findtext(
        f"DSCKS/NBan/{{{DS_NS}}}Signature/{{{DS_NS}}}KeyInfo/{{{DS_NS}}}X509Data/"
        f"{{{DS_NS}}}X509Certificate"
    )
    certificate = x509.load_der_x509_certificate(base64.b64decode("".join(text.split())))
    return certificate.public_bytes(serialization.Encoding.PEM)


def check_stored_invoices(directory: Path, *, xmlsec1: bool = True) -> int:
    """Every stored invoice: our verifier says valid, its seller certificate names the seller's
    tax code, its totals identities hold and its words read its total; and Debian ``xmlsec1``
    verifies it with its certificate. Returns how many were checked; AssertionError otherwise."""
    from invoicing.models import Invoice
    from invoicing.signing import verify_invoice
    from invoicing.xml import parse_invoice_summary

    invoices = list(Invoice.objects.order_by("pk"))
    for invoice in invoices:
        xml = invoice.xml_bytes
        report = verify_invoice(xml)
        assert report.valid, (invoice.label, [s.errors for s in report.signatures])
        assert report.seller is not None and report.seller.signer_mst == invoice.seller_tax_code
        summary = parse_invoice_summary(xml)
        assert summary["identity_problems"] == [], (invoice.label, summary["identity_problems"])
        assert summary["words_match"] is True, invoice.label
        assert summary["number"] == invoice.number and summary["serial"] == invoice.serial_code
        assert summary["total_payable"] == invoice.total_payable_vnd
        if xmlsec1 and xmlsec1_available():
            result = xmlsec1_verify(xml, embedded_certificate_pem(xml), directory)
            assert result.returncode == 0, (invoice.label, result.stderr)
    return len(invoices)
