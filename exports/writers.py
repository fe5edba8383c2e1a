"""The export writers: invoice XML archive, bảng kê, MISA import sheets, receipts and debts.

Every writer streams (constant memory whatever the period size):

* rows come from the database with ``.iterator(chunk_size=…)`` over ``values_list`` of the
  columns needed (never model instances, never all the XML at once); what a row needs from
  other tables (rate groups, settling transfers, fee kinds, credits) is fetched for one batch
  of rows at a time;
* XLSX is written by ``openpyxl`` in write-only mode (rows go to a temporary file as they are
  appended; inline strings, so no shared-string table grows with the row count), with the
  faster row path of ``exports.xlsx``; CSV and ZIP go straight to the output stream; the
  ZIP's manifest is spooled to a temporary file and added last.

Writers read ``market40``, ``payments`` and ``invoicing`` models and write nothing but the
output stream. Dates are those of the market's calendar (Asia/Ho_Chi_Minh) and are written
``dd/mm/yyyy`` (spec domain.md §6.1, §6.3): as text in the MISA sheets, as Excel dates
formatted ``dd/mm/yyyy`` in the sheets people read. Money is integer đồng, written as numbers.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import shutil
import tempfile
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils.translation import gettext as _
from openpyxl import Workbook
from openpyxl.utils import get_column_letter

from exports import xlsx
from exports.models import ExportKind, MisaAccounts
from invoicing.models import Invoice, InvoiceLine
from invoicing.rounding import RATE_CODES
from market40.errors import DomainError
from market40.models import DemandLine, FeeDemand, Market, StallHolder
from payments.models import Allocation, BankTransaction

MARKET_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
CHUNK = 2000  # rows per database round trip of a streaming query
BATCH = 500  # rows whose related data is fetched together
ZIP_BATCH = 100  # invoices whose XML is held at once (~1 MB)

Progress = Callable[[int, int], None]


class ExportIntegrityError(DomainError):
    """The stored data does not match itself (e.g. an XML whose SHA-256 changed)."""

    code = "export_integrity"
    status = 500


@dataclass
class ExportResult:
    rows: int = 0
    totals: dict[str, int] = field(default_factory=dict)


# --- shared helpers ------------------------------------------------------------------


def _batches(iterable: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(iterable)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def month_bounds(period: date) -> tuple[datetime, datetime]:
    """[start, end) of the market's calendar month beginning on ``period``."""
    first = period.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return (
        datetime.combine(first, time.min, tzinfo=MARKET_TZ),
        datetime.combine(following, time.min, tzinfo=MARKET_TZ),
    )


