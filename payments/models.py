"""What arrived from the banks, and how it was matched.

``BankConnection`` links a market's receiving account to a notification provider and
holds the provider's secret (encrypted at rest, write-only in the API and admin).
Every delivery that reaches a connection is a ``WebhookEvent`` saved verbatim — raw
bytes, headers, remote address, verification outcome — before, or in the same commit
as, anything made from it (store first, then trust; ``payments.services``). Each
authentic transfer becomes one ``BankTransaction``; the pair (connection, provider
transaction id) is unique in the database, so a redelivery, even two at the same
instant on different workers, creates nothing.

``Allocation`` rows are the ledger of matching: append-only, an unmatch writes a
reversing row. A transaction's ``allocated_vnd`` / ``credit_vnd`` / ``status`` and a
demand's ``paid_vnd`` are caches of those rows, changed only by
``payments.reconciliation`` under ``select_for_update`` of the transaction and the
demands involved (the locking style of these models).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from market40.models import FeeDemand, Market, ReceivingAccount, StallHolder


def new_connection_id() -> str:
    # 128 random bits: the id is part of the webhook URL and must not be guessable.
    return "cn" + secrets.token_hex(16)


def _key_material() -> str:
    return settings.CONNECTION_SECRETS_KEY or settings.SECRET_KEY


def _fernet(key_material: str | None = None):
    from cryptography.fernet import Fernet

    key_material = key_material or _key_material()
    digest = hashlib.sha256(b"market40-connection-secrets:" + key_material.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


@functools.lru_cache(maxsize=256)
def _decrypt(key_material: str, token: str) -> str:
    # Every delivery needs its connection's secret; decrypting it costs more than the
    # rest of verifying. Keyed by the key and the stored token, so a new secret or a
    # rotated key is never answered from the cache. A wrong key raises and is not cached.
    return _fernet(key_material).decrypt(token.encode()).decode()


class Provider(models.TextChoices):
    SEPAY = "sepay", "SePay"
    CASSO = "casso", "Casso"
    PAYOS = "payos", "payOS"
    SIMULATOR = "simulator", _("Ngân hàng mô phỏng")


class BankConnection(models.Model):
    id = models.CharField(
        max_length=40, primary_key=True, default=new_connection_id, editable=False
    )
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="connections")
    account = models.ForeignKey(
        ReceivingAccount,
        on_delete=models.PROTECT,
        related_name="connections",
        verbose_name=_("tài khoản nhận tiền"),
    )
    provider = models.CharField(_("nhà cung cấp"), max_length=20, choices=Provider.choices)
    secret_encrypted = models.TextField(editable=False)
    options = models.JSONField(
        _("tùy chọn"),
        default=dict,
        blank=True,
        help_text=_('Ví dụ {"mode": "hmac"} cho SePay, {"version": "v2"} cho Casso.'),
    )
    active = models.BooleanField(_("đang dùng"), default=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_balance_vnd = models.BigIntegerField(_("số dư gần nhất"), null=True, blank=True)
    last_balance_at = models.DateTimeField(null=True, blank=True)
    balance_gaps = models.PositiveIntegerField(_("số lần lệch số dư"), default=0)
    last_gap_note = models.CharField(_("lệch số dư gần nhất"), max_length=300, blank=True)

    class Meta:
        verbose_name = _("kết nối ngân hàng")
        verbose_name_plural = _("kết nối ngân hàng")

    def __str__(self) -> str:
        return f"{self.get_provider_display()} · {self.account} ({self.id[:8]}…)"

    @property
    def secret(self) -> str:
        return _decrypt(_key_material(), self.secret_encrypted)

    def set_secret(self, value: str) -> None:
        self.secret_encrypted = _fernet().encrypt(value.encode()).decode()

    @property
    def webhook_path(self) -> str:
        return f"/webhooks/{self.provider}/{self.id}/"


class WebhookEvent(models.Model):
    class Outcome(models.TextChoices):
        RECEIVED = "received", _("Đã nhận, chưa kiểm tra")
        ACCEPTED = "accepted", _("Hợp lệ")
        DUPLICATE = "duplicate", _("Gửi lại (trùng)")
        TEST = "test", _("Lệnh thử của nhà cung cấp")
        REJECTED = "rejected", _("Sai chữ ký / xác thực")
        MALFORMED = "malformed", _("Sai định dạng")

    # Indexed by Meta.indexes: a plain b-tree, without the pattern-matching copy that
    # Django adds for a character key and no query here needs (one index fewer to write
    # per delivery).
    connection = models.ForeignKey(
        BankConnection, on_delete=models.PROTECT, related_name="events", db_index=False
    )
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    remote_addr = models.CharField(max_length=64, blank=True)
    headers = models.JSONField(default=dict)
    body = models.BinaryField()
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.RECEIVED)
    http_status = models.PositiveSmallIntegerField(null=True)
    reason = models.CharField(max_length=100, blank=True)
    verify_scheme = models.CharField(max_length=40, blank=True)
    verify_detail = models.CharField(max_length=100, blank=True)
    transfer_count = models.PositiveIntegerField(default=0)
    new_transactions = models.PositiveIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True)
    processing_error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("lần gọi webhook")
        verbose_name_plural = _("lần gọi webhook")
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["outcome", "processed_at"]),
            models.Index(fields=["connection"], name="webhookevent_connection"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.connection.provider} {self.get_outcome_display()}"


class BankTransaction(models.Model):
    class Direction(models.TextChoices):
        IN = "in", _("Tiền vào")
        OUT = "out", _("Tiền ra")

    class Status(models.TextChoices):
        UNMATCHED = "unmatched", _("Chưa khớp")
        PARTLY = "partly", _("Khớp một phần")
        MATCHED = "matched", _("Đã khớp")
        IGNORED = "ignored", _("Không cần khớp")

    class Source(models.TextChoices):
        WEBHOOK = "webhook", _("Webhook")
        STATEMENT = "statement", _("Sao kê")

    # No index of its own: the unique (connection, provider id) constraint and the two
    # indexes below all start with it.
    connection = models.ForeignKey(
        BankConnection, on_delete=models.PROTECT, related_name="transactions", db_index=False
    )
    provider_transaction_id = models.CharField(max_length=100)
    event = models.ForeignKey(
        WebhookEvent, on_delete=models.PROTECT, null=True, blank=True, related_name="transactions"
    )
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.WEBHOOK)
    direction = models.CharField(max_length=3, choices=Direction.choices)
    amount_vnd = models.BigIntegerField(_("số tiền (đồng)"))
    content = models.TextField(_("nội dung chuyển khoản"), blank=True)
    description = models.TextField(_("mô tả của ngân hàng"), blank=True)
    bank_reference = models.CharField(_("mã tham chiếu"), max_length=100, blank=True)
    counter_account = models.CharField(_("tài khoản người chuyển"), max_length=40, blank=True)
    counter_name = models.CharField(_("tên người chuyển"), max_length=200, blank=True)
    counter_bank = models.CharField(_("ngân hàng người chuyển"), max_length=100, blank=True)
    sub_account = models.CharField(max_length=40, blank=True)
    provider_code = models.CharField(max_length=40, blank=True)
    bank_time = models.DateTimeField(_("thời điểm giao dịch"))
    running_balance_vnd = models.BigIntegerField(null=True, blank=True)
    is_test = models.BooleanField(default=False)
    received_at = models.DateTimeField(default=timezone.now)
    # Caches of the allocation rows (see the module docstring).
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.UNMATCHED)
    allocated_vnd = models.BigIntegerField(default=0)
    credit_vnd = models.BigIntegerField(default=0)
    reconciled_at = models.DateTimeField(null=True, blank=True)
    unmatched_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        verbose_name = _("giao dịch ngân hàng")
        verbose_name_plural = _("giao dịch ngân hàng")
        ordering = ["-bank_time"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "provider_transaction_id"],
                name="transaction_once_per_connection",
            ),
            models.CheckConstraint(
                condition=Q(amount_vnd__gt=0), name="transaction_amount_positive"
            ),
            models.CheckConstraint(
                condition=Q(allocated_vnd__gte=0)
                & Q(credit_vnd__gte=0)
                & Q(allocated_vnd__lte=models.F("amount_vnd") - models.F("credit_vnd")),
                name="transaction_never_over_allocated",
            ),
        ]
        indexes = [
            models.Index(fields=["connection", "status"]),
            models.Index(fields=["connection", "bank_time"]),
        ]

    def __str__(self) -> str:
        return f"{self.bank_time:%d/%m/%Y %H:%M} {self.amount_vnd} {self.content[:40]}"

    @property
    def unmatched_vnd(self) -> int:
        if self.status == self.Status.IGNORED:
            return 0
        return self.amount_vnd - self.allocated_vnd - self.credit_vnd


class Allocation(models.Model):
    """One row of the matching ledger. ``kind`` says where money of a transaction went:
    to a demand, or to the holder's credit (surplus). Rows are never updated or
    deleted; an unmatch adds a row with the opposite amount that ``reverses`` it."""

    class Kind(models.TextChoices):
        DEMAND = "demand", _("Trả phiếu báo phí")
        CREDIT = "credit", _("Tiền thừa (ghi có cho tiểu thương)")
        REFUND = "refund", _("Hoàn trả tiền thừa")
        WRITEOFF = "writeoff", _("Xóa nợ chênh lệch nhỏ / phí ngân hàng")

    # Null only for write-offs, which settle a demand without money from a transfer.
    transaction = models.ForeignKey(
        BankTransaction,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="allocations",
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    demand = models.ForeignKey(
        FeeDemand, on_delete=models.PROTECT, null=True, blank=True, related_name="allocations"
    )
    holder = models.ForeignKey(
        StallHolder, on_delete=models.PROTECT, null=True, blank=True, related_name="allocations"
    )
    amount_vnd = models.BigIntegerField()
    rule = models.CharField(_("quy tắc"), max_length=40)
    note = models.CharField(_("ghi chú"), max_length=300, blank=True)
    reverses = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="reversed_by"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("phân bổ")
        verbose_name_plural = _("phân bổ")
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind="demand") & Q(demand__isnull=False) & Q(transaction__isnull=False)
                )
                | (
                    Q(kind__in=["credit", "refund"])
                    & Q(holder__isnull=False)
                    & Q(transaction__isnull=False)
                )
                | (Q(kind="writeoff") & Q(demand__isnull=False) & Q(transaction__isnull=True)),
                name="allocation_target_matches_kind",
            ),
            models.CheckConstraint(condition=~Q(amount_vnd=0), name="allocation_not_zero"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount_vnd} ({self.rule})"


class AuditEntry(models.Model):
    """Who did what to the matching ledger, when, why, and the state before and after."""

    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="audit_entries")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True)
    action = models.CharField(_("thao tác"), max_length=30)
    transaction = models.ForeignKey(
        BankTransaction, on_delete=models.PROTECT, null=True, blank=True, related_name="audit"
    )
    demand = models.ForeignKey(
        FeeDemand, on_delete=models.PROTECT, null=True, blank=True, related_name="audit"
    )
    note = models.TextField(_("ghi chú"))
    before = models.JSONField(default=dict)
    after = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("nhật ký đối soát")
        verbose_name_plural = _("nhật ký đối soát")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%d/%m/%Y %H:%M} {self.user} {self.action}"


class KnownCounterAccount(models.Model):
    """A payer account seen on a transfer matched to a holder's demand: later unmatched
    transfers from it rank that holder's demands first among the suggestions."""

    holder = models.ForeignKey(StallHolder, on_delete=models.CASCADE, related_name="accounts_seen")
    account = models.CharField(max_length=40)
    seen = models.PositiveIntegerField(default=1)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["holder", "account"], name="counter_account_once")
        ]

    def __str__(self) -> str:
        return f"{self.account} → {self.holder}"
