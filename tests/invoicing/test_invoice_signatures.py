"""Issued invoices verify with Debian xmlsec1 and with our verifier; any change inside DLHDon
makes both refuse them (spec §6)."""

from __future__ import annotations

import pytest
from lxml import etree

from invoicing import services, testing
from invoicing.signing import verify_invoice
from market40.models import FeeDemand


@pytest.fixture
def issued(billed_a, market_a, tmp_path):
    """A VAT invoice and a sales invoice of market A, with the certificate's PEM."""
    _settings, pem = testing.configure_market(market_a, tmp_path / "certs")
    demands = list(FeeDemand.objects.filter(billing_run=billed_a.run).order_by("stall__code"))
    testing.mark_paid(demands)
    vat = services.invoice_issue_for_demand(demand=demands[0])
    testing.configure_market(market_a, tmp_path / "certs", form="2")
    sales = services.invoice_issue_for_demand(demand=demands[1])
    return {"vat": vat, "sales": sales}, pem


def text_tampered_variants(xml: bytes) -> list[tuple[str, bytes]]:
    """One variant per text node inside DLHDon, with that text changed."""
    root = etree.fromstring(xml)
    count = len([e for e in root.find("DLHDon").iter() if (e.text or "").strip()])
    variants = []
    for index in range(count):
        root = etree.fromstring(xml)
        element = [e for e in root.find("DLHDon").iter() if (e.text or "").strip()][index]
        element.text = element.text + "1"
        variants.append((element.tag, etree.tostring(root, encoding="UTF-8")))
    return variants


@pytest.mark.parametrize("form", ["vat", "sales"])
def test_an_issued_invoice_verifies_with_xmlsec1_and_our_verifier(issued, form, tmp_path):
    testing.require_xmlsec1()
    invoices, pem = issued
    xml = invoices[form].xml_bytes

    result = testing.xmlsec1_verify(xml, pem, tmp_path)
    report = verify_invoice(xml)

    assert result.returncode == 0, result.stderr
    assert report.valid
    assert report.seller.algorithm == "rsa-sha256"
    assert report.seller.signer_mst == "0312345678"


@pytest.mark.parametrize("form", ["vat", "sales"])
def test_changing_any_text_inside_dlhdon_fails_both_verifiers(issued, form, tmp_path):
    testing.require_xmlsec1()
    invoices, pem = issued
    variants = text_tampered_variants(invoices[form].xml_bytes)
    assert len(variants) > 40  # every field of the invoice, lines and totals included

    for tag, tampered in variants:
        report = verify_invoice(tampered)
        assert not report.valid, tag
        assert report.seller.reason.startswith("digest mismatch for reference #DLHDon-"), tag
        result = testing.xmlsec1_verify(tampered, pem, tmp_path)
        assert result.returncode != 0, tag


def test_the_stored_bytes_are_what_was_signed_and_their_hash_is_kept(issued):
    import hashlib

    invoices, _pem = issued
    for invoice in invoices.values():
        xml = invoice.xml_bytes
        assert invoice.sha256 == hashlib.sha256(xml).hexdigest()
        assert xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?><HDon><DLHDon Id="DLHDon-')
        assert b"\n" not in xml  # one line (spec §3.1)
        assert verify_invoice(xml).valid
