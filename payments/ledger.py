"""The accountant's operations on the matching ledger, each audited.

Manual match, unmatch, write-off, refund of a credit, and the automatic application of a
holder's credit to the demands of a new billing run. Every operation:

* runs in one database transaction, locking the bank transaction(s) first and then the
  demands in id order (the same order as ``reconciliation.reconcile``, so they never
  deadlock with each other);
* only ever *adds* allocation rows — an unmatch adds the opposite row that ``reverses``
  the original and touches no other allocation;
* recomputes caches from the rows, and writes an ``AuditEntry`` with who, when, the
  required note, and the state before and after.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from market40.errors import Conflict, InvalidInput
from market40.models import FeeDemand, StallHolder
from payments.models import Allocation, AuditEntry, BankTransaction
from payments.reconciliation import refresh_demand, refresh_transaction, remember_counter_account

MAX_WRITEOFF_VND = 50_000  # "small difference or bank fee"; larger needs a new demand


@dataclass(frozen=True)
class Share:
    demand_id: int
    amount_vnd: int


def _require_note(note: str) -> str:
    note = (note or "").strip()
    if len(note) < 3:
        raise InvalidInput(
            _("Cần ghi chú lý do cho thao tác này (ít nhất 3 ký tự)."),
            extra={"fields": {"note": ["required"]}},
        )
    return note


def _tx_state(tx: BankTransaction) -> dict[str, Any]:
    return {
        "status": tx.status,
        "allocated_vnd": tx.allocated_vnd,
        "credit_vnd": tx.credit_vnd,
        "unmatched_vnd": tx.unmatched_vnd,
    }


def _demand_state(demand: FeeDemand) -> dict[str, Any]:
    return {
        "status": demand.status,
        "paid_vnd": demand.paid_vnd,
        "outstanding_vnd": demand.outstanding_vnd,
    }


def _lock_tx(transaction_id: int) -> BankTransaction:
    return (
        BankTransaction.objects.select_for_update()
        .select_related("connection")
        .get(pk=transaction_id)
    )


def _lock_demands(ids: Sequence[int], market_id: int) -> dict[int, FeeDemand]:
    demands = {
        d.pk: d for d in FeeDemand.objects.select_for_update().filter(pk__in=ids).order_by("pk")
    }
    for demand_id in ids:
        demand = demands.get(demand_id)
        if demand is None or demand.market_id != market_id:
            raise InvalidInput(
                _("Không tìm thấy phiếu báo phí %(id)s trong chợ này.") % {"id": demand_id}
            )
    return demands


def manual_match(
    *,
    transaction_id: int,
    shares: Sequence[Share],
    user: Any,
    note: str,
    surplus_to_credit: bool = False,
) -> BankTransaction:
    """Allocate (part of) a transaction's unmatched money to one or several demands —
    also a split. Each share is at most the demand's outstanding amount; the total at
    most what is unmatched. ``surplus_to_credit`` keeps the rest as the holder's credit."""
    note = _require_note(note)
    if not shares:
        raise InvalidInput(_("Chọn ít nhất một phiếu báo phí để khớp."))
    if any(s.amount_vnd <= 0 for s in shares):
        raise InvalidInput(_("Số tiền phân bổ phải lớn hơn 0."))
    with transaction.atomic():
        tx = _lock_tx(transaction_id)
        if tx.status == BankTransaction.Status.IGNORED:
            raise Conflict(_("Giao dịch này không cần khớp (tiền ra hoặc lệnh thử)."))
        demands = _lock_demands([s.demand_id for s in shares], tx.connection.market_id)
        before = {
            "transaction": _tx_state(tx),
            "demands": {d.pk: _demand_state(d) for d in demands.values()},
        }
        total = sum(s.amount_vnd for s in shares)
        if total > tx.unmatched_vnd:
            raise InvalidInput(
                _("Tổng phân bổ %(total)s đ vượt số tiền chưa khớp %(left)s đ của giao dịch.")
                % {
                    "total": f"{total:,}".replace(",", "."),
                    "left": f"{tx.unmatched_vnd:,}".replace(",", "."),
                }
            )
        rows = []
        for share in shares:
            demand = demands[share.demand_id]
            if demand.status == FeeDemand.Status.CANCELLED:
                raise Conflict(_("Phiếu %(code)s đã hủy.") % {"code": demand.payment_code})
            if share.amount_vnd > demand.outstanding_vnd:
                raise InvalidInput(
                    _("Phiếu %(code)s chỉ còn nợ %(left)s đ.")
                    % {
                        "code": demand.payment_code,
                        "left": f"{demand.outstanding_vnd:,}".replace(",", "."),
                    }
                )
            rows.append(
                Allocation(
                    transaction=tx,
                    kind=Allocation.Kind.DEMAND,
                    demand=demand,
                    amount_vnd=share.amount_vnd,
                    rule="manual",
                    note=note,
                    created_by=user,
                )
            )
        surplus = tx.unmatched_vnd - total
        if surplus_to_credit and surplus > 0:
            holder_id = demands[shares[0].demand_id].holder_id
            rows.append(
                Allocation(
                    transaction=tx,
                    kind=Allocation.Kind.CREDIT,
                    holder_id=holder_id,
                    amount_vnd=surplus,
                    rule="manual",
                    note=note,
                    created_by=user,
                )
            )
        Allocation.objects.bulk_create(rows)
        after_demands = {pk: _demand_state(refresh_demand(pk)) for pk in sorted(demands)}
        tx.unmatched_reason = ""
        # Matched by hand: automatic matching must never run on it afterwards.
        tx.reconciled_at = tx.reconciled_at or timezone.now()
        refresh_transaction(tx)
        remember_counter_account(tx, demands[shares[0].demand_id].holder_id)
        AuditEntry.objects.create(
            market_id=tx.connection.market_id,
            user=user,
            action="match",
            transaction=tx,
            note=note,
            before=before,
            after={"transaction": _tx_state(tx), "demands": after_demands},
        )
        return tx


