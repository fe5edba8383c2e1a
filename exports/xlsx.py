"""openpyxl write-only worksheets with a faster row path for large exports.

openpyxl's write-only mode streams a sheet to a temporary file as rows are appended, so
memory stays flat; but each value still becomes a ``WriteOnlyCell`` that is type-checked,
styled and written element by element through lxml's incremental writer: about 9 µs per
cell on our 2-core machine. A MISA sales sheet of a 100,000-invoice period is ~500,000 rows
of 22 values: 100 s in cells alone, beyond the 60 s target (issue 7).

``FastSheet`` keeps everything openpyxl does (the workbook, the package and its parts,
styles, the sheet's head and tail, column widths, frozen panes, the temporary-file
streaming through lxml's incremental writer) and replaces only that per-cell path: each row
is serialised as the same ``<row>``/``<c>`` elements openpyxl writes (inline strings,
numbers, Excel date serials with the cell's registered style) and written as one piece of
text to the sheet's temporary file, between ``<sheetData>`` and ``</sheetData>`` that lxml
writes. About 1 µs per cell. ``tests/exports/test_xlsx_rows.py`` checks that both paths give
cell-for-cell the same workbook (and property-tests the escaping of any text);
``FAST_ROWS = False`` selects openpyxl's own path (``benchmarks/bench_exports.py
--stock-openpyxl`` measures both).

Values: ``None`` and ``""`` are empty cells; ``str``; ``int``, ``float``, ``Decimal``;
``date``/``datetime`` (naive; shown ``dd/mm/yyyy`` unless styled otherwise); and
``Styled(value, style)`` for a style registered with ``register_style``. Text is always text,
never a formula, even when it begins with "=". Characters XML 1.0 cannot carry (control
characters in a bank's transfer content, say) are dropped on both paths rather than failing
the export.
"""

from __future__ import annotations

import re
import zipfile
from copy import copy
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, BinaryIO, NamedTuple

from openpyxl import LXML, Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import to_excel
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from openpyxl.worksheet._writer import WorksheetWriter
from openpyxl.writer.excel import ExcelWriter
from openpyxl.xml.constants import SHEET_MAIN_NS

FAST_ROWS = LXML  # the fast path writes lxml elements; without lxml, openpyxl's own path

# Not allowed in XML 1.0 documents (Char production): C0 controls but tab, LF, CR;
# surrogates; U+FFFE and U+FFFF.
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_COLUMNS = [get_column_letter(index) for index in range(1, 16385)]
_NUMBERS = (int, float, Decimal)
DATE_FORMAT = "dd/mm/yyyy"


class Styled(NamedTuple):
    """A value written with a style registered by ``register_style``."""

    value: Any
    style: int


def xml_text(value: str) -> str:
    return _NOT_XML.sub("", value)


def register_style(sheet: WriteOnlyWorksheet, *, number_format: str = "", bold: bool = False):
    """The workbook's id of a cell style (number format, bold font)."""
    cell = WriteOnlyCell(sheet)
    if number_format:
        cell.number_format = number_format
    if bold:
        cell.font = Font(bold=True)
    return cell.style_id


@lru_cache(maxsize=8192)
def _inline_string(value: str) -> str:
    """The ``<is>`` of a text cell. Exports repeat many texts (account codes, names, units,
    dates), so the escaped form is cached (bounded)."""
    text = xml_text(value)
    if not text:
        return ""
    # What lxml's serialiser escapes in text; \r as a reference so that parsing it back does
    # not turn it into \n (XML end-of-line handling).
    escaped = (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    )
    space = ' xml:space="preserve"' if text != text.strip() else ""
    return f"<is><t{space}>{escaped}</t></is>"


class _FastRowWriter(WorksheetWriter):
    """openpyxl's sheet writer, with lxml's incremental writer over a Python file that
    ``FastSheet`` also writes its rows to (openpyxl gives lxml the file name)."""

    def get_stream(self):
        from lxml.etree import xmlfile

        with (
            open(self.out, "wb", buffering=1 << 20) as self.file,
            xmlfile(self.file) as xf,
            xf.element("worksheet", xmlns=SHEET_MAIN_NS),
        ):
            try:
                while True:
                    el = yield
                    if el is True:
                        yield xf
                    elif el is not None:
                        xf.write(el)
            except GeneratorExit:
                pass


