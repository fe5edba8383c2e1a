"""Bank statement (sao kê) import: the CSV/XLSX files accountants download from their bank.

Layouts
-------
A statement has a few title and metadata rows (bank name, account number, period,
opening balance) above one header row, then one row per transaction, sometimes with
footer rows (totals, closing balance) and wrapped description lines. Each bank is a
declarative ``StatementProfile``: for every field the column names it may carry
(aliases), the date formats and the thousands separator of its amounts. The built-in
profiles (``BANK_PROFILES``): ``vcb`` Vietcombank, ``bidv`` BIDV, ``vietinbank``
VietinBank, ``techcombank`` Techcombank, ``mb`` MB. They are modelled on the layouts the
banks' internet-banking exports are publicly described with; a bank that changes its
export, or any other bank, is handled by a column-mapping profile in JSON (below)
without a code change.

The header row is found in the first ``HEADER_SEARCH_ROWS`` rows: the row where the
profile recognises the most columns, all required ones included. Header cells are
compared after folding case and diacritics (``market40.tables.fold_header``); an alias
matches a cell that contains it as whole words, so the bilingual headers banks use
("Số tiền ghi có/Credit", "Nợ/Debit") match "ghi có" / "credit" / "debit". When two
aliases claim one column, the longer (more specific) wins: "Tên tài khoản đối ứng" is
the counter name, not the counter account. ``bank="auto"`` tries every profile and keeps
the one that recognises the header (then parses the first rows without error, then finds
its bank's name in the title rows).

Fields: ``date`` (required), ``description`` (required), ``debit`` and ``credit``
(required, unless a signed ``amount`` column is mapped instead: negative = money out),
``reference``, ``balance``, ``counter_account``, ``counter_name``, ``counter_bank``.
Credit (ghi có) is money into the account (direction "in"), debit (ghi nợ) money out.

Column-mapping profile (``--profile PATH.json`` / the upload page)::

    {
      "name": "ACB",
      "columns": {
        "date": ["Ngày hiệu lực", "Ngày GD"],
        "reference": "Số GD",
        "debit": "Rút ra",
        "credit": "Gửi vào",
        "balance": "Số dư",
        "description": "Nội dung",
        "counter_account": "TK đối ứng",
        "counter_name": "Tên đối ứng"
      },
      "date_formats": ["dd/mm/yyyy", "dd/mm/yyyy HH:MM:SS"],
      "thousands": ",",
      "markers": ["ACB"]
    }

``columns`` maps a field to one column name or a list of them (required). Date formats
use ``dd`` ``mm`` ``yyyy`` ``yy`` ``HH`` ``MM`` (minutes) ``SS``; default
``["dd/mm/yyyy", "dd/mm/yyyy HH:MM:SS"]``. ``thousands`` is "," ("1,234,567", the
default) or "." ("1.234.567"). ``markers`` (optional) are words of the title rows that
identify the bank.

Money is integer đồng, exactly: numeric cells must be whole numbers, text amounts must
use the profile's thousands separator, a decimal part is accepted only when it is zero
("1,234,567.00"). A row with both a debit and a credit, or with neither, is refused.

Import
------
Every row is validated first; any bad row is reported with its spreadsheet row number
and nothing is written. Then, in one database transaction that locks the connection row
(so two imports of one account queue), the lines are compared with the transactions the
connection already has for the statement's dates, loaded in ONE query:

1. same bank reference and amount → duplicate (a webhook or an earlier import);
2. otherwise same day, direction, amount and normalised content (diacritics, case,
   spaces and punctuation removed), counting occurrences: two identical lines against
   one existing transaction → one new transaction, so two genuine identical transfers on
   one day both survive;
3. then content that contains the other (banks prefix the transfer note, e.g.
   "MBVCB.123.NGUYEN VAN A chuyen tien ..."), same day, then the day before or after
   (a transfer at 23:59 can be booked the next day).

Each pass only takes what earlier passes left, so counts stay exact. New lines become
``BankTransaction`` rows with source "statement" and a deterministic id
``stmt:<sha256(connection, day, direction, amount, content, reference, occurrence)[:32]>``,
inserted in batches; re-importing the same file creates nothing. The balance column is
checked within the file (opening + Σ movements = each row's balance; breaks are
warnings). After the transaction commits, each new transaction (and any duplicate that
is still unreconciled, so re-running an interrupted import finishes the matching) goes
through ``payments.reconciliation.reconcile``, the same matching as webhooks.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop as N_

from market40.errors import InvalidInput
from market40.paymentcode import normalise_text
from market40.tables import TableError, fold_header, read_rows
from payments.providers.base import VN_TZ

log = logging.getLogger(__name__)

HEADER_SEARCH_ROWS = 30
# Rows parsed with each candidate profile when ``bank="auto"`` must choose.
TRIAL_ROWS = 50
INSERT_BATCH = 2000
# A report keeps this many row errors verbatim (it counts them all).
MAX_LISTED_ERRORS = 500
MAX_AMOUNT_VND = 10**15

FIELDS = (
    "date",
    "reference",
    "debit",
    "credit",
    "amount",
    "balance",
    "description",
    "counter_account",
    "counter_name",
    "counter_bank",
)
FIELD_LABELS = {
    "date": "ngày giao dịch",
    "reference": "số tham chiếu",
    "debit": "ghi nợ",
    "credit": "ghi có",
    "amount": "số tiền",
    "balance": "số dư",
    "description": "nội dung",
    "counter_account": "tài khoản đối ứng",
    "counter_name": "tên đối ứng",
    "counter_bank": "ngân hàng đối ứng",
}

# Labels of title, footer and summary rows (folded), never transaction rows.
OPENING_MARKERS = ("so_du_dau_ky", "du_dau_ky", "so_du_dau", "opening_balance", "dau_ky")
CLOSING_MARKERS = ("so_du_cuoi_ky", "du_cuoi_ky", "so_du_cuoi", "closing_balance", "cuoi_ky")
FOOTER_MARKERS = (
    "tong_cong",
    "tong",
    "total",
    "cong_phat_sinh",
    "doanh_so",
    "phat_sinh",
    "so_giao_dich",
)
LABEL_MARKERS = (*FOOTER_MARKERS, *OPENING_MARKERS, *CLOSING_MARKERS)
ACCOUNT_MARKERS = ("so_tai_khoan", "so_tk", "account_number", "account_no")


# --- profiles -------------------------------------------------------------------------


_FORMAT_TOKENS = (("yyyy", "%Y"), ("yy", "%y"), ("dd", "%d"), ("mm", "%m"), ("HH", "%H"))
_FORMAT_TOKENS_TIME = (("MM", "%M"), ("SS", "%S"))


def strptime_format(friendly: str) -> str:
    """``dd/mm/yyyy HH:MM:SS`` → ``%d/%m/%Y %H:%M:%S`` (strftime formats pass through)."""
    if "%" in friendly:
        return friendly
    result = friendly
    for token, directive in _FORMAT_TOKENS_TIME:
        result = result.replace(token, directive)
    for token, directive in _FORMAT_TOKENS:
        result = result.replace(token, directive)
    return result


def _fold_alias(alias: str) -> str:
    return fold_header(alias)


@dataclass(frozen=True)
class StatementProfile:
    """One bank's layout. ``columns`` maps each field to the names that column may
    carry, most likely first. See the module docstring for the JSON form."""

    code: str
    name: str
    columns: Mapping[str, tuple[str, ...]]
    date_formats: tuple[str, ...] = ("dd/mm/yyyy", "dd/mm/yyyy HH:MM:SS")
    thousands: str = ","
    markers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.columns) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}")
        if self.thousands not in (",", "."):
            raise ValueError("thousands must be ',' or '.'")

    @property
    def folded_columns(self) -> dict[str, tuple[str, ...]]:
        return {
            name: tuple(a for a in (_fold_alias(x) for x in aliases) if a)
            for name, aliases in self.columns.items()
        }

    @property
    def strptime_formats(self) -> tuple[str, ...]:
        return tuple(strptime_format(f) for f in self.date_formats)

    @property
    def required(self) -> tuple[str, ...]:
        if "amount" in self.columns and not ("debit" in self.columns and "credit" in self.columns):
            return ("date", "amount", "description")
        return ("date", "debit", "credit", "description")

    @property
    def amount_example(self) -> str:
        return "1.234.567" if self.thousands == "." else "1,234,567"


BANK_PROFILES: dict[str, StatementProfile] = {
    profile.code: profile
    for profile in (
        StatementProfile(
            code="vcb",
            name="Vietcombank",
            columns={
                "date": (
                    "Ngày giao dịch",
                    "Transaction date",
                    "Ngày hiệu lực",
                    "Effective date",
                    "Ngày GD",
                ),
                "reference": ("Số tham chiếu", "Reference No", "Số CT", "Doc No"),
                "debit": ("Số tiền ghi nợ", "Ghi nợ", "Debit"),
                "credit": ("Số tiền ghi có", "Ghi có", "Credit"),
                "balance": ("Số dư", "Balance"),
                "description": (
                    "Mô tả",
                    "Nội dung chi tiết",
                    "Transactions in detail",
                    "Description",
                ),
            },
            date_formats=("dd/mm/yyyy", "dd/mm/yyyy HH:MM:SS"),
            thousands=",",
            markers=("Vietcombank", "Ngoại thương", "VCB"),
        ),
        StatementProfile(
            code="bidv",
            name="BIDV",
            columns={
                "date": ("Ngày giao dịch", "Ngày hiệu lực", "Ngày GD", "Transaction date"),
                "reference": ("Số tham chiếu", "Số bút toán", "Mã giao dịch", "Reference"),
                "debit": ("Ghi nợ", "Số tiền ghi nợ", "Debit"),
                "credit": ("Ghi có", "Số tiền ghi có", "Credit"),
                "balance": ("Số dư", "Balance"),
                "description": ("Mô tả", "Diễn giải", "Nội dung", "Description"),
                "counter_account": ("Tài khoản đối ứng", "TK đối ứng"),
                "counter_name": ("Tên tài khoản đối ứng", "Tên đối ứng"),
            },
            date_formats=("dd/mm/yyyy HH:MM:SS", "dd/mm/yyyy"),
            thousands=",",
            markers=("BIDV", "Đầu tư và Phát triển"),
        ),
        StatementProfile(
            code="vietinbank",
            name="VietinBank",
            columns={
                "date": (
                    "Ngày giao dịch",
                    "Transaction date",
                    "Ngày hạch toán",
                    "Accounting date",
                ),
                "reference": ("Số giao dịch", "Transaction number", "Số bút toán"),
                "debit": ("Debit", "Ghi nợ", "Số tiền ghi nợ"),
                "credit": ("Credit", "Ghi có", "Số tiền ghi có"),
                "balance": ("Số dư TK", "Account balance", "Số dư", "Balance"),
                "description": (
                    "Mô tả giao dịch",
                    "Transaction description",
                    "Nội dung",
                    "Mô tả",
                ),
                "counter_account": ("TK đối ứng", "Corresponsive account"),
                "counter_name": ("Tên đối ứng", "Corresponsive name"),
            },
            date_formats=("dd/mm/yyyy HH:MM:SS", "dd/mm/yyyy"),
            thousands=".",
            markers=("VietinBank", "Công Thương"),
        ),
        StatementProfile(
            code="techcombank",
            name="Techcombank",
            columns={
                "date": ("Ngày giao dịch", "Transaction date"),
                "reference": ("Số bút toán", "Reference number", "Reference"),
                "debit": ("Debit", "Ghi nợ"),
                "credit": ("Credit", "Ghi có"),
                "balance": ("Số dư", "Balance"),
                "description": ("Diễn giải", "Description"),
                "counter_account": ("Tài khoản đối ứng", "Remitter's account number"),
                "counter_name": ("Tên tài khoản đối ứng", "Remitter's account name"),
                "counter_bank": ("Ngân hàng đối tác", "Remitter's bank"),
            },
            date_formats=("dd/mm/yyyy", "dd/mm/yyyy HH:MM:SS"),
            thousands=",",
            markers=("Techcombank", "Kỹ Thương"),
        ),
        StatementProfile(
            code="mb",
            name="MB",
            columns={
                "date": ("Ngày giao dịch", "Ngày GD", "Transaction date"),
                "reference": ("Mã giao dịch", "Số bút toán", "Số tham chiếu", "Reference"),
                "debit": ("Rút ra", "Ghi nợ", "Số tiền ghi nợ", "Debit"),
                "credit": ("Gửi vào", "Ghi có", "Số tiền ghi có", "Credit"),
                "balance": ("Số dư", "Balance"),
                "description": ("Nội dung", "Diễn giải", "Description"),
                "counter_account": ("Số tài khoản đối ứng", "Tài khoản đối ứng"),
                "counter_name": ("Tên tài khoản đối ứng", "Tên đối ứng"),
                "counter_bank": ("Ngân hàng đối ứng",),
            },
            date_formats=("dd/mm/yyyy HH:MM:SS", "dd/mm/yyyy"),
            thousands=".",
            markers=("MB Bank", "MBBank", "Quân đội"),
        ),
    )
}
BANK_CHOICES = ("auto", *BANK_PROFILES)


def profile_from_json(data: Any, *, code: str = "custom") -> StatementProfile:
    """A column-mapping profile from its JSON form (module docstring), or InvalidInput."""

    def refuse(detail: str) -> InvalidInput:
        return InvalidInput(
            _("Hồ sơ cột không hợp lệ: %(detail)s") % {"detail": detail},
            code="statement_profile_invalid",
        )

    if not isinstance(data, dict):
        raise refuse(_("cần một đối tượng JSON"))
    allowed = {"name", "columns", "date_formats", "thousands", "markers"}
    if extra := sorted(set(data) - allowed):
        raise refuse(_("khóa không được hỗ trợ: %(keys)s") % {"keys": ", ".join(extra)})
    columns = data.get("columns")
    if not isinstance(columns, dict) or not columns:
        raise refuse(_("thiếu “columns” (trường → tên cột)"))
    mapped: dict[str, tuple[str, ...]] = {}
    for name, aliases in columns.items():
        if name not in FIELDS:
            raise refuse(
                _("trường “%(name)s” không có; dùng: %(all)s")
                % {"name": name, "all": ", ".join(FIELDS)}
            )
        if isinstance(aliases, str):
            aliases = [aliases]
        if (
            not isinstance(aliases, list)
            or not aliases
            or not all(isinstance(a, str) and fold_header(a) for a in aliases)
        ):
            raise refuse(
                _("tên cột của “%(name)s” phải là chuỗi hoặc danh sách chuỗi") % {"name": name}
            )
        mapped[name] = tuple(aliases)
    formats = data.get("date_formats", ["dd/mm/yyyy", "dd/mm/yyyy HH:MM:SS"])
    if isinstance(formats, str):
        formats = [formats]
    if not isinstance(formats, list) or not formats or not all(isinstance(f, str) for f in formats):
        raise refuse(_("“date_formats” phải là danh sách định dạng, ví dụ dd/mm/yyyy"))
    thousands = data.get("thousands", ",")
    if thousands not in (",", "."):
        raise refuse(_('“thousands” phải là "," hoặc "."'))
    markers = data.get("markers", [])
    if not isinstance(markers, list) or not all(isinstance(m, str) for m in markers):
        raise refuse(_("“markers” phải là danh sách chuỗi"))
    name = data.get("name") or _("Hồ sơ riêng")
    if not isinstance(name, str):
        raise refuse(_("“name” phải là chuỗi"))
    profile = StatementProfile(
        code=code,
        name=name[:60],
        columns=mapped,
        date_formats=tuple(formats),
        thousands=thousands,
        markers=tuple(markers),
    )
    missing = [f for f in profile.required if f not in mapped]
    if missing:
        raise refuse(
            _("thiếu cột bắt buộc: %(cols)s")
            % {"cols": ", ".join(FIELD_LABELS[f] for f in missing)}
        )
    return profile


def load_profile(path: Path | str) -> StatementProfile:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as error:
        raise InvalidInput(
            _("Không đọc được hồ sơ cột %(path)s: %(error)s") % {"path": path, "error": error},
            code="statement_profile_invalid",
        ) from None
    return profile_from_json(data)


# --- cells ----------------------------------------------------------------------------


class CellError(ValueError):
    """A cell that cannot be read; the message is Vietnamese, without the row number."""


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


_CURRENCY = re.compile(r"(?i)\s*(VND|VNĐ|đồng|đ)\s*$")
_SPACES = re.compile(r"[\s\u00a0\u202f]+")


def _amount_patterns(thousands: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    decimal = "." if thousands == "," else ","
    t, d = re.escape(thousands), re.escape(decimal)
    # A decimal part has one or two digits: "11,000" is never eleven đồng.
    grouped = re.compile(rf"(\d{{1,3}}(?:{t}\d{{3}})+)(?:{d}(\d{{1,2}}))?")
    plain = re.compile(rf"(\d+)(?:{d}(\d{{1,2}}))?")
    return grouped, plain


_AMOUNT_PATTERNS = {sep: _amount_patterns(sep) for sep in (",", ".")}


def _label(what: str) -> str:
    # gettext("") would return the catalogue's header.
    return _(what) if what else ""


def parse_amount(value: object, *, thousands: str, what: str) -> int | None:
    """A signed whole number of đồng, or None for an empty cell.

    Numeric cells must be whole; text must use the profile's thousands separator and may
    end with a zero decimal part (".00"); anything else raises ``CellError``. ``what``
    names the column (untranslated; translated only for an error message)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise CellError(
            _("%(what)s “%(value)s” không phải là số tiền") % {"what": _label(what), "value": value}
        )
    if isinstance(value, int):
        number = value
    elif isinstance(value, float | Decimal):
        if value != value or not float(value).is_integer():  # NaN, or a fraction
            raise CellError(
                _("%(what)s “%(value)s” có phần lẻ — số tiền phải là số đồng nguyên")
                % {"what": _label(what), "value": value}
            )
        number = int(value)
    else:
        text = _SPACES.sub("", _CURRENCY.sub("", str(value).strip()))
        if text in ("", "-", "—"):
            return None
        sign = 1
        if text[0] in "+-":
            sign = -1 if text[0] == "-" else 1
            text = text[1:]
        elif text.startswith("(") and text.endswith(")"):
            sign, text = -1, text[1:-1]
        grouped, plain = _AMOUNT_PATTERNS[thousands]
        match = grouped.fullmatch(text) or plain.fullmatch(text)
        if match is None:
            example = "1.234.567" if thousands == "." else "1,234,567"
            raise CellError(
                _("%(what)s “%(value)s” không đúng định dạng số tiền (ví dụ %(example)s)")
                % {"what": _label(what), "value": value, "example": example}
            )
        whole, fraction = match.group(1), match.group(2)
        if fraction and fraction.strip("0"):
            raise CellError(
                _("%(what)s “%(value)s” có phần lẻ — số tiền phải là số đồng nguyên")
                % {"what": _label(what), "value": value}
            )
        number = sign * int(whole.replace(thousands, ""))
    if abs(number) >= MAX_AMOUNT_VND:
        raise CellError(_("%(what)s “%(value)s” quá lớn") % {"what": _label(what), "value": value})
    return number


