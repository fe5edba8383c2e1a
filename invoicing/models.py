"""What was declared to the tax authority: signed e-invoices and the counters behind them.

* ``InvoiceSettings`` (one per market): invoice form (``KHMSHDon`` 1 VAT / 2 sales), the
  serial scheme (``CYYTAA`` → ``C26TAA`` in 2026), the software provider's tax code
  (``MSTTCGP``), automatic issuance on payment, and where the signing certificate is. The
  certificate password is never stored: only a reference to an environment variable or a
  secret file (``invoicing.conf``).
* ``InvoiceSerial``: a registered serial (``KHHDon``) of one year with its next number. Locking
  style: ``select_for_update`` on the serial row inside the transaction that builds, signs and
  stores the invoice, so ``SHDon`` runs 1, 2, 3… per (seller MST, form, serial) with no gap and
  no reuse (spec einvoice.md §5.3); a failure anywhere rolls the number back with the invoice.
* ``Invoice`` / ``InvoiceLine``: the signed document, stored as the exact bytes that were signed
  (``xml``, with its SHA-256) and never re-serialised (§3.1, §6.2 pitfall 5), plus a snapshot of
  its figures for lists and the API. A stored invoice is immutable: the model and its queryset
  refuse to change the document or its figures, and refuse deletion. Only ``status`` changes,
  by a conditional update (``filter(status=…).update(…)`` + row count) when a replacement or an
  adjustment is issued. A wrong invoice is corrected by a replacement (``TCHDon=1``) or an
  adjustment (``TCHDon=2``) that links to it and takes the next number (§4.2).

Money is integer đồng (``_vnd``), checked non-negative in the database.
"""

from __future__ import annotations

import hashlib
import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from invoicing import conf
from market40.models import FeeDemand, Market
from market40.validators import validate_tax_code

SERIAL_RE = re.compile(r"^[CK]\d{2}[TDLMNBGHXF][A-Z]{2}$")  # §5.2
SERIAL_SCHEME_RE = re.compile(r"^[CK]YY[TDLMNBGHXF][A-Z]{2}$")
MAX_INVOICE_NUMBER = 99_999_999  # SHDon: at most 8 digits (§5.3)


class InvoiceForm(models.TextChoices):
    """``KHMSHDon`` (§5.1): the two forms a market board issues."""

    VAT = "1", _("1 – Hóa đơn giá trị gia tăng")
    SALES = "2", _("2 – Hóa đơn bán hàng")


def validate_serial(value: str) -> None:
    if not SERIAL_RE.match(value or ""):
        raise ValidationError(
            _(
                "Ký hiệu hóa đơn “%(value)s” không hợp lệ: cần 6 ký tự dạng [C|K]YY + chữ loại "
                "hóa đơn (T, D, L, M, N, B, G, H, X, F) + 2 chữ cái in hoa, ví dụ C26TAA."
            ),
            code="invalid_serial",
            params={"value": value},
        )


def validate_serial_scheme(value: str) -> None:
    if not SERIAL_SCHEME_RE.match(value or ""):
        raise ValidationError(
            _(
                "Mẫu ký hiệu “%(value)s” không hợp lệ: cần dạng [C|K]YY + chữ loại hóa đơn + "
                "2 chữ cái in hoa, với YY giữ nguyên (thay bằng năm lập), ví dụ CYYTAA."
            ),
            code="invalid_serial_scheme",
            params={"value": value},
        )


def validate_password_reference(value: str) -> None:
    try:
        conf.validate_password_reference(value)
    except conf.PasswordReferenceError as error:
        raise ValidationError(str(error), code="invalid_password_reference") from None


