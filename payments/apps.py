from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = _("Thanh toán")

    def ready(self) -> None:
        from payments import checks, receivers  # noqa: F401  (registers checks, receivers)
