"""VietQR speed: payload encode/decode per second and QR image render time.

Prints, on one core:
- encode/s and decode/s of market40.vietqr over a mix of payloads, with the baseline
  measured in the same run: ``binascii.crc_hqx`` over the same payload strings (the one
  C-speed step every encode and decode must do), and the ratio codec ÷ baseline;
- PNG and SVG render time per code, uncached, and the same served from a cache (a dict
  keyed by payload, standing in for the HTTP/view cache the pay page will use).

Targets: encode and decode ≥ 50,000/s each; PNG and SVG < 10 ms per code
(~120-character payload). No Django needed.

    python benchmarks/bench_vietqr.py [--seconds 1.0] [--images 200]

Each section is a function returning rows for ``print_table`` so a later section (e.g.
a placard sheet of N codes) can be added next to them.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from binascii import crc_hqx
from collections.abc import Callable, Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import qrcode  # noqa: E402

from market40.qrimage import render_png, render_svg  # noqa: E402
from market40.vietqr import VietQR, build_payment_qr, decode, encode  # noqa: E402

VECTORS_FILE = REPO.parent / "shared" / "data" / "vietqr" / "vectors.json"

Row = tuple[str, str, str]  # (measure, value, note)


def pin_to_one_core() -> str:
    """Pin the process to one CPU so the figures are per core, where the OS allows it."""
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity)"


def sample_payloads() -> list[str]:
    """Realistic market40 payloads plus the valid spec vectors when ../shared is present."""
    payloads = [
        build_payment_qr(
            bin="970436",
            account="0011004567890",
            amount_vnd=150_000 + 1_000 * i,
            purpose=f"CHO{1234560 + i:07d}{i % 10} PHI T05",
        )
        for i in range(20)
    ]
    payloads += [
        build_payment_qr(
            bin="970418", account="12010000123456", amount_vnd=None, purpose=f"SAP{i:07d}3"
        )
        for i in range(5)
    ]
    if VECTORS_FILE.exists():
        vectors = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))["vectors"]
        payloads += [v["payload"] for v in vectors if v["valid"]]
    return payloads


def rate(func: Callable[[], object], items: int, seconds: float) -> float:
    """Best-of-runs items per second of ``func`` (which processes ``items`` items)."""
    func()  # warm up
    best = float("inf")
    deadline = time.perf_counter() + seconds
    runs = 0
    while runs < 3 or time.perf_counter() < deadline:
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
        runs += 1
    return items / best


def bench_codec(payloads: list[str], seconds: float) -> list[Row]:
    records: list[VietQR] = [decode(p) for p in payloads]
    encoded = [p.encode("ascii") for p in payloads]
    batch = payloads * max(1, 2000 // len(payloads))
    records_batch = records * max(1, 2000 // len(records))
    bytes_batch = encoded * max(1, 2000 // len(encoded))

    def run_decode() -> None:
        for payload in batch:
            decode(payload)

    def run_encode() -> None:
        for record in records_batch:
            encode(record)

    def run_crc() -> None:
        # Baseline: CRC of the same strings, including the str -> bytes step both sides pay.
        for payload in batch:
            crc_hqx(payload.encode("ascii"), 0xFFFF)

    def run_crc_bytes() -> None:
        for data in bytes_batch:
            crc_hqx(data, 0xFFFF)

    decode_rate = rate(run_decode, len(batch), seconds)
    encode_rate = rate(run_encode, len(records_batch), seconds)
    crc_rate = rate(run_crc, len(batch), seconds)
    crc_bytes_rate = rate(run_crc_bytes, len(bytes_batch), seconds)
    mean_len = sum(map(len, payloads)) / len(payloads)
    return [
        ("payloads", f"{len(payloads)}", f"mean {mean_len:.0f} characters"),
        ("encode", f"{encode_rate:,.0f} /s", _target(encode_rate, 50_000)),
        ("decode", f"{decode_rate:,.0f} /s", _target(decode_rate, 50_000)),
        ("baseline crc_hqx(str.encode)", f"{crc_rate:,.0f} /s", "same strings"),
        ("baseline crc_hqx(bytes)", f"{crc_bytes_rate:,.0f} /s", "CRC alone"),
        ("ratio encode / baseline", f"{encode_rate / crc_rate:.3f}", _times(crc_rate, encode_rate)),
        ("ratio decode / baseline", f"{decode_rate / crc_rate:.3f}", _times(crc_rate, decode_rate)),
    ]


def bench_images(payload: str, count: int) -> list[Row]:
    def per_code_ms(render: Callable[[str], bytes]) -> tuple[float, float]:
        """Median and fastest single render in ms: the median is the figure, robust to
        other processes sharing the core; the minimum shows the unloaded cost."""
        render(payload)
        times = []
        for _ in range(count):
            start = time.perf_counter()
            render(payload)
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1000, min(times) * 1000

    def stock_png(p: str) -> bytes:
        # Baseline: stock qrcode with its own mask search, the part qrimage speeds up.
        buffer = io.BytesIO()
        qrcode.make(p, error_correction=qrcode.constants.ERROR_CORRECT_M, border=4).save(buffer)
        return buffer.getvalue()

    png_ms, png_min = per_code_ms(render_png)
    svg_ms, svg_min = per_code_ms(render_svg)
    stock_ms, stock_min = per_code_ms(stock_png)

    # Cached: a dict keyed by payload, as the pay page's cache will be (first call renders).
    cache: dict[str, bytes] = {}

    def cached_png(p: str) -> bytes:
        image = cache.get(p)
        if image is None:
            image = cache[p] = render_png(p)
        return image

    lookups = 100_000
    cached_png(payload)
    start = time.perf_counter()
    for _ in range(lookups):
        cached_png(payload)
    cached_us = (time.perf_counter() - start) / lookups * 1e6
    return [
        ("payload length", f"{len(payload)}", "characters"),
        ("PNG render, uncached", f"{png_ms:.2f} ms", _below(png_ms, 10, png_min)),
        ("SVG render, uncached", f"{svg_ms:.2f} ms", _below(svg_ms, 10, svg_min)),
        ("baseline: stock qrcode PNG", f"{stock_ms:.2f} ms", f"min {stock_min:.2f} ms"),
        ("ratio PNG / stock qrcode", f"{png_ms / stock_ms:.2f}", "identical image bytes"),
        ("PNG size", f"{len(render_png(payload)):,} B", "box 10 px, border 4"),
        ("SVG size", f"{len(render_svg(payload)):,} B", ""),
        ("PNG cached (dict lookup)", f"{cached_us:.3f} µs", f"{png_ms * 1000 / cached_us:,.0f}×"),
    ]


def bench_served(stalls: int, requests: int) -> list[Row]:
    """Through the real views (Django test client, SQLite in a temp folder): a QR image
    uncached and cached, a revalidation, and the placard sheet for ``stalls`` stalls."""
    from _setup import setup_django

    setup_django(None, "vietqr")
    from datetime import date

    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.test import Client

    from market40.demo import seed_demo
    from market40.models import FeeDemand
    from market40.services import billing_run_create

    market = seed_demo(code="BENCHQR", stalls=stalls, today=date(2026, 5, 20)).market
    billing_run_create(market=market, period=date(2026, 5, 1))
    client = Client()
    tokens = list(FeeDemand.objects.values_list("pay_token", flat=True)[:requests])

    def timed(urls: list[str], **headers: str) -> float:
        start = time.perf_counter()
        for url in urls:
            response = client.get(url, **headers)
            assert response.status_code in (200, 304), response.status_code
        return (time.perf_counter() - start) / len(urls) * 1000

    urls = [f"/pay/{t}/qr.png" for t in tokens]
    cache.clear()
    uncached = timed(urls)
    cached = timed(urls)
    etag = client.get(urls[0])["ETag"]
    revalidate = timed([urls[0]] * len(urls), HTTP_IF_NONE_MATCH=etag)

    from market40.vietqr_service import demand_payload, render_cached

    payload = demand_payload(FeeDemand.objects.get(pay_token=tokens[0]))
    render_cached(payload, "png")
    start = time.perf_counter()
    for _ in range(10_000):
        render_cached(payload, "png")
    cache_hit_ms = (time.perf_counter() - start) / 10_000 * 1000

    client.force_login(get_user_model().objects.get(username="quanly"))
    cache.clear()
    start = time.perf_counter()
    html = client.get(f"/manage/{market.code}/placards/")
    html_s = time.perf_counter() - start
    start = time.perf_counter()
    pdf = client.get(f"/manage/{market.code}/placards.pdf")
    pdf_s = time.perf_counter() - start
    assert html.status_code == pdf.status_code == 200
    return [
        (
            "render_cached hit (Django cache)",
            f"{cache_hit_ms:.3f} ms",
            ("OK" if cache_hit_ms <= 1 else "MISS") + " target ≤ 1 ms",
        ),
        ("PNG via the view, uncached", f"{uncached:.2f} ms", "render + cache store + HTTP"),
        ("PNG via the view, cached", f"{cached:.2f} ms", "renders nothing"),
        ("PNG revalidation (304)", f"{revalidate:.2f} ms", "If-None-Match"),
        (
            f"placard sheet HTML, {stalls} stalls",
            f"{html_s:.2f} s",
            ("OK" if html_s <= 15 else "MISS") + " target ≤ 15 s, renders every QR",
        ),
        (
            f"placard sheet PDF, {stalls} stalls",
            f"{pdf_s:.2f} s",
            ("OK" if pdf_s <= 15 else "MISS") + f" target ≤ 15 s, {len(pdf.content) / 1e6:.1f} MB",
        ),
    ]


def _below(value: float, limit: float, fastest: float) -> str:
    return ("OK" if value < limit else "MISS") + f" < {limit:g} ms (min {fastest:.2f} ms)"


def _target(value: float, floor: float, label: str | None = None) -> str:
    return ("OK " if value >= floor else "MISS ") + (label or f"target ≥ {floor:,}")


def _times(baseline: float, measured: float) -> str:
    return f"codec costs {baseline / measured:.1f}× a bare CRC"


def print_table(title: str, rows: Iterable[Row]) -> None:
    rows = list(rows)
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    print(f"\n{title}")
    print("-" * (width + value_width + 40))
    for measure, value, note in rows:
        print(f"{measure:<{width}}  {value:>{value_width}}  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per codec measure")
    parser.add_argument("--images", type=int, default=200, help="renders per image measure")
    parser.add_argument("--stalls", type=int, default=500, help="placard sheet size")
    parser.add_argument("--no-django", action="store_true", help="pure codec and images only")
    args = parser.parse_args()

    pinned = pin_to_one_core()
    print(f"market40 VietQR benchmark (Python {sys.version.split()[0]}, {pinned})")
    payloads = sample_payloads()
    print_table("Payload codec (one core)", bench_codec(payloads, args.seconds))
    # A dynamic market40 payload with code + label purpose: 132 characters, a little
    # above the ~120 of the target, so the figure errs on the slow side.
    image_payload = build_payment_qr(
        bin="970436", account="0011004567890", amount_vnd=1_250_000, purpose="CHO12345674 PHI T05"
    )
    print_table("QR images (qrcode, ECC M)", bench_images(image_payload, args.images))
    if not args.no_django:
        print_table("Served by the views", bench_served(args.stalls, min(args.images, 200)))


if __name__ == "__main__":
    main()
