"""A stall holder opens a pay link on a 360 px phone screen in real headless Chromium."""

from __future__ import annotations

import pytest

from market40.formatting import vnd
from market40.models import FeeDemand

pytestmark = pytest.mark.browser


def test_a_stall_holder_sees_the_amount_code_and_a_loaded_qr_on_a_phone(
    billed_a, phone, live_server, tmp_path
):
    demand = FeeDemand.objects.order_by("id").first()
    phone.goto(f"{live_server.url}/pay/{demand.pay_token}/")
    qr = phone.locator('img[data-testid="qr"]')
    qr.wait_for()
    assert phone.evaluate("img => img.complete && img.naturalWidth > 100", qr.element_handle())
    assert phone.locator('[data-testid="amount"]').inner_text() == vnd(demand.total_vnd)
    assert phone.locator('[data-testid="payment-code"]').is_visible()
    assert phone.locator('[data-testid="payment-code"]').inner_text() == demand.payment_code
    # Nothing spills sideways on a 360 px screen.
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    box = qr.bounding_box()
    assert box["width"] >= 250  # large enough to scan from another phone
    shot = tmp_path / "pay-page-360.png"
    phone.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