class _DateStyle:
    _date_style: int | None = None

    def date_style(self) -> int:
        if self._date_style is None:
            self._date_style = register_style(self, number_format=DATE_FORMAT)
        return self._date_style


class FastSheet(_DateStyle, WriteOnlyWorksheet):
    def _get_writer(self):
        if self._writer is None:
            self._writer = _FastRowWriter(self)
            self._writer.write_top()

    def _write_rows(self):
        # WriteOnlyWorksheet._write_rows, with each row written to the file as one piece of
        # text instead of cell objects through lxml.
        try:
            xf = self._writer.xf.send(True)
        except StopIteration:
            self._already_saved()
        with xf.element("sheetData"):
            # lxml has written <sheetData> into its buffer: push it out first, so that the
            # rows follow it in the file; lxml writes </sheetData> after them on exit.
            xf.flush()
            write = self._writer.file.write
            row_idx = 1
            try:
                while True:
                    row = yield
                    write(self.row_xml(row, row_idx).encode())
                    row_idx += 1
            except GeneratorExit:
                pass
        self._writer.xf.send(None)

    def row_xml(self, values, row_idx: int) -> str:
        r = str(row_idx)
        parts = [f'<row r="{r}">']
        epoch = self.parent.epoch
        for index, value in enumerate(values):
            style = ""
            if type(value) is Styled:
                value, style = value.value, f' s="{value.style}"'
            if value is None or value == "":
                continue
            ref = _COLUMNS[index] + r
            if isinstance(value, str):
                inline = _inline_string(value)
                if inline:
                    parts.append(f'<c r="{ref}"{style} t="inlineStr">{inline}</c>')
            elif isinstance(value, bool):
                parts.append(f'<c r="{ref}"{style} t="b"><v>{int(value)}</v></c>')
            elif isinstance(value, _NUMBERS):
                parts.append(f'<c r="{ref}"{style} t="n"><v>{value}</v></c>')
            elif isinstance(value, date | datetime):
                style = style or f' s="{self.date_style()}"'
                parts.append(f'<c r="{ref}"{style} t="n"><v>{to_excel(value, epoch)}</v></c>')
            else:
                raise TypeError(f"cannot write {type(value).__name__} to a cell")
        parts.append("</row>")
        return "".join(parts)


class StockSheet(_DateStyle, WriteOnlyWorksheet):
    """openpyxl's own path, taking the same values as ``FastSheet``."""

    def append(self, row):
        super().append([self._value(value) for value in row])

    def _value(self, value):
        style = None
        if type(value) is Styled:
            value, style = value.value, value.style
        text = isinstance(value, str)
        if text:
            value = xml_text(value)
        if value == "":
            value = None
        if style is None and isinstance(value, date | datetime):
            style = self.date_style()
        # openpyxl takes text beginning with "=" for a formula; exports write data, never
        # formulas (a stall holder named "=HYPERLINK(…)" stays a name).
        formula_like = text and value is not None and value.startswith("=")
        if (style is None and not formula_like) or value is None:
            return value
        cell = WriteOnlyCell(self, value=value)
        if formula_like:
            cell.data_type = "s"
        if style is not None:
            cell._style = copy(self.parent._cell_styles[style])
        return cell


def create_sheet(workbook: Workbook, title: str) -> WriteOnlyWorksheet:
    sheet = (FastSheet if FAST_ROWS else StockSheet)(parent=workbook, title=title)
    workbook._add_sheet(sheet)
    return sheet


# Deflate level of the saved package. openpyxl's ``save`` uses zlib's default (6); level 1
# writes a 100,000-invoice MISA sheet several seconds faster for a file ~25 % larger.
COMPRESS_LEVEL = 1


def save(workbook: Workbook, out: BinaryIO) -> None:
    """``Workbook.save`` (openpyxl's ``save_workbook``) with ``COMPRESS_LEVEL``."""
    archive = zipfile.ZipFile(
        out, "w", zipfile.ZIP_DEFLATED, allowZip64=True, compresslevel=COMPRESS_LEVEL
    )
    workbook.properties.modified = datetime.now(tz=UTC).replace(tzinfo=None)
    ExcelWriter(workbook, archive).save()
