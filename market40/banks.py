"""Loading the NAPAS bank list (vietqr.io /v2/banks item shape) into the Bank table."""

from __future__ import annotations

import json
import re
from pathlib import Path

from django.db import transaction

from market40.models import Bank


class BankListError(ValueError):
    pass


def load_bank_list(path: Path | str) -> int:
    """Insert or update every entry; returns how many. A malformed file changes nothing."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise BankListError(f"Không đọc được danh sách ngân hàng {path}: {error}") from None
    items = data.get("data") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise BankListError("Danh sách ngân hàng phải có mảng “data”.")
    banks: dict[str, Bank] = {}
    for position, item in enumerate(items, 1):
        bin_ = str(item.get("bin", ""))
        if not re.fullmatch(r"\d{6}", bin_):
            raise BankListError(f"Mục {position}: BIN “{bin_}” không gồm đúng 6 chữ số.")
        banks[bin_] = Bank(
            bin=bin_,
            code=str(item.get("code") or "")[:20],
            short_name=str(item.get("shortName") or item.get("code") or bin_)[:60],
            name=str(item.get("name") or "")[:200],
            transfer_supported=bool(item.get("transferSupported", 1)),
        )
    with transaction.atomic():
        Bank.objects.bulk_create(
            banks.values(),
            update_conflicts=True,
            unique_fields=["bin"],
            update_fields=["code", "short_name", "name", "transfer_supported"],
        )
    return len(banks)
