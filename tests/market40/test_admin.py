"""The Django admin, in Vietnamese, scoped to the user's markets."""

import pytest
from django.test import Client

from tests import factories


@pytest.fixture
def staff_manager_a(manager_a):
    manager_a.is_staff = True
    manager_a.save()
    client = Client()
    client.force_login(manager_a)
    return client


def test_a_manager_sees_only_the_stalls_of_their_market_in_vietnamese(
    staff_manager_a, market_a, market_b
):
    factories.make_stall(market_a, "AAA1")
    factories.make_stall(market_b, "BBB1")
    html = staff_manager_a.get("/admin/market40/stall/").content.decode()
    assert "AAA1" in html and "BBB1" not in html
    assert "Sạp/ki-ốt" in html or "sạp/ki-ốt" in html


def test_another_markets_stall_is_not_reachable_in_the_admin(staff_manager_a, market_b):
    stall = factories.make_stall(market_b, "BBB1")
    response = staff_manager_a.get(f"/admin/market40/stall/{stall.pk}/change/")
    assert response.status_code in (302, 404)


def test_a_bad_tax_code_in_the_admin_is_refused_with_the_field_named(admin_client_, market_a):
    response = admin_client_.post(
        f"/admin/market40/market/{market_a.pk}/change/",
        {
            "code": "CHOA",
            "name": market_a.name,
            "tax_code": "12345",
            "address": "x",
            "grade": 2,
            "due_day": 15,
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert "Mã số thuế (MST) phải gồm 10 chữ số" in response.content.decode()
    market_a.refresh_from_db()
    assert market_a.tax_code == "0312345678"