def unmatch(*, allocation_id: int, user: Any, note: str) -> Allocation:
    """Reverse one allocation with an opposite row; no other allocation changes."""
    note = _require_note(note)
    with transaction.atomic():
        original = Allocation.objects.get(pk=allocation_id)
        if original.transaction_id is None:
            raise Conflict(_("Dùng thao tác hủy xóa nợ cho dòng xóa nợ."))
        tx = _lock_tx(original.transaction_id)
        original = Allocation.objects.select_for_update().get(pk=allocation_id)
        if original.amount_vnd < 0 or original.reverses_id is not None:
            raise Conflict(_("Dòng này là dòng đảo, không thể đảo lại."))
        if Allocation.objects.filter(reverses=original).exists():
            raise Conflict(_("Phân bổ này đã được hủy trước đó."))
        if original.kind == Allocation.Kind.REFUND:
            raise Conflict(_("Tiền đã hoàn trả không thể hủy khớp."))
        demands = (
            _lock_demands([original.demand_id], tx.connection.market_id)
            if original.demand_id
            else {}
        )
        if original.kind == Allocation.Kind.CREDIT:
            left = _credit_left(tx.pk, original.holder_id)
            if left < original.amount_vnd:
                raise Conflict(
                    _("Tiền thừa này đã được dùng hoặc hoàn trả một phần; không thể hủy toàn bộ.")
                )
        before = {
            "transaction": _tx_state(tx),
            "demands": {d.pk: _demand_state(d) for d in demands.values()},
        }
        reversal = Allocation.objects.create(
            transaction=tx,
            kind=original.kind,
            demand_id=original.demand_id,
            holder_id=original.holder_id,
            amount_vnd=-original.amount_vnd,
            rule="unmatch",
            note=note,
            reverses=original,
            created_by=user,
        )
        after_demands = {pk: _demand_state(refresh_demand(pk)) for pk in demands}
        refresh_transaction(tx)
        AuditEntry.objects.create(
            market_id=tx.connection.market_id,
            user=user,
            action="unmatch",
            transaction=tx,
            demand_id=original.demand_id,
            note=note,
            before=before,
            after={"transaction": _tx_state(tx), "demands": after_demands},
        )
        return reversal


def write_off(*, demand_id: int, amount_vnd: int, user: Any, note: str) -> FeeDemand:
    """Settle a small remaining difference (e.g. a bank fee deducted from a transfer)."""
    note = _require_note(note)
    with transaction.atomic():
        demand = FeeDemand.objects.select_for_update().get(pk=demand_id)
        if not 0 < amount_vnd <= min(demand.outstanding_vnd, MAX_WRITEOFF_VND):
            raise InvalidInput(
                _(
                    "Chỉ xóa nợ được số tiền từ 1 đ đến %(max)s đ và không quá số còn nợ "
                    "(%(left)s đ)."
                )
                % {
                    "max": f"{MAX_WRITEOFF_VND:,}".replace(",", "."),
                    "left": f"{demand.outstanding_vnd:,}".replace(",", "."),
                }
            )
        before = _demand_state(demand)
        Allocation.objects.create(
            kind=Allocation.Kind.WRITEOFF,
            demand=demand,
            amount_vnd=amount_vnd,
            rule="writeoff",
            note=note,
            created_by=user,
        )
        demand = refresh_demand(demand.pk)
        AuditEntry.objects.create(
            market_id=demand.market_id,
            user=user,
            action="writeoff",
            demand=demand,
            note=note,
            before={"demand": before},
            after={"demand": _demand_state(demand)},
        )
        return demand


