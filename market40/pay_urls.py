from django.urls import path, re_path

from market40 import pay_views

# A pay token is 43 URL-safe characters (256 bits); anything else is a 404 page.
TOKEN = r"(?P<token>[A-Za-z0-9_-]{20,64})"

urlpatterns = [
    re_path(rf"^pay/{TOKEN}/$", pay_views.pay_page, name="pay-page"),
    re_path(rf"^pay/{TOKEN}/qr\.(?P<fmt>png|svg)$", pay_views.pay_qr, name="pay-qr"),
    re_path(r"^pay/(?P<token>[^/]+)/$", pay_views.pay_page, name="pay-page-any"),
    re_path(
        r"^manage/(?P<market_code>[A-Z0-9_-]+)/stalls/(?P<stall_id>\d+)/qr\.(?P<fmt>png|svg)$",
        pay_views.stall_qr,
        name="stall-qr",
    ),
    path("manage/<str:market_code>/placards/", pay_views.placard_sheet, name="placards"),
    path(
        "manage/<str:market_code>/placards.pdf",
        pay_views.placard_sheet,
        {"fmt": "pdf"},
        name="placards-pdf",
    ),
]
