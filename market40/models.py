"""The market domain: who owes what.

A ``Market`` (a market board, the seller on invoices) has zones and stalls; a
``StallHolder`` occupies a ``Stall`` through a ``Lease`` over a date range, so history is
kept when a stall changes hands. ``Tariff`` lines are VAT-inclusive prices valid over a
date range. A ``BillingRun`` bills one month into ``FeeDemand`` rows with their
``DemandLine`` rows; each demand carries a system-wide unique payment code and an
unguessable pay-link token.

Money is integer đồng (``BigIntegerField``, ``_vnd`` suffix, sign checked in the
database). A demand's ``paid_vnd`` and ``status`` are a cache of the payments app's
allocation rows: only ``payments.services`` changes them, under ``select_for_update``
on the demand (the locking style of this model), and can always recompute them.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from market40.validators import (
    normalise_phone,
    validate_citizen_id,
    validate_market_code,
    validate_mobile,
    validate_stall_code,
    validate_tax_code,
)


class Bank(models.Model):
    """A NAPAS participant, loaded from the bank list by ``load_banks``; the BIN is
    the key because bank "codes" differ between lists (vietqr.md §9)."""

    bin = models.CharField(_("BIN"), max_length=6, primary_key=True)
    code = models.CharField(_("mã"), max_length=20, blank=True)
    short_name = models.CharField(_("tên viết tắt"), max_length=60)
    name = models.CharField(_("tên ngân hàng"), max_length=200)
    transfer_supported = models.BooleanField(_("hỗ trợ quét VietQR"), default=True)

    class Meta:
        verbose_name = _("ngân hàng")
        verbose_name_plural = _("ngân hàng")
        ordering = ["short_name"]

    def __str__(self) -> str:
        return f"{self.short_name} ({self.bin})"


class Market(models.Model):
    class Grade(models.IntegerChoices):
        GRADE_1 = 1, _("Chợ hạng 1")
        GRADE_2 = 2, _("Chợ hạng 2")
        GRADE_3 = 3, _("Chợ hạng 3")

    code = models.CharField(
        _("mã chợ"), max_length=20, unique=True, validators=[validate_market_code]
    )
    name = models.CharField(_("tên ban quản lý chợ"), max_length=200)
    tax_code = models.CharField(_("mã số thuế"), max_length=14, validators=[validate_tax_code])
    address = models.CharField(_("địa chỉ"), max_length=300)
    phone = models.CharField(_("điện thoại"), max_length=20, blank=True)
    email = models.EmailField(_("thư điện tử"), blank=True)
    grade = models.PositiveSmallIntegerField(_("hạng chợ"), choices=Grade.choices, default=2)
    due_day = models.PositiveSmallIntegerField(
        _("hạn nộp (ngày của tháng)"),
        default=15,
        validators=[
            MinValueValidator(1, message=_("Hạn nộp phải từ ngày 1 đến ngày 28.")),
            MaxValueValidator(28, message=_("Hạn nộp phải từ ngày 1 đến ngày 28.")),
        ],
        help_text=_("Ngày trong tháng mà phí của tháng đó đến hạn (1–28)."),
    )
    created_at = models.DateTimeField(_("tạo lúc"), auto_now_add=True)

    class Meta:
        verbose_name = _("chợ")
        verbose_name_plural = _("chợ")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(due_day__gte=1, due_day__lte=28),
                name="market_due_day_1_28",
                violation_error_message=_("Hạn nộp phải từ ngày 1 đến ngày 28."),
            )
        ]

    def __str__(self) -> str:
        return f"{self.code} – {self.name}"

    @property
    def default_account(self) -> ReceivingAccount | None:
        return self.accounts.filter(active=True).order_by("-is_default", "id").first()


class Membership(models.Model):
    """What a user may do in one market. Platform admins (superusers) need none."""

    class Role(models.TextChoices):
        MANAGER = "manager", _("Quản lý chợ")
        ACCOUNTANT = "accountant", _("Kế toán")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("vai trò"), max_length=20, choices=Role.choices)

    class Meta:
        verbose_name = _("phân quyền")
        verbose_name_plural = _("phân quyền")
        constraints = [models.UniqueConstraint(fields=["user", "market"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.market.code}: {self.get_role_display()}"


class ApiToken(models.Model):
    """A bearer token; only its SHA-256 is stored, the token is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(_("tên"), max_length=100, blank=True)
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("khóa API")
        verbose_name_plural = _("khóa API")

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @staticmethod
    def hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def issue(cls, user, name: str = "") -> tuple[ApiToken, str]:
        token = "m40_" + secrets.token_urlsafe(32)
        return cls.objects.create(
            user=user, name=name, key_hash=cls.hash(token), prefix=token[:8]
        ), token


