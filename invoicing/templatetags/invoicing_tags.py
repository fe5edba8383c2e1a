"""Display filters of the invoice pages."""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def amount(value: Decimal | int | None) -> str:
    """A quantity or unit price as Vietnamese invoices print it: thousands grouped with dots,
    decimals after a comma, no trailing zeros (Decimal("109090.833333") → "109.090,833333")."""
    if value is None or value == "":
        return ""
    number = Decimal(value).normalize()
    text = format(number, "f")
    whole, _, fraction = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    whole = f"{int(whole.lstrip('-') or 0):,}".replace(",", ".")
    return f"{sign}{whole},{fraction}" if fraction else f"{sign}{whole}"
