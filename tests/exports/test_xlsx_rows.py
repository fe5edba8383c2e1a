"""The fast row path of ``exports.xlsx`` writes, cell for cell, the workbook openpyxl's own
write-only path writes: values, types, number formats, bold; and neither path fails on text
XML cannot carry."""

from __future__ import annotations

import io
from datetime import date, datetime
from decimal import Decimal

import openpyxl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import Workbook

from exports import xlsx


def write(rows: list[list], *, fast: bool, monkeypatch) -> bytes:
    monkeypatch.setattr(xlsx, "FAST_ROWS", fast)
    workbook = Workbook(write_only=True)
    sheet = xlsx.create_sheet(workbook, "Trang 1")
    sheet.freeze_panes = "A2"
    money = xlsx.register_style(sheet, number_format="#,##0")
    day = xlsx.register_style(sheet, number_format="dd/mm/yyyy")
    bold = xlsx.register_style(sheet, bold=True)
    styles = {"money": money, "day": day, "bold": bold}
    for row in rows:
        sheet.append(
            [
                xlsx.Styled(value[1], styles[value[0]]) if isinstance(value, tuple) else value
                for value in row
            ]
        )
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def cells(data: bytes) -> list[list[tuple]]:
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    return [
        [
            (c.coordinate, c.value, c.data_type, c.number_format, bool(c.font.b))
            for c in row
            if c.value is not None
        ]
        for row in sheet.iter_rows()
    ]


ROWS = [
    [("bold", "STT"), ("bold", "Tên"), ("bold", "Số tiền"), ("bold", "Ngày")],
    [1, "Nguyễn Thị Lan", ("money", 1_234_567), ("day", date(2026, 5, 31))],
    [2, "  khoảng trắng đầu & cuối <b> ", 0, date(2026, 1, 1)],
    [None, "", Decimal("109090.909091"), datetime(2026, 5, 6, 23, 50)],
    [3.5, "dòng 1\ndòng 2\r\ndòng 3\ttab", -42, None, "cột E"],
    [Decimal("6.000000"), "ký tự lạ \x01\x1f\ufffe bị bỏ", True, ("money", None)],
    [("bold", "Tổng cộng"), None, ("money", 9_999_999_999)],
]


def test_both_paths_write_the_same_cells(monkeypatch):
    fast = cells(write(ROWS, fast=True, monkeypatch=monkeypatch))
    stock = cells(write(ROWS, fast=False, monkeypatch=monkeypatch))

    assert fast == stock
    assert fast[1][2][1:4] == (1_234_567, "n", "#,##0")
    assert fast[1][3][1].date() == date(2026, 5, 31) and fast[1][3][3] == "dd/mm/yyyy"
    assert fast[2][1][1] == "  khoảng trắng đầu & cuối <b> "
    assert fast[4][1][1] == "dòng 1\ndòng 2\r\ndòng 3\ttab"
    assert fast[5][1][1] == "ký tự lạ  bị bỏ"
    assert fast[0][0][4] is True and fast[1][0][4] is False


@given(st.lists(st.text(max_size=40), min_size=1, max_size=8))
def test_any_text_reads_back_the_same_on_both_paths(texts):
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast = cells(write([["#", *texts]], fast=True, monkeypatch=monkeypatch))
        stock = cells(write([["#", *texts]], fast=False, monkeypatch=monkeypatch))
    assert fast == stock
    assert [cell[1] for cell in fast[0][1:]] == [
        xlsx.xml_text(text) for text in texts if xlsx.xml_text(text) != ""
    ]


def test_a_value_of_another_type_is_refused(monkeypatch):
    with pytest.raises(TypeError, match="cannot write dict"):
        write([[{"a": 1}]], fast=True, monkeypatch=monkeypatch)