def parse_bank_time(value: object, formats: Iterable[str]) -> datetime:
    """A cell's date (and time) as an aware datetime in Vietnam time (UTC+7)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        return _parse_date_text(_text(value), tuple(formats))
    if moment.tzinfo is None:
        return moment.replace(tzinfo=VN_TZ)
    return moment.astimezone(VN_TZ)


@functools.lru_cache(maxsize=8192)
def _parse_date_text(text: str, formats: tuple[str, ...]) -> datetime:
    # Cached: a statement repeats the same few dates thousands of times.
    text = _SPACES.sub(" ", text)
    for fmt in formats:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=VN_TZ)
        except ValueError:
            continue
    # "31/10/2023 5243.65937": a date and a document number in one cell.
    return _first_token_date(text, formats).replace(tzinfo=VN_TZ)


def _first_token_date(text: str, formats: Iterable[str]) -> datetime:
    tokens = text.split(" ")
    for count in (2, 1):
        candidate = " ".join(tokens[:count])
        if candidate == text:
            continue
        for fmt in formats:
            try:
                return datetime.strptime(candidate, fmt)
            except ValueError:
                continue
    raise CellError(_("ngày “%(value)s” không đúng định dạng") % {"value": text})


def normalise_content(text: str) -> str:
    """What two banks' renderings of one transfer note have in common: upper-case ASCII
    letters and digits only (statements wrap lines and drop or add spaces)."""
    if text.isascii():  # most bank text: no diacritics to fold
        return _NOT_ALNUM.sub("", text.upper())
    return _NOT_ALNUM.sub("", normalise_text(text))


_NOT_ALNUM = re.compile(r"[^A-Z0-9]+")


def _vnd(amount: int) -> str:
    return f"{amount:,}".replace(",", ".")


# --- header detection -----------------------------------------------------------------


def _contains(cell: str, alias: str) -> bool:
    return cell == alias or f"_{alias}_" in f"_{cell}_"


def map_header(profile: StatementProfile, cells: list[object]) -> dict[str, int]:
    """Field → column index for one candidate header row. Each column serves one field
    and each field one column; longer aliases claim columns first."""
    folded = [fold_header(c) if isinstance(c, str) else fold_header(_text(c)) for c in cells]
    candidates: list[tuple[int, int, int, str, int]] = []
    field_order = {name: i for i, name in enumerate(FIELDS)}
    for name, aliases in profile.folded_columns.items():
        for rank, alias in enumerate(aliases):
            for column, cell in enumerate(folded):
                if cell and _contains(cell, alias):
                    candidates.append((-len(alias), rank, field_order[name], name, column))
    candidates.sort()
    mapping: dict[str, int] = {}
    taken: set[int] = set()
    for _length, _rank, _order, name, column in candidates:
        if name in mapping or column in taken:
            continue
        mapping[name] = column
        taken.add(column)
    return mapping


@dataclass
class HeaderMatch:
    profile: StatementProfile
    index: int  # position in the buffered rows
    row_number: int
    mapping: dict[str, int]
    markers: int

    @property
    def complete(self) -> bool:
        return all(f in self.mapping for f in self.profile.required)


def find_header(profile: StatementProfile, rows: list[tuple[int, list[object]]]) -> HeaderMatch:
    """The best header row among the first rows (complete beats incomplete, then more
    recognised columns, then the earlier row)."""
    best: HeaderMatch | None = None
    for index, (number, cells) in enumerate(rows[:HEADER_SEARCH_ROWS]):
        mapping = map_header(profile, cells)
        match = HeaderMatch(profile, index, number, mapping, 0)
        if best is None or (match.complete, len(mapping)) > (best.complete, len(best.mapping)):
            best = match
    if best is None:
        return HeaderMatch(profile, 0, 1, {}, 0)
    title = "_".join(_row_text(cells) for _n, cells in rows[: best.index])
    best.markers = sum(1 for m in profile.markers if _contains(title, fold_header(m)))
    return best


# --- parsing --------------------------------------------------------------------------


@dataclass(slots=True)
class StatementLine:
    row: int
    bank_time: datetime
    direction: str
    amount_vnd: int
    content: str
    reference: str = ""
    counter_account: str = ""
    counter_name: str = ""
    counter_bank: str = ""
    balance_vnd: int | None = None
    provider_transaction_id: str = ""
    duplicate_of: str = ""

    @property
    def day(self) -> date:
        return self.bank_time.date()

    @property
    def signed_vnd(self) -> int:
        return self.amount_vnd if self.direction == "in" else -self.amount_vnd


@dataclass(frozen=True)
class RowError:
    row: int | None
    message: str

    def __str__(self) -> str:
        if self.row is None:
            return self.message
        return _("Dòng %(row)s: %(message)s") % {"row": self.row, "message": self.message}


@dataclass
class ParsedStatement:
    profile: StatementProfile
    header_row: int
    columns: dict[str, int]
    lines: list[StatementLine] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    warnings: list[str] = field(default_factory=list)
    account_number: str = ""
    opening_balance_vnd: int | None = None
    closing_balance_vnd: int | None = None
    newest_first: bool = False

    def error(self, row: int | None, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_LISTED_ERRORS:
            self.errors.append(RowError(row, message))


def _first_number(cells: Iterable[object], thousands: str) -> int | None:
    """The amount in a metadata row ("Số dư đầu kỳ: 12,500,000"): the last number written
    with thousands separators, else the last plain number, else the last numeric cell."""
    numeric: int | None = None
    grouped: int | None = None
    plain: int | None = None
    sep = re.escape(thousands)
    for cell in cells:
        if isinstance(cell, int | float | Decimal) and not isinstance(cell, bool):
            with contextlib.suppress(CellError):
                numeric = parse_amount(cell, thousands=thousands, what="")
            continue
        for token in re.findall(rf"-?\d{{1,3}}(?:{sep}\d{{3}})+(?:[.,]0+)?|-?\d+", _text(cell)):
            try:
                value = parse_amount(token, thousands=thousands, what="")
            except CellError:
                continue
            if thousands in token:
                grouped = value
            else:
                plain = value
    for value in (grouped, numeric, plain):
        if value is not None:
            return value
    return None


def _is_label(value: object) -> bool:
    """A summary row's label in the date column ("Tổng cộng/Total", "Số dư cuối kỳ")."""
    if not isinstance(value, str) or value.lstrip()[:1].isdigit():
        return False  # a date, the common case: no folding needed
    folded = fold_header(value)
    return any(folded.startswith(m) for m in LABEL_MARKERS)


