"""Who may see which manager page: login first, then only one's own markets (404 for
the others, never revealing they exist), and only managers write."""

from datetime import date

import pytest
from django.urls import reverse

from market40.models import FeeDemand
from market40.services import billing_run_create
from tests import factories

MAY = date(2026, 5, 1)


@pytest.fixture
def billed_b(market_b):
    factories.make_tariffs(market_b)
    stall = factories.make_stall(market_b, "B001")
    factories.make_lease(stall, factories.make_holder(market_b, "Trần Văn Bí Mật"))
    return billing_run_create(market=market_b, period=MAY)


def pages_of(market_code: str, run_id: int, demand_id: int) -> list[tuple[str, str]]:
    return [
        ("get", reverse("market-overview", args=[market_code])),
        ("get", reverse("stall-list", args=[market_code])),
        ("get", reverse("run-billing", args=[market_code])),
        ("post", reverse("run-billing", args=[market_code])),
        ("post", reverse("cancel-run", args=[market_code, run_id])),
        ("get", reverse("demand-detail", args=[market_code, demand_id])),
    ]


PAGE_NAMES = ["overview", "stalls", "billing form", "billing post", "cancel", "demand"]


@pytest.mark.parametrize("index", range(len(PAGE_NAMES)), ids=PAGE_NAMES)
def test_an_anonymous_visitor_is_sent_to_the_login_page(client, billed_a, index):
    demand = FeeDemand.objects.first()
    method, url = pages_of("CHOA", billed_a.run.pk, demand.pk)[index]
    response = getattr(client, method)(url, {"period": "2026-06"} if method == "post" else {})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert FeeDemand.objects.count() == 3


def test_an_anonymous_visitor_is_sent_from_the_manage_home_to_the_login_page(client, db):
    response = client.get(reverse("manage-home"))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next=/manage/"


@pytest.mark.parametrize("index", range(len(PAGE_NAMES)), ids=PAGE_NAMES)
def test_manager_a_gets_404_on_every_page_of_market_b(manager_a_client, billed_b, index):
    demand = FeeDemand.objects.get(market__code="CHOB")
    method, url = pages_of("CHOB", billed_b.run.pk, demand.pk)[index]
    response = getattr(manager_a_client, method)(
        url, {"period": "2026-06"} if method == "post" else {}
    )
    assert response.status_code == 404
    assert "Trần Văn Bí Mật" not in response.content.decode()
    assert FeeDemand.objects.filter(market__code="CHOB", status="open").count() == 1


@pytest.mark.parametrize("index", [4, 5], ids=["cancel", "demand"])
def test_market_b_rows_are_404_even_under_market_a_code(
    manager_a_client, market_a, billed_b, index
):
    demand = FeeDemand.objects.get(market__code="CHOB")
    method, url = pages_of("CHOA", billed_b.run.pk, demand.pk)[index]
    response = getattr(manager_a_client, method)(url)
    assert response.status_code == 404
    assert FeeDemand.objects.get(pk=demand.pk).status == "open"


def test_an_unknown_market_code_looks_the_same_as_a_forbidden_one(manager_a_client, market_b):
    unknown = manager_a_client.get(reverse("market-overview", args=["KHONGCO"]))
    forbidden = manager_a_client.get(reverse("market-overview", args=["CHOB"]))
    assert unknown.status_code == forbidden.status_code == 404


def test_the_market_switcher_refuses_a_market_the_user_cannot_see(manager_a_client, market_b):
    response = manager_a_client.get(reverse("manage-home"), {"market": "CHOB"})
    assert response.status_code == 404


def test_market_b_data_never_appears_on_market_a_pages(manager_a_client, billed_a, billed_b):
    demand_b = FeeDemand.objects.get(market__code="CHOB")
    for url in (
        reverse("market-overview", args=["CHOA"]) + "?period=2026-05",
        reverse("stall-list", args=["CHOA"]) + "?q=B",
    ):
        html = manager_a_client.get(url).content.decode()
        assert "Trần Văn Bí Mật" not in html
        assert demand_b.payment_code not in html
        assert "CHOB" not in html  # not even in the market switcher
        assert "B001" not in html


def test_a_manager_with_one_market_goes_straight_to_its_overview(manager_a_client):
    response = manager_a_client.get(reverse("manage-home"))
    assert response.status_code == 302
    assert response["Location"] == reverse("market-overview", args=["CHOA"])


def test_a_platform_admin_chooses_among_all_markets(admin_client_, market_a, market_b):
    response = admin_client_.get(reverse("manage-home"))
    html = response.content.decode()
    assert response.status_code == 200
    assert reverse("market-overview", args=["CHOA"]) in html
    assert reverse("market-overview", args=["CHOB"]) in html


def test_a_platform_admin_may_open_any_market(admin_client_, billed_b):
    response = admin_client_.get(reverse("market-overview", args=["CHOB"]), {"period": "2026-05"})
    assert response.status_code == 200
    assert "Trần Văn Bí Mật" in response.content.decode()


def test_a_user_without_any_market_is_told_so_in_vietnamese(client, db):
    client.force_login(factories.make_user("nobody"))
    response = client.get(reverse("manage-home"))
    assert response.status_code == 200
    assert "chưa được phân quyền ở chợ nào" in response.content.decode()


def test_a_user_without_any_market_gets_404_on_a_market_page(client, market_a):
    client.force_login(factories.make_user("nobody"))
    assert client.get(reverse("market-overview", args=["CHOA"])).status_code == 404
