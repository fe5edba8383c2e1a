from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class Market40Config(AppConfig):
    name = "market40"
    verbose_name = _("Chợ và phí")
