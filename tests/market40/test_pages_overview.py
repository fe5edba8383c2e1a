"""The market overview, the stall list and the demand detail, as a manager reads them."""

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone

from market40.models import FeeDemand
from market40.services import billing_run_create
from market40.templatetags.market40_tags import period, qty, vnd
from tests import factories


def overview(client, **params):
    return client.get(reverse("market-overview", args=["CHOA"]), params)


def test_vnd_groups_thousands_with_dots_and_ends_with_dong():
    assert vnd(1234567) == "1.234.567 đ"
    assert vnd(0) == "0 đ"
    assert vnd(-5000) == "-5.000 đ"
    assert vnd(None) == "—"


def test_period_is_written_month_slash_year():
    assert period(date(2026, 5, 1)) == "05/2026"


def test_quantities_drop_trailing_zeros():
    from decimal import Decimal

    assert qty(Decimal("6.0000")) == "6"
    assert qty(Decimal("100.00")) == "100"


def test_manager_a_sees_the_figures_of_the_period(manager_a_client, billed_a):
    FeeDemand.objects.filter(pk=FeeDemand.objects.order_by("id").first().pk).update(
        paid_vnd=255_000, status="partial"
    )
    response = overview(manager_a_client, period="2026-05")
    assert response.status_code == 200
    figures = response.context["figures"]
    assert figures["billed_vnd"] == 3 * 755_000
    assert figures["collected_vnd"] == 255_000
    assert figures["outstanding_vnd"] == 3 * 755_000 - 255_000
    assert (figures["open_count"], figures["partial_count"], figures["paid_count"]) == (2, 1, 0)
    html = response.content.decode()
    assert "2.265.000 đ" in html
    assert "255.000 đ" in html
    assert "2.010.000 đ" in html
    assert "Thanh toán một phần" in html


def test_every_demand_row_links_to_its_detail_page(manager_a_client, billed_a):
    html = overview(manager_a_client, period="2026-05").content.decode()
    for demand in FeeDemand.objects.all():
        assert reverse("demand-detail", args=["CHOA", demand.pk]) in html
        assert demand.payment_code in html
        assert demand.holder.full_name in html


def test_the_overview_defaults_to_the_current_month_in_vietnam(manager_a_client, market_a):
    today = timezone.localdate(timezone=ZoneInfo("Asia/Ho_Chi_Minh"))
    response = overview(manager_a_client)
    assert response.context["period"] == today.replace(day=1)
    assert f'value="{today:%Y-%m}"' in response.content.decode()


def test_a_bad_period_in_the_address_is_explained_and_the_current_month_shown(
    manager_a_client, market_a
):
    response = overview(manager_a_client, period="2026-13")
    assert response.status_code == 200
    assert "không hợp lệ" in response.content.decode()


def test_the_demand_table_is_paginated_by_fifty(manager_a_client, market_a, tariffs_a):
    for i in range(51):
        factories.make_lease(factories.make_stall(market_a, f"P{i:03d}"))
    billing_run_create(market=market_a, period=date(2026, 5, 1))
    first = overview(manager_a_client, period="2026-05")
    assert len(first.context["page"].object_list) == 50
    assert "Trang 1/2" in first.content.decode()
    second = overview(manager_a_client, period="2026-05", page=2)
    assert len(second.context["page"].object_list) == 1
    assert "period=2026-05" in second.content.decode()


def test_the_status_filter_narrows_the_table(manager_a_client, billed_a):
    FeeDemand.objects.filter(pk=FeeDemand.objects.order_by("id").first().pk).update(
        paid_vnd=755_000, status="paid"
    )
    response = overview(manager_a_client, period="2026-05", status="paid")
    assert [d.status for d in response.context["page"].object_list] == ["paid"]


