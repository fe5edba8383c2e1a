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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from market40 import signals
from market40.bulk import update_rows
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


def _codes_of(tx: BankTransaction) -> list:
    """The codes of the first text that has any (rule 1)."""
    scheme = code_scheme()
    for text in _texts(tx):
        codes = scheme.find(text or "").codes
        if codes:
            return list(codes)
    return []


@dataclass
class _Lookup:
    """Demands and stalls named by a batch of transfers, read in three queries."""

    demands: dict[str, FeeDemand]
    stalls: dict[str, Stall]
    open_by_stall: dict[int, list[FeeDemand]]

    @classmethod
    def load(cls, codes: Iterable) -> _Lookup:
        codes = list(codes)
        demand_codes = {c.code for c in codes if c.kind is CodeKind.DEMAND}
        stall_codes = {c.code for c in codes if c.kind is CodeKind.STALL}
        demands = {
            d.payment_code: d for d in FeeDemand.objects.filter(payment_code__in=demand_codes)
        }
        stalls = {s.payment_code: s for s in Stall.objects.filter(payment_code__in=stall_codes)}
        open_by_stall: dict[int, list[FeeDemand]] = {}
        for demand in FeeDemand.objects.filter(
            stall_id__in=[s.pk for s in stalls.values()], status__in=OPEN_STATUSES
        ).order_by("period", "id"):
            open_by_stall.setdefault(demand.stall_id, []).append(demand)
        return cls(demands, stalls, open_by_stall)


def _targets(tx: BankTransaction, codes: list, lookup: _Lookup) -> tuple[list[FeeDemand], str]:
    """Demands to pay, in order, or an empty list and why (rules 2 and 4)."""
    if not codes:
        return [], "không tìm thấy mã thanh toán hợp lệ"
    market_id = tx.connection.market_id
    targets: list[FeeDemand] = []
    problems: list[str] = []
    for found in codes:
        if found.kind is CodeKind.DEMAND:
            demand = lookup.demands.get(found.code)
            if demand is None:
                problems.append(f"mã {found.code} không thuộc phiếu nào")
            elif demand.market_id != market_id:
                problems.append(f"mã {found.code} thuộc chợ khác")
            elif demand.status == FeeDemand.Status.CANCELLED:
                problems.append(f"phiếu {found.code} đã hủy")
            elif demand not in targets:
                targets.append(demand)
        else:
            stall = lookup.stalls.get(found.code)
            if stall is None:
                problems.append(f"mã sạp {found.code} không tồn tại")
            elif stall.market_id != market_id:
                problems.append(f"mã sạp {found.code} thuộc chợ khác")
            else:
                before = len(targets)
                for demand in lookup.open_by_stall.get(stall.pk, []):
                    if demand not in targets:
                        targets.append(demand)
                if len(targets) == before:
                    problems.append(f"sạp {stall.code} không còn phiếu nào chưa trả")
    if problems and targets:
        # A valid code next to a wrong one: the accountant decides, no guess.
        return [], "nhiều mã, có mã không hợp lệ: " + "; ".join(problems)
    if problems:
        return [], "; ".join(problems)
    return targets, ""


def find_targets(tx: BankTransaction) -> tuple[list[FeeDemand], str]:
    codes = _codes_of(tx)
    return _targets(tx, codes, _Lookup.load(codes))


def _settle(demand: FeeDemand, paid: int) -> bool:
    """Set a demand's cached paid amount, status and paid time from ``paid``; True when
    it has just become fully paid (the invoicing app is told after commit)."""
    was_paid = demand.status in (FeeDemand.Status.PAID, FeeDemand.Status.OVERPAID)
    status = FeeDemand.status_for(demand.total_vnd, paid)
    if demand.status == FeeDemand.Status.CANCELLED:
        status = FeeDemand.Status.CANCELLED
    now_paid = status in (FeeDemand.Status.PAID, FeeDemand.Status.OVERPAID)
    if now_paid and not was_paid:
        demand.paid_at = timezone.now()
    elif not now_paid:
        demand.paid_at = None
    demand.paid_vnd, demand.status = paid, status
    return now_paid and not was_paid


def _announce_paid(demand_ids: list[int]) -> None:
    """Tell the invoicing app, once per committed batch, which demands became paid."""
    if demand_ids:
        transaction.on_commit(
            lambda: signals.demand_fully_paid.send(sender=FeeDemand, demand_ids=demand_ids)
        )


def _paid_sums(demand_ids: Iterable[int]) -> dict[int, int]:
    # Write-offs settle a demand too (a bank fee, a small difference), so they count.
    return dict(
        Allocation.objects.filter(
            demand_id__in=list(demand_ids),
            kind__in=[Allocation.Kind.DEMAND, Allocation.Kind.WRITEOFF],
        )
        .values_list("demand_id")
        .annotate(s=Sum("amount_vnd"))
    )


def refresh_demand(demand_id: int) -> FeeDemand:
    """Recompute a (locked) demand's paid amount and status from its allocation rows."""
    demand = FeeDemand.objects.get(pk=demand_id)
    if _settle(demand, _paid_sums([demand_id]).get(demand_id, 0)):
        _announce_paid([demand_id])
    FeeDemand.objects.filter(pk=demand_id).update(
        paid_vnd=demand.paid_vnd, status=demand.status, paid_at=demand.paid_at
    )
    return demand


