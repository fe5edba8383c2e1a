"""``manage.py export MARKET_CODE YYYY-MM --kind KIND --out PATH``."""

from __future__ import annotations

import io
import zipfile

import openpyxl
import pytest
from django.core.management import CommandError, call_command

from exports.models import ExportKind


@pytest.mark.parametrize("kind", ExportKind.values)
def test_every_kind_is_written_to_the_path(month, tmp_path, kind):
    out = tmp_path / "out" / f"export.{kind}"
    stdout, stderr = io.StringIO(), io.StringIO()

    call_command(
        "export",
        "choa",
        "2026-05",
        kind=kind,
        out=str(out),
        progress=True,
        stdout=stdout,
        stderr=stderr,
    )

    data = out.read_bytes()
    if kind.endswith("xlsx"):
        assert openpyxl.load_workbook(io.BytesIO(data)).worksheets
    elif kind == "xml-zip":
        assert zipfile.ZipFile(io.BytesIO(data)).namelist()[-1] == "manifest.csv"
    else:
        assert data.startswith(b"\xef\xbb\xbf")
    assert f"Đã ghi {out}" in stdout.getvalue()
    assert "100.0%" in stderr.getvalue()  # the progress bar reached the end
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no partial file left


def test_chosen_invoices_go_into_the_zip(month, tmp_path):
    out = tmp_path / "chosen.zip"
    ids = f"{month.invoices[0].pk},{month.invoices[1].pk}"

    call_command(
        "export", "CHOA", "2026-05", kind="xml-zip", out=str(out), ids=ids, stdout=io.StringIO()
    )

    assert len(zipfile.ZipFile(out).namelist()) == 3


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("NOPE", "2026-05"), {"kind": "xml-zip"}, "Không tìm thấy chợ có mã “NOPE”"),
        (("CHOA", "2026-5x"), {"kind": "xml-zip"}, "Kỳ “2026-5x” không hợp lệ"),
        (("CHOA", "2026-05"), {"kind": "pdf"}, "Loại tệp xuất “pdf” không hợp lệ"),
        (("CHOA", "2026-05"), {"kind": "xml-zip", "ids": "1,a"}, "--ids “1,a” không hợp lệ"),
        (("CHOA", "2026-05"), {"kind": "xml-zip", "ids": "999999"}, "Không tìm thấy hóa đơn"),
    ],
)
def test_mistakes_are_explained_in_vietnamese(month, tmp_path, args, kwargs, message):
    out = tmp_path / "x"
    with pytest.raises(CommandError, match=message):
        call_command("export", *args, out=str(out), stdout=io.StringIO(), **kwargs)
    assert not out.exists()