def test_the_stall_list_shows_zone_class_area_and_the_current_holder(manager_a_client, market_a):
    today = timezone.localdate(timezone=ZoneInfo("Asia/Ho_Chi_Minh"))
    stall = factories.make_stall(market_a, "A001", stall_class="L2", area="7.50")
    factories.make_lease(
        stall,
        factories.make_holder(market_a, "Người Thuê Cũ"),
        start=today - timedelta(days=400),
        end=today - timedelta(days=30),
    )
    factories.make_lease(
        stall, factories.make_holder(market_a, "Lê Thị Hoa"), start=today - timedelta(days=29)
    )
    factories.make_stall(market_a, "A002", active=False)
    response = manager_a_client.get(reverse("stall-list", args=["CHOA"]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Lê Thị Hoa" in html
    assert "Người Thuê Cũ" not in html
    assert "L2" in html and "7,5" in html
    assert "Ngừng" in html and "Trống" in html


def test_the_stall_list_filters_by_zone_and_searches_by_code_or_holder(manager_a_client, market_a):
    north = factories.make_zone(market_a, "BAC")
    factories.make_stall(market_a, "A001")
    north_stall = factories.make_stall(market_a, "N001", zone=north)
    factories.make_lease(north_stall, factories.make_holder(market_a, "Phạm Minh Tuấn"))
    url = reverse("stall-list", args=["CHOA"])

    def codes(**params):
        return [s.code for s in manager_a_client.get(url, params).context["page"].object_list]

    assert codes() == ["A001", "N001"]
    assert codes(zone="BAC") == ["N001"]
    assert codes(q="a001") == ["A001"]
    assert codes(q="Minh") == ["N001"]


def test_the_demand_detail_shows_lines_totals_status_and_payment_code(manager_a_client, billed_a):
    demand = FeeDemand.objects.order_by("id").first()
    response = manager_a_client.get(reverse("demand-detail", args=["CHOA", demand.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert demand.payment_code in html
    assert "Giá dịch vụ sử dụng diện tích bán hàng (loại 1)" in html
    assert "720.000 đ" in html and "755.000 đ" in html
    assert "Chưa thanh toán" in html
    assert "05/2026" in html


def test_the_demand_detail_template_keeps_a_block_for_payment_codes():
    from django.template.loader import get_template
    from django.template.loader_tags import BlockNode

    template = get_template("market40/demand_detail.html").template
    assert "payment_codes" in {node.name for node in template.nodelist.get_nodes_by_type(BlockNode)}


@pytest.mark.parametrize(
    "name, words",
    [
        ("market-overview", ["Đã lập phí", "Đã thu", "Còn phải thu", "Phiếu báo phí"]),
        ("stall-list", ["Sạp/ki-ốt", "Tiểu thương hiện tại", "Diện tích"]),
        ("run-billing", ["Lập phí theo kỳ", "Kỳ (YYYY-MM)"]),
    ],
)
def test_pages_render_in_vietnamese_with_the_key_words(manager_a_client, billed_a, name, words):
    response = manager_a_client.get(
        reverse(name, args=["CHOA"]), {"period": "2026-05"}, HTTP_ACCEPT_LANGUAGE="vi"
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert '<html lang="vi">' in html
    assert "market40 · Chợ 4.0" in html
    assert "Đăng xuất" in html
    assert 'name="viewport"' in html
    for word in words:
        assert word in html


def test_the_layout_shows_the_user_and_a_post_logout_and_language_switch(
    manager_a_client, market_a
):
    html = overview(manager_a_client).content.decode()
    assert "manager_a" in html
    assert f'action="{reverse("logout")}"' in html
    assert f'action="{reverse("set_language")}"' in html
    assert 'value="en"' in html


def test_switching_to_english_keeps_the_page_working(manager_a_client, market_a):
    url = reverse("market-overview", args=["CHOA"])
    response = manager_a_client.post(reverse("set_language"), {"language": "en", "next": url})
    assert response.status_code == 302
    page = manager_a_client.get(url)
    assert page.status_code == 200
    assert '<html lang="en">' in page.content.decode()


def test_the_login_page_renders_in_vietnamese(client, db):
    response = client.get(reverse("login"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Đăng nhập" in html and "Mật khẩu" in html


def test_logging_in_through_the_form_leads_to_the_market(client, manager_a):
    response = client.post(
        reverse("login"), {"username": "manager_a", "password": "pw-manager_a"}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("market-overview", args=["CHOA"])
