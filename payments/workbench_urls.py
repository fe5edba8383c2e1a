"""The accountant's workbench pages, under /manage/<market_code>/ like the manager pages.
Included from ``market40.urls``."""

from django.urls import path

from payments import workbench_views as views

M = "manage/<str:market_code>/"

urlpatterns = [
    path(M + "unmatched/", views.unmatched_queue, name="workbench-unmatched"),
    path(
        M + "transactions/<int:transaction_id>/",
        views.transaction_detail,
        name="workbench-transaction",
    ),
    path(
        M + "transactions/<int:transaction_id>/match",
        views.transaction_match,
        name="workbench-match",
    ),
    path(
        M + "allocations/<int:allocation_id>/unmatch",
        views.allocation_unmatch,
        name="workbench-unmatch",
    ),
    path(
        M + "demands/<int:demand_id>/ledger/",
        views.demand_ledger,
        name="workbench-demand-ledger",
    ),
    path(
        M + "demands/<int:demand_id>/write-off",
        views.demand_write_off,
        name="workbench-write-off",
    ),
    path(
        M + "holders/<int:holder_id>/statement/",
        views.holder_statement,
        name="workbench-holder-statement",
    ),
    path(M + "holders/<int:holder_id>/refund", views.holder_refund, name="workbench-refund"),
    path(M + "reconciliation/", views.period_view, name="workbench-period"),
    path(M + "close/", views.daily_close, name="workbench-close"),
]
