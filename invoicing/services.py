"""Invoicing workflows: issue from paid demands (one, automatically, or a period in batches),
replace and adjust. Views, API handlers, tasks and commands parse, authorise and call these
keyword-only functions.

Every issuance goes through ``_issue``, one transaction per batch:

1. the certificate is loaded and checked *before* the transaction (slow file I/O and a
   clear Vietnamese refusal for an expired or foreign certificate: nothing stored, no number
   taken);
2. inside the transaction the year's serial row is locked (``select_for_update``; SQLite takes
   its write lock at BEGIN), existing originals are re-checked under that lock (idempotency
   under concurrency), then for each invoice: number = next number, build the XML
   (``invoicing.xml``), sign it (``invoicing.signing``), keep the exact bytes;
3. invoices and lines are inserted and the counter moves by a conditional update that must
   hit exactly one row. Any exception rolls everything back, numbers included, so ``SHDon``
   has no gap and no reuse (spec einvoice.md §5.3).

Signing happens inside the lock because the number is inside the signed data. That serialises
issuers of one serial for ~1 RSA operation each, which is the price of gap-free numbering.

A period run (``_issue_period``) pipelines two batches: while it stores batch k, a signer
thread numbers, builds and signs batch k + 1 with the numbers that will be next if batch k is
stored as signed (``_sign_batch``, which reads no database). ``_issue`` stores such a batch
only if, under the lock, its numbers are still the next ones and none of its demands got an
invoice meanwhile; otherwise it signs the batch again there, as in step 2. The counter still
moves only in the storing transaction, so the guarantees above hold; the database's work on
one batch overlaps the signing of the next.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from itertools import islice
from typing import Any

from django.db import IntegrityError, connection, models, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.translation import gettext as _

from invoicing import xml as invoice_xml
from invoicing.certificates import CertificateError, signing_key_for_market
from invoicing.models import (
    MAX_INVOICE_NUMBER,
    Invoice,
    InvoiceForm,
    InvoiceLine,
    InvoiceSerial,
    InvoiceSettings,
)
from invoicing.rounding import (
    RATE_CODES,
    GrossLine,
    SalesTotals,
    VatBreakdown,
    sales_invoice_totals,
    vat_inclusive_breakdown,
)
from invoicing.signing import SigningError, SigningKey, sign_invoice
from market40.errors import Conflict, InvalidInput, NotFound
from market40.models import DemandLine, FeeDemand, Market, Membership
from market40.services import markets_for, require_market_role

logger = logging.getLogger(__name__)

RATE_CODES_SET = frozenset(RATE_CODES)
PAYMENT_METHOD = "Chuyển khoản"  # HTTToan (§4.1): stall holders pay by bank transfer
PAID_STATUSES = (FeeDemand.Status.PAID, FeeDemand.Status.OVERPAID)
ISSUER_ROLES = (Membership.Role.MANAGER, Membership.Role.ACCOUNTANT)
# Invoices per transaction in a period run: ~0.3 s of lock per batch (~0.6 ms an invoice); the
# fixed cost of a batch (its queries, round trips and commit) spread over more invoices.
BATCH_SIZE = 500
_SIX_PLACES = Decimal("0.000001")

Progress = Callable[[int, int], None]


class InvoiceSettingsMissing(Conflict):
    code = "invoice_settings_missing"


# --- scope ---------------------------------------------------------------------------


def require_issuer(user: Any, market: Market) -> None:
    """Issuing, replacing and adjusting: the market's accountant or manager (or an admin)."""
    require_market_role(user, market, *ISSUER_ROLES)


def invoices_visible_to(user: Any) -> QuerySet[Invoice]:
    return Invoice.objects.filter(market__in=markets_for(user))


# --- settings ------------------------------------------------------------------------


def invoice_settings_for(market: Market) -> InvoiceSettings:
    try:
        settings = InvoiceSettings.objects.select_related("market").get(market=market)
    except InvoiceSettings.DoesNotExist:
        raise InvoiceSettingsMissing(
            _(
                "Chợ %(market)s chưa có cấu hình hóa đơn điện tử (loại hóa đơn, ký hiệu, chứng "
                "thư số). Quản trị viên cấu hình trong trang quản trị, hoặc chạy "
                "manage.py make_test_certificate %(market)s cho môi trường thử."
            )
            % {"market": market.code}
        ) from None
    settings.market = market
    return settings


# --- drafts: everything but the number -------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AdjustmentLine:
    """An amount added by an adjustment invoice (VAT-inclusive on a VAT invoice, like the
    tariffs). The format has no negative amounts (§4.6): a decrease is made by a replacement."""

    description: str
    amount_vnd: int
    vat_rate: str = "10%"
    unit: str = "lần"


@dataclass(frozen=True, kw_only=True)
class BuyerCorrection:
    """Buyer fields to write instead of the stall holder's current data (replacements)."""

    name: str | None = None
    tax_code: str | None = None
    citizen_id: str | None = None
    address: str | None = None


@dataclass(frozen=True, slots=True)
class DemandLineFacts:
    description: str
    quantity: Decimal
    unit: str
    amount_vnd: int
    vat_rate: str


@dataclass(frozen=True, slots=True)
class DemandFacts:
    """What an invoice needs from a fee demand, its stall holder and its lines, read with two
    queries for a whole batch (no model instances: a period run reads thousands)."""

    pk: int
    market_id: int
    market_code: str
    period: date
    payment_code: str
    total_vnd: int
    status: str
    stall_code: str
    holder_code: str
    holder_name: str
    holder_tax_code: str
    holder_citizen_id: str
    holder_address: str
    lines: tuple[DemandLineFacts, ...]


_DEMAND_COLUMNS = (
    "pk",
    "market_id",
    "market__code",
    "period",
    "payment_code",
    "total_vnd",
    "status",
    "stall__code",
    "holder__code",
    "holder__full_name",
    "holder__tax_code",
    "holder__citizen_id",
    "holder__address",
)


