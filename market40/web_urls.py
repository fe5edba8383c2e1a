from django.urls import path

from market40 import views

urlpatterns = [
    path("", views.home, name="home"),
    path("manage/", views.manage_home, name="manage-home"),
    path("manage/<str:market_code>/", views.market_overview, name="market-overview"),
    path("manage/<str:market_code>/stalls/", views.stall_list, name="stall-list"),
    path("manage/<str:market_code>/billing/", views.run_billing, name="run-billing"),
    path(
        "manage/<str:market_code>/runs/<int:run_id>/cancel",
        views.cancel_run,
        name="cancel-run",
    ),
    path(
        "manage/<str:market_code>/demands/<int:demand_id>/",
        views.demand_detail,
        name="demand-detail",
    ),
]
