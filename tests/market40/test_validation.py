"""Bad master data gets a Vietnamese message naming the field and writes nothing."""

from datetime import date

import pytest

from market40.errors import InvalidInput
from market40.models import Lease, Market, Stall, StallHolder, Tariff
from market40.services import lease_create, save_validated
from tests import factories


@pytest.mark.parametrize("tax_code", ["12345", "031234567", "0312345678-12", "03123456789", "abc"])
def test_a_market_with_a_malformed_tax_code_is_refused(db, tax_code):
    market = Market(code="CHOX", name="Chợ X", tax_code=tax_code, address="Hà Nội")
    with pytest.raises(InvalidInput) as error:
        save_validated(market)
    assert "mã số thuế" in error.value.message
    assert "tax_code" in error.value.extra["fields"]
    assert not Market.objects.exists()


@pytest.mark.parametrize("tax_code", ["0312345678", "0312345678-001"])
def test_a_ten_digit_or_branch_tax_code_is_accepted(db, tax_code):
    save_validated(Market(code="CHOX", name="Chợ X", tax_code=tax_code, address="Hà Nội"))


@pytest.mark.parametrize(
    ("field", "value", "label"),
    [
        ("phone", "0123", "điện thoại"),
        ("phone", "0212345678", "điện thoại"),
        ("citizen_id", "12345678901", "CCCD"),
        ("tax_code", "12345", "mã số thuế"),
    ],
)
def test_a_holder_with_bad_identifiers_is_refused(market_a, field, value, label):
    holder = StallHolder(market=market_a, code="TT1", full_name="Lê Văn Tám", phone="0912345678")
    setattr(holder, field, value)
    with pytest.raises(InvalidInput) as error:
        save_validated(holder)
    assert label in error.value.message
    assert not StallHolder.objects.exists()


@pytest.mark.parametrize("phone", ["0912 345 678", "+84912345678", "84.912.345.678"])
def test_phone_numbers_are_normalised(market_a, phone):
    holder = save_validated(
        StallHolder(market=market_a, code="TT1", full_name="Lê Văn Tám", phone=phone)
    )
    assert holder.phone == "0912345678"


def test_a_negative_area_is_refused(market_a):
    stall = Stall(market=market_a, code="A1", stall_class="L1", area_m2=-1, payment_code="X")
    with pytest.raises(InvalidInput) as error:
        save_validated(stall)
    assert "Diện tích" in error.value.message or "diện tích" in error.value.message
    assert not Stall.objects.exists()


def test_overlapping_leases_of_one_stall_are_refused(market_a):
    stall = factories.make_stall(market_a, "A1")
    lease_create(
        stall=stall,
        holder=factories.make_holder(market_a),
        start_date=date(2026, 1, 1),
        end_date=date(2026, 6, 30),
    )
    with pytest.raises(InvalidInput) as error:
        lease_create(
            stall=stall, holder=factories.make_holder(market_a), start_date=date(2026, 6, 1)
        )
    assert "trùng thời gian" in error.value.message
    assert Lease.objects.count() == 1
    lease_create(stall=stall, holder=factories.make_holder(market_a), start_date=date(2026, 7, 1))
    assert Lease.objects.count() == 2


def test_an_overlapping_tariff_validity_is_refused(market_a, tariffs_a):
    clash = Tariff(
        market=market_a,
        fee_kind="sanitation",
        basis="per_stall_month",
        name="Vệ sinh mới",
        unit="tháng",
        unit_price_vnd=25_000,
        vat_rate="10%",
        valid_from=date(2026, 6, 1),
    )
    with pytest.raises(InvalidInput) as error:
        save_validated(clash)
    assert "trùng thời gian hiệu lực" in error.value.message
    assert Tariff.objects.filter(name="Vệ sinh mới").count() == 0


def test_an_unknown_vat_rate_is_refused(market_a):
    tariff = Tariff(
        market=market_a,
        fee_kind="rent",
        basis="per_m2_month",
        name="Thuê",
        unit="m²",
        unit_price_vnd=1000,
        vat_rate="7%",
        valid_from=date(2026, 1, 1),
    )
    with pytest.raises(InvalidInput) as error:
        save_validated(tariff)
    assert "vat_rate" in error.value.extra["fields"]
