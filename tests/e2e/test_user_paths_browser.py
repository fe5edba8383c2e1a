"""One path per user through real pages in headless Chromium, on the demo market of
``make run`` (``seed_demo``: Vietnamese names, zones, metered electricity and water).

* the manager logs in, bills May 2026 from the billing page, watches the money arrive on the
  overview, opens the placard sheet and downloads the PDF placards;
* a stall holder opens a pay link on a 360 px phone, copies the code, downloads the QR, and
  comes back after a partial and then a full transfer;
* the accountant matches a transfer with a mistyped code from the unmatched queue, issues the
  month's invoices, opens one, and downloads the bảng kê.

and every page managers and accountants use fits a 360 px phone without sideways scrolling.

Bank transfers arrive the way banks send them: a signed simulator delivery POSTed to the live
server's webhook endpoint. Each key screen is saved as a PNG in ``tmp_path``; with
``SCREENSHOTS_DIR`` set (``make screenshots``) also there, under the names the README uses.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import urllib.request
from dataclasses import dataclass
from datetime import date, datetime
from itertools import count
from pathlib import Path

import openpyxl
import pytest
import zxingcpp
from django.db.models import Sum
from django.utils import timezone
from PIL import Image

from invoicing import services as invoicing_services
from invoicing import testing as invoicing_testing
from invoicing.models import Invoice, InvoiceLine
from market40.demo import DEMO_USERS, seed_demo
from market40.formatting import vnd
from market40.models import FeeDemand, Market, Stall
from market40.services import billing_run_create
from market40.vietqr import decode
from payments.models import AuditEntry, BankConnection, BankTransaction
from payments.providers import simulator
from payments.providers.base import VN_TZ, Transfer
from payments.services import connection_create
from tests.exports.test_bangke import HEADERS

pytestmark = pytest.mark.browser

REPO_ROOT = Path(__file__).resolve().parents[2]
MAY = date(2026, 5, 1)
PASSWORDS = {username: password for username, password, _role, _label in DEMO_USERS}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_transfer_numbers = count(1)


# --- the demo month ------------------------------------------------------------------


@dataclass
class Demo:
    market: Market
    connection: BankConnection
    secret: str


@pytest.fixture
def demo(live_server, settings, tmp_path) -> Demo:
    """The ``make run`` demo market (CHOMAU, users quanly / ketoan), 12 stalls, in May 2026,
    with a simulator bank connection and a test signing certificate."""
    settings.MEDIA_ROOT = tmp_path / "media"
    result = seed_demo(code="CHOMAU", stalls=12, today=date(2026, 5, 20))
    connection, secret, _generated = connection_create(market=result.market, provider="simulator")
    invoicing_testing.configure_market(result.market, tmp_path / "certs")
    return Demo(market=result.market, connection=connection, secret=secret)


@pytest.fixture
def desktop(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="vi-VN")
    page = context.new_page()
    yield page
    context.close()


def bank_sends(live_server, demo: Demo, amount_vnd: int, content: str, **fields) -> str:
    """The bank notifies one incoming transfer: a real signed simulator delivery POSTed to
    the live server's webhook endpoint. Returns the provider transaction id."""
    number = next(_transfer_numbers)
    values = dict(
        provider_transaction_id=f"SIM-E2E-{number:06d}",
        direction="in",
        amount_vnd=amount_vnd,
        content=content,
        # Spread over May, in market hours.
        bank_time=datetime(
            2026, 5, 5 + number % 20, 7 + 3 * number % 11, 17 * number % 60, tzinfo=VN_TZ
        ),
        bank_reference=f"FT26126{number:09d}",
        counter_account=f"00710{number:08d}",
        counter_name="NGUYEN THI LAN",
        counter_bank="Vietcombank",
        account_number=demo.connection.account.account_number,
    )
    values.update(fields)
    body, headers = simulator.build_delivery([Transfer(**values)], demo.secret, now=timezone.now())
    request = urllib.request.Request(
        live_server.url + demo.connection.webhook_path, data=body, headers=headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    return values["provider_transaction_id"]


def may_demands() -> list[FeeDemand]:
    return list(
        FeeDemand.objects.filter(period=MAY).select_related("stall", "holder").order_by("pk")
    )


def transposed(code: str) -> str:
    """The payment code with two adjacent different digits swapped: the typo the Damm
    check digit is there to catch."""
    digits = list(code[3:])
    for i in range(len(digits) - 1):
        if digits[i] != digits[i + 1]:
            digits[i], digits[i + 1] = digits[i + 1], digits[i]
            return code[:3] + "".join(digits)
    raise AssertionError(f"no adjacent pair to swap in {code}")


# --- pages ---------------------------------------------------------------------------


def log_in(page, live_server, username: str) -> None:
    """Through the real login form, as a person would."""
    page.goto(f"{live_server.url}/manage/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORDS[username])
    follow(page, page.get_by_role("button", name="Đăng nhập"))
    assert "/accounts/login/" not in page.url, page.locator(".messages").all_inner_texts()


def follow(page, locator) -> None:
    """Click a link or a submit button and wait for the page it leads to."""
    with page.expect_navigation():
        locator.click()


def messages(page) -> list[str]:
    return [text.strip() for text in page.locator(".messages .message").all_inner_texts()]


def screenshot(page, tmp_path: Path, name: str, **options) -> Path:
    """A PNG of the page in ``tmp_path``; also in ``SCREENSHOTS_DIR`` (relative paths are
    taken from the repository root) when that is set."""
    path = tmp_path / name
    page.screenshot(path=str(path), animations="disabled", caret="hide", **options)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000, (name, len(data))
    if target := os.environ.get("SCREENSHOTS_DIR"):
        directory = Path(target) if Path(target).is_absolute() else REPO_ROOT / target
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, directory / name)
    return path


def qr_payload(png: bytes) -> str:
    codes = zxingcpp.read_barcodes(
        Image.open(io.BytesIO(png)), formats=zxingcpp.BarcodeFormat.QRCode
    )
    assert len(codes) == 1
    return codes[0].text


def pdf_page_count(pdf: bytes) -> int:
    # reportlab writes one uncompressed "/Type /Page" dictionary per page.
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf))