def period_end(period: date) -> date:
    """The last day of the period's month."""
    return (period.replace(day=1) + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def local_date(moment: datetime | None) -> date | None:
    return moment.astimezone(MARKET_TZ).date() if moment else None


@lru_cache(maxsize=4096)
def ddmmyyyy(day: date | None) -> str:
    return f"{day.day:02d}/{day.month:02d}/{day.year:04d}" if day else ""


def csv_text(value: Any) -> Any:
    """A text cell of a CSV as Excel will not run it: text beginning with = + - @ (or a tab or
    carriage return) gets a leading apostrophe, which Excel shows as text (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv_row(values: Sequence[Any]) -> list[Any]:
    return [csv_text(value) for value in values]


def _tick(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


def invoice_selection(
    market: Market, period: date | None, invoice_ids: Sequence[int] | None = None
) -> QuerySet[Invoice]:
    """A market's invoices of a fee period (``Invoice.period``), or the listed ones."""
    invoices = Invoice.objects.filter(market=market)
    if invoice_ids is not None:
        return invoices.filter(pk__in=list(invoice_ids))
    return invoices.filter(period=period)


# The tax authority's code (MCCQT) is added by the authority after submission; invoices carry
# it once the invoicing app stores it in this field. Until then the column stays empty.
_AUTHORITY_CODE_FIELD = "tax_authority_code"


def _authority_code_field() -> str | None:
    names = {f.name for f in Invoice._meta.get_fields()}
    return _AUTHORITY_CODE_FIELD if _AUTHORITY_CODE_FIELD in names else None


# --- XLSX ------------------------------------------------------------------------------

DATE_FORMAT = xlsx.DATE_FORMAT
MONEY_FORMAT = "#,##0"
INVOICE_NUMBER_FORMAT = "00000000"


class SheetWriter:
    """A write-only worksheet (``exports.xlsx``): bold header row, frozen under it, column
    widths, and number formats applied to the given columns (0-based) of every row."""

    def __init__(
        self,
        workbook: Workbook,
        title: str,
        headers: Sequence[str],
        *,
        widths: Sequence[int] = (),
        formats: dict[int, str] | None = None,
        freeze: bool = True,
    ) -> None:
        self.ws = xlsx.create_sheet(workbook, title)
        for index, width in enumerate(widths, 1):
            self.ws.column_dimensions[get_column_letter(index)].width = width
        if freeze:
            self.ws.freeze_panes = "A2"
        self.styles = {
            index: xlsx.register_style(self.ws, number_format=number_format)
            for index, number_format in (formats or {}).items()
        }
        self.bold = xlsx.register_style(self.ws, bold=True)
        self.bold_styles = {
            index: xlsx.register_style(self.ws, number_format=number_format, bold=True)
            for index, number_format in (formats or {}).items()
        }
        self.ws.append([xlsx.Styled(text, self.bold) for text in headers])

    def append(self, values: list[Any]) -> None:
        for index, style in self.styles.items():
            value = values[index]
            if value is not None and value != "":
                values[index] = xlsx.Styled(value, style)
        self.ws.append(values)

    def append_bold(self, values: list[Any]) -> None:
        self.ws.append(
            [
                xlsx.Styled(value, self.bold_styles.get(index, self.bold))
                for index, value in enumerate(values)
            ]
        )


def _workbook() -> Workbook:
    return Workbook(write_only=True)


def _save(workbook: Workbook, out: BinaryIO) -> None:
    xlsx.save(workbook, out)


# --- invoice XML archive (ZIP) ---------------------------------------------------------

MANIFEST_NAME = "manifest.csv"
MANIFEST_HEADERS = [
    "Tệp",
    "Ký hiệu mẫu số",
    "Ký hiệu hóa đơn",
    "Số hóa đơn",
    "Ngày lập",
    "Tên người mua",
    "MST/CCCD người mua",
    "Tiền chưa thuế",
    "Tiền thuế GTGT",
    "Tổng thanh toán",
    "Trạng thái",
    "SHA-256",
]


def _entry_names(invoices: QuerySet[Invoice]) -> Callable[[str, str, str, int], str]:
    """``<KHHDon>_<SHDon>.xml``; in a folder per form (and per seller MST) only when the
    selection mixes them, since the same serial and number may then occur twice."""
    forms = set(invoices.order_by().values_list("form", flat=True).distinct())
    sellers = set(invoices.order_by().values_list("seller_tax_code", flat=True).distinct())

    def name(seller: str, form: str, serial: str, number: int) -> str:
        folder = ""
        if len(sellers) > 1:
            folder += f"{seller}/"
        if len(forms) > 1:
            folder += f"{form}/"
        return f"{folder}{serial}_{number}.xml"

    return name


def write_xml_zip(
    *,
    market: Market,
    period: date | None,
    out: BinaryIO,
    progress: Progress | None = None,
    invoice_ids: Sequence[int] | None = None,
    compresslevel: int = 6,
) -> ExportResult:
    """The signed invoices, each the exact stored bytes, plus ``manifest.csv`` (UTF-8 with
    BOM) giving serial, number, date, buyer, totals and the SHA-256 of each file.

    The SHA-256 is computed over the bytes written and must equal the one stored at signing:
    a mismatch stops the export rather than archive a document that changed.
    """
    invoices = invoice_selection(market, period, invoice_ids)
    total = invoices.count()
    entry_name = _entry_names(invoices)
    statuses = dict(Invoice.Status.choices)
    meta = (
        invoices.order_by("form", "serial_code", "number", "pk")
        .values_list(
            "pk",
            "seller_tax_code",
            "form",
            "serial_code",
            "number",
            "issue_date",
            "buyer_name",
            "buyer_tax_code",
            "buyer_citizen_id",
            "total_net_vnd",
            "total_vat_vnd",
            "total_payable_vnd",
            "status",
            "sha256",
            "signing_time",
        )
        .iterator(chunk_size=CHUNK)
    )
    result = ExportResult(totals={"total_payable_vnd": 0})
    _tick(progress, 0, total)
    with (
        tempfile.TemporaryFile() as manifest_file,
        zipfile.ZipFile(
            out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=compresslevel
        ) as archive,
    ):
        manifest_text = io.TextIOWrapper(manifest_file, encoding="utf-8-sig", newline="")
        manifest = csv.writer(manifest_text)
        manifest.writerow(MANIFEST_HEADERS)
        for batch in _batches(meta, ZIP_BATCH):
            # Only this batch's documents are in memory (the big column, fetched by key).
            documents = dict(
                Invoice.objects.filter(pk__in=[row[0] for row in batch]).values_list("pk", "xml")
            )
            for (
                pk,
                seller,
                form,
                serial,
                number,
                issue_date,
                buyer,
                buyer_tax_code,
                buyer_citizen_id,
                net,
                vat,
                payable,
                status,
                stored_sha256,
                signing_time,
            ) in batch:
                data = bytes(documents.pop(pk))
                digest = hashlib.sha256(data).hexdigest()
                if digest != stored_sha256:
                    raise ExportIntegrityError(
                        _(
                            "Hóa đơn %(form)s%(serial)s số %(number)s: SHA-256 của XML đã lưu "
                            "không khớp với lúc ký; dừng xuất, hãy báo quản trị."
                        )
                        % {"form": form, "serial": serial, "number": number}
                    )
                name = entry_name(seller, form, serial, number)
                info = zipfile.ZipInfo(name, date_time=_zip_time(signing_time))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, data, compresslevel=compresslevel)
                manifest.writerow(
                    _csv_row(
                        [
                            name,
                            form,
                            serial,
                            number,
                            ddmmyyyy(issue_date),
                            buyer,
                            buyer_tax_code or buyer_citizen_id,
                            net,
                            vat,
                            payable,
                            statuses.get(status, status),
                            digest,
                        ]
                    )
                )
                result.rows += 1
                result.totals["total_payable_vnd"] += payable
            _tick(progress, result.rows, total)
        manifest_text.flush()
        manifest_file.seek(0)
        with archive.open(MANIFEST_NAME, "w") as entry:
            shutil.copyfileobj(manifest_file, entry)
        manifest_text.detach()
    _tick(progress, total, total)
    return result


def _zip_time(moment: datetime | None) -> tuple[int, int, int, int, int, int]:
    local = (moment or datetime(1980, 1, 1, tzinfo=MARKET_TZ)).astimezone(MARKET_TZ)
    return (max(local.year, 1980), local.month, local.day, local.hour, local.minute, local.second)


# --- bảng kê hóa đơn (spec §6.3) --------------------------------------------------------

BANGKE_HEADERS = [
    "STT",
    "Ký hiệu mẫu số, ký hiệu hóa đơn",
    "Số hóa đơn",
    "Ngày lập",
    "Mã CQT",
    "Tên người mua",
    "MST/CCCD người mua",
    "Mã ki-ốt/sạp",
    "Doanh thu chưa thuế",
    "Thuế suất",
    "Tiền thuế GTGT",
    "Tổng cộng",
    "Ngày thanh toán",
    "Mã tham chiếu ngân hàng",
    "Trạng thái hóa đơn",
]
BANGKE_TOTAL_LABEL = "Tổng cộng"
_RATE_ORDER = {rate: index for index, rate in enumerate(("", *RATE_CODES))}


@dataclass(frozen=True)
class BangKeRow:
    """One row: an invoice, or one rate group of an invoice with several rates."""

    invoice_id: int
    label: str
    number: int
    issue_date: date
    authority_code: str
    buyer_name: str
    buyer_id: str
    stall_code: str
    net_vnd: int
    rate: str
    vat_vnd: int
    paid_on: date | None
    references: str
    status: str
    counted: bool  # in the totals row: every invoice but those replaced


def _settlements(demand_ids: Iterable[int]) -> dict[int, tuple[date | None, str]]:
    """``{demand_id: (payment date, "ref1, ref2")}`` from the live money allocations of the
    demands (neither reversed nor reversals): the transfers that settled them."""
    found: dict[int, tuple[datetime | None, list[str]]] = {}
    rows = (
        Allocation.objects.filter(
            demand_id__in=list(demand_ids),
            kind=Allocation.Kind.DEMAND,
            amount_vnd__gt=0,
            reverses__isnull=True,
            reversed_by__isnull=True,
        )
        .order_by("demand_id", "transaction__bank_time", "id")
        .values_list(
            "demand_id",
            "transaction__bank_reference",
            "transaction__provider_transaction_id",
            "transaction__bank_time",
        )
    )
    for demand_id, reference, provider_id, bank_time in rows:
        latest, references = found.setdefault(demand_id, (None, []))
        reference = reference or provider_id
        if reference and reference not in references:
            references.append(reference)
        if bank_time and (latest is None or bank_time > latest):
            latest = bank_time
        found[demand_id] = (latest, references)
    return {
        demand_id: (local_date(latest), ", ".join(references))
        for demand_id, (latest, references) in found.items()
    }