def _row_text(cells: Iterable[object]) -> str:
    return "_".join(fold_header(_text(c)) for c in cells if c not in (None, ""))


def _has_marker(text: str, markers: Iterable[str]) -> bool:
    return any(_contains(text, m) for m in markers)


def _read_metadata(parsed: ParsedStatement, rows: list[tuple[int, list[object]]]) -> None:
    thousands = parsed.profile.thousands
    for _number, cells in rows:
        text = _row_text(cells)
        if not text:
            continue
        if _has_marker(text, OPENING_MARKERS) and not _has_marker(text, CLOSING_MARKERS):
            value = _first_number(cells, thousands)
            if value is not None:
                parsed.opening_balance_vnd = value
        elif _has_marker(text, CLOSING_MARKERS):
            value = _first_number(cells, thousands)
            if value is not None:
                parsed.closing_balance_vnd = value
        elif _has_marker(text, ACCOUNT_MARKERS) and not parsed.account_number:
            digits = re.findall(r"\d{6,20}", " ".join(_text(c) for c in cells))
            if digits:
                parsed.account_number = digits[0]


def _buffer_rows(
    path: Path | str,
) -> tuple[list[tuple[int, list[object]]], Iterator[tuple[int, list[object]]]]:
    """The first rows in memory (for header detection and trial parses) and the rest."""
    header, rows = read_rows(path)
    buffered: list[tuple[int, list[object]]] = [(1, list(header))] if any(header) else []
    buffered.extend(itertools.islice(rows, HEADER_SEARCH_ROWS + TRIAL_ROWS))
    return buffered, rows


