"""Display filters for the manager pages: money in đồng and billing periods."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django import template
from django.utils.formats import number_format

from market40 import formatting

register = template.Library()


@register.filter
def vnd(value: object) -> str:
    """1234567 → "1.234.567 đ". Money is integer đồng; Vietnamese groups thousands with
    dots. Anything that is not a number (an empty cell) shows as a dash."""
    if value is None or value == "":
        return "—"
    try:
        amount = int(value)
    except (TypeError, ValueError):
        return str(value)
    return formatting.vnd(amount)


@register.filter
def period(value: date | None) -> str:
    """The first day of a month → "05/2026", as periods are written on Vietnamese bills."""
    if not value:
        return ""
    return f"{value:%m/%Y}"


@register.filter
def period_param(value: date | None) -> str:
    """The first day of a month → "2026-05", the ``?period=`` form used in URLs."""
    if not value:
        return ""
    return f"{value:%Y-%m}"


@register.filter
def qty(value: Decimal | None) -> str:
    """A quantity (m², kWh, days) without trailing zeros, in the active locale:
    Decimal("6.5000") → "6,5" in Vietnamese."""
    if value is None or value == "":
        return ""
    number = Decimal(value).normalize()
    # normalize() turns 100 into 1E+2; the "f" format writes it out again.
    return number_format(Decimal(format(number, "f")))