def _rate_groups(invoice_ids: Iterable[int]) -> dict[int, list[tuple[str, int, int]]]:
    """``{invoice_id: [(rate, net, vat), …]}`` from the invoice lines. Line VAT is gross − net
    per line (invoicing.rounding), so a group's line VAT adds up to its TThue exactly."""
    groups: dict[int, list[tuple[str, int, int]]] = defaultdict(list)
    rows = (
        InvoiceLine.objects.filter(invoice_id__in=list(invoice_ids))
        .values("invoice_id", "vat_rate")
        .annotate(net=Sum("net_vnd"), vat=Sum("vat_vnd"))
        .order_by()
    )
    for row in rows:
        groups[row["invoice_id"]].append((row["vat_rate"], row["net"] or 0, row["vat"] or 0))
    for items in groups.values():
        items.sort(key=lambda item: _RATE_ORDER.get(item[0], len(_RATE_ORDER)))
    return groups


def _status_text(
    kind: str,
    status: str,
    related: tuple[str, str, int] | None,
    labels: dict[str, str],
) -> str:
    text = labels.get(status, status)
    if kind != Invoice.Kind.ORIGINAL:
        kind_label = labels.get(kind, kind)
        target = f" {related[0]}{related[1]} – {related[2]:08d}" if related else ""
        text = _("%(kind)s cho%(target)s; %(status)s") % {
            "kind": kind_label,
            "target": target,
            "status": text.lower(),
        }
    return text


def bangke_rows(
    *,
    market: Market,
    period: date | None,
    progress: Progress | None = None,
    invoice_ids: Sequence[int] | None = None,
) -> Iterator[BangKeRow]:
    """The rows of the bảng kê, in order of form, serial and number: one per invoice, or one
    per rate group when an invoice has several VAT rates (§6.3)."""
    invoices = invoice_selection(market, period, invoice_ids)
    total = invoices.count()
    authority = _authority_code_field()
    # Labels in the active language, once per export (``choices`` translates on each use).
    labels = {
        value: str(label) for value, label in (*Invoice.Status.choices, *Invoice.Kind.choices)
    }
    columns = [
        "pk",
        "form",
        "serial_code",
        "number",
        "issue_date",
        "buyer_name",
        "buyer_tax_code",
        "buyer_citizen_id",
        "stall_code",
        "total_net_vnd",
        "total_vat_vnd",
        "kind",
        "status",
        "demand_id",
        "demand__paid_at",
        "related__form",
        "related__serial_code",
        "related__number",
    ]
    if authority:
        columns.append(authority)
    stream = (
        invoices.order_by("form", "serial_code", "number", "pk")
        .values_list(*columns)
        .iterator(chunk_size=CHUNK)
    )
    done = 0
    _tick(progress, 0, total)
    for batch in _batches(stream, BATCH):
        groups = _rate_groups(row[0] for row in batch)
        settled = _settlements({row[13] for row in batch})
        for row in batch:
            (
                pk,
                form,
                serial,
                number,
                issue_date,
                buyer_name,
                buyer_tax_code,
                buyer_citizen_id,
                stall_code,
                net,
                vat,
                kind,
                status,
                demand_id,
                paid_at,
                related_form,
                related_serial,
                related_number,
            ) = row[:18]
            code = (row[18] or "") if authority else ""
            paid_on, references = settled.get(demand_id, (None, ""))
            paid_on = paid_on or local_date(paid_at)
            related = (related_form, related_serial, related_number) if related_number else None
            items = groups.get(pk) or [("", net, vat)]
            if len(items) > 1:
                # Note lines (TChat 4) carry no amount and no rate: not a rate group.
                items = [item for item in items if item[0] or item[1] or item[2]] or items[:1]
            for rate, group_net, group_vat in items:
                yield BangKeRow(
                    invoice_id=pk,
                    label=f"{form}{serial}",
                    number=number,
                    issue_date=issue_date,
                    authority_code=code,
                    buyer_name=buyer_name,
                    buyer_id=buyer_tax_code or buyer_citizen_id,
                    stall_code=stall_code,
                    net_vnd=group_net,
                    rate=rate,
                    vat_vnd=group_vat,
                    paid_on=paid_on,
                    references=references,
                    status=_status_text(kind, status, related, labels),
                    counted=status != Invoice.Status.REPLACED,
                )
        done += len(batch)
        _tick(progress, done, total)


class _Totals:
    def __init__(self) -> None:
        self.rows = 0
        self.net = self.vat = self.payable = 0

    def add(self, row: BangKeRow) -> None:
        self.rows += 1
        if row.counted:
            self.net += row.net_vnd
            self.vat += row.vat_vnd
            self.payable += row.net_vnd + row.vat_vnd

    def result(self) -> ExportResult:
        return ExportResult(
            rows=self.rows,
            totals={
                "total_net_vnd": self.net,
                "total_vat_vnd": self.vat,
                "total_payable_vnd": self.payable,
            },
        )


def write_bangke_xlsx(
    *,
    market: Market,
    period: date | None,
    out: BinaryIO,
    progress: Progress | None = None,
    invoice_ids: Sequence[int] | None = None,
) -> ExportResult:
    """Bảng kê as one sheet: Vietnamese headers, numbers as numbers (``#,##0``), dates as Excel
    dates shown ``dd/mm/yyyy``, and a totals row that leaves out replaced invoices (their
    replacement carries the figures)."""
    workbook = _workbook()
    title = f"Bảng kê {period:%m-%Y}" if period else "Bảng kê"
    sheet = SheetWriter(
        workbook,
        title,
        BANGKE_HEADERS,
        widths=(6, 12, 11, 11, 14, 30, 15, 10, 15, 8, 14, 15, 12, 28, 30),
        formats={
            2: INVOICE_NUMBER_FORMAT,
            3: DATE_FORMAT,
            8: MONEY_FORMAT,
            10: MONEY_FORMAT,
            11: MONEY_FORMAT,
            12: DATE_FORMAT,
        },
    )
    totals = _Totals()
    for index, row in enumerate(
        bangke_rows(market=market, period=period, progress=progress, invoice_ids=invoice_ids), 1
    ):
        totals.add(row)
        sheet.append(
            [
                index,
                row.label,
                row.number,
                row.issue_date,
                row.authority_code or None,
                row.buyer_name,
                row.buyer_id or None,
                row.stall_code,
                row.net_vnd,
                row.rate or None,
                row.vat_vnd,
                row.net_vnd + row.vat_vnd,
                row.paid_on,
                row.references or None,
                row.status,
            ]
        )
    sheet.append_bold(
        [
            None,
            BANGKE_TOTAL_LABEL,
            None,
            None,
            None,
            None,
            None,
            None,
            totals.net,
            None,
            totals.vat,
            totals.payable,
            None,
            None,
            _("Không gồm hóa đơn đã bị thay thế"),
        ]
    )
    _save(workbook, out)
    return totals.result()