def statement_parse(
    *,
    path: Path | str,
    bank: str = "auto",
    profile: StatementProfile | None = None,
) -> ParsedStatement:
    """Read and validate a statement file. File-level problems (format, no header) raise
    ``InvalidInput``; row problems are collected on the result with their row numbers."""
    try:
        buffered, rest = _buffer_rows(path)
    except TableError as error:
        raise InvalidInput(str(error), code="statement_file_invalid") from None
    if not buffered:
        raise InvalidInput(_("Tệp sao kê trống."), code="statement_file_invalid")
    if profile is not None:
        match = find_header(profile, buffered)
    elif bank == "auto":
        match = _choose_profile(buffered)
    elif bank in BANK_PROFILES:
        match = find_header(BANK_PROFILES[bank], buffered)
    else:
        raise InvalidInput(
            _("Ngân hàng “%(bank)s” chưa có mẫu sao kê; chọn: %(all)s hoặc dùng hồ sơ cột.")
            % {"bank": bank, "all": ", ".join(BANK_CHOICES)},
            code="statement_bank_unknown",
        )
    if not match.complete:
        chosen = match.profile
        missing = [FIELD_LABELS[f] for f in chosen.required if f not in match.mapping]
        raise InvalidInput(
            _(
                "Không tìm thấy dòng tiêu đề của sao kê %(bank)s trong %(n)s dòng đầu: thiếu "
                "cột %(cols)s. Kiểm tra đúng ngân hàng, hoặc dùng hồ sơ cột (JSON)."
            )
            % {
                "bank": chosen.name if profile or bank != "auto" else _("(tự nhận diện)"),
                "n": HEADER_SEARCH_ROWS,
                "cols": ", ".join(missing),
            },
            code="statement_header_missing",
            extra={"missing": missing},
        )
    parsed = ParsedStatement(
        profile=match.profile, header_row=match.row_number, columns=match.mapping
    )
    _read_metadata(parsed, buffered[: match.index])
    data_rows = itertools.chain(buffered[match.index + 1 :], rest)
    _parse_rows(parsed, data_rows)
    if not parsed.lines and not parsed.error_count:
        parsed.error(None, _("Sao kê không có giao dịch nào dưới dòng tiêu đề."))
    _check_balance_chain(parsed)
    return parsed


