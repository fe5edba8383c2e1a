"""XMLDSig for Vietnamese e-invoices (HĐĐT): the seller signature and a verifier.

Pure module: lxml + ``cryptography``, no Django.

Signing (spec §6.1, §11.3) produces exactly this layout, on one line, inside ``HDon/DSCKS/NBan``::

    <Signature xmlns="http://www.w3.org/2000/09/xmldsig#" Id="NBan-…">
      <SignedInfo>  inclusive C14N 1.0, RSA-SHA256
        <Reference URI="#<DLHDon Id>">  enveloped-signature transform, SHA-256
        <Reference URI="#SigningTime-NBan-…">  the Object below, SHA-256
      <SignatureValue/>
      <KeyInfo><X509Data><X509SubjectName/><X509Certificate/></X509Data></KeyInfo>
      <Object Id="SigningTime-NBan-…"><SignatureProperties>
        <SignatureProperty Target="#NBan-…"><SigningTime>YYYY-MM-DDThh:mm:ss</SigningTime>

The signature is spliced into the caller's bytes: everything outside ``DSCKS/NBan`` stays
byte-identical (spec §3.1, §6.2 pitfall 5: never re-serialise a signed invoice). ``SignedInfo``
and the ``Object`` are written by us, so we write their canonical form directly instead of
canonicalising them; only ``DLHDon`` goes through C14N, once, and not at all for an invoice
just built by ``xml.build_unsigned_invoice``, which brings its canonical DLHDon along.

Independent check with Debian ``xmlsec1`` (1.2.37), where ``cert.pem`` is the signer certificate::

    xmlsec1 --verify --id-attr:Id DLHDon --pubkey-cert-pem cert.pem \\
        --enabled-key-data key-name invoice.xml

``--id-attr:Id DLHDon`` declares ``DLHDon/@Id`` as an XML ID (there is no DTD); the ``Object``
reference resolves without help because xmlsec registers ``Id`` attributes inside the Signature.
``--enabled-key-data key-name`` makes xmlsec use the key from ``cert.pem`` instead of trying
to build a trusted chain for the embedded (here self-signed) ``X509Certificate``.

The verifier (:func:`verify_invoice`) follows spec §6.3 for every ``Signature`` in the document
(seller in ``DSCKS/NBan``, tax authority in ``DSCKS/CQT``). It checks integrity and the binding of
the seller certificate to ``NBan/MST``; it does not build a chain to a Vietnamese root CA or check
revocation: callers that need trust decide it from ``SignatureReport.certificate``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from functools import cached_property
from typing import Literal
from xml.sax.saxutils import escape as _xml_escape

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from lxml import etree

from invoicing.xml import (
    InvoiceXmlError,
    UnsafeXmlError,
    UnsignedInvoice,
    safe_parse,
    safe_parser,
)

__all__ = [
    "MAX_XML_BYTES",
    "VIETNAM_TZ",
    "SignatureReport",
    "SigningError",
    "SigningKey",
    "VerificationError",
    "VerificationReport",
    "format_subject",
    "load_pkcs12",
    "make_test_certificate",
    "sign_invoice",
    "subject_mst",
    "verify_invoice",
]

# Vietnam has used UTC+7 without daylight saving since 1975; SigningTime is local time with no
# offset (spec §3.2), so a fixed offset is exact and needs no tz database.
VIETNAM_TZ = timezone(timedelta(hours=7), "ICT")

# An invoice is ~10 kB; a TDiep carries one invoice. 5 MB is far above any legitimate input and
# keeps a hostile upload from pinning a worker.
MAX_XML_BYTES = 5 * 1024 * 1024

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
_DS = "{" + DS_NS + "}"
_XML_NS_ATTR = "{http://www.w3.org/XML/1998/namespace}"

C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N_WITH_COMMENTS = C14N + "#WithComments"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
EXC_C14N_WITH_COMMENTS = EXC_C14N + "WithComments"
ENVELOPED = DS_NS + "enveloped-signature"
RSA_SHA1 = DS_NS + "rsa-sha1"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
SHA1 = DS_NS + "sha1"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"

_C14N_METHODS: dict[str, tuple[bool, bool]] = {  # algorithm -> (exclusive, with_comments)
    C14N: (False, False),
    C14N_WITH_COMMENTS: (False, True),
    EXC_C14N: (True, False),
    EXC_C14N_WITH_COMMENTS: (True, True),
}
_SIGNATURE_METHODS: dict[str, type[hashes.HashAlgorithm]] = {
    RSA_SHA1: hashes.SHA1,
    RSA_SHA256: hashes.SHA256,
    RSA_SHA384: hashes.SHA384,
    RSA_SHA512: hashes.SHA512,
}
_DIGEST_METHODS: dict[str, str] = {
    SHA1: "sha1",
    SHA256: "sha256",
    SHA384: "sha384",
    SHA512: "sha512",
}
_ID_ATTRIBUTES = ("Id", "ID", "id")

# .NET-style short names, as in the X509SubjectName of real invoices (spec §6.1): "E=…, UID=…".
_SUBJECT_NAMES = {
    NameOID.EMAIL_ADDRESS: "E",
    NameOID.STATE_OR_PROVINCE_NAME: "S",
    NameOID.USER_ID: "UID",
}
_MST_PREFIX = "MST:"
_NCNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]*$")

Location = Literal["NBan", "NMua", "CQT", "other"]


class SigningError(ValueError):
    """The invoice cannot be signed (bad input, unsafe XML, certificate unfit)."""


class VerificationError(ValueError):
    """The document cannot even be examined (unsafe or malformed XML)."""


# ---------------------------------------------------------------------------------------------
# Safe parsing


_DECLARATION_REFUSED = (
    "XML with a DOCTYPE or entity declarations is refused "
    "(external or expanding entities: XXE, billion laughs)"
)


def _parse(data: bytes, error: type[ValueError]) -> etree._Element:
    """Parse untrusted XML with ``xml.safe_parse`` (size limit, no DTD: XXE, billion laughs;
    no network), reporting a refusal as ``error``."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise error("XML must be given as bytes")
    if len(data) > MAX_XML_BYTES:
        raise error(f"XML document too large: {len(data)} bytes > {MAX_XML_BYTES}")
    try:
        return safe_parse(data, max_bytes=MAX_XML_BYTES)
    except UnsafeXmlError as exc:  # not the size (checked above): a DOCTYPE or an ENTITY
        raise error(_DECLARATION_REFUSED) from exc
    except InvoiceXmlError as exc:
        raise error(exc.message) from exc


