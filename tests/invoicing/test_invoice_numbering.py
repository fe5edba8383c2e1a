"""SHDon numbering (spec §5.3): consecutive from 1 per (seller MST, form, serial), no gap, no
reuse, a new serial each year; stored invoices are immutable."""

from __future__ import annotations

from datetime import date

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from invoicing import services, testing
from invoicing.certificates import CertificateError
from invoicing.models import ImmutableInvoiceError, Invoice, InvoiceSerial, InvoiceSettings
from invoicing.signing import SigningError
from market40.errors import Conflict
from market40.models import FeeDemand
from tests import factories

pytestmark = pytest.mark.usefixtures("every_invoice_verifies")


@pytest.fixture
def paid(market_a, tariffs_a, tmp_path):
    """Six paid demands of market A (May 2026) and its invoice settings."""
    from market40.services import billing_run_create

    for number in range(1, 7):
        factories.make_lease(factories.make_stall(market_a, f"N{number:03d}"))
    run = billing_run_create(market=market_a, period=date(2026, 5, 1)).run
    demands = list(run.demands.order_by("stall__code"))
    testing.mark_paid(demands)
    settings, _pem = testing.configure_market(market_a, tmp_path / "certs")
    return demands


def numbers() -> list[int]:
    return list(Invoice.objects.order_by("number").values_list("number", flat=True))


def test_numbers_run_from_one_without_gaps_across_single_batch_and_corrections(paid, market_a):
    services.invoice_issue_for_demand(demand=paid[0])
    services.invoice_issue_for_demand(demand=paid[1])
    services.invoices_issue_for_period(market=market_a, period=date(2026, 5, 1), batch_size=2)
    first = Invoice.objects.get(number=1)
    services.invoice_replace(invoice=first, reason="Sai tên người mua")

    assert numbers() == [1, 2, 3, 4, 5, 6, 7]
    assert InvoiceSerial.objects.get().next_number == 8


def test_a_signing_failure_stores_nothing_and_takes_no_number(paid, monkeypatch):
    services.invoice_issue_for_demand(demand=paid[0])

    def fail(*args, **kwargs):
        raise SigningError("HSM unavailable")

    monkeypatch.setattr(services, "sign_invoice", fail)
    with pytest.raises(CertificateError) as error:
        services.invoice_issue_for_demand(demand=paid[1])
    monkeypatch.undo()
    services.invoice_issue_for_demand(demand=paid[2])

    assert error.value.code == "signing_failed"
    assert "Không hóa đơn nào được lưu" in error.value.message
    assert numbers() == [1, 2]
    assert not Invoice.objects.filter(demand=paid[1]).exists()


