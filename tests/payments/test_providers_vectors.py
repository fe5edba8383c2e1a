"""The test vectors of webhooks.md §8, byte for byte. Pure: no Django."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from payments.providers import casso, payos, sepay
from payments.providers.base import VN_TZ, WebhookRejected

# --- §8.1 Casso v2 official vector ---------------------------------------------------------

CASSO_KEY = "mgExMrjj4i7a1p8Cs6LmFbpCd8lbw4sSX4LZXPag7TKazeIogtR90tvWYTkwQbvs"
CASSO_T = 1727948258788
CASSO_V1 = (
    "ed0a4bd2e826d5cb69988cdb141e6c1a080e21f3b57eb72cd78192220042b9e7"
    "dde0868fc667faea8e224900fa7904e7c88dfa098032fb2d6b6996856e8b7ff3"
)
CASSO_HEADERS = {"X-Casso-Signature": f"t={CASSO_T},v1={CASSO_V1}"}
# §4.1, one line, as Casso's sample writes it.
CASSO_BODY = (
    b'{"error":0,"data":{"id":0,"reference":"MA_GIAO_DICH_THU_NGHIEM",'
    b'"description":"giao dich thu nghiem","amount":599000,"runningBalance":25000000,'
    b'"transactionDateTime":"2024-10-03 15:06:37","accountNumber":"88888888",'
    b'"bankName":"VPBank","bankAbbreviation":"VPB","virtualAccountNumber":"",'
    b'"virtualAccountName":"","counterAccountName":"NGUYEN VAN A",'
    b'"counterAccountNumber":"8888888888","counterAccountBankId":"970415",'
    b'"counterAccountBankName":"VietinBank"}}'
)
CASSO_NOW = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=CASSO_T)


def test_casso_official_vector_verifies_in_the_javascript_form_first():
    result = casso.verify(CASSO_BODY, CASSO_HEADERS, CASSO_KEY, now=CASSO_NOW)

    assert result.scheme == "casso-v2"
    assert result.detail == "js"
    assert result.signed_at == CASSO_NOW


def test_casso_official_vector_matches_in_all_three_serialisation_forms_because_it_is_ascii():
    forms = casso.canonical_forms(json.loads(CASSO_BODY))

    for canonical in forms.values():
        message = f"{CASSO_T}.{canonical}".encode()
        assert hmac.new(CASSO_KEY.encode(), message, hashlib.sha512).hexdigest() == CASSO_V1


def test_casso_official_vector_does_not_match_when_only_data_is_signed():
    data = json.loads(CASSO_BODY)["data"]
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    message = f"{CASSO_T}.{canonical}".encode()

    assert hmac.new(CASSO_KEY.encode(), message, hashlib.sha512).hexdigest() != CASSO_V1


def test_casso_official_vector_is_accepted_whatever_the_header_name_case():
    headers = {"x-casso-signature": CASSO_HEADERS["X-Casso-Signature"]}

    assert casso.verify(CASSO_BODY, headers, CASSO_KEY, now=CASSO_NOW).detail == "js"


def test_casso_official_vector_is_stale_without_an_injected_clock():
    with pytest.raises(WebhookRejected) as rejected:
        casso.verify(CASSO_BODY, CASSO_HEADERS, CASSO_KEY, now=CASSO_NOW + timedelta(minutes=6))

    assert (rejected.value.status, rejected.value.reason) == (401, "stale_timestamp")


def test_casso_official_vector_parses_as_the_dashboard_test_call():
    (transfer,) = casso.parse(CASSO_BODY)

    assert transfer.is_test
    assert transfer.provider_transaction_id == "0"
    assert transfer.direction == "in"
    assert transfer.amount_vnd == 599000
    assert transfer.content == "giao dich thu nghiem"
    assert transfer.bank_reference == "MA_GIAO_DICH_THU_NGHIEM"
    assert transfer.running_balance_vnd == 25000000
    assert transfer.bank_time == datetime(2024, 10, 3, 15, 6, 37, tzinfo=VN_TZ)
    assert transfer.account_number == "88888888"
    assert transfer.sub_account is None
    assert (transfer.counter_account, transfer.counter_name, transfer.counter_bank) == (
        "8888888888",
        "NGUYEN VAN A",
        "VietinBank",
    )


def test_casso_readme_second_example_does_not_verify_as_the_spec_warns():
    # §4.3: the g3oZ95… example of the same repository was edited after signing.
    body = json.dumps(
        {
            "error": 0,
            "data": {
                "id": 218897,
                "reference": "FT24364030863634",
                "description": "hoi lai 100 bao mun dua",
                "amount": 16775000,
                "runningBalance": 16775000,
                "transactionDateTime": "2024-12-23 07:00:00",
                "accountNumber": "123456789",
                "bankName": "MBBank",
                "bankAbbreviation": "MBB",
                "virtualAccountNumber": "",
                "virtualAccountName": "",
                "counterAccountName": "",
                "counterAccountNumber": "",
                "counterAccountBankId": "",
                "counterAccountBankName": "",
            },
        }
    ).encode()
    headers = {
        "X-Casso-Signature": "t=1734924830020,v1=6cec920aa3352341d3710d4ce89de3c73481739bdf240c"
        "89a440fb988bfb113f87be23dc75ad16982f6fbdb65553b73f4e51e73ed4764928f0401cd4a949a4c8"
    }
    now = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=1734924830020)
    key = "g3oZ950pJQ4k6REhOPGkx37RsXgWz9QJ9RCAZ7i0yagLF32XQZtemQ6r3JIo4MCr"

    with pytest.raises(WebhookRejected) as rejected:
        casso.verify(body, headers, key, now=now)

    assert rejected.value.reason == "bad_signature"


# --- §8.2 payOS documentation vector -------------------------------------------------------

PAYOS_KEY = "1a54716c8f0efb2744fb28b6e38b25da7f67a925d98bc1c18bd8faaecadd7675"
PAYOS_SIGNATURE = "412e915d2871504ed31be63c8f62a149a4410d34c4c42affc9006ef9917eaa03"
PAYOS_DATA = {
    "orderCode": 123,
    "amount": 3000,
    "description": "VQRIO123",
    "accountNumber": "12345678",
    "reference": "TF230204212323",
    "transactionDateTime": "2023-02-04 18:25:00",
    "currency": "VND",
    "paymentLinkId": "124c33293c43417ab7879e14c8d9eb18",
    "code": "00",
    "desc": "Thành công",
    "counterAccountBankId": "",
    "counterAccountBankName": "",
    "counterAccountName": "",
    "counterAccountNumber": "",
    "virtualAccountName": "",
    "virtualAccountNumber": "",
}
PAYOS_SIGNED_STRING = (
    "accountNumber=12345678&amount=3000&code=00&counterAccountBankId=&counterAccountBankName="
    "&counterAccountName=&counterAccountNumber=&currency=VND&desc=Thành công"
    "&description=VQRIO123&orderCode=123&paymentLinkId=124c33293c43417ab7879e14c8d9eb18"
    "&reference=TF230204212323&transactionDateTime=2023-02-04 18:25:00"
    "&virtualAccountName=&virtualAccountNumber="
)
PAYOS_NOW = datetime(2023, 2, 4, 18, 25, tzinfo=VN_TZ)


def payos_body(data: dict, *, signature: str = PAYOS_SIGNATURE, success: bool = True) -> bytes:
    body = {"code": "00", "desc": "success", "success": success, "data": data}
    body["signature"] = signature
    return json.dumps(body, ensure_ascii=False).encode()


def payos_verdict(raw_body: bytes) -> str:
    try:
        payos.verify(raw_body, {}, PAYOS_KEY, now=PAYOS_NOW)
    except WebhookRejected as rejected:
        return rejected.reason
    return "ok"


def test_payos_documented_string_is_built_without_url_encoding():
    assert payos.data_to_sign(PAYOS_DATA) == PAYOS_SIGNED_STRING


def test_payos_documentation_vector_gives_the_documented_signature():
    assert payos.signature_for_data(PAYOS_DATA, PAYOS_KEY) == PAYOS_SIGNATURE


def test_payos_documentation_body_verifies_and_parses():
    raw_body = payos_body(PAYOS_DATA)

    assert payos.verify(raw_body, {}, PAYOS_KEY, now=PAYOS_NOW).scheme == "payos-checksum"
    (transfer,) = payos.parse(raw_body)
    assert transfer.provider_transaction_id == "124c33293c43417ab7879e14c8d9eb18:TF230204212323"
    assert transfer.provider_code == "123"
    assert transfer.amount_vnd == 3000
    assert transfer.content == "VQRIO123"
    assert transfer.bank_reference == "TF230204212323"
    assert transfer.bank_time == datetime(2023, 2, 4, 18, 25, tzinfo=VN_TZ)
    assert transfer.counter_name is None
    assert not transfer.is_test


def test_payos_null_account_fields_give_the_same_signature_as_empty_strings():
    data = dict(PAYOS_DATA)
    for key in (
        "counterAccountBankId",
        "counterAccountBankName",
        "counterAccountName",
        "counterAccountNumber",
        "virtualAccountName",
        "virtualAccountNumber",
    ):
        data[key] = None

    assert payos_verdict(payos_body(data)) == "ok"


def test_payos_key_order_of_data_does_not_matter():
    reversed_data = dict(reversed(list(PAYOS_DATA.items())))

    assert payos_verdict(payos_body(reversed_data)) == "ok"


@pytest.mark.parametrize(
    ("key", "value"),
    [("amount", 30000), ("description", "VQRIO124"), ("desc", "Thanh cong"), ("code", "01")],
)
def test_payos_any_changed_value_fails(key, value):
    assert payos_verdict(payos_body({**PAYOS_DATA, key: value})) == "bad_signature"


def test_payos_outer_success_is_unsigned_and_does_not_change_the_verdict():
    assert payos_verdict(payos_body(PAYOS_DATA, success=False)) == "ok"


def test_payos_signed_transfer_whose_data_code_is_not_00_is_refused_by_parse():
    data = {**PAYOS_DATA, "code": "01"}
    raw_body = payos_body(data, signature=payos.signature_for_data(data, PAYOS_KEY))

    assert payos_verdict(raw_body) == "ok"
    with pytest.raises(WebhookRejected) as rejected:
        payos.parse(raw_body)
    assert (rejected.value.status, rejected.value.reason) == (400, "unsuccessful_transfer")


# --- §8.3 SePay self-computed example (NOT issued by SePay) ------------------------------------

SEPAY_SECRET = "whsec_test_market40"
SEPAY_TIMESTAMP = "1711350157"
SEPAY_SIGNATURE = "sha256=d287b05ad6a289c136eaa78ca3faa032b1d7d55c52dba739cf5dcdaf993d56ac"
SEPAY_BODY = (
    b'{"id":92704,"gateway":"Vietcombank","transactionDate":"2023-03-25 14:02:37",'
    b'"accountNumber":"0123499999","code":null,"content":"CHO4 DEM0001 TT KIOT A12 T03",'
    b'"transferType":"in","transferAmount":2277000,"accumulated":19077000,"subAccount":null,'
    b'"referenceCode":"MBVCB.3278907687","description":""}'
)
SEPAY_NOW = datetime.fromtimestamp(int(SEPAY_TIMESTAMP), UTC)


def test_sepay_example_is_what_our_signer_produces():
    headers = sepay.sign(SEPAY_BODY, SEPAY_SECRET, now=SEPAY_NOW)

    assert headers["X-SePay-Timestamp"] == SEPAY_TIMESTAMP
    assert headers["X-SePay-Signature"] == SEPAY_SIGNATURE


def test_sepay_example_verifies_and_parses():
    headers = {"X-SePay-Timestamp": SEPAY_TIMESTAMP, "X-SePay-Signature": SEPAY_SIGNATURE}

    result = sepay.verify(SEPAY_BODY, headers, SEPAY_SECRET, now=SEPAY_NOW)

    assert result.scheme == "hmac-sha256"
    (transfer,) = sepay.parse(SEPAY_BODY)
    assert transfer.provider_transaction_id == "92704"
    assert transfer.direction == "in"
    assert transfer.amount_vnd == 2277000
    assert transfer.content == "CHO4 DEM0001 TT KIOT A12 T03"
    assert transfer.description is None
    assert transfer.bank_reference == "MBVCB.3278907687"
    assert transfer.account_number == "0123499999"
    assert transfer.running_balance_vnd == 19077000
    assert transfer.provider_code is None
    assert transfer.bank_time == datetime(2023, 3, 25, 14, 2, 37, tzinfo=VN_TZ)


def test_sepay_example_with_one_byte_changed_fails():
    headers = {"X-SePay-Timestamp": SEPAY_TIMESTAMP, "X-SePay-Signature": SEPAY_SIGNATURE}
    tampered = SEPAY_BODY.replace(b"2277000", b"2277001")

    with pytest.raises(WebhookRejected) as rejected:
        sepay.verify(tampered, headers, SEPAY_SECRET, now=SEPAY_NOW)

    assert (rejected.value.status, rejected.value.reason) == (401, "bad_signature")
