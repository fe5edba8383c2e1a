"""The signing certificate of a market: loaded from its PKCS#12 file, checked, cached.

A market's ``InvoiceSettings`` names the file and a *reference* to its password
(``invoicing.conf``). Loading a PKCS#12 runs a password-based key derivation that costs more
than signing an invoice, so keys are cached per process and reloaded when the file changes
(path, size and modification time) or the password does.

Every refusal is a ``CertificateError`` (a ``DomainError``, 409) with a Vietnamese message
that says what to do; it is raised before any number is taken.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime
from pathlib import Path

from django.utils import timezone
from django.utils.translation import gettext as _

from invoicing import conf
from invoicing.signing import VIETNAM_TZ, SigningError, SigningKey, load_pkcs12
from market40.errors import DomainError


class CertificateError(DomainError):
    code = "certificate_unusable"
    status = 409


_cache: dict[tuple, SigningKey] = {}
_lock = threading.Lock()


def load_signing_key(path: str | Path, password_reference: str) -> SigningKey:
    """The key of a PKCS#12 file, from the cache when the file and password are unchanged."""
    path = Path(path)
    try:
        password = conf.resolve_password(password_reference)
    except conf.PasswordReferenceError as error:
        raise CertificateError(
            _("Không lấy được mật khẩu chứng thư số: %(error)s.") % {"error": error},
            code="certificate_password_missing",
        ) from None
    try:
        stat = path.stat()
    except OSError:
        raise CertificateError(
            _(
                "Không tìm thấy tệp chứng thư số “%(path)s”. Kiểm tra cấu hình hóa đơn của chợ "
                "(hoặc tạo chứng thư thử nghiệm bằng manage.py make_test_certificate)."
            )
            % {"path": path},
            code="certificate_missing",
        ) from None
    password_digest = hashlib.sha256((password or "").encode()).hexdigest()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, password_digest)
    with _lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    try:
        signing_key = load_pkcs12(path, password)
    except (SigningError, OSError) as error:
        raise CertificateError(
            _("Không mở được tệp chứng thư số “%(path)s” (sai mật khẩu hoặc tệp hỏng): %(error)s")
            % {"path": path, "error": error},
            code="certificate_unreadable",
        ) from None
    with _lock:
        _cache[key] = signing_key
    return signing_key


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def signing_key_for_market(settings, *, at: datetime | None = None) -> SigningKey:
    """The market's key, checked for use now (or ``at``): it exists, opens, names the market's
    tax code (``UID=MST:``, spec §6.2 pitfall 7) and is within its validity period."""
    market = settings.market
    if not settings.certificate_path:
        raise CertificateError(
            _(
                "Chợ %(market)s chưa cấu hình chứng thư số để ký hóa đơn "
                "(manage.py make_test_certificate %(market)s tạo chứng thư thử nghiệm)."
            )
            % {"market": market.code},
            code="certificate_missing",
        )
    key = load_signing_key(settings.certificate_path, settings.certificate_password_ref)
    check_usable(key, seller_tax_code=market.tax_code, at=at)
    return key


def check_usable(key: SigningKey, *, seller_tax_code: str, at: datetime | None = None) -> None:
    if key.mst != seller_tax_code:
        raise CertificateError(
            _(
                "Chứng thư số mang MST %(cert)s, khác MST người bán %(seller)s; không thể ký "
                "hóa đơn bằng chứng thư này."
            )
            % {"cert": key.mst or _("(không có)"), "seller": seller_tax_code},
            code="certificate_mst_mismatch",
        )
    moment = (at or timezone.now()).astimezone(VIETNAM_TZ).replace(tzinfo=None)
    valid_from, valid_until = key.validity_local
    if moment > valid_until:
        raise CertificateError(
            _(
                "Chứng thư số đã hết hạn lúc %(until)s; không thể ký hóa đơn. Hãy gia hạn "
                "hoặc cài chứng thư số mới. Chưa có hóa đơn nào được lưu, không số nào bị dùng."
            )
            % {"until": f"{valid_until:%H:%M %d/%m/%Y}"},
            code="certificate_expired",
        )
    if moment < valid_from:
        raise CertificateError(
            _(
                "Chứng thư số chỉ có hiệu lực từ %(since)s; chưa thể ký hóa đơn. "
                "Chưa có hóa đơn nào được lưu, không số nào bị dùng."
            )
            % {"since": f"{valid_from:%H:%M %d/%m/%Y}"},
            code="certificate_not_yet_valid",
        )
