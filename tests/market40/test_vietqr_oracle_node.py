"""Cross-check our encoder with an independent decoder: npm vietnam-qr-pay 1.5.1.

vietnam-qr-pay is what many Vietnamese shops use (vietqr.md §1, §15). It is an oracle,
not a validator: it checks only the CRC and root lengths and drops empty sub-fields, so
the payloads here are valid ones and every field must agree. One Node process decodes
all payloads (tests/oracles/decode_vietqr.js); `make oracles` installs the package.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import string
import subprocess
from pathlib import Path
from typing import Any

import pytest

from market40.vietqr import AMOUNT_MAX_VND, VietQR, build_payment_qr, decode, encode

REPO_ROOT = Path(__file__).resolve().parents[2]
ORACLES = REPO_ROOT / "tests" / "oracles"
VECTORS_FILE = REPO_ROOT.parent / "shared" / "data" / "vietqr" / "vectors.json"


def _node_or_skip() -> str:
    node = shutil.which("node")
    missing = None
    if node is None:
        missing = "node is not installed"
    elif not (ORACLES / "node_modules" / "vietnam-qr-pay" / "package.json").exists():
        missing = f"{ORACLES / 'node_modules'} has no vietnam-qr-pay"
    if missing:
        reason = f"{missing}; run `make oracles` to install the Node test oracles"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    assert node is not None
    return node


def node_decode(payloads: list[str]) -> list[dict[str, Any]]:
    node = _node_or_skip()
    result = subprocess.run(
        [node, str(ORACLES / "decode_vietqr.js")],
        input="".join(json.dumps(p) + "\n" for p in payloads),
        capture_output=True,
        text=True,
        cwd=ORACLES,
        timeout=60,
        check=True,
    )
    decoded = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(decoded) == len(payloads), result.stderr
    return decoded


def expected_from(fields: VietQR, payload: str) -> dict[str, Any]:
    """What vietnam-qr-pay should report, from our own decode of the payload."""
    additional = fields.additional_data or {}
    return {
        "isValid": True,
        "initMethod": fields.point_of_initiation,
        "guid": fields.guid,
        "service": fields.service,
        "bankBin": fields.bin,
        "bankNumber": fields.account,
        "amount": fields.amount,
        "currency": fields.currency,
        "nation": fields.country,
        "category": fields.mcc,
        "merchantName": fields.merchant_name,
        "city": fields.city,
        "purpose": additional.get("08"),
        "billNumber": additional.get("01"),
        "crc": payload[-4:],
    }


def variety() -> list[str]:
    """Payloads from our encoder: static/dynamic, account/card, many purposes and amounts."""
    payloads = [
        build_payment_qr(
            bin="970436", account="0011004567890", amount_vnd=150_000, purpose="CHO12345674"
        ),
        build_payment_qr(
            bin="970418", account="12010000123456", amount_vnd=None, purpose="SAP00012349 KIOT 12"
        ),
        build_payment_qr(
            bin="970403",
            account="9704031101234567",
            amount_vnd=AMOUNT_MAX_VND,
            purpose="Đông Xuân – phí kiốt A12/T05",
            service="QRIBFTTC",
        ),
        build_payment_qr(
            bin="971025", account="PSP0123456789", amount_vnd=1, purpose="CHO00000018 PHI T05"
        ),
        build_payment_qr(
            bin="963388", account="99ZP1234567", amount_vnd=2_500_000, purpose="x" * 40
        ),
        encode(
            bin="970422",
            account="660704060000129",
            amount="100",
            mcc="0000",
            merchant_name="company_1_data",
            city="Vietnam",
            additional_data={"01": "NPS6869", "08": "thanh toan don hang"},
        ),
        encode(bin="970423", account="0099999999", service="QRIBFTTC"),
        encode(bin="970416", account="257678859", amount="50000.", additional_data={"08": "A"}),
    ]
    rng = random.Random(40)
    alnum = string.ascii_letters + string.digits
    printable = "".join(chr(c) for c in range(0x20, 0x7F))
    for _ in range(150):
        amount = rng.choice([None, rng.randint(1, AMOUNT_MAX_VND), rng.randint(1, 999)])
        additional: dict[str, str] = {}
        if rng.random() < 0.8:
            additional["08"] = "".join(rng.choice(printable) for _ in range(rng.randint(1, 25)))
        if rng.random() < 0.3:
            additional["01"] = "".join(rng.choice(alnum) for _ in range(rng.randint(1, 25)))
        payloads.append(
            encode(
                bin="".join(rng.choice(string.digits) for _ in range(6)),
                account="".join(rng.choice(alnum) for _ in range(rng.randint(1, 19))),
                service=rng.choice(["QRIBFTTA", "QRIBFTTC"]),
                amount=None if amount is None else str(amount),
                additional_data=additional or None,
            )
        )
    if VECTORS_FILE.exists():
        vectors = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))["vectors"]
        payloads += [v["payload"] for v in vectors if v["valid"]]
    return payloads


def test_vietnam_qr_pay_decodes_every_payload_we_encode_to_the_same_fields() -> None:
    payloads = variety()
    for payload, theirs in zip(payloads, node_decode(payloads), strict=True):
        assert theirs == expected_from(decode(payload), payload), payload


def test_vietnam_qr_pay_agrees_on_crc_rejection_and_lowercase_acceptance() -> None:
    good = build_payment_qr(
        bin="970416", account="257678859", amount_vnd=1000, purpose="Chuyen tien"
    )
    wrong_crc = good[:-4] + f"{(int(good[-4:], 16) ^ 0x0003):04X}"
    lowercase = good[:-4] + good[-4:].lower()
    ours_lowercase = decode(lowercase)
    assert ours_lowercase.crc == good[-4:].lower()
    theirs = node_decode([wrong_crc, lowercase])
    assert theirs[0]["isValid"] is False
    assert theirs[1]["isValid"] is True
    assert theirs[1]["purpose"] == "CHUYEN TIEN"