def write_bangke_csv(
    *,
    market: Market,
    period: date | None,
    out: BinaryIO,
    progress: Progress | None = None,
    invoice_ids: Sequence[int] | None = None,
) -> ExportResult:
    """The same rows as CSV, UTF-8 with BOM (so Excel reads the Vietnamese), comma-separated,
    amounts as plain integers and dates ``dd/mm/yyyy``."""
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="")
    writer = csv.writer(text)
    writer.writerow(BANGKE_HEADERS)
    totals = _Totals()
    for index, row in enumerate(
        bangke_rows(market=market, period=period, progress=progress, invoice_ids=invoice_ids), 1
    ):
        totals.add(row)
        writer.writerow(
            _csv_row(
                [
                    index,
                    row.label,
                    row.number,
                    ddmmyyyy(row.issue_date),
                    row.authority_code,
                    row.buyer_name,
                    row.buyer_id,
                    row.stall_code,
                    row.net_vnd,
                    row.rate,
                    row.vat_vnd,
                    row.net_vnd + row.vat_vnd,
                    ddmmyyyy(row.paid_on),
                    row.references,
                    row.status,
                ]
            )
        )
    writer.writerow(
        [
            "",
            BANGKE_TOTAL_LABEL,
            "",
            "",
            "",
            "",
            "",
            "",
            totals.net,
            "",
            totals.vat,
            totals.payable,
            "",
            "",
            _("Không gồm hóa đơn đã bị thay thế"),
        ]
    )
    text.flush()
    text.detach()
    return totals.result()


# --- MISA: chứng từ bán hàng (spec §6.1 (a)) --------------------------------------------

MISA_SALES_SHEET = "Chứng từ bán hàng"
MISA_SALES_HEADERS = [
    "Hiển thị trên sổ",
    "Hình thức bán hàng",
    "Phương thức thanh toán",
    "Kiêm phiếu xuất kho",
    "XK vào khu phi thuế quan và các TH được coi như XK",
    "Lập kèm hóa đơn",
    "Đã lập hóa đơn",
    "Ngày hạch toán (*)",
    "Ngày chứng từ (*)",
    "Số chứng từ (*)",
    "Số phiếu xuất",
    "Lý do xuất",
    "Số hóa đơn",
    "Ngày hóa đơn",
    "Mã khách hàng",
    "Tên khách hàng",
    "Địa chỉ",
    "Mã số thuế",
    "Diễn giải",
    "Nộp vào TK",
    "NV bán hàng",
    "Mã hàng (*)",
    "Tên hàng",
    "Hàng khuyến mại",
    "TK Tiền/Chi phí/Nợ (*)",
    "TK Doanh thu/Có (*)",
    "ĐVT",
    "Số lượng",
    "Đơn giá sau thuế",
    "Đơn giá",
    "Thành tiền",
    "Tỷ lệ CK (%)",
    "Tiền chiết khấu",
    "TK chiết khấu",
    "Giá tính thuế XK",
    "% thuế XK",
    "Tiền thuế XK",
    "TK thuế XK",
    "% thuế GTGT",
    "Tỷ lệ tính thuế (Thuế suất KHAC)",
    "Tiền thuế GTGT",
    "TK thuế GTGT",
    "HH không TH trên tờ khai thuế GTGT",
    "Kho",
    "TK giá vốn",
    "TK Kho",
    "Đơn giá vốn",
    "Tiền vốn",
    "Hàng hóa giữ hộ/bán hộ",
]

# MISA "Mã hàng" of each fee kind: the accountant creates these once in MISA's item list (or
# overrides them per market in MisaAccounts.item_codes).
DEFAULT_ITEM_CODES = {
    "rent": "DTBH",
    "management": "PHIQL",
    "sanitation": "VESINH",
    "security": "ANNINH",
    "electricity": "DIEN",
    "water": "NUOC",
    "daily": "VENGAY",
    "entry": "VELUOT",
    "adjustment": "DIEUCHINH",
    "other": "KHAC",
}

# Cell values of the flag columns, as third-party exporters fill them [C, domain.md §6.1]:
# sold on credit (the receivable is settled by the bank-receipt sheet), invoice not created by
# MISA (it exists already, issued and signed by market40), invoice number and date given.
UNPAID = 0
INVOICE_NOT_CREATED_BY_MISA = 0
INVOICE_ALREADY_ISSUED = 1


def _fee_kinds(demand_ids: Iterable[int]) -> dict[int, list[tuple[str, str]]]:
    """``{demand_id: [(fee_kind, description), …]}`` in line order: invoice line *n* of an
    original or replacement invoice was built from the demand's line *n* (invoicing.services)."""
    lines: dict[int, list[tuple[str, str]]] = defaultdict(list)
    rows = (
        DemandLine.objects.filter(demand_id__in=list(demand_ids))
        .order_by("demand_id", "id")
        .values_list("demand_id", "fee_kind", "description")
    )
    for demand_id, fee_kind, description in rows:
        lines[demand_id].append((fee_kind, description))
    return lines


def _item_kind(
    demand_lines: list[tuple[str, str]], position: int, name: str, invoice_kind: str
) -> str:
    if 0 < position <= len(demand_lines) and demand_lines[position - 1][1] == name:
        return demand_lines[position - 1][0]
    for fee_kind, description in demand_lines:
        if description == name:
            return fee_kind
    return "adjustment" if invoice_kind == Invoice.Kind.ADJUSTMENT else "other"


