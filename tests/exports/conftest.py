"""A small month of market A to export: May 2026 billed, paid by real transfers through the
reconciliation, invoices issued and signed by the invoicing services.

* A001 (holder with an MST, electricity at 8 % besides the 10 % lines): paid exactly;
* A002 (holder with a CCCD): overpaid by 50.000 đ, kept as credit;
* A003: paid in two transfers on two days;
* A004: partly paid (100.000 đ), so it has no invoice and still owes;
* one transfer with no payment code stays unmatched.

Files go to a temporary MEDIA_ROOT.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest

from invoicing import services as invoicing_services
from invoicing import testing
from invoicing.models import Invoice
from market40.models import FeeDemand, MeterReading
from market40.services import billing_run_create
from payments.models import BankConnection, BankTransaction
from payments.reconciliation import reconcile
from payments.services import connection_create
from tests import factories

MAY = date(2026, 5, 1)


@dataclass
class Month:
    market: object
    connection: BankConnection
    demands: list[FeeDemand]
    invoices: list[Invoice]
    transactions: list[BankTransaction]


_numbers = iter(range(1, 10**6))


def transfer(connection, amount: int, content: str, when: str) -> BankTransaction:
    number = next(_numbers)
    tx = BankTransaction.objects.create(
        connection=connection,
        provider_transaction_id=f"X{number}",
        direction="in",
        amount_vnd=amount,
        content=content,
        bank_reference=f"FT26{number:08d}",
        counter_name="NGUYEN VAN A",
        bank_time=when,
    )
    reconcile(tx.pk)
    tx.refresh_from_db()
    return tx


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def month(market_a, tariffs_a, tmp_path) -> Month:
    business = factories.make_holder(market_a, "Hộ kinh doanh Trần Văn Bình", tax_code="0312345679")
    person = factories.make_holder(market_a, "Lê Thị Mai", citizen_id="079123456789")
    stalls = [factories.make_stall(market_a, f"A{i:03d}") for i in range(1, 5)]
    factories.make_lease(stalls[0], business)
    factories.make_lease(stalls[1], person)
    factories.make_lease(stalls[2])
    factories.make_lease(stalls[3])
    MeterReading.objects.create(
        stall=stalls[0],
        utility="electricity",
        period=MAY,
        previous_value=Decimal("100"),
        current_value=Decimal("142.5"),
    )
    billing_run_create(market=market_a, period=MAY)
    demands = list(FeeDemand.objects.filter(market=market_a, period=MAY).order_by("stall__code"))
    connection, _secret, _generated = connection_create(market=market_a, provider="simulator")
    a1, a2, a3, a4 = demands
    half = a3.total_vnd // 2
    transactions = [
        transfer(connection, a1.total_vnd, f"TT {a1.payment_code}", "2026-05-05T08:15:00+07:00"),
        transfer(
            connection,
            a2.total_vnd + 50_000,
            f"{a2.payment_code} thang 5",
            "2026-05-06T10:00:00+07:00",
        ),
        transfer(connection, half, f"{a3.payment_code} lan 1", "2026-05-06T23:50:00+07:00"),
        transfer(
            connection, a3.total_vnd - half, f"{a3.payment_code} lan 2", "2026-05-20T09:00+07:00"
        ),
        transfer(connection, 100_000, f"{a4.payment_code}", "2026-05-21T09:00:00+07:00"),
        transfer(connection, 77_000, "chuyen tien cho", "2026-05-31T23:30:00+07:00"),
    ]
    testing.configure_market(market_a, tmp_path / "certs")
    invoices = [
        invoicing_services.invoice_issue_for_demand(demand=demand.pk) for demand in (a1, a2, a3)
    ]
    return Month(
        market=market_a,
        connection=connection,
        demands=[FeeDemand.objects.get(pk=d.pk) for d in demands],
        invoices=invoices,
        transactions=transactions,
    )


def export_bytes(kind: str, month: Month, **kwargs) -> bytes:
    from exports.writers import write_export

    out = io.BytesIO()
    write_export(kind=kind, market=month.market, period=MAY, out=out, **kwargs)
    return out.getvalue()
