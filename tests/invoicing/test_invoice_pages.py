"""Invoice pages: list with filters, the printable invoice, XML download, issuing, replacement
and adjustment; other markets' invoices are 404."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from invoicing import services, testing
from invoicing.models import Invoice, InvoiceSettings
from market40.models import FeeDemand
from tests import factories

pytestmark = pytest.mark.usefixtures("every_invoice_verifies")


@pytest.fixture
def paid_a(billed_a, market_a, tmp_path):
    testing.configure_market(market_a, tmp_path / "certs")
    demands = list(FeeDemand.objects.filter(billing_run=billed_a.run).order_by("stall__code"))
    testing.mark_paid(demands)
    return demands


@pytest.fixture
def invoice_a(paid_a):
    return services.invoice_issue_for_demand(demand=paid_a[0])


def url(name: str, *args) -> str:
    return reverse(name, args=["CHOA", *args])


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_the_invoice_list_shows_the_markets_invoices_and_filters_them(
    manager_a_client, paid_a, invoice_a
):
    other = services.invoice_issue_for_demand(demand=paid_a[1])
    services.invoice_replace(invoice=other, reason="Sai tên")

    page = manager_a_client.get(url("invoice-list"))
    replaced = manager_a_client.get(url("invoice-list"), {"status": "replaced"})
    by_buyer = manager_a_client.get(url("invoice-list"), {"buyer": paid_a[0].stall.code})
    by_period = manager_a_client.get(url("invoice-list"), {"period": "2026-04"})
    by_serial = manager_a_client.get(url("invoice-list"), {"serial": invoice_a.serial_code})

    assert page.status_code == 200
    assert len(page.context["page"].object_list) == 3
    assert [i.pk for i in replaced.context["page"].object_list] == [other.pk]
    assert [i.pk for i in by_buyer.context["page"].object_list] == [invoice_a.pk]
    assert list(by_period.context["page"].object_list) == []
    assert len(by_serial.context["page"].object_list) == 3
    assert invoice_a.label in page.content.decode()


def test_the_invoice_page_shows_every_legally_required_element(manager_a_client, invoice_a):
    response = manager_a_client.get(url("invoice-detail", invoice_a.pk))

    html = response.content.decode()
    day = invoice_a.issue_date
    assert response.status_code == 200
    for text in (
        "Hóa đơn giá trị gia tăng",
        f"<strong>{invoice_a.serial_code}</strong>",
        f"<strong>{invoice_a.number}</strong>",
        f"Ngày {day:%d} tháng {day:%m} năm {day:%Y}",
        invoice_a.market.name,
        "0312345678",
        invoice_a.market.address,
        invoice_a.buyer_name,
        invoice_a.stall_code,
        invoice_a.payment_code,
        "Chuyển khoản",
        "VND",
        invoice_a.amount_in_words,
        "Chữ ký hợp lệ",
        "UID=MST:0312345678",
        "0101360697",  # MSTTCGP
        "@media print",
    ):
        assert text in html, text
    doc = response.context["doc"]
    assert len(doc.lines) == invoice_a.lines.count()
    assert doc.total_payable == invoice_a.total_payable_vnd


def test_the_xml_download_is_the_stored_bytes(manager_a_client, invoice_a):
    response = manager_a_client.get(url("invoice-xml", invoice_a.pk))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/xml"
    assert response.content == invoice_a.xml_bytes
    assert response["Content-Disposition"] == f'attachment; filename="{invoice_a.filename}"'
    assert response["ETag"] == f'"{invoice_a.sha256}"'


@pytest.mark.parametrize(
    "name", ["invoice-detail", "invoice-xml", "invoice-replace", "invoice-adjust"]
)
def test_another_markets_manager_gets_404_for_an_invoice(manager_b_client, invoice_a, name):
    assert manager_b_client.get(url(name, invoice_a.pk)).status_code == 404
    assert manager_b_client.get(reverse(name, args=["CHOB", invoice_a.pk])).status_code == 404


def test_another_markets_manager_cannot_list_or_issue(manager_b_client, paid_a):
    assert manager_b_client.get(url("invoice-list")).status_code == 404
    response = manager_b_client.post(url("invoice-issue-demand", paid_a[0].pk))
    assert response.status_code == 404
    response = manager_b_client.post(url("invoice-issue-period"), {"period": "2026-05"})
    assert response.status_code == 404
    assert not Invoice.objects.exists()


def test_an_anonymous_visitor_is_sent_to_log_in(client, invoice_a):
    response = client.get(url("invoice-detail", invoice_a.pk))

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_accountant_issues_the_invoice_of_a_paid_demand(accountant_a_client, paid_a):
    response = accountant_a_client.post(url("invoice-issue-demand", paid_a[0].pk))

    invoice = Invoice.objects.get(demand=paid_a[0])
    assert response.status_code == 302
    assert response["Location"] == url("invoice-detail", invoice.pk)
    assert invoice.issued_by.username == "accountant_a"


def test_issuing_for_an_unpaid_demand_explains_why_and_stores_nothing(accountant_a_client, paid_a):
    FeeDemand.objects.filter(pk=paid_a[0].pk).update(status="partial")

    response = accountant_a_client.post(url("invoice-issue-demand", paid_a[0].pk))

    assert response.status_code == 302
    assert response["Location"] == reverse("demand-detail", args=["CHOA", paid_a[0].pk])
    assert any("chưa được thanh toán đủ" in m for m in messages_of(response))
    assert not Invoice.objects.exists()


def test_issuing_with_an_expired_certificate_shows_the_vietnamese_reason(
    accountant_a_client, paid_a, market_a, tmp_path
):
    testing.configure_market(
        market_a, tmp_path / "old", not_before=datetime(2024, 1, 1, tzinfo=UTC), days=30
    )

    response = accountant_a_client.post(url("invoice-issue-demand", paid_a[0].pk))

    assert any("Chứng thư số đã hết hạn" in m for m in messages_of(response))
    assert not Invoice.objects.exists()


def test_the_period_form_issues_every_paid_demand_of_the_period(accountant_a_client, paid_a):
    response = accountant_a_client.post(url("invoice-issue-period"), {"period": "2026-05"})

    assert response.status_code == 302
    assert response["Location"] == url("invoice-list") + "?period=2026-05"
    assert Invoice.objects.count() == 3
    assert any("Đã xuất 3 hóa đơn kỳ 05/2026" in m for m in messages_of(response))

    again = accountant_a_client.post(url("invoice-issue-period"), {"period": "2026-05"})
    assert any("3 phiếu đã có hóa đơn từ trước" in m for m in messages_of(again))
    assert Invoice.objects.count() == 3


def test_a_bad_period_is_refused_with_the_expected_form(accountant_a_client, paid_a):
    response = accountant_a_client.post(url("invoice-issue-period"), {"period": "05/2026"})

    assert any("YYYY-MM" in m for m in messages_of(response))
    assert not Invoice.objects.exists()


def test_a_member_without_an_issuing_role_gets_403(paid_a, market_a):
    from django.test import Client

    from market40.models import Membership

    user = factories.make_user("viewer")
    Membership.objects.create(user=user, market=market_a, role="viewer")
    client = Client()
    client.force_login(user)

    response = client.post(url("invoice-issue-demand", paid_a[0].pk))

    assert response.status_code == 403


def test_the_replacement_form_is_prefilled_and_needs_a_reason(accountant_a_client, invoice_a):
    form = accountant_a_client.get(url("invoice-replace", invoice_a.pk))
    refused = accountant_a_client.post(url("invoice-replace", invoice_a.pk), {"reason": ""})

    assert form.status_code == 200
    assert invoice_a.buyer_name in form.content.decode()
    assert refused.status_code == 400
    assert "lý do" in refused.content.decode()
    assert Invoice.objects.count() == 1


def test_the_accountant_replaces_an_invoice_from_its_page(accountant_a_client, invoice_a):
    response = accountant_a_client.post(
        url("invoice-replace", invoice_a.pk),
        {
            "reason": "Bổ sung MST người mua",
            "buyer_name": "Hộ kinh doanh Nguyễn Thị Lan",
            "buyer_tax_code": "0312345679",
            "buyer_citizen_id": "",
            "buyer_address": "Quận 1",
        },
    )

    replacement = Invoice.objects.get(kind=Invoice.Kind.REPLACEMENT)
    assert response.status_code == 302
    assert response["Location"] == url("invoice-detail", replacement.pk)
    assert (replacement.buyer_name, replacement.buyer_tax_code) == (
        "Hộ kinh doanh Nguyễn Thị Lan",
        "0312345679",
    )
    assert replacement.related_id == invoice_a.pk
    page = accountant_a_client.get(url("invoice-detail", replacement.pk)).content.decode()
    assert "Thay thế" in page and "Bổ sung MST người mua" in page


def test_the_manager_adjusts_an_invoice_from_its_page(manager_a_client, invoice_a):
    response = manager_a_client.post(
        url("invoice-adjust", invoice_a.pk),
        {
            "reason": "Thu bổ sung tiền nước",
            "line1_description": "Tiền nước bổ sung",
            "line1_amount": "61.000",
            "line1_vat_rate": "10%",
        },
    )

    adjustment = Invoice.objects.get(kind=Invoice.Kind.ADJUSTMENT)
    assert response.status_code == 302
    assert (adjustment.total_net_vnd, adjustment.total_vat_vnd) == (55_455, 5_545)
    assert Invoice.objects.get(pk=invoice_a.pk).status == Invoice.Status.ADJUSTED


def test_the_list_tells_when_the_market_has_no_invoice_settings(manager_a_client, market_a):
    InvoiceSettings.objects.filter(market=market_a).delete()

    response = manager_a_client.get(url("invoice-list"))

    assert "Chợ chưa có cấu hình hóa đơn điện tử." in response.content.decode()


def test_the_admin_shows_invoices_read_only_and_configures_settings(admin_client_, invoice_a):
    settings = InvoiceSettings.objects.get()
    serial = invoice_a.serial

    pages = [
        reverse("admin:invoicing_invoice_changelist"),
        reverse("admin:invoicing_invoice_change", args=[invoice_a.pk]),
        reverse("admin:invoicing_invoicesettings_change", args=[settings.pk]),
        reverse("admin:invoicing_invoiceserial_change", args=[serial.pk]),
    ]

    for page in pages:
        assert admin_client_.get(page).status_code == 200, page
    change = admin_client_.get(pages[1]).content.decode()
    assert invoice_a.filename in change
    refused = admin_client_.post(pages[1], {"status": "replaced"})
    assert refused.status_code == 403
    assert Invoice.objects.get(pk=invoice_a.pk).status == Invoice.Status.SIGNED
    delete = reverse("admin:invoicing_invoice_delete", args=[invoice_a.pk])
    assert admin_client_.post(delete, {"post": "yes"}).status_code == 403
