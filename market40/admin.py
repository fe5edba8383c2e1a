"""Django admin for the master data, in Vietnamese (verbose names come from models).

Managers see only their markets; platform admins see everything. Money-bearing rows
(demands, lines, billing runs) are read-only here: they change through services only.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from market40 import services
from market40.errors import DomainError
from market40.models import (
    Bank,
    BillingRun,
    DemandLine,
    FeeDemand,
    Lease,
    Market,
    Membership,
    MeterReading,
    ReceivingAccount,
    Stall,
    StallHolder,
    Tariff,
    Zone,
)

admin.site.site_header = _("market40 · Quản trị Chợ 4.0")
admin.site.site_title = _("market40")
admin.site.index_title = _("Dữ liệu chợ")


class MarketScopedAdmin(admin.ModelAdmin):
    """Limits rows and foreign-key choices to the markets the user may see."""

    market_path = "market"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(**{f"{self.market_path}__in": services.markets_for(request.user)})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if not request.user.is_superuser:
            markets = services.markets_for(request.user, roles=("manager",))
            model = db_field.related_model
            if model is Market:
                kwargs["queryset"] = markets
            elif model in (Zone, Stall, StallHolder):
                kwargs["queryset"] = model.objects.filter(market__in=markets)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and (
            request.user.is_superuser or services.markets_for(request.user).exists()
        )

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.has_module_permission(request)

    def _may_change(self, request: HttpRequest) -> bool:
        return (
            request.user.is_superuser
            or services.markets_for(request.user, roles=("manager",)).exists()
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._may_change(request)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._may_change(request)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._may_change(request)


@admin.register(Bank)
class BankAdmin(admin.ModelAdmin):
    list_display = ["bin", "short_name", "code", "name", "transfer_supported"]
    search_fields = ["bin", "short_name", "code", "name"]


@admin.register(Market)
class MarketAdmin(MarketScopedAdmin):
    market_path = "pk"
    list_display = ["code", "name", "tax_code", "grade", "phone"]
    search_fields = ["code", "name", "tax_code"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = admin.ModelAdmin.get_queryset(self, request)
        if request.user.is_superuser:
            return qs
        return qs.filter(pk__in=services.markets_for(request.user))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_superuser


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "market", "role"]
    list_filter = ["role", "market"]


@admin.register(ReceivingAccount)
class ReceivingAccountAdmin(MarketScopedAdmin):
    list_display = ["market", "bank", "account_number", "account_name", "is_default", "active"]
    autocomplete_fields = ["bank"]


@admin.register(Zone)
class ZoneAdmin(MarketScopedAdmin):
    list_display = ["market", "code", "name"]
    list_filter = ["market"]


@admin.register(Stall)
class StallAdmin(MarketScopedAdmin):
    list_display = ["code", "market", "zone", "stall_class", "area_m2", "active", "payment_code"]
    list_filter = ["market", "active", "stall_class"]
    search_fields = ["code", "payment_code"]
    readonly_fields = ["payment_code"]


@admin.register(StallHolder)
class StallHolderAdmin(MarketScopedAdmin):
    list_display = ["code", "full_name", "phone", "tax_code", "citizen_id", "market"]
    list_filter = ["market"]
    search_fields = ["code", "full_name", "phone", "tax_code", "citizen_id"]


@admin.register(Lease)
class LeaseAdmin(MarketScopedAdmin):
    market_path = "stall__market"
    list_display = ["stall", "holder", "start_date", "end_date"]
    list_filter = ["stall__market"]
    search_fields = ["stall__code", "holder__full_name"]
    autocomplete_fields = ["stall", "holder"]


@admin.register(Tariff)
class TariffAdmin(MarketScopedAdmin):
    list_display = [
        "name",
        "market",
        "fee_kind",
        "basis",
        "stall_class",
        "unit_price_vnd",
        "vat_rate",
        "valid_from",
        "valid_to",
    ]
    list_filter = ["market", "fee_kind", "vat_rate"]


@admin.register(MeterReading)
class MeterReadingAdmin(MarketScopedAdmin):
    market_path = "stall__market"
    list_display = ["stall", "utility", "period", "previous_value", "current_value"]
    list_filter = ["utility", "period"]
    autocomplete_fields = ["stall"]


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(BillingRun)
class BillingRunAdmin(ReadOnlyMixin, MarketScopedAdmin):
    list_display = ["market", "period", "status", "demand_count", "total_vnd", "created_at"]
    list_filter = ["market", "status", "period"]
    actions = ["cancel_runs"]

    @admin.action(description=_("Hủy các đợt lập phí đã chọn (khi chưa có thanh toán)"))
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet) -> None:
        for run in queryset:
            try:
                services.require_market_role(request.user, run.market, "manager")
                n = services.billing_run_cancel(run=run, user=request.user)
            except DomainError as error:
                self.message_user(request, f"{run}: {error.message}", messages.ERROR)
            else:
                self.message_user(request, _("%(run)s: đã hủy %(n)s phiếu.") % {"run": run, "n": n})

    def get_actions(self, request):
        actions = admin.ModelAdmin.get_actions(self, request)
        if not self._may_change(request):
            actions.pop("cancel_runs", None)
        return actions


class DemandLineInline(ReadOnlyMixin, admin.TabularInline):
    model = DemandLine
    extra = 0
    fields = ["description", "quantity", "unit", "unit_price_vnd", "amount_vnd", "vat_rate"]
    readonly_fields = fields


@admin.register(FeeDemand)
class FeeDemandAdmin(ReadOnlyMixin, MarketScopedAdmin):
    list_display = [
        "payment_code",
        "market",
        "stall",
        "holder",
        "period",
        "total_vnd",
        "paid_vnd",
        "status",
        "due_date",
    ]
    list_filter = ["market", "status", "period"]
    search_fields = ["payment_code", "stall__code", "holder__full_name"]
    inlines = [DemandLineInline]
    exclude = ["pay_token"]
