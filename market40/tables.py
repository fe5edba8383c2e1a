"""Reading spreadsheets people actually have: CSV (UTF-8 with or without BOM, comma or
semicolon) and XLSX. Headers are matched after folding case and Vietnamese diacritics,
so "Diện tích (m²)", "dien tich" and "DIEN_TICH" are the same column."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

from market40.paymentcode import normalise_text


class TableError(ValueError):
    pass


def fold_header(value: object) -> str:
    text = normalise_text(str(value or "")).replace("²", "2")
    return re.sub(r"[^A-Z0-9]+", "_", text).strip("_").lower()


def read_rows(path: Path | str) -> tuple[list[str], Iterator[tuple[int, list[object]]]]:
    """(folded headers, iterator of (spreadsheet row number, cells)). Row 1 is the
    header, so the first data row is number 2, as the user sees it in Excel."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in {".csv", ".txt"}:
        return _read_csv(path)
    if suffix in {".xlsx", ".xlsm"}:
        return _read_xlsx(path)
    raise TableError(
        f"Định dạng tệp không được hỗ trợ: {path.suffix or '(không có)'} — cần .csv hoặc .xlsx"
    )


def _read_csv(path: Path) -> tuple[list[str], Iterator[tuple[int, list[object]]]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TableError("Tệp CSV phải được lưu với bảng mã UTF-8.") from None
    sample = text[:4096]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise TableError("Tệp trống: không có dòng tiêu đề.") from None
    rows = (
        (n, list(cells)) for n, cells in enumerate(reader, start=2) if any(c.strip() for c in cells)
    )
    return [fold_header(h) for h in header], rows


def _read_xlsx(path: Path) -> tuple[list[str], Iterator[tuple[int, list[object]]]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises several types for a broken file
        raise TableError(f"Không đọc được tệp Excel: {error}") from None
    sheet = workbook.worksheets[0]
    values = sheet.iter_rows(values_only=True)
    try:
        header = next(values)
    except StopIteration:
        raise TableError("Tệp trống: không có dòng tiêu đề.") from None
    rows = (
        (n, ["" if c is None else c for c in cells])
        for n, cells in enumerate(values, start=2)
        if any(c not in (None, "") for c in cells)
    )
    return [fold_header(h) for h in header], rows