def test_a_failing_batch_rolls_back_every_number_it_took(paid, market_a, monkeypatch):
    from invoicing import signing

    calls = {"n": 0}

    def third_fails(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise SigningError("token removed")
        return signing.sign_invoice(*args, **kwargs)

    monkeypatch.setattr(services, "sign_invoice", third_fails)
    with pytest.raises(CertificateError):
        services.invoices_issue_for_period(market=market_a, period=date(2026, 5, 1))

    assert not Invoice.objects.exists()
    assert not InvoiceSerial.objects.filter(next_number__gt=1).exists()
    monkeypatch.undo()
    result = services.invoices_issue_for_period(market=market_a, period=date(2026, 5, 1))
    assert (result.first_number, result.last_number) == (1, 6)


def test_a_new_year_starts_a_new_serial_at_number_one(paid, monkeypatch):
    monkeypatch.setattr(services, "local_today", lambda: date(2026, 12, 31))
    services.invoice_issue_for_demand(demand=paid[0])
    services.invoice_issue_for_demand(demand=paid[1])
    monkeypatch.setattr(services, "local_today", lambda: date(2027, 1, 1))
    services.invoice_issue_for_demand(demand=paid[2])

    rows = list(Invoice.objects.order_by("pk").values_list("serial_code", "number", "issue_date"))
    assert rows == [
        ("C26TAA", 1, date(2026, 12, 31)),
        ("C26TAA", 2, date(2026, 12, 31)),
        ("C27TAA", 1, date(2027, 1, 1)),
    ]
    serials = dict(InvoiceSerial.objects.values_list("serial", "year"))
    assert serials == {"C26TAA": 2026, "C27TAA": 2027}


def test_a_deactivated_serial_of_the_year_is_not_reused(paid, market_a, monkeypatch):
    monkeypatch.setattr(services, "local_today", lambda: date(2026, 6, 1))
    services.invoice_issue_for_demand(demand=paid[0])
    InvoiceSerial.objects.update(active=False)

    with pytest.raises(Conflict) as error:
        services.invoice_issue_for_demand(demand=paid[1])

    assert error.value.code == "serial_inactive"
    assert "C26TAA" in error.value.message


def test_a_registered_serial_of_the_year_is_used_as_it_is(paid, market_a, monkeypatch):
    monkeypatch.setattr(services, "local_today", lambda: date(2026, 6, 1))
    InvoiceSerial.objects.create(
        market=market_a, seller_tax_code=market_a.tax_code, form="1", serial="C26TBC"
    )

    invoice = services.invoice_issue_for_demand(demand=paid[0])

    assert (invoice.serial_code, invoice.number) == ("C26TBC", 1)


@pytest.mark.parametrize(
    "serial", ["C26TA1", "X26TAA", "C26ZAA", "C26TAAA", "c26taa", "C2XTAA", "C26TA"]
)
def test_a_serial_must_match_the_spec_pattern(market_a, serial):
    row = InvoiceSerial(market=market_a, seller_tax_code=market_a.tax_code, form="1", serial=serial)

    with pytest.raises(ValidationError) as error:
        row.full_clean()

    assert "Ký hiệu hóa đơn" in str(error.value)


def test_the_database_refuses_a_serial_outside_the_pattern(market_a):
    with pytest.raises(IntegrityError), transaction.atomic():
        InvoiceSerial.objects.bulk_create(
            [
                InvoiceSerial(
                    market=market_a,
                    seller_tax_code=market_a.tax_code,
                    form="1",
                    serial="C26ZZZ",
                    year=2026,
                )
            ]
        )


def test_the_serial_year_is_the_year_inside_the_serial(market_a):
    row = InvoiceSerial.objects.create(
        market=market_a, seller_tax_code=market_a.tax_code, form="1", serial="K27TAB", year=1999
    )

    assert row.year == 2027


@pytest.mark.parametrize("scheme", ["CYYTAA", "KYYHAB"])
def test_a_serial_scheme_gives_the_serial_of_each_year(market_a, scheme):
    settings = InvoiceSettings(
        market=market_a, provider_tax_code="0101360697", serial_scheme=scheme
    )
    settings.full_clean()

    assert settings.serial_for_year(2026) == scheme.replace("YY", "26")


@pytest.mark.parametrize("scheme", ["C26TAA", "CYYZAA", "CYYTA1", "YYCTAA"])
def test_a_serial_scheme_keeps_yy_in_place(market_a, scheme):
    settings = InvoiceSettings(
        market=market_a, provider_tax_code="0101360697", serial_scheme=scheme
    )

    with pytest.raises(ValidationError):
        settings.full_clean()


def test_the_database_refuses_a_reused_number(paid):
    invoice = services.invoice_issue_for_demand(demand=paid[0])
    copy = Invoice(
        **{
            f.attname: getattr(invoice, f.attname)
            for f in Invoice._meta.concrete_fields
            if f.name not in ("id", "invoice_id", "demand")
        },
        demand=paid[1],
        invoice_id="DLHDon-copy",
    )

    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.bulk_create([copy])


def test_a_stored_invoice_cannot_be_changed_or_deleted(paid):
    invoice = services.invoice_issue_for_demand(demand=paid[0])
    stored = invoice.xml_bytes

    invoice.xml = stored.replace(
        b"Chuy\xe1\xbb\x83n kho\xe1\xba\xa3n", b"Ti\xe1\xbb\x81n m\xe1\xba\xb7t"
    )
    with pytest.raises(ImmutableInvoiceError):
        invoice.save()
    with pytest.raises(ImmutableInvoiceError):
        invoice.save(update_fields=["xml"])
    with pytest.raises(ImmutableInvoiceError):
        Invoice.objects.filter(pk=invoice.pk).update(xml=b"<HDon/>")
    with pytest.raises(ImmutableInvoiceError):
        Invoice.objects.filter(pk=invoice.pk).update(total_payable_vnd=1)
    with pytest.raises(ImmutableInvoiceError):
        Invoice.objects.bulk_update([invoice], ["number"])
    with pytest.raises(ImmutableInvoiceError):
        invoice.delete()
    with pytest.raises(ImmutableInvoiceError):
        Invoice.objects.all().delete()

    assert Invoice.objects.get(pk=invoice.pk).xml_bytes == stored
    assert Invoice.objects.filter(pk=invoice.pk).update(status="signed") == 1  # status only


def test_a_new_invoice_refuses_a_hash_that_is_not_its_bytes(paid):
    invoice = services.invoice_issue_for_demand(demand=paid[0])
    clone = Invoice(
        **{
            f.attname: getattr(invoice, f.attname)
            for f in Invoice._meta.concrete_fields
            if f.name not in ("id",)
        }
    )
    clone.pk = None
    clone._state.adding = True
    clone.sha256 = "0" * 64

    with pytest.raises(ImmutableInvoiceError):
        clone.save()


def test_paid_demands_of_another_market_have_their_own_counter(paid, market_b, tmp_path):
    from market40.services import billing_run_create

    factories.make_tariffs(market_b)
    factories.make_lease(factories.make_stall(market_b, "B001"))
    run = billing_run_create(market=market_b, period=date(2026, 5, 1)).run
    testing.mark_paid(run.demands.all())
    testing.configure_market(market_b, tmp_path / "certs-b")

    a = services.invoice_issue_for_demand(demand=paid[0])
    b = services.invoice_issue_for_demand(demand=FeeDemand.objects.get(billing_run=run))

    assert (a.seller_tax_code, a.number) == ("0312345678", 1)
    assert (b.seller_tax_code, b.number) == ("0301234567", 1)