def write_misa_sales(
    *,
    market: Market,
    period: date | None,
    out: BinaryIO,
    progress: Progress | None = None,
    invoice_ids: Sequence[int] | None = None,
) -> ExportResult:
    """One row per invoice line (goods and services lines; note lines carry no amount), one
    voucher per invoice (``BH`` + form + serial + 8-digit number, stable across re-exports so
    MISA refuses a second import instead of doubling revenue). Replaced invoices are left out:
    their replacement is the valid document. Debit the receivable account, credit revenue and
    output VAT; the bank-receipt sheet then clears the receivable."""
    accounts = MisaAccounts.for_market(market)
    codes = {**DEFAULT_ITEM_CODES, **(accounts.item_codes or {})}
    invoices = invoice_selection(market, period, invoice_ids).exclude(
        status=Invoice.Status.REPLACED
    )
    lines = InvoiceLine.objects.filter(
        invoice__in=invoices.values("pk"), nature=InvoiceLine.Nature.GOODS
    )
    total = lines.count()
    stream = (
        lines.order_by("invoice__form", "invoice__serial_code", "invoice__number", "number")
        .values_list(
            "number",
            "name",
            "unit",
            "quantity",
            "unit_price",
            "net_vnd",
            "vat_rate",
            "vat_vnd",
            "invoice__form",
            "invoice__serial_code",
            "invoice__number",
            "invoice__issue_date",
            "invoice__period",
            "invoice__buyer_code",
            "invoice__buyer_name",
            "invoice__buyer_address",
            "invoice__buyer_tax_code",
            "invoice__stall_code",
            "invoice__demand_id",
            "invoice__kind",
        )
        .iterator(chunk_size=CHUNK)
    )
    workbook = _workbook()
    sheet = xlsx.create_sheet(workbook, MISA_SALES_SHEET)
    sheet.append(MISA_SALES_HEADERS)
    result = ExportResult(totals={"net_vnd": 0, "vat_vnd": 0})
    _tick(progress, 0, total)
    for batch in _batches(stream, BATCH):
        fee_kinds = _fee_kinds({row[18] for row in batch})
        for (
            position,
            name,
            unit,
            quantity,
            unit_price,
            net,
            rate,
            vat,
            form,
            serial,
            number,
            issue_date,
            fee_period,
            buyer_code,
            buyer_name,
            buyer_address,
            buyer_tax_code,
            stall_code,
            demand_id,
            invoice_kind,
        ) in batch:
            day = ddmmyyyy(issue_date)
            vat_invoice = bool(rate)
            item = codes.get(_item_kind(fee_kinds.get(demand_id, []), position, name, invoice_kind))
            sheet.append(
                [
                    None,  # 1 Hiển thị trên sổ
                    None,  # 2 Hình thức bán hàng
                    UNPAID,  # 3 Phương thức thanh toán
                    None,  # 4 Kiêm phiếu xuất kho
                    None,  # 5 XK vào khu phi thuế quan
                    INVOICE_NOT_CREATED_BY_MISA,  # 6 Lập kèm hóa đơn
                    INVOICE_ALREADY_ISSUED,  # 7 Đã lập hóa đơn
                    day,  # 8 Ngày hạch toán (*)
                    day,  # 9 Ngày chứng từ (*)
                    f"BH{form}{serial}{number:08d}",  # 10 Số chứng từ (*)
                    None,  # 11 Số phiếu xuất
                    None,  # 12 Lý do xuất
                    f"{number:08d}",  # 13 Số hóa đơn
                    day,  # 14 Ngày hóa đơn
                    buyer_code or None,  # 15 Mã khách hàng
                    buyer_name,  # 16 Tên khách hàng
                    buyer_address or None,  # 17 Địa chỉ
                    buyer_tax_code or None,  # 18 Mã số thuế
                    f"Phí chợ kỳ {fee_period:%m/%Y}, sạp {stall_code}, "
                    f"hóa đơn {form}{serial} số {number}",  # 19 Diễn giải
                    None,  # 20 Nộp vào TK (sold on credit: no account)
                    None,  # 21 NV bán hàng
                    item,  # 22 Mã hàng (*)
                    name,  # 23 Tên hàng
                    None,  # 24 Hàng khuyến mại
                    accounts.receivable_account,  # 25 TK Tiền/Chi phí/Nợ (*)
                    accounts.revenue_account,  # 26 TK Doanh thu/Có (*)
                    unit or None,  # 27 ĐVT
                    quantity,  # 28 Số lượng
                    # 29 Đơn giá sau thuế: left empty. The net unit price (DGia, up to six
                    # decimals, multiplying back to the amount exactly) and the amounts are
                    # given; a second, rounded price would only invite MISA to recompute.
                    None,
                    unit_price,  # 30 Đơn giá
                    net,  # 31 Thành tiền
                    None,  # 32 Tỷ lệ CK (%)
                    None,  # 33 Tiền chiết khấu
                    None,  # 34 TK chiết khấu
                    None,  # 35 Giá tính thuế XK
                    None,  # 36 % thuế XK
                    None,  # 37 Tiền thuế XK
                    None,  # 38 TK thuế XK
                    rate or None,  # 39 % thuế GTGT
                    None,  # 40 Tỷ lệ tính thuế (Thuế suất KHAC)
                    vat if vat_invoice else None,  # 41 Tiền thuế GTGT
                    accounts.vat_account if vat_invoice else None,  # 42 TK thuế GTGT
                ]
            )
            result.rows += 1
            result.totals["net_vnd"] += net
            result.totals["vat_vnd"] += vat if vat_invoice else 0
        _tick(progress, result.rows, total)
    _save(workbook, out)
    return result


# --- MISA: thu tiền gửi (spec §6.1 (b)) ---------------------------------------------------

MISA_RECEIPTS_SHEET = "Thu tiền gửi"
MISA_RECEIPTS_HEADERS = [
    "Ngày hạch toán (*)",
    "Ngày chứng từ (*)",
    "Số chứng từ (*)",
    "Mã đối tượng",
    "Tên đối tượng",
    "Địa chỉ",
    "Nộp vào TK",
    "Mở tại ngân hàng",
    "Lý do thu",
    "Diễn giải lý do thu",
    "Mã nhân viên thu",
    "Diễn giải (hạch toán)",
    "TK Nợ (*)",
    "TK Có (*)",
    "Số tiền",
    "Mã đối tượng (hạch toán)",
    "Số khế ước đi vay",
    "Số khế ước cho vay",
    "Mã khoản mục chi phí",
    "Mã đơn vị",
    "Mã đối tượng THCP",
    "Mã công trình",
    "Số đơn đặt hàng",
    "Số đơn mua hàng",
    "Số hợp đồng mua",
    "Số hợp đồng bán",
    "Mã thống kê",
    "CP không hợp lý",
]
RECEIPT_REASON = "Thu tiền khách hàng (không theo hóa đơn)"
RECEIPT_REASON_OTHER = "Thu khác"


def period_transactions(market: Market, period: date) -> QuerySet[BankTransaction]:
    """Money that came in during the month (bank time, market calendar): incoming, not a
    provider's test, not marked as needing no match."""
    start, end = month_bounds(period)
    return BankTransaction.objects.filter(
        connection__market=market,
        direction=BankTransaction.Direction.IN,
        is_test=False,
        bank_time__gte=start,
        bank_time__lt=end,
    ).exclude(status=BankTransaction.Status.IGNORED)


