"""The stall holder's pay page and the QR images behind it (issue: VietQR payment codes)."""

from __future__ import annotations

import io
import re
from datetime import date

import pytest
import zxingcpp
from django.core.cache import cache
from PIL import Image

from market40 import qrimage, vietqr, vietqr_service
from market40.models import FeeDemand
from tests import factories
from tests.market40.test_vietqr_oracle_node import node_decode


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()


@pytest.fixture
def demand(billed_a):
    return FeeDemand.objects.order_by("id").first()


def _qr_src(html: bytes) -> str:
    return re.search(rb'<img src="([^"]+)"[^>]*data-testid="qr"', html).group(1).decode()


def _scan(png: bytes) -> str:
    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(results) == 1
    return results[0].text


def test_the_pay_page_shows_the_amount_code_bank_and_a_scannable_vietqr(client, demand):
    response = client.get(f"/pay/{demand.pay_token}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert demand.payment_code in html
    assert f"{demand.total_vnd:,}".replace(",", ".") + " đ" in html
    assert "0071000123456" in html and "Vietcombank" in html
    assert demand.stall.code in html and demand.holder.full_name in html
    image = client.get(_qr_src(response.content))
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    payload = _scan(image.content)
    fields = vietqr.decode(payload)
    assert fields.amount_vnd == demand.total_vnd
    assert fields.purpose == demand.payment_code
    assert (fields.bin, fields.account) == ("970436", "0071000123456")
    assert fields.point_of_initiation == "12"


def test_every_demand_payload_decodes_the_same_with_vietnam_qr_pay(billed_a):
    demands = list(FeeDemand.objects.all())
    payloads = [vietqr_service.demand_payload(d) for d in demands]
    for demand, node in zip(demands, node_decode(payloads), strict=True):
        assert node["isValid"] is True
        assert node["bankBin"] == "970436"
        assert node["bankNumber"] == "0071000123456"
        assert node["amount"] == str(demand.total_vnd)
        assert node["purpose"] == demand.payment_code
        assert node["initMethod"] == "12"


def test_after_a_partial_payment_the_qr_asks_for_the_remainder(client, demand):
    first_src = _qr_src(client.get(f"/pay/{demand.pay_token}/").content)
    FeeDemand.objects.filter(pk=demand.pk).update(paid_vnd=100_000, status="partial")
    response = client.get(f"/pay/{demand.pay_token}/")
    second_src = _qr_src(response.content)
    assert second_src != first_src  # a new version: old cached images are not reused
    fields = vietqr.decode(_scan(client.get(second_src).content))
    assert fields.amount_vnd == demand.total_vnd - 100_000
    assert "Thanh toán một phần" in response.content.decode()


def test_a_paid_demand_shows_paid_with_the_date_instead_of_the_qr(client, demand):
    FeeDemand.objects.filter(pk=demand.pk).update(
        paid_vnd=demand.total_vnd, status="paid", paid_at="2026-05-09T10:00:00+07:00"
    )
    response = client.get(f"/pay/{demand.pay_token}/")
    html = response.content.decode()
    assert "Đã thanh toán" in html and "09/05/2026" in html
    assert 'data-testid="qr"' not in html
    assert client.get(f"/pay/{demand.pay_token}/qr.png").status_code == 404


@pytest.mark.parametrize("token", ["x" * 43, "abc", "A" * 42 + "!", "../../admin"])
def test_a_tampered_token_gets_a_vietnamese_404_page(client, demand, token):
    response = client.get(f"/pay/{token}/")
    assert response.status_code == 404
    assert "Không tìm thấy" in response.content.decode()


def test_a_tampered_token_on_the_image_is_a_404(client, demand):
    assert client.get(f"/pay/{'y' * 43}/qr.png").status_code == 404


def test_a_repeated_image_request_renders_nothing(client, demand, monkeypatch):
    calls = []
    real = qrimage.render_png
    monkeypatch.setattr(qrimage, "render_png", lambda p, **kw: calls.append(p) or real(p))
    src = _qr_src(client.get(f"/pay/{demand.pay_token}/").content)
    first = client.get(src)
    second = client.get(src)
    assert first.content == second.content and len(calls) == 1
    assert first["Cache-Control"] == "public, max-age=31536000, immutable"
    revalidated = client.get(src, HTTP_IF_NONE_MATCH=first["ETag"])
    assert revalidated.status_code == 304 and len(calls) == 1


def test_the_svg_image_and_the_download_link_work(client, demand):
    svg = client.get(f"/pay/{demand.pay_token}/qr.svg")
    assert svg["Content-Type"] == "image/svg+xml" and b"<svg" in svg.content
    download = client.get(f"/pay/{demand.pay_token}/qr.png?download=1")
    assert download["Content-Disposition"] == (
        f'attachment; filename="VietQR-{demand.payment_code}.png"'
    )


def test_the_page_works_without_javascript_and_fits_a_phone(client, demand):
    html = client.get(f"/pay/{demand.pay_token}/").content.decode()
    assert 'name="viewport" content="width=device-width, initial-scale=1"' in html
    # Copy buttons are hidden until the script finds a clipboard; the text is plain.
    assert re.search(r'<span id="code"[^>]*>' + demand.payment_code + "</span>", html)
    assert "hidden>" in html


def test_an_amount_over_the_napas_limit_is_a_clear_error_not_a_500(client, demand):
    FeeDemand.objects.filter(pk=demand.pk).update(total_vnd=500_000_000)
    response = client.get(f"/pay/{demand.pay_token}/")
    assert response.status_code == 200
    assert "499.999.999" in response.content.decode() or "500" in response.content.decode()
    assert 'data-testid="qr"' not in response.content.decode()


def test_a_market_without_a_receiving_account_says_so(client, demand):
    demand.market.accounts.update(active=False)
    html = client.get(f"/pay/{demand.pay_token}/").content.decode()
    assert "chưa cấu hình tài khoản nhận tiền" in html


def test_the_stall_placard_qr_is_static_with_the_stalls_code(manager_a_client, market_a):
    stall = factories.make_stall(market_a, "P01")
    response = manager_a_client.get(f"/manage/CHOA/stalls/{stall.pk}/qr.png")
    fields = vietqr.decode(_scan(response.content))
    assert fields.amount is None and fields.point_of_initiation == "11"
    assert fields.purpose == stall.payment_code and stall.payment_code.startswith("SAP")


def test_stall_images_and_placards_are_scoped_to_the_users_markets(
    manager_b_client, market_a, client
):
    stall = factories.make_stall(market_a, "P01")
    assert manager_b_client.get(f"/manage/CHOA/stalls/{stall.pk}/qr.png").status_code == 404
    assert manager_b_client.get("/manage/CHOA/placards/").status_code == 404
    assert client.get("/manage/CHOA/placards/").status_code == 302  # to the login page


def test_the_placard_sheet_has_every_active_stall_of_the_zone(manager_a_client, market_a):
    zone_a, zone_b = factories.make_zone(market_a, "A"), factories.make_zone(market_a, "B")
    for i in range(7):
        lease_holder = factories.make_holder(market_a, f"Người thuê {i}")
        factories.make_lease(factories.make_stall(market_a, f"A{i}", zone=zone_a), lease_holder)
    factories.make_stall(market_a, "B1", zone=zone_b)
    factories.make_stall(market_a, "A99", zone=zone_a, active=False)
    html = manager_a_client.get("/manage/CHOA/placards/?zone=A").content.decode()
    assert html.count('class="placard"') == 7
    assert html.count('class="page"') == 2
    assert "Người thuê 3" in html and "B1" not in html and "A99" not in html
    pdf = manager_a_client.get("/manage/CHOA/placards.pdf?zone=A")
    assert pdf["Content-Type"] == "application/pdf"
    assert (
        pdf.content.startswith(b"%PDF")
        and pdf.content.count(b"/Type /Page\n") + pdf.content.count(b"/Type /Page ") >= 2
    )


def test_placards_for_an_empty_zone_explain_why(manager_a_client, market_a):
    response = manager_a_client.get("/manage/CHOA/placards/?zone=ZZ")
    assert response.status_code == 404
    assert "không có sạp nào" in response.content.decode()


def test_a_lease_ending_is_not_printed_as_the_current_holder(manager_a_client, market_a):
    stall = factories.make_stall(market_a, "Q1")
    factories.make_lease(
        stall,
        factories.make_holder(market_a, "Chủ Cũ"),
        start=date(2020, 1, 1),
        end=date(2020, 12, 31),
    )
    html = manager_a_client.get("/manage/CHOA/placards/").content.decode()
    assert "Chủ Cũ" not in html
