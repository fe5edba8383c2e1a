import itertools

from hypothesis import given
from hypothesis import strategies as st

from market40.paymentcode import CodeKind, CodeScheme, damm_digit, damm_valid, find_codes

SCHEME = CodeScheme()


def test_the_damm_digit_matches_the_specs_worked_example():
    # vietqr.md §12.2: body 1234567 → Damm digit 1.
    assert damm_digit("1234567") == "1"


def test_every_single_substitution_is_detected():
    code = SCHEME.make(CodeKind.DEMAND, 123_456_789)
    digits = code[3:]
    for position, replacement in itertools.product(range(len(digits)), "0123456789"):
        if digits[position] == replacement:
            continue
        mutated = digits[:position] + replacement + digits[position + 1 :]
        assert not damm_valid(mutated), mutated


def test_every_adjacent_transposition_is_detected():
    for number in (10_293_847, 900_000_001, 123_456_789, 55_667_788):
        digits = SCHEME.make(CodeKind.DEMAND, number)[3:]
        for i in range(len(digits) - 1):
            if digits[i] == digits[i + 1]:
                continue
            swapped = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
            assert not damm_valid(swapped), swapped


def test_demand_and_stall_codes_have_their_own_shape():
    demand = SCHEME.make(CodeKind.DEMAND, 42)
    stall = SCHEME.make(CodeKind.STALL, 42)
    assert demand.startswith("CHO") and len(demand) == 13
    assert stall.startswith("SAP") and len(stall) == 11
    assert SCHEME.parse(demand) == (CodeKind.DEMAND, 42)
    assert SCHEME.parse(stall) == (CodeKind.STALL, 42)


CODE = SCHEME.make(CodeKind.DEMAND, 31_415_926)


def _found(text):
    return [c.code for c in find_codes(text, SCHEME).codes]


def test_codes_are_found_in_bank_mangled_text():
    samples = [
        f"MBVCB.3278907687.123456.{CODE}.CT tu 0071000 NGUYEN VAN A toi 1023 BQL CHO",
        f"{CODE.lower()} thanh toan phi thang 5",
        f"{CODE[:6]} {CODE[6:]}",
        f"{CODE[:4]}.{CODE[4:9]}-{CODE[9:]}",
        f"THANHTOAN{CODE}FT25308710231543",
        f"123456.080625.105518.{CODE} chuyen FT24255276428461",
        f"{CODE} GD 464434-080625 10:55:18",
        f"Chuyển tiền {CODE} phí chợ",
    ]
    for text in samples:
        assert _found(text) == [CODE], text


def test_a_near_miss_never_matches_and_is_reported():
    wrong = CODE[:-1] + str((int(CODE[-1]) + 1) % 10)
    search = find_codes(f"thanh toan {wrong}", SCHEME)
    assert search.codes == ()
    assert search.near_misses == (wrong,)


def test_a_bare_long_number_is_never_a_code():
    assert _found("MBVCB.3278907687 FT25308710231543 0312345678901") == []


def test_several_codes_come_back_in_the_order_written():
    other = SCHEME.make(CodeKind.DEMAND, 27_182_818)
    stall = SCHEME.make(CodeKind.STALL, 1_234)
    assert _found(f"{other} va {CODE} {stall}") == [other, CODE, stall]
    assert _found(f"{CODE} {CODE}") == [CODE]


@given(st.integers(min_value=1, max_value=999_999_999), st.text(max_size=30))
def test_any_demand_code_is_found_with_noise_around_it(number, noise):
    code = SCHEME.make(CodeKind.DEMAND, number)
    found = _found(f"MBVCB.3278907687.{code}.{noise}")
    assert found[0] == code
