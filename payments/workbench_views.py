"""The accountant's workbench pages: the unmatched queue, a transaction (match, split,
unmatch), a demand's ledger (write-off), a holder's statement (refund), the period view
and the daily close per bank connection.

Same manner as ``market40.views``: server-rendered, Vietnamese first, usable on a phone
without JavaScript; POST, then redirect, then GET. Scope by ``market_page`` (another
market's page or object is a 404). Reading and acting are both for the market's
accountants and managers (and platform admins): every member has one of those roles,
but ``ledger_writes`` says so explicitly. Views parse and call ``payments.ledger`` /
``payments.reports``; a ``DomainError`` is shown as a message and the form comes back
with what was typed (status 400), nothing written.
"""

from __future__ import annotations

import functools
import re
from datetime import date, datetime

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django.views.decorators.http import require_POST

from market40 import services
from market40.errors import DomainError, Forbidden, InvalidInput
from market40.models import FeeDemand, Market, Membership, StallHolder
from market40.templatetags.market40_tags import vnd
from market40.views import (
    current_period,
    local_today,
    market_page,
    next_period,
    previous_period,
    render_market,
)
from payments import ledger, reports
from payments.models import Allocation, AuditEntry, BankConnection, BankTransaction
from payments.schemas import WriteOffReason, writeoff_note

LEDGER_ROLES = (Membership.Role.ACCOUNTANT, Membership.Role.MANAGER)
QUEUE_PAGE_SIZE = 20  # each row computes its suggestions
STALL_PAGE_SIZE = 100
MATCH_ROWS = 4  # split rows on the match form (no JavaScript to add more)
ACTION_LABELS = {
    "match": _lazy("Khớp tay"),
    "unmatch": _lazy("Hủy khớp"),
    "writeoff": _lazy("Xóa nợ"),
    "refund": _lazy("Hoàn trả tiền thừa"),
}


# --- helpers -------------------------------------------------------------------------


def ledger_writes(view):
    """Acting on the ledger needs the accountant or manager role (or platform admin)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, market: Market, *args, **kwargs) -> HttpResponse:
        try:
            services.require_market_role(request.user, market, *LEDGER_ROLES)
        except Forbidden:
            raise PermissionDenied from None
        return view(request, market, *args, **kwargs)

    return wrapper


def parse_vnd(text: str, field: str = "amount") -> int:
    """ "1.200.000", "1 200 000 đ", "1200000" → 1200000 (whole đồng, not negative)."""
    cleaned = re.sub(r"[\s.,_]|đ$|d$|vnd$", "", (text or "").strip().lower())
    if not cleaned.isdigit():
        message = _("Số tiền “%(value)s” không hợp lệ: nhập số đồng, ví dụ 1.200.000.") % {
            "value": text
        }
        raise InvalidInput(message, extra={"fields": {field: [message]}})
    return int(cleaned)


def parse_day(text: str, field: str = "date") -> date:
    text = (text or "").strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    message = _("Ngày “%(value)s” không hợp lệ: cần dạng YYYY-MM-DD hoặc dd/mm/yyyy.") % {
        "value": text
    }
    raise InvalidInput(message, extra={"fields": {field: [message]}})


def _tx_queryset(market: Market) -> QuerySet[BankTransaction]:
    return BankTransaction.objects.filter(connection__market=market).select_related(
        "connection__account__bank"
    )


def _allocations(queryset: QuerySet[Allocation]) -> list[Allocation]:
    """Rows in ledger order, each knowing whether (and by which row) it was reversed
    and whether the page may offer to unmatch it."""
    rows = list(
        queryset.select_related("demand", "transaction", "created_by", "holder").order_by("id")
    )
    reversed_by = dict(
        Allocation.objects.filter(reverses__in=[r.pk for r in rows]).values_list(
            "reverses_id", "id"
        )
    )
    for row in rows:
        row.reversal_id = reversed_by.get(row.pk)
        row.can_unmatch = (
            row.transaction_id is not None
            and row.amount_vnd > 0
            and row.reverses_id is None
            and row.reversal_id is None
            and row.kind in (Allocation.Kind.DEMAND, Allocation.Kind.CREDIT)
        )
    return rows


def describe_state(state: dict) -> str:
    """An audit entry's before/after snapshot in words, for the page."""
    tx_labels = dict(BankTransaction.Status.choices)
    demand_labels = dict(FeeDemand.Status.choices)
    parts = []
    if tx := state.get("transaction"):
        parts.append(
            _("giao dịch: %(status)s, đã phân bổ %(a)s, tiền thừa %(c)s, chưa khớp %(u)s")
            % {
                "status": tx_labels.get(tx.get("status"), tx.get("status")),
                "a": vnd(tx.get("allocated_vnd")),
                "c": vnd(tx.get("credit_vnd")),
                "u": vnd(tx.get("unmatched_vnd")),
            }
        )
    demands = dict(state.get("demands") or {})
    if "demand" in state:
        demands[""] = state["demand"]
    for pk, demand in demands.items():
        parts.append(
            _("phiếu %(id)s: %(status)s, đã thu %(p)s, còn nợ %(o)s")
            % {
                "id": f"#{pk}" if pk else "",
                "status": demand_labels.get(demand.get("status"), demand.get("status")),
                "p": vnd(demand.get("paid_vnd")),
                "o": vnd(demand.get("outstanding_vnd")),
            }
        )
    if "credit_vnd" in state:
        parts.append(_("tiền thừa %(c)s") % {"c": vnd(state["credit_vnd"])})
    return "; ".join(parts) or "—"


