"""Property: build_delivery → verify → parse gives back the transfers, for every format.

Random Vietnamese content (diacritics, ``/``, quotes, backslashes, emoji, control
characters), amounts 1..499 999 999 đồng, any bank time. Pure: no Django.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payments.providers import PROVIDERS, payos, simulator
from payments.providers.base import VN_TZ, Transfer

SECRET = "whsec_roundtrip_khóa_bí_mật"

FORMATS = [
    pytest.param(module, dict(options), id=f"{module.NAME}-{variant}")
    for module in PROVIDERS.values()
    for variant, options in module.VARIANTS.items()
]

VIETNAMESE = (
    "aàáảãạăằắẳẵặâầấẩẫậbcdđeèéẻẽẹêềếểễệghiìíỉĩịklmnoòóỏõọôồốổỗộơờớởỡợpqrstuùúủũụưừứửữựvxyỳýỷỹỵ"
)
SPECIAL = " ./-_:,;()&=+#%@!?'\"\\\n\t💰"
content_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(VIETNAMESE + VIETNAMESE.upper() + "0123456789" + SPECIAL),
        st.characters(exclude_categories=("Cs",)),
    ),
    max_size=120,
)
optional_text = st.none() | content_text.filter(bool)
bank_times = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2099, 12, 31),
    timezones=st.sampled_from([VN_TZ, UTC]),
).map(lambda moment: moment.replace(microsecond=0))

# What a format that does not carry a field parses it back as.
NOT_CARRIED = {
    "description": None,
    "bank_reference": None,
    "counter_account": None,
    "counter_name": None,
    "counter_bank": None,
    "account_number": None,
    "sub_account": None,
    "running_balance_vnd": None,
    "provider_code": None,
    "is_test": False,
}


@st.composite
def transfers_for(draw, module, options: dict[str, Any]) -> Transfer:
    """A random transfer that ``module`` with ``options`` can carry."""
    content = draw(content_text)
    direction = draw(st.sampled_from(["in", "out"]))
    if module is payos:
        content = draw(st.just(payos.TEST_DESCRIPTION) | st.just(content))
        reference = draw(st.from_regex(r"[A-Z0-9]{6,20}", fullmatch=True))
        link = draw(st.text(alphabet="0123456789abcdef", min_size=32, max_size=32))
        ids = {
            "provider_transaction_id": f"{link}:{reference}",
            "bank_reference": reference,
            "provider_code": str(draw(st.integers(0, 2**53))),
            "is_test": content == payos.TEST_DESCRIPTION,
        }
        direction = "in"
    elif module is simulator:
        ids = {
            "provider_transaction_id": draw(content_text.filter(str.strip)),
            "is_test": draw(st.booleans()),
        }
    else:
        # SePay and Casso ids are integers; Casso's id 0 is its test call.
        transaction_id = draw(st.integers(0, 2**53))
        ids = {"provider_transaction_id": str(transaction_id), "is_test": transaction_id == 0}
    fields: dict[str, Any] = {
        "direction": direction,
        "amount_vnd": draw(st.integers(1, 499_999_999)),
        "content": content,
        "bank_time": draw(bank_times),
        "description": draw(optional_text),
        "bank_reference": draw(optional_text),
        "counter_account": draw(optional_text),
        "counter_name": draw(optional_text),
        "counter_bank": draw(optional_text),
        "account_number": draw(optional_text),
        "sub_account": draw(optional_text),
        "running_balance_vnd": draw(st.none() | st.integers(-(10**12), 10**12)),
        "provider_code": draw(optional_text),
    }
    transfer = Transfer(**{**fields, **ids})
    carried = module.carried_fields(**options)
    return replace(
        transfer, **{name: value for name, value in NOT_CARRIED.items() if name not in carried}
    )


@st.composite
def deliveries(draw, module, options: dict[str, Any]) -> list[Transfer]:
    batches = module is simulator or options.get("version") == "v1"
    size = draw(st.integers(1, 4)) if batches else 1
    return [draw(transfers_for(module, options)) for _ in range(size)]


@pytest.mark.parametrize(("module", "options"), FORMATS)
def test_any_delivery_built_by_a_provider_verifies_and_parses_back_unchanged(module, options):
    @settings(max_examples=60, deadline=None, database=None)
    @given(
        sent=deliveries(module, options),
        now=st.datetimes(
            min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
        ),
        # Signatures carry whole seconds, so a skew of exactly ±300 s can exceed the
        # five-minute window by the truncated fraction; stay strictly inside it.
        skew=st.integers(-299, 299),
    )
    def round_trip(sent, now, skew):
        raw_body, headers = module.build_delivery(sent, SECRET, now=now, **options)

        module.verify(raw_body, headers, SECRET, now=now + timedelta(seconds=skew))

        assert module.parse(raw_body) == sent

    round_trip()
