from django.contrib import admin
from django.urls import include, path

from market40.api import api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("payments.urls")),
    path("", include("payments.statement_urls")),
    path("", include("payments.sim_urls")),
    path("", include("payments.workbench_urls")),
    path("", include("market40.pay_urls")),
    path("", include("invoicing.urls")),
    path("", include("exports.urls")),
    path("", include("market40.web_urls")),
]
