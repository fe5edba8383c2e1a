"""Issuing the invoice of a paid fee demand: content, automatic issuance on payment, idempotency.

Every invoice a test stores is checked at teardown by our verifier, the totals identities and
Debian xmlsec1 (``invoicing.testing.check_stored_invoices``).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.test import override_settings
from django_tasks import default_task_backend

from invoicing import services, testing
from invoicing.models import Invoice, InvoiceLine, InvoiceSerial
from invoicing.rounding import GrossLine, vat_inclusive_breakdown
from invoicing.words import amount_in_words
from invoicing.xml import parse_invoice_summary, safe_parse
from market40.errors import Conflict
from market40.models import FeeDemand
from market40.signals import demand_fully_paid
from tests import factories

DUMMY_TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}


pytestmark = pytest.mark.usefixtures("every_invoice_verifies")


@pytest.fixture
def invoicing_a(market_a, tmp_path):
    settings, _pem = testing.configure_market(market_a, tmp_path / "certs")
    return settings


@pytest.fixture
def paid_a(billed_a):
    demands = list(FeeDemand.objects.filter(billing_run=billed_a.run).order_by("stall__code"))
    testing.mark_paid(demands)
    return [FeeDemand.objects.get(pk=d.pk) for d in demands]


def serial_of_this_year() -> str:
    return f"C{services.local_today().year % 100:02d}TAA"


def test_a_paid_demand_gets_a_signed_vat_invoice_with_its_lines_and_buyer(paid_a, invoicing_a):
    demand = paid_a[0]

    invoice = services.invoice_issue_for_demand(demand=demand)

    assert (invoice.form, invoice.serial_code, invoice.number) == ("1", serial_of_this_year(), 1)
    assert invoice.kind == Invoice.Kind.ORIGINAL and invoice.status == Invoice.Status.SIGNED
    assert invoice.total_payable_vnd == demand.total_vnd
    root = safe_parse(invoice.xml_bytes)
    general = root.find("DLHDon/TTChung")
    assert general.findtext("HTTToan") == "Chuyển khoản"
    assert general.findtext("MSTTCGP") == invoicing_a.provider_tax_code
    assert general.findtext("NLap") == f"{services.local_today():%Y-%m-%d}"
    seller = root.find("DLHDon/NDHDon/NBan")
    assert seller.findtext("MST") == "0312345678"
    assert seller.findtext("Ten") == demand.market.name
    buyer = root.find("DLHDon/NDHDon/NMua")
    assert buyer.findtext("Ten") == demand.holder.full_name
    assert buyer.findtext("HVTNMHang") == demand.holder.full_name
    extras = {t.findtext("TTruong"): t.findtext("DLieu") for t in buyer.findall("TTKhac/TTin")}
    assert extras == {"Sạp/ki-ốt": demand.stall.code, "Mã thanh toán": demand.payment_code}
    names = [item.findtext("THHDVu") for item in root.findall("DLHDon/NDHDon/DSHHDVu/HHDVu")]
    assert names == [line.description for line in demand.lines.all()]


def test_vat_is_derived_from_the_vat_inclusive_tariffs_per_rate_group(paid_a, invoicing_a):
    demand = paid_a[0]
    expected = vat_inclusive_breakdown(
        GrossLine(line.amount_vnd, line.vat_rate) for line in demand.lines.all()
    )

    invoice = services.invoice_issue_for_demand(demand=demand)
    summary = parse_invoice_summary(invoice.xml_bytes)

    assert summary["identity_problems"] == []
    assert summary["total_net"] == expected.total_net_vnd == invoice.total_net_vnd
    assert summary["total_vat"] == expected.total_vat_vnd == invoice.total_vat_vnd
    assert summary["total_payable"] == demand.total_vnd  # the payable equals what was paid
    assert [(g["rate"], g["net"], g["vat"]) for g in summary["groups"]] == [
        (g.rate, g.net_vnd, g.vat_vnd) for g in expected.groups
    ]
    assert summary["amount_in_words"] == amount_in_words(demand.total_vnd)
    lines = list(InvoiceLine.objects.filter(invoice=invoice))
    assert sum(line.net_vnd for line in lines) == invoice.total_net_vnd
    assert sum(line.gross_vnd for line in lines) == demand.total_vnd


def test_unit_prices_before_vat_multiply_back_to_each_line_amount(paid_a, invoicing_a):
    invoice = services.invoice_issue_for_demand(demand=paid_a[0])

    for item in safe_parse(invoice.xml_bytes).findall("DLHDon/NDHDon/DSHHDVu/HHDVu"):
        quantity, price = Decimal(item.findtext("SLuong")), Decimal(item.findtext("DGia"))
        assert round(quantity * price) == int(item.findtext("ThTien"))
        assert -price.as_tuple().exponent <= 6


def test_a_holder_with_a_tax_code_is_named_by_it_and_one_without_by_citizen_id(
    market_a, tariffs_a, invoicing_a
):
    with_mst = factories.make_holder(market_a, "Hộ kinh doanh Trần Văn Bình", tax_code="0312345679")
    with_cccd = factories.make_holder(market_a, "Lê Thị Mai", citizen_id="079123456789")
    for code, holder in (("B001", with_mst), ("B002", with_cccd)):
        factories.make_lease(factories.make_stall(market_a, code), holder)
    from market40.services import billing_run_create

    run = billing_run_create(market=market_a, period=date(2026, 5, 1)).run
    demands = list(run.demands.order_by("stall__code"))
    testing.mark_paid(demands)

    first = services.invoice_issue_for_demand(demand=demands[0].pk)
    second = services.invoice_issue_for_demand(demand=demands[1].pk)

    business = safe_parse(first.xml_bytes).find("DLHDon/NDHDon/NMua")
    assert business.findtext("MST") == "0312345679"
    assert business.find("CCCDan") is None and business.find("HVTNMHang") is None
    person = safe_parse(second.xml_bytes).find("DLHDon/NDHDon/NMua")
    assert person.find("MST") is None
    assert person.findtext("CCCDan") == "079123456789"
    assert person.findtext("HVTNMHang") == "Lê Thị Mai"
    assert (first.buyer_tax_code, second.buyer_citizen_id) == ("0312345679", "079123456789")


def test_a_direct_method_board_issues_sales_invoices_without_vat_fields(paid_a, market_a, tmp_path):
    testing.configure_market(market_a, tmp_path / "certs", form="2")

    invoice = services.invoice_issue_for_demand(demand=paid_a[0])

    root = safe_parse(invoice.xml_bytes)
    assert root.findtext("DLHDon/TTChung/THDon") == "Hóa đơn bán hàng"
    assert root.findtext("DLHDon/TTChung/KHMSHDon") == "2"
    assert root.find(".//TSuat") is None and root.find(".//TgTThue") is None
    assert invoice.total_vat_vnd == 0
    assert invoice.total_payable_vnd == invoice.total_net_vnd == paid_a[0].total_vnd


def test_the_payment_signal_issues_the_invoice_when_the_market_asks_for_it(paid_a, invoicing_a):
    invoicing_a.auto_issue_on_payment = True
    invoicing_a.save()
    demand = paid_a[1]

    demand_fully_paid.send(sender=FeeDemand, demand_ids=[demand.pk])

    invoice = Invoice.objects.get(demand=demand)
    assert invoice.issued_by is None  # automatic
    assert invoice.number == 1


def test_the_payment_signal_issues_nothing_when_automatic_issuance_is_off(paid_a, invoicing_a):
    demand_fully_paid.send(sender=FeeDemand, demand_ids=[paid_a[0].pk])

    assert not Invoice.objects.exists()


@override_settings(TASKS=DUMMY_TASKS)
def test_the_signal_receiver_only_enqueues_and_never_signs(paid_a, invoicing_a):
    invoicing_a.auto_issue_on_payment = True
    invoicing_a.save()
    default_task_backend.clear()

    demand_fully_paid.send(sender=FeeDemand, demand_ids=[paid_a[0].pk])

    assert not Invoice.objects.exists()
    (queued,) = default_task_backend.results
    assert queued.task.name == "issue_invoice_for_paid_demand"
    assert queued.args == [paid_a[0].pk]


@override_settings(TASKS={"default": {"BACKEND": "tests.no_such_module.QueueDown"}})
def test_a_failing_enqueue_never_breaks_the_payment(paid_a, invoicing_a):
    invoicing_a.auto_issue_on_payment = True
    invoicing_a.save()

    demand_fully_paid.send(sender=FeeDemand, demand_ids=[paid_a[0].pk])  # no exception

    assert not Invoice.objects.exists()


def test_issuing_twice_returns_the_same_invoice_and_takes_one_number(paid_a, invoicing_a):
    invoicing_a.auto_issue_on_payment = True
    invoicing_a.save()
    demand = paid_a[0]

    first = services.invoice_issue_for_demand(demand=demand)
    demand_fully_paid.send(sender=FeeDemand, demand_ids=[demand.pk])  # a redelivered payment
    again = services.invoice_issue_for_demand(demand=demand)

    assert first.pk == again.pk
    assert Invoice.objects.filter(demand=demand).count() == 1
    assert InvoiceSerial.objects.get().next_number == 2


def test_the_database_refuses_a_second_original_invoice_for_a_demand(paid_a, invoicing_a):
    invoice = services.invoice_issue_for_demand(demand=paid_a[0])
    duplicate = Invoice(
        **{
            f.attname: getattr(invoice, f.attname)
            for f in Invoice._meta.concrete_fields
            if f.name not in ("id", "number", "invoice_id")
        },
        number=99,
        invoice_id="DLHDon-duplicate",
    )

    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.bulk_create([duplicate])


@pytest.mark.parametrize("status", ["open", "partial", "cancelled"])
def test_a_demand_not_fully_paid_gets_no_invoice(billed_a, invoicing_a, status):
    demand = FeeDemand.objects.filter(billing_run=billed_a.run).first()
    FeeDemand.objects.filter(pk=demand.pk).update(status=status)

    with pytest.raises(Conflict) as error:
        services.invoice_issue_for_demand(demand=demand)

    assert error.value.code == "demand_not_paid"
    assert "chưa được thanh toán đủ" in error.value.message
    assert not Invoice.objects.exists()


def test_an_overpaid_demand_is_invoiced_for_what_it_owed(paid_a, invoicing_a):
    demand = paid_a[0]
    FeeDemand.objects.filter(pk=demand.pk).update(
        status=FeeDemand.Status.OVERPAID, paid_vnd=demand.total_vnd + 50_000
    )

    invoice = services.invoice_issue_for_demand(demand=demand)

    assert invoice.total_payable_vnd == demand.total_vnd


def test_a_market_without_invoice_settings_is_told_what_to_configure(paid_a):
    with pytest.raises(Conflict) as error:
        services.invoice_issue_for_demand(demand=paid_a[0])

    assert error.value.code == "invoice_settings_missing"
    assert "chưa có cấu hình hóa đơn điện tử" in error.value.message


def test_a_period_run_issues_every_paid_demand_once_and_says_so_when_run_again(
    billed_a, invoicing_a
):
    demands = list(FeeDemand.objects.filter(billing_run=billed_a.run).order_by("stall__code"))
    testing.mark_paid(demands[:2])  # the third is still open
    period = date(2026, 5, 1)
    calls = []

    result = services.invoices_issue_for_period(
        market=billed_a.run.market, period=period, progress=lambda d, t: calls.append((d, t))
    )
    again = services.invoices_issue_for_period(market=billed_a.run.market, period=period)

    assert (result.issued, result.already_issued, result.failures) == (2, 0, [])
    assert (result.first_number, result.last_number) == (1, 2)
    assert calls[-1] == (2, 2)
    assert again.changed_nothing and again.already_issued == 2
    numbers = list(Invoice.objects.order_by("number").values_list("stall_code", "number"))
    assert numbers == [(demands[0].stall.code, 1), (demands[1].stall.code, 2)]


def test_a_demand_the_format_refuses_is_reported_and_takes_no_number(
    billed_a, invoicing_a, market_a
):
    demands = list(FeeDemand.objects.filter(billing_run=billed_a.run).order_by("stall__code"))
    testing.mark_paid(demands)
    # A holder name with a line break cannot be written on one line (spec §3.1).
    demands[1].holder.__class__.objects.filter(pk=demands[1].holder_id).update(
        full_name="Nguyễn\nVăn A"
    )

    result = services.invoices_issue_for_period(market=market_a, period=date(2026, 5, 1))

    assert result.issued == 2
    [failure] = result.failures
    assert failure.payment_code == demands[1].payment_code
    assert "xuống dòng" in failure.message
    assert sorted(Invoice.objects.values_list("number", flat=True)) == [1, 2]
    assert InvoiceSerial.objects.get().next_number == 3
