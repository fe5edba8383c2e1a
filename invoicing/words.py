"""Amount in words for `TgTTTBChu` (spec einvoice.md §9).

Pure module: no Django. House style (§9.1 rule 10): capitalised first letter, words joined by
single spaces, ending " đồng", no "chẵn" and no "./.". Real invoices add those suffixes, so
compare strings with `normalise_words_for_comparison`.

Reading rules (§9.1):

- split into groups of three digits: đơn vị, nghìn, triệu, tỷ; a `000` group is skipped;
- the leading group is read without leading zeros; every other non-zero group is read as
  three digits ("không trăm", then "lẻ" for a zero tens digit before a non-zero unit);
- 10-19 use "mười", 20-99 "<digit> mươi"; unit 1 after "mươi" is "mốt", unit 5 after "mươi"
  or "mười" is "lăm", unit 5 after "lẻ" stays "năm"; unit 4 is always "bốn" (real invoices
  use "bốn", §9.1 rule 6).

We do not use num2words: it misreads inner groups below 100 (§9.3).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["MAX_AMOUNT_VND", "amount_in_words", "normalise_words_for_comparison"]

# §9.1 rule 1: 1,000 tỷ and above do not occur here; reject rather than guess a reading
# ("nghìn tỷ" vs "tỷ tỷ" differ between systems).
MAX_AMOUNT_VND = 10**12 - 1

_DIGITS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")
_SCALES = ("", "nghìn", "triệu", "tỷ")


def _read_group(group: int, *, full: bool) -> list[str]:
    """Words for 1..999; `full` reads all three digits (inner groups, §9.1 rule 4)."""
    hundreds, rest = divmod(group, 100)
    tens, units = divmod(rest, 10)
    words: list[str] = []
    if full or hundreds:
        words += [_DIGITS[hundreds], "trăm"]
    if tens == 0:
        if units:
            if words:
                words.append("lẻ")
            words.append(_DIGITS[units])  # after "lẻ": một, bốn, năm (105 = một trăm lẻ năm)
    elif tens == 1:
        words.append("mười")
        if units:
            words.append("lăm" if units == 5 else _DIGITS[units])
    else:
        words += [_DIGITS[tens], "mươi"]
        if units == 1:
            words.append("mốt")
        elif units == 5:
            words.append("lăm")
        elif units:
            words.append(_DIGITS[units])
    return words


def amount_in_words(amount_vnd: int) -> str:
    """Read a whole-đồng amount in Vietnamese, e.g. 1_001_000 -> "Một triệu không trăm lẻ một
    nghìn đồng".

    Raises TypeError for non-integers (bool included) and ValueError for negative amounts (the
    spec defines no reading for them: adjustment invoices carry positive amounts, §4.6) and for
    amounts of 1,000 tỷ or more (§9.1 rule 1).
    """
    if isinstance(amount_vnd, bool) or not isinstance(amount_vnd, int):
        raise TypeError(f"amount_vnd must be an int, not {type(amount_vnd).__name__}")
    if amount_vnd < 0:
        raise ValueError(f"amount in words is not defined for a negative amount: {amount_vnd}")
    if amount_vnd > MAX_AMOUNT_VND:
        raise ValueError(
            f"amount {amount_vnd} is 1,000 tỷ or more; the spec (§9.1) gives no reading for it"
        )
    if amount_vnd == 0:
        return "Không đồng"

    groups: list[int] = []
    rest = amount_vnd
    while rest:
        rest, group = divmod(rest, 1000)
        groups.append(group)  # least significant first

    words: list[str] = []
    leading = len(groups) - 1
    for index in range(leading, -1, -1):
        group = groups[index]
        if group == 0:
            continue  # §9.1 rule 2: a 000 group is skipped entirely
        words += _read_group(group, full=index != leading)
        if _SCALES[index]:
            words.append(_SCALES[index])
    words.append("đồng")
    sentence = " ".join(words)
    return sentence[0].upper() + sentence[1:]


# Suffixes real systems append after "đồng" (§9.1 rule 8): "chẵn", "./.", "." in any mix.
_SUFFIX = re.compile(r"(?:\s*(?:chẵn|\./\.|[.,;]))+\s*$")
# Legal regional spellings (§9.1 rules 4, 6, 7), mapped to the house spelling.
_VARIANTS = (
    (re.compile(r"\blinh\b"), "lẻ"),
    (re.compile(r"\bngàn\b"), "nghìn"),
    (re.compile(r"\btỉ\b"), "tỷ"),
    (re.compile(r"\bmươi tư\b"), "mươi bốn"),
)


def normalise_words_for_comparison(words: str) -> str:
    """Canonical form of a `TgTTTBChu` string for comparing with `amount_in_words`.

    Removes only what the spec treats as style (§9.1 rules 6-8, 10): NFC form, case, runs of
    whitespace, a trailing "chẵn" / "./." / "." suffix in any combination, and the regional
    spellings linh, ngàn, tỉ and "mươi tư". A wrong number still compares unequal.
    """
    text = unicodedata.normalize("NFC", words).casefold()
    text = " ".join(text.split())
    text = _SUFFIX.sub("", text)
    for pattern, replacement in _VARIANTS:
        text = pattern.sub(replacement, text)
    return text
