"""Reactions of the payments app to market40 signals."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from market40.models import Market
from market40.signals import demands_billed, demo_seeded
from payments.models import BankConnection, Provider


@receiver(demo_seeded, sender=Market)
def create_demo_connections(sender, market, **kwargs) -> list[str]:
    from django.conf import settings

    from payments.services import connection_create

    lines = ["Kết nối ngân hàng demo (đường dẫn webhook và khóa bí mật):"]
    options = {Provider.SEPAY: {"mode": "hmac"}, Provider.CASSO: {"version": "v2"}}
    for provider in Provider.values:
        connection, secret, _generated = connection_create(
            market=market, provider=provider, options=options.get(provider, {})
        )
        lines.append(
            f"  {provider:<10} {settings.PUBLIC_BASE_URL}{connection.webhook_path}"
            f"  secret: {secret}"
        )
    return lines


@receiver(demands_billed)
def apply_holder_credits(sender, run, **kwargs) -> None:
    """Surplus a holder paid earlier is used on their new demands (issue: credits)."""
    from payments.ledger import apply_credits

    apply_credits(demand_ids=list(run.demands.values_list("id", flat=True)))


@receiver([post_save, post_delete], sender=BankConnection)
def forget_cached_connection(sender, instance, **kwargs) -> None:
    """A connection saved or deleted here is looked up afresh by the next delivery."""
    from payments.services import forget_connection

    forget_connection(instance.pk)