def demand_facts(ids: Iterable[int], shared: SharedValues | None = None) -> list[DemandFacts]:
    """The demands ``ids`` in invoicing order (stall code, id), with their lines (equal lines
    made once when ``shared``)."""
    ids = list(ids)
    if not ids:
        return []
    known = shared.demand_lines if shared is not None else None
    lines: dict[int, list[DemandLineFacts]] = {}
    # The quantity is read as text: Django's SQLite decimal converter builds a decimal context
    # per value, which costs more per invoice than everything else read here. No column needs
    # a converter, so the rows are read from the cursor as they come (~5 per invoice).
    sql, params = (
        DemandLine.objects.filter(demand_id__in=_id_list(ids))
        .order_by("demand_id", "id")
        .values_list(
            "demand_id",
            "description",
            Cast("quantity", output_field=models.CharField()),
            "unit",
            "amount_vnd",
            "vat_rate",
        )
        .query.sql_with_params()
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        line_rows = cursor.fetchall()
    for demand_id, description, quantity, unit, amount, rate in line_rows:
        key = (description, quantity, unit, amount, rate)
        line = known.get(key) if known is not None else None
        if line is None:
            line = DemandLineFacts(description, Decimal(quantity), unit, amount, rate)
            if shared is not None:
                SharedValues.keep(shared.demand_lines, key, line)
        lines.setdefault(demand_id, []).append(line)
    rows = (
        FeeDemand.objects.filter(pk__in=_id_list(ids))
        .order_by("stall__code", "id")
        .values_list(*_DEMAND_COLUMNS)
    )
    return [DemandFacts(*row, lines=tuple(lines.get(row[0], ()))) for row in rows]


def _id_list(values: list, sql_type: str = "bigint") -> Any:
    """The right-hand side of ``…__in`` for a batch of ids: on PostgreSQL one array parameter
    (Django's client-side binding would quote and parse an IN list of hundreds of values for
    every query, a third of what reading a batch costs); the list itself elsewhere."""
    if connection.vendor == "postgresql":
        return RawSQL(f"SELECT unnest(%s::{sql_type}[])", (values,))
    return values


@dataclass(frozen=True, kw_only=True)
class Draft:
    demand: DemandFacts
    kind: str
    seller: invoice_xml.Seller
    buyer: invoice_xml.Buyer
    lines: tuple[invoice_xml.InvoiceLine, ...]
    line_figures: tuple[tuple[int, int], ...]  # (vat_vnd, gross_vnd) per line, informational
    totals: VatBreakdown | SalesTotals
    extra: tuple[invoice_xml.ExtraField, ...]
    related: Invoice | None = None
    reason: str = ""


def _seller(market: Market) -> invoice_xml.Seller:
    account = market.default_account
    return invoice_xml.Seller(
        name=market.name,
        tax_code=market.tax_code,
        address=market.address,
        store_code=market.code,  # MCHang / TCHang (§4.4, §13.4): the market
        store_name=market.name,
        phone=market.phone or None,
        email=market.email or None,
        bank_account=account.account_number if account else None,
        bank_name=account.bank.name if account else None,
    )


def _buyer(demand: DemandFacts, correction: BuyerCorrection | None) -> invoice_xml.Buyer:
    """The stall holder (§4.5): a holder with an MST is named with it; one without gets the
    person's name in HVTNMHang and the citizen ID in CCCDan."""
    correction = correction or BuyerCorrection()

    def pick(corrected: str | None, current: str) -> str | None:
        value = corrected if corrected is not None else current
        return (value or "").strip() or None

    name = pick(correction.name, demand.holder_name)
    tax_code = pick(correction.tax_code, demand.holder_tax_code)
    citizen_id = None if tax_code else pick(correction.citizen_id, demand.holder_citizen_id)
    return invoice_xml.Buyer(
        name=name,
        tax_code=tax_code,
        address=pick(correction.address, demand.holder_address),
        buyer_code=demand.holder_code,
        citizen_id=citizen_id,
        personal_name=None if tax_code else name,
        extra=(
            invoice_xml.ExtraField("Sạp/ki-ốt", "string", demand.stall_code),
            invoice_xml.ExtraField("Mã thanh toán", "string", demand.payment_code),
        ),
    )


def _quantity_and_price(quantity: Decimal, net_vnd: int) -> tuple[Decimal, Decimal]:
    """SLuong and DGia (before VAT) such that round(SLuong × DGia) = ThTien exactly.

    Tariffs are VAT-inclusive, so the net unit price has decimals: DGia is written with up to
    6 decimals (§10.1, first presentation). For quantities below 10^6 the rounding error of
    DGia times the quantity stays under half a đồng; otherwise the line falls back to
    SLuong 1 × DGia = ThTien.
    """
    quantity = Decimal(quantity)
    if quantity > 0:
        price = (Decimal(net_vnd) / quantity).quantize(_SIX_PLACES, rounding=ROUND_HALF_UP)
        exact = (quantity * price).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        if exact == net_vnd:
            return quantity, price
    return Decimal(1), Decimal(net_vnd)


class SharedValues:
    """Equal values of a period run, built once and shared by its invoices.

    Most stalls pay the same fixed fees, so most demand lines, VAT groups and invoice lines
    repeat from one invoice to the next: each distinct one is made once (and the XML builder,
    which keeps the text of the line objects it wrote, then finds them at once).
    """

    MAX_ENTRIES = 20_000  # per kind: a bound on memory for very large runs

    def __init__(self) -> None:
        self.demand_lines: dict[tuple, DemandLineFacts] = {}
        self.vat_groups: dict[tuple[str, tuple[int, ...]], VatBreakdown] = {}
        self.lines: dict[tuple, invoice_xml.InvoiceLine] = {}
        self.period_extras: dict[date, tuple[invoice_xml.ExtraField, ...]] = {}

    @classmethod
    def keep(cls, known: dict, key: Any, value: Any) -> None:
        if len(known) >= cls.MAX_ENTRIES:
            known.clear()
        known[key] = value


def _vat_breakdown(rows: Sequence[DemandLineFacts], shared: SharedValues | None) -> VatBreakdown:
    """``vat_inclusive_breakdown`` of the lines of a demand, put together from the breakdowns
    of its rate groups, which repeat from stall to stall.

    The groups are independent there (a group's ThTien and its split over the group's lines
    use that group's amounts only; groups follow ``RATE_CODES``; totals are their sums), so the
    result is the same. Anything the function would refuse is left to it, for its message.
    """
    if shared is None:
        return vat_inclusive_breakdown(GrossLine(row.amount_vnd, row.vat_rate) for row in rows)
    positions: dict[str, list[int]] = {}
    for position, row in enumerate(rows):
        positions.setdefault(row.vat_rate, []).append(position)
    if not positions.keys() <= RATE_CODES_SET or any(
        type(row.amount_vnd) is not int or row.amount_vnd < 0 for row in rows
    ):
        return vat_inclusive_breakdown(GrossLine(row.amount_vnd, row.vat_rate) for row in rows)
    line_amounts: list[Any] = [None] * len(rows)
    groups = []
    for rate in RATE_CODES:
        group_positions = positions.get(rate)
        if group_positions is None:
            continue
        key = (rate, tuple(rows[i].amount_vnd for i in group_positions))
        part = shared.vat_groups.get(key)
        if part is None:
            part = vat_inclusive_breakdown(GrossLine(amount, rate) for amount in key[1])
            SharedValues.keep(shared.vat_groups, key, part)
        groups.extend(part.groups)
        for position, amounts in zip(group_positions, part.lines, strict=True):
            line_amounts[position] = amounts
    total_net = sum(group.net_vnd for group in groups)
    total_vat = sum(group.vat_vnd for group in groups)
    return VatBreakdown(
        lines=tuple(line_amounts),
        groups=tuple(groups),
        total_net_vnd=total_net,
        total_vat_vnd=total_vat,
        total_payable_vnd=total_net + total_vat,
    )


def _demand_lines(
    demand: DemandFacts, form: str, shared: SharedValues | None = None
) -> tuple[tuple[invoice_xml.InvoiceLine, ...], tuple[tuple[int, int], ...], Any]:
    rows = demand.lines
    vat_invoice = form == InvoiceForm.VAT
    if vat_invoice:
        totals: VatBreakdown | SalesTotals = _vat_breakdown(rows, shared)
        amounts = [(a.net_vnd, a.vat_vnd, a.gross_vnd) for a in totals.lines]
    else:
        totals = sales_invoice_totals(row.amount_vnd for row in rows)
        amounts = [(row.amount_vnd, 0, row.amount_vnd) for row in rows]
    known = shared.lines if shared is not None else {}
    lines = []
    for number, (row, (net, _vat, _gross)) in enumerate(zip(rows, amounts, strict=True), 1):
        rate = row.vat_rate if vat_invoice else None
        # Everything the line is made of; quantities that are equal (11.5, 11.50) make equal
        # lines, whose SLuong is written the same.
        key = (number, row.description, row.unit, row.quantity, net, rate)
        line = known.get(key)
        if line is None:
            quantity, price = _quantity_and_price(row.quantity, net)
            line = invoice_xml.InvoiceLine(
                number=number,
                name=row.description,
                unit=row.unit,
                quantity=quantity,
                unit_price=price,
                net_amount_vnd=net,
                vat_rate=rate,
            )
            if shared is not None:
                SharedValues.keep(known, key, line)
        lines.append(line)
    return tuple(lines), tuple((vat, gross) for _net, vat, gross in amounts), totals


def _adjustment_lines(
    lines: Sequence[AdjustmentLine], form: str, note: str
) -> tuple[tuple[invoice_xml.InvoiceLine, ...], tuple[tuple[int, int], ...], Any]:
    if not lines:
        # An adjustment of information only (e.g. the buyer's address): one note line (TChat 4)
        # and zero totals.
        note_line = invoice_xml.InvoiceLine(number=1, name=note[:500], kind=4)
        if form == InvoiceForm.VAT:
            totals: VatBreakdown | SalesTotals = vat_inclusive_breakdown([])
        else:
            totals = sales_invoice_totals([])
        return (note_line,), ((0, 0),), totals
    for line in lines:
        if form == InvoiceForm.VAT and line.vat_rate not in RATE_CODES:
            raise InvalidInput(
                _("Thuế suất “%(rate)s” không hợp lệ; dùng một trong: %(codes)s.")
                % {"rate": line.vat_rate, "codes": ", ".join(RATE_CODES)},
                code="invalid_vat_rate",
            )
        if isinstance(line.amount_vnd, bool) or not isinstance(line.amount_vnd, int):
            raise InvalidInput(_("Số tiền điều chỉnh phải là số nguyên đồng."))
        if line.amount_vnd <= 0:
            raise InvalidInput(
                _(
                    "Số tiền điều chỉnh phải lớn hơn 0. Hóa đơn điện tử không ghi số âm; muốn "
                    "giảm số tiền, hãy lập hóa đơn thay thế."
                ),
                code="adjustment_not_positive",
            )
    if form == InvoiceForm.VAT:
        totals = vat_inclusive_breakdown(GrossLine(x.amount_vnd, x.vat_rate) for x in lines)
        amounts = [(a.net_vnd, a.vat_vnd, a.gross_vnd) for a in totals.lines]
    else:
        totals = sales_invoice_totals(line.amount_vnd for line in lines)
        amounts = [(line.amount_vnd, 0, line.amount_vnd) for line in lines]
    xml_lines = tuple(
        invoice_xml.InvoiceLine(
            number=number,
            name=line.description,
            unit=line.unit,
            quantity=Decimal(1),
            unit_price=Decimal(net),
            net_amount_vnd=net,
            vat_rate=line.vat_rate if form == InvoiceForm.VAT else None,
        )
        for number, (line, (net, _vat, _gross)) in enumerate(zip(lines, amounts, strict=True), 1)
    )
    return xml_lines, tuple((vat, gross) for _net, vat, gross in amounts), totals


def _general_extra(
    demand: DemandFacts, shared: SharedValues | None = None
) -> tuple[invoice_xml.ExtraField, ...]:
    # The market is already NBan/MCHang; the fee period is what the accountant looks up.
    if shared is not None and demand.period in shared.period_extras:
        return shared.period_extras[demand.period]
    extra = (invoice_xml.ExtraField("Kỳ phí", "string", f"{demand.period:%m/%Y}"),)
    if shared is not None:
        shared.period_extras[demand.period] = extra
    return extra


def _draft(
    demand: DemandFacts,
    settings: InvoiceSettings,
    seller: invoice_xml.Seller,
    *,
    kind: str = Invoice.Kind.ORIGINAL,
    related: Invoice | None = None,
    reason: str = "",
    buyer: BuyerCorrection | None = None,
    adjustment: Sequence[AdjustmentLine] | None = None,
    shared: SharedValues | None = None,
) -> Draft:
    if kind == Invoice.Kind.ADJUSTMENT:
        lines, figures, totals = _adjustment_lines(
            adjustment or (), settings.form, _("Điều chỉnh: %(reason)s") % {"reason": reason}
        )
    else:
        lines, figures, totals = _demand_lines(demand, settings.form, shared)
    if kind == Invoice.Kind.ORIGINAL and totals.total_payable_vnd != demand.total_vnd:
        raise Conflict(
            _(
                "Tổng các dòng phí (%(lines)s đ) khác tổng phiếu báo phí %(code)s "
                "(%(total)s đ); không xuất hóa đơn."
            )
            % {
                "lines": totals.total_payable_vnd,
                "code": demand.payment_code,
                "total": demand.total_vnd,
            },
            code="demand_lines_mismatch",
        )
    return Draft(
        demand=demand,
        kind=kind,
        seller=seller,
        buyer=_buyer(demand, buyer),
        lines=lines,
        line_figures=figures,
        totals=totals,
        extra=_general_extra(demand, shared),
        related=related,
        reason=reason,
    )


# --- issuing -------------------------------------------------------------------------


@dataclass
class IssueFailure:
    demand_id: int
    payment_code: str
    message: str


@dataclass(frozen=True, slots=True)
class IssuedInvoice:
    """What a batch needs to report about an invoice it stored (not the model: no XML)."""

    pk: int
    demand_id: int
    form: str
    serial_code: str
    number: int


@dataclass
class IssueOutcome:
    invoices: list[IssuedInvoice] = field(default_factory=list)
    existing: list[int] = field(default_factory=list)  # pks of originals issued before
    failures: list[IssueFailure] = field(default_factory=list)
    serial: InvoiceSerial | None = None  # the serial used, and its next number after
    next_number: int = 0


def local_today() -> date:
    return timezone.localdate()


def _locked_serial(market: Market, settings: InvoiceSettings, year: int) -> InvoiceSerial:
    """The market's active serial for the form and year, locked (caller is in a transaction).

    A new serial each year (§5.2): the first invoice of a year creates it from the market's
    scheme (``CYYTAA`` → ``C27TAA``). Two issuers creating it at once: the loser's INSERT
    waits for the winner's commit, fails on the unique constraint, and locks the winner's row.
    """
    rows = InvoiceSerial.objects.select_for_update().filter(
        market=market, form=settings.form, year=year, active=True
    )
    serial = rows.first()
    if serial is None:
        code = settings.serial_for_year(year)
        try:
            with transaction.atomic():
                InvoiceSerial.objects.create(
                    market=market,
                    seller_tax_code=market.tax_code,
                    form=settings.form,
                    serial=code,
                    year=year,
                )
        except IntegrityError:
            pass
        serial = rows.first()
        if serial is None:
            raise Conflict(
                _(
                    "Ký hiệu %(serial)s của năm %(year)s đã ngừng sử dụng; hãy đăng ký một ký "
                    "hiệu mới cho năm %(year)s trong trang quản trị."
                )
                % {"serial": code, "year": year},
                code="serial_inactive",
            )
    if serial.seller_tax_code != market.tax_code:
        raise Conflict(
            _(
                "Ký hiệu %(serial)s thuộc MST %(old)s, nhưng chợ nay có MST %(new)s; hãy đăng ký "
                "ký hiệu mới."
            )
            % {"serial": serial.serial, "old": serial.seller_tax_code, "new": market.tax_code},
            code="serial_tax_code_changed",
        )
    return serial


def _related_xml(draft: Draft) -> invoice_xml.RelatedInvoice | None:
    if draft.related is None:
        return None
    original = draft.related
    return invoice_xml.RelatedInvoice(
        nature=1 if draft.kind == Invoice.Kind.REPLACEMENT else 2,  # TCHDon (§4.2)
        form=original.form,
        serial=original.serial_code,
        number=original.number,
        issue_date=original.issue_date,
        kind=1,  # LHDCLQuan: an e-invoice under Decree 123
        note=draft.reason,
    )


# Columns written by one prepared INSERT each (``_insert``): a period run stores thousands of
# invoices, and building model instances for them would cost more than signing them.
INVOICE_COLUMNS = (
    "market",
    "demand",
    "serial",
    "seller_tax_code",
    "form",
    "serial_code",
    "number",
    "issue_date",
    "kind",
    "status",
    "related",
    "reason",
    "period",
    "buyer_name",
    "buyer_tax_code",
    "buyer_citizen_id",
    "buyer_address",
    "buyer_code",
    "stall_code",
    "payment_code",
    "total_net_vnd",
    "total_vat_vnd",
    "total_payable_vnd",
    "amount_in_words",
    "invoice_id",
    "xml",
    "sha256",
    "signing_time",
    "certificate_subject",
    "issued_by",
    "created_at",
)
LINE_COLUMNS = (
    "invoice",
    "number",
    "nature",
    "name",
    "unit",
    "quantity",
    "unit_price",
    "net_vnd",
    "vat_rate",
    "vat_vnd",
    "gross_vnd",
)


@dataclass
class _SignedBatch:
    """Drafts numbered from ``first_number`` under ``serial``, built and signed, not stored."""

    serial: InvoiceSerial
    first_number: int
    issue_date: date
    db: _DbValues
    invoice_rows: list[tuple] = field(default_factory=list)
    line_rows: dict[str, list[tuple]] = field(default_factory=dict)
    stored: list[tuple[str, int, int]] = field(default_factory=list)  # (Id, demand, number)
    failures: list[IssueFailure] = field(default_factory=list)
    pks: list[int] = field(default_factory=list)  # set when stored

    @property
    def next_number(self) -> int:
        return self.first_number + len(self.stored)


def _sign_batch(
    *,
    drafts: Sequence[Draft],
    settings: InvoiceSettings,
    serial: InvoiceSerial,
    first_number: int,
    key: SigningKey,
    issue_date: date,
    signing_time: datetime,
    issued_by: int | None,
) -> _SignedBatch:
    """Number ``drafts`` consecutively from ``first_number``, build and sign them. Reads
    nothing from the database, so it can run beside the storing of the previous batch. A
    draft whose data the builder refuses is reported in ``failures`` and takes no number; a
    signing failure raises."""
    batch = _SignedBatch(
        serial=serial,
        first_number=first_number,
        issue_date=issue_date,
        db=_DbValues(issue_date=issue_date, signing_time=signing_time),
    )
    number = first_number
    for draft in drafts:
        if number > MAX_INVOICE_NUMBER:
            raise Conflict(
                _("Ký hiệu %(serial)s đã dùng hết số (tối đa 8 chữ số).")
                % {"serial": serial.serial},
                code="serial_exhausted",
            )
        data = invoice_xml.InvoiceData(
            invoice_id=invoice_xml.new_invoice_id(),
            form=settings.form,
            serial=serial.serial,
            number=number,
            issue_date=issue_date,
            seller=draft.seller,
            buyer=draft.buyer,
            lines=draft.lines,
            totals=draft.totals,
            provider_tax_code=settings.provider_tax_code,
            payment_method=PAYMENT_METHOD,
            related=_related_xml(draft),
            extra=draft.extra,
        )
        try:
            unsigned = invoice_xml.build_unsigned_invoice(data)
        except invoice_xml.InvoiceDataError as error:
            batch.failures.append(
                IssueFailure(draft.demand.pk, draft.demand.payment_code, error.message_vi)
            )
            continue
        try:
            signed = sign_invoice(unsigned, key, signing_time=signing_time)
        except SigningError as error:
            # The certificate was checked before; this is the last guard. Nothing of the
            # batch is stored, and no number is taken.
            raise CertificateError(
                _("Không ký được hóa đơn: %(error)s. Không hóa đơn nào được lưu.")
                % {"error": error},
                code="signing_failed",
            ) from error
        batch.invoice_rows.append(
            _invoice_row(draft, data, unsigned, signed, serial, key, issued_by, batch.db)
        )
        batch.line_rows[data.invoice_id] = _line_rows(draft, batch.db)
        batch.stored.append((data.invoice_id, draft.demand.pk, number))
        number += 1
    return batch


def _issue(
    *,
    market: Market,
    settings: InvoiceSettings,
    key: SigningKey,
    drafts: Sequence[Draft],
    user: Any = None,
    issue_date: date | None = None,
    signing_time: datetime | None = None,
    signed: _SignedBatch | None = None,
) -> IssueOutcome:
    """Number, build, sign and store ``drafts`` in one transaction (see the module docstring).

    ``signed`` is the batch already signed outside the transaction with the numbers that
    were next when it was prepared (``_issue_period``). It is stored only if, under the
    serial's lock, those numbers are still next and none of its demands got an invoice
    meanwhile; otherwise the drafts are numbered and signed again here, under the lock. So
    numbers are always allocated in the transaction that stores the signed invoices.
    """
    outcome = IssueOutcome()
    issue_date = signed.issue_date if signed else (issue_date or local_today())
    signing_time = signing_time or timezone.now()
    issued_by = user.pk if getattr(user, "is_authenticated", False) else None
    with transaction.atomic():
        serial = _locked_serial(market, settings, issue_date.year)
        # Re-checked under the lock: a concurrent issuer may have stored it meanwhile.
        originals = [d.demand.pk for d in drafts if d.kind == Invoice.Kind.ORIGINAL]
        existing = dict(
            Invoice.objects.filter(
                demand_id__in=_id_list(originals), kind=Invoice.Kind.ORIGINAL
            ).values_list("demand_id", "pk")
        )
        outcome.existing = [existing[d.demand.pk] for d in drafts if d.demand.pk in existing]
        if (
            signed is None
            or existing
            or signed.serial.pk != serial.pk
            or signed.first_number != serial.next_number
        ):
            signed = _sign_batch(
                drafts=[d for d in drafts if d.demand.pk not in existing],
                settings=settings,
                serial=serial,
                first_number=serial.next_number,
                key=key,
                issue_date=issue_date,
                signing_time=signing_time,
                issued_by=issued_by,
            )
        outcome.failures = signed.failures
        outcome.serial, outcome.next_number = serial, signed.next_number
        if signed.stored:
            _store_signed(signed)
            moved = InvoiceSerial.objects.filter(
                pk=serial.pk, next_number=signed.first_number
            ).update(next_number=signed.next_number)
            if moved != 1:  # impossible under the lock; never store a number twice
                raise Conflict(_("Bộ đếm số hóa đơn vừa bị thay đổi; vui lòng thử lại."))
            outcome.invoices = [
                IssuedInvoice(pk, demand_id, settings.form, serial.serial, number)
                for pk, (_id, demand_id, number) in zip(signed.pks, signed.stored, strict=True)
            ]
    return outcome


def _store_signed(signed: _SignedBatch) -> None:
    """Insert the invoices of ``signed`` and their lines; sets ``signed.pks``."""
    _compress_xml_with_lz4()
    _insert(Invoice, INVOICE_COLUMNS, signed.invoice_rows)
    pks = dict(
        Invoice.objects.filter(
            invoice_id__in=_id_list(list(signed.line_rows), "varchar")
        ).values_list("invoice_id", "pk")
    )
    _insert(
        InvoiceLine,
        LINE_COLUMNS,
        ((pks[invoice_id], *row) for invoice_id, rows in signed.line_rows.items() for row in rows),
        small_rows=True,
    )
    signed.pks = [pks[invoice_id] for invoice_id, _demand, _number in signed.stored]


class _DbValues:
    """Values of a batch converted for the database once, as each field's ``get_db_prep_save``
    would (dates and times are the same for the whole batch)."""

    def __init__(self, *, issue_date: date, signing_time: datetime) -> None:
        self.ops = connection.ops
        self.issue_date = self.ops.adapt_datefield_value(issue_date)
        self.signing_time = self.ops.adapt_datetimefield_value(signing_time)
        self.created_at = self.ops.adapt_datetimefield_value(timezone.now())
        self._periods: dict[date, Any] = {}
        self._decimals: dict[tuple[Decimal, int], Any] = {}
        self._lines: dict[int, tuple[invoice_xml.InvoiceLine, tuple]] = {}

    def period(self, value: date) -> Any:
        if value not in self._periods:
            self._periods[value] = self.ops.adapt_datefield_value(value)
        return self._periods[value]

    def decimal(self, value: Decimal | None, max_digits: int) -> Any:
        if value is None:
            return None
        # Few distinct quantities and prices in a batch, and adapting one (SQLite formats it
        # as text) costs more than looking it up. Equal values are stored alike.
        key = (value, max_digits)
        if key not in self._decimals:
            self._decimals[key] = self.ops.adapt_decimalfield_value(Decimal(value), max_digits, 6)
        return self._decimals[key]

    def line_columns(self, line: invoice_xml.InvoiceLine) -> tuple:
        """``LINE_COLUMNS`` from number to vat_rate, once per line object of the batch (lines
        are shared between the invoices of a period run; an InvoiceLine is frozen)."""
        known = self._lines.get(id(line))
        if known is None or known[0] is not line:
            columns = (
                line.number,
                line.kind,
                line.name,
                line.unit or "",
                self.decimal(line.quantity, 21),
                self.decimal(line.unit_price, 27),
                line.net_amount_vnd or 0,
                line.vat_rate or "",
            )
            known = self._lines[id(line)] = (line, columns)
        return known[1]


def _column_types(model: type[models.Model], columns: Sequence[str]) -> list[str]:
    """PostgreSQL type names of ``columns`` (``numeric(21, 6)`` → ``numeric``) for binary COPY."""
    types = []
    for name in columns:
        field = model._meta.get_field(name)
        db_type = (
            field.target_field.rel_db_type(connection)
            if field.is_relation
            else field.db_type(connection)
        )
        types.append(db_type.split("(")[0].strip())
    return types


def _compress_xml_with_lz4() -> None:
    """PostgreSQL: compress what this transaction stores with lz4 rather than pglz.

    The signed XML (~6 KB an invoice) is compressed as it is stored (TOAST); with the default
    pglz that costs the server about as much as the invoice's RSA signature, lz4 a fraction of
    it. Values read back the same whichever method compressed them. ``set_config(…, true)`` is
    ``SET LOCAL`` (this transaction only), and a server built without lz4 keeps its default.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('default_toast_compression', 'lz4', true) FROM pg_settings "
            "WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
        )


def _insert(
    model: type[models.Model],
    columns: Sequence[str],
    rows: Iterable[Sequence],
    *,
    small_rows: bool = False,
) -> None:
    """Insert rows already converted for the database (``_DbValues``): a binary COPY on
    PostgreSQL (one stream, no per-row statement, the XML bytes sent as they are), one
    prepared INSERT run with ``executemany`` elsewhere; on SQLite, ``small_rows`` (invoice
    lines) go many to a statement instead, which halves their cost per row."""
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    names = ", ".join(quote(model._meta.get_field(name).column) for name in columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            sql = f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)"
            with cursor.cursor.copy(sql) as copy:
                copy.set_types(_column_types(model, columns))
                for row in rows:
                    copy.write_row(row)
            return
        if small_rows and connection.vendor == "sqlite":
            _insert_sqlite_rows(table, names, len(columns), rows)
            return
        placeholders = ", ".join(["%s"] * len(columns))
        cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({placeholders})", rows)


def _insert_sqlite_rows(table: str, names: str, width: int, rows: Iterable[Sequence]) -> None:
    """SQLite: up to 999 parameters of rows to a statement, run by the sqlite3 cursor itself
    with its own "?" placeholders (Django's cursor would rewrite every long statement)."""
    row_sql = "(" + ", ".join(["?"] * width) + ")"
    per_statement = max(1, 999 // width)
    rows = iter(rows)
    cursor = connection.connection.cursor()
    try:
        with connection.wrap_database_errors:
            while chunk := list(islice(rows, per_statement)):
                cursor.execute(
                    f"INSERT INTO {table} ({names}) VALUES {', '.join([row_sql] * len(chunk))}",
                    [value for row in chunk for value in row],
                )
    finally:
        cursor.close()


def _invoice_row(
    draft: Draft,
    data: invoice_xml.InvoiceData,
    unsigned: invoice_xml.UnsignedInvoice,
    signed: bytes,
    serial: InvoiceSerial,
    key: SigningKey,
    issued_by: int | None,
    db: _DbValues,
) -> tuple:
    """One row of ``INVOICE_COLUMNS``; the snapshot figures come from what was signed."""
    demand = draft.demand
    totals = draft.totals
    if isinstance(totals, VatBreakdown):
        net, vat = totals.total_net_vnd, totals.total_vat_vnd
    else:
        net, vat = totals.total_payable_vnd, 0
    buyer = draft.buyer
    return (
        demand.market_id,
        demand.pk,
        serial.pk,
        serial.seller_tax_code,
        data.form,
        serial.serial,
        data.number,
        db.issue_date,
        draft.kind,
        Invoice.Status.SIGNED.value,
        draft.related.pk if draft.related else None,
        draft.reason,
        db.period(demand.period),
        buyer.name or "",
        buyer.tax_code or "",
        buyer.citizen_id or "",
        buyer.address or "",
        buyer.buyer_code or "",
        demand.stall_code,
        demand.payment_code,
        net,
        vat,
        totals.total_payable_vnd,
        unsigned.amount_in_words,
        data.invoice_id,
        signed,
        hashlib.sha256(signed).hexdigest(),
        db.signing_time,
        key.subject[:500],
        issued_by,
        db.created_at,
    )


def _line_rows(draft: Draft, db: _DbValues) -> list[tuple]:
    """``LINE_COLUMNS`` without the invoice (known after the insert)."""
    return [
        (*db.line_columns(line), vat, gross)
        for line, (vat, gross) in zip(draft.lines, draft.line_figures, strict=True)
    ]


def _prepared(market: Market, *, at: datetime) -> tuple[InvoiceSettings, SigningKey]:
    settings = invoice_settings_for(market)
    return settings, signing_key_for_market(settings, at=at)


def check_ready_to_issue(*, market: Market) -> None:
    """Raise the DomainError that issuing now would meet (no settings, certificate missing,
    expired or for another tax code); used before queueing background work."""
    _prepared(market, at=timezone.now())


def _one_demand(demand_id: int) -> DemandFacts:
    facts = demand_facts([demand_id])
    if not facts:
        raise NotFound(_("Không tìm thấy phiếu báo phí %(id)s.") % {"id": demand_id})
    return facts[0]


def _single(outcome: IssueOutcome) -> Invoice:
    if outcome.invoices:
        return Invoice.objects.select_related("market").get(pk=outcome.invoices[0].pk)
    if outcome.existing:
        return Invoice.objects.select_related("market").get(pk=outcome.existing[0])
    failure = outcome.failures[0]
    raise InvalidInput(
        _("Không lập được hóa đơn cho phiếu %(code)s: %(error)s")
        % {"code": failure.payment_code, "error": failure.message},
        code="invoice_data_invalid",
    )


def invoice_issue_for_demand(*, demand: FeeDemand | int, user: Any = None) -> Invoice:
    """The original invoice of a fully paid demand; the existing one if it was issued already
    (idempotent: the database also refuses a second original)."""
    demand_id = demand if isinstance(demand, int) else demand.pk
    existing = Invoice.objects.filter(demand_id=demand_id, kind=Invoice.Kind.ORIGINAL).first()
    if existing is not None:
        return existing
    facts = _one_demand(demand_id)
    if facts.status not in PAID_STATUSES:
        raise Conflict(
            _(
                "Phiếu báo phí %(code)s chưa được thanh toán đủ (%(status)s); chỉ xuất hóa đơn "
                "cho phiếu đã thanh toán đủ."
            )
            % {"code": facts.payment_code, "status": FeeDemand.Status(facts.status).label},
            code="demand_not_paid",
        )
    market = Market.objects.get(pk=facts.market_id)
    signing_time = timezone.now()
    settings, key = _prepared(market, at=signing_time)
    draft = _draft(facts, settings, _seller(market))
    outcome = _issue(
        market=market,
        settings=settings,
        key=key,
        drafts=[draft],
        user=user,
        signing_time=signing_time,
    )
    return _single(outcome)


def invoice_issue_on_payment(*, demand_id: int) -> Invoice | None:
    """Automatic issuance (the task behind ``demand_fully_paid``): only when the market asks
    for it and the demand is still paid when the task runs."""
    demand = FeeDemand.objects.filter(pk=demand_id).only("market_id", "status").first()
    if demand is None or demand.status not in PAID_STATUSES:
        return None
    auto = InvoiceSettings.objects.filter(
        market_id=demand.market_id, auto_issue_on_payment=True
    ).exists()
    if not auto:
        return None
    return invoice_issue_for_demand(demand=demand_id)


@dataclass
class PeriodResult:
    period: date
    issued: int = 0
    already_issued: int = 0
    failures: list[IssueFailure] = field(default_factory=list)
    first_number: int | None = None
    last_number: int | None = None
    serial: str = ""

    @property
    def changed_nothing(self) -> bool:
        return self.issued == 0

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["period"] = f"{self.period:%Y-%m}"
        return data


def demands_awaiting_invoice(*, market: Market, period: date) -> QuerySet[FeeDemand]:
    has_original = Invoice.objects.filter(demand=OuterRef("pk"), kind=Invoice.Kind.ORIGINAL)
    return (
        FeeDemand.objects.filter(market=market, period=period, status__in=PAID_STATUSES)
        .exclude(Exists(has_original))
        .order_by("stall__code", "id")
    )


def invoices_issue_for_period(
    *,
    market: Market,
    period: date,
    user: Any = None,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
) -> PeriodResult:
    """Issue the original invoice of every fully paid demand of ``market`` for ``period`` that
    has none yet, in batches of ``batch_size`` (one transaction each). Running it again
    issues nothing and says so. A demand whose data the format refuses is reported and
    skipped without taking a number; a certificate problem stops the run before anything
    is stored."""
    signing_time = timezone.now()
    settings, key = _prepared(market, at=signing_time)
    seller = _seller(market)
    with _objects_frozen():
        return _issue_period(
            market=market,
            period=period,
            settings=settings,
            key=key,
            seller=seller,
            signing_time=signing_time,
            user=user,
            progress=progress,
            batch_size=batch_size,
        )


@contextmanager
def _objects_frozen() -> Iterator[None]:
    """Keep the objects that exist before a period run out of the garbage collector's sight.

    A run allocates millions of short-lived objects (strings, rows); each full collection
    they trigger would walk the whole heap (Django, lxml, the loaded modules), about 3 % of a
    run. ``gc.freeze`` leaves those in a permanent generation until ``gc.unfreeze``. The
    youngest generation is also collected less often: reference counting frees almost all of
    the run's objects, and a collection every 700 allocations (Python's default) cost ~2 %
    of a run for nothing.
    """
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(threshold[0], 50_000), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def _issue_period(
    *,
    market: Market,
    period: date,
    settings: InvoiceSettings,
    key: SigningKey,
    seller: invoice_xml.Seller,
    signing_time: datetime,
    user: Any,
    progress: Progress | None,
    batch_size: int,
) -> PeriodResult:
    result = PeriodResult(period=period)
    shared = SharedValues()
    paid = FeeDemand.objects.filter(market=market, period=period, status__in=PAID_STATUSES)
    todo = list(demands_awaiting_invoice(market=market, period=period).values_list("pk", flat=True))
    result.already_issued = paid.count() - len(todo)
    if progress:
        progress(0, len(todo))

    def drafts_of(ids: list[int]) -> list[Draft]:
        drafts = []
        for demand in demand_facts(ids, shared):
            try:
                drafts.append(_draft(demand, settings, seller, shared=shared))
            except (Conflict, InvalidInput, ValueError) as error:
                message = getattr(error, "message", str(error))
                result.failures.append(IssueFailure(demand.pk, demand.payment_code, message))
        return drafts

    issued_by = user.pk if getattr(user, "is_authenticated", False) else None
    batches = [todo[start : start + batch_size] for start in range(0, len(todo), batch_size)]
    # A pipeline of two: while this thread stores batch k (and reads batch k + 1), the
    # signer thread builds and signs batch k + 1 with the numbers that will be next if
    # batch k is stored as signed. Storing re-checks that under the serial's lock and
    # signs again there if anything changed (``_issue``), so the numbers stay gapless and
    # are allocated in the storing transaction. The signer touches no database.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="invoice-signer") as signer:

        def sign_ahead(drafts: list[Draft], after: _SignedBatch | IssueOutcome | None):
            """Start signing ``drafts`` numbered after ``after`` (a batch signed or stored)."""
            if after is None or after.serial is None:
                return None
            return signer.submit(
                _sign_batch,
                drafts=drafts,
                settings=settings,
                serial=after.serial,
                first_number=after.next_number,
                key=key,
                issue_date=local_today(),
                signing_time=signing_time,
                issued_by=issued_by,
            )

        done = 0
        drafts = drafts_of(batches[0]) if batches else []
        ahead = sign_ahead(drafts, _next_unlocked(market, settings))
        for k, ids in enumerate(batches):
            signed = ahead.result() if ahead else None
            following = drafts_of(batches[k + 1]) if k + 1 < len(batches) else None
            ahead = sign_ahead(following, signed) if following is not None else None
            outcome = _issue(
                market=market,
                settings=settings,
                key=key,
                drafts=drafts,
                user=user,
                signing_time=signing_time,
                signed=signed,
            )
            if following is not None and (
                ahead is None or signed is None or signed.next_number != outcome.next_number
            ):
                # Batch k was numbered again under the lock: what is being signed for
                # batch k + 1 carries the wrong numbers (its store would sign it again).
                if ahead is not None and not ahead.cancel():
                    wait([ahead])  # its result, or error, no longer matters
                ahead = sign_ahead(following, outcome)
            result.issued += len(outcome.invoices)
            result.already_issued += len(outcome.existing)
            result.failures.extend(outcome.failures)
            if outcome.invoices:
                result.serial = f"{outcome.invoices[0].form}{outcome.invoices[0].serial_code}"
                if result.first_number is None:
                    result.first_number = outcome.invoices[0].number
                result.last_number = outcome.invoices[-1].number
            drafts = following or []
            done += len(ids)
            if progress:
                # Reported with the signer idle, so the progress callback has the process
                # to itself (the benchmark measures raw RSA in it).
                if ahead is not None:
                    wait([ahead])
                progress(done, len(todo))
    return result


def _next_unlocked(market: Market, settings: InvoiceSettings) -> IssueOutcome | None:
    """This year's serial and its next number, read without a lock: what a first batch is
    signed with ahead of its storing. ``None`` if the serial does not exist yet (the first
    batch is then signed under the lock that creates it)."""
    serial = InvoiceSerial.objects.filter(
        market=market, form=settings.form, year=local_today().year, active=True
    ).first()
    if serial is None or serial.seller_tax_code != market.tax_code:
        return None
    return IssueOutcome(serial=serial, next_number=serial.next_number)


# --- corrections ---------------------------------------------------------------------


def _clean_reason(reason: str) -> str:
    reason = " ".join((reason or "").split())
    if not reason:
        raise InvalidInput(
            _("Cần nhập lý do thay thế hoặc điều chỉnh hóa đơn."),
            code="reason_required",
            extra={"fields": {"reason": [_("bắt buộc")]}},
        )
    if len(reason) > 255:
        raise InvalidInput(
            _("Lý do dài tối đa 255 ký tự (trường GChu của hóa đơn)."),
            code="reason_too_long",
            extra={"fields": {"reason": [_("dài quá 255 ký tự")]}},
        )
    return reason


def _correct(
    *,
    invoice: Invoice,
    kind: str,
    reason: str,
    user: Any,
    buyer: BuyerCorrection | None = None,
    adjustment: Sequence[AdjustmentLine] | None = None,
) -> Invoice:
    reason = _clean_reason(reason)
    market = invoice.market
    signing_time = timezone.now()
    settings, key = _prepared(market, at=signing_time)
    if settings.form != invoice.form:
        raise Conflict(
            _(
                "Hóa đơn gốc là mẫu số %(old)s nhưng chợ nay xuất mẫu số %(new)s; không tự "
                "động thay thế hoặc điều chỉnh được."
            )
            % {"old": invoice.form, "new": settings.form},
            code="form_changed",
        )
    demand = _one_demand(invoice.demand_id)
    draft = _draft(
        demand,
        settings,
        _seller(market),
        kind=kind,
        related=invoice,
        reason=reason,
        buyer=buyer,
        adjustment=adjustment,
    )
    if kind == Invoice.Kind.REPLACEMENT:
        allowed = [Invoice.Status.SIGNED, Invoice.Status.ADJUSTED]
        new_status = Invoice.Status.REPLACED
    else:
        allowed = [Invoice.Status.SIGNED, Invoice.Status.ADJUSTED]
        new_status = Invoice.Status.ADJUSTED
    with transaction.atomic():
        # Conditional update + row count (the status style of Invoice): a second replacement
        # of the same invoice waits here for the first, then finds it replaced and stops;
        # the whole transaction, number included, rolls back.
        changed = Invoice.objects.filter(pk=invoice.pk, status__in=allowed).update(
            status=new_status
        )
        if changed != 1:
            current = Invoice.objects.filter(pk=invoice.pk).values_list("status", flat=True).first()
            raise Conflict(
                _("Hóa đơn %(label)s %(status)s; không thể %(action)s.")
                % {
                    "label": invoice.label,
                    "status": Invoice.Status(current).label.lower() if current else "",
                    "action": _("thay thế")
                    if kind == Invoice.Kind.REPLACEMENT
                    else _("điều chỉnh"),
                },
                code="invoice_already_replaced",
            )
        outcome = _issue(
            market=market,
            settings=settings,
            key=key,
            drafts=[draft],
            user=user,
            signing_time=signing_time,
        )
        corrected = _single(outcome)
    invoice.status = new_status
    return corrected


def invoice_replace(
    *, invoice: Invoice, reason: str, user: Any = None, buyer: BuyerCorrection | None = None
) -> Invoice:
    """A replacement invoice (TTHDLQuan, TCHDon = 1): the demand's lines and the holder's current
    data (or ``buyer`` corrections), the next number, a link to ``invoice``; ``invoice`` becomes
    "replaced"."""
    return _correct(
        invoice=invoice, kind=Invoice.Kind.REPLACEMENT, reason=reason, user=user, buyer=buyer
    )


def invoice_adjust(
    *,
    invoice: Invoice,
    reason: str,
    lines: Sequence[AdjustmentLine] = (),
    user: Any = None,
    buyer: BuyerCorrection | None = None,
) -> Invoice:
    """An adjustment invoice (TCHDon = 2) linked to ``invoice``: additional amounts in
    ``lines``, or, without lines, an adjustment of information with a note line and zero
    totals; ``invoice`` becomes "adjusted"."""
    return _correct(
        invoice=invoice,
        kind=Invoice.Kind.ADJUSTMENT,
        reason=reason,
        user=user,
        buyer=buyer,
        adjustment=list(lines),
    )


# --- reading -------------------------------------------------------------------------


def invoice_filter(
    queryset: QuerySet[Invoice],
    *,
    period: date | None = None,
    status: str | None = None,
    serial: str | None = None,
    buyer: str | None = None,
    kind: str | None = None,
) -> QuerySet[Invoice]:
    """The list filters of the pages and the API."""
    if period:
        queryset = queryset.filter(period=period)
    if status:
        queryset = queryset.filter(status=status)
    if serial:
        serial = serial.strip().upper()
        # "C26TAA" or "1C26TAA" (form + serial, as invoices are named)
        if len(serial) == 7 and serial[0].isdigit():
            queryset = queryset.filter(form=serial[0], serial_code=serial[1:])
        else:
            queryset = queryset.filter(serial_code=serial)
    if buyer:
        buyer = buyer.strip()
        queryset = queryset.filter(
            Q(buyer_name__icontains=buyer)
            | Q(buyer_tax_code=buyer)
            | Q(buyer_citizen_id=buyer)
            | Q(buyer_code__iexact=buyer)
            | Q(stall_code__iexact=buyer)
            | Q(payment_code__iexact=buyer)
        )
    if kind:
        queryset = queryset.filter(kind=kind)
    return queryset
