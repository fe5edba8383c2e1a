"""``make_test_certificate``, ``verify_invoice`` and ``issue_invoices``."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from cryptography import x509
from django.core.management import CommandError, call_command
from lxml import etree

from invoicing import services, testing
from invoicing.models import Invoice, InvoiceSettings
from invoicing.signing import subject_mst
from market40.models import FeeDemand
from tests.conftest import REPO_ROOT, shared_data_or_skip

REAL_FILES = (
    "invoice-06786dcf.xml",
    "invoice-5918df25.xml",
    "invoice-5b30404c.xml",
    "invoice-dfe0809f.xml",
    "invoice-f4f3bf11.xml",
    "tdiep-202-test-env.xml",
)

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE HDon [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<HDon><DLHDon Id="a"><TTChung>&xxe;</TTChung></DLHDon></HDon>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]>
<HDon>&lol2;</HDon>"""


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def real_paths() -> list[Path]:
    folder = shared_data_or_skip("einvoice", "real")
    return sorted({*folder.glob("*.xml"), *(folder / name for name in REAL_FILES)})


@pytest.fixture
def paid_a(billed_a):
    demands = list(FeeDemand.objects.filter(billing_run=billed_a.run).order_by("stall__code"))
    testing.mark_paid(demands)
    return demands


# --- make_test_certificate -------------------------------------------------------------


def test_make_test_certificate_writes_a_key_for_the_markets_tax_code_and_records_it(
    market_a, paid_a, tmp_path
):
    out = tmp_path / "certs" / "choa.p12"

    output = run("make_test_certificate", "CHOA", "--out", str(out))

    assert out.is_file() and stat.S_IMODE(out.stat().st_mode) == 0o600
    certificate = x509.load_pem_x509_certificate(out.with_suffix(".pem").read_bytes())
    assert subject_mst(certificate) == "0312345678"
    assert certificate.public_key().key_size == 2048
    assert certificate.subject == certificate.issuer  # self-signed
    settings = InvoiceSettings.objects.get(market=market_a)
    assert settings.certificate_path == str(out.resolve())
    assert settings.certificate_password_ref == ""
    assert settings.provider_tax_code == "0312345678"
    assert "UID=MST:0312345678" in output
    invoice = services.invoice_issue_for_demand(demand=paid_a[0])
    assert testing.check_stored_invoices(tmp_path / "xmlsec1") == 1
    assert invoice.certificate_subject.startswith("UID=MST:0312345678")


def test_make_test_certificate_defaults_to_the_certificate_folder_and_keeps_settings(
    market_a, tmp_path, monkeypatch
):
    monkeypatch.setenv("INVOICING_CERT_DIR", str(tmp_path / "dir"))
    InvoiceSettings.objects.create(
        market=market_a, provider_tax_code="0101360697", form="2", auto_issue_on_payment=True
    )

    run("make_test_certificate", "choa")

    settings = InvoiceSettings.objects.get(market=market_a)
    assert settings.certificate_path == str((tmp_path / "dir" / "CHOA-test.p12").resolve())
    assert (settings.form, settings.provider_tax_code, settings.auto_issue_on_payment) == (
        "2",
        "0101360697",
        True,
    )


def test_make_test_certificate_refuses_to_overwrite_without_force(market_a, tmp_path):
    out = tmp_path / "choa.p12"
    run("make_test_certificate", "CHOA", "--out", str(out))
    first = out.read_bytes()

    with pytest.raises(CommandError, match="--force"):
        run("make_test_certificate", "CHOA", "--out", str(out))
    run("make_test_certificate", "CHOA", "--out", str(out), "--force")

    assert out.read_bytes() != first


def test_a_password_protected_test_certificate_names_the_variable_to_set(
    market_a, paid_a, tmp_path, monkeypatch
):
    out = tmp_path / "choa.p12"

    output = run("make_test_certificate", "CHOA", "--out", str(out), "--password", "bi-mat")
    monkeypatch.setenv("INVOICING_CERT_PASSWORD_CHOA", "bi-mat")
    services.invoice_issue_for_demand(demand=paid_a[0])

    assert "INVOICING_CERT_PASSWORD_CHOA=<mật khẩu>" in output
    settings = InvoiceSettings.objects.get(market=market_a)
    assert settings.certificate_password_ref == "env:INVOICING_CERT_PASSWORD_CHOA"
    assert "bi-mat" not in str(InvoiceSettings.objects.values().get())
    assert Invoice.objects.count() == 1


def test_make_test_certificate_for_an_unknown_market_fails(db):
    with pytest.raises(CommandError, match="Không tìm thấy chợ"):
        run("make_test_certificate", "NOPE")


# --- verify_invoice -------------------------------------------------------------------


