"""Admin: a market's MISA account codes are set here; export jobs are read-only records."""

from django.contrib import admin

from exports.models import ExportJob, MisaAccounts


@admin.register(MisaAccounts)
class MisaAccountsAdmin(admin.ModelAdmin):
    list_display = (
        "market",
        "receivable_account",
        "revenue_account",
        "vat_account",
        "bank_account",
        "suspense_account",
    )
    search_fields = ("market__code", "market__name")
    autocomplete_fields = ("market",)


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    list_display = ("id", "market", "period", "kind", "status", "done", "total", "created_at")
    list_filter = ("kind", "status", "market")
    readonly_fields = [f.name for f in ExportJob._meta.fields]

    def has_add_permission(self, request):
        return False
