"""The VietQR codec against the spec (shared/spec/vietqr.md) and its test vectors.

Pure tests: no Django, no database.
"""

from __future__ import annotations

import binascii
import json
import os
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market40.vietqr import (
    AMOUNT_MAX_VND,
    Bank,
    VietQR,
    VietQRError,
    build_payment_qr,
    crc16,
    decode,
    encode,
    fold_purpose,
    load_bank_list,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
VECTORS_FILE = SHARED_DATA / "vietqr" / "vectors.json"
BANKS_FILE = SHARED_DATA / "vietqr" / "banks.json"
MISSING_DATA = f"shared test data not found at {SHARED_DATA} (shared/ must sit beside the repo)"

# V4 of vietqr.md §13 (ACB, 1000 đ, purpose "Chuyen tien"), used as a base for edits.
ACB = (
    "00020101021238530010A0000007270123000697041601092576788590208QRIBFTTA"
    "5303704540410005802VN62150811Chuyen tien6304BBB8"
)


def _load_vectors() -> list[dict[str, Any]] | None:
    if not VECTORS_FILE.exists():
        return None
    return json.loads(VECTORS_FILE.read_text(encoding="utf-8"))["vectors"]


def _vector_params(valid: bool) -> list[Any]:
    vectors = _load_vectors()
    if vectors is None:
        return [pytest.param(None, id="no-shared-data")]
    return [pytest.param(v, id=v["name"]) for v in vectors if v["valid"] is valid]


def _require(vector: dict[str, Any] | None) -> dict[str, Any]:
    """Skip visibly without ../shared; in CI (which always has it) fail instead."""
    if vector is None:
        if os.environ.get("CI"):
            pytest.fail(MISSING_DATA)
        pytest.skip(MISSING_DATA)
    return vector


def tlv(tag: str, value: str) -> str:
    return f"{tag}{len(value):02d}{value}"


def with_crc(body: str) -> str:
    """Close a payload: append "6304" and the CRC computed independently of the codec."""
    body += "6304"
    # UTF-8, as every implementation does (vietqr.md §6), so non-ASCII payloads can be built.
    return f"{body}{binascii.crc_hqx(body.encode('utf-8'), 0xFFFF):04X}"


def payload_from(root: list[tuple[str, str]]) -> str:
    """A payload from root objects (without 63), CRC appended."""
    return with_crc("".join(tlv(tag, value) for tag, value in root))


def merchant(
    bin_: str = "970416",
    account: str = "257678859",
    service: str | None = "QRIBFTTA",
    guid: str = "A000000727",
) -> str:
    value = tlv("00", guid) + tlv("01", tlv("00", bin_) + tlv("01", account))
    return value + (tlv("02", service) if service is not None else "")


def minimal_root(**overrides: str | None) -> list[tuple[str, str]]:
    """Root objects of a static ACB QR; an override of None drops the tag."""
    root = {"00": "01", "01": "11", "38": merchant(), "53": "704", "58": "VN"}
    root.update(overrides)  # type: ignore[arg-type]
    return [(tag, value) for tag, value in root.items() if value is not None]


def error_of(payload: str) -> VietQRError:
    with pytest.raises(VietQRError) as caught:
        decode(payload)
    return caught.value


# --------------------------------------------------------------------------- vectors


@pytest.mark.parametrize("vector", _vector_params(valid=True))
def test_every_valid_vector_decodes_to_its_listed_fields(vector: dict[str, Any] | None) -> None:
    vector = _require(vector)
    decoded = decode(vector["payload"]).to_dict()
    assert decoded.pop("extra") == {}
    assert decoded == vector["decoded"]


@pytest.mark.parametrize("vector", _vector_params(valid=True))
def test_every_valid_vector_reencodes_to_the_same_string(vector: dict[str, Any] | None) -> None:
    vector = _require(vector)
    assert encode(decode(vector["payload"])) == vector["payload"]


@pytest.mark.parametrize("vector", _vector_params(valid=True))
def test_every_valid_vector_reencodes_from_keyword_fields(vector: dict[str, Any] | None) -> None:
    vector = _require(vector)
    fields = dict(vector["decoded"])
    fields.pop("crc")
    assert encode(**fields) == vector["payload"]


@pytest.mark.parametrize("vector", _vector_params(valid=False))
def test_the_negative_vector_is_rejected_with_its_listed_error(
    vector: dict[str, Any] | None,
) -> None:
    vector = _require(vector)
    error = error_of(vector["payload"])
    assert error.code == vector["error"] == "crc_mismatch"
    assert error.tag == "63"
    assert error.expected == vector["crc_computed"]
    assert error.found == vector["decoded"]["crc"]


def test_decode_rejects_a_crc_that_does_not_match() -> None:
    error = error_of(ACB[:-1] + "5")
    assert error.code == "crc_mismatch"
    assert str(error) == "tag 63 (CRC): payload has BBB5, computed BBB8"
    assert error.message_vi == "Mã CRC không khớp: mã QR ghi BBB5, tính được BBB8"


def test_decode_accepts_a_lowercase_crc_and_keeps_it_as_given() -> None:
    decoded = decode(ACB[:-4] + "bbb8")
    assert decoded.crc == "bbb8"
    assert encode(decoded) == ACB  # re-encoding writes the CRC in uppercase


def test_decode_rejects_a_crc_that_is_not_hex() -> None:
    assert error_of(ACB[:-4] + "BBXZ").code == "bad_crc"


def test_crc16_is_ccitt_false_with_the_standard_check_value() -> None:
    assert crc16("123456789") == "29B1"


def test_a_crc_below_0x1000_keeps_its_leading_zeros() -> None:
    # Found by search; vietqr.md §6 asks for this test because "%X" would drop zeros.
    dynamic = build_payment_qr(
        bin="970416", account="257678859", amount_vnd=45_000, purpose="CHO12345674"
    )
    assert dynamic == (
        "00020101021238530010A0000007270123000697041601092576788590208QRIBFTTA"
        "53037045405450005802VN62150811CHO123456746304045A"
    )
    static = encode(bin="970423", account="0000000082")
    assert static.endswith("63040023")
    for payload in (dynamic, static):
        assert int(payload[-4:], 16) < 0x1000
        assert payload[-4:] == f"{binascii.crc_hqx(payload[:-4].encode(), 0xFFFF):04X}"
        assert decode(payload).crc == payload[-4:]


# --------------------------------------------------------------------------- structure


def test_tags_in_a_shuffled_order_decode_to_the_same_fields() -> None:
    ordered = decode(
        payload_from(
            [
                ("00", "01"),
                ("01", "12"),
                ("38", merchant()),
                ("52", "0000"),
                ("53", "704"),
                ("54", "1000"),
                ("58", "VN"),
                ("59", "CHO DONG XUAN"),
                ("60", "HA NOI"),
                ("62", tlv("01", "NPS6869") + tlv("08", "CHO12345674")),
            ]
        )
    )
    shuffled_merchant = (
        tlv("02", "QRIBFTTA")
        + tlv("01", tlv("01", "257678859") + tlv("00", "970416"))
        + tlv("00", "A000000727")
    )
    middle = [
        ("62", tlv("08", "CHO12345674") + tlv("01", "NPS6869")),
        ("58", "VN"),
        ("38", shuffled_merchant),
        ("60", "HA NOI"),
        ("54", "1000"),
        ("01", "12"),
        ("59", "CHO DONG XUAN"),
        ("53", "704"),
        ("52", "0000"),
    ]
    random.Random(40).shuffle(middle)
    shuffled = decode(payload_from([("00", "01"), *middle]))
    assert shuffled.to_dict() | {"crc": None} == ordered.to_dict() | {"crc": None}
    assert list(shuffled.additional_data or {}) == ["08", "01"]  # payload order kept
    assert encode(shuffled) == encode(ordered)  # the encoder sorts every level


def test_unknown_tags_are_kept_and_reencoded() -> None:
    payload = payload_from(
        [
            ("00", "01"),
            ("01", "11"),
            ("15", "UNIONPAY123"),
            ("38", merchant() + tlv("07", "X")),
            ("53", "704"),
            ("58", "VN"),
            ("64", tlv("00", "vi") + tlv("01", "CHO DONG XUAN")),
            ("80", "123"),
            ("99", "ANYTHING"),
        ]
    )
    decoded = decode(payload)
    assert decoded.extra == {
        "38/07": "X",
        "15": "UNIONPAY123",
        "64": "0002vi0113CHO DONG XUAN",
        "80": "123",
        "99": "ANYTHING",
    }
    assert encode(decoded) == payload


def test_unknown_sub_tags_of_the_beneficiary_template_are_kept() -> None:
    beneficiary = tlv("00", "970416") + tlv("01", "257678859") + tlv("05", "")
    payload = payload_from(minimal_root(**{"38": tlv("00", "A000000727") + tlv("01", beneficiary)}))
    decoded = decode(payload)
    assert decoded.extra == {"38/01/05": ""}
    assert decoded.service is None
    assert decoded.to_dict()["extra"] == {"38/01/05": ""}


def test_a_zero_length_sub_value_inside_62_is_tolerated_and_kept() -> None:
    payload = payload_from(minimal_root(**{"62": tlv("01", "NPS6869") + "0800"}))
    decoded = decode(payload)
    assert decoded.additional_data == {"01": "NPS6869", "08": ""}
    assert decoded.purpose == ""
    assert encode(decoded) == payload


def test_a_zero_length_root_value_is_rejected() -> None:
    error = error_of(payload_from(minimal_root()).replace("5802VN", "5802VN5900"))
    assert error.code == "empty_value"
    assert error.tag == "59"


def test_a_nested_length_overrun_names_the_tag_and_the_expected_and_found_lengths() -> None:
    # 38/01/01 declares 13 characters but its container 38/01 holds only 9 after it.
    beneficiary = tlv("00", "970416") + "0113" + "257678859"
    payload = payload_from(minimal_root(**{"38": tlv("00", "A000000727") + tlv("01", beneficiary)}))
    error = error_of(payload)
    assert error.code == "length_overrun"
    assert error.tag == "38/01/01"
    assert (error.expected, error.found) == ("13", "9")
    assert "38/01/01" in str(error) and "expected 13" in str(error) and "found 9" in str(error)
    assert "38/01/01" in error.message_vi and "13" in error.message_vi


def test_a_root_length_overrun_is_reported_before_the_crc() -> None:
    # 62 declares 40 characters; only 23 remain in the payload after its header.
    error = error_of(ACB.replace("62150811", "62400811"))
    assert (error.code, error.tag) == ("length_overrun", "62")
    assert (error.expected, error.found) == ("40", "23")


def test_a_length_field_must_be_two_digits() -> None:
    error = error_of(with_crc("000201010211" + "38" + "5A" + merchant()[:-2]))
    assert error.code == "bad_length"
    assert error.tag == "38"


def test_a_truncated_object_inside_a_template_is_reported() -> None:
    payload = payload_from(minimal_root(**{"62": tlv("08", "CHO1") + "08"}))
    error = error_of(payload)
    assert (error.code, error.tag) == ("truncated", "62")


def test_a_duplicated_tag_is_rejected() -> None:
    payload = payload_from([*minimal_root(), ("53", "704")])
    assert error_of(payload).code == "duplicate_tag"


def test_tag_00_must_come_first_and_tag_63_last() -> None:
    root = minimal_root()
    assert error_of(payload_from([root[1], root[0], *root[2:]])).code == "bad_order"
    body = "".join(tlv(t, v) for t, v in root)
    crc_first = with_crc(body)
    moved = body[:6] + crc_first[-8:] + body[6:]  # 63 right after 00
    error = error_of(moved)
    assert (error.code, error.tag) == ("bad_order", "63")


def test_surrounding_whitespace_is_stripped_and_nothing_else() -> None:
    assert decode(f"  {ACB}\r\n").crc == "BBB8"
    assert error_of(ACB.replace("Chuyen tien", "Chuyen\ttien")).code == "non_printable"


@pytest.mark.parametrize(
    ("drop", "tag"),
    [("01", "01"), ("38", "38"), ("53", "53"), ("58", "58")],
)
def test_a_missing_mandatory_root_tag_is_named(drop: str, tag: str) -> None:
    error = error_of(payload_from(minimal_root(**{drop: None})))
    assert (error.code, error.tag) == ("missing_tag", tag)
    assert f"missing mandatory tag {tag}" in str(error)
    assert f"Thiếu trường bắt buộc {tag}" in error.message_vi


def test_a_payload_without_crc_is_rejected() -> None:
    body = "".join(tlv(t, v) for t, v in minimal_root())
    error = error_of(body)
    assert (error.code, error.tag) == ("missing_tag", "63")


@pytest.mark.parametrize(
    ("merchant_value", "tag"),
    [
        (tlv("01", tlv("00", "970416") + tlv("01", "1")), "38/00"),
        (tlv("00", "A000000727"), "38/01"),
        (tlv("00", "A000000727") + tlv("01", tlv("01", "257678859")), "38/01/00"),
        (tlv("00", "A000000727") + tlv("01", tlv("00", "970416")), "38/01/01"),
    ],
)
def test_a_missing_mandatory_sub_tag_is_named(merchant_value: str, tag: str) -> None:
    error = error_of(payload_from(minimal_root(**{"38": merchant_value})))
    assert (error.code, error.tag) == ("missing_tag", tag)


@pytest.mark.parametrize(
    ("overrides", "code", "tag"),
    [
        ({"38": merchant(guid="A000000775")}, "bad_guid", "38/00"),
        ({"53": "840"}, "bad_currency", "53"),
        ({"58": "US"}, "bad_country", "58"),
        ({"00": "02"}, "bad_format", "00"),
        ({"01": "13"}, "bad_initiation", "01"),
        ({"38": merchant(bin_="97041")}, "bad_bin", "38/01/00"),
        ({"38": merchant(account="2576-78859")}, "bad_account", "38/01/01"),
    ],
)
def test_decode_rejects_wrong_mandatory_values(
    overrides: dict[str, str], code: str, tag: str
) -> None:
    error = error_of(payload_from(minimal_root(**overrides)))
    assert (error.code, error.tag) == (code, tag)
    assert "expected" in str(error)


def test_a_wrong_currency_says_what_was_expected_and_found() -> None:
    error = error_of(payload_from(minimal_root(**{"53": "840"})))
    assert str(error) == "tag 53 (currency): expected 704 (VND), found '840'"
    assert (error.expected, error.found) == ("704 (VND)", "840")
    assert error.message_vi == "Trường 53 (mã tiền tệ) phải là 704 (VND), nhận được '840'"


def test_decode_rejects_non_ascii_characters() -> None:
    # vietqr.md §8: Python counts code points, JS UTF-16 units, vietqr-ts UTF-8 bytes.
    payload = payload_from(minimal_root(**{"62": tlv("08", "Chuyển tiền")}))
    error = error_of(payload)
    assert (error.code, error.tag, error.found) == ("non_ascii", "62", "ể")


def test_encode_rejects_non_ascii_characters() -> None:
    with pytest.raises(VietQRError) as caught:
        encode(bin="970416", account="257678859", additional_data={"08": "Chuyển tiền"})
    assert (caught.value.code, caught.value.tag) == ("non_ascii", "62/08")
    with pytest.raises(VietQRError) as caught:
        encode(bin="970416", account="25767885９")  # a full-width digit
    assert caught.value.code == "bad_account"


# --------------------------------------------------------------------------- amount


@pytest.mark.parametrize("amount", ["0", "000", "-1000", "50.000", "50 000", "1000.50", "1e3"])
def test_decode_rejects_an_amount_that_is_not_a_positive_whole_number(amount: str) -> None:
    error = error_of(payload_from(minimal_root(**{"01": "12", "54": amount})))
    assert (error.code, error.tag) == ("bad_amount", "54")


def test_decode_accepts_a_single_trailing_dot_in_the_amount() -> None:
    decoded = decode(payload_from(minimal_root(**{"01": "12", "54": "50000."})))
    assert decoded.amount == "50000."
    assert decoded.amount_vnd == 50_000


@pytest.mark.parametrize("amount", ["0", "-1", "500000000", "1.5", ""])
def test_encode_rejects_amounts_outside_one_to_499_999_999(amount: str) -> None:
    with pytest.raises(VietQRError) as caught:
        encode(bin="970416", account="257678859", amount=amount)
    assert caught.value.code in {"bad_amount", "empty_value"}


@pytest.mark.parametrize("amount_vnd", [0, -1, -50_000, 500_000_000, 10**12])
def test_build_payment_qr_rejects_amounts_outside_one_to_499_999_999(amount_vnd: int) -> None:
    with pytest.raises(VietQRError) as caught:
        build_payment_qr(bin="970416", account="257678859", amount_vnd=amount_vnd, purpose="X")
    assert caught.value.code == "bad_amount"
    assert caught.value.tag == "54"


def test_the_largest_allowed_amount_is_accepted() -> None:
    payload = build_payment_qr(
        bin="970416", account="257678859", amount_vnd=AMOUNT_MAX_VND, purpose="CHO12345674"
    )
    assert decode(payload).amount_vnd == 499_999_999


def test_the_point_of_initiation_follows_the_amount_unless_given() -> None:
    assert decode(encode(bin="970416", account="1", amount="1000")).point_of_initiation == "12"
    assert decode(encode(bin="970416", account="1")).point_of_initiation == "11"
    forced = encode(bin="970416", account="1", amount="1000", point_of_initiation="11")
    assert decode(forced).point_of_initiation == "11"
    with pytest.raises(VietQRError) as caught:
        encode(bin="970416", account="1", point_of_initiation="10")
    assert caught.value.code == "bad_initiation"


# --------------------------------------------------------------------------- BIN, account


@pytest.fixture(scope="module")
def banks() -> dict[str, Bank]:
    if not BANKS_FILE.exists():
        _require(None)
    return load_bank_list(BANKS_FILE)


def test_a_bin_missing_from_the_bank_list_is_rejected(banks: dict[str, Bank]) -> None:
    with pytest.raises(VietQRError) as caught:
        build_payment_qr(
            bin="970499", account="1234", amount_vnd=1000, purpose="CHO1", bank_bins=banks
        )
    assert (caught.value.code, caught.value.tag) == ("unknown_bin", "38/01/00")
    assert caught.value.message_vi == "Mã BIN 970499 không có trong danh sách ngân hàng"


def test_a_listed_bin_outside_9704_is_accepted(banks: dict[str, Bank]) -> None:
    # vietqr.md §9: MoMo (971025) and others are routed under non-9704 IDs.
    payload = build_payment_qr(
        bin="971025", account="PSP0123456789", amount_vnd=1000, purpose="CHO1", bank_bins=banks
    )
    assert decode(payload).bin == "971025"
    assert banks["971025"].short_name == "MoMo"


def test_bank_membership_decides_not_a_9704_prefix() -> None:
    listed = {"971025", "963388"}
    for bin_ in sorted(listed):
        payload = build_payment_qr(
            bin=bin_, account="1234", amount_vnd=None, purpose="SAP1", bank_bins=listed
        )
        assert decode(payload).bin == bin_
    with pytest.raises(VietQRError) as caught:
        build_payment_qr(
            bin="970416", account="1234", amount_vnd=None, purpose="SAP1", bank_bins=listed
        )
    assert caught.value.code == "unknown_bin"


@pytest.mark.parametrize("bin_", ["97041", "9704160", "97041A", "٩٧٠٤١٦"])
def test_a_bin_must_be_six_ascii_digits(bin_: str) -> None:
    with pytest.raises(VietQRError) as caught:
        encode(bin=bin_, account="257678859")
    assert caught.value.code == "bad_bin"


@pytest.mark.parametrize("account", ["2576 78859", "", "12345678901234567890", "0011-0019", "ĐA1"])
def test_an_account_must_be_1_to_19_letters_or_digits(account: str) -> None:
    with pytest.raises(VietQRError) as caught:
        build_payment_qr(bin="970416", account=account, amount_vnd=None, purpose="CHO1")
    assert (caught.value.code, caught.value.tag) == ("bad_account", "38/01/01")


def test_alphanumeric_virtual_accounts_are_accepted() -> None:
    payload = encode(bin="970454", account="VQRQACUZG4230")
    assert decode(payload).account == "VQRQACUZG4230"


def test_the_service_code_must_be_a_napas247_transfer() -> None:
    with pytest.raises(VietQRError) as caught:
        encode(bin="970416", account="1", service="QRPUSH")
    assert caught.value.code == "bad_service"
    card = decode(encode(bin="970403", account="9704031101234567", service="QRIBFTTC"))
    assert card.service == "QRIBFTTC"


def test_the_bank_list_keys_by_bin_and_keeps_the_renamed_bank(banks: dict[str, Bank]) -> None:
    assert banks["970416"] == Bank(
        bin="970416",
        code="ACB",
        short_name="ACB",
        name="Ngân hàng TMCP Á Châu",
        transfer_supported=True,
    )
    assert banks["970414"].code == "MBV"  # Oceanbank -> MBV (vietqr.md §9)
    assert banks["970406"].code == "VIKKI"  # DongA -> Vikki
    assert all(len(b) == 6 and b.isdigit() for b in banks)


# --------------------------------------------------------------------------- limits


def test_encode_rejects_a_purpose_longer_than_25_characters() -> None:
    with pytest.raises(VietQRError) as caught:
        encode(bin="970416", account="1", additional_data={"08": "X" * 26})
    assert (caught.value.code, caught.value.tag) == ("too_long", "62/08")


def test_encode_rejects_an_empty_additional_data_template() -> None:
    with pytest.raises(VietQRError) as caught:
        encode(bin="970416", account="1", additional_data={})
    assert caught.value.code == "empty_template"


def test_encode_rejects_a_template_longer_than_99_characters() -> None:
    additional = {f"{n:02d}": "X" * 25 for n in range(1, 5)}  # 4 × 29 = 116 > 99
    with pytest.raises(VietQRError) as caught:
        encode(bin="970416", account="1", additional_data=additional)
    assert (caught.value.code, caught.value.tag) == ("too_long", "62")


def test_encode_rejects_extra_keys_that_shadow_a_field() -> None:
    for key in ("54", "38/02", "38/01/00"):
        with pytest.raises(VietQRError) as caught:
            encode(bin="970416", account="1", extra={key: "1"})
        assert caught.value.code == "duplicate_tag"


def test_encode_takes_a_record_or_keywords_but_not_both() -> None:
    record = VietQR(bin="970416", account="257678859")
    assert encode(record) == encode(bin="970416", account="257678859")
    with pytest.raises(TypeError):
        encode(record, bin="970416")  # type: ignore[call-arg]


def test_errors_are_value_errors_with_english_and_vietnamese_messages() -> None:
    error = error_of("")
    assert isinstance(error, ValueError)
    assert (error.code, str(error), error.message_vi) == (
        "empty_payload",
        "empty payload",
        "Mã QR trống",
    )


# --------------------------------------------------------------------------- purpose


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Đông Xuân – phí kiốt A12/T05", "DONG XUAN PHI KIOT A12 T0"),  # vietqr.md §8
        ("ủng hộ lũ lụt", "UNG HO LU LUT"),  # vector V6's source text
        ("INV/TEST/0001", "INV TEST 0001"),
        ("  CHO12345674   phí  T05 ", "CHO12345674 PHI T05"),
        ("đường Điện Biên Phủ", "DUONG DIEN BIEN PHU"),
        ("Chợ Bến Thành, sạp 12-B", "CHO BEN THANH SAP 12 B"),
    ],
)
def test_fold_purpose_follows_the_spec_rules(text: str, folded: str) -> None:
    assert fold_purpose(text) == folded


