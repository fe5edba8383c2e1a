"""Reactions to the market domain's signals (connected in ``InvoicingConfig.ready``)."""

from __future__ import annotations

import logging

from invoicing.models import InvoiceSettings

logger = logging.getLogger(__name__)


def on_demand_fully_paid(sender, demand_ids: list[int], **kwargs) -> None:
    """Enqueue the invoices of demands that became fully paid, where their market issues
    on payment.

    Sent once per committed batch of payments. Only enqueues: signing happens in the task,
    never in the webhook request; and nothing here may make the payment fail, so errors
    are logged only.
    """
    try:
        from market40.models import FeeDemand

        markets = InvoiceSettings.objects.filter(auto_issue_on_payment=True).values("market_id")
        wanted = FeeDemand.objects.filter(pk__in=demand_ids, market_id__in=markets)
        ids = list(wanted.values_list("id", flat=True))
    except Exception:
        logger.exception("could not look up the invoices of demands %s", demand_ids[:10])
        return
    from invoicing.tasks import issue_invoice_for_paid_demand

    for demand_id in ids:
        try:
            issue_invoice_for_paid_demand.enqueue(demand_id)
        except Exception:
            logger.exception("could not enqueue the invoice of demand %s", demand_id)