def _receipt_allocations(transaction_ids: list[int]) -> dict[int, list[tuple]]:
    """The allocations that say where each transfer's money went: live (neither reversed
    nor a reversal) and positive, to a demand or to a holder's credit. Credit later applied
    to a demand is left out: that money was booked when it arrived, as the credit."""
    found: dict[int, list[tuple]] = defaultdict(list)
    rows = (
        Allocation.objects.filter(
            transaction_id__in=transaction_ids,
            kind__in=[Allocation.Kind.DEMAND, Allocation.Kind.CREDIT],
            amount_vnd__gt=0,
            reverses__isnull=True,
            reversed_by__isnull=True,
        )
        .exclude(rule="credit_applied")
        .order_by("transaction_id", "id")
        .values_list(
            "transaction_id",
            "kind",
            "amount_vnd",
            "demand__payment_code",
            "demand__period",
            "demand__stall__code",
            "demand__holder__code",
            "demand__holder__full_name",
            "demand__holder__address",
            "holder__code",
            "holder__full_name",
            "holder__address",
        )
    )
    for row in rows:
        found[row[0]].append(row[1:])
    return found


@dataclass(frozen=True)
class _ReceiptHead:
    """What every row of one NTTK voucher (one transfer) repeats."""

    day: str
    number: str
    account_number: str
    bank_name: str
    debit_account: str
    reference: str

    def row(
        self,
        party: tuple[str | None, str | None, str | None],
        reason: str,
        text: str,
        credit_account: str,
        amount: int,
    ) -> list[Any]:
        code, name, address = party
        text += self.reference
        return [
            self.day,  # Ngày hạch toán (*)
            self.day,  # Ngày chứng từ (*)
            self.number,  # Số chứng từ (*)
            code or None,  # Mã đối tượng
            name or None,  # Tên đối tượng
            address or None,  # Địa chỉ
            self.account_number,  # Nộp vào TK
            self.bank_name,  # Mở tại ngân hàng
            reason,  # Lý do thu
            text,  # Diễn giải lý do thu
            None,  # Mã nhân viên thu
            text,  # Diễn giải (hạch toán)
            self.debit_account,  # TK Nợ (*)
            credit_account,  # TK Có (*)
            amount,  # Số tiền
            code or None,  # Mã đối tượng (hạch toán)
        ]


def write_misa_receipts(
    *,
    market: Market,
    period: date | None,
    out: BinaryIO,
    progress: Progress | None = None,
    invoice_ids: Sequence[int] | None = None,
) -> ExportResult:
    """One voucher (NTTK00001, NTTK00002, …) per transfer received in the month, in bank-time
    order, with one row per allocation: debit the bank account, credit the receivable of the
    stall holder (the demand's, or the holder's credit for a surplus). Money not matched yet
    gets its own row on the suspense account, so the vouchers add up to what the bank
    received and MISA's bank book agrees with the statement."""
    accounts = MisaAccounts.for_market(market)
    transactions = period_transactions(market, period)
    total = transactions.count()
    stream = (
        transactions.order_by("bank_time", "pk")
        .values_list(
            "pk",
            "bank_time",
            "amount_vnd",
            "allocated_vnd",
            "credit_vnd",
            "content",
            "bank_reference",
            "counter_name",
            "connection__account__account_number",
            "connection__account__bank__short_name",
        )
        .iterator(chunk_size=CHUNK)
    )
    workbook = _workbook()
    sheet = xlsx.create_sheet(workbook, MISA_RECEIPTS_SHEET)
    sheet.append(MISA_RECEIPTS_HEADERS)
    result = ExportResult(totals={"amount_vnd": 0, "unmatched_vnd": 0})
    voucher = 0
    done = 0
    _tick(progress, 0, total)
    for batch in _batches(stream, BATCH):
        allocations = _receipt_allocations([row[0] for row in batch])
        for (
            pk,
            bank_time,
            amount,
            allocated,
            credit,
            content,
            reference,
            counter_name,
            account_number,
            bank_name,
        ) in batch:
            voucher += 1
            head = _ReceiptHead(
                day=ddmmyyyy(local_date(bank_time)),
                number=f"NTTK{voucher:05d}",
                account_number=account_number,
                bank_name=bank_name,
                debit_account=accounts.bank_account,
                reference=f" (GD {reference})" if reference else "",
            )
            for (
                kind,
                value,
                payment_code,
                fee_period,
                stall_code,
                demand_holder_code,
                demand_holder_name,
                demand_holder_address,
                holder_code,
                holder_name,
                holder_address,
            ) in allocations.get(pk, []):
                if kind == Allocation.Kind.DEMAND:
                    party = (demand_holder_code, demand_holder_name, demand_holder_address)
                    text = (
                        f"Thu phí chợ kỳ {fee_period:%m/%Y}, sạp {stall_code}, phiếu {payment_code}"
                    )
                else:
                    party = (holder_code, holder_name, holder_address)
                    text = "Tiền thừa ghi có cho tiểu thương"
                sheet.append(
                    head.row(party, RECEIPT_REASON, text, accounts.receivable_account, value)
                )
                result.rows += 1
            unmatched = amount - allocated - credit
            if unmatched > 0:
                text = f"Tiền chưa xác định người nộp: {' '.join((content or '').split())[:120]}"
                sheet.append(
                    head.row(
                        (None, counter_name, None),
                        RECEIPT_REASON_OTHER,
                        text,
                        accounts.suspense_account,
                        unmatched,
                    )
                )
                result.rows += 1
                result.totals["unmatched_vnd"] += unmatched
            result.totals["amount_vnd"] += amount
        done += len(batch)
        _tick(progress, done, total)
    result.totals["vouchers"] = voucher
    _save(workbook, out)
    return result


# --- aged debt (công nợ theo tuổi nợ) ------------------------------------------------------

AGED_DEBT_SHEET = "Công nợ"
AGED_DEBT_HEADERS = [
    "STT",
    "Mã tiểu thương",
    "Tên tiểu thương",
    "Sạp/ki-ốt",
    "Số phiếu còn nợ",
    "Trong hạn",
    "Quá hạn 1–30 ngày",
    "Quá hạn 31–60 ngày",
    "Quá hạn 61–90 ngày",
    "Quá hạn trên 90 ngày",
    "Tổng còn nợ",
    "Tiền thừa (ghi có)",
    "Còn phải thu sau trừ tiền thừa",
]
AGE_LIMITS = (0, 30, 60, 90)  # days past due: ≤0 current, 1–30, 31–60, 61–90, > 90


