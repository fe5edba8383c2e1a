"""Authentication and parsing of every provider format, with real signatures.

Every delivery here is made by the provider module's own ``build_delivery`` or
``sign``, i.e. by the same code the simulator uses to call the real endpoint.
Pure: no Django.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any

import pytest

from payments.providers import PROVIDERS, casso, payos, sepay, simulator
from payments.providers.base import VN_TZ, Transfer, WebhookRejected

SECRET = "whsec_market40_test_secret"
NOW = datetime(2024, 5, 1, 9, 31, 5, tzinfo=VN_TZ)


@dataclass(frozen=True)
class Format:
    """One delivery format: a provider module and one of its ``VARIANTS``."""

    module: ModuleType
    variant: str
    options: dict[str, Any] = field(hash=False)

    @property
    def name(self) -> str:
        return f"{self.module.NAME}-{self.variant}"

    @property
    def timestamped(self) -> bool:
        return self.name.startswith(("sepay-hmac", "casso-v2", "simulator"))

    @property
    def token_only(self) -> bool:
        # The credential does not cover the body (SePay API key, Casso v1 token).
        return self.name in ("sepay-apikey", "casso-v1")

    @property
    def signs_raw_bytes(self) -> bool:
        return self.name in ("sepay-hmac", "simulator-v1")

    @property
    def batches(self) -> bool:
        return self.name in ("casso-v1", "simulator-v1")

    @property
    def amount_key(self) -> str:
        return {"sepay": "transferAmount", "simulator": "amount_vnd"}.get(
            self.module.NAME, "amount"
        )

    def build(self, transfers: list[Transfer], *, secret: str = SECRET, now: datetime = NOW):
        return self.module.build_delivery(transfers, secret, now=now, **self.options)

    def sign(self, raw_body: bytes, *, now: datetime = NOW) -> dict[str, str]:
        # Only SePay's mode and Casso's version/form change the signature; the other
        # options (payOS's) shape the body.
        options = {k: v for k, v in self.options.items() if k in ("mode", "version", "form")}
        return self.module.sign(raw_body, SECRET, now=now, **options)

    def verify(self, raw_body: bytes, headers: dict[str, str], *, now: datetime = NOW):
        return self.module.verify(raw_body, headers, SECRET, now=now)

    def items(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The transaction objects inside a parsed body."""
        if self.module is sepay:
            return [body]
        if self.module is simulator:
            return body["transfers"]
        data = body["data"]
        return data if isinstance(data, list) else [data]

    def resign(self, body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        """Serialise an edited body and sign it again with the real secret."""
        if self.module is payos:
            body["signature"] = payos.signature_for_data(body["data"], SECRET)
        raw_body = json.dumps(body, ensure_ascii=False).encode()
        return raw_body, self.sign(raw_body)


FORMATS = [
    Format(module, variant, dict(options))
    for module in PROVIDERS.values()
    for variant, options in module.VARIANTS.items()
]


def formats(predicate=lambda fmt: True):
    return [pytest.param(fmt, id=fmt.name) for fmt in FORMATS if predicate(fmt)]


def transfer_for(fmt: Format, n: int = 1, **changes: Any) -> Transfer:
    """A realistic transfer, reduced to what ``fmt`` can carry."""
    if fmt.module is payos:
        ids = {
            "provider_transaction_id": f"124c33293c43417ab7879e14c8d9eb18:FT2412200000{n}",
            "bank_reference": f"FT2412200000{n}",
            "provider_code": str(5000 + n),
        }
    elif fmt.module is simulator:
        ids = {"provider_transaction_id": f"SIM-{n:06d}"}
    else:
        ids = {"provider_transaction_id": str(90000 + n)}
    full = Transfer(
        **{
            "direction": "in",
            "amount_vnd": 150_000 * n,
            "content": "CHO12345674 Phí chợ T05/2024 Nguyễn Thị Ánh",
            "description": "MBVCB.3278907687.012345.CHO12345674 Phi cho.CT tu 0123456789",
            "bank_reference": f"FT2412200000{n}",
            "counter_account": "0123456789",
            "counter_name": "NGUYEN THI ANH",
            "counter_bank": "Vietcombank",
            "account_number": "0011001234567",
            "sub_account": "VQRCHO4001",
            "bank_time": datetime(2024, 5, 1, 9, 30, n, tzinfo=VN_TZ),
            "running_balance_vnd": 2_000_000 + 150_000 * n,
            "provider_code": "CHO12345674",
            **ids,
            **changes,
        }
    )
    carried = fmt.module.carried_fields(**fmt.options)
    dropped = {
        name: (False if name == "is_test" else None)
        for name in ("description", "bank_reference", "counter_account", "counter_name")
        + ("counter_bank", "account_number", "sub_account", "running_balance_vnd")
        + ("provider_code", "is_test")
        if name not in carried
    }
    return replace(full, **dropped)


def rejection(call) -> tuple[int, str]:
    with pytest.raises(WebhookRejected) as rejected:
        call()
    return rejected.value.status, rejected.value.reason


# --- genuine deliveries ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", formats())
def test_a_genuine_delivery_parses_back_into_the_transfer_that_was_sent(fmt):
    sent = transfer_for(fmt)
    raw_body, headers = fmt.build([sent])

    result = fmt.verify(raw_body, headers)

    assert result.provider == fmt.module.NAME
    assert fmt.module.parse(raw_body) == [sent]


@pytest.mark.parametrize("fmt", formats(lambda fmt: not fmt.name.startswith("payos")))
@pytest.mark.parametrize("spelling", [str.lower, str.upper])
def test_header_names_are_matched_whatever_their_case(fmt, spelling):
    raw_body, headers = fmt.build([transfer_for(fmt)])

    fmt.verify(raw_body, {spelling(name): value for name, value in headers.items()})


@pytest.mark.parametrize("fmt", formats(lambda fmt: fmt.timestamped))
@pytest.mark.parametrize("age", [timedelta(minutes=5), timedelta(minutes=-5)])
def test_a_delivery_signed_exactly_five_minutes_away_is_still_fresh(fmt, age):
    raw_body, headers = fmt.build([transfer_for(fmt)], now=NOW - age)

    assert fmt.verify(raw_body, headers).signed_at == NOW - age


@pytest.mark.parametrize("fmt", formats())
def test_every_provider_answers_200_with_success_true(fmt):
    assert fmt.module.success_response() == (200, {"success": True})


def test_the_registry_names_every_provider_once():
    assert sorted(PROVIDERS) == ["casso", "payos", "sepay", "simulator"]


# --- authentication failures: 401 ------------------------------------------------------------


@pytest.mark.parametrize("fmt", formats(lambda fmt: not fmt.token_only))
def test_a_tampered_body_is_refused_as_bad_signature(fmt):
    raw_body, headers = fmt.build([transfer_for(fmt)])
    tampered = raw_body.replace(b"CHO12345674", b"CHO99999999")
    assert tampered != raw_body

    assert rejection(lambda: fmt.verify(tampered, headers)) == (401, "bad_signature")


@pytest.mark.parametrize("fmt", formats(lambda fmt: fmt.token_only))
def test_a_token_only_format_cannot_detect_a_tampered_body(fmt):
    # SePay's API key and Casso v1's secure-token are compared as plain strings and
    # cover nothing of the body (§3.2, §5): prefer SePay HMAC and Casso v2.
    raw_body, headers = fmt.build([transfer_for(fmt)])
    tampered = raw_body.replace(b"CHO12345674", b"CHO99999999")

    fmt.verify(tampered, headers)
    assert fmt.module.parse(tampered)[0].content.startswith("CHO99999999")


@pytest.mark.parametrize("fmt", formats())
def test_a_delivery_signed_with_another_key_is_refused(fmt):
    raw_body, headers = fmt.build([transfer_for(fmt)], secret="whsec_someone_else")

    expected = "bad_token" if fmt.token_only else "bad_signature"
    assert rejection(lambda: fmt.verify(raw_body, headers)) == (401, expected)


@pytest.mark.parametrize("fmt", formats(lambda fmt: fmt.timestamped))
@pytest.mark.parametrize(
    "age", [timedelta(minutes=6), timedelta(minutes=-6)], ids=["6-min-old", "6-min-ahead"]
)
def test_a_delivery_signed_six_minutes_away_is_refused_as_stale(fmt, age):
    raw_body, headers = fmt.build([transfer_for(fmt)], now=NOW - age)

    assert rejection(lambda: fmt.verify(raw_body, headers)) == (401, "stale_timestamp")


@pytest.mark.parametrize("fmt", formats(lambda fmt: not fmt.name.startswith("payos")))
def test_a_delivery_without_its_authentication_header_is_refused(fmt):
    raw_body, headers = fmt.build([transfer_for(fmt)])

    bare = {"Content-Type": headers["Content-Type"]}
    assert rejection(lambda: fmt.verify(raw_body, bare)) == (401, "missing_signature")


def test_a_payos_delivery_without_its_in_body_signature_is_refused():
    fmt = Format(payos, "empty-strings", {})
    raw_body, headers = fmt.build([transfer_for(fmt)])
    body = json.loads(raw_body)
    del body["signature"]

    unsigned = json.dumps(body).encode()
    assert rejection(lambda: fmt.verify(unsigned, headers)) == (401, "missing_signature")


def test_a_sepay_delivery_without_its_timestamp_is_refused():
    fmt = Format(sepay, "hmac", {"mode": "hmac"})
    raw_body, headers = fmt.build([transfer_for(fmt)])
    del headers["X-SePay-Timestamp"]

    assert rejection(lambda: fmt.verify(raw_body, headers)) == (401, "missing_timestamp")


@pytest.mark.parametrize("fmt", formats(lambda fmt: fmt.name.startswith(("casso-v2", "simulator"))))
def test_a_garbled_signature_header_is_refused(fmt):
    raw_body, headers = fmt.build([transfer_for(fmt)])
    name = casso.SIGNATURE_HEADER if fmt.module is casso else simulator.SIGNATURE_HEADER

    garbled = {**headers, name: "v1=" + headers[name]}
    assert rejection(lambda: fmt.verify(raw_body, garbled)) == (401, "bad_signature_header")


@pytest.mark.parametrize("fmt", formats(lambda fmt: not fmt.name.startswith("payos")))
def test_two_spellings_of_the_signature_header_with_different_values_are_refused(fmt):
    raw_body, headers = fmt.build([transfer_for(fmt)])
    name, value = next((k, v) for k, v in headers.items() if k != "Content-Type")
    doubled = {**headers, name.lower() if name != name.lower() else name.upper(): value + "0"}

    assert rejection(lambda: fmt.verify(raw_body, doubled)) == (401, "ambiguous_header")


def test_sepay_pinned_to_hmac_refuses_an_api_key_delivery():
    fmt = Format(sepay, "apikey", {"mode": "apikey"})
    raw_body, headers = fmt.build([transfer_for(fmt)])

    assert rejection(lambda: sepay.verify(raw_body, headers, SECRET, now=NOW, mode="hmac")) == (
        401,
        "missing_signature",
    )


def test_sepay_pinned_to_api_key_accepts_only_the_apikey_scheme():
    fmt = Format(sepay, "apikey", {"mode": "apikey"})
    raw_body, _ = fmt.build([transfer_for(fmt)])

    sepay.verify(raw_body, {"Authorization": f"Apikey {SECRET}"}, SECRET, now=NOW, mode="apikey")
    assert rejection(
        lambda: sepay.verify(
            raw_body, {"Authorization": f"Bearer {SECRET}"}, SECRET, now=NOW, mode="apikey"
        )
    ) == (401, "bad_token")


def test_casso_pinned_to_v2_refuses_a_v1_token_delivery():
    fmt = Format(casso, "v1", {"version": "v1"})
    raw_body, headers = fmt.build([transfer_for(fmt)])

    assert rejection(lambda: casso.verify(raw_body, headers, SECRET, now=NOW, version="v2")) == (
        401,
        "missing_signature",
    )


# --- malformed input: 400 -------------------------------------------------------------------

MALFORMED = b'{"id": 92704, "transferAmount": 150000,'


@pytest.mark.parametrize("fmt", formats(lambda fmt: fmt.signs_raw_bytes or fmt.token_only))
def test_malformed_json_that_is_authentic_passes_verify_and_is_refused_by_parse(fmt):
    # The signature (or token) does not depend on the body being JSON, so the
    # sender is authenticated: 400, and the stored delivery is kept for inspection.
    headers = fmt.sign(MALFORMED)

    fmt.verify(MALFORMED, headers)
    assert rejection(lambda: fmt.module.parse(MALFORMED)) == (400, "malformed_json")


@pytest.mark.parametrize("fmt", formats(lambda fmt: fmt.name.startswith(("casso-v2", "payos"))))
def test_malformed_json_cannot_be_authenticated_for_casso_v2_and_payos_and_answers_400(fmt):
    # Casso v2 signs a re-serialisation of the *parsed* body and payOS keeps its
    # signature *inside* the body, so a body that is not JSON cannot be signed or
    # checked at all. §2 step 3 answers malformed JSON with 400; verify() raises it
    # before any content is read, and nothing of the body is trusted.
    _, headers = fmt.build([transfer_for(fmt)])

    assert rejection(lambda: fmt.verify(MALFORMED, headers)) == (400, "malformed_json")


@pytest.mark.parametrize("fmt", formats(lambda fmt: fmt.signs_raw_bytes))
def test_json_with_a_duplicate_key_is_refused_as_malformed(fmt):
    # Two parsers may keep different duplicates; we keep neither.
    raw_body, _ = fmt.build([transfer_for(fmt)])
    duplicate = b',"version":2}' if fmt.module is simulator else b',"transferAmount":1}'
    doubled = raw_body[:-1] + duplicate
    headers = fmt.sign(doubled)

    fmt.verify(doubled, headers)
    assert rejection(lambda: fmt.module.parse(doubled)) == (400, "malformed_json")


@pytest.mark.parametrize("fmt", formats())
def test_an_authentic_delivery_without_an_amount_is_refused_with_the_field_name(fmt):
    raw_body, _ = fmt.build([transfer_for(fmt)])
    body = json.loads(raw_body)
    del fmt.items(body)[0][fmt.amount_key]
    raw_body, headers = fmt.resign(body)

    fmt.verify(raw_body, headers)
    assert rejection(lambda: fmt.module.parse(raw_body)) == (
        400,
        f"missing_field:{fmt.amount_key}",
    )


BAD_AMOUNTS = [
    pytest.param(fmt, amount, id=f"{fmt.name}-{amount!r}")
    for fmt in FORMATS
    for amount in (0, -150000, 1500.5, "150000", True)
    # For Casso a negative amount is money out (tested below).
    if not (fmt.module is casso and amount == -150000)
]


@pytest.mark.parametrize(("fmt", "bad_amount"), BAD_AMOUNTS)
def test_an_authentic_delivery_with_a_bad_amount_is_refused(fmt, bad_amount):
    raw_body, _ = fmt.build([transfer_for(fmt)])
    body = json.loads(raw_body)
    fmt.items(body)[0][fmt.amount_key] = bad_amount
    raw_body, headers = fmt.resign(body)

    fmt.verify(raw_body, headers)
    assert rejection(lambda: fmt.module.parse(raw_body)) == (
        400,
        f"invalid_field:{fmt.amount_key}",
    )


@pytest.mark.parametrize("fmt", formats())
def test_an_integral_float_amount_is_the_same_json_number(fmt):
    raw_body, _ = fmt.build([transfer_for(fmt)])
    body = json.loads(raw_body)
    fmt.items(body)[0][fmt.amount_key] = 150000.0
    raw_body, headers = fmt.resign(body)

    fmt.verify(raw_body, headers)
    assert fmt.module.parse(raw_body)[0].amount_vnd == 150000


@pytest.mark.parametrize("fmt", formats(lambda fmt: fmt.module is not payos))
def test_an_authentic_body_that_is_not_a_json_object_is_refused(fmt):
    raw_body = b'["not", "an", "object"]'
    headers = fmt.sign(raw_body)

    fmt.verify(raw_body, headers)
    assert rejection(lambda: fmt.module.parse(raw_body)) == (400, "not_an_object")


def test_a_payos_transfer_in_another_currency_is_refused():
    fmt = Format(payos, "extra-field", {"extra_data": {"currency": "USD"}})
    raw_body, headers = fmt.build([transfer_for(fmt)])

    fmt.verify(raw_body, headers)
    assert rejection(lambda: payos.parse(raw_body)) == (400, "unsupported_currency")


# --- test calls, batches, directions ------------------------------------------------------------


TEST_CALLS = {
    # §4.1: the dashboard's "Gọi thử" sends id 0 / MA_GIAO_DICH_THU_NGHIEM.
    "casso": {"provider_transaction_id": "0", "bank_reference": casso.TEST_REFERENCE},
    # §6.3: the confirm-webhook call carries this description.
    "payos": {"content": payos.TEST_DESCRIPTION},
    # Our own format says it outright.
    "simulator": {},
}


@pytest.mark.parametrize("fmt", formats(lambda fmt: fmt.module.NAME in TEST_CALLS))
def test_provider_test_calls_are_recognised(fmt):
    test_call = transfer_for(fmt, **TEST_CALLS[fmt.module.NAME], is_test=True)
    raw_body, headers = fmt.build([test_call])

    fmt.verify(raw_body, headers)
    (parsed,) = fmt.module.parse(raw_body)
    assert parsed.is_test
    assert parsed == test_call


def test_a_payos_test_call_is_recognisable_before_verification_but_never_trusted():
    # §6.3: whether the confirm-webhook call is signed is not documented. The view
    # may answer it 2xx without processing; verify() still refuses it unsigned.
    fmt = Format(payos, "empty-strings", {})
    raw_body, headers = fmt.build([transfer_for(fmt, content=payos.TEST_DESCRIPTION, is_test=True)])
    body = json.loads(raw_body)
    body["signature"] = "0" * 64
    unsigned = json.dumps(body).encode()

    assert payos.looks_like_test_call(unsigned)
    assert not payos.looks_like_test_call(b"not json")
    assert rejection(lambda: fmt.verify(unsigned, headers)) == (401, "bad_signature")


@pytest.mark.parametrize("fmt", formats(lambda fmt: fmt.batches))
def test_a_batch_delivery_parses_every_transaction_in_order(fmt):
    sent = [
        transfer_for(fmt, 1),
        transfer_for(fmt, 2, direction="out"),
        transfer_for(fmt, 3, content="CK 12/05 Trần Văn Bình"),
    ]
    raw_body, headers = fmt.build(sent)

    fmt.verify(raw_body, headers)
    assert fmt.module.parse(raw_body) == sent


def test_a_casso_v1_delivery_as_in_the_spec_sample_parses_with_a_bare_date():
    raw_body = (
        b'{"error":0,"data":[{"id":1,"when":"2020-11-02","amount":200500,"description":"DH35",'
        b'"cusum_balance":15900500,"tid":"TF80307914","subAccId":"123456789"},'
        b'{"id":2,"when":"2020-11-02 10:20:30","amount":-50000,"description":"phi SMS",'
        b'"cusum_balance":15850500,"tid":"TF80307915","subAccId":"123456789"}]}'
    )
    headers = {"secure-token": SECRET}

    assert casso.verify(raw_body, headers, SECRET, now=NOW).scheme == "casso-v1-token"
    first, second = casso.parse(raw_body)
    assert first.bank_time == datetime(2020, 11, 2, tzinfo=VN_TZ)
    assert (first.amount_vnd, first.bank_reference, first.account_number) == (
        200500,
        "TF80307914",
        "123456789",
    )
    assert (second.direction, second.amount_vnd) == ("out", 50000)
    assert second.bank_time == datetime(2020, 11, 2, 10, 20, 30, tzinfo=VN_TZ)


@pytest.mark.parametrize("fmt", formats(lambda fmt: fmt.module is not payos))
def test_outgoing_transfers_parse_as_direction_out(fmt):
    sent = transfer_for(fmt, direction="out")
    raw_body, headers = fmt.build([sent])

    fmt.verify(raw_body, headers)
    assert fmt.module.parse(raw_body) == [sent]


def test_casso_writes_an_outgoing_transfer_as_a_negative_amount():
    fmt = Format(casso, "v2-js", {"version": "v2", "form": "js"})
    raw_body, _ = fmt.build([transfer_for(fmt, direction="out")])

    assert json.loads(raw_body)["data"]["amount"] == -150000


def test_payos_cannot_deliver_an_outgoing_transfer():
    fmt = Format(payos, "empty-strings", {})

    with pytest.raises(ValueError):
        fmt.build([transfer_for(fmt, direction="out")])


# --- Casso v2 serialisation forms (§4.3) --------------------------------------------------------


@pytest.mark.parametrize("form", casso.FORMS)
def test_casso_v2_reports_which_serialisation_form_matched(form):
    fmt = Format(casso, f"v2-{form}", {"version": "v2", "form": form})
    sent = transfer_for(fmt, content="CK 12/05 Nguyễn")
    raw_body, headers = fmt.build([sent])

    assert fmt.verify(raw_body, headers).detail == form
    assert casso.parse(raw_body) == [sent]


def test_casso_v2_forms_differ_exactly_as_the_spec_table_says():
    forms = casso.canonical_forms({"d": "CK 12/05 Nguyễn"})

    assert forms == {
        "js": '{"d":"CK 12/05 Nguyễn"}',
        "python": '{"d":"CK 12/05 Nguy\\u1ec5n"}',
        "php": '{"d":"CK 12\\/05 Nguy\\u1ec5n"}',
    }


def test_casso_v2_signs_integral_floats_the_way_javascript_writes_them():
    assert casso.canonical_forms({"runningBalance": 25000000.0})["js"] == (
        '{"runningBalance":25000000}'
    )


# --- the rejection itself -----------------------------------------------------------------------


def test_a_rejection_carries_a_machine_code_and_a_vietnamese_message():
    rejected = WebhookRejected(400, "missing_field:amount")

    assert (rejected.status, rejected.reason) == (400, "missing_field:amount")
    assert rejected.message_vi == "Thiếu trường bắt buộc «amount»."
    assert WebhookRejected(401, "stale_timestamp").message_vi.startswith("Dấu thời gian")


@pytest.mark.parametrize("fmt", formats())
def test_an_empty_secret_is_a_configuration_error_not_a_rejection(fmt):
    raw_body, headers = fmt.build([transfer_for(fmt)])

    with pytest.raises(ValueError):
        fmt.module.verify(raw_body, headers, "", now=NOW)


@pytest.mark.parametrize("fmt", formats())
def test_a_naive_clock_is_a_programming_error(fmt):
    raw_body, headers = fmt.build([transfer_for(fmt)])

    with pytest.raises(ValueError):
        fmt.module.verify(raw_body, headers, SECRET, now=NOW.replace(tzinfo=None))
