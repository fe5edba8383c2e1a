"""The demo's bank-simulator page; included from market40/urls.py."""

from django.urls import path

from payments import sim_views

urlpatterns = [
    path(
        "manage/<str:market_code>/simulator/",
        sim_views.simulator_page,
        name="bank-simulator",
    ),
    path(
        "manage/<str:market_code>/simulator/demands/<int:demand_id>/pay",
        sim_views.simulator_pay,
        name="bank-simulator-pay",
    ),
]
