"""The accountant's workbench over JSON: bank transactions with their allocations, and
the ledger operations (match, split, unmatch, write-off, refund). Mounted on
``market40.api.api``.

Thin: handlers parse, check scope and role, and call ``payments.ledger``; every rule and
every message is the ledger's, every error the shared envelope. Scope as everywhere: a
transaction, allocation, demand or holder of a market the caller cannot see answers 404,
worded like one that does not exist. Acting needs the accountant or manager role in the
market (or a platform admin): 403 otherwise.
"""

from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Query, Router, Status
from ninja.pagination import paginate

from market40.api_markets import Page
from market40.errors import InvalidInput, NotFound
from market40.models import FeeDemand, Market, Membership, StallHolder
from market40.services import markets_for, require_market_role
from payments import ledger
from payments.models import Allocation, BankTransaction
from payments.reports import demand_sums
from payments.schemas import (
    DemandAllocationsOut,
    MatchIn,
    RefundIn,
    RefundOut,
    TransactionDetailOut,
    TransactionFilter,
    TransactionOut,
    UnmatchIn,
    UnmatchOut,
    WriteOffIn,
    WriteOffReason,
    writeoff_note,
)

router = Router(tags=["reconciliation"])

LEDGER_ROLES = (Membership.Role.ACCOUNTANT, Membership.Role.MANAGER)


def allocation_rows() -> QuerySet[Allocation]:
    return Allocation.objects.select_related("demand", "created_by", "reversed_by").order_by("id")


def transactions() -> QuerySet[BankTransaction]:
    return BankTransaction.objects.select_related("connection__market").prefetch_related(
        Prefetch("allocations", queryset=allocation_rows())
    )


def _visible(request: HttpRequest) -> QuerySet[Market]:
    return markets_for(request.auth)


def _transaction(request: HttpRequest, pk: int) -> BankTransaction:
    tx = transactions().filter(pk=pk, connection__market__in=_visible(request)).first()
    if tx is None:
        raise NotFound(_("Không tìm thấy giao dịch #%(id)s.") % {"id": pk})
    return tx


def _demand(request: HttpRequest, pk: int) -> FeeDemand:
    demand = (
        FeeDemand.objects.select_related("market", "stall", "holder")
        .filter(pk=pk, market__in=_visible(request))
        .first()
    )
    if demand is None:
        raise NotFound(_("Không tìm thấy phiếu báo phí #%(id)s.") % {"id": pk})
    return demand


def _may_act(request: HttpRequest, market: Market) -> None:
    require_market_role(request.auth, market, *LEDGER_ROLES)


def _detail(tx: BankTransaction) -> BankTransaction:
    """Read again after an operation: fresh caches and rows (TransactionDetailOut adds
    the suggestions and the audit trail)."""
    return transactions().get(pk=tx.pk)


# --- transactions --------------------------------------------------------------------


@router.get("/transactions", response=list[TransactionOut])
@paginate(Page)
def transaction_list(
    request: HttpRequest, filters: Query[TransactionFilter], market: str | None = None
):
    """Newest first. ``market`` is a market code; the other filters combine."""
    visible = _visible(request)
    if market:
        found = visible.filter(code=market).first()
        if found is None:
            raise NotFound(_("Không tìm thấy chợ “%(code)s”.") % {"code": market})
        queryset = transactions().filter(connection__market=found)
    else:
        queryset = transactions().filter(connection__market__in=visible)
    return filters.filter(queryset).order_by("-bank_time", "-id")


@router.get("/transactions/{transaction_id}", response=TransactionDetailOut)
def transaction_detail(request: HttpRequest, transaction_id: int):
    return _detail(_transaction(request, transaction_id))


@router.post("/transactions/{transaction_id}/match", response=TransactionDetailOut)
def transaction_match(request: HttpRequest, transaction_id: int, payload: MatchIn):
    """Allocate the unmatched money to one or several demands (a split), each share at
    most the demand's outstanding amount; ``surplus_to_credit`` keeps the rest as the
    holder's credit. Audited with the required note."""
    tx = _transaction(request, transaction_id)
    _may_act(request, tx.connection.market)
    ledger.manual_match(
        transaction_id=tx.pk,
        shares=[ledger.Share(s.demand_id, s.amount_vnd) for s in payload.shares],
        user=request.auth,
        note=payload.note,
        surplus_to_credit=payload.surplus_to_credit,
    )
    return _detail(tx)


