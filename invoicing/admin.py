"""Admin: invoice settings and serials are configured here; invoices are read-only (a stored
invoice is immutable; corrections are replacement / adjustment invoices from the pages)."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from invoicing.models import Invoice, InvoiceLine, InvoiceSerial, InvoiceSettings


@admin.register(InvoiceSettings)
class InvoiceSettingsAdmin(admin.ModelAdmin):
    list_display = ("market", "form", "serial_scheme", "provider_tax_code", "auto_issue_on_payment")
    list_filter = ("form", "auto_issue_on_payment")
    search_fields = ("market__code", "market__name")
    autocomplete_fields = ("market",)


@admin.register(InvoiceSerial)
class InvoiceSerialAdmin(admin.ModelAdmin):
    list_display = ("market", "form", "serial", "year", "next_number", "active")
    list_filter = ("form", "year", "active")
    search_fields = ("market__code", "serial", "seller_tax_code")

    def get_readonly_fields(self, request, obj=None):
        # The counter moves only with a stored invoice; editing it would make a gap or a reuse.
        if obj is None:
            return ("year", "next_number")
        return ("market", "seller_tax_code", "form", "serial", "year", "next_number")


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    fields = ("number", "nature", "name", "unit", "quantity", "unit_price", "net_vnd", "vat_rate")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = (
        "label",
        "market",
        "issue_date",
        "buyer_name",
        "total_payable_vnd",
        "kind",
        "status",
    )
    list_filter = ("market", "status", "kind", "form", "serial_code")
    search_fields = ("buyer_name", "buyer_tax_code", "payment_code", "stall_code", "number")
    date_hierarchy = "issue_date"
    inlines = [InvoiceLineInline]
    exclude = ("xml",)

    @admin.display(description=_("XML đã ký"))
    def xml_download(self, obj: Invoice) -> str:
        url = reverse("api:invoice_xml", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, obj.filename)

    def get_readonly_fields(self, request, obj=None):
        names = [f.name for f in Invoice._meta.fields if f.name != "xml"]
        return [*names, "xml_download"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # view only

    def has_delete_permission(self, request, obj=None):
        return False