def _choose_profile(buffered: list[tuple[int, list[object]]]) -> HeaderMatch:
    matches = [find_header(p, buffered) for p in BANK_PROFILES.values()]
    complete = [m for m in matches if m.complete]
    if not complete:
        return max(matches, key=lambda m: len(m.mapping))

    def trial_ok(match: HeaderMatch) -> bool:
        trial = ParsedStatement(match.profile, match.row_number, match.mapping)
        _parse_rows(trial, iter(buffered[match.index + 1 :]))
        return trial.error_count == 0

    order = {code: i for i, code in enumerate(BANK_PROFILES)}
    return max(
        complete,
        key=lambda m: (trial_ok(m), len(m.mapping), m.markers, -order[m.profile.code]),
    )


def _parse_rows(parsed: ParsedStatement, rows: Iterable[tuple[int, list[object]]]) -> None:
    profile = parsed.profile
    columns = parsed.columns
    formats = profile.strptime_formats
    money_columns = {columns[f] for f in ("debit", "credit", "amount", "balance") if f in columns}
    date_col = columns["date"]
    desc_col = columns["description"]

    def cell(cells: list[object], name: str) -> object:
        position = columns.get(name)
        if position is None or position >= len(cells):
            return ""
        value = cells[position]
        return "" if value is None else value

    for number, cells in rows:
        raw_date = cell(cells, "date")
        if _text(raw_date) == "" or _is_label(raw_date):
            _non_transaction_row(parsed, number, cells, money_columns, date_col, desc_col, cell)
            continue
        try:
            bank_time = parse_bank_time(raw_date, formats)
        except CellError:
            parsed.error(
                number,
                _("ngày giao dịch “%(value)s” không đúng định dạng (cần %(formats)s)")
                % {"value": _text(raw_date), "formats": " hoặc ".join(profile.date_formats)},
            )
            continue
        try:
            line = _money(parsed, cells, cell)
        except CellError as error:
            parsed.error(number, str(error))
            continue
        if line is None:
            continue
        direction, amount, balance = line
        if amount is None:
            parsed.error(number, _("không có số tiền ghi nợ hay ghi có"))
            continue
        parsed.lines.append(
            StatementLine(
                row=number,
                bank_time=bank_time,
                direction=direction,
                amount_vnd=amount,
                content=_text(cell(cells, "description")),
                reference=_text(cell(cells, "reference"))[:100],
                counter_account=_text(cell(cells, "counter_account"))[:40],
                counter_name=_text(cell(cells, "counter_name"))[:200],
                counter_bank=_text(cell(cells, "counter_bank"))[:100],
                balance_vnd=balance,
            )
        )