class ReceivingAccount(models.Model):
    """A bank account of the market board that receives stall holders' transfers."""

    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="accounts")
    bank = models.ForeignKey(Bank, on_delete=models.PROTECT, verbose_name=_("ngân hàng"))
    account_number = models.CharField(_("số tài khoản"), max_length=19)
    account_name = models.CharField(_("tên chủ tài khoản"), max_length=100)
    is_default = models.BooleanField(_("tài khoản mặc định"), default=True)
    active = models.BooleanField(_("đang dùng"), default=True)

    class Meta:
        verbose_name = _("tài khoản nhận tiền")
        verbose_name_plural = _("tài khoản nhận tiền")
        constraints = [
            models.UniqueConstraint(
                fields=["market", "bank", "account_number"], name="account_unique_per_market"
            )
        ]

    def __str__(self) -> str:
        return f"{self.bank.short_name} {self.account_number} – {self.account_name}"

    def clean(self) -> None:
        from market40.vietqr_service import validate_account_number

        validate_account_number(self.account_number)


class Zone(models.Model):
    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="zones")
    code = models.CharField(_("mã khu"), max_length=20)
    name = models.CharField(_("tên khu"), max_length=100)

    class Meta:
        verbose_name = _("khu")
        verbose_name_plural = _("khu")
        ordering = ["market", "code"]
        constraints = [models.UniqueConstraint(fields=["market", "code"], name="zone_code_unique")]

    def __str__(self) -> str:
        return f"{self.code} – {self.name}"


