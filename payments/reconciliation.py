"""Automatic matching of incoming transfers to fee demands.

Rules, in order (each documented where it is applied):

1. **Find codes.** Payment codes are searched in the transfer content, then the
   provider's extracted code (which holds only the first code), then the bank's full
   description, with
   ``market40.paymentcode.find_codes`` (case, diacritics, inserted separators, prefixes
   and suffixes, glued words; check digit validated so a near-miss never matches; never
   a bare number).
2. **Targets.** Demand codes → those demands, in the order written; a stall's static code
   → that stall's open demands, oldest first.
3. **Amounts.** Each target takes up to its outstanding amount, in order; what is left
   after every target is paid becomes the holder's **credit**.
4. **Unmatched.** No valid code, a code of another market, a cancelled demand, or no
   target at all → the transaction stays unmatched (with the reason) for the accountant.

Invariant, at every moment, for every transaction: allocated + credit + unmatched =
amount. Every change runs in one database transaction that locks the bank transaction
and then the demands (in id order, so two reconciliations never deadlock), and demand
``paid_vnd`` is recomputed from the allocation rows, never incremented blindly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from market40 import signals
from market40.models import FeeDemand, Stall
from market40.paymentcode import CodeKind
from market40.services import code_scheme
from payments.models import Allocation, BankTransaction

OPEN_STATUSES = (FeeDemand.Status.OPEN, FeeDemand.Status.PARTIAL)


@dataclass(frozen=True)
class Outcome:
    transaction_id: int
    status: str
    allocated_vnd: int
    credit_vnd: int
    reason: str = ""


def _texts(tx: BankTransaction) -> Iterable[str]:
    # The payer's note first: a provider's extracted code (SePay's ``code``) holds only
    # the first code its pattern found, so it is the fallback when the note has none.
    yield tx.content
    yield tx.provider_code
    yield tx.description


def find_targets(tx: BankTransaction) -> tuple[list[FeeDemand], str]:
    """Demands to pay, in order, or an empty list and why (rules 1, 2, 4)."""
    scheme = code_scheme()
    market_id = tx.connection.market_id
    for text in _texts(tx):
        codes = scheme.find(text or "").codes
        if not codes:
            continue
        demand_codes = [c.code for c in codes if c.kind is CodeKind.DEMAND]
        stall_codes = [c.code for c in codes if c.kind is CodeKind.STALL]
        demands = {
            d.payment_code: d for d in FeeDemand.objects.filter(payment_code__in=demand_codes)
        }
        stalls = {s.payment_code: s for s in Stall.objects.filter(payment_code__in=stall_codes)}
        targets: list[FeeDemand] = []
        problems: list[str] = []
        for found in codes:
            if found.kind is CodeKind.DEMAND:
                demand = demands.get(found.code)
                if demand is None:
                    problems.append(f"mã {found.code} không thuộc phiếu nào")
                elif demand.market_id != market_id:
                    problems.append(f"mã {found.code} thuộc chợ khác")
                elif demand.status == FeeDemand.Status.CANCELLED:
                    problems.append(f"phiếu {found.code} đã hủy")
                elif demand not in targets:
                    targets.append(demand)
            else:
                stall = stalls.get(found.code)
                if stall is None:
                    problems.append(f"mã sạp {found.code} không tồn tại")
                elif stall.market_id != market_id:
                    problems.append(f"mã sạp {found.code} thuộc chợ khác")
                else:
                    for demand in FeeDemand.objects.filter(
                        stall=stall, status__in=OPEN_STATUSES
                    ).order_by("period", "id"):
                        if demand not in targets:
                            targets.append(demand)
                    if not targets:
                        problems.append(f"sạp {stall.code} không còn phiếu nào chưa trả")
        if problems and not targets:
            return [], "; ".join(problems)
        if problems:
            # A valid code next to a wrong one: the accountant decides, no guess.
            return [], "nhiều mã, có mã không hợp lệ: " + "; ".join(problems)
        return targets, ""
    return [], "không tìm thấy mã thanh toán hợp lệ"


def refresh_demand(demand_id: int) -> FeeDemand:
    """Recompute a (locked) demand's paid amount and status from its allocation rows."""
    demand = FeeDemand.objects.get(pk=demand_id)
    # Write-offs settle a demand too (a bank fee, a small difference), so they count.
    paid = (
        Allocation.objects.filter(
            demand_id=demand_id, kind__in=[Allocation.Kind.DEMAND, Allocation.Kind.WRITEOFF]
        ).aggregate(s=Sum("amount_vnd"))["s"]
        or 0
    )
    was_paid = demand.status in (FeeDemand.Status.PAID, FeeDemand.Status.OVERPAID)
    status = FeeDemand.status_for(demand.total_vnd, paid)
    if demand.status == FeeDemand.Status.CANCELLED:
        status = FeeDemand.Status.CANCELLED
    paid_at = demand.paid_at
    now_paid = status in (FeeDemand.Status.PAID, FeeDemand.Status.OVERPAID)
    if now_paid and not was_paid:
        paid_at = timezone.now()
        transaction.on_commit(
            lambda: signals.demand_fully_paid.send(sender=FeeDemand, demand_id=demand_id)
        )
    elif not now_paid:
        paid_at = None
    FeeDemand.objects.filter(pk=demand_id).update(paid_vnd=paid, status=status, paid_at=paid_at)
    demand.paid_vnd, demand.status, demand.paid_at = paid, status, paid_at
    return demand


