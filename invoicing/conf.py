"""Settings of the invoicing app, read from the environment (documented in .env.example).

Kept out of ``market40/settings.py`` so the app owns its configuration; read at call time
(not import time) so tests and long-running workers see a changed environment.

=================================  ============================================================
``INVOICING_CERT_DIR``              folder where ``make_test_certificate`` writes PKCS#12 files
                                    (default ``<MARKET40_VAR_DIR>/certificates``)
``INVOICING_PROVIDER_TAX_CODE``     MSTTCGP written on new markets' invoice settings: the tax
                                    code of whoever supplies the invoicing software (default:
                                    the market's own tax code, i.e. self-developed software)
``INVOICING_CERT_PASSWORD_<CODE>``  the PKCS#12 password of market ``<CODE>`` (``-`` → ``_``),
                                    or ``…_FILE`` naming a file holding it; the default
                                    reference of a market's settings. Any other variable can be
                                    named instead (``env:NAME``), or a file (``file:/path``)
=================================  ============================================================

Certificate passwords are never stored in the database: ``InvoiceSettings`` keeps only a
*reference* (``env:NAME`` or ``file:PATH``) resolved here.
"""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

from market40.settings import env_secret, env_str

PASSWORD_ENV_PREFIX = "INVOICING_CERT_PASSWORD_"
_REFERENCE = re.compile(r"^(env|file):(.+)$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class PasswordReferenceError(ValueError):
    """A certificate password reference that cannot be resolved."""


def certificate_dir() -> Path:
    default = Path(getattr(settings, "VAR_DIR", Path(settings.BASE_DIR) / "var")) / "certificates"
    return Path(env_str("INVOICING_CERT_DIR", str(default)))


def default_provider_tax_code(market_tax_code: str) -> str:
    return env_str("INVOICING_PROVIDER_TAX_CODE") or market_tax_code


def default_password_reference(market_code: str) -> str:
    """``env:INVOICING_CERT_PASSWORD_<CODE>``: the variable an operator sets per market."""
    return "env:" + PASSWORD_ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", market_code.upper())


def validate_password_reference(reference: str) -> None:
    """Raise ``PasswordReferenceError`` unless ``reference`` is empty, env:NAME or file:PATH."""
    if not reference:
        return
    match = _REFERENCE.match(reference)
    if match is None:
        raise PasswordReferenceError(
            "tham chiếu mật khẩu phải có dạng env:TEN_BIEN hoặc file:/duong/dan "
            f"(nhận được “{reference}”)"
        )
    kind, target = match.groups()
    if kind == "env" and not _ENV_NAME.match(target):
        raise PasswordReferenceError(
            f"tên biến môi trường “{target}” chỉ gồm chữ in hoa, chữ số và “_”"
        )


def resolve_password(reference: str) -> str | None:
    """The password a reference points to; None for an empty reference (no password).

    ``env:NAME`` reads NAME, or the file named by NAME_FILE (like every secret of
    market40); ``file:PATH`` reads PATH. A reference to nothing is an error rather than
    "no password": a missing secret must not look like an unencrypted file.
    """
    if not reference:
        return None
    validate_password_reference(reference)
    kind, target = reference.split(":", 1)
    if kind == "env":
        try:
            value = env_secret(target)
        except OSError as error:
            raise PasswordReferenceError(
                f"không đọc được tệp của biến {target}_FILE: {error}"
            ) from error
        if not value:
            raise PasswordReferenceError(
                f"chưa đặt biến môi trường {target} (hoặc {target}_FILE) chứa mật khẩu"
            )
        return value
    try:
        return Path(target).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise PasswordReferenceError(f"không đọc được tệp mật khẩu {target}: {error}") from error
