"""A realistic demo market: zones, stall classes, VAT-inclusive tariffs, holders with
Vietnamese names, leases, meter readings, and demo users for each role."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from market40.banks import load_bank_list
from market40.models import (
    Bank,
    Lease,
    Market,
    Membership,
    MeterReading,
    ReceivingAccount,
    Stall,
    StallHolder,
    Tariff,
    Zone,
)
from market40.services import BATCH_SIZE, allocate_codes

SURNAMES = [
    "Nguyễn",
    "Trần",
    "Lê",
    "Phạm",
    "Hoàng",
    "Huỳnh",
    "Phan",
    "Vũ",
    "Võ",
    "Đặng",
    "Bùi",
    "Đỗ",
    "Hồ",
    "Ngô",
    "Dương",
    "Lý",
]
MIDDLE = ["Thị", "Văn", "Ngọc", "Minh", "Thanh", "Hữu", "Đức", "Thu", "Kim", "Quốc", "Hoài"]
GIVEN = [
    "Lan",
    "Hoa",
    "Hùng",
    "Dũng",
    "Mai",
    "Tuấn",
    "Hạnh",
    "Phượng",
    "Cường",
    "Thảo",
    "Sơn",
    "Yến",
    "Bình",
    "Châu",
    "Đông",
    "Xuân",
    "Nga",
    "Tâm",
    "Phúc",
    "Loan",
    "Khoa",
]
STREETS = [
    "Lê Lợi",
    "Trần Hưng Đạo",
    "Nguyễn Huệ",
    "Hai Bà Trưng",
    "Lý Thường Kiệt",
    "Phan Chu Trinh",
    "Quang Trung",
    "Điện Biên Phủ",
]

ZONES = [
    ("A", "Khu A – Vải, quần áo"),
    ("B", "Khu B – Thực phẩm khô"),
    ("C", "Khu C – Thực phẩm tươi sống"),
    ("D", "Khu D – Ăn uống"),
    ("KCD", "Khu bán hàng không cố định"),
]
# (stall class, share of stalls, area range m²)
CLASSES = [("L1", 0.2, (8, 16)), ("L2", 0.45, (4, 9)), ("L3", 0.25, (2, 5)), ("KCD", 0.1, (1, 2))]

DEMO_USERS = [
    ("admin", "admin2026", "superuser", "Quản trị nền tảng"),
    ("quanly", "quanly2026", "manager", "Quản lý chợ"),
    ("ketoan", "ketoan2026", "accountant", "Kế toán"),
]

DEMO_BANK = ("970436", "VCB", "Vietcombank", "Ngân hàng TMCP Ngoại Thương Việt Nam")


@dataclass
class DemoResult:
    market: Market
    stalls: int
    holders: int
    banks: int
    users: list[tuple[str, str, str]]


def tariff_rows(valid_from: date) -> list[dict]:
    """VAT-inclusive prices in the range provinces publish (domain.md §3.1)."""
    rent = [("L1", 150_000), ("L2", 110_000), ("L3", 80_000)]
    rows = [
        dict(
            fee_kind="rent",
            basis="per_m2_month",
            stall_class=cls,
            unit="m²",
            name=f"Giá dịch vụ sử dụng diện tích bán hàng (sạp loại {cls[1]})",
            unit_price_vnd=price,
            vat_rate="10%",
        )
        for cls, price in rent
    ]
    rows += [
        dict(
            fee_kind="management",
            basis="per_stall_month",
            stall_class="",
            unit="tháng",
            name="Phí quản lý chợ",
            unit_price_vnd=26_000,
            vat_rate="10%",
        ),
        dict(
            fee_kind="sanitation",
            basis="per_stall_month",
            stall_class="",
            unit="tháng",
            name="Phí vệ sinh",
            unit_price_vnd=20_000,
            vat_rate="10%",
        ),
        dict(
            fee_kind="security",
            basis="per_stall_month",
            stall_class="",
            unit="tháng",
            name="Phí an ninh, bảo vệ",
            unit_price_vnd=15_000,
            vat_rate="10%",
        ),
        dict(
            fee_kind="electricity",
            basis="metered",
            stall_class="",
            unit="kWh",
            name="Tiền điện",
            unit_price_vnd=3_500,
            vat_rate="8%",
        ),
        dict(
            fee_kind="water",
            basis="metered",
            stall_class="",
            unit="m³",
            name="Tiền nước sinh hoạt",
            unit_price_vnd=15_900,
            vat_rate="5%",
        ),
        dict(
            fee_kind="daily",
            basis="per_day",
            stall_class="KCD",
            unit="ngày",
            name="Vé bán hàng không cố định",
            unit_price_vnd=5_000,
            vat_rate="10%",
        ),
    ]
    for row in rows:
        row["valid_from"] = valid_from
    return rows


def ensure_banks() -> int:
    if Bank.objects.exists():
        return Bank.objects.count()
    if settings.BANK_LIST_PATH.exists():
        return load_bank_list(settings.BANK_LIST_PATH)
    # Without the bank list only the demo market's own bank is known; `load_banks`
    # loads the full NAPAS list later.
    b, c, s, n = DEMO_BANK
    Bank.objects.create(bin=b, code=c, short_name=s, name=n)
    return 1


@transaction.atomic
def seed_demo(
    *, code: str = "CHOMAU", stalls: int = 60, seed: int = 2026, today: date | None = None
) -> DemoResult:
    rng = random.Random(seed)
    today = today or timezone.localdate()
    banks = ensure_banks()
    market = Market.objects.create(
        code=code,
        name=f"Ban quản lý chợ {code.title()} – Phường Bến Nghé",
        tax_code="0319876543",
        address="12 Lê Lợi, Phường Bến Nghé, Quận 1, TP. Hồ Chí Minh",
        phone="02838221234",
        email="bqlcho@example.vn",
        grade=2,
    )
    ReceivingAccount.objects.create(
        market=market,
        bank_id=DEMO_BANK[0],
        account_number="1023456789",
        account_name=f"BQL CHO {code}",
    )
    zones = {z: Zone.objects.create(market=market, code=z, name=name) for z, name in ZONES}
    season_start = date(today.year, 1, 1)
    for row in tariff_rows(season_start):
        Tariff.objects.create(market=market, **row)

    weights = [share for _c, share, _a in CLASSES]
    stall_rows: list[Stall] = []
    codes = allocate_codes("stall", stalls)
    counters: dict[str, int] = {}
    for i in range(stalls):
        cls, _share, (lo, hi) = rng.choices(CLASSES, weights=weights)[0]
        zone = zones["KCD"] if cls == "KCD" else zones[rng.choice("ABCD")]
        counters[zone.code] = counters.get(zone.code, 0) + 1
        stall_rows.append(
            Stall(
                market=market,
                zone=zone,
                code=f"{zone.code}{counters[zone.code]:03d}",
                stall_class=cls,
                area_m2=Decimal(rng.randint(lo * 4, hi * 4)) / 4,
                active=rng.random() > 0.02,
                payment_code=codes[i],
            )
        )
    Stall.objects.bulk_create(stall_rows, batch_size=BATCH_SIZE)

    holders: list[StallHolder] = []
    for i, _stall in enumerate(stall_rows, 1):
        name = f"{rng.choice(SURNAMES)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"
        holders.append(
            StallHolder(
                market=market,
                code=f"TT{i:05d}",
                full_name=name,
                phone=f"0{rng.choice('3789')}{rng.randint(10_000_000, 99_999_999)}",
                tax_code=f"8{rng.randint(100_000_000, 999_999_999)}" if rng.random() < 0.3 else "",
                citizen_id=f"0{rng.randint(10, 96):02d}{rng.randint(0, 999_999_999):09d}"
                if rng.random() < 0.6
                else "",
                address=f"{rng.randint(1, 300)} {rng.choice(STREETS)}, TP. Hồ Chí Minh",
            )
        )
    StallHolder.objects.bulk_create(holders, batch_size=BATCH_SIZE)

    leases = [
        Lease(stall=stall, holder=holder, start_date=season_start)
        for stall, holder in zip(stall_rows, holders, strict=True)
    ]
    Lease.objects.bulk_create(leases, batch_size=BATCH_SIZE)

    readings: list[MeterReading] = []
    for month in range(1, 13):
        period = date(today.year, month, 1)
        if period > today.replace(day=1):
            break
        for n, stall in enumerate(stall_rows):
            if stall.stall_class == "KCD":
                continue
            kwh = Decimal(rng.randint(30, 400))
            start_kwh = Decimal(1000 + n * 7 + month * 500)
            readings.append(
                MeterReading(
                    stall=stall,
                    utility="electricity",
                    period=period,
                    previous_value=start_kwh,
                    current_value=start_kwh + kwh,
                )
            )
            if stall.zone.code in ("C", "D"):
                m3 = Decimal(rng.randint(2, 25))
                readings.append(
                    MeterReading(
                        stall=stall,
                        utility="water",
                        period=period,
                        previous_value=Decimal(100 + month * 30),
                        current_value=Decimal(100 + month * 30) + m3,
                    )
                )
    MeterReading.objects.bulk_create(readings, batch_size=BATCH_SIZE)

    users = []
    User = get_user_model()
    for username, password, role, label in DEMO_USERS:
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User(
                username=username, first_name=label, is_staff=True, is_superuser=role == "superuser"
            )
            user.set_password(password)
            user.save()
            users.append((username, password, label))
        if role != "superuser":
            Membership.objects.get_or_create(user=user, market=market, defaults={"role": role})
    return DemoResult(
        market=market, stalls=len(stall_rows), holders=len(holders), banks=banks, users=users
    )