class InvoiceSettings(models.Model):
    """How one market issues invoices."""

    market = models.OneToOneField(
        Market, on_delete=models.CASCADE, related_name="invoice_settings", verbose_name=_("chợ")
    )
    form = models.CharField(
        _("loại hóa đơn (KHMSHDon)"),
        max_length=1,
        choices=InvoiceForm.choices,
        default=InvoiceForm.VAT,
        help_text=_("1: hóa đơn GTGT (phương pháp khấu trừ); 2: hóa đơn bán hàng (trực tiếp)."),
    )
    serial_scheme = models.CharField(
        _("mẫu ký hiệu (KHHDon)"),
        max_length=6,
        default="CYYTAA",
        validators=[validate_serial_scheme],
        help_text=_("YY được thay bằng năm lập: CYYTAA → C26TAA năm 2026."),
    )
    provider_tax_code = models.CharField(
        _("MST tổ chức cung cấp giải pháp (MSTTCGP)"),
        max_length=14,
        validators=[validate_tax_code],
    )
    auto_issue_on_payment = models.BooleanField(
        _("tự động xuất hóa đơn khi thanh toán đủ"), default=False
    )
    certificate_path = models.CharField(
        _("đường dẫn tệp chứng thư số (PKCS#12)"), max_length=500, blank=True
    )
    certificate_password_ref = models.CharField(
        _("tham chiếu mật khẩu chứng thư số"),
        max_length=200,
        blank=True,
        validators=[validate_password_reference],
        help_text=_(
            "Không lưu mật khẩu: env:TEN_BIEN (đọc biến môi trường hoặc TEN_BIEN_FILE) hoặc "
            "file:/duong/dan. Để trống nếu tệp không đặt mật khẩu."
        ),
    )
    updated_at = models.DateTimeField(_("cập nhật lúc"), auto_now=True)

    class Meta:
        verbose_name = _("cấu hình hóa đơn")
        verbose_name_plural = _("cấu hình hóa đơn")

    def __str__(self) -> str:
        return f"{self.market.code}: {self.get_form_display()}"

    def serial_for_year(self, year: int) -> str:
        return self.serial_scheme.replace("YY", f"{year % 100:02d}", 1)


