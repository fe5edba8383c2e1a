"""System checks of the invoicing app.

A market that issues invoices automatically on payment must be able to sign: its
certificate file exists, opens with the password its reference names, carries the
market's tax code and is valid now. Checked against the database, so it runs with
``manage.py check --database default`` (and before ``issue_invoices`` / workers are
started in production), not on every command.
"""

from __future__ import annotations

from typing import Any

from django.core import checks


@checks.register(checks.Tags.database)
def check_auto_issue_certificates(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    from django.db import DatabaseError

    from invoicing.certificates import CertificateError, signing_key_for_market
    from invoicing.models import InvoiceSettings

    errors: list[checks.CheckMessage] = []
    try:
        enabled = list(
            InvoiceSettings.objects.select_related("market").filter(auto_issue_on_payment=True)
        )
    except DatabaseError:
        return errors  # not migrated yet: migrate's own checks come first
    for settings in enabled:
        try:
            signing_key_for_market(settings)
        except CertificateError as error:
            errors.append(
                checks.Error(
                    f"Chợ {settings.market.code} tự động xuất hóa đơn khi đã thu đủ nhưng không "
                    f"ký được: {error.message}",
                    hint="Cấu hình chứng thư số và mật khẩu (INVOICING_CERT_PASSWORD_<MÃ CHỢ>) "
                    "hoặc tắt tự động xuất hóa đơn của chợ này.",
                    obj=settings,
                    id="invoicing.E001",
                )
            )
    return errors