# ---------------------------------------------------------------------------------------------
# Canonicalisation


def _canonicalize(
    element: etree._Element,
    *,
    exclusive: bool = False,
    with_comments: bool = False,
    inclusive_prefixes: list[str] | None = None,
    exclude: etree._Element | None = None,
) -> bytes:
    """Canonical form of ``element`` as a document subset (C14N 1.0 or exclusive C14N).

    lxml's subtree C14N renders spurious ``xmlns=""`` below an element whose default namespace
    is declared on an ancestor (spec §6.2 pitfall 3), so the subtree is first serialised (lxml
    then declares every in-scope namespace on it, which is what inclusive C14N must render) and
    re-parsed. ``exclude`` (the enveloped signature) is dropped from the copy.
    """
    if exclude is None and not element.nsmap and not exclusive:
        # No namespace in scope: the quirk cannot occur and the direct path is exact.
        return etree.tostring(element, method="c14n", with_comments=with_comments)
    copy = etree.fromstring(etree.tostring(element, with_tail=False), safe_parser())
    if exclude is not None:
        position = next((i for i, node in enumerate(element.iter()) if node is exclude), None)
        if position is not None:
            _remove_keeping_tail(next(n for i, n in enumerate(copy.iter()) if i == position))
    return etree.tostring(
        copy,
        method="c14n",
        exclusive=exclusive,
        with_comments=with_comments,
        inclusive_ns_prefixes=inclusive_prefixes or None,
    )


def _remove_keeping_tail(node: etree._Element) -> None:
    """Remove ``node`` and its subtree but keep the text that follows it (lxml's tail)."""
    parent = node.getparent()
    if parent is None:
        raise VerificationError("cannot remove the document element")
    tail = node.tail
    previous = node.getprevious()
    if tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(node)


def _namespace_declarations(nsmap: dict[str | None, str], default: str) -> str:
    """Namespace declarations as C14N renders them on an apex element: default first."""
    parts = [f' xmlns="{default}"']
    for prefix in sorted(p for p in nsmap if p is not None and p != "xml"):
        parts.append(f' xmlns:{prefix}="{_attr_escape(nsmap[prefix])}"')
    return "".join(parts)


def _attr_escape(value: str) -> str:
    """Attribute escaping as C14N does it (``& < "`` and whitespace characters)."""
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace('"', "&quot;")
        .replace("\t", "&#x9;")
        .replace("\n", "&#xA;")
        .replace("\r", "&#xD;")
    )


# ---------------------------------------------------------------------------------------------
# Keys and certificates


def format_subject(name: x509.Name) -> str:
    """A certificate subject the way real invoices write ``X509SubjectName`` (spec §6.1).

    Most specific first, ``", "``-separated, short names E / S / UID, RFC 4514 value escaping:
    ``UID=MST:0312345678, CN=Ban quản lý chợ, C=VN``.
    """
    return ", ".join(
        rdn.rfc4514_string(attr_name_overrides=_SUBJECT_NAMES) for rdn in reversed(name.rdns)
    )