def refresh_transaction(tx: BankTransaction) -> None:
    sums = dict(
        Allocation.objects.filter(transaction=tx).values_list("kind").annotate(s=Sum("amount_vnd"))
    )
    # Refunded surplus left the board's account: it counts as allocated money.
    tx.allocated_vnd = (sums.get(Allocation.Kind.DEMAND) or 0) + (
        sums.get(Allocation.Kind.REFUND) or 0
    )
    tx.credit_vnd = sums.get(Allocation.Kind.CREDIT, 0) or 0
    if tx.status != BankTransaction.Status.IGNORED:
        used = tx.allocated_vnd + tx.credit_vnd
        tx.status = (
            BankTransaction.Status.UNMATCHED
            if used == 0
            else BankTransaction.Status.MATCHED
            if used == tx.amount_vnd
            else BankTransaction.Status.PARTLY
        )
    BankTransaction.objects.filter(pk=tx.pk).update(
        allocated_vnd=tx.allocated_vnd,
        credit_vnd=tx.credit_vnd,
        status=tx.status,
        reconciled_at=tx.reconciled_at,
        unmatched_reason=tx.unmatched_reason,
    )


def reconcile(transaction_id: int) -> Outcome:
    """Match one transaction automatically; a second call changes nothing."""
    with transaction.atomic():
        tx = (
            # of=self: lock the transaction row only, not its connection, so transfers of
            # one connection are reconciled side by side (demands are locked below).
            BankTransaction.objects.select_for_update(of=("self",))
            .select_related("connection")
            .get(pk=transaction_id)
        )
        if tx.reconciled_at is not None:
            return Outcome(tx.pk, tx.status, tx.allocated_vnd, tx.credit_vnd, tx.unmatched_reason)
        tx.reconciled_at = timezone.now()
        if tx.direction == BankTransaction.Direction.OUT or tx.is_test:
            # Outgoing money and providers' test calls are kept but never settle demands.
            tx.status = BankTransaction.Status.IGNORED
            tx.unmatched_reason = "tiền ra" if tx.direction == "out" else "lệnh thử"
            refresh_transaction(tx)
            return Outcome(tx.pk, tx.status, 0, 0, tx.unmatched_reason)
        targets, reason = find_targets(tx)
        if not targets:
            tx.unmatched_reason = reason
            refresh_transaction(tx)
            return Outcome(tx.pk, tx.status, 0, 0, reason)
        # Lock the demands in id order, then re-read what is still outstanding.
        locked = {
            d.pk: d
            for d in FeeDemand.objects.select_for_update()
            .filter(pk__in=[t.pk for t in targets])
            .order_by("pk")
        }
        remaining = tx.amount_vnd
        rule = "code" if len(targets) == 1 else "codes_in_order"
        rows: list[Allocation] = []
        for target in targets:
            demand = locked[target.pk]
            if demand.status == FeeDemand.Status.CANCELLED:
                continue
            take = min(demand.outstanding_vnd, remaining)
            if take > 0:
                rows.append(
                    Allocation(
                        transaction=tx,
                        kind=Allocation.Kind.DEMAND,
                        demand=demand,
                        amount_vnd=take,
                        rule=rule,
                    )
                )
                remaining -= take
        if remaining > 0:
            holder_id = locked[targets[0].pk].holder_id
            rows.append(
                Allocation(
                    transaction=tx,
                    kind=Allocation.Kind.CREDIT,
                    holder_id=holder_id,
                    amount_vnd=remaining,
                    rule="overpayment_credit",
                    note="tiền thừa ghi có cho tiểu thương",
                )
            )
        Allocation.objects.bulk_create(rows)
        for demand_id in sorted({r.demand_id for r in rows if r.demand_id}):
            refresh_demand(demand_id)
        tx.unmatched_reason = ""
        refresh_transaction(tx)
        remember_counter_account(tx, locked[targets[0].pk].holder_id)
        return Outcome(tx.pk, tx.status, tx.allocated_vnd, tx.credit_vnd)


def remember_counter_account(tx: BankTransaction, holder_id: int) -> None:
    if not tx.counter_account:
        return
    from django.db.models import F

    from payments.models import KnownCounterAccount

    updated = KnownCounterAccount.objects.filter(
        holder_id=holder_id, account=tx.counter_account
    ).update(seen=F("seen") + 1, last_seen_at=timezone.now())
    if not updated:
        KnownCounterAccount.objects.get_or_create(holder_id=holder_id, account=tx.counter_account)