def _audit(queryset: QuerySet[AuditEntry]) -> list[AuditEntry]:
    entries = list(queryset.select_related("user").order_by("-created_at", "-id"))
    for entry in entries:
        entry.action_label = ACTION_LABELS.get(entry.action, entry.action)
        entry.before_text = describe_state(entry.before or {})
        entry.after_text = describe_state(entry.after or {})
    return entries


# --- unmatched queue -----------------------------------------------------------------


@market_page
@ledger_writes
def unmatched_queue(request: HttpRequest, market: Market) -> HttpResponse:
    """Transfers with money not yet matched, newest first, each with its reason and
    ranked suggestions — never an automatic guess."""
    connections = list(BankConnection.objects.filter(market=market).select_related("account__bank"))
    queryset = _tx_queryset(market).filter(
        status__in=[BankTransaction.Status.UNMATCHED, BankTransaction.Status.PARTLY]
    )
    filters = {k: request.GET.get(k, "").strip() for k in ("connection", "from", "to", "amount")}
    filters["q"] = request.GET.get("q", "").strip()
    try:
        if filters["connection"]:
            queryset = queryset.filter(connection_id=filters["connection"])
        if filters["from"]:
            start, _end = reports.day_bounds(parse_day(filters["from"], "from"))
            queryset = queryset.filter(bank_time__gte=start)
        if filters["to"]:
            _start, end = reports.day_bounds(parse_day(filters["to"], "to"))
            queryset = queryset.filter(bank_time__lt=end)
        if filters["amount"]:
            queryset = queryset.filter(amount_vnd=parse_vnd(filters["amount"]))
    except DomainError as error:
        messages.error(request, error.message)
    if filters["q"]:
        text = filters["q"]
        queryset = queryset.filter(
            Q(content__icontains=text)
            | Q(description__icontains=text)
            | Q(counter_name__icontains=text)
            | Q(counter_account__icontains=text)
            | Q(bank_reference__icontains=text)
        )
    page = Paginator(queryset.order_by("-bank_time", "-id"), QUEUE_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    rows = [(tx, ledger.suggestions(tx)) for tx in page.object_list]
    return render_market(
        request,
        market,
        "payments/unmatched.html",
        {"page": page, "rows": rows, "connections": connections, "filters": filters},
    )


# --- one transaction -----------------------------------------------------------------


def _match_rows(request: HttpRequest, market: Market, tx: BankTransaction) -> list[dict]:
    """The split rows of the match form: demands proposed by the queue (``?demand=ID``)
    with the amount each can take, then blank rows."""
    rows = []
    left = tx.unmatched_vnd
    wanted = [int(v) for v in request.GET.getlist("demand") if v.isdigit()]
    for demand in FeeDemand.objects.filter(market=market, pk__in=wanted).order_by("period", "pk"):
        take = min(left, demand.outstanding_vnd)
        left -= take
        rows.append({"code": demand.payment_code, "amount": str(take) if take else ""})
    rows += [{"code": "", "amount": ""}] * (MATCH_ROWS - len(rows))
    return rows[:MATCH_ROWS]


def _posted_match(request: HttpRequest) -> dict:
    """The match form as it was posted, to show it again after a refusal."""
    return {
        "match_rows": [
            {
                "code": request.POST.get(f"code_{n}", ""),
                "amount": request.POST.get(f"amount_{n}", ""),
            }
            for n in range(1, MATCH_ROWS + 1)
        ],
        "note": request.POST.get("note", ""),
        "surplus_to_credit": request.POST.get("surplus_to_credit") == "on",
    }


def _render_transaction(
    request: HttpRequest, market: Market, tx: BankTransaction, *, status: int = 200, **extra
) -> HttpResponse:
    allocations = _allocations(Allocation.objects.filter(transaction=tx))
    context = {
        "tx": tx,
        "allocations": allocations,
        "audit": _audit(AuditEntry.objects.filter(transaction=tx)),
        "suggestions": ledger.suggestions(tx) if tx.unmatched_vnd > 0 else [],
        "match_rows": _match_rows(request, market, tx),
        "note": "",
        "surplus_to_credit": False,
        "unmatch_id": None,
        **extra,
    }
    return render_market(request, market, "payments/transaction.html", context, status=status)


@market_page
@ledger_writes
def transaction_detail(request: HttpRequest, market: Market, transaction_id: int) -> HttpResponse:
    tx = get_object_or_404(_tx_queryset(market), pk=transaction_id)
    return _render_transaction(request, market, tx)


def _shares(request: HttpRequest, market: Market) -> list[ledger.Share]:
    """Rows with a payment code (or ``#id``) and an amount; blank rows are skipped."""
    shares = []
    for n in range(1, MATCH_ROWS + 1):
        code = request.POST.get(f"code_{n}", "").strip()
        amount = request.POST.get(f"amount_{n}", "").strip()
        if not code and not amount:
            continue
        if re.fullmatch(r"#\d+", code):
            lookup = Q(pk=int(code[1:]))
        else:
            lookup = Q(payment_code=code.upper())
        demand = FeeDemand.objects.filter(lookup, market=market).first() if code else None
        if demand is None:
            message = _("Dòng %(n)s: không có phiếu báo phí “%(code)s” trong chợ này.") % {
                "n": n,
                "code": code,
            }
            raise InvalidInput(message, extra={"fields": {f"code_{n}": [message]}})
        shares.append(ledger.Share(demand.pk, parse_vnd(amount, f"amount_{n}")))
    return shares


@market_page
@require_POST
@ledger_writes
def transaction_match(request: HttpRequest, market: Market, transaction_id: int) -> HttpResponse:
    tx = get_object_or_404(_tx_queryset(market), pk=transaction_id)
    try:
        shares = _shares(request, market)
        ledger.manual_match(
            transaction_id=tx.pk,
            shares=shares,
            user=request.user,
            note=request.POST.get("note", ""),
            surplus_to_credit=request.POST.get("surplus_to_credit") == "on",
        )
    except DomainError as error:
        messages.error(request, error.message)
        return _render_transaction(request, market, tx, status=400, **_posted_match(request))
    messages.success(
        request,
        _("Đã khớp %(total)s vào %(n)s phiếu báo phí.")
        % {"total": vnd(sum(s.amount_vnd for s in shares)), "n": len(shares)},
    )
    return redirect("workbench-transaction", market.code, tx.pk)


@market_page
@require_POST
@ledger_writes
def allocation_unmatch(request: HttpRequest, market: Market, allocation_id: int) -> HttpResponse:
    row = get_object_or_404(Allocation, pk=allocation_id, transaction__connection__market=market)
    try:
        ledger.unmatch(allocation_id=row.pk, user=request.user, note=request.POST.get("note", ""))
    except DomainError as error:
        messages.error(request, error.message)
        tx = _tx_queryset(market).get(pk=row.transaction_id)
        note = request.POST.get("note", "")
        return _render_transaction(
            request, market, tx, status=400, unmatch_id=row.pk, unmatch_note=note
        )
    messages.success(
        request,
        _("Đã hủy khớp %(amount)s (dòng #%(id)s).") % {"amount": vnd(row.amount_vnd), "id": row.pk},
    )
    return redirect("workbench-transaction", market.code, row.transaction_id)


# --- a demand's ledger ---------------------------------------------------------------


def _render_demand(
    request: HttpRequest, market: Market, demand: FeeDemand, *, status: int = 200
) -> HttpResponse:
    allocations = _allocations(Allocation.objects.filter(demand=demand))
    sums = reports.demand_sums([demand.pk])[demand.pk]
    tx_ids = {a.transaction_id for a in allocations if a.transaction_id}
    posted = request.method == "POST"
    return render_market(
        request,
        market,
        "payments/demand_ledger.html",
        {
            "demand": demand,
            "sums": sums,
            "allocations": allocations,
            "transactions": _tx_queryset(market).filter(pk__in=tx_ids).order_by("bank_time"),
            "audit": _audit(
                AuditEntry.objects.filter(Q(demand=demand) | Q(transaction_id__in=tx_ids))
            ),
            "reasons": WriteOffReason.choices,
            "max_writeoff": ledger.MAX_WRITEOFF_VND,
            "form": {
                "amount": request.POST.get("amount", "") if posted else "",
                "reason": request.POST.get("reason", "") if posted else "",
                "note": request.POST.get("note", "") if posted else "",
            },
        },
        status=status,
    )


def _demand(market: Market, demand_id: int) -> FeeDemand:
    return get_object_or_404(
        FeeDemand.objects.select_related("stall", "stall__zone", "holder"),
        pk=demand_id,
        market=market,
    )


@market_page
@ledger_writes
def demand_ledger(request: HttpRequest, market: Market, demand_id: int) -> HttpResponse:
    return _render_demand(request, market, _demand(market, demand_id))


@market_page
@require_POST
@ledger_writes
def demand_write_off(request: HttpRequest, market: Market, demand_id: int) -> HttpResponse:
    demand = _demand(market, demand_id)
    reason = request.POST.get("reason", "")
    try:
        if reason not in WriteOffReason.values:
            raise InvalidInput(_("Chọn lý do xóa nợ."), extra={"fields": {"reason": ["required"]}})
        amount = parse_vnd(request.POST.get("amount", ""))
        ledger.write_off(
            demand_id=demand.pk,
            amount_vnd=amount,
            user=request.user,
            note=writeoff_note(reason, request.POST.get("note", "")),
        )
    except DomainError as error:
        messages.error(request, error.message)
        return _render_demand(request, market, demand, status=400)
    messages.success(
        request,
        _("Đã xóa nợ %(amount)s của phiếu %(code)s.")
        % {"amount": vnd(amount), "code": demand.payment_code},
    )
    return redirect("workbench-demand-ledger", market.code, demand.pk)


# --- holder statement ----------------------------------------------------------------


def _render_statement(
    request: HttpRequest, market: Market, holder: StallHolder, *, status: int = 200
) -> HttpResponse:
    posted = request.method == "POST"
    return render_market(
        request,
        market,
        "payments/holder_statement.html",
        {
            "holder": holder,
            "statement": reports.holder_statement(holder=holder),
            "today": local_today(),
            "form": {
                key: request.POST.get(key, "") if posted else ""
                for key in ("amount", "reference", "note")
            },
        },
        status=status,
    )


@market_page
@ledger_writes
def holder_statement(request: HttpRequest, market: Market, holder_id: int) -> HttpResponse:
    holder = get_object_or_404(StallHolder, pk=holder_id, market=market)
    return _render_statement(request, market, holder)


@market_page
@require_POST
@ledger_writes
def holder_refund(request: HttpRequest, market: Market, holder_id: int) -> HttpResponse:
    holder = get_object_or_404(StallHolder, pk=holder_id, market=market)
    try:
        amount = parse_vnd(request.POST.get("amount", ""))
        ledger.refund_credit(
            holder=holder,
            amount_vnd=amount,
            reference=request.POST.get("reference", ""),
            user=request.user,
            note=request.POST.get("note", ""),
        )
    except DomainError as error:
        messages.error(request, error.message)
        return _render_statement(request, market, holder, status=400)
    messages.success(
        request,
        _("Đã ghi nhận hoàn trả %(amount)s tiền thừa cho %(name)s.")
        % {"amount": vnd(amount), "name": holder.full_name},
    )
    return redirect("workbench-holder-statement", market.code, holder.pk)


# --- period view ---------------------------------------------------------------------


@market_page
@ledger_writes
def period_view(request: HttpRequest, market: Market) -> HttpResponse:
    period = current_period()
    if raw := request.GET.get("period"):
        try:
            period = services.parse_period(raw)
        except DomainError as error:
            messages.error(request, error.message)
    report = reports.period_report(market=market, period=period)
    zone = request.GET.get("zone", "")
    stalls = [s for s in report.stalls if not zone or s.zone_code == zone]
    start = period
    end = next_period(period)
    return render_market(
        request,
        market,
        "payments/period.html",
        {
            "report": report,
            "period": period,
            "previous_period": previous_period(period),
            "next_period": end,
            "zone": zone,
            "stall_page": Paginator(stalls, STALL_PAGE_SIZE).get_page(request.GET.get("page")),
            "queue_from": f"{start:%Y-%m-%d}",
            "queue_to": f"{date.fromordinal(end.toordinal() - 1):%Y-%m-%d}",
        },
    )


# --- daily close ---------------------------------------------------------------------


@market_page
@ledger_writes
def daily_close(request: HttpRequest, market: Market) -> HttpResponse:
    """``?date=YYYY-MM-DD``; the statement balances the accountant typed come back in
    ``closing-<connection id>`` / ``opening-<connection id>`` (GET: nothing is saved)."""
    day = local_today()
    if raw := request.GET.get("date"):
        try:
            day = parse_day(raw)
        except DomainError as error:
            messages.error(request, error.message)
    typed: dict[str, dict[str, int]] = {"closing": {}, "opening": {}}
    for key, value in request.GET.items():
        kind, _sep, connection_id = key.partition("-")
        if kind in typed and connection_id and value.strip():
            try:
                typed[kind][connection_id] = parse_vnd(value, key)
            except DomainError as error:
                messages.error(request, error.message)
    lines = reports.daily_close(
        market=market,
        day=day,
        closing_balances=typed["closing"],
        opening_balances=typed["opening"],
    )
    for line in lines:
        line.typed_closing = request.GET.get(f"closing-{line.connection.pk}", "")
        line.typed_opening = request.GET.get(f"opening-{line.connection.pk}", "")
    return render_market(
        request,
        market,
        "payments/daily_close.html",
        {
            "day": day,
            "previous_day": date.fromordinal(day.toordinal() - 1),
            "next_day": date.fromordinal(day.toordinal() + 1),
            "lines": lines,
            "queue_url": reverse("workbench-unmatched", args=[market.code]),
        },
    )