def subject_mst(certificate: x509.Certificate) -> str | None:
    """The tax code in the subject's ``UID=MST:<MST>`` (spec §6.2 pitfall 7), if any."""
    for attribute in certificate.subject.get_attributes_for_oid(NameOID.USER_ID):
        value = attribute.value if isinstance(attribute.value, str) else ""
        if value.upper().startswith(_MST_PREFIX):
            return value[len(_MST_PREFIX) :].strip()
    return None


@dataclass(frozen=True, eq=False)
class SigningKey:
    """An RSA private key with its certificate (and chain), loaded once and reused."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.private_key, rsa.RSAPrivateKey):
            raise SigningError("only RSA keys are supported (spec §6.1: RSA ≥ 2048)")
        ours = self.private_key.public_key().public_numbers()
        if self.certificate.public_key().public_numbers() != ours:
            raise SigningError("the certificate does not belong to the private key")

    @cached_property
    def mst(self) -> str | None:
        return subject_mst(self.certificate)

    @cached_property
    def subject(self) -> str:
        return format_subject(self.certificate.subject)

    @cached_property
    def key_info(self) -> str:
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return (
            "<KeyInfo><X509Data>"
            f"<X509SubjectName>{_xml_escape(self.subject)}</X509SubjectName>"
            f"<X509Certificate>{base64.b64encode(der).decode('ascii')}</X509Certificate>"
            "</X509Data></KeyInfo>"
        )

    @cached_property
    def key_info_bytes(self) -> bytes:
        return self.key_info.encode("utf-8")

    @cached_property
    def validity_local(self) -> tuple[datetime, datetime]:
        """Validity bounds as naive Vietnam local times, to compare with a SigningTime."""
        return (
            self.certificate.not_valid_before_utc.astimezone(VIETNAM_TZ).replace(tzinfo=None),
            self.certificate.not_valid_after_utc.astimezone(VIETNAM_TZ).replace(tzinfo=None),
        )

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def load_pkcs12(
    path_or_bytes: str | os.PathLike[str] | bytes, password: str | bytes | None
) -> SigningKey:
    """Load a PKCS#12 (.p12/.pfx) file or its bytes into a :class:`SigningKey`."""
    if isinstance(path_or_bytes, bytes | bytearray):
        data = bytes(path_or_bytes)
    else:
        with open(path_or_bytes, "rb") as handle:
            data = handle.read()
    if isinstance(password, str):
        password = password.encode("utf-8")
    try:
        key, certificate, chain = pkcs12.load_key_and_certificates(data, password)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SigningError(f"cannot read the PKCS#12 file: {exc}") from exc
    if key is None or certificate is None:
        raise SigningError("the PKCS#12 file must hold a private key and its certificate")
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SigningError("only RSA keys are supported (spec §6.1: RSA ≥ 2048)")
    return SigningKey(private_key=key, certificate=certificate, chain=tuple(chain))


