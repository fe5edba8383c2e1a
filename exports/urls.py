"""Export pages, included from ``market40.urls`` (before ``market40.web_urls``)::

path("", include("exports.urls")),
"""

from django.urls import path

from exports import views

urlpatterns = [
    path("manage/<str:market_code>/exports/", views.export_list, name="export-list"),
    path(
        "manage/<str:market_code>/exports/<int:job_id>/download",
        views.export_download,
        name="export-download",
    ),
]
