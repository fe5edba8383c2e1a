"""The operators' commands: seed_demo, bill_period, import_stalls, load_banks."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from openpyxl import Workbook

from market40.models import Bank, FeeDemand, Lease, Market, Stall, StallHolder


def run(*args):
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_seed_demo_creates_a_realistic_market_and_prints_the_logins(db):
    out, _ = run("seed_demo", "--stalls", "40", "--market", "DEMO")
    market = Market.objects.get(code="DEMO")
    assert market.stalls.count() == 40
    assert market.zones.count() >= 4
    assert market.tariffs.filter(fee_kind="rent").exists()
    assert Lease.objects.filter(stall__market=market).count() == 40
    assert "quanly / quanly2026" in out and "ketoan / ketoan2026" in out
    names = list(StallHolder.objects.values_list("full_name", flat=True))
    assert any(ch in "".join(names) for ch in "ễịạươ")  # Vietnamese names


def test_seed_demo_if_empty_leaves_an_existing_database_alone(market_a):
    out, _ = run("seed_demo", "--if-empty")
    assert "bỏ qua" in out
    assert Market.objects.count() == 1


def test_bill_period_reports_what_it_created_then_that_nothing_changed(db):
    run("seed_demo", "--stalls", "12", "--market", "DEMO")
    out, _ = run("bill_period", "DEMO", "2026-05")
    count = FeeDemand.objects.count()
    assert count > 0
    assert f"Đã lập {count} phiếu báo phí kỳ 05/2026" in out
    out, _ = run("bill_period", "DEMO", "2026-05")
    assert "không có gì thay đổi" in out
    assert FeeDemand.objects.count() == count


def test_bill_period_refuses_a_bad_period_or_market(db):
    run("seed_demo", "--stalls", "3", "--market", "DEMO")
    with pytest.raises(CommandError, match="YYYY-MM"):
        run("bill_period", "DEMO", "2026-13")
    with pytest.raises(CommandError, match="Không tìm thấy chợ"):
        run("bill_period", "NOPE", "2026-05")
    assert not FeeDemand.objects.exists()


CSV_OK = """Mã sạp,Khu,Loại,Diện tích (m²),Họ tên,Điện thoại,CCCD,Ngày bắt đầu
A101,A,L1,"6,5",Trần Thị Bích,0912 345 678,079123456789,01/03/2026
A102,A,L2,4,,,,
B201,B,L1,8,Phạm Văn Đông,+84987654321,,
"""


def test_import_stalls_reads_a_vietnamese_csv(market_a, tmp_path):
    path = tmp_path / "sap.csv"
    path.write_text(CSV_OK, encoding="utf-8-sig")
    out, _ = run("import_stalls", "CHOA", str(path))
    assert "Đã nhập 3 sạp, 2 tiểu thương, 2 hợp đồng" in out
    stall = Stall.objects.get(code="A101")
    assert str(stall.area_m2) == "6.50" and stall.zone.code == "A"
    assert stall.payment_code.startswith("SAP")
    holder = StallHolder.objects.get(full_name="Phạm Văn Đông")
    assert holder.phone == "0987654321"
    assert (
        Lease.objects.get(holder__full_name="Trần Thị Bích").start_date.isoformat() == "2026-03-01"
    )


def test_import_stalls_reads_xlsx(market_a, tmp_path):
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["ma_sap", "khu", "loai", "dien_tich"])
    sheet.append(["C1", "C", "L3", 3.5])
    sheet.append(["C2", "C", "L3", 2])
    path = tmp_path / "sap.xlsx"
    workbook.save(path)
    out, _ = run("import_stalls", "CHOA", str(path))
    assert "Đã nhập 2 sạp" in out
    assert Stall.objects.filter(market=market_a, zone__code="C").count() == 2


def test_a_bad_row_is_reported_by_number_and_nothing_is_written(market_a, tmp_path):
    bad = CSV_OK.replace("B201,B,L1,8", "B201,B,L1,-2").replace("0912 345 678", "0123")
    path = tmp_path / "sap.csv"
    path.write_text(bad + "A101,A,L1,5,,,,\n", encoding="utf-8")
    with pytest.raises(CommandError, match="3 lỗi"):
        call_command(
            "import_stalls", "CHOA", str(path), stdout=StringIO(), stderr=(err := StringIO())
        )
    report = err.getvalue()
    assert "Dòng 2:" in report and "điện thoại" in report.lower()
    assert "Dòng 4:" in report and "Diện tích" in report
    assert "Dòng 5:" in report and "trùng với dòng 2" in report
    assert not Stall.objects.exists() and not StallHolder.objects.exists()


def test_import_stalls_dry_run_writes_nothing(market_a, tmp_path):
    path = tmp_path / "sap.csv"
    path.write_text(CSV_OK, encoding="utf-8")
    out, _ = run("import_stalls", "CHOA", str(path), "--dry-run")
    assert "Sẽ nhập 3 sạp" in out
    assert not Stall.objects.exists()


def test_import_stalls_names_missing_columns(market_a, tmp_path):
    path = tmp_path / "sap.csv"
    path.write_text("Tên,Ghi chú\nx,y\n", encoding="utf-8")
    with pytest.raises(CommandError, match="Thiếu cột bắt buộc"):
        run("import_stalls", "CHOA", str(path))


def test_load_banks_reads_the_napas_list_and_refuses_a_broken_file(db, tmp_path):
    good = tmp_path / "banks.json"
    good.write_text(
        json.dumps(
            {
                "data": [
                    {
                        "bin": "970436",
                        "code": "VCB",
                        "shortName": "Vietcombank",
                        "name": "Ngoại thương",
                    },
                    {"bin": "971025", "code": "MOMO", "shortName": "MoMo", "name": "Ví MoMo"},
                ]
            }
        ),
        encoding="utf-8",
    )
    out, _ = run("load_banks", str(good))
    assert "Đã nạp 2 ngân hàng" in out
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"data": [{"bin": "97043"}]}), encoding="utf-8")
    with pytest.raises(CommandError, match="6 chữ số"):
        run("load_banks", str(broken))
    assert Bank.objects.count() == 2


@pytest.mark.parametrize(
    "args",
    [
        ("bill_period", "NOPE", "2026-05"),
        ("import_stalls", "NOPE", "stalls.csv"),
        ("issue_invoices", "NOPE", "2026-05"),
        ("make_test_certificate", "NOPE"),
        ("add_connection", "NOPE", "sepay"),
        ("simulate_bank", "NOPE", "2026-05", "--connection", "cnx"),
        ("export", "NOPE", "2026-05", "--kind", "bangke-csv", "--out", "x.csv"),
    ],
)
def test_every_command_names_an_unknown_market_the_same_way(db, args):
    with pytest.raises(CommandError, match="Không tìm thấy chợ có mã “NOPE”"):
        call_command(*args)
