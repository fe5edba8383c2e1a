"""Reactions to the market domain's signals (connected in ``InvoicingConfig.ready``)."""

from __future__ import annotations

import logging

from invoicing.models import InvoiceSettings

logger = logging.getLogger(__name__)


def on_demand_fully_paid(sender, demand_id: int, **kwargs) -> None:
    """Enqueue the invoice of a demand that became fully paid, if its market issues on payment.

    Sent after the payment committed. Only enqueues: signing happens in the task, never in the
    webhook request; and nothing here may make the payment fail, so errors are logged only.
    """
    try:
        wanted = InvoiceSettings.objects.filter(
            market__demands__id=demand_id, auto_issue_on_payment=True
        ).exists()
        if wanted:
            from invoicing.tasks import issue_invoice_for_paid_demand

            issue_invoice_for_paid_demand.enqueue(demand_id)
    except Exception:
        logger.exception("could not enqueue the invoice of demand %s", demand_id)