def age_bucket(days_past_due: int) -> int:
    for index, limit in enumerate(AGE_LIMITS):
        if days_past_due <= limit:
            return index
    return len(AGE_LIMITS)


@dataclass
class HolderDebt:
    code: str
    name: str
    stalls: set[str] = field(default_factory=set)
    demands: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(AGE_LIMITS) + 1))
    credit_vnd: int = 0

    @property
    def outstanding_vnd(self) -> int:
        return sum(self.buckets)


def aged_debts(
    *, market: Market, period: date, progress: Progress | None = None
) -> Iterator[HolderDebt]:
    """Each stall holder who owes money or holds credit, by holder code: what each open demand
    billed for the period or earlier still owes, aged by its days past due counted at the
    period's last day; and the holder's credit. Amounts are the ledger as it stands when the
    export runs (a demand's ``paid_vnd`` is the sum of its payment and write-off rows)."""
    end_day = period_end(period)
    holders = StallHolder.objects.filter(market=market)
    total = holders.count()
    stream = holders.order_by("code", "pk").values_list("pk", "code", "full_name")
    done = 0
    _tick(progress, 0, total)
    for batch in _batches(stream.iterator(chunk_size=CHUNK), BATCH):
        ids = [row[0] for row in batch]
        debts = {pk: HolderDebt(code=code, name=name) for pk, code, name in batch}
        owing = FeeDemand.objects.filter(
            holder_id__in=ids,
            market=market,
            period__lte=period,
            status__in=[FeeDemand.Status.OPEN, FeeDemand.Status.PARTIAL],
        ).values_list("holder_id", "stall__code", "due_date", "total_vnd", "paid_vnd")
        for holder_id, stall_code, due_date, billed, paid in owing:
            if billed <= paid:
                continue
            debt = debts[holder_id]
            debt.stalls.add(stall_code)
            debt.demands += 1
            debt.buckets[age_bucket((end_day - due_date).days)] += billed - paid
        credits = (
            Allocation.objects.filter(holder_id__in=ids, kind=Allocation.Kind.CREDIT)
            .order_by()
            .values("holder_id")
            .annotate(s=Sum("amount_vnd"))
        )
        for item in credits:
            debts[item["holder_id"]].credit_vnd = item["s"] or 0
        for pk, _code, _name in batch:
            debt = debts[pk]
            if debt.outstanding_vnd > 0 or debt.credit_vnd > 0:
                yield debt
        done += len(batch)
        _tick(progress, done, total)


def write_aged_debt(
    *,
    market: Market,
    period: date | None,
    out: BinaryIO,
    progress: Progress | None = None,
    invoice_ids: Sequence[int] | None = None,
) -> ExportResult:
    workbook = _workbook()
    money = dict.fromkeys(range(5, 13), MONEY_FORMAT)
    sheet = SheetWriter(
        workbook,
        AGED_DEBT_SHEET,
        AGED_DEBT_HEADERS,
        widths=(6, 14, 28, 16, 10, 14, 14, 14, 14, 14, 15, 14, 16),
        formats=money,
    )
    sums = [0] * 8
    result = ExportResult()
    for index, debt in enumerate(aged_debts(market=market, period=period, progress=progress), 1):
        figures = [
            *debt.buckets,
            debt.outstanding_vnd,
            debt.credit_vnd,
            debt.outstanding_vnd - debt.credit_vnd,
        ]
        sums = [a + b for a, b in zip(sums, figures, strict=True)]
        sheet.append(
            [index, debt.code, debt.name, ", ".join(sorted(debt.stalls)), debt.demands, *figures]
        )
        result.rows += 1
    sheet.append_bold(
        [None, "Tổng cộng", f"Đến hết ngày {ddmmyyyy(period_end(period))}", None, None, *sums]
    )
    result.totals = {"outstanding_vnd": sums[5], "credit_vnd": sums[6]}
    _save(workbook, out)
    return result


# --- collections (thu tiền theo ngày, theo tài khoản; chưa khớp; tiền thừa) ---------------

RECEIPTS_DAY_HEADERS = [
    "Ngày",
    "Số giao dịch",
    "Tiền vào",
    "Đã phân bổ vào phiếu",
    "Ghi có (tiền thừa)",
    "Chưa khớp",
]
RECEIPTS_CONNECTION_HEADERS = [
    "Kết nối",
    "Nhà cung cấp",
    "Ngân hàng",
    "Số tài khoản",
    "Số giao dịch",
    "Tiền vào",
    "Đã phân bổ vào phiếu",
    "Ghi có (tiền thừa)",
    "Chưa khớp",
]
UNMATCHED_HEADERS = [
    "Thời điểm giao dịch",
    "Ngân hàng",
    "Số tài khoản",
    "Mã tham chiếu",
    "Người chuyển",
    "Nội dung chuyển khoản",
    "Số tiền",
    "Chưa khớp",
    "Lý do",
]
CREDIT_HEADERS = ["Mã tiểu thương", "Tên tiểu thương", "Tiền thừa (ghi có)"]