class InvoiceSerial(models.Model):
    """A serial (``KHHDon``) of one form and one year, and its next number (§5.2, §5.3).

    ``next_number`` changes only in ``invoicing.services`` under ``select_for_update`` on this
    row, in the transaction that stores the invoice taking the number.
    """

    market = models.ForeignKey(
        Market, on_delete=models.PROTECT, related_name="invoice_serials", verbose_name=_("chợ")
    )
    seller_tax_code = models.CharField(_("MST người bán"), max_length=14)
    form = models.CharField(_("mẫu số (KHMSHDon)"), max_length=1, choices=InvoiceForm.choices)
    serial = models.CharField(_("ký hiệu (KHHDon)"), max_length=6, validators=[validate_serial])
    year = models.PositiveSmallIntegerField(_("năm"))
    next_number = models.PositiveIntegerField(_("số tiếp theo"), default=1)
    active = models.BooleanField(_("đang dùng"), default=True)
    created_at = models.DateTimeField(_("tạo lúc"), default=timezone.now)

    class Meta:
        verbose_name = _("ký hiệu hóa đơn")
        verbose_name_plural = _("ký hiệu hóa đơn")
        ordering = ["market", "-year", "form", "serial"]
        constraints = [
            # One counter per (seller MST, form, serial) (§5.3), whichever market uses it.
            models.UniqueConstraint(
                fields=["seller_tax_code", "form", "serial"], name="invoice_serial_unique"
            ),
            # The serial a market issues with in a year is never ambiguous.
            models.UniqueConstraint(
                fields=["market", "form", "year"],
                condition=Q(active=True),
                name="invoice_serial_one_active_per_year",
            ),
            models.CheckConstraint(
                condition=Q(serial__regex=r"^[CK][0-9]{2}[TDLMNBGHXF][A-Z]{2}$"),
                name="invoice_serial_pattern",
            ),
            models.CheckConstraint(
                condition=Q(next_number__gte=1, next_number__lte=MAX_INVOICE_NUMBER + 1),
                name="invoice_serial_next_number_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.form}{self.serial} ({self.market.code})"

    def save(self, *args, **kwargs) -> None:
        if self.serial and SERIAL_RE.match(self.serial):
            # The year is inside the serial (§5.2); keep the column in step with it.
            self.year = 2000 + int(self.serial[1:3])
        super().save(*args, **kwargs)

    def clean(self) -> None:
        if self.serial and SERIAL_RE.match(self.serial):
            self.year = 2000 + int(self.serial[1:3])


class ImmutableInvoiceError(RuntimeError):
    """Raised on any attempt to change a stored invoice's document or figures."""


# Everything but ``status`` is part of the declared document or its snapshot.
MUTABLE_INVOICE_FIELDS = frozenset({"status"})


class InvoiceQuerySet(models.QuerySet):
    def update(self, **kwargs):
        frozen = set(kwargs) - MUTABLE_INVOICE_FIELDS
        if frozen:
            raise ImmutableInvoiceError(
                f"stored invoices are immutable; refusing to update {sorted(frozen)}"
            )
        return super().update(**kwargs)

    def bulk_update(self, objs, fields, batch_size=None):
        frozen = set(fields) - MUTABLE_INVOICE_FIELDS
        if frozen:
            raise ImmutableInvoiceError(
                f"stored invoices are immutable; refusing to update {sorted(frozen)}"
            )
        return super().bulk_update(objs, fields, batch_size=batch_size)

    def delete(self):
        raise ImmutableInvoiceError("issued invoices are never deleted; issue a replacement")

    delete.queryset_only = True


class Invoice(models.Model):
    class Kind(models.TextChoices):
        ORIGINAL = "original", _("Hóa đơn gốc")
        REPLACEMENT = "replacement", _("Hóa đơn thay thế")  # TCHDon = 1
        ADJUSTMENT = "adjustment", _("Hóa đơn điều chỉnh")  # TCHDon = 2

    class Status(models.TextChoices):
        SIGNED = "signed", _("Đã ký")
        REPLACED = "replaced", _("Đã bị thay thế")
        ADJUSTED = "adjusted", _("Đã bị điều chỉnh")

    # No single-column index where a composite one below starts with the column: fewer indexes
    # to maintain per stored invoice.
    market = models.ForeignKey(
        Market,
        on_delete=models.PROTECT,
        related_name="invoices",
        verbose_name=_("chợ"),
        db_index=False,
    )
    demand = models.ForeignKey(
        FeeDemand,
        on_delete=models.PROTECT,
        related_name="invoices",
        verbose_name=_("phiếu báo phí"),
    )
    # No index of its own: invoices are found by the numbering key below, which the unique
    # constraint indexes; every index costs each issuance an insert.
    serial = models.ForeignKey(
        InvoiceSerial,
        on_delete=models.PROTECT,
        related_name="invoices",
        verbose_name=_("ký hiệu"),
        db_index=False,
    )
    # The numbering key, copied from the serial so that the database itself refuses a reused
    # number (§5.3).
    seller_tax_code = models.CharField(_("MST người bán"), max_length=14)
    form = models.CharField(_("mẫu số"), max_length=1, choices=InvoiceForm.choices)
    serial_code = models.CharField(_("ký hiệu"), max_length=6)
    number = models.PositiveIntegerField(_("số hóa đơn"))
    issue_date = models.DateField(_("ngày lập"))
    kind = models.CharField(_("loại"), max_length=20, choices=Kind.choices, default=Kind.ORIGINAL)
    status = models.CharField(
        _("trạng thái"), max_length=20, choices=Status.choices, default=Status.SIGNED
    )
    related = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="corrections",
        verbose_name=_("hóa đơn liên quan"),
    )
    reason = models.CharField(_("lý do"), max_length=255, blank=True)

    period = models.DateField(_("kỳ phí"))
    buyer_name = models.CharField(_("người mua"), max_length=400)
    buyer_tax_code = models.CharField(_("MST người mua"), max_length=14, blank=True)
    buyer_citizen_id = models.CharField(_("CCCD người mua"), max_length=12, blank=True)
    buyer_address = models.CharField(_("địa chỉ người mua"), max_length=400, blank=True)
    buyer_code = models.CharField(_("mã người mua"), max_length=50, blank=True)
    stall_code = models.CharField(_("sạp/ki-ốt"), max_length=20)
    payment_code = models.CharField(_("mã thanh toán"), max_length=20)

    total_net_vnd = models.BigIntegerField(_("tiền chưa thuế (đồng)"))
    total_vat_vnd = models.BigIntegerField(_("tiền thuế GTGT (đồng)"))
    total_payable_vnd = models.BigIntegerField(_("tổng tiền thanh toán (đồng)"))
    amount_in_words = models.CharField(_("số tiền bằng chữ"), max_length=255)

    # Unique through a constraint rather than unique=True, which on PostgreSQL adds a
    # second, pattern-matching (LIKE) index that no query uses.
    invoice_id = models.CharField(_("Id DLHDon"), max_length=100)
    xml = models.BinaryField(_("XML đã ký"), editable=False)
    sha256 = models.CharField(_("SHA-256 của XML"), max_length=64, editable=False)
    signing_time = models.DateTimeField(_("thời điểm ký"))
    certificate_subject = models.CharField(_("chứng thư số"), max_length=500)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        verbose_name=_("người xuất"),
        help_text=_("Trống: xuất tự động khi phiếu được thanh toán đủ."),
    )
    created_at = models.DateTimeField(_("lưu lúc"), default=timezone.now)

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        verbose_name = _("hóa đơn điện tử")
        verbose_name_plural = _("hóa đơn điện tử")
        ordering = ["-issue_date", "-number"]
        constraints = [
            # No reuse, ever (§5.3): the counter row is the first guard, this is the last.
            models.UniqueConstraint(fields=["invoice_id"], name="invoice_id_unique"),
            models.UniqueConstraint(
                fields=["seller_tax_code", "form", "serial_code", "number"],
                name="invoice_number_unique",
            ),
            # Idempotent issuance: a demand never gets two original invoices.
            models.UniqueConstraint(
                fields=["demand"],
                condition=Q(kind="original"),
                name="invoice_one_original_per_demand",
            ),
            # An invoice is replaced at most once (the replacement itself may be replaced).
            models.UniqueConstraint(
                fields=["related"],
                condition=Q(kind="replacement"),
                name="invoice_replaced_once",
            ),
            models.CheckConstraint(
                condition=(
                    Q(kind="original", related__isnull=True, reason="")
                    | (
                        Q(kind__in=["replacement", "adjustment"], related__isnull=False)
                        & ~Q(reason="")
                    )
                ),
                name="invoice_correction_links_with_reason",
            ),
            models.CheckConstraint(
                condition=Q(number__gte=1, number__lte=MAX_INVOICE_NUMBER),
                name="invoice_number_8_digits",
            ),
            models.CheckConstraint(
                condition=Q(total_net_vnd__gte=0, total_vat_vnd__gte=0, total_payable_vnd__gte=0),
                name="invoice_totals_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(
                    total_payable_vnd=models.F("total_net_vnd") + models.F("total_vat_vnd")
                ),
                name="invoice_total_is_net_plus_vat",
            ),
        ]
        indexes = [
            models.Index(fields=["market", "period", "status"]),
            models.Index(fields=["market", "issue_date"]),
        ]

    def __str__(self) -> str:
        return f"{self.form}{self.serial_code} số {self.number}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            update_fields = kwargs.get("update_fields")
            if update_fields is None or set(update_fields) - MUTABLE_INVOICE_FIELDS:
                raise ImmutableInvoiceError(
                    "stored invoices are immutable; only status changes (by a conditional update)"
                )
        else:
            self.xml = bytes(self.xml)
            digest = hashlib.sha256(self.xml).hexdigest()
            if self.sha256 and self.sha256 != digest:
                raise ImmutableInvoiceError("sha256 does not match the XML bytes")
            self.sha256 = digest
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableInvoiceError("issued invoices are never deleted; issue a replacement")

    @property
    def label(self) -> str:
        """How people name an invoice: form + serial, number (``1C26TAA – 00000012``)."""
        return f"{self.form}{self.serial_code} – {self.number:08d}"

    @property
    def xml_bytes(self) -> bytes:
        # PostgreSQL returns a memoryview for bytea.
        return bytes(self.xml)

    @property
    def filename(self) -> str:
        return f"{self.seller_tax_code}_{self.form}{self.serial_code}_{self.number:08d}.xml"