def test_fold_purpose_trims_after_cutting() -> None:
    # The cut lands right after a word: the trailing space must go.
    assert fold_purpose("CHO12345674 PHI THANG 05 NAM 2025") == "CHO12345674 PHI THANG 05"
    assert fold_purpose("CHO12345674 PHI THANG 05 NAM 2025", limit=19) == "CHO12345674 PHI THA"


@pytest.mark.parametrize("text", ["", "   ", "–/–", "!!!", "\u0301\u0303"])
def test_a_purpose_that_folds_to_nothing_is_an_error(text: str) -> None:
    with pytest.raises(VietQRError) as caught:
        fold_purpose(text)
    assert (caught.value.code, caught.value.tag) == ("empty_purpose", "62/08")


def test_build_payment_qr_puts_the_folded_purpose_in_62_08() -> None:
    payload = build_payment_qr(
        bin="970416", account="257678859", amount_vnd=150_000, purpose="CHO12345674 phí T05"
    )
    decoded = decode(payload)
    assert decoded.purpose == "CHO12345674 PHI T05"
    assert decoded.additional_data == {"08": "CHO12345674 PHI T05"}
    assert (decoded.point_of_initiation, decoded.amount) == ("12", "150000")
    assert decoded.mcc is decoded.merchant_name is decoded.city is None  # minimal form (§3)