def _apply_sums(tx: BankTransaction, sums: dict[str, int]) -> None:
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


TX_CACHE_FIELDS = ["allocated_vnd", "credit_vnd", "status", "reconciled_at", "unmatched_reason"]


def refresh_transaction(tx: BankTransaction) -> None:
    sums = dict(
        Allocation.objects.filter(transaction=tx).values_list("kind").annotate(s=Sum("amount_vnd"))
    )
    _apply_sums(tx, sums)
    BankTransaction.objects.filter(pk=tx.pk).update(
        **{name: getattr(tx, name) for name in TX_CACHE_FIELDS}
    )


def reconcile(transaction_id: int) -> Outcome:
    """Match one transaction automatically; a second call changes nothing."""
    return reconcile_many([transaction_id])[0]


def reconcile_many(transaction_ids: Sequence[int], *, chunk_size: int = 1000) -> list[Outcome]:
    """Match many transactions (a webhook batch, a statement import): the same rules,
    with a constant number of queries per chunk, each chunk one database transaction."""
    ids = list(transaction_ids)
    outcomes: dict[int, Outcome] = {}
    for start in range(0, len(ids), chunk_size):
        outcomes.update(_reconcile_chunk(ids[start : start + chunk_size]))
    return [outcomes[i] for i in ids]


def _outcome(tx: BankTransaction) -> Outcome:
    return Outcome(tx.pk, tx.status, tx.allocated_vnd, tx.credit_vnd, tx.unmatched_reason)


def _reconcile_chunk(ids: list[int]) -> dict[int, Outcome]:
    with transaction.atomic():
        txs = list(
            # of=self: lock the transaction rows only, not their connection, so transfers
            # of one connection are reconciled side by side (demands are locked below).
            BankTransaction.objects.select_for_update(of=("self",))
            .select_related("connection")
            .filter(pk__in=ids)
            .order_by("pk")
        )
        done = {tx.pk: _outcome(tx) for tx in txs if tx.reconciled_at is not None}
        fresh = [tx for tx in txs if tx.reconciled_at is None]
        if not fresh:
            return done
        now = timezone.now()
        codes: dict[int, list] = {}
        for tx in fresh:
            tx.reconciled_at = now
            if tx.direction == BankTransaction.Direction.OUT or tx.is_test:
                # Outgoing money and providers' test calls are kept, never settle demands.
                tx.status = BankTransaction.Status.IGNORED
                tx.unmatched_reason = "tiền ra" if tx.direction == "out" else "lệnh thử"
            else:
                codes[tx.pk] = _codes_of(tx)
        lookup = _Lookup.load(c for found in codes.values() for c in found)
        plans: dict[int, list[FeeDemand]] = {}
        for tx in fresh:
            if tx.pk in codes:
                targets, tx.unmatched_reason = _targets(tx, codes[tx.pk], lookup)
                if targets:
                    plans[tx.pk] = targets
        # Lock every targeted demand in id order, then allocate from what is still
        # outstanding, tracked in memory across the transfers of this chunk.
        locked = {
            d.pk: d
            for d in FeeDemand.objects.select_for_update()
            .filter(pk__in={t.pk for targets in plans.values() for t in targets})
            .order_by("pk")
        }
        rows: list[Allocation] = []
        accounts: list[tuple[int, str]] = []
        for tx in fresh:
            targets = plans.get(tx.pk)
            if not targets:
                continue
            remaining = tx.amount_vnd
            rule = "code" if len(targets) == 1 else "codes_in_order"
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
                    demand.paid_vnd += take  # in-memory until _settle below
                    remaining -= take
            holder_id = locked[targets[0].pk].holder_id
            if remaining > 0:
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
            if tx.counter_account:
                accounts.append((holder_id, tx.counter_account))
        Allocation.objects.bulk_create(rows, batch_size=2000)
        touched = sorted({r.demand_id for r in rows if r.demand_id})
        if touched:
            sums = _paid_sums(touched)
            demands = [locked[pk] for pk in touched]
            _announce_paid([d.pk for d in demands if _settle(d, sums.get(d.pk, 0))])
            update_rows(FeeDemand, ["paid_vnd", "status", "paid_at"], demands)
        tx_sums: dict[int, dict[str, int]] = {}
        for tx_id, kind, total in (
            Allocation.objects.filter(transaction_id__in=[tx.pk for tx in fresh])
            .values_list("transaction_id", "kind")
            .annotate(s=Sum("amount_vnd"))
        ):
            tx_sums.setdefault(tx_id, {})[kind] = total
        for tx in fresh:
            _apply_sums(tx, tx_sums.get(tx.pk, {}))
        update_rows(BankTransaction, TX_CACHE_FIELDS, fresh)
        _remember_accounts(accounts)
        done.update({tx.pk: _outcome(tx) for tx in fresh})
        return done


def _remember_accounts(pairs: list[tuple[int, str]]) -> None:
    from payments.models import KnownCounterAccount

    if pairs:
        KnownCounterAccount.objects.bulk_create(
            [KnownCounterAccount(holder_id=h, account=a) for h, a in dict.fromkeys(pairs)],
            ignore_conflicts=True,
        )


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