def test_every_real_invoice_verifies(db):
    paths = real_paths()

    output = run("verify_invoice", *map(str, paths))

    assert f"{len(paths)}/{len(paths)} tệp đạt." in output
    assert output.count("): hợp lệ") == 2 * len(paths)  # seller and tax authority each
    assert "KHÔNG" not in output
    assert output.count("TgTTTBSo = TgTCThue + TgTThue: đúng") == len(paths)
    assert "rsa-sha1" in output and "rsa-sha256" in output


def test_verify_invoice_exits_non_zero_when_a_file_fails(tmp_path):
    good = real_paths()[0]
    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(good.read_bytes().replace(b"<SHDon>", b"<SHDon>9", 1))

    result = subprocess.run(
        [sys.executable, "manage.py", "verify_invoice", str(good), str(tampered)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )

    assert result.returncode == 1
    assert "digest mismatch for reference #" in result.stdout
    assert "1/2 tệp KHÔNG đạt" in result.stderr


def test_our_invoice_verifies_and_a_tampered_copy_says_which_reference_broke(
    market_a, paid_a, tmp_path
):
    testing.configure_market(market_a, tmp_path / "certs")
    invoice = services.invoice_issue_for_demand(demand=paid_a[0])
    ours = tmp_path / "ours.xml"
    ours.write_bytes(invoice.xml_bytes)
    root = etree.fromstring(invoice.xml_bytes)
    root.find("DLHDon/NDHDon/NMua/Ten").text = "Người khác"
    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(etree.tostring(root, encoding="UTF-8"))

    output = run("verify_invoice", str(ours))
    with pytest.raises(CommandError) as error:
        run("verify_invoice", str(tampered))

    assert "người bán, rsa-sha256, UID=MST:0312345678" in output and "1/1 tệp đạt." in output
    assert error.value.returncode == 1


def test_verify_invoice_reports_the_exact_reason_and_the_identities(tmp_path):
    good = real_paths()[0]
    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(good.read_bytes().replace(b"<TgTThue>", b"<TgTThue>1", 1))
    out = StringIO()

    with pytest.raises(CommandError):
        call_command("verify_invoice", str(tampered), stdout=out)

    text = out.getvalue()
    assert "KHÔNG hợp lệ — digest mismatch for reference #" in text
    assert "Đẳng thức sai: TgTThue" in text


@pytest.mark.parametrize(("name", "content"), [("xxe.xml", XXE), ("lol.xml", BILLION_LAUGHS)])
def test_verify_invoice_refuses_entity_attacks_with_a_clear_message(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    out = StringIO()

    with pytest.raises(CommandError):
        call_command("verify_invoice", str(path), stdout=out)

    assert "có khai báo DOCTYPE hoặc ENTITY" in out.getvalue()
    assert "XXE" in out.getvalue()
    assert "root:" not in out.getvalue()


def test_verify_invoice_refuses_a_huge_file_before_reading_it(tmp_path):
    path = tmp_path / "huge.xml"
    with path.open("wb") as handle:
        handle.truncate(6 * 1024 * 1024)
    out = StringIO()

    with pytest.raises(CommandError):
        call_command("verify_invoice", str(path), stdout=out)

    assert "vượt giới hạn" in out.getvalue() and "không đọc tệp" in out.getvalue()


# --- issue_invoices -------------------------------------------------------------------


def test_issue_invoices_issues_a_period_with_a_progress_bar_and_is_idempotent(
    market_a, paid_a, tmp_path
):
    testing.configure_market(market_a, tmp_path / "certs")
    out, err = StringIO(), StringIO()

    call_command("issue_invoices", "CHOA", "2026-05", "--progress", stdout=out, stderr=err)
    again = run("issue_invoices", "CHOA", "2026-05")

    assert "Đã xuất 3 hóa đơn kỳ 05/2026 cho chợ CHOA" in out.getvalue()
    assert "số 1–3" in out.getvalue()
    assert "Xuất hóa đơn CHOA 05/2026 [" in err.getvalue() and "100.0%" in err.getvalue()
    assert "không xuất hóa đơn nào (3 phiếu đã có hóa đơn từ trước)" in again
    assert Invoice.objects.count() == 3
    testing.check_stored_invoices(tmp_path / "xmlsec1")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("NOPE", "2026-05"), "Không tìm thấy chợ"),
        (("CHOA", "2026-5"), "YYYY-MM"),
        (("CHOA", "2026-05"), "chưa có cấu hình hóa đơn điện tử"),
    ],
)
def test_issue_invoices_explains_what_is_wrong(market_a, args, message):
    with pytest.raises(CommandError, match=message):
        run("issue_invoices", *args)
