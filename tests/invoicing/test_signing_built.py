"""Signing an invoice just built (``sign_invoice`` given the builder's ``UnsignedInvoice``):
nothing is parsed again, and the result is the very bytes of signing its XML (spec §6.1)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from invoicing import testing
from invoicing.signing import SigningError, SigningKey, load_pkcs12, sign_invoice, verify_invoice
from invoicing.xml import build_unsigned_invoice
from tests.invoicing.test_xml_builder import (
    SELLER,
    replacement_invoice,
    sales_invoice,
    vat_invoice,
)
from tests.invoicing.test_xml_text_writer import hostile_invoice, note_only_invoice

SIGNING_TIME = datetime(2025, 7, 3, 9, 30, 15)


def key_for(tax_code: str, **certificate) -> tuple[SigningKey, bytes]:
    p12, pem = testing.cached_certificate(tax_code, not_before=datetime(2025, 1, 1), **certificate)
    return load_pkcs12(p12, None), pem


@pytest.fixture(scope="module")
def seller_key() -> tuple[SigningKey, bytes]:
    return key_for(SELLER.tax_code)


@pytest.mark.parametrize(
    "make",
    [vat_invoice, sales_invoice, replacement_invoice, note_only_invoice, hostile_invoice],
    ids=["vat", "sales", "replacement", "note-only", "hostile"],
)
def test_a_built_invoice_signs_to_the_bytes_of_signing_its_xml_and_verifies(
    make, seller_key, tmp_path: Path
):
    key, pem = seller_key
    built = build_unsigned_invoice(make())

    signed = sign_invoice(built, key, signing_time=SIGNING_TIME)

    assert signed == sign_invoice(built.xml, key, signing_time=SIGNING_TIME)
    assert signed.startswith(built.xml[: built.xml.index(b"<DSCKS>")])
    report = verify_invoice(signed)
    assert report.valid and report.seller is not None
    assert report.seller.signer_mst == SELLER.tax_code
    testing.require_xmlsec1()
    result = testing.xmlsec1_verify(signed, pem, tmp_path)
    assert result.returncode == 0, result.stderr


def test_a_built_invoice_is_refused_a_certificate_of_another_seller():
    other, _pem = key_for("0311111111")
    with pytest.raises(SigningError, match="≠ seller MST 0399999999"):
        sign_invoice(build_unsigned_invoice(vat_invoice()), other, signing_time=SIGNING_TIME)


def test_a_built_invoice_is_refused_a_certificate_expired_at_signing_time():
    expired, _pem = key_for(SELLER.tax_code, days=30)
    with pytest.raises(SigningError, match="not valid at signing time 2025-07-03T09:30:15"):
        sign_invoice(build_unsigned_invoice(vat_invoice()), expired, signing_time=SIGNING_TIME)


def test_a_signature_id_already_used_in_a_built_invoice_is_refused(seller_key):
    built = build_unsigned_invoice(vat_invoice())
    with pytest.raises(SigningError, match="already exists"):
        sign_invoice(built, seller_key[0], signing_time=SIGNING_TIME, signature_id=built.invoice_id)
    with pytest.raises(SigningError, match="not an XML NCName"):
        sign_invoice(built, seller_key[0], signing_time=SIGNING_TIME, signature_id="1-NBan")
