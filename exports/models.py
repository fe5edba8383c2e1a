"""Accountant exports: what was asked for, how far it got, and where the file is.

* ``MisaAccounts`` (one per market, optional): the account codes the MISA import sheets carry
  (spec domain.md §6.1: "account codes … are examples; make them configurable per market").
  A market without a row uses the defaults 131 / 5113 / 33311 / 1121.
* ``ExportJob``: one export of one market and period (or a selection of invoices), written in
  the background by ``exports.tasks.run_export`` under ``MEDIA_ROOT/exports/``. The file is
  written to a temporary name and renamed when complete, so a job is downloadable only once
  its file is whole.

Locking style of ``ExportJob``: status moves by conditional updates plus a row count
(``filter(pk=…, status=QUEUED).update(status=RUNNING)`` must hit one row, so a task
delivered twice runs once); progress (``done``/``total``) is a plain update of those two
columns while the job runs, written at most a few times a second. Jobs hold no money.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from market40.models import Market

ACCOUNT_CODE = RegexValidator(
    r"^[0-9]{3,10}$", _("Tài khoản kế toán là 3–10 chữ số, ví dụ 131, 5113, 33311, 1121.")
)


class MisaAccounts(models.Model):
    """Account codes of one market's MISA import sheets (§6.1 (a), (b))."""

    DEFAULTS = {
        "receivable_account": "131",
        "revenue_account": "5113",
        "vat_account": "33311",
        "bank_account": "1121",
        "suspense_account": "3388",
    }

    market = models.OneToOneField(
        Market, on_delete=models.CASCADE, related_name="misa_accounts", verbose_name=_("chợ")
    )
    receivable_account = models.CharField(
        _("TK phải thu (Nợ trên chứng từ bán hàng, Có trên thu tiền gửi)"),
        max_length=10,
        default=DEFAULTS["receivable_account"],
        validators=[ACCOUNT_CODE],
    )
    revenue_account = models.CharField(
        _("TK doanh thu"),
        max_length=10,
        default=DEFAULTS["revenue_account"],
        validators=[ACCOUNT_CODE],
    )
    vat_account = models.CharField(
        _("TK thuế GTGT đầu ra"),
        max_length=10,
        default=DEFAULTS["vat_account"],
        validators=[ACCOUNT_CODE],
    )
    bank_account = models.CharField(
        _("TK tiền gửi ngân hàng (Nợ trên thu tiền gửi)"),
        max_length=10,
        default=DEFAULTS["bank_account"],
        validators=[ACCOUNT_CODE],
    )
    suspense_account = models.CharField(
        _("TK chờ xử lý cho tiền chưa xác định người nộp"),
        max_length=10,
        default=DEFAULTS["suspense_account"],
        validators=[ACCOUNT_CODE],
        help_text=_(
            "Tiền vào chưa khớp được với phiếu nào vẫn được ghi vào thu tiền gửi (để số dư "
            "ngân hàng trong MISA khớp sao kê), hạch toán Có tài khoản này."
        ),
    )
    item_codes = models.JSONField(
        _("mã hàng theo loại phí"),
        default=dict,
        blank=True,
        help_text=_(
            'Ghi đè mã hàng MISA của từng loại phí, ví dụ {"rent": "DTBH", "sanitation": '
            '"VESINH"}. Mã phải có sẵn trong danh mục vật tư hàng hóa của MISA.'
        ),
    )

    class Meta:
        verbose_name = _("tài khoản kế toán MISA")
        verbose_name_plural = _("tài khoản kế toán MISA")

    def __str__(self) -> str:
        return f"{self.market.code}: {self.receivable_account}/{self.revenue_account}"

    @classmethod
    def for_market(cls, market: Market) -> MisaAccounts:
        """The market's codes, or an unsaved row with the defaults."""
        return cls.objects.filter(market=market).first() or cls(market=market)


class ExportKind(models.TextChoices):
    XML_ZIP = "xml-zip", _("Hóa đơn XML đã ký (ZIP, kèm danh sách SHA-256)")
    BANGKE_XLSX = "bangke-xlsx", _("Bảng kê hóa đơn (Excel)")
    BANGKE_CSV = "bangke-csv", _("Bảng kê hóa đơn (CSV)")
    MISA_SALES = "misa-sales-xlsx", _("MISA: chứng từ bán hàng")
    MISA_RECEIPTS = "misa-receipts-xlsx", _("MISA: thu tiền gửi")
    AGED_DEBT = "aged-debt-xlsx", _("Công nợ theo tuổi nợ")
    RECEIPTS = "receipts-xlsx", _("Thu tiền theo ngày, theo tài khoản; chưa khớp; tiền thừa")


class ExportJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", _("Đang chờ")
        RUNNING = "running", _("Đang xuất")
        DONE = "done", _("Xong")
        FAILED = "failed", _("Lỗi")

    market = models.ForeignKey(
        Market, on_delete=models.CASCADE, related_name="export_jobs", verbose_name=_("chợ")
    )
    period = models.DateField(
        _("kỳ"),
        null=True,
        blank=True,
        help_text=_("Ngày đầu tháng; trống khi xuất theo danh sách hóa đơn chọn."),
    )
    kind = models.CharField(_("loại tệp"), max_length=30, choices=ExportKind.choices)
    invoice_ids = models.JSONField(
        _("hóa đơn được chọn"),
        null=True,
        blank=True,
        help_text=_("Chỉ với tệp ZIP: danh sách id hóa đơn thay cho cả kỳ."),
    )
    status = models.CharField(
        _("trạng thái"), max_length=10, choices=Status.choices, default=Status.QUEUED
    )
    done = models.PositiveIntegerField(_("đã xử lý"), default=0)
    total = models.PositiveIntegerField(_("tổng số"), default=0)
    file_path = models.CharField(
        _("tệp (trong MEDIA_ROOT)"), max_length=500, blank=True, editable=False
    )
    file_name = models.CharField(_("tên tệp tải về"), max_length=200, blank=True)
    file_size = models.BigIntegerField(_("kích thước (byte)"), null=True, blank=True)
    summary = models.JSONField(_("tóm tắt"), default=dict, blank=True)
    error = models.TextField(_("lỗi"), blank=True)
    task_id = models.CharField(max_length=100, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("người yêu cầu"),
    )
    created_at = models.DateTimeField(_("yêu cầu lúc"), default=timezone.now)
    started_at = models.DateTimeField(_("bắt đầu lúc"), null=True, blank=True)
    finished_at = models.DateTimeField(_("xong lúc"), null=True, blank=True)

    class Meta:
        verbose_name = _("lần xuất dữ liệu")
        verbose_name_plural = _("lần xuất dữ liệu")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["market", "-created_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(period__isnull=False) | Q(kind="xml-zip", invoice_ids__isnull=False),
                name="export_job_period_or_selection",
            ),
            models.CheckConstraint(
                condition=~Q(status="done") | ~Q(file_path=""),
                name="export_job_done_has_file",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.market.code} {self.kind} ({self.get_status_display()})"

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        if not self.total:
            return 0
        return min(100, self.done * 100 // self.total)

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)

    @property
    def path(self) -> Path | None:
        """Absolute path of the finished file (``None`` before it exists)."""
        if not self.file_path:
            return None
        return Path(settings.MEDIA_ROOT) / self.file_path
