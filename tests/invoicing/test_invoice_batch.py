"""The period run (``invoices_issue_for_period``) shares what repeats between invoices (demand
lines, VAT rate groups, invoice lines) and stores rows in bulk; what it signs and stores is
exactly what issuing each invoice on its own would (spec einvoice.md §5.3, §6.1, §10)."""

from __future__ import annotations

import gc
import random
from datetime import date
from decimal import Decimal

import pytest
from django.db import connection

from invoicing import services, testing
from invoicing.certificates import load_signing_key
from invoicing.models import Invoice, InvoiceLine
from invoicing.rounding import RATE_CODES, GrossLine, vat_inclusive_breakdown
from invoicing.signing import sign_invoice
from invoicing.xml import InvoiceData, build_unsigned_invoice, safe_parse
from market40.models import MeterReading
from market40.services import billing_run_create
from tests import factories

PERIOD = date(2026, 5, 1)


pytestmark = pytest.mark.usefixtures("every_invoice_verifies")


@pytest.fixture
def period_run(market_a, tariffs_a, tmp_path):
    """36 paid demands of market A (more lines than one SQLite statement holds): stalls of two
    classes and three areas, so that most lines and rate groups repeat, half of them metered."""
    for number in range(36):
        stall = factories.make_stall(
            market_a,
            f"B{number:03d}",
            stall_class=("L1", "L2")[number % 2],
            area=("4.50", "6.00", "11.25")[number % 3],
        )
        factories.make_lease(stall)
        if number % 2:
            MeterReading.objects.create(
                stall=stall,
                utility="electricity",
                period=PERIOD,
                previous_value=Decimal(100),
                current_value=Decimal(100 + 7 * (number % 5)),
            )
            MeterReading.objects.create(
                stall=stall,
                utility="water",
                period=PERIOD,
                previous_value=Decimal(10),
                current_value=Decimal("12.5"),
            )
    run = billing_run_create(market=market_a, period=PERIOD).run
    testing.mark_paid(run.demands.all())
    testing.configure_market(market_a, tmp_path / "certs")
    result = services.invoices_issue_for_period(market=market_a, period=PERIOD, batch_size=20)
    assert result.issued == 36 and not result.failures
    return result


def test_each_invoice_of_a_period_run_is_what_issuing_it_alone_would_sign(period_run, market_a):
    settings = services.invoice_settings_for(market_a)
    key = load_signing_key(settings.certificate_path, "")
    seller = services._seller(market_a)
    assert InvoiceLine.objects.count() > 90  # several INSERT statements of lines on SQLite
    for invoice in Invoice.objects.order_by("number"):
        (facts,) = services.demand_facts([invoice.demand_id])
        draft = services._draft(facts, settings, seller)  # nothing shared
        data = InvoiceData(
            invoice_id=invoice.invoice_id,
            form=settings.form,
            serial=invoice.serial_code,
            number=invoice.number,
            issue_date=invoice.issue_date,
            seller=draft.seller,
            buyer=draft.buyer,
            lines=draft.lines,
            totals=draft.totals,
            provider_tax_code=settings.provider_tax_code,
            payment_method=services.PAYMENT_METHOD,
            extra=draft.extra,
        )
        alone = sign_invoice(build_unsigned_invoice(data), key, signing_time=invoice.signing_time)
        assert invoice.xml_bytes == alone, invoice.label


def test_the_stored_lines_of_a_period_run_are_the_lines_of_each_signed_invoice(period_run):
    for invoice in Invoice.objects.order_by("number"):
        items = safe_parse(invoice.xml_bytes).findall("DLHDon/NDHDon/DSHHDVu/HHDVu")
        stored = list(invoice.lines.order_by("number"))
        assert [
            (
                str(line.number),
                line.name,
                line.unit,
                format(line.quantity.normalize(), "f"),
                format(line.unit_price.normalize(), "f"),
                str(line.net_vnd),
                line.vat_rate,
            )
            for line in stored
        ] == [
            tuple(item.findtext(tag) for tag in ("STT", "THHDVu", "DVTinh", "SLuong", "DGia"))
            + (item.findtext("ThTien"), item.findtext("TSuat"))
            for item in items
        ], invoice.label
        assert sum(line.vat_vnd for line in stored) == invoice.total_vat_vnd
        assert sum(line.gross_vnd for line in stored) == invoice.total_payable_vnd


def test_a_period_run_leaves_the_garbage_collector_as_it_found_it(market_a, tariffs_a, tmp_path):
    factories.make_lease(factories.make_stall(market_a, "C001"))
    run = billing_run_create(market=market_a, period=PERIOD).run
    testing.mark_paid(run.demands.all())
    testing.configure_market(market_a, tmp_path / "certs")
    threshold = gc.get_threshold()

    services.invoices_issue_for_period(market=market_a, period=PERIOD)

    assert gc.get_threshold() == threshold
    assert gc.get_freeze_count() == 0


def _random_lines(rng: random.Random) -> list[services.DemandLineFacts]:
    return [
        services.DemandLineFacts(
            "x", Decimal(1), "lần", rng.choice([0, 1, 5, 999, 20_000, rng.randrange(10**7)]),
            rng.choice(RATE_CODES),
        )
        for _ in range(rng.randrange(0, 8))
    ]  # fmt: skip


def test_rate_groups_put_together_are_the_breakdown_of_the_whole_demand():
    rng = random.Random(20260501)
    shared = services.SharedValues()
    for _ in range(3000):
        rows = _random_lines(rng)
        expected = vat_inclusive_breakdown(GrossLine(row.amount_vnd, row.vat_rate) for row in rows)
        assert services._vat_breakdown(rows, shared) == expected, rows
    assert 0 < len(shared.vat_groups) < 3000 * 3  # groups were found again


@pytest.mark.parametrize(
    ("amount", "rate", "error"),
    [(-1, "10%", ValueError), (5, "7%", ValueError), (True, "10%", TypeError)],
    ids=["negative", "unknown-rate", "bool"],
)
def test_lines_the_breakdown_refuses_are_refused_with_its_own_message(amount, rate, error):
    rows = [
        services.DemandLineFacts("a", Decimal(1), "lần", 1000, "8%"),
        services.DemandLineFacts("b", Decimal(1), "lần", amount, rate),
    ]
    with pytest.raises(error) as direct:
        vat_inclusive_breakdown(GrossLine(row.amount_vnd, row.vat_rate) for row in rows)
    with pytest.raises(error) as shared:
        services._vat_breakdown(rows, services.SharedValues())
    assert str(shared.value) == str(direct.value)


@pytest.fixture
def needs_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip(
            f"PostgreSQL storage (TOAST compression); this run uses {connection.vendor}. "
            "Run with DATABASE_URL=postgres://…"
        )


@pytest.mark.django_db(transaction=True)  # real commits: SET LOCAL ends with each batch
def test_on_postgresql_the_xml_is_compressed_with_lz4_in_the_issuing_transaction_only(
    needs_postgresql, period_run
):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 'lz4' = ANY(enumvals), setting, reset_val FROM pg_settings "
            "WHERE name = 'default_toast_compression'"
        )
        lz4_available, setting, default = cursor.fetchone()
        cursor.execute(
            "SELECT DISTINCT pg_column_compression(xml) FROM invoicing_invoice "
            "WHERE length(xml) > 4096"
        )
        methods = {row[0] for row in cursor.fetchall()}
    assert methods == ({"lz4"} if lz4_available else {default})
    assert setting == default  # SET LOCAL: the session keeps its own setting