def _money(
    parsed: ParsedStatement, cells: list[object], cell: Callable[[list[object], str], object]
) -> tuple[str, int | None, int | None] | None:
    thousands = parsed.profile.thousands

    def balance() -> int | None:
        return parse_amount(cell(cells, "balance"), thousands=thousands, what=N_("số dư"))

    if "debit" not in parsed.columns or "credit" not in parsed.columns:
        signed = parse_amount(cell(cells, "amount"), thousands=thousands, what=N_("số tiền"))
        if not signed:
            return "in", None, balance()
        return ("out" if signed < 0 else "in"), abs(signed), balance()
    debit = parse_amount(cell(cells, "debit"), thousands=thousands, what=N_("số tiền ghi nợ"))
    credit = parse_amount(cell(cells, "credit"), thousands=thousands, what=N_("số tiền ghi có"))
    # Some banks print 0 on the side that did not move, and debits as negative numbers.
    debit = abs(debit) if debit else None
    if credit is not None and credit < 0:
        raise CellError(_("số tiền ghi có “%(value)s” là số âm") % {"value": _vnd(credit)})
    credit = credit or None
    if debit and credit:
        raise CellError(_("có cả số tiền ghi nợ và ghi có trên một dòng"))
    if credit:
        return "in", credit, balance()
    if debit:
        return "out", debit, balance()
    return "in", None, balance()


def _non_transaction_row(
    parsed: ParsedStatement,
    number: int,
    cells: list[object],
    money_columns: set[int],
    date_col: int,
    desc_col: int,
    cell: Callable[[list[object], str], object],
) -> None:
    """A row without a date: an opening/closing balance or totals row, a wrapped
    description line, or a transaction that lost its date (an error)."""
    label = ""
    for position, value in enumerate(cells):
        if _text(value) and position not in money_columns and position != desc_col:
            label = fold_header(_text(value))
            break
    thousands = parsed.profile.thousands
    balance = _first_number([cell(cells, "balance")], thousands)
    if balance is None:
        balance = _first_number(cells, thousands)
    if label and _has_marker(label, OPENING_MARKERS) and not _has_marker(label, CLOSING_MARKERS):
        value = balance
        if value is not None and not parsed.lines:
            parsed.opening_balance_vnd = value
        return
    if label and _has_marker(label, CLOSING_MARKERS):
        if balance is not None:
            parsed.closing_balance_vnd = balance
        return
    if label and any(label.startswith(m) for m in FOOTER_MARKERS):
        return
    has_money = any(_text(cells[p]) not in ("", "0") for p in money_columns if p < len(cells))
    description = _text(cell(cells, "description"))
    if not has_money:
        if description and parsed.lines and not label:
            # A wrapped description continues on its own row in some exports.
            previous = parsed.lines[-1]
            previous.content = f"{previous.content} {description}".strip()
        return
    parsed.error(number, _("thiếu ngày giao dịch"))


def _check_balance_chain(parsed: ParsedStatement) -> None:
    """opening + Σ movements = each row's balance. The file may list the newest line
    first; the orientation where more rows chain is taken."""
    lines = [line for line in parsed.lines if line.balance_vnd is not None]
    if len(lines) < 2 and parsed.opening_balance_vnd is None:
        return

    def breaks(ordered: list[StatementLine]) -> list[tuple[StatementLine, int]]:
        found = []
        for before, line in itertools.pairwise(ordered):
            expected = before.balance_vnd + line.signed_vnd
            if expected != line.balance_vnd:
                found.append((line, expected))
        return found

    forward = breaks(lines)
    backward = breaks(lines[::-1])
    newest_first = len(backward) < len(forward)
    parsed.newest_first = newest_first
    chronological = lines[::-1] if newest_first else lines
    for line, expected in backward if newest_first else forward:
        parsed.warnings.append(
            _(
                "Dòng %(row)s: số dư %(balance)s khác %(expected)s (số dư dòng trước cộng phát "
                "sinh) — sao kê có thể thiếu hoặc thừa giao dịch."
            )
            % {"row": line.row, "balance": _vnd(line.balance_vnd), "expected": _vnd(expected)}
        )
    if not chronological:
        return
    first, last = chronological[0], chronological[-1]
    if parsed.opening_balance_vnd is not None:
        expected = parsed.opening_balance_vnd + first.signed_vnd
        if expected != first.balance_vnd:
            parsed.warnings.append(
                _("Dòng %(row)s: số dư %(balance)s khác số dư đầu kỳ %(opening)s cộng phát sinh.")
                % {
                    "row": first.row,
                    "balance": _vnd(first.balance_vnd),
                    "opening": _vnd(parsed.opening_balance_vnd),
                }
            )
    else:
        parsed.opening_balance_vnd = first.balance_vnd - first.signed_vnd
    if parsed.closing_balance_vnd is not None and parsed.closing_balance_vnd != last.balance_vnd:
        parsed.warnings.append(
            _(
                "Số dư cuối kỳ %(closing)s khác số dư của giao dịch cuối cùng %(last)s "
                "(dòng %(row)s)."
            )
            % {
                "closing": _vnd(parsed.closing_balance_vnd),
                "last": _vnd(last.balance_vnd),
                "row": last.row,
            }
        )


# --- duplicates -----------------------------------------------------------------------


@dataclass(slots=True)
class KnownTransaction:
    """What the duplicate check needs of a transaction already stored."""

    id: int
    provider_transaction_id: str
    direction: str
    amount_vnd: int
    day: date
    contents: tuple[str, ...]
    reference: str
    unreconciled: bool
    taken: bool = False


def _reference_key(reference: str) -> str:
    return _NOT_ALNUM.sub("", (reference or "").upper())


def statement_transaction_id(
    *,
    connection_id: str,
    day: date,
    direction: str,
    amount_vnd: int,
    content_key: str,
    reference_key: str,
    occurrence: int,
) -> str:
    """``stmt:`` + 32 hex digits of sha256 over what identifies a statement line."""
    source = "|".join(
        (
            connection_id,
            day.isoformat(),
            direction,
            str(amount_vnd),
            content_key,
            reference_key,
            str(occurrence),
        )
    )
    return "stmt:" + hashlib.sha256(source.encode()).hexdigest()[:32]