@router.post("/allocations/{allocation_id}/unmatch", response=UnmatchOut)
def allocation_unmatch(request: HttpRequest, allocation_id: int, payload: UnmatchIn):
    """Reverse one allocation with an opposite row; no other allocation changes."""
    row = (
        Allocation.objects.select_related("transaction__connection__market", "demand__market")
        .filter(pk=allocation_id)
        .first()
    )
    market = None
    if row is not None:
        market = row.transaction.connection.market if row.transaction_id else row.demand.market
    if market is None or not _visible(request).filter(pk=market.pk).exists():
        raise NotFound(_("Không tìm thấy dòng phân bổ #%(id)s.") % {"id": allocation_id})
    _may_act(request, market)
    reversal = ledger.unmatch(allocation_id=row.pk, user=request.auth, note=payload.note)
    return {
        "reversal": allocation_rows().get(pk=reversal.pk),
        "transaction": transactions().get(pk=row.transaction_id),
    }


# --- demands and holders -------------------------------------------------------------


def demand_allocations(demand: FeeDemand) -> dict:
    rows = list(allocation_rows().filter(demand=demand))
    sums = demand_sums([demand.pk])[demand.pk]
    tx_ids = {r.transaction_id for r in rows if r.transaction_id}
    return {
        "id": demand.pk,
        "payment_code": demand.payment_code,
        "market": demand.market.code,
        "stall_code": demand.stall.code,
        "holder_id": demand.holder_id,
        "holder_name": demand.holder.full_name,
        "period": f"{demand.period:%Y-%m}",
        "status": demand.status,
        "total_vnd": demand.total_vnd,
        "paid_vnd": demand.paid_vnd,
        "collected_vnd": sums["collected"],
        "written_off_vnd": sums["written_off"],
        "outstanding_vnd": demand.outstanding_vnd,
        "allocations": rows,
        "transactions": list(
            BankTransaction.objects.filter(pk__in=tx_ids).order_by("bank_time", "id")
        ),
    }


@router.get("/demands/{demand_id}/allocations", response=DemandAllocationsOut)
def demand_allocation_list(request: HttpRequest, demand_id: int):
    """The demand with every ledger row (reversals included) and its transactions."""
    return demand_allocations(_demand(request, demand_id))


@router.post("/demands/{demand_id}/write-off", response=DemandAllocationsOut)
def demand_write_off(request: HttpRequest, demand_id: int, payload: WriteOffIn):
    """Settle a small difference or a bank fee (at most ``ledger.MAX_WRITEOFF_VND`` and
    the outstanding amount); ``reason`` is written at the start of the note."""
    demand = _demand(request, demand_id)
    _may_act(request, demand.market)
    if payload.reason not in WriteOffReason.values:
        message = _("Lý do xóa nợ phải là một trong: %(all)s.") % {
            "all": ", ".join(WriteOffReason.values)
        }
        raise InvalidInput(message, extra={"fields": {"reason": [message]}})
    ledger.write_off(
        demand_id=demand.pk,
        amount_vnd=payload.amount_vnd,
        user=request.auth,
        note=writeoff_note(payload.reason, payload.note),
    )
    return demand_allocations(_demand(request, demand_id))


@router.post("/holders/{holder_id}/refunds", response={201: RefundOut})
def holder_refund(request: HttpRequest, holder_id: int, payload: RefundIn):
    """Record that the board paid (part of) a holder's credit back, with the bank
    reference of the outgoing transfer."""
    holder = (
        StallHolder.objects.select_related("market")
        .filter(pk=holder_id, market__in=_visible(request))
        .first()
    )
    if holder is None:
        raise NotFound(_("Không tìm thấy tiểu thương #%(id)s.") % {"id": holder_id})
    _may_act(request, holder.market)
    refunded = ledger.refund_credit(
        holder=holder,
        amount_vnd=payload.amount_vnd,
        reference=payload.reference,
        user=request.auth,
        note=payload.note,
    )
    return Status(
        201,
        {
            "holder_id": holder.pk,
            "refunded_vnd": refunded,
            "reference": payload.reference.strip(),
            "credit_vnd": ledger.holder_credit_vnd(holder.pk),
        },
    )
