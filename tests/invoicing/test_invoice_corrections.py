"""Correcting a wrong invoice (spec §4.2): a replacement (TCHDon 1) or an adjustment (TCHDon 2)
takes the next number, links to the original with a required reason, and marks it."""

from __future__ import annotations

import pytest

from invoicing import services, testing
from invoicing.models import Invoice, InvoiceSerial
from invoicing.xml import parse_invoice_summary, safe_parse
from market40.errors import Conflict, InvalidInput
from market40.models import FeeDemand, StallHolder

pytestmark = pytest.mark.usefixtures("every_invoice_verifies")


@pytest.fixture
def original(billed_a, market_a, tmp_path):
    testing.configure_market(market_a, tmp_path / "certs")
    demands = list(FeeDemand.objects.filter(billing_run=billed_a.run).order_by("stall__code"))
    testing.mark_paid(demands)
    return services.invoice_issue_for_demand(demand=demands[0])


def related_block(invoice: Invoice) -> dict[str, str]:
    block = safe_parse(invoice.xml_bytes).find("DLHDon/TTChung/TTHDLQuan")
    return {child.tag: child.text for child in block}


def test_a_replacement_takes_the_next_number_and_links_to_the_original(original):
    # The holder gave her tax code after the invoice was issued.
    StallHolder.objects.filter(pk=original.demand.holder_id).update(tax_code="0312345679")

    replacement = services.invoice_replace(invoice=original, reason="Bổ sung mã số thuế")

    assert replacement.number == original.number + 1
    assert replacement.kind == Invoice.Kind.REPLACEMENT
    assert replacement.related_id == original.pk and replacement.demand_id == original.demand_id
    assert related_block(replacement) == {
        "TCHDon": "1",
        "LHDCLQuan": "1",
        "KHMSHDCLQuan": "1",
        "KHHDCLQuan": original.serial_code,
        "SHDCLQuan": str(original.number),
        "NLHDCLQuan": f"{original.issue_date:%Y-%m-%d}",
        "GChu": "Bổ sung mã số thuế",
    }
    assert replacement.buyer_tax_code == "0312345679"
    assert replacement.total_payable_vnd == original.total_payable_vnd
    assert Invoice.objects.get(pk=original.pk).status == Invoice.Status.REPLACED


def test_a_replacement_can_correct_the_buyer_given_by_the_accountant(original):
    replacement = services.invoice_replace(
        invoice=original,
        reason="Sai địa chỉ người mua",
        buyer=services.BuyerCorrection(address="12 Nguyễn Huệ, Quận 1"),
    )

    buyer = safe_parse(replacement.xml_bytes).find("DLHDon/NDHDon/NMua")
    assert buyer.findtext("DChi") == "12 Nguyễn Huệ, Quận 1"
    assert buyer.findtext("Ten") == original.buyer_name


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_correction_needs_a_reason(original, reason):
    with pytest.raises(InvalidInput) as error:
        services.invoice_replace(invoice=original, reason=reason)

    assert error.value.code == "reason_required"
    assert "lý do" in error.value.message
    assert Invoice.objects.count() == 1
    assert Invoice.objects.get().status == Invoice.Status.SIGNED


def test_an_invoice_is_replaced_only_once_and_the_refusal_takes_no_number(original):
    replacement = services.invoice_replace(invoice=original, reason="Sai tên")

    with pytest.raises(Conflict) as error:
        services.invoice_replace(invoice=original, reason="Lần nữa")

    assert "đã bị thay thế" in error.value.message
    assert InvoiceSerial.objects.get().next_number == 3
    again = services.invoice_replace(invoice=replacement, reason="Thay thế hóa đơn thay thế")
    assert again.number == 3 and again.related_id == replacement.pk


def test_an_invalid_correction_leaves_the_original_and_the_counter_alone(original):
    with pytest.raises(InvalidInput) as error:
        services.invoice_replace(
            invoice=original,
            reason="Bổ sung MST",
            buyer=services.BuyerCorrection(tax_code="12345"),
        )

    assert "mã số thuế" in error.value.message
    assert Invoice.objects.get(pk=original.pk).status == Invoice.Status.SIGNED
    assert InvoiceSerial.objects.get().next_number == 2


def test_an_adjustment_adds_amounts_with_vat_derived_like_the_tariffs(original):
    adjustment = services.invoice_adjust(
        invoice=original,
        reason="Thu bổ sung tiền điện tháng 05/2026",
        lines=[
            services.AdjustmentLine(
                description="Tiền điện bổ sung", amount_vnd=20_000, vat_rate="8%"
            )
        ],
    )

    assert adjustment.number == 2 and adjustment.kind == Invoice.Kind.ADJUSTMENT
    assert related_block(adjustment)["TCHDon"] == "2"
    assert (adjustment.total_net_vnd, adjustment.total_vat_vnd) == (18_519, 1_481)  # §10.1
    assert adjustment.total_payable_vnd == 20_000
    assert parse_invoice_summary(adjustment.xml_bytes)["identity_problems"] == []
    assert Invoice.objects.get(pk=original.pk).status == Invoice.Status.ADJUSTED

    second = services.invoice_adjust(
        invoice=original,
        reason="Thu bổ sung tiền nước",
        lines=[services.AdjustmentLine(description="Tiền nước", amount_vnd=15_000, vat_rate="5%")],
    )
    assert second.number == 3


def test_an_adjustment_of_information_only_has_a_note_line_and_zero_totals(original):
    adjustment = services.invoice_adjust(invoice=original, reason="Sửa địa chỉ người mua")

    root = safe_parse(adjustment.xml_bytes)
    (line,) = root.findall("DLHDon/NDHDon/DSHHDVu/HHDVu")
    assert line.findtext("TChat") == "4"
    assert "Sửa địa chỉ người mua" in line.findtext("THHDVu")
    assert root.findtext("DLHDon/NDHDon/TToan/TgTTTBSo") == "0"
    assert root.findtext("DLHDon/NDHDon/TToan/TgTTTBChu") == "Không đồng"


@pytest.mark.parametrize("amount", [0, -5000])
def test_an_adjustment_cannot_write_a_decrease(original, amount):
    with pytest.raises(InvalidInput) as error:
        services.invoice_adjust(
            invoice=original,
            reason="Giảm tiền",
            lines=[services.AdjustmentLine(description="Giảm", amount_vnd=amount)],
        )

    assert "hóa đơn thay thế" in error.value.message
    assert InvoiceSerial.objects.get().next_number == 2


def test_an_adjustment_rate_must_be_a_format_rate(original):
    with pytest.raises(InvalidInput, match="Thuế suất"):
        services.invoice_adjust(
            invoice=original,
            reason="Thu thêm",
            lines=[services.AdjustmentLine(description="X", amount_vnd=1000, vat_rate="7%")],
        )


def test_a_replaced_invoice_cannot_be_adjusted(original):
    services.invoice_replace(invoice=original, reason="Sai tên")

    with pytest.raises(Conflict):
        services.invoice_adjust(invoice=original, reason="Điều chỉnh")

    assert Invoice.objects.count() == 2