def plan_lines(
    *, connection_id: str, lines: list[StatementLine], known: list[KnownTransaction]
) -> tuple[list[StatementLine], list[StatementLine]]:
    """Split the lines into (to create, duplicates); see the module docstring for the
    passes. Pure: works on what was loaded, marks ``known`` rows it pairs."""
    keys = [normalise_content(line.content) for line in lines]
    refs = [_reference_key(line.reference) for line in lines]
    days = [line.day for line in lines]
    by_reference: dict[tuple[str, str, int], list[KnownTransaction]] = {}
    by_day: dict[tuple[date, str, int], list[KnownTransaction]] = {}
    known_ids: set[str] = set()
    for row in known:
        known_ids.add(row.provider_transaction_id)
        if row.reference:
            by_reference.setdefault((row.reference, row.direction, row.amount_vnd), []).append(row)
        by_day.setdefault((row.day, row.direction, row.amount_vnd), []).append(row)

    def take(index: int, row: KnownTransaction, why: str) -> None:
        row.taken = True
        lines[index].duplicate_of = why
        lines[index].provider_transaction_id = row.provider_transaction_id

    # Pass 1: bank reference and amount.
    left = []
    for i, line in enumerate(lines):
        row = None
        if refs[i] and by_reference:
            same = by_reference.get((refs[i], line.direction, line.amount_vnd), ())
            row = next((r for r in same if not r.taken), None)
        if row is None:
            left.append(i)
        else:
            why = _("trùng mã tham chiếu %(ref)s (giao dịch #%(id)s)")
            take(i, row, why % {"ref": line.reference, "id": row.id})

    def content_pass(indices: list[int], offsets: tuple[int, ...], contained: bool) -> list[int]:
        if not by_day:
            return indices
        remaining = []
        for i in indices:
            line, key = lines[i], keys[i]
            row = None
            for offset in offsets:
                day = days[i] + timedelta(days=offset) if offset else days[i]
                for candidate in by_day.get((day, line.direction, line.amount_vnd), ()):
                    if candidate.taken:
                        continue
                    if contained:
                        hit = any(_contains_content(key, c) for c in candidate.contents)
                    else:
                        hit = key in candidate.contents
                    if hit:
                        row = candidate
                        break
                if row is not None:
                    break
            if row is None:
                remaining.append(i)
            else:
                why = _("trùng giao dịch #%(id)s (cùng ngày, số tiền và nội dung)")
                take(i, row, why % {"id": row.id})
        return remaining

    # Pass 2: same day, amount and normalised content; pass 3: one contains the other;
    # pass 4: the same, a day apart.
    left = content_pass(left, (0,), contained=False)
    left = content_pass(left, (0,), contained=True)
    left = content_pass(left, (-1, 1), contained=True)

    # Deterministic ids for what is new: occurrence n of an identical line gets index n;
    # an index already used (stored, or earlier in this file) moves to the next one.
    occurrences: Counter[tuple[date, str, int, str, str]] = Counter()
    used = set(known_ids)
    to_create = []
    for i in left:
        line = lines[i]
        identity = (days[i], line.direction, line.amount_vnd, keys[i], refs[i])
        while True:
            occurrences[identity] += 1
            ptid = statement_transaction_id(
                connection_id=connection_id,
                day=days[i],
                direction=line.direction,
                amount_vnd=line.amount_vnd,
                content_key=keys[i],
                reference_key=refs[i],
                occurrence=occurrences[identity],
            )
            if ptid not in used:
                break
        used.add(ptid)
        line.provider_transaction_id = ptid
        to_create.append(line)
    duplicates = [line for line in lines if line.duplicate_of]
    return to_create, duplicates


MIN_CONTAINED_CHARS = 10


def _contains_content(key: str, other: str) -> bool:
    if not key or not other:
        return False
    short, long = (key, other) if len(key) <= len(other) else (other, key)
    return len(short) >= MIN_CONTAINED_CHARS and short in long


# --- import ---------------------------------------------------------------------------


@dataclass
class StatementReport:
    """What an import did, or (dry run) would do."""

    connection_id: str
    profile_code: str
    profile_name: str
    header_row: int
    dry_run: bool
    lines: int = 0
    to_create: list[StatementLine] = field(default_factory=list)
    duplicates: list[StatementLine] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    warnings: list[str] = field(default_factory=list)
    opening_balance_vnd: int | None = None
    closing_balance_vnd: int | None = None
    created_ids: list[int] = field(default_factory=list)
    reconciled: Counter[str] = field(default_factory=Counter)
    reconcile_failures: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def created(self) -> int:
        return 0 if self.dry_run else len(self.created_ids)

    @property
    def money_in_vnd(self) -> int:
        return sum(line.amount_vnd for line in self.to_create if line.direction == "in")

    @property
    def money_out_vnd(self) -> int:
        return sum(line.amount_vnd for line in self.to_create if line.direction == "out")


class StatementRejected(InvalidInput):
    """Bad rows: nothing was written. ``report`` lists them with their row numbers."""

    code = "statement_rows_invalid"

    def __init__(self, report: StatementReport) -> None:
        super().__init__(
            _("Sao kê có %(n)s dòng lỗi; chưa ghi gì. Sửa tệp rồi nhập lại.")
            % {"n": report.error_count},
            extra={"errors": [str(e) for e in report.errors], "error_count": report.error_count},
        )
        self.report = report


# progress(phase, done, total), phase "insert" or "reconcile".
Progress = Callable[[str, int, int], None]


def _load_known(connection_id: str, lines: list[StatementLine]) -> list[KnownTransaction]:
    """The connection's transactions around the statement's dates, in one query."""
    from payments.models import BankTransaction

    if not lines:
        return []
    first = min(line.day for line in lines) - timedelta(days=1)
    last = max(line.day for line in lines) + timedelta(days=2)
    start = datetime(first.year, first.month, first.day, tzinfo=VN_TZ)
    end = datetime(last.year, last.month, last.day, tzinfo=VN_TZ)
    rows = (
        BankTransaction.objects.filter(
            connection_id=connection_id, bank_time__gte=start, bank_time__lt=end
        )
        .order_by("bank_time", "id")
        .values_list(
            "id",
            "provider_transaction_id",
            "direction",
            "amount_vnd",
            "bank_time",
            "content",
            "description",
            "bank_reference",
            "reconciled_at",
        )
    )
    known = []
    for row in rows.iterator(chunk_size=5000):
        pk, ptid, direction, amount, bank_time, content, description, reference, done = row
        notes = (normalise_content(content), normalise_content(description))
        # An empty note only pairs with an empty note.
        contents = tuple(dict.fromkeys(k for k in notes if k)) or ("",)
        known.append(
            KnownTransaction(
                id=pk,
                provider_transaction_id=ptid,
                direction=direction,
                amount_vnd=amount,
                day=bank_time.astimezone(VN_TZ).date(),
                contents=contents,
                reference=_reference_key(reference),
                unreconciled=done is None,
            )
        )
    return known