def fits_the_screen(page, width: int = 360) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= width


# --- the manager ---------------------------------------------------------------------


def test_a_manager_bills_may_sees_the_money_arrive_and_prints_the_placards(
    demo, desktop, live_server, tmp_path
):
    page = desktop
    log_in(page, live_server, "quanly")
    # One market: straight to its overview.
    assert page.url.endswith("/manage/CHOMAU/")
    assert page.locator(".market-nav strong").inner_text() == demo.market.name

    follow(
        page,
        page.get_by_role("navigation", name="Trang của chợ").get_by_role("link", name="Lập phí"),
    )
    assert page.locator("h1").inner_text() == "Lập phí theo kỳ"
    page.fill("#period", "2026-05")
    follow(page, page.get_by_role("button", name="Lập phí", exact=True))
    assert page.url.endswith("/manage/CHOMAU/?period=2026-05")

    demands = may_demands()
    total = sum(d.total_vnd for d in demands)
    assert len(demands) >= 10 and total > 0
    assert f"Đã lập {len(demands)} phiếu báo phí, tổng {vnd(total)}" in messages(page)
    assert page.locator("h1").inner_text() == "Kỳ 05/2026"
    rows = page.locator("table.responsive").first.locator("tbody tr")
    assert rows.count() == len(demands)
    assert {code.strip() for code in rows.locator("code").all_inner_texts()} == {
        d.payment_code for d in demands
    }

    # Over the month transfers arrive: five stall holders pay in full (one by the stall's
    # own placard code), two pay half of their bill.
    for demand in demands[:4]:
        bank_sends(live_server, demo, demand.total_vnd, f"{demand.payment_code} PHI THANG 5")
    bank_sends(live_server, demo, demands[4].total_vnd, f"{demands[4].stall.payment_code} T5")
    halves = [d.total_vnd // 2 // 1_000 * 1_000 for d in demands[5:7]]
    for demand, half in zip(demands[5:7], halves, strict=True):
        bank_sends(live_server, demo, half, f"{demand.payment_code} TRA TRUOC")
    page.reload()
    collected = sum(halves) + sum(d.total_vnd for d in demands[:5])
    figures = page.locator(".figures .value").all_inner_texts()
    assert figures == [vnd(total), vnd(collected), vnd(total - collected)]
    counts = page.locator("p.counts strong").all_inner_texts()
    assert counts == [str(len(demands)), str(len(demands) - 7), "2", "5"]
    screenshot(page, tmp_path, "manager-overview.png", full_page=True)

    # The placard sheet: one static VietQR per active stall, each for that stall's code.
    follow(page, page.get_by_role("link", name="Bảng mã QR"))
    active = Stall.objects.filter(market=demo.market, active=True)
    placards = page.locator(".placard")
    assert placards.count() == active.count()
    assert set(placards.evaluate_all("els => els.map(e => e.dataset.stall)")) == set(
        active.values_list("code", flat=True)
    )
    images = page.locator(".placard img")
    assert images.evaluate_all("imgs => imgs.every(i => i.complete && i.naturalWidth > 100)")
    first = active.order_by("zone__code", "code").first()
    assert first.payment_code in placards.first.inner_text()
    first_png = images.first.screenshot()
    payload = decode(qr_payload(first_png))
    assert payload.amount_vnd is None  # a static QR: the holder types the amount
    assert payload.purpose == first.payment_code

    # The PDF opens inline, in Chromium's own viewer: fetch what the link serves with the
    # page's session, as "save as" would.
    link = page.get_by_role("link", name="PDF", exact=True)
    response = page.request.get(live_server.url + link.get_attribute("href"))
    assert response.status == 200 and response.headers["content-type"] == "application/pdf"
    assert 'filename="bang-ma-QR-CHOMAU.pdf"' in response.headers["content-disposition"]
    pdf = response.body()
    assert pdf.startswith(b"%PDF-") and len(pdf) > 10_000
    assert pdf_page_count(pdf) == -(-active.count() // 6)  # six placards per A4 page


# --- the stall holder ----------------------------------------------------------------


def test_a_stall_holder_pays_from_the_phone_in_two_transfers(demo, phone, live_server, tmp_path):
    billing_run_create(market=demo.market, period=MAY)
    # The biggest bill of the month (rent, fees, electricity, maybe water).
    demand = max(may_demands(), key=lambda d: (d.total_vnd, d.pk))
    phone.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    phone.goto(f"{live_server.url}/pay/{demand.pay_token}/")

    assert demand.holder.full_name in phone.locator("main").inner_text()
    qr = phone.locator('img[data-testid="qr"]')
    assert qr.is_visible()
    assert qr.evaluate("img => img.complete && img.naturalWidth > 100")
    box = qr.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 360 and box["width"] >= 250
    assert fits_the_screen(phone)
    assert phone.get_by_test_id("amount").inner_text() == vnd(demand.total_vnd)
    assert phone.get_by_test_id("payment-code").inner_text() == demand.payment_code
    screenshot(phone, tmp_path, "pay-page-phone.png")

    # "Sao chép" next to the payment code puts exactly the code on the clipboard.
    copy = phone.locator('button.copy[data-copy="code"]')
    assert copy.is_visible()
    copy.click()
    assert phone.evaluate("navigator.clipboard.readText()") == demand.payment_code
    assert copy.inner_text() == "Đã chép"

    # "Tải mã QR về máy" saves the QR, for bank apps that scan from the photo library.
    with phone.expect_download() as download_info:
        phone.get_by_role("link", name="Tải mã QR về máy").click()
    download = download_info.value
    assert download.suggested_filename == f"VietQR-{demand.payment_code}.png"
    qr = decode(qr_payload(Path(download.path()).read_bytes()))
    assert (qr.amount_vnd, qr.purpose) == (demand.total_vnd, demand.payment_code)

    # Part of the bill arrives; the page now asks for the remainder, in a new QR.
    first_qr_src = phone.get_by_test_id("qr").get_attribute("src")
    part = demand.total_vnd // 3 // 1_000 * 1_000
    bank_sends(live_server, demo, part, f"{demand.payment_code} LAN 1")
    phone.reload()
    rest = demand.total_vnd - part
    assert phone.get_by_test_id("status").inner_text() == "Thanh toán một phần"
    assert phone.get_by_test_id("amount").inner_text() == vnd(rest)
    assert f"Đã nộp {vnd(part)} / {vnd(demand.total_vnd)}" in phone.locator("main").inner_text()
    assert phone.locator("#amt").inner_text() == str(rest)
    new_src = phone.get_by_test_id("qr").get_attribute("src")
    assert new_src != first_qr_src
    qr = decode(qr_payload(phone.request.get(live_server.url + new_src).body()))
    assert qr.amount_vnd == rest
    assert fits_the_screen(phone)

    # The rest arrives: paid, with nothing left to scan or copy.
    bank_sends(live_server, demo, rest, f"{demand.payment_code} LAN 2")
    phone.reload()
    assert phone.get_by_test_id("status").inner_text() == "Đã thanh toán"
    assert phone.locator(".amount").inner_text() == vnd(demand.total_vnd)
    assert phone.get_by_test_id("qr").count() == 0
    assert phone.locator("button.copy").count() == 0
    assert fits_the_screen(phone)
    demand.refresh_from_db()
    assert (demand.status, demand.paid_vnd) == (FeeDemand.Status.PAID, demand.total_vnd)


# --- the accountant ------------------------------------------------------------------


def test_an_accountant_matches_a_mistyped_transfer_issues_invoices_and_exports_the_bangke(
    demo, desktop, live_server, tmp_path
):
    billing_run_create(market=demo.market, period=MAY)
    demands = may_demands()
    for demand in demands[:3]:
        bank_sends(live_server, demo, demand.total_vnd, f"{demand.payment_code} PHI T5")
    # A relative pays the fourth bill to the đồng, but swaps two digits of its code.
    mistyped = demands[3]
    lost = bank_sends(
        live_server,
        demo,
        mistyped.total_vnd,
        f"{transposed(mistyped.payment_code)} PHI THANG 5",
        counter_name="TRAN THI HANH",
    )
    # And someone sends money with no code at all.
    anonymous = bank_sends(live_server, demo, 500_000, "chuyen tien", counter_name="LE VAN BA")
    lost = BankTransaction.objects.get(provider_transaction_id=lost)
    anonymous = BankTransaction.objects.get(provider_transaction_id=anonymous)
    assert lost.status == anonymous.status == BankTransaction.Status.UNMATCHED

    page = desktop
    log_in(page, live_server, "ketoan")
    follow(page, page.get_by_role("link", name="Đối soát", exact=True))
    assert page.locator("h1").inner_text() == "Giao dịch chưa khớp"
    row = page.locator(f"#tx-{lost.pk}")
    assert "TRAN THI HANH" in row.inner_text()
    assert page.locator(f"#tx-{anonymous.pk}").is_visible()
    suggestions = row.locator("ol.suggestions li")
    assert suggestions.first.locator("code").inner_text() == mistyped.payment_code
    assert "mã gần giống" in suggestions.first.inner_text()
    assert "đúng số tiền còn nợ" in suggestions.first.inner_text()
    screenshot(page, tmp_path, "accountant-queue.png", full_page=True)

    # The first suggestion opens the match form filled in for that demand.
    follow(page, suggestions.first.locator("a"))
    assert page.locator('input[name="code_1"]').input_value() == mistyped.payment_code
    assert page.locator('input[name="amount_1"]').input_value() == str(mistyped.total_vnd)
    note = "Khách đảo hai chữ số của mã; đã gọi điện xác nhận"
    page.fill("#match-note", note)
    follow(page, page.get_by_role("button", name="Khớp", exact=True))
    assert f"Đã khớp {vnd(mistyped.total_vnd)} vào 1 phiếu báo phí." in messages(page)
    lost.refresh_from_db()
    mistyped.refresh_from_db()
    assert lost.status == BankTransaction.Status.MATCHED and lost.unmatched_vnd == 0
    assert mistyped.status == FeeDemand.Status.PAID
    assert AuditEntry.objects.get(transaction=lost, action="match").note == note

    follow(page, page.get_by_role("link", name="Về danh sách chưa khớp"))
    assert page.locator(f"#tx-{lost.pk}").count() == 0
    assert page.locator(f"#tx-{anonymous.pk}").is_visible()
    page.goto(f"{live_server.url}/manage/CHOMAU/demands/{mistyped.pk}/")
    assert page.locator(".facts .status").inner_text() == "Đã thanh toán"

    # The four paid demands of May get their signed invoices from the invoice page.
    page.goto(f"{live_server.url}/manage/CHOMAU/invoices/?period=2026-05")
    assert "Kỳ 05/2026: 4 phiếu đã thanh toán đủ đang chờ xuất hóa đơn." in page.inner_text("main")
    follow(page, page.get_by_role("button", name="Xuất hóa đơn"))
    invoices = list(Invoice.objects.filter(market=demo.market, period=MAY).order_by("number"))
    assert sorted(i.demand_id for i in invoices) == sorted(d.pk for d in demands[:4])
    assert page.locator("table.responsive tbody tr").count() == 4

    invoice = next(i for i in invoices if i.demand_id == mistyped.pk)
    follow(page, page.get_by_role("link", name=invoice.label, exact=True))
    sheet = page.locator("article.invoice-sheet")
    assert mistyped.holder.full_name in sheet.inner_text()
    assert vnd(mistyped.total_vnd) in sheet.inner_text()
    screenshot(page, tmp_path, "invoice-view.png", full_page=True)

    # The bảng kê of May: one row per invoice and VAT rate, then the totals row.
    follow(page, page.get_by_role("link", name="Xuất file"))
    page.fill("#export-period", "2026-05")
    page.select_option("#export-kind", "bangke-xlsx")
    follow(page, page.get_by_role("button", name="Xuất", exact=True))
    assert any(m.startswith("Đã xuất xong") for m in messages(page))
    with page.expect_download() as download_info:
        page.get_by_role("link", name="CHOMAU_2026-05_bang-ke.xlsx").click()
    download = download_info.value
    assert download.suggested_filename == "CHOMAU_2026-05_bang-ke.xlsx"
    sheet = openpyxl.load_workbook(io.BytesIO(Path(download.path()).read_bytes())).active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert rows[0] == HEADERS
    body, totals = rows[1:-1], rows[-1]
    rate_rows = (
        InvoiceLine.objects.filter(invoice__in=invoices).values("invoice_id", "vat_rate").distinct()
    )
    assert len(body) == rate_rows.count() >= len(invoices)
    assert {row[2] for row in body} == {i.number for i in invoices}
    assert {row[7] for row in body} == {d.stall.code for d in demands[:4]}
    payable = Invoice.objects.filter(pk__in=[i.pk for i in invoices]).aggregate(
        s=Sum("total_payable_vnd")
    )["s"]
    assert sum(row[11] for row in body) == payable
    assert payable in totals


# --- every staff page on a phone -----------------------------------------------------


def test_the_pages_managers_and_accountants_use_fit_a_360_px_phone(demo, phone, live_server):
    billing_run_create(market=demo.market, period=MAY)
    demand = may_demands()[0]
    bank_sends(live_server, demo, demand.total_vnd, demand.payment_code)
    bank_sends(live_server, demo, 120_000, "chuyen tien", counter_name="LE VAN BA")
    invoice = invoicing_services.invoice_issue_for_demand(demand=demand.pk)
    log_in(phone, live_server, "ketoan")
    widths = {}
    for path in [
        "?period=2026-05",
        "stalls/",
        f"demands/{demand.pk}/",
        "unmatched/",
        "reconciliation/",
        "invoices/?period=2026-05",
        f"invoices/{invoice.pk}/",
        "exports/",
    ]:
        phone.goto(f"{live_server.url}/manage/CHOMAU/{path}")
        assert phone.locator("main h1").first.is_visible(), path
        widths[path] = phone.evaluate("document.documentElement.scrollWidth")
    assert widths == dict.fromkeys(widths, 360)
