"""Small builders for test data; every test states what it needs."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal

from django.contrib.auth import get_user_model

from market40.models import (
    Bank,
    Lease,
    Market,
    Membership,
    ReceivingAccount,
    Stall,
    StallHolder,
    Tariff,
    Zone,
)

_seq = itertools.count(1)

BANKS = [
    ("970436", "VCB", "Vietcombank", "Ngân hàng TMCP Ngoại Thương Việt Nam"),
    ("970415", "ICB", "VietinBank", "Ngân hàng TMCP Công thương Việt Nam"),
    ("970418", "BIDV", "BIDV", "Ngân hàng TMCP Đầu tư và Phát triển Việt Nam"),
    ("970422", "MB", "MBBank", "Ngân hàng TMCP Quân đội"),
    ("971025", "MOMO", "MoMo", "Ví điện tử MoMo"),
]


def make_banks() -> list[Bank]:
    return [
        Bank.objects.get_or_create(
            bin=b, defaults={"code": c, "short_name": s, "name": n, "transfer_supported": True}
        )[0]
        for b, c, s, n in BANKS
    ]


def make_user(username: str, *, superuser: bool = False):
    User = get_user_model()
    if superuser:
        return User.objects.create_superuser(username, f"{username}@example.vn", "pw-" + username)
    return User.objects.create_user(username, f"{username}@example.vn", "pw-" + username)


def make_market(code: str = "CHOA", *, tax_code: str = "0312345678", **kw) -> Market:
    defaults = dict(
        name=f"Ban quản lý chợ {code}",
        tax_code=tax_code,
        address="1 Lê Lợi, Phường Bến Thành, TP. Hồ Chí Minh",
        phone="0283822000",
        email="bql@example.vn",
        grade=2,
    )
    defaults.update(kw)
    market = Market.objects.create(code=code, **defaults)
    make_banks()
    ReceivingAccount.objects.create(
        market=market,
        bank_id="970436",
        account_number="0071000123456",
        account_name=f"BQL CHO {code}",
    )
    return market


def make_zone(market: Market, code: str = "A") -> Zone:
    return Zone.objects.get_or_create(market=market, code=code, defaults={"name": f"Khu {code}"})[0]


def make_stall(
    market: Market,
    code: str | None = None,
    *,
    stall_class: str = "L1",
    area: str = "6.00",
    zone: Zone | None = None,
    active: bool = True,
) -> Stall:
    return Stall.objects.create(
        market=market,
        zone=zone or make_zone(market),
        code=code or f"A{next(_seq):03d}",
        stall_class=stall_class,
        area_m2=Decimal(area),
        active=active,
    )


def make_holder(market: Market, name: str = "Nguyễn Thị Lan", **kw) -> StallHolder:
    n = next(_seq)
    defaults = dict(code=f"TT{n:05d}", full_name=name, phone=f"09{n:08d}", address="Quận 1")
    defaults.update(kw)
    return StallHolder.objects.create(market=market, **defaults)


def make_lease(
    stall: Stall,
    holder: StallHolder | None = None,
    *,
    start: date = date(2026, 1, 1),
    end: date | None = None,
) -> Lease:
    return Lease.objects.create(
        stall=stall, holder=holder or make_holder(stall.market), start_date=start, end_date=end
    )


def make_tariffs(market: Market, *, valid_from: date = date(2026, 1, 1)) -> dict[str, Tariff]:
    """A realistic small tariff book: rent by class, sanitation and security per stall,
    metered electricity and water, and a daily ticket for non-fixed sellers."""
    rows = {
        "rent_l1": dict(
            fee_kind="rent",
            basis="per_m2_month",
            stall_class="L1",
            name="Giá dịch vụ sử dụng diện tích bán hàng (loại 1)",
            unit="m²",
            unit_price_vnd=120_000,
            vat_rate="10%",
        ),
        "rent_l2": dict(
            fee_kind="rent",
            basis="per_m2_month",
            stall_class="L2",
            name="Giá dịch vụ sử dụng diện tích bán hàng (loại 2)",
            unit="m²",
            unit_price_vnd=90_000,
            vat_rate="10%",
        ),
        "sanitation": dict(
            fee_kind="sanitation",
            basis="per_stall_month",
            stall_class="",
            name="Phí vệ sinh",
            unit="tháng",
            unit_price_vnd=20_000,
            vat_rate="10%",
        ),
        "security": dict(
            fee_kind="security",
            basis="per_stall_month",
            stall_class="",
            name="Phí an ninh, bảo vệ",
            unit="tháng",
            unit_price_vnd=15_000,
            vat_rate="10%",
        ),
        "electricity": dict(
            fee_kind="electricity",
            basis="metered",
            stall_class="",
            name="Tiền điện",
            unit="kWh",
            unit_price_vnd=3_500,
            vat_rate="8%",
        ),
        "water": dict(
            fee_kind="water",
            basis="metered",
            stall_class="",
            name="Tiền nước",
            unit="m³",
            unit_price_vnd=15_000,
            vat_rate="5%",
        ),
        "daily": dict(
            fee_kind="daily",
            basis="per_day",
            stall_class="KCD",
            name="Vé bán hàng không cố định",
            unit="ngày",
            unit_price_vnd=5_000,
            vat_rate="10%",
        ),
    }
    return {
        key: Tariff.objects.create(market=market, valid_from=valid_from, **row)
        for key, row in rows.items()
    }


def grant(user, market: Market, role: str) -> Membership:
    return Membership.objects.create(user=user, market=market, role=role)
