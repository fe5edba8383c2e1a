"""Request and response shapes of the payments API (``payments.api``).

Same conventions as ``market40.schemas``: money is integer đồng in ``*_vnd`` fields,
dates ``YYYY-MM-DD``, times ISO 8601 with offset, request bodies refuse unknown fields
(422). Business rules (a note is required, a share may not exceed what is outstanding…)
are the ledger's, answered 400 with the Vietnamese message of ``payments.ledger``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from django.db.models import Q, TextChoices
from django.utils.translation import gettext_lazy as _
from ninja import Field, FilterSchema, Schema
from pydantic import ConfigDict

from payments.reports import day_bounds

TransactionStatus = Literal["matched", "partly", "unmatched", "ignored"]


class WriteOffReason(TextChoices):
    """Why a difference is written off; written at the start of the ledger note."""

    SMALL_DIFFERENCE = "small_difference", _("Chênh lệch nhỏ")
    BANK_FEE = "bank_fee", _("Phí ngân hàng")
    OTHER = "other", _("Lý do khác")


def writeoff_note(reason: str, note: str) -> str:
    """``"Phí ngân hàng: <note>"``. An empty or too short note is passed on unchanged,
    so that the ledger refuses it with its own message (a note is always required)."""
    text = (note or "").strip()
    if len(text) < 3 or reason not in WriteOffReason.values:
        return text
    return f"{WriteOffReason(reason).label}: {text}"


class InputSchema(Schema):
    model_config = ConfigDict(extra="forbid")


# --- out -----------------------------------------------------------------------------


class AllocationOut(Schema):
    """One ledger row. Rows are never changed: an unmatch adds a row with the opposite
    amount whose ``reverses_id`` names the original (``reversed_by_id`` on it)."""

    id: int
    kind: Literal["demand", "credit", "refund", "writeoff"]
    transaction_id: int | None
    demand_id: int | None
    payment_code: str | None = Field(description="Mã thanh toán của phiếu (kind=demand/writeoff)")
    holder_id: int | None = Field(description="Tiểu thương (kind=credit/refund)")
    amount_vnd: int
    rule: str = Field(description="code, codes_in_order, manual, unmatch, writeoff, refund…")
    note: str
    reverses_id: int | None
    reversed_by_id: int | None
    created_by: str | None
    created_at: datetime

    @staticmethod
    def resolve_payment_code(obj) -> str | None:
        return obj.demand.payment_code if obj.demand_id else None

    @staticmethod
    def resolve_reversed_by_id(obj) -> int | None:
        reversal = getattr(obj, "reversed_by", None)  # None when nothing reverses it
        return reversal.pk if reversal is not None else None

    @staticmethod
    def resolve_created_by(obj) -> str | None:
        return obj.created_by.get_username() if obj.created_by_id else None


class TransactionOut(Schema):
    """A bank transaction. Always ``allocated_vnd + credit_vnd + unmatched_vnd ==
    amount_vnd`` (``unmatched_vnd`` is 0 for ignored ones: money out, test calls)."""

    id: int
    market: str
    connection_id: str
    provider: str
    provider_transaction_id: str
    source: str
    direction: Literal["in", "out"]
    amount_vnd: int
    allocated_vnd: int = Field(description="Đã phân bổ cho phiếu báo phí (và đã hoàn trả)")
    credit_vnd: int = Field(description="Đang giữ làm tiền thừa của tiểu thương")
    unmatched_vnd: int = Field(description="Chưa khớp")
    status: TransactionStatus
    unmatched_reason: str
    content: str
    description: str
    bank_reference: str
    counter_account: str
    counter_name: str
    counter_bank: str
    bank_time: datetime
    received_at: datetime
    running_balance_vnd: int | None
    allocations: list[AllocationOut]

    @staticmethod
    def resolve_market(obj) -> str:
        return obj.connection.market.code

    @staticmethod
    def resolve_provider(obj) -> str:
        return obj.connection.provider

    @staticmethod
    def resolve_allocations(obj) -> list[Any]:
        return list(obj.allocations.all())


class SuggestionOut(Schema):
    demand_id: int
    payment_code: str
    stall: str
    holder: str
    outstanding_vnd: int
    score: int
    reasons: list[str]


class AuditOut(Schema):
    id: int
    action: str
    user: str | None
    transaction_id: int | None
    demand_id: int | None
    note: str
    before: dict[str, Any]
    after: dict[str, Any]
    created_at: datetime

    @staticmethod
    def resolve_user(obj) -> str | None:
        return obj.user.get_username() if obj.user_id else None


class TransactionDetailOut(TransactionOut):
    suggestions: list[SuggestionOut] = Field(
        description="Phiếu gợi ý (xếp hạng) cho phần chưa khớp; không bao giờ tự khớp."
    )
    audit: list[AuditOut]

    @staticmethod
    def resolve_suggestions(obj) -> list[dict[str, Any]]:
        from payments.ledger import suggestions

        return suggestions(obj) if obj.unmatched_vnd > 0 else []

    @staticmethod
    def resolve_audit(obj) -> list[Any]:
        return list(obj.audit.select_related("user").order_by("created_at", "id"))


class TransactionBriefOut(Schema):
    id: int
    connection_id: str
    amount_vnd: int
    status: TransactionStatus
    bank_time: datetime
    bank_reference: str
    content: str
    counter_name: str


class DemandAllocationsOut(Schema):
    """A fee demand with its ledger rows and the transactions that paid it."""

    id: int
    payment_code: str
    market: str
    stall_code: str
    holder_id: int
    holder_name: str
    period: str = Field(description="YYYY-MM")
    status: str
    total_vnd: int
    paid_vnd: int = Field(description="collected_vnd + written_off_vnd")
    collected_vnd: int = Field(description="Từ chuyển khoản (kể cả tiền thừa được trừ)")
    written_off_vnd: int
    outstanding_vnd: int
    allocations: list[AllocationOut]
    transactions: list[TransactionBriefOut]


class UnmatchOut(Schema):
    reversal: AllocationOut
    transaction: TransactionOut


class RefundOut(Schema):
    holder_id: int
    refunded_vnd: int
    reference: str
    credit_vnd: int = Field(description="Tiền thừa còn lại sau khi hoàn")


# --- in ------------------------------------------------------------------------------


class ShareIn(InputSchema):
    demand_id: int
    amount_vnd: int


class MatchIn(InputSchema):
    shares: list[ShareIn] = Field(description="Một hoặc nhiều phiếu với số tiền (tách giao dịch).")
    note: str = Field("", description="Bắt buộc: lý do khớp tay.")
    surplus_to_credit: bool = Field(
        False, description="Giữ phần còn lại của giao dịch làm tiền thừa của tiểu thương."
    )


class UnmatchIn(InputSchema):
    note: str = Field("", description="Bắt buộc: lý do hủy khớp.")


class WriteOffIn(InputSchema):
    amount_vnd: int
    note: str = Field("", description="Bắt buộc.")
    reason: str = Field(
        WriteOffReason.OTHER,
        description="small_difference, bank_fee hoặc other; ghi ở đầu ghi chú.",
        json_schema_extra={"enum": WriteOffReason.values},
    )


class RefundIn(InputSchema):
    amount_vnd: int
    reference: str = Field("", description="Bắt buộc: mã tham chiếu của lệnh chuyển hoàn.")
    note: str = Field("", description="Bắt buộc.")


class TransactionFilter(FilterSchema):
    connection: str | None = Field(None, description="id kết nối ngân hàng")
    status: TransactionStatus | None = None
    direction: Literal["in", "out"] | None = None
    date_from: date | None = Field(None, description="Từ ngày (giờ Việt Nam), bao gồm.")
    date_to: date | None = Field(None, description="Đến ngày (giờ Việt Nam), bao gồm.")

    def filter_connection(self, value: str | None) -> Q:
        return Q(connection_id=value) if value else Q()

    def filter_date_from(self, value: date | None) -> Q:
        return Q(bank_time__gte=day_bounds(value)[0]) if value else Q()

    def filter_date_to(self, value: date | None) -> Q:
        return Q(bank_time__lt=day_bounds(value)[1]) if value else Q()
