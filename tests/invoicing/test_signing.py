"""Seller signature and verifier (invoicing/signing.py, spec §6–§7).

Pure tests: no Django. The real signed invoices are read, never copied, from
``shared/data/einvoice/real/`` next to the repository (spec §12).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from invoicing.signing import (
    C14N,
    DS_NS,
    ENVELOPED,
    RSA_SHA256,
    SHA256,
    SigningError,
    SigningKey,
    VerificationError,
    load_pkcs12,
    make_test_certificate,
    sign_invoice,
    verify_invoice,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
REAL_DIR = REPO_ROOT.parent / "shared" / "data" / "einvoice" / "real"
DS = "{" + DS_NS + "}"

SELLER_MST = "0312345678"
SIGNING_TIME = datetime(2025, 6, 23, 16, 5, 32)
CERT_START = datetime(2025, 1, 1)


# --- fixtures and helpers --------------------------------------------------------------------


# The fixtures of spec §12; anything else dropped in the folder is verified too.
REAL_FILES = (
    "invoice-06786dcf.xml",
    "invoice-5918df25.xml",
    "invoice-5b30404c.xml",
    "invoice-dfe0809f.xml",
    "invoice-f4f3bf11.xml",
    "tdiep-202-test-env.xml",
)


def real_invoice_names() -> list[str]:
    found = {p.name for p in REAL_DIR.glob("*.xml")} if REAL_DIR.is_dir() else set()
    return sorted(found | set(REAL_FILES))


def read_real(name: str) -> bytes:
    path = REAL_DIR / name
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing; CI must have ../shared next to the repository")
        pytest.skip(f"real invoice fixture not available: {path} (needs ../shared)")
    return path.read_bytes()


real_invoice = pytest.mark.parametrize("name", real_invoice_names())


def unsigned_invoice(*, seller_mst: str = SELLER_MST, dlhdon_id: str | None = None) -> bytes:
    """A minimal but realistic unsigned HDon (spec §3): one line, DLHDon Id, empty DSCKS/NBan."""
    dlhdon_id = dlhdon_id or f"DLHDon-{uuid.uuid4()}"
    lines = "".join(
        f"<HHDVu><TChat>1</TChat><STT>{n}</STT><THHDVu>Phí thuê ki-ốt số A{n:02d} tháng 06/2025"
        "</THHDVu><DVTinh>Tháng</DVTinh><SLuong>1</SLuong><DGia>1000000</DGia>"
        "<ThTien>1000000</ThTien><TSuat>8%</TSuat></HHDVu>"
        for n in (1, 2, 3)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<HDon><DLHDon Id="{dlhdon_id}"><TTChung><PBan>2.1.0</PBan>'
        "<THDon>Hóa đơn giá trị gia tăng</THDon><KHMSHDon>1</KHMSHDon><KHHDon>C25TAA</KHHDon>"
        "<SHDon>7</SHDon><NLap>2025-06-23</NLap><DVTTe>VND</DVTTe><TGia>1</TGia>"
        "<HTTToan>Chuyển khoản</HTTToan><MSTTCGP>0101360697</MSTTCGP></TTChung><NDHDon>"
        f"<NBan><Ten>Ban quản lý chợ Bến Thành &amp; cộng sự</Ten><MST>{seller_mst}</MST>"
        "<DChi>Lê Lợi, Quận 1, TP Hồ Chí Minh</DChi></NBan>"
        "<NMua><Ten>Nguyễn Thị Hoa</Ten><HVTNMHang>Nguyễn Thị Hoa</HVTNMHang></NMua>"
        f"<DSHHDVu>{lines}</DSHHDVu><TToan><THTTLTSuat><LTSuat><TSuat>8%</TSuat>"
        "<ThTien>3000000</ThTien><TThue>240000</TThue></LTSuat></THTTLTSuat>"
        "<TgTCThue>3000000</TgTCThue><TgTThue>240000</TgTThue><TgTTTBSo>3240000</TgTTTBSo>"
        "<TgTTTBChu>Ba triệu hai trăm bốn mươi nghìn đồng</TgTTTBChu></TToan></NDHDon>"
        "</DLHDon><DSCKS><NBan/><NMua/><CCKSKhac/></DSCKS></HDon>"
    ).encode()


def strip_signatures(signed: bytes) -> bytes:
    """A real invoice back to its unsigned form: the HDon without MCCQT and signatures."""
    hdon = signed[signed.index(b"<HDon") : signed.index(b"</HDon>")]
    hdon = re.sub(rb"<MCCQT\b[^>]*>[^<]*</MCCQT>", b"", hdon)
    return hdon[: hdon.index(b"<DSCKS>")] + b"<DSCKS><NBan/><NMua/><CCKSKhac/></DSCKS></HDon>"


def seller_mst_of(xml: bytes) -> str:
    return re.search(rb"<NDHDon><NBan>.*?<MST>([^<]+)</MST>", xml).group(1).decode()


def dlhdon_id_of(xml: bytes) -> str:
    return re.search(rb'<DLHDon Id="([^"]+)"', xml).group(1).decode()


_keys: dict[tuple[str, int], tuple[SigningKey, bytes]] = {}


def key_for(mst: str = SELLER_MST, *, days: int = 730) -> tuple[SigningKey, bytes]:
    """A cached test key (RSA key generation is slow) and its certificate PEM."""
    if (mst, days) not in _keys:
        p12, pem = make_test_certificate(
            tax_code=mst, common_name="Ban quản lý chợ Bến Thành", days=days, not_before=CERT_START
        )
        _keys[mst, days] = (load_pkcs12(p12, None), pem)
    return _keys[mst, days]


@pytest.fixture(scope="module")
def seller_key() -> SigningKey:
    return key_for()[0]


@pytest.fixture(scope="module")
def signed(seller_key: SigningKey) -> bytes:
    return sign_invoice(unsigned_invoice(), seller_key, signing_time=SIGNING_TIME)


def xmlsec1_verify(tmp_path: Path, xml: bytes, cert_pem: bytes) -> subprocess.CompletedProcess:
    """Verify with Debian xmlsec1, the command documented in invoicing/signing.py."""
    if shutil.which("xmlsec1") is None:
        if os.environ.get("CI"):
            pytest.fail("xmlsec1 is required in CI (apt-get install xmlsec1)")
        pytest.skip("xmlsec1 not installed: apt-get install xmlsec1 to run this check")
    document = tmp_path / f"invoice-{uuid.uuid4().hex}.xml"
    certificate = tmp_path / "cert.pem"
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


def text_tampered_variants(xml: bytes) -> list[tuple[str, bytes]]:
    """One variant per text node inside DLHDon, with that text changed."""
    count = len([e for e in etree.fromstring(xml).find("DLHDon").iter() if (e.text or "").strip()])
    variants = []
    for index in range(count):
        root = etree.fromstring(xml)
        element = [e for e in root.find("DLHDon").iter() if (e.text or "").strip()][index]
        element.text = element.text + "1"
        variants.append(
            (element.tag, etree.tostring(root, encoding="UTF-8", xml_declaration=False))
        )
    return variants


# --- real invoices ---------------------------------------------------------------------------


@real_invoice
def test_every_real_invoice_verifies_with_seller_and_tax_authority_signatures(name: str):
    original = read_real(name)

    report = verify_invoice(original)

    assert report.valid, [(s.location, s.errors) for s in report.signatures]
    assert [s.location for s in report.signatures] == ["NBan", "CQT"]
    assert report.seller.signer_mst == seller_mst_of(original)
    assert report.seller.algorithm in ("rsa-sha1", "rsa-sha256")
    assert report.tax_authority.algorithm == "rsa-sha256"
    for signature in report.signatures:
        assert signature.signing_time is not None
        # Certificates may have expired since: that is a warning, never a failure.
        assert signature.certificate_valid_at_signing_time in (True, False)


@real_invoice
def test_tampering_a_text_node_inside_a_real_dlhdon_breaks_its_reference(name: str):
    original = read_real(name)
    number = re.search(rb"<SHDon>(\d+)</SHDon>", original)
    tampered = original.replace(number.group(0), b"<SHDon>99999999</SHDon>", 1)

    report = verify_invoice(tampered)

    reference = f"digest mismatch for reference #{dlhdon_id_of(original)}"
    assert not report.valid
    assert report.seller.reason == reference
    assert reference in report.tax_authority.errors


@real_invoice
def test_a_real_invoice_stripped_and_resigned_with_our_key_verifies_with_both_verifiers(
    name: str, tmp_path: Path
):
    unsigned = strip_signatures(read_real(name))
    key, pem = key_for(seller_mst_of(unsigned))

    resigned = sign_invoice(unsigned, key, signing_time=SIGNING_TIME)

    report = verify_invoice(resigned)
    assert report.valid, report.seller.errors
    result = xmlsec1_verify(tmp_path, resigned, pem)
    assert result.returncode == 0, result.stderr


# --- our signature ---------------------------------------------------------------------------


@pytest.mark.parametrize("golden", ["vat-invoice.xml", "sales-invoice.xml"])
def test_the_builders_golden_invoices_sign_and_verify_with_both_verifiers(
    golden: str, tmp_path: Path
):
    path = Path(__file__).parent / "golden" / golden
    if not path.is_file():
        pytest.skip(f"golden file of invoicing/xml.py not available: {path}")
    unsigned = path.read_bytes()
    key, pem = key_for(seller_mst_of(unsigned))

    xml = sign_invoice(unsigned, key, signing_time=SIGNING_TIME)

    assert verify_invoice(xml).valid
    result = xmlsec1_verify(tmp_path, xml, pem)
    assert result.returncode == 0, result.stderr


def test_our_signed_invoice_verifies_with_our_verifier(signed: bytes):
    report = verify_invoice(signed)

    assert report.valid
    (seller,) = report.signatures
    assert seller.location == "NBan"
    assert seller.signer_subject == "UID=MST:0312345678, CN=Ban quản lý chợ Bến Thành, C=VN"
    assert seller.signer_mst == SELLER_MST
    assert seller.certificate_valid_at_signing_time is True
    assert seller.warnings == ()


def test_our_signed_invoice_verifies_with_xmlsec1(signed: bytes, tmp_path: Path):
    result = xmlsec1_verify(tmp_path, signed, key_for()[1])

    assert result.returncode == 0, result.stderr
    assert "SignedInfo References (ok/all): 2/2" in result.stderr + result.stdout


def test_tampering_any_text_inside_dlhdon_makes_both_verifiers_fail(signed: bytes, tmp_path: Path):
    reference = f"digest mismatch for reference #{dlhdon_id_of(signed)}"
    variants = text_tampered_variants(signed)
    assert len(variants) > 30

    for tag, tampered in variants:
        assert verify_invoice(tampered).seller.reason == reference, tag
        result = xmlsec1_verify(tmp_path, tampered, key_for()[1])
        assert result.returncode != 0, tag


def test_a_changed_signing_time_breaks_the_object_reference(signed: bytes):
    tampered = signed.replace(b"2025-06-23T16:05:32</SigningTime>", b"2025-06-24T16:05:32</Sig")
    tampered = tampered.replace(b"</Sig</SignatureProperty>", b"</SigningTime></SignatureProperty>")

    report = verify_invoice(tampered)

    object_id = re.search(rb'<Object Id="([^"]+)"', signed).group(1).decode()
    assert report.seller.reason == f"digest mismatch for reference #{object_id}"


def test_a_changed_signature_value_is_a_bad_signature_value(signed: bytes):
    value = re.search(rb"<SignatureValue>(.)", signed)
    flipped = b"B" if value.group(1) == b"A" else b"A"
    tampered = signed[: value.start(1)] + flipped + signed[value.end(1) :]

    assert verify_invoice(tampered).seller.reason == "bad signature value"


def test_a_signature_without_certificate_is_reported_as_such(signed: bytes):
    tampered = re.sub(rb"<X509Certificate>[^<]+</X509Certificate>", b"", signed)

    report = verify_invoice(tampered)

    assert not report.valid
    assert report.seller.reason == "no X509Certificate"


def test_the_verifier_rejects_a_seller_certificate_for_another_mst():
    other_key = key_for("0123456789")[0]
    # Bypass the signer's own MST check to produce a cryptographically valid mismatch.
    impostor = SigningKey(private_key=other_key.private_key, certificate=other_key.certificate)
    impostor.__dict__["mst"] = SELLER_MST

    report = verify_invoice(sign_invoice(unsigned_invoice(), impostor, signing_time=SIGNING_TIME))

    assert report.seller.reason == "certificate subject MST 0123456789 ≠ seller MST 0312345678"


def test_a_certificate_expired_at_signing_time_is_a_warning_not_a_failure():
    fresh = key_for()[0]
    late = SigningKey(private_key=fresh.private_key, certificate=fresh.certificate)
    late.__dict__["validity_local"] = (datetime(2000, 1, 1), datetime(2100, 1, 1))
    xml = sign_invoice(unsigned_invoice(), late, signing_time=datetime(2030, 1, 1))

    seller = verify_invoice(xml).seller

    assert seller.valid
    assert seller.certificate_valid_at_signing_time is False
    assert "certificate not valid at signing time 2030-01-01T00:00:00" in seller.warnings[0]


def test_a_duplicated_id_is_never_resolved(signed: bytes):
    dlhdon_id = dlhdon_id_of(signed).encode()
    decoy = b'<DLQRCode Id="' + dlhdon_id + b'"/>'
    tampered = signed.replace(b"</DLHDon>", b"</DLHDon>" + decoy, 1)

    report = verify_invoice(tampered)

    assert report.seller.reason == f"reference #{dlhdon_id.decode()} is ambiguous (duplicate Id)"


XMLSEC_TEMPLATE = (
    '<Signature xmlns="http://www.w3.org/2000/09/xmldsig#" Id="NBan-xmlsec"><SignedInfo>'
    '<CanonicalizationMethod Algorithm="{c14n}"/><SignatureMethod Algorithm="{method}"/>'
    '<Reference URI="{uri}"><Transforms>'
    '<Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
    '<Transform Algorithm="{c14n}"/></Transforms>'
    '<DigestMethod Algorithm="{digest}"/><DigestValue/></Reference></SignedInfo>'
    "<SignatureValue/><KeyInfo><X509Data><X509Certificate/></X509Data></KeyInfo></Signature>"
)


@pytest.mark.parametrize(
    ("c14n", "method", "digest", "whole_document"),
    [
        (
            "http://www.w3.org/2001/10/xml-exc-c14n#",
            "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
            "http://www.w3.org/2000/09/xmldsig#sha1",
            True,
        ),
        (
            "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
            RSA_SHA256,
            SHA256,
            False,
        ),
    ],
    ids=["exclusive-c14n-rsa-sha1-uri-empty", "inclusive-c14n-rsa-sha256-by-id"],
)
def test_signatures_made_by_xmlsec1_verify_with_our_verifier(
    c14n: str, method: str, digest: str, whole_document: bool, tmp_path: Path
):
    if shutil.which("xmlsec1") is None:
        if os.environ.get("CI"):
            pytest.fail("xmlsec1 is required in CI (apt-get install xmlsec1)")
        pytest.skip("xmlsec1 not installed: apt-get install xmlsec1 to run this check")
    key, pem = key_for()
    unsigned = unsigned_invoice()
    uri = "" if whole_document else f"#{dlhdon_id_of(unsigned)}"
    template = XMLSEC_TEMPLATE.format(c14n=c14n, method=method, uri=uri, digest=digest)
    (tmp_path / "template.xml").write_bytes(
        unsigned.replace(b"<NBan/>", b"<NBan>" + template.encode() + b"</NBan>")
    )
    (tmp_path / "key.pem").write_bytes(
        key.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "cert.pem").write_bytes(pem)
    subprocess.run(
        ["xmlsec1", "--sign", "--id-attr:Id", "DLHDon", "--output", "signed.xml"]
        + ["--privkey-pem", "key.pem,cert.pem", "template.xml"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )

    report = verify_invoice((tmp_path / "signed.xml").read_bytes())

    assert report.valid, report.seller.errors
    assert report.seller.canonicalization_method == c14n
    assert report.seller.signature_method == method
    assert report.seller.reference_uris == (uri,)


# --- refusing to sign ------------------------------------------------------------------------


def test_an_expired_certificate_refuses_to_sign():
    key, _ = key_for(days=30)  # valid 2025-01-01 … 2025-01-31

    with pytest.raises(SigningError, match="certificate not valid at signing time"):
        sign_invoice(unsigned_invoice(), key, signing_time=SIGNING_TIME)


def test_a_certificate_not_yet_valid_refuses_to_sign(seller_key: SigningKey):
    with pytest.raises(SigningError, match="certificate not valid at signing time 2024"):
        sign_invoice(unsigned_invoice(), seller_key, signing_time=datetime(2024, 12, 31))


def test_a_certificate_whose_mst_differs_from_the_seller_refuses_to_sign(seller_key: SigningKey):
    with pytest.raises(
        SigningError, match="certificate subject MST 0312345678 ≠ seller MST 0399999999"
    ):
        sign_invoice(
            unsigned_invoice(seller_mst="0399999999"), seller_key, signing_time=SIGNING_TIME
        )


def test_an_invoice_without_an_empty_seller_slot_refuses_to_sign(signed: bytes, seller_key):
    with pytest.raises(SigningError, match="empty NBan"):
        sign_invoice(signed, seller_key, signing_time=SIGNING_TIME)


# --- layout (spec §6.1) ----------------------------------------------------------------------


def test_the_signature_sits_in_dscks_nban_with_an_id_and_the_spec_algorithms(signed: bytes):
    root = etree.fromstring(signed)
    dlhdon_id = root.find("DLHDon").get("Id")
    signature = root.find(f"DSCKS/NBan/{DS}Signature")

    assert [child.tag for child in root.find("DSCKS")] == ["NBan", "NMua", "CCKSKhac"]
    assert signature is not None and signature.get("Id") == f"NBan-{dlhdon_id[len('DLHDon-') :]}"
    assert signature.nsmap == {None: DS_NS}
    signed_info = signature.find(f"{DS}SignedInfo")
    assert signed_info.find(f"{DS}CanonicalizationMethod").get("Algorithm") == C14N
    assert signed_info.find(f"{DS}SignatureMethod").get("Algorithm") == RSA_SHA256
    invoice_ref, object_ref = signed_info.findall(f"{DS}Reference")
    assert invoice_ref.get("URI") == f"#{dlhdon_id}"
    assert [t.get("Algorithm") for t in invoice_ref.iter(f"{DS}Transform")] == [ENVELOPED]
    obj = signature.find(f"{DS}Object")
    assert object_ref.get("URI") == f"#{obj.get('Id')}"
    assert object_ref.find(f"{DS}Transforms") is None
    for reference in (invoice_ref, object_ref):
        assert reference.find(f"{DS}DigestMethod").get("Algorithm") == SHA256
    x509_data = signature.find(f"{DS}KeyInfo/{DS}X509Data")
    assert [child.tag for child in x509_data] == [f"{DS}X509SubjectName", f"{DS}X509Certificate"]
    prop = obj.find(f"{DS}SignatureProperties/{DS}SignatureProperty")
    assert prop.get("Target") == f"#{signature.get('Id')}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", prop.findtext(f"{DS}SigningTime"))
    assert b"\n" not in signed


def test_an_aware_signing_time_is_written_as_vietnam_local_time_without_offset(
    seller_key: SigningKey,
):
    moment = datetime(2025, 6, 23, 9, 5, 32, 987654, tzinfo=UTC)

    xml = sign_invoice(unsigned_invoice(), seller_key, signing_time=moment)

    assert b"<SigningTime>2025-06-23T16:05:32</SigningTime>" in xml


def test_the_unsigned_bytes_are_kept_byte_for_byte(seller_key: SigningKey):
    unsigned = unsigned_invoice()

    xml = sign_invoice(unsigned, seller_key, signing_time=SIGNING_TIME)

    start, end = xml.index(b"<Signature "), xml.index(b"</Signature>") + len(b"</Signature>")
    assert xml[:start] + xml[end:] == unsigned.replace(b"<NBan/>", b"<NBan></NBan>")


def test_signing_is_deterministic_for_a_fixed_signing_time(seller_key: SigningKey):
    unsigned = unsigned_invoice()

    first = sign_invoice(unsigned, seller_key, signing_time=SIGNING_TIME)
    second = sign_invoice(unsigned, seller_key, signing_time=SIGNING_TIME)

    assert first == second


def test_a_pkcs12_with_a_password_loads_from_a_file(tmp_path: Path):
    p12, pem = make_test_certificate(
        tax_code=SELLER_MST, common_name="Chợ Bình Tây", password=b"s3cret"
    )
    path = tmp_path / "seller.p12"
    path.write_bytes(p12)

    key = load_pkcs12(path, "s3cret")

    assert key.mst == SELLER_MST
    assert key.certificate_pem() == pem
    with pytest.raises(SigningError, match="cannot read the PKCS#12"):
        load_pkcs12(path, "wrong")


def test_a_test_certificate_is_valid_from_now_by_default():
    p12, _ = make_test_certificate(tax_code=SELLER_MST, common_name="Chợ Lớn", days=1)
    key = load_pkcs12(p12, None)

    now = datetime.now(UTC)
    assert key.certificate.not_valid_before_utc <= now <= key.certificate.not_valid_after_utc
    assert key.certificate.not_valid_after_utc - now < timedelta(days=1)


# --- hostile input ---------------------------------------------------------------------------

XXE = (
    b'<?xml version="1.0"?><!DOCTYPE HDon [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b'<HDon><DLHDon Id="DLHDon-1"><TTChung>&xxe;</TTChung></DLHDon></HDon>'
)
BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (n, (b"&lol%d;" % (n - 1) if n > 1 else b"&lol;") * 10)
        for n in range(1, 10)
    )
    + b']><HDon><DLHDon Id="DLHDon-1">&lol9;</DLHDon></HDon>'
)
XXE_UTF16 = (
    XXE.decode().replace('version="1.0"', 'version="1.0" encoding="UTF-16"').encode("utf-16")
)


@pytest.mark.parametrize(
    "hostile", [XXE, BILLION_LAUGHS, XXE_UTF16], ids=["xxe", "billion-laughs", "xxe-utf16"]
)
def test_xxe_and_entity_expansion_are_refused_with_a_clear_message(
    hostile: bytes, seller_key: SigningKey
):
    with pytest.raises(VerificationError, match="DOCTYPE or entity declarations is refused"):
        verify_invoice(hostile)
    with pytest.raises(SigningError, match="DOCTYPE or entity declarations is refused"):
        sign_invoice(hostile, seller_key, signing_time=SIGNING_TIME)


def test_an_oversized_document_is_refused():
    with pytest.raises(VerificationError, match="too large"):
        verify_invoice(b"<HDon>" + b" " * (5 * 1024 * 1024) + b"</HDon>")


def test_malformed_xml_is_a_verification_error():
    with pytest.raises(VerificationError, match="malformed XML"):
        verify_invoice(b"<HDon><DLHDon></HDon>")