class InvoiceLine(models.Model):
    """One ``HHDVu`` as signed; ``vat_vnd``/``gross_vnd`` are informational (the VAT layout
    has no line VAT, spec §10)."""

    class Nature(models.IntegerChoices):
        GOODS = 1, _("Hàng hóa, dịch vụ")
        DISCOUNT = 3, _("Chiết khấu thương mại")
        NOTE = 4, _("Ghi chú, diễn giải")

    # Indexed by the unique (invoice, number) constraint.
    invoice = models.ForeignKey(
        Invoice, on_delete=models.CASCADE, related_name="lines", db_index=False
    )
    number = models.PositiveSmallIntegerField(_("STT"))
    nature = models.PositiveSmallIntegerField(
        _("tính chất"), choices=Nature.choices, default=Nature.GOODS
    )
    name = models.CharField(_("tên hàng hóa, dịch vụ"), max_length=500)
    unit = models.CharField(_("đơn vị tính"), max_length=50, blank=True)
    quantity = models.DecimalField(
        _("số lượng"), max_digits=21, decimal_places=6, null=True, blank=True
    )
    unit_price = models.DecimalField(
        _("đơn giá chưa thuế"), max_digits=27, decimal_places=6, null=True, blank=True
    )
    net_vnd = models.BigIntegerField(_("thành tiền chưa thuế (đồng)"), default=0)
    vat_rate = models.CharField(_("thuế suất"), max_length=11, blank=True)
    vat_vnd = models.BigIntegerField(_("tiền thuế (đồng)"), default=0)
    gross_vnd = models.BigIntegerField(_("thành tiền có thuế (đồng)"), default=0)

    class Meta:
        verbose_name = _("dòng hóa đơn")
        verbose_name_plural = _("dòng hóa đơn")
        ordering = ["invoice", "number"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "number"], name="invoice_line_number"),
            models.CheckConstraint(
                condition=Q(net_vnd__gte=0, vat_vnd__gte=0, gross_vnd__gte=0),
                name="invoice_line_amounts_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.number}. {self.name}"
