"""Payment codes: generation, validation and search in bank-mangled transfer text.

Pure module (no Django). Design follows vietqr.md §12.2:

* A code is ``<PREFIX><body digits><check digit>``, upper-case ``[A-Z0-9]`` only, no
  separators. Demand codes use the demand prefix (``CHO`` by default) and a 9-digit
  body (13 characters, a billion codes system-wide); the permanent code printed on a
  stall's static QR placard uses its own prefix (``SAP``) and a 7-digit body
  (11 characters), so the matcher tells them apart without a database lookup.
* The check digit is Damm's: unlike Luhn it detects every single-digit substitution
  and every adjacent transposition (Luhn misses 09 <-> 90).
* Searching never parses by position and never accepts a bare number: it looks for the
  prefix followed by the exact number of digits, first in a token string (non
  alphanumerics turned into spaces), then in a compact string (non alphanumerics
  removed) to survive spaces, dots and dashes that banks insert inside the code, and it
  validates the check digit so a near-miss is never taken for another code.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

# Damm's totally anti-symmetric quasigroup of order 10.
_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)

DEMAND_BODY_DIGITS = 9
STALL_BODY_DIGITS = 7


class CodeKind(StrEnum):
    DEMAND = "demand"
    STALL = "stall"


def damm_digit(digits: str) -> str:
    """The Damm check digit of a string of decimal digits."""
    interim = 0
    for ch in digits:
        interim = _DAMM[interim][ord(ch) - 48]
    return chr(48 + interim)


def damm_valid(digits_with_check: str) -> bool:
    return damm_digit(digits_with_check) == "0"


@dataclass(frozen=True)
class CodeScheme:
    """The two prefixes in use; both are upper-case letters, 2 to 5 of them."""

    demand_prefix: str = "CHO"
    stall_prefix: str = "SAP"

    def __post_init__(self) -> None:
        for prefix in (self.demand_prefix, self.stall_prefix):
            if not re.fullmatch(r"[A-Z]{2,5}", prefix):
                raise ValueError(f"payment code prefix must be 2-5 letters A-Z: {prefix!r}")
        if self.demand_prefix.startswith(self.stall_prefix) or self.stall_prefix.startswith(
            self.demand_prefix
        ):
            raise ValueError("demand and stall prefixes must not be prefixes of each other")

    def make(self, kind: CodeKind, number: int) -> str:
        width = DEMAND_BODY_DIGITS if kind is CodeKind.DEMAND else STALL_BODY_DIGITS
        if not 0 < number < 10**width:
            raise ValueError(f"{kind} code number out of range: {number}")
        body = f"{number:0{width}d}"
        prefix = self.demand_prefix if kind is CodeKind.DEMAND else self.stall_prefix
        return f"{prefix}{body}{damm_digit(body)}"

    def parse(self, code: str) -> tuple[CodeKind, int] | None:
        """(kind, number) of a well-formed code with a valid check digit, else None."""
        for kind, prefix, width in self._shapes():
            if (
                code.startswith(prefix)
                and len(code) == len(prefix) + width + 1
                and code[len(prefix) :].isdigit()
                and code[len(prefix) :].isascii()
                and damm_valid(code[len(prefix) :])
            ):
                return kind, int(code[len(prefix) : -1])
        return None

    def _shapes(self) -> tuple[tuple[CodeKind, str, int], ...]:
        return (
            (CodeKind.DEMAND, self.demand_prefix, DEMAND_BODY_DIGITS),
            (CodeKind.STALL, self.stall_prefix, STALL_BODY_DIGITS),
        )

    def find(self, text: str) -> CodeSearch:
        return find_codes(text, self)


@dataclass(frozen=True)
class FoundCode:
    code: str
    kind: CodeKind


@dataclass(frozen=True)
class CodeSearch:
    """Valid codes in the order written (each once), and near-misses: right prefix and
    length but a wrong check digit, which reconciliation only offers as suggestions."""

    codes: tuple[FoundCode, ...]
    near_misses: tuple[str, ...]


def normalise_text(text: str) -> str:
    """Upper-case ASCII approximation of bank text: Đ/đ mapped first, because NFKD
    does not decompose them (vietqr.md §8 rule 3), then combining marks dropped."""
    text = text.replace("Đ", "D").replace("đ", "d")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).upper()


_NON_ALNUM = re.compile(r"[^A-Z0-9]+")


def find_codes(text: str, scheme: CodeScheme) -> CodeSearch:
    normal = normalise_text(text or "")
    tokens = _NON_ALNUM.sub(" ", normal)
    compact = _NON_ALNUM.sub("", normal)
    found: list[FoundCode] = []
    near: list[str] = []
    strict = _pattern(scheme, strict=True)
    loose = _pattern(scheme, strict=False)
    for source, pattern in ((tokens, strict), (compact, loose)):
        candidates = _scan(source, pattern, scheme)
        valid = [c for c in candidates if isinstance(c, FoundCode)]
        near.extend(c for c in candidates if isinstance(c, str))
        if valid:
            found = valid
            break
    return CodeSearch(codes=tuple(_unique(found)), near_misses=tuple(dict.fromkeys(near)))


def _pattern(scheme: CodeScheme, *, strict: bool) -> re.Pattern[str]:
    # Longer body first so that a stall prefix never steals a demand code's digits.
    alternatives = "|".join(
        f"(?P<{kind.value}>{prefix}\\d{{{width + 1}}})"
        for kind, prefix, width in sorted(scheme._shapes(), key=lambda s: -s[2])
    )
    if strict:
        # The token string keeps word boundaries: a code must not be glued to digits,
        # and a longer digit run after it means it is not our code.
        return re.compile(f"(?<![0-9])(?:{alternatives})(?![0-9])")
    return re.compile(f"(?:{alternatives})")


def _scan(source: str, pattern: re.Pattern[str], scheme: CodeScheme) -> list[FoundCode | str]:
    out: list[FoundCode | str] = []
    pos = 0
    while match := pattern.search(source, pos):
        code = match.group(0)
        kind = CodeKind(match.lastgroup)
        if scheme.parse(code) is not None:
            out.append(FoundCode(code=code, kind=kind))
            pos = match.end()
        else:
            out.append(code)
            pos = match.start() + 1
    return out


def _unique(codes: Iterable[FoundCode]) -> list[FoundCode]:
    return list(dict.fromkeys(codes))
