"""Background work of the invoicing app (Django Tasks API).

The payment webhook never waits for signing: ``receivers.on_demand_fully_paid`` only
enqueues ``issue_invoice_for_paid_demand``, which a worker runs after the payment committed
(``TASKS_BACKEND=database`` + ``manage.py db_worker``; the immediate backend of tests and
``make run`` runs it in-process). Both tasks are idempotent, so a retried or duplicated task
issues nothing twice; a failed one is caught up by the period run (``issue_invoices``).
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from django.contrib.auth import get_user_model
from django.utils.translation import gettext as _
from django_tasks import TaskResultStatus, task

from invoicing import services
from market40.errors import Conflict, DomainError
from market40.models import Market

logger = logging.getLogger(__name__)


@task()
def issue_invoice_for_paid_demand(demand_id: int) -> dict[str, Any]:
    try:
        invoice = services.invoice_issue_on_payment(demand_id=demand_id)
    except DomainError as error:
        # Kept on the task result (FAILED) and in the log; the accountant's period run
        # issues it once the cause (e.g. an expired certificate) is fixed.
        logger.warning("invoice for demand %s not issued: %s", demand_id, error.message)
        raise
    if invoice is None:
        return {"demand_id": demand_id, "invoice_id": None}
    return {"demand_id": demand_id, "invoice_id": invoice.pk, "number": invoice.number}


@task()
def issue_invoices_for_period(
    market_id: int, period: str, user_id: int | None = None
) -> dict[str, Any]:
    """The accountant's batch for one market and month (``period`` = ISO date of its 1st)."""
    market = Market.objects.get(pk=market_id)
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    result = services.invoices_issue_for_period(
        market=market, period=date.fromisoformat(period), user=user
    )
    return result.as_dict()


# --- running the period task for a page or an API call ---------------------------------


def period_message(result: dict[str, Any]) -> str:
    period = date.fromisoformat(result["period"] + "-01")
    parts = []
    if result["issued"]:
        parts.append(
            _("Đã xuất %(n)s hóa đơn kỳ %(period)s (ký hiệu %(serial)s, số %(first)s–%(last)s)")
            % {
                "n": result["issued"],
                "period": f"{period:%m/%Y}",
                "serial": result["serial"],
                "first": result["first_number"],
                "last": result["last_number"],
            }
        )
    else:
        parts.append(
            _("Kỳ %(period)s không có phiếu đã thanh toán nào cần xuất hóa đơn")
            % {"period": f"{period:%m/%Y}"}
        )
    if result["already_issued"]:
        parts.append(_("%(n)s phiếu đã có hóa đơn từ trước") % {"n": result["already_issued"]})
    if result["failures"]:
        parts.append(_("%(n)s phiếu lỗi dữ liệu, chưa xuất") % {"n": len(result["failures"])})
    return "; ".join(parts)


def enqueue_period_run(*, market, period: date, user) -> dict[str, Any]:
    """Run (or queue) the period task; the immediate backend finishes before returning.

    Settings and certificate are checked first, so an expired certificate is refused here
    (409) rather than discovered by a worker later.
    """
    services.check_ready_to_issue(market=market)
    task_result = issue_invoices_for_period.enqueue(
        market.pk, period.isoformat(), getattr(user, "pk", None)
    )
    if task_result.status == TaskResultStatus.SUCCESSFUL:
        body = dict(task_result.return_value)
        body.update(queued=False, task_id=str(task_result.id), message=period_message(body))
        return body
    if task_result.status == TaskResultStatus.FAILED:
        error = task_result.errors[-1].exception_class_path if task_result.errors else "?"
        raise Conflict(
            _("Xuất hóa đơn kỳ %(period)s thất bại (%(error)s); xem nhật ký hệ thống.")
            % {"period": f"{period:%m/%Y}", "error": error},
            code="period_run_failed",
        )
    return {
        "queued": True,
        "task_id": str(task_result.id),
        "period": f"{period:%Y-%m}",
        "issued": 0,
        "already_issued": 0,
        "failures": [],
        "first_number": None,
        "last_number": None,
        "serial": "",
        "message": _(
            "Đã xếp hàng xuất hóa đơn kỳ %(period)s; kết quả có trong danh sách sau ít phút."
        )
        % {"period": f"{period:%m/%Y}"},
    }
