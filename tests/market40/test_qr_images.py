"""QR images: what a phone camera reads back must be the payload, byte for byte.

Pure tests (no Django). zxing-cpp is the independent reader (vietqr.md §15).
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import string
from pathlib import Path

import pytest
import qrcode
import zxingcpp
from lxml import etree
from PIL import Image, ImageDraw

from market40.qrimage import BORDER, render_png, render_svg
from market40.vietqr import build_payment_qr, encode

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
VECTORS_FILE = SHARED_DATA / "vietqr" / "vectors.json"
SVG_NS = "http://www.w3.org/2000/svg"

BUILT = {
    "dynamic_account": build_payment_qr(
        bin="970436", account="0011004567890", amount_vnd=150_000, purpose="CHO12345674 PHI T05"
    ),
    "static_placard": build_payment_qr(
        bin="970418", account="12010000123456", amount_vnd=None, purpose="SAP00012349"
    ),
    "card": build_payment_qr(
        bin="970403",
        account="9704031101234567",
        amount_vnd=499_999_999,
        purpose="Đông Xuân – phí kiốt A12/T05",
        service="QRIBFTTC",
    ),
    "wallet_alphanumeric_account": build_payment_qr(
        bin="971025", account="PSP0123456789", amount_vnd=1, purpose="CHO00000018"
    ),
    "mixed_case_with_52_59_60": encode(
        bin="970422",
        account="660704060000129",
        amount="100",
        mcc="0000",
        merchant_name="company_1_data",
        city="Vietnam",
        additional_data={"01": "NPS6869", "08": "thanh toan don hang"},
    ),
}


def _payload_params() -> list[object]:
    params: list[object] = [pytest.param(p, id=name) for name, p in BUILT.items()]
    if VECTORS_FILE.exists():
        vectors = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))["vectors"]
        params += [pytest.param(v["payload"], id=v["name"]) for v in vectors if v["valid"]]
    elif os.environ.get("CI"):
        params.append(pytest.param(None, id="no-shared-data"))
    return params


def read_back(image: Image.Image) -> list[zxingcpp.Barcode]:
    return zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)


@pytest.mark.parametrize("payload", _payload_params())
def test_every_png_decodes_back_to_exactly_its_payload(payload: str | None) -> None:
    if payload is None:
        pytest.fail(f"shared test vectors missing at {VECTORS_FILE} (CI must have ../shared)")
    image = Image.open(io.BytesIO(render_png(payload)))
    assert image.format == "PNG"
    (barcode,) = read_back(image)
    assert barcode.text == payload
    assert barcode.ec_level == "M"  # vietqr.md §15


def test_the_png_has_a_four_module_white_quiet_zone_and_scales_with_box_size() -> None:
    payload = BUILT["dynamic_account"]
    reference = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
    reference.add_data(payload)
    reference.make(fit=True)
    modules = reference.modules_count
    for box_size in (4, 10):
        image = Image.open(io.BytesIO(render_png(payload, box_size=box_size))).convert("L")
        side = (modules + 2 * BORDER) * box_size
        assert image.size == (side, side)
        quiet = BORDER * box_size
        border_strips = [
            image.crop((0, 0, side, quiet)),
            image.crop((0, side - quiet, side, side)),
            image.crop((0, 0, quiet, side)),
            image.crop((side - quiet, 0, side, side)),
        ]
        assert all(strip.getextrema() == (255, 255) for strip in border_strips)
        assert read_back(image)[0].text == payload


def test_the_svg_is_well_formed_xml_with_one_qrcode_path() -> None:
    svg = render_svg(BUILT["dynamic_account"])
    root = etree.fromstring(svg)
    assert root.tag == f"{{{SVG_NS}}}svg"
    paths = root.findall(f"{{{SVG_NS}}}path")
    assert len(paths) == 1
    assert paths[0].get("id") == "qr-path"  # qrcode.image.svg.SvgPathImage's single path
    assert paths[0].get("d", "").startswith("M")
    # White background: a transparent quiet zone would not scan on a dark page.
    assert root.find(f"{{{SVG_NS}}}rect").get("fill") == "white"


def test_the_svg_path_draws_a_symbol_that_reads_back_as_the_payload() -> None:
    payload = BUILT["card"]
    root = etree.fromstring(render_svg(payload))
    side = int(float(root.get("viewBox").split()[2]))
    d = root.find(f"{{{SVG_NS}}}path").get("d")
    scale = 8
    image = Image.new("L", (side * scale, side * scale), 255)
    draw = ImageDraw.Draw(image)
    squares = re.findall(r"M([\d.]+),([\d.]+)H([\d.]+)V([\d.]+)H[\d.]+z", d)
    assert squares, "unexpected path syntax"
    for x0, y0, x1, y1 in squares:
        box = [float(x0) * scale, float(y0) * scale, float(x1) * scale - 1, float(y1) * scale - 1]
        draw.rectangle(box, fill=0)
    assert read_back(image)[0].text == payload


def test_rendering_is_deterministic() -> None:
    payload = BUILT["dynamic_account"]
    assert render_png(payload) == render_png(payload)
    assert render_svg(payload) == render_svg(payload)


def test_the_fast_mask_choice_gives_the_same_symbol_as_stock_qrcode() -> None:
    # qrimage replaces qrcode's slow mask search; it must pick the same mask.
    rng = random.Random(40)
    alphabet = string.ascii_letters + string.digits + " ./-:"
    payloads = [*BUILT.values()] + [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 300))) for _ in range(60)
    ]
    for payload in payloads:
        ours = Image.open(io.BytesIO(render_png(payload, box_size=1)))
        stock = qrcode.make(
            payload, error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=1, border=BORDER
        )
        buffer = io.BytesIO()
        stock.save(buffer)
        assert ours.tobytes() == Image.open(buffer).tobytes(), payload
