"""Vietnamese number formatting: 1234567 → "1.234.567 đ" (dots group thousands)."""


def group_thousands(value: int) -> str:
    return f"{value:,}".replace(",", ".")


def vnd(value: int | None) -> str:
    return f"{group_thousands(value or 0)} đ"
