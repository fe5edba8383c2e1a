"""Amount in words (spec einvoice.md §9): worked examples, edge cases and the real invoices."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from invoicing.words import MAX_AMOUNT_VND, amount_in_words, normalise_words_for_comparison

REPO_ROOT = Path(__file__).resolve().parents[2]
REAL_DIR = REPO_ROOT.parent / "shared" / "data" / "einvoice" / "real"
REAL_FILES = sorted(REAL_DIR.glob("*.xml")) if REAL_DIR.is_dir() else []

# §9.2 worked examples (house style).
WORKED_EXAMPLES = [
    (105, "Một trăm lẻ năm đồng"),
    (1_000_000, "Một triệu đồng"),
    (1_205_000, "Một triệu hai trăm lẻ năm nghìn đồng"),
    (15, "Mười lăm đồng"),
    (21, "Hai mươi mốt đồng"),
    (25, "Hai mươi lăm đồng"),
    (1_000_000_000, "Một tỷ đồng"),
    (14, "Mười bốn đồng"),
    (1_001_000, "Một triệu không trăm lẻ một nghìn đồng"),
    (110_000, "Một trăm mười nghìn đồng"),
]

# §9.2 edge cases.
SPEC_EDGE_CASES = [
    (0, "Không đồng"),
    (1_010, "Một nghìn không trăm mười đồng"),
    (1_005_000, "Một triệu không trăm lẻ năm nghìn đồng"),
    (1_000_005, "Một triệu không trăm lẻ năm đồng"),
    (1_000_000_001, "Một tỷ không trăm lẻ một đồng"),
    (2_050_000, "Hai triệu không trăm năm mươi nghìn đồng"),
    (1_001_410_000, "Một tỷ không trăm lẻ một triệu bốn trăm mười nghìn đồng"),
    (31_030, "Ba mươi mốt nghìn không trăm ba mươi đồng"),
]

# §9.2 strings of the real fixtures, without their "chẵn./." suffix.
REAL_STRINGS = [
    (71_375_040, "Bảy mươi mốt triệu ba trăm bảy mươi lăm nghìn không trăm bốn mươi đồng"),
    (76_378_680, "Bảy mươi sáu triệu ba trăm bảy mươi tám nghìn sáu trăm tám mươi đồng"),
    (99_998_280, "Chín mươi chín triệu chín trăm chín mươi tám nghìn hai trăm tám mươi đồng"),
    (
        147_767_635,
        "Một trăm bốn mươi bảy triệu bảy trăm sáu mươi bảy nghìn sáu trăm ba mươi lăm đồng",
    ),
    (1_284_000, "Một triệu hai trăm tám mươi bốn nghìn đồng"),
]

# Units and tens rules of §9.1 (rules 3-6), one case per rule.
RULE_CASES = [
    (1, "Một đồng"),
    (5, "Năm đồng"),
    (10, "Mười đồng"),
    (11, "Mười một đồng"),
    (20, "Hai mươi đồng"),
    (24, "Hai mươi bốn đồng"),
    (41, "Bốn mươi mốt đồng"),
    (55, "Năm mươi lăm đồng"),
    (100, "Một trăm đồng"),
    (101, "Một trăm lẻ một đồng"),
    (104, "Một trăm lẻ bốn đồng"),
    (110, "Một trăm mười đồng"),
    (111, "Một trăm mười một đồng"),
    (115, "Một trăm mười lăm đồng"),
    (121, "Một trăm hai mươi mốt đồng"),
    (1_000, "Một nghìn đồng"),
    (1_001, "Một nghìn không trăm lẻ một đồng"),
    (1_005, "Một nghìn không trăm lẻ năm đồng"),
    (1_015, "Một nghìn không trăm mười lăm đồng"),
    (1_100, "Một nghìn một trăm đồng"),
    (10_000_000, "Mười triệu đồng"),
    (20_000_021, "Hai mươi triệu không trăm hai mươi mốt đồng"),
    (1_000_001_000, "Một tỷ không trăm lẻ một nghìn đồng"),
    (
        999_999_999_999,
        "Chín trăm chín mươi chín tỷ chín trăm chín mươi chín triệu "
        "chín trăm chín mươi chín nghìn chín trăm chín mươi chín đồng",
    ),
]


@pytest.mark.parametrize(("amount", "words"), WORKED_EXAMPLES)
def test_every_worked_example_of_the_spec_reads_as_written(amount, words):
    assert amount_in_words(amount) == words


@pytest.mark.parametrize(("amount", "words"), SPEC_EDGE_CASES)
def test_every_edge_case_of_the_spec_reads_as_written(amount, words):
    assert amount_in_words(amount) == words


@pytest.mark.parametrize(("amount", "words"), REAL_STRINGS)
def test_the_real_invoice_strings_listed_in_the_spec_are_reproduced(amount, words):
    assert amount_in_words(amount) == words


@pytest.mark.parametrize(("amount", "words"), RULE_CASES)
def test_units_tens_and_inner_groups_follow_the_reading_rules(amount, words):
    assert amount_in_words(amount) == words


def test_amounts_of_a_thousand_ty_or_more_are_refused_rather_than_guessed():
    # §9.1 rule 1: "reject them rather than guess a reading".
    assert MAX_AMOUNT_VND == 999_999_999_999
    with pytest.raises(ValueError, match="1,000 tỷ"):
        amount_in_words(1_000_000_000_000)


def test_negative_amounts_are_refused():
    with pytest.raises(ValueError, match="negative"):
        amount_in_words(-1)


@pytest.mark.parametrize("amount", [1.0, True, "5", None])
def test_non_integer_amounts_are_a_type_error(amount):
    with pytest.raises(TypeError):
        amount_in_words(amount)


def _words_to_number(words: str) -> int:
    """An independent reader of our output, to check the reading round-trips."""
    digits = {
        "không": 0, "một": 1, "mốt": 1, "hai": 2, "ba": 3, "bốn": 4,
        "năm": 5, "lăm": 5, "sáu": 6, "bảy": 7, "tám": 8, "chín": 9,
    }  # fmt: skip
    scales = {"nghìn": 1_000, "triệu": 1_000_000, "tỷ": 1_000_000_000}
    tokens = words.lower().split()
    assert tokens[-1] == "đồng"
    total = group = 0
    pending: int | None = None
    for token in tokens[:-1]:
        if token in digits:
            assert pending is None, words
            pending = digits[token]
        elif token == "trăm":
            group += pending * 100
            pending = None
        elif token == "mươi":
            assert pending is not None and pending >= 2, words
            group += pending * 10
            pending = None
        elif token == "mười":
            group += 10
        elif token == "lẻ":
            assert group % 100 == 0 and pending is None, words
        elif token in scales:
            group += pending or 0
            pending = None
            total += group * scales[token]
            group = 0
        else:
            raise AssertionError(f"unexpected word {token!r} in {words!r}")
    return total + group + (pending or 0)


@given(st.integers(min_value=0, max_value=MAX_AMOUNT_VND))
def test_any_amount_reads_back_to_itself_in_house_style(amount):
    words = amount_in_words(amount)
    assert words[0].isupper() and words[1:] == words[1:].lower()
    assert words.endswith(" đồng")
    assert "  " not in words
    assert _words_to_number(words) == amount


@given(st.integers(min_value=1_000, max_value=MAX_AMOUNT_VND))
def test_every_group_after_the_leading_one_is_read_with_its_hundreds(amount):
    segments: list[list[str]] = [[]]
    for word in amount_in_words(amount).lower().split():
        if word in ("nghìn", "triệu", "tỷ", "đồng"):
            segments.append([])
        else:
            segments[-1].append(word)
    inner = [segment for segment in segments[1:] if segment]
    assert all(segment[1] == "trăm" for segment in inner), amount_in_words(amount)


@pytest.mark.parametrize(
    "style",
    [
        "Không đồng",
        "Không đồng chẵn./.",
        "Không đồng chẵn",
        "Không đồng./.",
        "Không đồng.",
        "  không   đồng chẵn ./. ",
    ],
)
def test_suffix_styles_compare_equal(style):
    assert normalise_words_for_comparison(style) == normalise_words_for_comparison("Không đồng")


def test_legal_regional_spellings_compare_equal_to_the_house_spelling():
    regional = "Một tỉ không trăm linh một triệu bốn trăm hai mươi tư ngàn đồng"
    assert normalise_words_for_comparison(regional) == normalise_words_for_comparison(
        amount_in_words(1_001_424_000)
    )


def test_decomposed_unicode_compares_equal_to_composed():
    import unicodedata

    nfd = unicodedata.normalize("NFD", "Mười lăm đồng chẵn./.")
    assert normalise_words_for_comparison(nfd) == normalise_words_for_comparison("Mười lăm đồng")


def test_a_different_amount_does_not_compare_equal_whatever_the_suffix():
    assert normalise_words_for_comparison(
        "Một nghìn lẻ mười đồng chẵn./."  # num2words' wrong reading of 1,010 (§9.3)
    ) != normalise_words_for_comparison(amount_in_words(1_010))


@pytest.mark.skipif(not REAL_FILES, reason=f"real invoices not found in {REAL_DIR}")
@pytest.mark.parametrize("path", REAL_FILES, ids=lambda path: path.name)
def test_each_real_invoice_spells_its_total_as_we_do_apart_from_the_suffix(path):
    from invoicing.xml import safe_parse

    root = safe_parse(path.read_bytes())
    totals = root.find(".//HDon/DLHDon/NDHDon/TToan")
    if totals is None:
        totals = root.find("DLHDon/NDHDon/TToan")
    amount = int(totals.findtext("TgTTTBSo"))
    words = totals.findtext("TgTTTBChu")
    assert normalise_words_for_comparison(words) == normalise_words_for_comparison(
        amount_in_words(amount)
    )
