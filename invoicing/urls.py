"""Invoice pages, included from ``market40.urls`` (before ``market40.web_urls``)::

path("", include("invoicing.urls")),
"""

from django.urls import path

from invoicing import views

urlpatterns = [
    path("manage/<str:market_code>/invoices/", views.invoice_list, name="invoice-list"),
    path(
        "manage/<str:market_code>/invoices/issue-period",
        views.issue_for_period,
        name="invoice-issue-period",
    ),
    path(
        "manage/<str:market_code>/demands/<int:demand_id>/invoice",
        views.issue_for_demand,
        name="invoice-issue-demand",
    ),
    path(
        "manage/<str:market_code>/invoices/<int:invoice_id>/",
        views.invoice_detail,
        name="invoice-detail",
    ),
    path(
        "manage/<str:market_code>/invoices/<int:invoice_id>/xml",
        views.invoice_xml,
        name="invoice-xml",
    ),
    path(
        "manage/<str:market_code>/invoices/<int:invoice_id>/replace",
        views.invoice_correct,
        {"action": "replace"},
        name="invoice-replace",
    ),
    path(
        "manage/<str:market_code>/invoices/<int:invoice_id>/adjust",
        views.invoice_correct,
        {"action": "adjust"},
        name="invoice-adjust",
    ),
]