class Stall(models.Model):
    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="stalls")
    zone = models.ForeignKey(
        Zone,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="stalls",
        verbose_name=_("khu"),
    )
    code = models.CharField(_("mã sạp/ki-ốt"), max_length=20, validators=[validate_stall_code])
    stall_class = models.CharField(
        _("loại/vị trí"),
        max_length=20,
        help_text=_("Loại sạp theo quyết định giá của tỉnh, ví dụ L1, L2, GOC, KCD."),
    )
    area_m2 = models.DecimalField(
        _("diện tích (m²)"),
        max_digits=9,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0"), message=_("Diện tích không được âm."))],
    )
    active = models.BooleanField(_("đang hoạt động"), default=True)
    payment_code = models.CharField(
        _("mã thanh toán cố định"), max_length=20, unique=True, editable=False
    )

    class Meta:
        verbose_name = _("sạp/ki-ốt")
        verbose_name_plural = _("sạp/ki-ốt")
        ordering = ["market", "code"]
        constraints = [
            models.UniqueConstraint(fields=["market", "code"], name="stall_code_unique"),
            models.CheckConstraint(condition=Q(area_m2__gte=0), name="stall_area_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.market.code}/{self.code}"

    def save(self, *args, **kwargs) -> None:
        if not self.payment_code:
            from market40.services import allocate_codes

            self.payment_code = allocate_codes("stall", 1)[0]
        super().save(*args, **kwargs)


class StallHolder(models.Model):
    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="holders")
    code = models.CharField(
        _("mã tiểu thương"), max_length=20, help_text=_("Mã khách hàng dùng khi xuất sang MISA.")
    )
    full_name = models.CharField(_("họ và tên"), max_length=150)
    phone = models.CharField(_("điện thoại di động"), max_length=15, validators=[validate_mobile])
    tax_code = models.CharField(
        _("mã số thuế"), max_length=14, blank=True, validators=[validate_tax_code]
    )
    citizen_id = models.CharField(
        _("số CCCD"), max_length=12, blank=True, validators=[validate_citizen_id]
    )
    address = models.CharField(_("địa chỉ"), max_length=300, blank=True)

    class Meta:
        verbose_name = _("tiểu thương")
        verbose_name_plural = _("tiểu thương")
        ordering = ["market", "code"]
        constraints = [
            models.UniqueConstraint(fields=["market", "code"], name="holder_code_unique")
        ]

    def __str__(self) -> str:
        return f"{self.code} – {self.full_name}"

    def clean(self) -> None:
        self.phone = normalise_phone(self.phone)


class Lease(models.Model):
    """A holder occupies a stall from ``start_date`` to ``end_date`` inclusive (open
    ended when empty). Leases of one stall never overlap: ``services.lease_create``
    checks under a lock on the stall."""

    stall = models.ForeignKey(Stall, on_delete=models.PROTECT, related_name="leases")
    holder = models.ForeignKey(StallHolder, on_delete=models.PROTECT, related_name="leases")
    start_date = models.DateField(_("từ ngày"))
    end_date = models.DateField(_("đến ngày"), null=True, blank=True)
    note = models.CharField(_("ghi chú"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("hợp đồng thuê sạp")
        verbose_name_plural = _("hợp đồng thuê sạp")
        ordering = ["stall", "start_date"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gte=models.F("start_date")),
                name="lease_dates_ordered",
            )
        ]

    def __str__(self) -> str:
        return f"{self.stall} ← {self.holder.full_name} ({self.start_date}…{self.end_date or ''})"

    def clean(self) -> None:
        if self.end_date and self.start_date and self.end_date < self.start_date:
            raise ValidationError({"end_date": _("Ngày kết thúc phải sau hoặc bằng ngày bắt đầu.")})
        if self.stall_id and self.holder_id and self.stall.market_id != self.holder.market_id:
            raise ValidationError({"holder": _("Tiểu thương thuộc chợ khác với sạp.")})
        if self.stall_id and self.start_date:
            overlapping = Lease.objects.filter(stall_id=self.stall_id).exclude(pk=self.pk)
            overlapping = overlapping.filter(
                Q(end_date__isnull=True) | Q(end_date__gte=self.start_date)
            )
            if self.end_date:
                overlapping = overlapping.filter(start_date__lte=self.end_date)
            other = overlapping.select_related("holder").first()
            if other:
                raise ValidationError(
                    {
                        "start_date": _(
                            "Sạp %(stall)s đã có hợp đồng của %(holder)s từ %(start)s "
                            "trùng thời gian."
                        )
                        % {
                            "stall": self.stall.code,
                            "holder": other.holder.full_name,
                            "start": other.start_date.strftime("%d/%m/%Y"),
                        }
                    }
                )


class VatRate(models.TextChoices):
    """VAT rate groups of the e-invoice format (einvoice.md §10)."""

    ZERO = "0%", "0%"
    FIVE = "5%", "5%"
    EIGHT = "8%", "8%"
    TEN = "10%", "10%"
    KCT = "KCT", _("KCT – không chịu thuế")
    KKKNT = "KKKNT", _("KKKNT – không kê khai, tính nộp thuế")


class FeeKind(models.TextChoices):
    RENT = "rent", _("Giá dịch vụ sử dụng diện tích bán hàng")
    MANAGEMENT = "management", _("Phí quản lý")
    SANITATION = "sanitation", _("Vệ sinh")
    SECURITY = "security", _("An ninh, bảo vệ")
    ELECTRICITY = "electricity", _("Tiền điện")
    WATER = "water", _("Tiền nước")
    DAILY = "daily", _("Vé ngày (bán hàng không cố định)")
    ENTRY = "entry", _("Vé lượt vào chợ")


class Tariff(models.Model):
    """A VAT-inclusive price line valid from ``valid_from`` to ``valid_to`` inclusive.

    Basis: per m² per month (× stall area), per stall per month, metered (× the
    period's reading), per day of occupancy, or per entry (× recorded entries). Monthly
    bases are prorated by the days a lease covers; a price change inside a month splits
    the line by the days under each price.
    """

    class Basis(models.TextChoices):
        PER_M2_MONTH = "per_m2_month", _("đồng/m²/tháng")
        PER_STALL_MONTH = "per_stall_month", _("đồng/sạp/tháng")
        METERED = "metered", _("theo chỉ số công tơ")
        PER_DAY = "per_day", _("đồng/ngày")
        PER_ENTRY = "per_entry", _("đồng/lượt")

    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="tariffs")
    fee_kind = models.CharField(_("loại phí"), max_length=20, choices=FeeKind.choices)
    name = models.CharField(_("tên trên hóa đơn"), max_length=200)
    basis = models.CharField(_("cách tính"), max_length=20, choices=Basis.choices)
    stall_class = models.CharField(
        _("áp dụng cho loại sạp"),
        max_length=20,
        blank=True,
        help_text=_("Để trống nếu áp dụng cho mọi loại sạp."),
    )
    unit = models.CharField(_("đơn vị tính"), max_length=20)
    unit_price_vnd = models.BigIntegerField(
        _("đơn giá (đã gồm thuế GTGT, đồng)"),
        validators=[MinValueValidator(0, message=_("Đơn giá không được âm."))],
    )
    vat_rate = models.CharField(_("thuế suất GTGT"), max_length=5, choices=VatRate.choices)
    valid_from = models.DateField(_("hiệu lực từ"))
    valid_to = models.DateField(_("hiệu lực đến"), null=True, blank=True)

    class Meta:
        verbose_name = _("biểu giá")
        verbose_name_plural = _("biểu giá")
        ordering = ["market", "fee_kind", "stall_class", "valid_from"]
        constraints = [
            models.CheckConstraint(
                condition=Q(unit_price_vnd__gte=0), name="tariff_price_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gte=models.F("valid_from")),
                name="tariff_dates_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.unit_price_vnd:,} đ/{self.unit}".replace(",", ".")

    def clean(self) -> None:
        if self.valid_to and self.valid_from and self.valid_to < self.valid_from:
            raise ValidationError({"valid_to": _("Ngày hết hiệu lực phải sau ngày bắt đầu.")})
        if not (self.market_id and self.fee_kind and self.valid_from):
            return
        clash = Tariff.objects.filter(
            market_id=self.market_id, fee_kind=self.fee_kind, stall_class=self.stall_class
        ).exclude(pk=self.pk)
        clash = clash.filter(Q(valid_to__isnull=True) | Q(valid_to__gte=self.valid_from))
        if self.valid_to:
            clash = clash.filter(valid_from__lte=self.valid_to)
        if clash.exists():
            raise ValidationError(
                {
                    "valid_from": _(
                        "Đã có biểu giá “%(kind)s” cho loại sạp “%(cls)s” trùng thời gian hiệu "
                        "lực; hãy cho biểu giá cũ hết hiệu lực trước."
                    )
                    % {
                        "kind": self.get_fee_kind_display(),
                        "cls": self.stall_class or _("mọi loại"),
                    }
                }
            )


class MeterReading(models.Model):
    """A stall's usage in one period: meter readings for electricity and water, or the
    number of entries for per-entry tickets (``previous_value`` 0)."""

    class Utility(models.TextChoices):
        ELECTRICITY = "electricity", _("Điện (kWh)")
        WATER = "water", _("Nước (m³)")
        ENTRY = "entry", _("Lượt vào chợ")

    stall = models.ForeignKey(Stall, on_delete=models.CASCADE, related_name="readings")
    utility = models.CharField(_("loại"), max_length=20, choices=Utility.choices)
    period = models.DateField(_("kỳ"), help_text=_("Ngày đầu tháng của kỳ."))
    previous_value = models.DecimalField(_("chỉ số đầu kỳ"), max_digits=12, decimal_places=2)
    current_value = models.DecimalField(_("chỉ số cuối kỳ"), max_digits=12, decimal_places=2)

    class Meta:
        verbose_name = _("chỉ số sử dụng")
        verbose_name_plural = _("chỉ số sử dụng")
        constraints = [
            models.UniqueConstraint(
                fields=["stall", "utility", "period"], name="reading_unique_per_period"
            ),
            models.CheckConstraint(
                condition=Q(current_value__gte=models.F("previous_value")),
                name="reading_not_decreasing",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.stall} {self.get_utility_display()} {self.period:%m/%Y}: {self.quantity}"

    @property
    def quantity(self) -> Decimal:
        return self.current_value - self.previous_value

    def clean(self) -> None:
        if (
            self.current_value is not None
            and self.previous_value is not None
            and self.current_value < self.previous_value
        ):
            raise ValidationError(
                {"current_value": _("Chỉ số cuối kỳ không được nhỏ hơn chỉ số đầu kỳ.")}
            )


class CodeSequence(models.Model):
    """Counters behind payment codes; a block is reserved with one locked update so
    that a billing run of any size costs the same number of queries."""

    name = models.CharField(max_length=20, primary_key=True)
    next_value = models.BigIntegerField(default=1)

    def __str__(self) -> str:
        return f"{self.name}: {self.next_value}"


class BillingRun(models.Model):
    class Status(models.TextChoices):
        COMPLETED = "completed", _("Đã lập")
        CANCELLED = "cancelled", _("Đã hủy")

    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="billing_runs")
    period = models.DateField(_("kỳ"), help_text=_("Ngày đầu tháng của kỳ."))
    status = models.CharField(
        _("trạng thái"), max_length=20, choices=Status.choices, default=Status.COMPLETED
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(_("lập lúc"), default=timezone.now)
    cancelled_at = models.DateTimeField(_("hủy lúc"), null=True, blank=True)
    demand_count = models.PositiveIntegerField(_("số phiếu thu"), default=0)
    total_vnd = models.BigIntegerField(_("tổng tiền (đồng)"), default=0)

    class Meta:
        verbose_name = _("đợt lập phí")
        verbose_name_plural = _("đợt lập phí")
        ordering = ["-period", "-created_at"]

    def __str__(self) -> str:
        return f"{self.market.code} {self.period:%m/%Y} ({self.get_status_display()})"


class FeeDemand(models.Model):
    """What one holder owes for one stall and one month (phiếu báo phí)."""

    class Status(models.TextChoices):
        OPEN = "open", _("Chưa thanh toán")
        PARTIAL = "partial", _("Thanh toán một phần")
        PAID = "paid", _("Đã thanh toán")
        OVERPAID = "overpaid", _("Thanh toán thừa")
        CANCELLED = "cancelled", _("Đã hủy")

    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="demands")
    billing_run = models.ForeignKey(BillingRun, on_delete=models.PROTECT, related_name="demands")
    lease = models.ForeignKey(Lease, on_delete=models.PROTECT, related_name="demands")
    stall = models.ForeignKey(Stall, on_delete=models.PROTECT, related_name="demands")
    holder = models.ForeignKey(StallHolder, on_delete=models.PROTECT, related_name="demands")
    period = models.DateField(_("kỳ"))
    payment_code = models.CharField(_("mã thanh toán"), max_length=20, unique=True)
    pay_token = models.CharField(max_length=43, unique=True)
    total_vnd = models.BigIntegerField(_("tổng tiền (đồng)"))
    paid_vnd = models.BigIntegerField(_("đã thu (đồng)"), default=0)
    status = models.CharField(
        _("trạng thái"), max_length=20, choices=Status.choices, default=Status.OPEN
    )
    due_date = models.DateField(_("hạn nộp"))
    paid_at = models.DateTimeField(_("thanh toán đủ lúc"), null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("phiếu báo phí")
        verbose_name_plural = _("phiếu báo phí")
        ordering = ["period", "stall__code"]
        constraints = [
            models.CheckConstraint(condition=Q(total_vnd__gte=0), name="demand_total_not_negative"),
            models.CheckConstraint(condition=Q(paid_vnd__gte=0), name="demand_paid_not_negative"),
            # One live demand per lease and period: re-running a billing period is a no-op.
            models.UniqueConstraint(
                fields=["lease", "period"],
                condition=~Q(status="cancelled"),
                name="demand_once_per_lease_period",
            ),
        ]
        indexes = [
            models.Index(fields=["market", "period", "status"]),
            models.Index(fields=["holder", "status"]),
            models.Index(fields=["stall", "status"]),
        ]

    def __str__(self) -> str:
        return f"{self.payment_code} {self.stall.code} {self.period:%m/%Y}"

    @property
    def outstanding_vnd(self) -> int:
        if self.status == self.Status.CANCELLED:
            return 0
        return max(self.total_vnd - self.paid_vnd, 0)

    @staticmethod
    def status_for(total_vnd: int, paid_vnd: int) -> str:
        if paid_vnd <= 0:
            return FeeDemand.Status.OPEN
        if paid_vnd < total_vnd:
            return FeeDemand.Status.PARTIAL
        if paid_vnd == total_vnd:
            return FeeDemand.Status.PAID
        return FeeDemand.Status.OVERPAID

    @staticmethod
    def new_pay_token() -> str:
        # 32 random bytes = 256 bits, URL-safe, 43 characters.
        return secrets.token_urlsafe(32)

    @property
    def period_label(self) -> str:
        return f"{self.period:%m/%Y}"


class DemandLine(models.Model):
    demand = models.ForeignKey(FeeDemand, on_delete=models.CASCADE, related_name="lines")
    tariff = models.ForeignKey(Tariff, on_delete=models.PROTECT, related_name="+")
    fee_kind = models.CharField(max_length=20, choices=FeeKind.choices)
    description = models.CharField(_("nội dung"), max_length=300)
    quantity = models.DecimalField(_("số lượng"), max_digits=14, decimal_places=4)
    unit = models.CharField(_("đơn vị tính"), max_length=20)
    unit_price_vnd = models.BigIntegerField(_("đơn giá (đồng)"))
    amount_vnd = models.BigIntegerField(_("thành tiền (đồng)"))
    vat_rate = models.CharField(max_length=5, choices=VatRate.choices)

    class Meta:
        verbose_name = _("dòng phí")
        verbose_name_plural = _("dòng phí")
        ordering = ["demand", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_vnd__gte=0), name="line_amount_not_negative")
        ]

    def __str__(self) -> str:
        return f"{self.description}: {self.amount_vnd}"


def month_start(value: date) -> date:
    return value.replace(day=1)