def test_build_payment_qr_makes_a_static_qr_without_an_amount() -> None:
    decoded = decode(
        build_payment_qr(bin="970416", account="257678859", amount_vnd=None, purpose="SAP12345678")
    )
    assert (decoded.point_of_initiation, decoded.amount, decoded.amount_vnd) == ("11", None, None)


# --------------------------------------------------------------------------- property

_PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
_ALNUM = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


@st.composite
def valid_fields(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "bin": draw(st.text(st.sampled_from("0123456789"), min_size=6, max_size=6)),
        "account": draw(st.text(_ALNUM, min_size=1, max_size=19)),
        "service": draw(st.sampled_from(["QRIBFTTA", "QRIBFTTC"])),
    }
    amount = draw(st.none() | st.integers(1, AMOUNT_MAX_VND))
    if amount is not None:
        fields["amount"] = str(amount)
    if draw(st.booleans()):
        fields["mcc"] = draw(st.text(st.sampled_from("0123456789"), min_size=4, max_size=4))
    if draw(st.booleans()):
        fields["merchant_name"] = draw(st.text(_PRINTABLE, min_size=1, max_size=25))
    if draw(st.booleans()):
        fields["city"] = draw(st.text(_PRINTABLE, min_size=1, max_size=15))
    additional = {}
    if draw(st.booleans()):
        additional["01"] = draw(st.text(_PRINTABLE, min_size=0, max_size=25))
    if draw(st.booleans()):
        additional["08"] = draw(st.text(_PRINTABLE, min_size=0, max_size=25))
    if additional:
        fields["additional_data"] = additional
    if draw(st.booleans()):
        fields["extra"] = {"80": draw(st.text(_PRINTABLE, min_size=1, max_size=20))}
    return fields


@settings(max_examples=300, deadline=None)
@given(valid_fields())
def test_encode_then_decode_round_trips_any_valid_fields(fields: dict[str, Any]) -> None:
    payload = encode(**fields)
    decoded = decode(payload)
    expected = VietQR(**fields).to_dict() | {
        "point_of_initiation": "11" if "amount" not in fields else "12",
        "crc": payload[-4:],
    }
    assert decoded.to_dict() == expected
    assert encode(decoded) == payload