def statement_import(
    *,
    connection: Any,
    path: Path | str,
    bank: str = "auto",
    profile: StatementProfile | None = None,
    dry_run: bool = False,
    reconcile: bool = True,
    progress: Progress | None = None,
) -> StatementReport:
    """Import a statement file into ``connection`` (a ``BankConnection``).

    All or nothing: a bad row raises ``StatementRejected`` (its report lists every
    problem by row number) before anything is written. A dry run returns the same report
    — what would be created, the duplicates and why — and writes nothing."""
    from django.db import transaction

    from payments.models import BankConnection, BankTransaction

    timings: dict[str, float] = {}
    started = time.perf_counter()
    parsed = statement_parse(path=path, bank=bank, profile=profile)
    timings["parse"] = time.perf_counter() - started
    report = StatementReport(
        connection_id=connection.pk,
        profile_code=parsed.profile.code,
        profile_name=parsed.profile.name,
        header_row=parsed.header_row,
        dry_run=dry_run,
        lines=len(parsed.lines),
        errors=parsed.errors,
        error_count=parsed.error_count,
        warnings=parsed.warnings,
        opening_balance_vnd=parsed.opening_balance_vnd,
        closing_balance_vnd=parsed.closing_balance_vnd,
        timings=timings,
    )
    expected_account = connection.account.account_number if connection.account_id else ""
    if parsed.account_number and expected_account and parsed.account_number != expected_account:
        report.errors.insert(
            0,
            RowError(
                None,
                _(
                    "Sao kê là của tài khoản %(found)s, không phải tài khoản %(expected)s của "
                    "kết nối này."
                )
                % {"found": parsed.account_number, "expected": expected_account},
            ),
        )
        report.error_count += 1
    if report.error_count:
        raise StatementRejected(report)

    # Oldest first, so reconciliation allocates in the order the money arrived.
    lines = parsed.lines[::-1] if parsed.newest_first else parsed.lines
    lines.sort(key=lambda line: line.bank_time)

    step = time.perf_counter()
    with transaction.atomic():
        if not dry_run:
            # Two imports of one account queue here instead of racing on duplicates.
            BankConnection.objects.select_for_update().filter(pk=connection.pk).first()
        known = _load_known(connection.pk, lines)
        to_create, duplicates = plan_lines(connection_id=connection.pk, lines=lines, known=known)
        report.to_create, report.duplicates = to_create, duplicates
        timings["plan"] = time.perf_counter() - step
        if dry_run:
            timings["total"] = time.perf_counter() - started
            return report
        step = time.perf_counter()
        _insert(connection.pk, to_create, progress)
        # One query maps the new ids back, kept in the order the money arrived.
        new_ids = {line.provider_transaction_id for line in to_create}
        stored = BankTransaction.objects.filter(
            connection_id=connection.pk, source=BankTransaction.Source.STATEMENT
        )
        if lines:
            stored = stored.filter(
                bank_time__gte=lines[0].bank_time, bank_time__lte=lines[-1].bank_time
            )
        ids = {
            ptid: pk
            for ptid, pk in stored.values_list("provider_transaction_id", "id").iterator(
                chunk_size=10000
            )
            if ptid in new_ids
        }
        report.created_ids = [ids[line.provider_transaction_id] for line in to_create]
        _remember_balance(connection.pk, lines)
        timings["insert"] = time.perf_counter() - step
    if reconcile:
        step = time.perf_counter()
        replay = [row.id for row in known if row.taken and row.unreconciled]
        _reconcile_all(report, [*report.created_ids, *replay], progress)
        timings["reconcile"] = time.perf_counter() - step
    timings["total"] = time.perf_counter() - started
    return report


INSERT_FIELDS = (
    "connection",
    "provider_transaction_id",
    "source",
    "direction",
    "amount_vnd",
    "content",
    "description",
    "bank_reference",
    "counter_account",
    "counter_name",
    "counter_bank",
    "sub_account",
    "provider_code",
    "bank_time",
    "running_balance_vnd",
    "is_test",
    "received_at",
    "status",
    "allocated_vnd",
    "credit_vnd",
    "unmatched_reason",
)


def _insert(connection_id: str, lines: list[StatementLine], progress: Progress | None) -> None:
    """Insert in batches of ``INSERT_BATCH`` prepared rows (``market40.bulk.insert_rows``:
    one executemany per batch instead of the ORM building every value's SQL)."""
    from django.utils import timezone

    from market40.bulk import insert_rows
    from payments.models import BankTransaction

    now = timezone.now()
    source = BankTransaction.Source.STATEMENT
    unmatched = BankTransaction.Status.UNMATCHED
    for offset in range(0, len(lines), INSERT_BATCH):
        batch = lines[offset : offset + INSERT_BATCH]
        insert_rows(
            BankTransaction,
            INSERT_FIELDS,
            (
                (
                    connection_id,
                    line.provider_transaction_id,
                    source,
                    line.direction,
                    line.amount_vnd,
                    line.content,
                    "",
                    line.reference,
                    line.counter_account,
                    line.counter_name,
                    line.counter_bank,
                    "",
                    "",
                    line.bank_time,
                    line.balance_vnd,
                    False,
                    now,
                    unmatched,
                    0,
                    0,
                    "",
                )
                for line in batch
            ),
        )
        if progress:
            progress("insert", offset + len(batch), len(lines))


def _remember_balance(connection_id: str, lines: list[StatementLine]) -> None:
    """Move the connection's last known balance forward if the statement is newer, so
    the webhook balance check continues from the statement (conditional update)."""
    from django.db.models import Q

    from payments.models import BankConnection

    last = next((line for line in reversed(lines) if line.balance_vnd is not None), None)
    if last is None:
        return
    BankConnection.objects.filter(pk=connection_id).filter(
        Q(last_balance_at__isnull=True) | Q(last_balance_at__lt=last.bank_time)
    ).update(last_balance_vnd=last.balance_vnd, last_balance_at=last.bank_time)


def _reconcile_all(report: StatementReport, ids: list[int], progress: Progress | None) -> None:
    # After the import committed: matched in chunks, each its own transaction (the same
    # rules as a webhook), so a failure leaves that chunk unreconciled, not the import
    # undone; re-running the import replays the matching of what is left.
    from payments.reconciliation import reconcile_many

    total = len(ids)
    chunk = 1000
    for start in range(0, total, chunk):
        part = ids[start : start + chunk]
        try:
            outcomes = reconcile_many(part, chunk_size=chunk)
        except Exception:
            log.exception("reconciling imported transactions %s… failed", part[0])
            report.reconcile_failures += len(part)
        else:
            for outcome in outcomes:
                report.reconciled[outcome.status] += 1
        if progress:
            progress("reconcile", min(start + chunk, total), total)
