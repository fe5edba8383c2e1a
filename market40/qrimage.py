"""PNG and SVG images of VietQR payloads.

Pure module (no Django) on top of the ``qrcode`` library: error correction M and a
4-module quiet zone, as measured and recommended in vietqr.md §15 (qrcode gives a
smaller symbol than segno for mixed-case VietQR payloads, so larger modules on paper).

Speed: stock ``qrcode`` spends about 80 % of its time choosing the mask, because it
builds the whole matrix eight times and scores each with per-module Python loops
(≈ 9 ms per 130-character payload on the 2-core VM, over the 10 ms budget once the image
is drawn). ``_FastMaskQRCode`` places the data once and scores the eight masks on
row bitmasks and strings. It implements the same penalty rules as
``qrcode.util.lost_point``, so it picks the same mask and the output is identical to
stock ``qrcode`` (checked by tests/market40/test_qr_images.py).
"""

from __future__ import annotations

import io
import re
from functools import lru_cache

import qrcode
from qrcode import util
from qrcode.constants import ERROR_CORRECT_M
from qrcode.image.pil import PilImage
from qrcode.image.svg import SvgPathFillImage

__all__ = ["BORDER", "render_png", "render_svg"]

BORDER = 4  # quiet zone in modules: the ISO/IEC 18004 minimum (vietqr.md §15)

# Penalty rule 1: runs of five or more same-coloured modules (ISO/IEC 18004 §7.8.3).
_RUN = re.compile(r"0{5,}|1{5,}")
# Penalty rule 3: 1:1:3:1:1 finder-like pattern with four light modules on one side.
# Neither pattern overlaps itself, so str.count() counts every window, like qrcode.
_FINDER_LIKE = ("10111010000", "00001011101")


class _FastMaskQRCode(qrcode.QRCode):  # type: ignore[type-arg]
    """``qrcode.QRCode`` with a faster but equivalent ``best_mask_pattern``."""

    _free_cells: list[list[bool]] | None = None

    def map_data(self, data: list[int], mask_pattern: int) -> None:
        # map_data runs when only the function patterns are placed: the cells still
        # None are the data cells, the only ones a mask flips.
        if self._free_cells is None:
            self._free_cells = [[cell is None for cell in row] for row in self.modules]
        super().map_data(data, mask_pattern)

    def best_mask_pattern(self) -> int:
        self._free_cells = None
        self.makeImpl(True, 0)  # test mode: format bits light, as qrcode scores them
        n = self.modules_count
        free = [_bits(row) for row in self._free_cells or ()]
        self._free_cells = None
        placed = [_bits(row) for row in self.modules]
        mask0 = _mask_rows(n, 0)
        unmasked = [p ^ (m & f) for p, m, f in zip(placed, mask0, free, strict=True)]
        best_pattern, best_score = 0, -1
        for pattern in range(8):
            mask = _mask_rows(n, pattern)
            rows = [u ^ (m & f) for u, m, f in zip(unmasked, mask, free, strict=True)]
            score = _penalty(rows, n)
            if best_score < 0 or score < best_score:  # first minimum wins, as in qrcode
                best_pattern, best_score = pattern, score
        return best_pattern


def _bits(row: list[bool | None]) -> int:
    """A row as an int, leftmost module in the highest bit."""
    return int("".join("1" if cell else "0" for cell in row), 2)


@lru_cache(maxsize=8 * 40)
def _mask_rows(n: int, pattern: int) -> tuple[int, ...]:
    """Rows of the cells that mask ``pattern`` flips, for an n×n symbol."""
    flips = util.mask_func(pattern)
    return tuple(int("".join("1" if flips(r, c) else "0" for c in range(n)), 2) for r in range(n))


def _penalty(rows: list[int], n: int) -> int:
    """Same score as ``qrcode.util.lost_point`` for the matrix given as row bitmasks."""
    lines = [format(row, f"0{n}b") for row in rows]
    lines += ["".join(column) for column in zip(*lines, strict=True)]
    # "2" separates lines so no run or pattern spans two of them.
    text = "2".join(lines)
    score = sum(len(run) - 2 for run in _RUN.findall(text))  # rule 1: 3 + (length - 5)
    score += 40 * (text.count(_FINDER_LIKE[0]) + text.count(_FINDER_LIKE[1]))  # rule 3
    pairs = (1 << (n - 1)) - 1
    blocks = 0
    for top, bottom in zip(rows, rows[1:], strict=False):  # rule 2: 2×2 same-colour blocks
        same = ~(top ^ bottom) & ~(top ^ (top >> 1)) & ~(bottom ^ (bottom >> 1)) & pairs
        blocks += same.bit_count()
    score += 3 * blocks
    dark = sum(row.bit_count() for row in rows)  # rule 4: dark share away from 50 %
    score += int(abs(dark / (n * n) * 100 - 50) / 5) * 10
    return score


def _qr(payload: str, box_size: int, image_factory: type) -> _FastMaskQRCode:
    qr = _FastMaskQRCode(
        error_correction=ERROR_CORRECT_M,
        box_size=box_size,
        border=BORDER,
        image_factory=image_factory,
    )
    qr.add_data(payload)  # optimised segments: a smaller symbol for mixed content (§15)
    qr.make(fit=True)
    return qr


def render_png(payload: str, *, box_size: int = 10) -> bytes:
    """A 1-bit black-on-white PNG of ``payload``, ``box_size`` pixels per module."""
    image = _qr(payload, box_size, PilImage).make_image()
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue()


def render_svg(payload: str) -> bytes:
    """A standalone SVG document of ``payload`` (one path, 1 mm per module).

    The fill variant paints a white background: a transparent quiet zone on a dark
    page would not scan.
    """
    image = _qr(payload, 10, SvgPathFillImage).make_image()
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue()