def make_test_certificate(
    *,
    tax_code: str,
    common_name: str,
    days: int = 365,
    not_before: datetime | None = None,
    password: bytes | None = None,
) -> tuple[bytes, bytes]:
    """A self-signed RSA-2048 certificate shaped like a Vietnamese invoice certificate.

    Subject ``UID=MST:<tax_code>, CN=<common_name>, C=VN`` (UID = OID 0.9.2342.19200300.100.1.1,
    UTF8String, as the real Viettel-CA and SAFE-CA certificates). Returns
    ``(pkcs12_bytes, cert_pem)``; the PKCS#12 is unencrypted unless ``password`` is given.
    For tests, benchmarks and the tax-authority simulator only.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.USER_ID, _MST_PREFIX + tax_code),
        ]
    )
    start = not_before or datetime.now(UTC) - timedelta(minutes=5)
    if start.tzinfo is None:
        start = start.replace(tzinfo=VIETNAM_TZ)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    p12 = pkcs12.serialize_key_and_certificates(
        name=common_name.encode("utf-8"),
        key=key,
        cert=certificate,
        cas=None,
        encryption_algorithm=encryption,
    )
    return p12, certificate.public_bytes(serialization.Encoding.PEM)


def _certificate_valid_at(certificate: x509.Certificate, moment: datetime) -> bool:
    return certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc


def _validity_text(certificate: x509.Certificate) -> str:
    return (
        f"{certificate.not_valid_before_utc.astimezone(VIETNAM_TZ):%Y-%m-%d %H:%M} – "
        f"{certificate.not_valid_after_utc.astimezone(VIETNAM_TZ):%Y-%m-%d %H:%M} (UTC+7)"
    )


# ---------------------------------------------------------------------------------------------
# Signing

# The seller signature (spec §6.1) is written by us, so its canonical form is written directly
# rather than computed. C14N expands empty elements; the document copy keeps them self-closed.
_C14N_DOCUMENT = f'<CanonicalizationMethod Algorithm="{C14N}"/>'
_RSA_SHA256_DOCUMENT = f'<SignatureMethod Algorithm="{RSA_SHA256}"/>'
_ENVELOPED_DOCUMENT = f'<Transforms><Transform Algorithm="{ENVELOPED}"/></Transforms>'
_SHA256_DOCUMENT = f'<DigestMethod Algorithm="{SHA256}"/>'
_C14N_CANONICAL = f'<CanonicalizationMethod Algorithm="{C14N}"></CanonicalizationMethod>'
_RSA_SHA256_CANONICAL = f'<SignatureMethod Algorithm="{RSA_SHA256}"></SignatureMethod>'
_ENVELOPED_CANONICAL = f'<Transforms><Transform Algorithm="{ENVELOPED}"></Transform></Transforms>'
_SHA256_CANONICAL = f'<DigestMethod Algorithm="{SHA256}"></DigestMethod>'
_PKCS1V15 = padding.PKCS1v15()
_SHA256_HASH = hashes.SHA256()
_DS_XMLNS = f' xmlns="{DS_NS}"'
_ATTR_SPECIALS = re.compile(r'[&<"\t\n\r]')
_SELLER_MST = etree.XPath("string(DLHDon/NDHDon/NBan/MST)")

# The empty seller slot in the unsigned bytes: <DSCKS><NBan/> or <DSCKS><NBan></NBan>.
_EMPTY_SELLER_SLOT = re.compile(rb"<DSCKS\s*>\s*<NBan\s*(?:/>|>\s*</NBan\s*>)")
_IDS_IN_USE = etree.XPath("//@Id[. = $a or . = $b]")


def _as_aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=VIETNAM_TZ)


def sign_invoice(
    unsigned_xml: bytes | UnsignedInvoice,
    key: SigningKey,
    *,
    signing_time: datetime,
    signature_id: str | None = None,
) -> bytes:
    """Sign an unsigned ``HDon`` as the seller and return the signed bytes (spec §6.1).

    ``unsigned_xml`` is a UTF-8 ``HDon`` whose ``DSCKS`` starts with an empty ``NBan``, or the
    :class:`~invoicing.xml.UnsignedInvoice` that ``xml.build_unsigned_invoice`` returns: the
    builder already knows what would be read back from the bytes (the DLHDon Id, the seller's
    MST, DLHDon in canonical form; no namespace, no DTD, an empty ``DSCKS/NBan``), so nothing
    is parsed or canonicalised again, and the result is the same bytes as signing its ``xml``.
    ``signing_time`` is written as Vietnam local time; a naive value is taken as already local.
    ``signature_id`` defaults to ``NBan-<DLHDon Id without its "DLHDon-" prefix>`` so the output
    is a function of the input (RSA PKCS#1 v1.5 is deterministic): re-signing gives the same
    bytes.

    Refuses (:class:`SigningError`) an expired or not-yet-valid certificate, or one whose
    ``UID=MST:`` differs from ``NDHDon/NBan/MST``.
    """
    if isinstance(unsigned_xml, UnsignedInvoice):
        return _sign_built(unsigned_xml, key, signing_time, signature_id)
    root = _parse(unsigned_xml, SigningError)
    if root.tag != "HDon":
        raise SigningError(f"the document element must be HDon, not {root.tag!r}")
    encoding = (root.getroottree().docinfo.encoding or "UTF-8").upper()
    if encoding not in ("UTF-8", "UTF8"):
        raise SigningError(f"invoices are UTF-8 (spec §3.1); this one declares {encoding}")

    dlhdon = next(root.iterchildren("DLHDon"), None)
    if dlhdon is None:
        raise SigningError("HDon has no DLHDon")
    dlhdon_id = dlhdon.get("Id")
    if not dlhdon_id:
        raise SigningError("DLHDon has no Id attribute (spec §6.2 pitfall 1)")
    dscks = next(root.iterchildren("DSCKS"), None)
    nban_slot = dscks[0] if dscks is not None and len(dscks) else None
    if (
        nban_slot is None
        or nban_slot.tag != "NBan"
        or (dscks.text or "").strip()
        or len(nban_slot)
        or (nban_slot.text or "").strip()
    ):
        raise SigningError("HDon/DSCKS must start with an empty NBan before signing")
    if dscks.attrib or nban_slot.attrib:
        # The signature is spliced into the bytes at "<DSCKS><NBan/>"; keep that spelling
        # unambiguous.
        raise SigningError("DSCKS and NBan must not carry attributes")
    if root.attrib and any(name.startswith(_XML_NS_ATTR) for name in root.attrib):
        # Inclusive C14N would inherit xml:* attributes into the signed subsets.
        raise SigningError("xml:* attributes on HDon are not supported")

    seller_mst = _SELLER_MST(root).strip()
    if not seller_mst:
        raise SigningError("DLHDon/NDHDon/NBan/MST is missing")
    local_time = _check_key(key, seller_mst, signing_time)
    signature_id = _signature_id(signature_id, dlhdon_id)
    object_id = "SigningTime-" + signature_id
    # An Id can only be spelt differently from its value through a character reference
    # (entities are refused), so the byte search is exact unless "&#" occurs.
    if (b"&#" in unsigned_xml and _IDS_IN_USE(root, a=signature_id, b=object_id)) or (
        signature_id.encode() in unsigned_xml
    ):
        raise SigningError(f"Id {signature_id!r} or {object_id!r} already exists in the document")

    in_scope = nban_slot.nsmap
    invoice_c14n = _canonicalize(dlhdon) if in_scope else etree.tostring(dlhdon, method="c14n")
    return _sign(unsigned_xml, key, dlhdon_id, invoice_c14n, in_scope, local_time, signature_id)


def _sign_built(
    invoice: UnsignedInvoice, key: SigningKey, signing_time: datetime, signature_id: str | None
) -> bytes:
    local_time = _check_key(key, invoice.seller_tax_code, signing_time)
    signature_id = _signature_id(signature_id, invoice.invoice_id)
    # The builder writes no character reference ("&" is always "&amp;"), so an Id in use would
    # appear as such in the bytes; the object Id contains the signature Id.
    if signature_id.encode() in invoice.xml:
        raise SigningError(f"Id {signature_id!r} already exists in the document")
    return _sign(
        invoice.xml, key, invoice.invoice_id, invoice.dlhdon_c14n, {}, local_time, signature_id
    )


def _check_key(key: SigningKey, seller_mst: str, signing_time: datetime) -> datetime:
    """The signing time as naive Vietnam time, once the certificate is fit to sign for the
    seller at that time."""
    if key.mst != seller_mst:
        raise SigningError(
            f"certificate subject MST {key.mst or '(none)'} ≠ seller MST {seller_mst}"
        )
    local_time = _vietnam_local(signing_time)
    valid_from, valid_until = key.validity_local
    if not valid_from <= local_time <= valid_until:
        raise SigningError(
            f"certificate not valid at signing time {local_time.isoformat(timespec='seconds')}: "
            f"valid {_validity_text(key.certificate)}"
        )
    return local_time


def _signature_id(signature_id: str | None, dlhdon_id: str) -> str:
    if signature_id is None:
        signature_id = "NBan-" + dlhdon_id.removeprefix("DLHDon-")
    if not _NCNAME.match(signature_id):
        raise SigningError(f"signature Id {signature_id!r} is not an XML NCName")
    return signature_id


def _sign(
    unsigned_xml: bytes,
    key: SigningKey,
    dlhdon_id: str,
    invoice_c14n: bytes,
    in_scope: dict[str | None, str],
    local_time: datetime,
    signature_id: str,
) -> bytes:
    """Write the signature (spec §6.1) into the empty ``DSCKS/NBan`` of ``unsigned_xml``, given
    the canonical DLHDon and the namespaces in scope at ``DSCKS/NBan``."""
    object_id = "SigningTime-" + signature_id
    signing_time_text = local_time.isoformat(timespec="seconds")
    # Reference 1: DLHDon. The enveloped transform is a no-op here (the signature sits outside
    # DLHDon) but is declared because the authority's checkers expect it (spec §6.1).
    invoice_digest = _b64(hashlib.sha256(invoice_c14n).digest())

    # Reference 2: the Object, canonicalised as it will sit inside <Signature xmlns=ds>, i.e.
    # with the namespaces in scope at DSCKS/NBan rendered on it (none for our own HDon).
    ns = _namespace_declarations(in_scope, DS_NS) if in_scope else _DS_XMLNS
    object_body = (
        f' Id="{object_id}"><SignatureProperties><SignatureProperty Target="#{signature_id}">'
        f"<SigningTime>{signing_time_text}</SigningTime>"
        "</SignatureProperty></SignatureProperties></Object>"
    )
    object_digest = _b64(hashlib.sha256(f"<Object{ns}{object_body}".encode()).digest())

    # SignedInfo: hashed in canonical form (empty elements expanded, namespaces rendered),
    # written in the document with self-closed empty elements, as real invoices are.
    dlhdon_uri = _attr_escape(dlhdon_id) if _ATTR_SPECIALS.search(dlhdon_id) else dlhdon_id
    canonical = (
        f"<SignedInfo{ns}>{_C14N_CANONICAL}{_RSA_SHA256_CANONICAL}"
        f'<Reference URI="#{dlhdon_uri}">{_ENVELOPED_CANONICAL}{_SHA256_CANONICAL}'
        f"<DigestValue>{invoice_digest}</DigestValue></Reference>"
        f'<Reference URI="#{object_id}">{_SHA256_CANONICAL}'
        f"<DigestValue>{object_digest}</DigestValue></Reference></SignedInfo>"
    )
    signature_value = key.private_key.sign(canonical.encode(), _PKCS1V15, _SHA256_HASH)

    head = (
        f'<Signature xmlns="{DS_NS}" Id="{signature_id}">'
        f"<SignedInfo>{_C14N_DOCUMENT}{_RSA_SHA256_DOCUMENT}"
        f'<Reference URI="#{dlhdon_uri}">{_ENVELOPED_DOCUMENT}{_SHA256_DOCUMENT}'
        f"<DigestValue>{invoice_digest}</DigestValue></Reference>"
        f'<Reference URI="#{object_id}">{_SHA256_DOCUMENT}'
        f"<DigestValue>{object_digest}</DigestValue></Reference></SignedInfo>"
        f"<SignatureValue>{_b64(signature_value)}</SignatureValue>"
    )
    tail = f"<Object{object_body}</Signature>"
    return _splice_into_seller_slot(
        unsigned_xml, [head.encode(), key.key_info_bytes, tail.encode()]
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _vietnam_local(moment: datetime) -> datetime:
    """Naive Vietnam local time, whole seconds (SigningTime has no offset, spec §3.2)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(VIETNAM_TZ).replace(tzinfo=None)
    return moment.replace(microsecond=0)


def _splice_into_seller_slot(unsigned_xml: bytes, signature: list[bytes]) -> bytes:
    """Put the signature parts into the empty ``<DSCKS><NBan/>``, leaving every other byte.

    The tree already showed HDon/DSCKS with no attributes starting with an empty NBan. Its
    start tag is literally ``<DSCKS`` (no entities, no prefix), so when ``<DSCKS`` occurs only
    once in the bytes it is that tag, even if comments, PIs or CDATA sections are present;
    and since text cannot hold a raw ``<``, the ``<NBan`` right after it is its first child.
    """
    start = unsigned_xml.rfind(b"<DSCKS")
    match = _EMPTY_SELLER_SLOT.match(unsigned_xml, start) if start >= 0 else None
    if match is None or unsigned_xml.count(b"<DSCKS") != 1:
        raise SigningError("expected exactly one <DSCKS> starting with an empty <NBan/>")
    nban_start = unsigned_xml.index(b"<NBan", start)
    return b"".join(
        (unsigned_xml[:nban_start], b"<NBan>", *signature, b"</NBan>", unsigned_xml[match.end() :])
    )


# ---------------------------------------------------------------------------------------------
# Verification


@dataclass(frozen=True)
class SignatureReport:
    """The outcome for one ``ds:Signature``."""

    location: Location
    signature_id: str | None
    signature_method: str | None
    canonicalization_method: str | None
    digest_methods: tuple[str, ...]
    reference_uris: tuple[str, ...]
    signer_subject: str | None
    signer_mst: str | None
    signing_time: datetime | None
    valid: bool
    reason: str | None
    errors: tuple[str, ...] = ()
    certificate_valid_at_signing_time: bool | None = None
    warnings: tuple[str, ...] = ()
    certificate: x509.Certificate | None = field(default=None, repr=False, compare=False)

    @property
    def algorithm(self) -> str | None:
        """Short name of the signature method: ``rsa-sha1``, ``rsa-sha256``…"""
        if self.signature_method is None:
            return None
        return self.signature_method.rsplit("#", 1)[-1]


@dataclass(frozen=True)
class VerificationReport:
    signatures: tuple[SignatureReport, ...]

    @property
    def valid(self) -> bool:
        """At least one signature, and every signature valid."""
        return bool(self.signatures) and all(s.valid for s in self.signatures)

    @property
    def seller(self) -> SignatureReport | None:
        return next((s for s in self.signatures if s.location == "NBan"), None)

    @property
    def tax_authority(self) -> SignatureReport | None:
        return next((s for s in self.signatures if s.location == "CQT"), None)

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(w for s in self.signatures for w in s.warnings)


def verify_invoice(xml_bytes: bytes) -> VerificationReport:
    """Verify every ``ds:Signature`` in an ``HDon`` or a ``TDiep`` (spec §6.3, §7).

    Raises :class:`VerificationError` only when the bytes cannot be examined safely (too big,
    DTD/entities, malformed); cryptographic failures are reported per signature.
    """
    root = _parse(xml_bytes, VerificationError)
    ids = _index_ids(root)
    signatures = root.iter(_DS + "Signature")
    return VerificationReport(tuple(_verify_signature(s, ids) for s in signatures))


def _index_ids(root: etree._Element) -> dict[str, etree._Element | None]:
    """Id value -> element; ``None`` marks a duplicated Id (never resolved: signature wrapping)."""
    ids: dict[str, etree._Element | None] = {}
    for element in root.iter(etree.Element):
        for attribute in _ID_ATTRIBUTES:
            value = element.get(attribute)
            if value is not None:
                ids[value] = None if value in ids and ids[value] is not element else element
    return ids


def _location(signature: etree._Element) -> Location:
    parent = signature.getparent()
    grandparent = parent.getparent() if parent is not None else None
    if (
        parent is not None
        and grandparent is not None
        and grandparent.tag == "DSCKS"
        and parent.tag in ("NBan", "NMua", "CQT")
    ):
        return parent.tag  # type: ignore[return-value]
    return "other"


def _enclosing_invoice(signature: etree._Element) -> etree._Element | None:
    return next((a for a in signature.iterancestors("HDon")), None)


class _Invalid(Exception):
    """Internal: a failure that makes the signature structurally unverifiable."""


@dataclass
class _Checks:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    covered: list[etree._Element] = field(default_factory=list)


def _verify_signature(
    signature: etree._Element, ids: dict[str, etree._Element | None]
) -> SignatureReport:
    checks = _Checks()
    location = _location(signature)
    signed_info = signature.find(_DS + "SignedInfo")
    c14n_method = _algorithm(signed_info, "CanonicalizationMethod")
    signature_method = _algorithm(signed_info, "SignatureMethod")
    references = signed_info.findall(_DS + "Reference") if signed_info is not None else []
    digest_methods = tuple(_algorithm(r, "DigestMethod") or "" for r in references)
    uris = tuple(r.get("URI", "") for r in references)

    certificate, certificate_problem = _certificate(signature)
    subject = format_subject(certificate.subject) if certificate is not None else None
    mst = subject_mst(certificate) if certificate is not None else None

    try:
        if signed_info is None:
            raise _Invalid("no SignedInfo")
        if not references:
            raise _Invalid("no Reference in SignedInfo")
        if certificate is None:
            raise _Invalid(certificate_problem)
        for reference in references:
            _check_reference(reference, signature, ids, checks)
        _check_signature_value(signature, signed_info, certificate, checks)
        if location in ("NBan", "CQT"):
            _check_covers_invoice(signature, checks)
        if location == "NBan":
            _check_seller_mst(signature, mst, checks)
    except _Invalid as exc:
        checks.errors.insert(0, str(exc))

    signing_time = _signing_time(signature, checks)
    valid_at_signing: bool | None = None
    if certificate is not None and signing_time is not None:
        valid_at_signing = _certificate_valid_at(certificate, signing_time)
        if not valid_at_signing:
            checks.warnings.append(
                f"certificate not valid at signing time {signing_time:%Y-%m-%dT%H:%M:%S}: "
                f"valid {_validity_text(certificate)}"
            )
    if signature_method == RSA_SHA1 or SHA1 in digest_methods:
        checks.warnings.append("uses SHA-1 (accepted by the tax authority in 2025, but weak)")

    return SignatureReport(
        location=location,
        signature_id=signature.get("Id"),
        signature_method=signature_method,
        canonicalization_method=c14n_method,
        digest_methods=digest_methods,
        reference_uris=uris,
        signer_subject=subject,
        signer_mst=mst,
        signing_time=signing_time,
        valid=not checks.errors,
        reason=checks.errors[0] if checks.errors else None,
        errors=tuple(checks.errors),
        certificate_valid_at_signing_time=valid_at_signing,
        warnings=tuple(checks.warnings),
        certificate=certificate,
    )


def _algorithm(parent: etree._Element | None, child: str) -> str | None:
    if parent is None:
        return None
    element = parent.find(_DS + child)
    return element.get("Algorithm") if element is not None else None


def _certificate(signature: etree._Element) -> tuple[x509.Certificate | None, str]:
    """The signer certificate (first ``KeyInfo/X509Data/X509Certificate``), or why not."""
    text = signature.findtext(f"{_DS}KeyInfo/{_DS}X509Data/{_DS}X509Certificate")
    if not text or not text.strip():
        return None, "no X509Certificate"
    try:
        der = base64.b64decode("".join(text.split()), validate=True)
        return x509.load_der_x509_certificate(der), ""
    except ValueError as exc:
        return None, f"unreadable X509Certificate: {exc}"


def _check_reference(
    reference: etree._Element,
    signature: etree._Element,
    ids: dict[str, etree._Element | None],
    checks: _Checks,
) -> None:
    uri = reference.get("URI", "")
    shown = uri or '""'
    if uri == "":
        target = signature.getroottree().getroot()
    elif uri.startswith("#") and not uri.startswith("#xpointer("):
        if uri[1:] not in ids:
            raise _Invalid(f"reference {uri} not found")
        found = ids[uri[1:]]
        if found is None:
            raise _Invalid(f"reference {uri} is ambiguous (duplicate Id)")
        target = found
    else:
        raise _Invalid(f"unsupported reference URI {uri!r}")

    # A same-document reference (#id or "") yields a node-set without comments; with no
    # C14N transform, that node-set is canonicalised with inclusive C14N 1.0 (XMLDSig §4.3.3).
    exclude = None
    exclusive = False
    prefixes: list[str] | None = None
    transforms = reference.find(_DS + "Transforms")
    for transform in transforms if transforms is not None else ():
        if not isinstance(transform.tag, str) or transform.tag != _DS + "Transform":
            continue
        algorithm = transform.get("Algorithm", "")
        if algorithm == ENVELOPED:
            exclude = signature
        elif algorithm in _C14N_METHODS:
            exclusive = _C14N_METHODS[algorithm][0]
            inclusive = transform.find("{" + EXC_C14N + "}InclusiveNamespaces")
            if inclusive is not None:
                prefixes = inclusive.get("PrefixList", "").split()
        else:
            raise _Invalid(f"unsupported transform {algorithm} in reference {shown}")
    if exclude is not None and not any(a is target for a in signature.iterancestors()):
        exclude = None  # the signature is outside the target: nothing to remove

    digest_method = _algorithm(reference, "DigestMethod") or ""
    if digest_method not in _DIGEST_METHODS:
        raise _Invalid(f"unsupported digest method {digest_method!r}")
    canonical = _canonicalize(
        target, exclusive=exclusive, inclusive_prefixes=prefixes, exclude=exclude
    )
    digest = hashlib.new(_DIGEST_METHODS[digest_method], canonical).digest()
    expected = "".join((reference.findtext(_DS + "DigestValue") or "").split())
    try:
        expected_bytes = base64.b64decode(expected, validate=True)
    except ValueError:
        expected_bytes = b""
    if digest != expected_bytes:
        checks.errors.append(f"digest mismatch for reference {shown}")
    else:
        checks.covered.append(target)


def _check_signature_value(
    signature: etree._Element,
    signed_info: etree._Element,
    certificate: x509.Certificate,
    checks: _Checks,
) -> None:
    method = _algorithm(signed_info, "SignatureMethod") or ""
    if method not in _SIGNATURE_METHODS:
        raise _Invalid(f"unsupported signature method {method!r}")
    c14n_method = _algorithm(signed_info, "CanonicalizationMethod") or ""
    if c14n_method not in _C14N_METHODS:
        raise _Invalid(f"unsupported canonicalization method {c14n_method!r}")
    exclusive, with_comments = _C14N_METHODS[c14n_method]
    canonical = _canonicalize(signed_info, exclusive=exclusive, with_comments=with_comments)
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise _Invalid("the certificate key is not RSA")
    value = "".join((signature.findtext(_DS + "SignatureValue") or "").split())
    try:
        public_key.verify(
            base64.b64decode(value, validate=True),
            canonical,
            padding.PKCS1v15(),
            _SIGNATURE_METHODS[method](),
        )
    except (InvalidSignature, ValueError):
        checks.errors.append("bad signature value")


def _check_covers_invoice(signature: etree._Element, checks: _Checks) -> None:
    """The seller / authority signature must cover its own invoice's DLHDon (no wrapping)."""
    invoice = _enclosing_invoice(signature)
    dlhdon = invoice.find("DLHDon") if invoice is not None else None
    if dlhdon is None:
        checks.errors.append("signature is not inside an HDon with a DLHDon")
    elif not checks.errors and not any(t is dlhdon or t is invoice for t in checks.covered):
        # (When there are errors, a digest mismatch already explains the missing coverage.)
        checks.errors.append("signature does not cover the invoice's DLHDon")


def _check_seller_mst(signature: etree._Element, mst: str | None, checks: _Checks) -> None:
    invoice = _enclosing_invoice(signature)
    seller = (
        (invoice.findtext("DLHDon/NDHDon/NBan/MST") or "").strip() if invoice is not None else ""
    )
    if mst is None:
        checks.errors.append("certificate subject has no UID=MST:…")
    elif mst != seller:
        checks.errors.append(f"certificate subject MST {mst} ≠ seller MST {seller or '(none)'}")


def _signing_time(signature: etree._Element, checks: _Checks) -> datetime | None:
    """The ``SigningTime`` of the signature's own ``Object``, as an aware datetime."""
    element = next(_iter_signing_times(signature), None)
    if element is None or not (element.text or "").strip():
        return None
    try:
        moment = _as_aware(datetime.fromisoformat(element.text.strip()))
    except ValueError:
        checks.warnings.append(f"unreadable SigningTime {element.text!r}")
        return None
    if not any(t is element or t in element.iterancestors() for t in checks.covered):
        checks.warnings.append("SigningTime is not covered by a valid reference")
    return moment


def _iter_signing_times(signature: etree._Element) -> Iterator[etree._Element]:
    for obj in signature.iterchildren(_DS + "Object"):
        yield from obj.iter("{*}SigningTime")
