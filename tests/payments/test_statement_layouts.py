"""Each bank's statement layout (CSV and XLSX, with title rows above the header) imports
into the right transactions; ``--bank auto`` recognises it; a JSON column profile reads
any other bank.

The files are generated here, shaped like the banks' exports; no customer data. The
builders are imported by the other ``test_statement_*`` files.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from openpyxl import Workbook

from payments.models import BankTransaction
from payments.providers.base import VN_TZ
from payments.services import connection_create
from payments.statements import BANK_PROFILES, statement_import

ACCOUNT = "0071000123456"  # market A's receiving account (tests/factories.py)


@dataclass
class Line:
    """One statement line: ``amount`` > 0 is money in (credit), < 0 money out (debit)."""

    when: datetime
    amount: int
    content: str
    reference: str = ""
    counter_account: str = ""
    counter_name: str = ""


def at(day: int, hour: int = 9, minute: int = 0, month: int = 5) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=VN_TZ)


SAMPLE = [
    Line(
        at(2, 8, 15),
        500_000,
        "NGUYEN VAN A chuyen tien phi cho thang 5 sap A12",
        "FT26122000001",
        "0123456789",
        "NGUYEN VAN A",
    ),
    Line(at(2, 17, 40), -11_000, "Phi dich vu SMS Banking thang 04/2026", "FT26122000002"),
    Line(
        at(3, 10, 5),
        1_250_000,
        "TRAN THI BICH nop tien ve sinh an ninh",
        "FT26123000003",
        "9876543210",
        "TRAN THI BICH",
    ),
]
OPENING = 10_000_000


def money(amount: int | None, thousands: str) -> str:
    if not amount:
        return ""
    return f"{amount:,}".replace(",", thousands)


@dataclass
class Layout:
    """How one bank lays out its export: title rows, the header, one row per line."""

    title: Callable[[int], list[list[object]]]
    header: list[str]
    row: Callable[[int, Line, int], list[object]]  # (number, line, balance after)
    footer: Callable[[int, int, int], list[list[object]]]  # (debits, credits, closing)
    date_format: str
    thousands: str
    extra: dict = field(default_factory=dict)


def _vcb_row(n: int, line: Line, balance: int) -> list[object]:
    return [
        n,
        line.when,
        line.reference,
        -line.amount if line.amount < 0 else None,
        line.amount if line.amount > 0 else None,
        balance,
        line.content,
    ]


def _bidv_row(n: int, line: Line, balance: int) -> list[object]:
    return [
        n,
        line.when.replace(hour=0, minute=0),
        line.when,
        line.reference,
        line.counter_account,
        line.counter_name,
        -line.amount if line.amount < 0 else None,
        line.amount if line.amount > 0 else None,
        balance,
        line.content,
    ]


def _vietinbank_row(n: int, line: Line, balance: int) -> list[object]:
    return [
        n,
        line.when,
        line.content,
        -line.amount if line.amount < 0 else None,
        line.amount if line.amount > 0 else None,
        balance,
        line.reference,
        line.counter_name,
        line.counter_account,
    ]


def _techcombank_row(n: int, line: Line, balance: int) -> list[object]:
    return [
        line.when,
        line.reference,
        "VietinBank" if line.counter_account else "",
        line.counter_account,
        line.counter_name,
        line.content,
        -line.amount if line.amount < 0 else None,
        line.amount if line.amount > 0 else None,
        balance,
    ]


def _mb_row(n: int, line: Line, balance: int) -> list[object]:
    return [
        n,
        line.when,
        line.reference,
        line.counter_account,
        line.counter_name,
        "VCB" if line.counter_account else "",
        -line.amount if line.amount < 0 else None,
        line.amount if line.amount > 0 else None,
        balance,
        line.content,
    ]


LAYOUTS: dict[str, Layout] = {
    "vcb": Layout(
        title=lambda opening: [
            ["NGÂN HÀNG TMCP NGOẠI THƯƠNG VIỆT NAM (VIETCOMBANK)"],
            ["SAO KÊ TÀI KHOẢN / STATEMENT OF ACCOUNT"],
            ["Số tài khoản / Account number:", ACCOUNT],
            ["Từ ngày / From:", "01/05/2026", "Đến ngày / To:", "31/05/2026"],
            ["Số dư đầu kỳ / Opening balance:", opening],
            [],
        ],
        header=[
            "STT/No.",
            "Ngày giao dịch/Transaction Date",
            "Số tham chiếu/Reference No.",
            "Số tiền ghi nợ/Debit",
            "Số tiền ghi có/Credit",
            "Số dư/Balance",
            "Mô tả/Description",
        ],
        row=_vcb_row,
        footer=lambda debits, credits, closing: [
            ["Tổng cộng/Total", "", "", debits, credits, "", ""],
            ["Số dư cuối kỳ/Closing balance", "", "", "", "", closing, ""],
        ],
        date_format="%d/%m/%Y",
        thousands=",",
    ),
    "bidv": Layout(
        title=lambda opening: [
            ["NGÂN HÀNG TMCP ĐẦU TƯ VÀ PHÁT TRIỂN VIỆT NAM - BIDV"],
            ["BÁO CÁO CHI TIẾT SỐ DƯ TÀI KHOẢN"],
            [f"Số tài khoản: {ACCOUNT}"],
            ["Kỳ báo cáo: 01/05/2026 - 31/05/2026"],
        ],
        header=[
            "STT",
            "Ngày hiệu lực",
            "Ngày giao dịch",
            "Số tham chiếu",
            "Tài khoản đối ứng",
            "Tên tài khoản đối ứng",
            "Ghi nợ",
            "Ghi có",
            "Số dư",
            "Mô tả",
        ],
        row=_bidv_row,
        footer=lambda debits, credits, closing: [
            ["Cộng phát sinh", "", "", "", "", "", debits, credits, "", ""],
            ["Số dư cuối kỳ", "", "", "", "", "", "", "", closing, ""],
        ],
        date_format="%d/%m/%Y %H:%M:%S",
        thousands=",",
        extra={"opening_row": True},
    ),
    "vietinbank": Layout(
        title=lambda opening: [
            ["NGÂN HÀNG TMCP CÔNG THƯƠNG VIỆT NAM - VIETINBANK"],
            ["LỊCH SỬ GIAO DỊCH - TRANSACTION HISTORY"],
            [f"Số tài khoản/Account No: {ACCOUNT}"],
            [f"Số dư đầu kỳ/Opening balance: {money(opening, '.')} VND"],
        ],
        header=[
            "STT/No",
            "Ngày giao dịch/Transaction date",
            "Mô tả giao dịch/Transaction description",
            "Nợ/Debit",
            "Có/Credit",
            "Số dư TK/Account balance",
            "Số giao dịch/Transaction number",
            "Tên đối ứng/Corresponsive name",
            "TK đối ứng/Corresponsive account",
        ],
        row=_vietinbank_row,
        footer=lambda debits, credits, closing: [],
        date_format="%d/%m/%Y %H:%M:%S",
        thousands=".",
    ),
    "techcombank": Layout(
        title=lambda opening: [
            ["NGÂN HÀNG TMCP KỸ THƯƠNG VIỆT NAM - TECHCOMBANK"],
            ["SAO KÊ TÀI KHOẢN/ACCOUNT STATEMENT"],
            ["Số tài khoản/Account number:", ACCOUNT],
            ["Số dư đầu kỳ/Opening balance:", opening],
        ],
        header=[
            "Ngày giao dịch/Transaction Date",
            "Số bút toán/Reference number",
            "Ngân hàng đối tác/Remitter's bank",
            "Tài khoản đối ứng/Remitter's account number",
            "Tên tài khoản đối ứng/Remitter's account name",
            "Diễn giải/Description",
            "Nợ/Debit",
            "Có/Credit",
            "Số dư/Balance",
        ],
        row=_techcombank_row,
        footer=lambda debits, credits, closing: [
            ["Tổng/Total", "", "", "", "", "", debits, credits, ""],
        ],
        date_format="%d/%m/%Y",
        thousands=",",
    ),
    "mb": Layout(
        title=lambda opening: [
            ["NGÂN HÀNG TMCP QUÂN ĐỘI (MB BANK)"],
            ["SAO KÊ TÀI KHOẢN"],
            [f"Số tài khoản: {ACCOUNT}", "", "Tên tài khoản: BQL CHO CHOA"],
            ["Từ ngày 01/05/2026 đến ngày 31/05/2026"],
            [f"Số dư đầu kỳ: {money(opening, '.')}"],
        ],
        header=[
            "STT",
            "Ngày giao dịch",
            "Mã giao dịch",
            "Số tài khoản đối ứng",
            "Tên tài khoản đối ứng",
            "Ngân hàng đối ứng",
            "Rút ra",
            "Gửi vào",
            "Số dư",
            "Nội dung",
        ],
        row=_mb_row,
        footer=lambda debits, credits, closing: [
            ["Tổng", "", "", "", "", "", debits, credits, closing, ""],
        ],
        date_format="%d/%m/%Y %H:%M:%S",
        thousands=".",
    ),
}


def statement_rows(bank: str, lines: list[Line], *, opening: int = OPENING) -> list[list[object]]:
    """The typed cells of a whole statement: title rows, header, lines, footer."""
    layout = LAYOUTS[bank]
    rows = [*layout.title(opening), layout.header]
    if layout.extra.get("opening_row"):
        opening_row: list[object] = [""] * len(layout.header)
        opening_row[0] = "Số dư đầu kỳ"
        opening_row[layout.header.index("Số dư")] = opening
        rows.append(opening_row)
    balance = opening
    for n, line in enumerate(lines, 1):
        balance += line.amount
        rows.append(layout.row(n, line, balance))
    debits = sum(-x.amount for x in lines if x.amount < 0)
    credits = sum(x.amount for x in lines if x.amount > 0)
    rows.extend(layout.footer(debits, credits, balance))
    return rows


def _as_text(value: object, layout: Layout) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.hour == value.minute == 0 and "%H" in layout.date_format:
            return value.strftime("%d/%m/%Y")
        return value.strftime(layout.date_format)
    if isinstance(value, int):
        return money(value, layout.thousands) if value >= 1000 else str(value)
    return str(value)


def write_csv(path: Path, bank: str, lines: list[Line], **kw) -> Path:
    layout = LAYOUTS[bank]
    delimiter = ";" if layout.thousands == "," else ","
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        for row in statement_rows(bank, lines, **kw):
            writer.writerow([_as_text(v, layout) for v in row])
    return path


def write_xlsx(path: Path, bank: str, lines: list[Line], *, text: bool = False, **kw) -> Path:
    """Typed cells (numbers, datetimes) by default; ``text=True`` writes what the CSV
    has, as some exports store every cell as text."""
    layout = LAYOUTS[bank]
    workbook = Workbook()
    sheet = workbook.active
    for row in statement_rows(bank, lines, **kw):
        cells = []
        for value in row:
            if text:
                cells.append(_as_text(value, layout))
            elif isinstance(value, datetime):
                cells.append(value.replace(tzinfo=None))
            else:
                cells.append(value)
        sheet.append(cells)
    workbook.save(path)
    return path


def write_statement(tmp_path: Path, bank: str, lines: list[Line], fmt: str = "csv", **kw) -> Path:
    path = tmp_path / f"saoke-{bank}.{fmt}"
    if fmt == "csv":
        return write_csv(path, bank, lines, **kw)
    return write_xlsx(path, bank, lines, **kw)


def statement_connection(market):
    connection, _secret, _generated = connection_create(
        market=market, provider="simulator", secret="statement-tests-secret"
    )
    return connection


@pytest.fixture
def bank_a(market_a):
    return statement_connection(market_a)


def imported(connection) -> list[BankTransaction]:
    return list(
        BankTransaction.objects.filter(connection=connection, source="statement").order_by(
            "bank_time", "id"
        )
    )


def assert_sample_imported(connection, *, with_counterparty: bool, with_time: bool) -> None:
    rows = imported(connection)
    assert [(t.direction, t.amount_vnd) for t in rows] == [
        ("in", 500_000),
        ("out", 11_000),
        ("in", 1_250_000),
    ]
    assert [t.running_balance_vnd for t in rows] == [10_500_000, 10_489_000, 11_739_000]
    assert [t.content for t in rows] == [line.content for line in SAMPLE]
    assert [t.bank_reference for t in rows] == [line.reference for line in SAMPLE]
    local = [t.bank_time.astimezone(VN_TZ) for t in rows]
    assert [d.date() for d in local] == [line.when.date() for line in SAMPLE]
    if with_time:
        assert [(d.hour, d.minute) for d in local] == [(8, 15), (17, 40), (10, 5)]
    if with_counterparty:
        assert rows[0].counter_account == "0123456789"
        assert rows[0].counter_name == "NGUYEN VAN A"
    assert all(t.provider_transaction_id.startswith("stmt:") for t in rows)


HAS_TIME = {"vcb": False, "bidv": True, "vietinbank": True, "techcombank": False, "mb": True}
HAS_COUNTERPARTY = {"vcb": False, "bidv": True, "vietinbank": True, "techcombank": True, "mb": True}


@pytest.mark.parametrize("bank", list(LAYOUTS))
def test_each_bank_csv_with_title_rows_imports_every_line(tmp_path, bank_a, bank):
    path = write_statement(tmp_path, bank, SAMPLE)

    report = statement_import(connection=bank_a, path=path, bank=bank)

    assert report.created == 3 and not report.duplicates and not report.warnings
    assert report.opening_balance_vnd == OPENING
    assert_sample_imported(
        bank_a, with_counterparty=HAS_COUNTERPARTY[bank], with_time=HAS_TIME[bank]
    )


@pytest.mark.parametrize("bank", ["vcb", "techcombank", "mb"])
def test_xlsx_exports_with_numeric_and_date_cells_import_the_same(tmp_path, bank_a, bank):
    path = write_statement(tmp_path, bank, SAMPLE, fmt="xlsx")

    report = statement_import(connection=bank_a, path=path, bank=bank)

    assert report.created == 3 and not report.warnings
    assert_sample_imported(
        bank_a, with_counterparty=HAS_COUNTERPARTY[bank], with_time=HAS_TIME[bank]
    )


def test_an_xlsx_export_with_every_cell_as_text_imports_the_same(tmp_path, bank_a):
    path = write_statement(tmp_path, "bidv", SAMPLE, fmt="xlsx", text=True)

    report = statement_import(connection=bank_a, path=path, bank="bidv")

    assert report.created == 3
    assert_sample_imported(bank_a, with_counterparty=True, with_time=True)


@pytest.mark.parametrize("bank", list(LAYOUTS))
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_auto_detection_recognises_each_bank(tmp_path, bank_a, bank, fmt):
    path = write_statement(tmp_path, bank, SAMPLE, fmt=fmt)

    report = statement_import(connection=bank_a, path=path, bank="auto", dry_run=True)

    assert report.profile_code == bank
    assert len(report.to_create) == 3


def test_auto_detection_needs_no_title_rows(tmp_path, bank_a):
    rows = statement_rows("mb", SAMPLE)
    header_at = rows.index(LAYOUTS["mb"].header)
    path = tmp_path / "mb-bare.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(
            [_as_text(v, LAYOUTS["mb"]) for v in row] for row in rows[header_at:]
        )

    report = statement_import(connection=bank_a, path=path, dry_run=True)

    assert report.profile_code == "mb"
    assert [line.amount_vnd for line in report.to_create] == [500_000, 11_000, 1_250_000]


def test_a_json_column_profile_reads_another_banks_layout(tmp_path, bank_a):
    profile_path = tmp_path / "acb.json"
    profile_path.write_text(
        json.dumps(
            {
                "name": "ACB",
                "columns": {
                    "date": "Ngày hiệu lực",
                    "reference": "Số GD",
                    "debit": "Tiền ra",
                    "credit": "Tiền vào",
                    "balance": "Số dư cuối",
                    "description": "Nội dung giao dịch",
                    "counter_name": "Người chuyển",
                },
                "date_formats": ["dd-mm-yyyy"],
                "thousands": ".",
                "markers": ["ACB"],
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    statement = tmp_path / "acb.csv"
    statement.write_text(
        "NGÂN HÀNG TMCP Á CHÂU (ACB)\n"
        f"Tài khoản: {ACCOUNT}\n"
        "\n"
        "Ngày hiệu lực,Số GD,Người chuyển,Nội dung giao dịch,Tiền ra,Tiền vào,Số dư cuối\n"
        '02-05-2026,ACB1,NGUYEN VAN A,tien phi cho,,"500.000","10.500.000"\n'
        '03-05-2026,ACB2,,phi quan ly tai khoan,"11.000",,"10.489.000"\n',
        encoding="utf-8",
    )
    from payments.statements import load_profile

    report = statement_import(connection=bank_a, path=statement, profile=load_profile(profile_path))

    assert report.profile_name == "ACB"
    rows = imported(bank_a)
    assert [(t.direction, t.amount_vnd, t.bank_reference) for t in rows] == [
        ("in", 500_000, "ACB1"),
        ("out", 11_000, "ACB2"),
    ]
    assert rows[0].counter_name == "NGUYEN VAN A"
    assert rows[1].running_balance_vnd == 10_489_000


def test_a_profile_with_a_signed_amount_column_reads_money_in_and_out(tmp_path, bank_a):
    from payments.statements import profile_from_json

    profile = profile_from_json(
        {"columns": {"date": "Date", "amount": "Amount", "description": "Memo"}}
    )
    statement = tmp_path / "signed.csv"
    statement.write_text(
        'Date,Amount,Memo\n02/05/2026,"250,000",tien phi\n02/05/2026,"-5,500",phi SMS\n',
        encoding="utf-8",
    )

    report = statement_import(connection=bank_a, path=statement, profile=profile)

    assert report.created == 2
    assert [(t.direction, t.amount_vnd) for t in imported(bank_a)] == [
        ("in", 250_000),
        ("out", 5_500),
    ]


def test_a_newest_first_statement_is_stored_oldest_first_and_its_balances_chain(tmp_path, bank_a):
    path = write_statement(tmp_path, "vietinbank", SAMPLE)
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    header_at = next(i for i, line in enumerate(lines) if line.startswith("STT/No"))
    reordered = lines[: header_at + 1] + lines[header_at + 1 :][::-1]
    path.write_text("\n".join(reordered) + "\n", encoding="utf-8")

    report = statement_import(connection=bank_a, path=path)

    assert not report.warnings
    assert [t.amount_vnd for t in imported(bank_a)] == [500_000, 11_000, 1_250_000]
    assert report.created_ids == sorted(report.created_ids)


def test_a_break_in_the_balance_chain_is_a_warning_naming_the_row(tmp_path, bank_a):
    path = write_statement(tmp_path, "vcb", SAMPLE)
    text = path.read_text(encoding="utf-8-sig").replace("11,739,000", "11,839,000", 1)
    path.write_text(text, encoding="utf-8")

    report = statement_import(connection=bank_a, path=path, bank="vcb")

    assert report.created == 3
    assert any(
        "Dòng 10" in w and "11.839.000" in w and "11.739.000" in w for w in report.warnings
    ), report.warnings


def test_every_bank_profile_is_documented_with_its_name(db):
    assert set(BANK_PROFILES) == {"vcb", "bidv", "vietinbank", "techcombank", "mb"}
    assert {p.name for p in BANK_PROFILES.values()} == {
        "Vietcombank",
        "BIDV",
        "VietinBank",
        "Techcombank",
        "MB",
    }
