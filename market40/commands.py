"""What management commands share: turning their arguments into domain objects, with the
Vietnamese error every command gives for the same mistake."""

from __future__ import annotations

from django.core.management.base import CommandError

from market40.models import Market


def market_argument(code: str) -> Market:
    """The market named by a command's MARKET_CODE argument (any case)."""
    market = Market.objects.filter(code=code.upper()).first()
    if market is None:
        raise CommandError(f"Không tìm thấy chợ có mã “{code}”.")
    return market