def _credit_left(transaction_id: int, holder_id: int) -> int:
    return (
        Allocation.objects.filter(
            transaction_id=transaction_id, holder_id=holder_id, kind=Allocation.Kind.CREDIT
        ).aggregate(s=Sum("amount_vnd"))["s"]
        or 0
    )


def holder_credit_vnd(holder_id: int) -> int:
    return (
        Allocation.objects.filter(holder_id=holder_id, kind=Allocation.Kind.CREDIT).aggregate(
            s=Sum("amount_vnd")
        )["s"]
        or 0
    )


def _credit_sources(holder_id: int) -> list[tuple[int, int]]:
    """(transaction id, credit left) of a holder, oldest first."""
    rows = (
        Allocation.objects.filter(holder_id=holder_id, kind=Allocation.Kind.CREDIT)
        .values("transaction_id")
        .annotate(left=Sum("amount_vnd"))
        .filter(left__gt=0)
        .order_by("transaction_id")
    )
    return [(r["transaction_id"], r["left"]) for r in rows]


def _lock_credit(holder_id: int) -> tuple[dict[int, BankTransaction], list[tuple[int, int]]]:
    """Lock a holder's credit: the holder row first (two refunds, or a refund and a new
    bill's credit use, for one holder run one after the other), then the transactions
    that carry credit; the credit left is read only under those locks."""
    StallHolder.objects.select_for_update().filter(pk=holder_id).first()
    txs = {
        t.pk: t
        for t in BankTransaction.objects.select_for_update(of=("self",))
        .filter(pk__in=[s for s, _ in _credit_sources(holder_id)])
        .order_by("pk")
    }
    # A credit that arrived between the two reads is on an unlocked row: it is used or
    # refunded next time, never touched without its lock.
    return txs, [(tx_id, left) for tx_id, left in _credit_sources(holder_id) if tx_id in txs]


def refund_credit(
    *, holder: StallHolder, amount_vnd: int, reference: str, user: Any, note: str
) -> int:
    """Record that the board paid a holder's credit back (bank reference required)."""
    note = _require_note(note)
    if not reference.strip():
        raise InvalidInput(
            _("Cần mã tham chiếu của lệnh chuyển hoàn tiền."),
            extra={"fields": {"reference": ["required"]}},
        )
    with transaction.atomic():
        txs, sources = _lock_credit(holder.pk)
        available = sum(left for _, left in sources)
        if not 0 < amount_vnd <= available:
            raise InvalidInput(
                _("Số tiền hoàn phải từ 1 đ đến số tiền thừa hiện có (%(left)s đ).")
                % {"left": f"{available:,}".replace(",", ".")}
            )
        remaining = amount_vnd
        text = f"{note} (hoàn trả, tham chiếu {reference.strip()})"
        for tx_id, left in sources:
            take = min(left, remaining)
            if take <= 0:
                break
            tx = txs[tx_id]
            Allocation.objects.bulk_create(
                [
                    Allocation(
                        transaction=tx,
                        kind=Allocation.Kind.CREDIT,
                        holder=holder,
                        amount_vnd=-take,
                        rule="refund",
                        note=text,
                        created_by=user,
                    ),
                    Allocation(
                        transaction=tx,
                        kind=Allocation.Kind.REFUND,
                        holder=holder,
                        amount_vnd=take,
                        rule="refund",
                        note=text,
                        created_by=user,
                    ),
                ]
            )
            refresh_transaction(tx)
            remaining -= take
        AuditEntry.objects.create(
            market_id=holder.market_id,
            user=user,
            action="refund",
            note=text,
            before={"credit_vnd": available},
            after={"credit_vnd": available - amount_vnd},
        )
        return amount_vnd


