"""A period run signs batch k + 1 on a signer thread while it stores batch k, with the
numbers that will be next if batch k is stored as signed. Storing re-checks them under the
serial's lock and signs again there when anything changed, so numbers stay gapless and
each is allocated in the transaction that stores its invoice (einvoice.md §5.3)."""

from __future__ import annotations

import threading
from datetime import date

import pytest

from invoicing import services, testing
from invoicing.models import Invoice, InvoiceSerial
from market40.models import FeeDemand
from market40.services import billing_run_create
from tests import factories

PERIOD = date(2026, 5, 1)
STALLS = 30


pytestmark = pytest.mark.usefixtures("every_invoice_verifies")


@pytest.fixture
def paid(market_a, tariffs_a, tmp_path):
    for number in range(STALLS):
        factories.make_lease(factories.make_stall(market_a, f"P{number:03d}"))
    run = billing_run_create(market=market_a, period=PERIOD).run
    testing.mark_paid(run.demands.all())
    testing.configure_market(market_a, tmp_path / "certs")
    # One invoice issued on its own first: the serial exists, so the run's first batch can
    # be signed ahead too.
    first = services.demands_awaiting_invoice(market=market_a, period=PERIOD).first()
    services.invoice_issue_for_demand(demand=first)
    return list(
        services.demands_awaiting_invoice(market=market_a, period=PERIOD).values_list(
            "pk", flat=True
        )
    )


@pytest.fixture
def signings(monkeypatch):
    """(thread name, first number, demands) of every ``_sign_batch`` call."""
    calls: list[tuple[str, int, list[int]]] = []
    real = services._sign_batch

    def recorded(**kwargs):
        demands = [draft.demand.pk for draft in kwargs["drafts"]]
        calls.append((threading.current_thread().name, kwargs["first_number"], demands))
        return real(**kwargs)

    monkeypatch.setattr(services, "_sign_batch", recorded)
    return calls


def assert_gapless_once_each(count: int) -> None:
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    assert numbers == list(range(1, count + 1))
    assert InvoiceSerial.objects.get().next_number == count + 1
    for demand in FeeDemand.objects.all():
        assert demand.invoices.filter(kind=Invoice.Kind.ORIGINAL).count() == 1


def test_every_batch_is_signed_ahead_on_the_signer_thread_with_its_numbers(
    paid, market_a, signings
):
    result = services.invoices_issue_for_period(market=market_a, period=PERIOD, batch_size=10)

    assert result.issued == STALLS - 1 and result.already_issued == 1
    assert [(first, demands) for _thread, first, demands in signings] == [
        (2, paid[0:10]),
        (12, paid[10:20]),
        (22, paid[20:29]),
    ]
    assert {thread for thread, _first, _demands in signings} == {"invoice-signer_0"}
    assert (result.first_number, result.last_number) == (2, STALLS)
    assert_gapless_once_each(STALLS)


def test_an_invoice_issued_meanwhile_makes_the_batches_signed_ahead_sign_again(
    paid, market_a, signings, monkeypatch
):
    # Between signing the first batch ahead and storing it, another issuer takes the next
    # number, and the demand it invoices is in the second batch.
    real_issue = services._issue
    interfered = []

    def issue_after_another_issuer(**kwargs):
        if not interfered:
            interfered.append(None)  # the other issuer's own _issue goes straight through
            interfered[0] = services.invoice_issue_for_demand(demand=paid[15])
        return real_issue(**kwargs)

    monkeypatch.setattr(services, "_issue", issue_after_another_issuer)

    result = services.invoices_issue_for_period(market=market_a, period=PERIOD, batch_size=10)

    assert interfered[0].number == 2  # the number the first batch was signed ahead with
    assert result.issued == STALLS - 2 and result.already_issued == 2
    # Signed under the lock, on the run's own thread: the other issuer's invoice, then the
    # first batch again (its numbers were taken) and the second (one of its demands got its
    # invoice meanwhile). What the signer was signing for the second and third batches with
    # numbers that were no longer next was signed again ahead: the third is stored as signed
    # there.
    under_lock = [
        (first, demands) for thread, first, demands in signings if thread != "invoice-signer_0"
    ]
    assert under_lock == [
        (2, [paid[15]]),
        (3, paid[0:10]),
        (13, paid[10:15] + paid[16:20]),
    ]
    ahead = [
        (first, demands) for thread, first, demands in signings if thread == "invoice-signer_0"
    ]
    assert ahead[-1] == (22, paid[20:29])
    assert_gapless_once_each(STALLS)
    stored = Invoice.objects.filter(demand_id__in=paid[20:29]).order_by("number")
    assert list(stored.values_list("number", flat=True)) == list(range(22, 31))


def test_a_signing_failure_in_the_signer_stops_the_run_after_the_batches_stored(
    paid, market_a, monkeypatch
):
    from invoicing.certificates import CertificateError
    from invoicing.signing import SigningError

    real_sign = services.sign_invoice
    calls = []

    def fails_on_the_fifteenth(*args, **kwargs):
        calls.append(threading.current_thread().name)
        if len(calls) == 15:  # the fifth invoice of the second batch, signed ahead
            raise SigningError("the token was unplugged")
        return real_sign(*args, **kwargs)

    monkeypatch.setattr(services, "sign_invoice", fails_on_the_fifteenth)

    with pytest.raises(CertificateError) as failure:
        services.invoices_issue_for_period(market=market_a, period=PERIOD, batch_size=10)

    assert failure.value.code == "signing_failed"
    assert calls[14] == "invoice-signer_0"
    # The first batch was stored; nothing of the second, and no number taken for it.
    assert_gapless_once_each_of(paid[0:10], count=11)

    monkeypatch.undo()
    result = services.invoices_issue_for_period(market=market_a, period=PERIOD, batch_size=10)

    assert result.issued == STALLS - 11
    assert_gapless_once_each(STALLS)


def assert_gapless_once_each_of(demand_ids: list[int], *, count: int) -> None:
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    assert numbers == list(range(1, count + 1))
    assert InvoiceSerial.objects.get().next_number == count + 1
    invoiced = set(Invoice.objects.values_list("demand_id", flat=True))
    assert set(demand_ids) <= invoiced and len(invoiced) == count
