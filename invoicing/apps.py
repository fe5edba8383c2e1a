from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InvoicingConfig(AppConfig):
    name = "invoicing"
    verbose_name = _("Hóa đơn điện tử")

    def ready(self) -> None:
        from invoicing import checks, receivers  # noqa: F401  (registers the checks)
        from market40.signals import demand_fully_paid

        demand_fully_paid.connect(
            receivers.on_demand_fully_paid, dispatch_uid="invoicing.on_demand_fully_paid"
        )