def apply_credits(*, demand_ids: Sequence[int]) -> int:
    """Use holders' credits on the given (new) demands, oldest credit first, oldest
    demand first. Returns the đồng applied. Called after a billing run commits."""
    applied = 0
    holder_ids = set(
        FeeDemand.objects.filter(pk__in=demand_ids).values_list("holder_id", flat=True)
    )
    with_credit = (
        Allocation.objects.filter(holder_id__in=holder_ids, kind=Allocation.Kind.CREDIT)
        .values("holder_id")
        .annotate(left=Sum("amount_vnd"))
        .filter(left__gt=0)
        .values_list("holder_id", flat=True)
    )
    for holder_id in sorted(with_credit):
        with transaction.atomic():
            txs, sources = _lock_credit(holder_id)
            demands = list(
                FeeDemand.objects.select_for_update()
                .filter(
                    pk__in=demand_ids,
                    holder_id=holder_id,
                    status__in=[FeeDemand.Status.OPEN, FeeDemand.Status.PARTIAL],
                )
                .order_by("period", "pk")
            )
            touched_tx: set[int] = set()
            for demand in demands:
                need = demand.outstanding_vnd
                for index, (tx_id, left) in enumerate(sources):
                    take = min(left, need)
                    if take <= 0:
                        continue
                    tx = txs[tx_id]
                    Allocation.objects.bulk_create(
                        [
                            Allocation(
                                transaction=tx,
                                kind=Allocation.Kind.CREDIT,
                                holder_id=holder_id,
                                amount_vnd=-take,
                                rule="credit_applied",
                                note=f"dùng tiền thừa cho phiếu {demand.payment_code}",
                            ),
                            Allocation(
                                transaction=tx,
                                kind=Allocation.Kind.DEMAND,
                                demand=demand,
                                amount_vnd=take,
                                rule="credit_applied",
                                note="trừ tiền thừa kỳ trước",
                            ),
                        ]
                    )
                    sources[index] = (tx_id, left - take)
                    need -= take
                    applied += take
                    touched_tx.add(tx_id)
                    if need == 0:
                        break
                refresh_demand(demand.pk)
            for tx_id in touched_tx:
                refresh_transaction(txs[tx_id])
    return applied


def suggestions(tx: BankTransaction, *, limit: int = 5) -> list[dict[str, Any]]:
    """Ranked candidates for an unmatched transfer; never applied automatically.
    Score: near-miss code (+3), a counter-account known for the holder (+2), same amount
    as the demand's outstanding (+2), amount within 5 % (+1)."""
    from market40.services import code_scheme
    from payments.models import KnownCounterAccount

    market_id = tx.connection.market_id
    open_demands = FeeDemand.objects.filter(
        market_id=market_id, status__in=[FeeDemand.Status.OPEN, FeeDemand.Status.PARTIAL]
    ).select_related("stall", "holder")
    near = set()
    for text in (tx.provider_code, tx.content, tx.description):
        near.update(code_scheme().find(text or "").near_misses)
    scores: dict[int, tuple[int, list[str], FeeDemand]] = {}

    def add(demand: FeeDemand, points: int, why: str) -> None:
        score, reasons, _d = scores.get(demand.pk, (0, [], demand))
        scores[demand.pk] = (score + points, [*reasons, why], demand)

    if near:
        close = [candidate for code in near for candidate in _close_codes(code)]
        for demand in open_demands.filter(payment_code__in=close):
            add(demand, 3, _("mã gần giống"))
    if tx.counter_account:
        holders = KnownCounterAccount.objects.filter(account=tx.counter_account).values_list(
            "holder_id", flat=True
        )
        for demand in open_demands.filter(holder_id__in=list(holders)):
            add(demand, 2, _("tài khoản người chuyển đã biết"))
    left = tx.unmatched_vnd
    for demand in open_demands.filter(
        total_vnd__gte=left * 95 // 100, total_vnd__lte=left * 105 // 100 + 1
    )[:200]:
        if demand.outstanding_vnd == left:
            add(demand, 2, _("đúng số tiền còn nợ"))
        elif abs(demand.outstanding_vnd - left) * 20 <= max(left, 1):
            add(demand, 1, _("số tiền gần bằng"))
    ranked = sorted(scores.values(), key=lambda item: (-item[0], item[2].period, item[2].pk))
    return [
        {
            "demand_id": d.pk,
            "payment_code": d.payment_code,
            "stall": d.stall.code,
            "holder": d.holder.full_name,
            "outstanding_vnd": d.outstanding_vnd,
            "score": score,
            "reasons": reasons,
        }
        for score, reasons, d in ranked[:limit]
    ]


def _close_codes(code: str) -> list[str]:
    """Valid codes one substitution or adjacent transposition away from a near-miss."""
    from market40.services import code_scheme

    scheme = code_scheme()
    prefix_len = len(code) - len(code.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    prefix, digits = code[:prefix_len], code[prefix_len:]
    out = []
    for i in range(len(digits)):
        for d in "0123456789":
            if d != digits[i]:
                candidate = prefix + digits[:i] + d + digits[i + 1 :]
                if scheme.parse(candidate):
                    out.append(candidate)
        if i + 1 < len(digits) and digits[i] != digits[i + 1]:
            swapped = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
            if scheme.parse(prefix + swapped):
                out.append(prefix + swapped)
    return out
