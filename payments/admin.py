"""Admin for bank connections and what arrived. Secrets are write-only: typed once in
the add form, stored encrypted, never displayed."""

from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from market40.admin import MarketScopedAdmin, ReadOnlyMixin
from payments.models import Allocation, BankConnection, BankTransaction, WebhookEvent


class ConnectionForm(forms.ModelForm):
    new_secret = forms.CharField(
        label=_("khóa bí mật mới"),
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("Chỉ nhập khi tạo hoặc đổi khóa; khóa hiện tại không bao giờ được hiển thị."),
    )

    class Meta:
        model = BankConnection
        fields = ["market", "account", "provider", "options", "active"]

    def clean(self):
        data = super().clean()
        if not self.instance.pk and not data.get("new_secret"):
            self.add_error("new_secret", _("Cần khóa bí mật khi tạo kết nối."))
        return data

    def save(self, commit=True):
        if self.cleaned_data.get("new_secret"):
            self.instance.set_secret(self.cleaned_data["new_secret"])
        return super().save(commit)


@admin.register(BankConnection)
class BankConnectionAdmin(MarketScopedAdmin):
    form = ConnectionForm
    list_display = ["id", "market", "provider", "account", "active", "balance_gaps", "webhook_path"]
    list_filter = ["provider", "active"]
    readonly_fields = ["id", "webhook_path", "last_balance_vnd", "balance_gaps", "last_gap_note"]


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyMixin, MarketScopedAdmin):
    market_path = "connection__market"
    list_display = [
        "id",
        "connection",
        "received_at",
        "outcome",
        "http_status",
        "reason",
        "new_transactions",
        "processing_error",
    ]
    list_filter = ["outcome", "connection__provider"]
    exclude = ["body"]


class AllocationInline(ReadOnlyMixin, admin.TabularInline):
    model = Allocation
    extra = 0
    fields = ["kind", "demand", "holder", "amount_vnd", "rule", "note", "created_by", "created_at"]
    readonly_fields = fields


@admin.register(BankTransaction)
class BankTransactionAdmin(ReadOnlyMixin, MarketScopedAdmin):
    market_path = "connection__market"
    list_display = [
        "bank_time",
        "connection",
        "direction",
        "amount_vnd",
        "content",
        "status",
        "allocated_vnd",
        "credit_vnd",
    ]
    list_filter = ["status", "direction", "connection__provider"]
    search_fields = ["content", "bank_reference", "provider_transaction_id", "counter_name"]
    inlines = [AllocationInline]