def write_receipts(
    *,
    market: Market,
    period: date | None,
    out: BinaryIO,
    progress: Progress | None = None,
    invoice_ids: Sequence[int] | None = None,
) -> ExportResult:
    """Four sheets: collections per day of the month and per bank connection (money received
    and where it went); transfers received up to the end of the period that are still not
    (fully) matched; and the credit holders keep from transfers received up to the end of
    the period. Allocations are as the ledger stands when the export runs."""
    start, end = month_bounds(period)
    received = period_transactions(market, period)
    workbook = _workbook()
    money = MONEY_FORMAT
    steps_total = 4
    _tick(progress, 0, steps_total)

    by_day = SheetWriter(
        workbook,
        "Theo ngày",
        RECEIPTS_DAY_HEADERS,
        widths=(12, 12, 16, 18, 16, 14),
        formats={0: DATE_FORMAT, 2: money, 3: money, 4: money, 5: money},
    )
    daily = {
        row["day"]: row
        for row in received.annotate(day=TruncDate("bank_time", tzinfo=MARKET_TZ))
        .order_by()
        .values("day")
        .annotate(
            n=Count("pk"),
            amount=Sum("amount_vnd"),
            allocated=Sum("allocated_vnd"),
            credit=Sum("credit_vnd"),
        )
    }
    sums = [0] * 5
    day = start.date()
    while day < end.date():
        row = daily.get(day) or {}
        figures = [
            row.get("n", 0),
            row.get("amount") or 0,
            row.get("allocated") or 0,
            row.get("credit") or 0,
        ]
        figures.append(figures[1] - figures[2] - figures[3])
        sums = [a + b for a, b in zip(sums, figures, strict=True)]
        by_day.append([day, *figures])
        day += timedelta(days=1)
    by_day.append_bold(["Tổng cộng", *sums])
    _tick(progress, 1, steps_total)

    by_connection = SheetWriter(
        workbook,
        "Theo tài khoản",
        RECEIPTS_CONNECTION_HEADERS,
        widths=(14, 14, 16, 18, 12, 16, 18, 16, 14),
        formats={5: money, 6: money, 7: money, 8: money},
    )
    connection_sums = [0] * 5
    for row in (
        received.order_by()
        .values(
            "connection_id",
            "connection__provider",
            "connection__account__bank__short_name",
            "connection__account__account_number",
        )
        .annotate(
            n=Count("pk"),
            amount=Sum("amount_vnd"),
            allocated=Sum("allocated_vnd"),
            credit=Sum("credit_vnd"),
        )
        .order_by("connection__account__account_number", "connection_id")
    ):
        figures = [row["n"], row["amount"] or 0, row["allocated"] or 0, row["credit"] or 0]
        figures.append(figures[1] - figures[2] - figures[3])
        connection_sums = [a + b for a, b in zip(connection_sums, figures, strict=True)]
        by_connection.append(
            [
                row["connection_id"][:10] + "…",
                row["connection__provider"],
                row["connection__account__bank__short_name"],
                row["connection__account__account_number"],
                *figures,
            ]
        )
    by_connection.append_bold(["Tổng cộng", None, None, None, *connection_sums])
    _tick(progress, 2, steps_total)

    unmatched_sheet = SheetWriter(
        workbook,
        "Chưa khớp cuối kỳ",
        UNMATCHED_HEADERS,
        widths=(18, 14, 18, 20, 24, 40, 14, 14, 30),
        formats={6: money, 7: money},
    )
    open_transactions = (
        BankTransaction.objects.filter(
            connection__market=market,
            direction=BankTransaction.Direction.IN,
            is_test=False,
            bank_time__lt=end,
            status__in=[BankTransaction.Status.UNMATCHED, BankTransaction.Status.PARTLY],
        )
        .order_by("bank_time", "pk")
        .values_list(
            "bank_time",
            "connection__account__bank__short_name",
            "connection__account__account_number",
            "bank_reference",
            "counter_name",
            "content",
            "amount_vnd",
            "allocated_vnd",
            "credit_vnd",
            "unmatched_reason",
        )
    )
    unmatched_count = unmatched_total = 0
    for (
        bank_time,
        bank,
        account,
        reference,
        counter_name,
        content,
        amount,
        allocated,
        credit,
        reason,
    ) in open_transactions.iterator(chunk_size=CHUNK):
        left = amount - allocated - credit
        unmatched_count += 1
        unmatched_total += left
        unmatched_sheet.append(
            [
                f"{bank_time.astimezone(MARKET_TZ):%d/%m/%Y %H:%M}",
                bank,
                account,
                reference or None,
                counter_name or None,
                content or None,
                amount,
                left,
                reason or None,
            ]
        )
    unmatched_sheet.append_bold(
        ["Tổng cộng", None, None, None, None, f"{unmatched_count} giao dịch", None, unmatched_total]
    )
    _tick(progress, 3, steps_total)

    credit_sheet = SheetWriter(
        workbook, "Tiền thừa cuối kỳ", CREDIT_HEADERS, widths=(14, 30, 16), formats={2: money}
    )
    # Credit still held from transfers received up to the period end (their credit rows net
    # of later use, refund or reversal, all of which point at the source transfer).
    credits = (
        Allocation.objects.filter(
            holder__market=market,
            kind=Allocation.Kind.CREDIT,
            transaction__bank_time__lt=end,
        )
        .order_by()
        .values("holder_id", "holder__code", "holder__full_name")
        .annotate(s=Sum("amount_vnd"))
        .filter(s__gt=0)
        .order_by("holder__code", "holder_id")
    )
    credit_total = 0
    for row in credits.iterator(chunk_size=CHUNK):
        credit_total += row["s"]
        credit_sheet.append([row["holder__code"], row["holder__full_name"], row["s"]])
    credit_sheet.append_bold(["Tổng cộng", None, credit_total])
    _tick(progress, steps_total, steps_total)

    _save(workbook, out)
    return ExportResult(
        rows=sums[0],
        totals={
            "amount_vnd": sums[1],
            "unmatched_at_end_vnd": unmatched_total,
            "credit_at_end_vnd": credit_total,
        },
    )


# --- registry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportSpec:
    kind: str
    slug: str
    extension: str
    content_type: str
    writer: Callable[..., ExportResult]
    invoices: bool  # does a selection of invoice ids make sense for it


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SPECS: dict[str, ExportSpec] = {
    spec.kind: spec
    for spec in (
        ExportSpec(
            ExportKind.XML_ZIP, "hoa-don-xml", "zip", "application/zip", write_xml_zip, True
        ),
        ExportSpec(ExportKind.BANGKE_XLSX, "bang-ke", "xlsx", XLSX, write_bangke_xlsx, False),
        ExportSpec(
            ExportKind.BANGKE_CSV,
            "bang-ke",
            "csv",
            "text/csv; charset=utf-8",
            write_bangke_csv,
            False,
        ),
        ExportSpec(ExportKind.MISA_SALES, "misa-ban-hang", "xlsx", XLSX, write_misa_sales, False),
        ExportSpec(
            ExportKind.MISA_RECEIPTS,
            "misa-thu-tien-gui",
            "xlsx",
            XLSX,
            write_misa_receipts,
            False,
        ),
        ExportSpec(ExportKind.AGED_DEBT, "cong-no", "xlsx", XLSX, write_aged_debt, False),
        ExportSpec(ExportKind.RECEIPTS, "thu-tien", "xlsx", XLSX, write_receipts, False),
    )
}


def file_name(kind: str, market: Market, period: date | None, invoice_ids=None) -> str:
    spec = SPECS[kind]
    when = f"{period:%Y-%m}" if period and invoice_ids is None else f"chon-{len(invoice_ids)}"
    return f"{market.code}_{when}_{spec.slug}.{spec.extension}"


def write_export(
    *,
    kind: str,
    market: Market,
    period: date | None,
    out: BinaryIO,
    progress: Progress | None = None,
    invoice_ids: Sequence[int] | None = None,
) -> ExportResult:
    return SPECS[kind].writer(
        market=market, period=period, out=out, progress=progress, invoice_ids=invoice_ids
    )
