"""The in-house bank simulator: a month of stall holders paying, delivered like a bank.

``simulation_plan`` reads a market's open demands of one period and plans the transfers
stall holders make and the webhook deliveries the bank aggregator of one
``BankConnection`` sends for them; ``simulation_run`` delivers them over real HTTP (or
in-process through ``django.test.Client``), signed with the connection's real secret in
the provider's exact format (``PROVIDERS[name].build_delivery``), and returns a ledger
of exactly what was sent. Everything random comes from one ``random.Random(seed)``, so
a seed and the same database state give the same plan, byte for byte apart from the
signing timestamps.

Faults (webhooks.md §10, vietqr.md §12.1), each switched on by name (``FAULTS``):

* content as banks mangle it (``mangle``): upper-casing, diacritics and special
  characters removed, prefixes (``MBVCB.<ref>.<seq>.``, ``<seq>.<ddmmyy>.<hhmmss>.``),
  suffixes (``.CT tu … toi …``, ``GD 464434-080625 10:55:18``, ``FT25308710231543``),
  spaces, dots or dashes inside the code, truncation that keeps the code;
* what people pay: ``partial``, ``over``, ``multi`` (one transfer for two demands,
  same holder when the data has one), ``split`` (two transfers for one demand),
  ``static`` (the stall's permanent code), ``no_code``, ``wrong_code`` (a bad check
  digit or two digits swapped);
* how the aggregator delivers: ``duplicate`` (redeliveries), ``out_of_order``,
  ``late``, ``missed_webhook`` (one transfer never delivered, so the running balance
  shows a gap), ``bad_signature``, ``server_error``, plus ``outgoing`` (money out of
  the account) and ``test_call`` (the provider's test call).

``missed_webhook`` picks one exact payment: the bank made it (it is in the running
balance) but it is never delivered; the ledger lists it as ``not-delivered`` with
``delivered: false``, and its demand is expected to stay unpaid.

``bad_signature`` is an extra *forged* transfer — one the bank never made — signed with
a wrong key: the service must answer 401 and store the delivery as rejected. It is sent
once (a forger does not retry) and is outside the running balance. Genuine transfers are
never sent with a wrong key, so no real money is missing from the ledger's expectations.

``server_error`` makes the first 1–3 attempts of a delivery fail before they reach the
service — a 503 or 502 from a real loopback HTTP server standing in for the proxy in
front of a restarting service, or a refused connection — and the delivery is retried on
SePay's schedule (webhooks.md §3.3): at most 8 attempts, waits of 1, 1, 2, 3, 5, 8, 13
times ``backoff_ms`` (a minute at SePay; a second by default here, milliseconds in tests).
Any 5xx, connection error or timeout from the service itself is retried the same way,
and so is any other non-2xx answer to a genuine delivery (SePay's
``non_2xx_status_code`` rule).

The ledger (``Ledger.as_json``) lists every transfer with its content as sent, the
codes it carries, its expected class (``EXPECTED_CLASSES``) and the allocations the
service should make, every delivery with its attempts and status codes, and the state
each targeted demand should end in. Each demand of the period is the target of at most
one scenario, so those expectations hold whatever order the deliveries arrive in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import http.client
import json
import random
import re
import socket
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from market40.models import FeeDemand
from market40.paymentcode import DEMAND_BODY_DIGITS, STALL_BODY_DIGITS
from market40.services import code_scheme
from payments.models import BankConnection, BankTransaction, Provider
from payments.providers import PROVIDERS, Transfer, casso, payos
from payments.providers.base import VN_TZ

FAULTS: dict[str, str] = {
    "mangle": "nội dung bị ngân hàng biến đổi (in hoa, bỏ dấu, thêm tiền tố/hậu tố, chèn dấu"
    " cách hoặc dấu chấm vào mã, cắt ngắn)",
    "partial": "trả thiếu",
    "over": "trả thừa",
    "multi": "một lệnh chuyển cho hai phiếu",
    "split": "hai lệnh chuyển cho một phiếu",
    "static": "trả vào mã cố định của sạp",
    "no_code": "không ghi mã thanh toán",
    "wrong_code": "ghi sai mã (sai số kiểm tra)",
    "duplicate": "gửi lại cùng một giao dịch",
    "out_of_order": "gửi không theo thứ tự",
    "late": "gửi trễ",
    "missed_webhook": "một giao dịch không bao giờ được gửi (lệch số dư)",
    "bad_signature": "một lần gửi giả mạo, ký bằng khóa sai (phải bị từ chối 401)",
    "server_error": "vài lần gửi gặp lỗi 5xx/kết nối và được gửi lại theo lịch Fibonacci",
    "outgoing": "có giao dịch tiền ra",
    "test_call": "lệnh gọi thử của nhà cung cấp",
}

# What the service should make of each transfer (see the module docstring).
EXPECTED_CLASSES = (
    "exact",
    "partial",
    "over",
    "multi",
    "split",
    "static",
    "unmatched",
    "outgoing",
    "test",
    "not-delivered",
    "rejected-signature",
)

OPEN_STATUSES = (FeeDemand.Status.OPEN, FeeDemand.Status.PARTIAL)

# SePay's retry schedule (webhooks.md §3.3): 8 attempts, Fibonacci waits in minutes.
MAX_ATTEMPTS = 8
FIBONACCI_WAITS = (1, 1, 2, 3, 5, 8, 13)

# Shares of the paying demands by scenario, when the scenario's fault is on.
SCENARIO_WEIGHTS = {
    "exact": 52,
    "partial": 8,
    "over": 7,
    "split": 7,
    "static": 8,
    "multi": 6,
    "no_code": 6,
    "wrong_code": 6,
}

COUNTER_BANKS = ["Vietcombank", "VietinBank", "BIDV", "Agribank", "MBBank", "Techcombank", "ACB"]


def retry_delays_ms(backoff_ms: int) -> list[int]:
    """The waits before attempts 2..8: 1, 1, 2, 3, 5, 8, 13 × ``backoff_ms``."""
    return [wait_units * backoff_ms for wait_units in FIBONACCI_WAITS[: MAX_ATTEMPTS - 1]]


def parse_faults(value: str | Iterable[str] | None) -> frozenset[str]:
    """``"all"``, ``"none"`` or a comma list of names from ``FAULTS``."""
    if value is None:
        return frozenset()
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value)]
    names = [n.replace("-", "_") for n in names if n]
    if names in (["all"], []):
        return frozenset(FAULTS) if names else frozenset()
    if names == ["none"]:
        return frozenset()
    unknown = sorted(set(names) - set(FAULTS))
    if unknown:
        raise ValueError(
            f"unknown fault(s) {', '.join(unknown)}; choose from all, none, {', '.join(FAULTS)}"
        )
    return frozenset(names)


@dataclass(frozen=True)
class SimulationOptions:
    seed: int = 2026
    share_paid: float = 0.8
    faults: frozenset[str] = frozenset()
    backoff_ms: int = 1000
    late_ms: int = 2000
    concurrency: int = 1
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0 <= self.share_paid <= 1:
            raise ValueError("share_paid must be between 0 and 1")
        if self.backoff_ms < 0 or self.late_ms < 0 or self.concurrency < 1:
            raise ValueError("backoff_ms and late_ms must be >= 0 and concurrency >= 1")


# --- the plan ---------------------------------------------------------------------------


@dataclass(eq=False)
class PlannedTransfer:
    """One transfer at the bank, with what the service should make of it."""

    transfer: Transfer
    expected: str
    codes: list[str]  # codes the payer meant to write (demand or stall codes)
    code_kind: str  # "demand", "stall", "wrong", "none"
    note: str  # what the payer typed, before the bank mangled it
    mangling: list[str]
    allocations: list[tuple[str, int]]  # (demand code, đồng) the service should allocate
    credit_vnd: int = 0
    delivered: bool = True
    forged: bool = False
    same_holder: bool | None = None

    def as_json(self) -> dict[str, Any]:
        t = self.transfer
        return {
            "provider_transaction_id": t.provider_transaction_id,
            "direction": t.direction,
            "amount_vnd": t.amount_vnd,
            "content": t.content,
            "description": t.description,
            "bank_reference": t.bank_reference,
            "provider_code": t.provider_code,
            "bank_time": t.bank_time.isoformat(),
            "running_balance_vnd": t.running_balance_vnd,
            "is_test": t.is_test,
            "note_written": self.note,
            "mangling": self.mangling,
            "targets": {"kind": self.code_kind, "codes": self.codes},
            "same_holder": self.same_holder,
            "expected": self.expected,
            "expected_allocations": [
                {"demand": code, "amount_vnd": amount} for code, amount in self.allocations
            ],
            "expected_credit_vnd": self.credit_vnd,
            "delivered": self.delivered,
            "forged": self.forged,
        }


@dataclass(eq=False)
class PlannedDelivery:
    """One webhook delivery (a POST, retried until it is answered 2xx or gives up)."""

    number: int
    transfers: list[int]  # indexes into Plan.transfers
    kind: str  # "original", "redelivery", "forged"
    variant: dict[str, Any]
    duplicate_of: int | None = None  # the number of the delivery this one repeats
    original: PlannedDelivery | None = field(default=None, repr=False)
    late: bool = False
    gateway_failures: list[str] = field(default_factory=list)  # "503", "502", "refused"
    attempts: list[dict[str, Any]] = field(default_factory=list)
    outcome: str = "pending"  # "delivered", "rejected", "failed", "pending"
    body_sha256: str = ""
    completed_seq: int | None = None
    expected_event: str | None = None

    def as_json(self, plan: Plan) -> dict[str, Any]:
        return {
            "number": self.number,
            "kind": self.kind,
            "provider_transaction_ids": [
                plan.transfers[i].transfer.provider_transaction_id for i in self.transfers
            ],
            "variant": self.variant,
            "duplicate_of": self.duplicate_of,
            "late": self.late,
            "gateway_failures": self.gateway_failures,
            "attempts": self.attempts,
            "outcome": self.outcome,
            "final_status": self.attempts[-1]["status"] if self.attempts else None,
            "body_sha256": self.body_sha256,
            "expected_event": self.expected_event,
        }


@dataclass
class Plan:
    connection: BankConnection
    period: date
    options: SimulationOptions
    transfers: list[PlannedTransfer]
    deliveries: list[PlannedDelivery]
    demands: dict[str, dict[str, Any]]  # demand code → expectations
    opening_balance_vnd: int | None


# --- content: what people write, and what banks make of it -----------------------------


def strip_marks(text: str) -> str:
    """What most Vietnamese bank apps do to a note: no diacritics (Đ → D first)."""
    text = text.replace("Đ", "D").replace("đ", "d")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def ascii_upper(text: str) -> str:
    return strip_marks(text).upper()


_SPECIALS = re.compile(r"[^A-Za-z0-9 ]+")


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def split_code(code: str, rng: random.Random) -> str:
    """A space, dot or dash inside the code, as some apps and gateways insert."""
    letters = len(code) - len(code.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    style = rng.choice(["space-after-prefix", "dots", "space-middle", "dashes"])
    prefix, digits = code[:letters], code[letters:]
    if style == "space-after-prefix":
        return f"{prefix} {digits}"
    if style == "dots":
        return f"{prefix}.{digits[:4]}.{digits[4:]}"
    if style == "space-middle":
        cut = rng.randint(2, len(digits) - 2)
        return f"{prefix}{digits[:cut]} {digits[cut:]}"
    return f"{prefix}-{digits[:3]}-{digits[3:]}"


def corrupt_code(code: str, rng: random.Random) -> str:
    """A near miss that the check digit catches: another check digit, or two adjacent
    digits swapped (Damm detects every single substitution and adjacent transposition)."""
    letters = len(code) - len(code.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    digits = list(code[letters:])
    if rng.random() < 0.5:
        digits[-1] = rng.choice([d for d in "0123456789" if d != digits[-1]])
    else:
        pairs = [i for i in range(len(digits) - 1) if digits[i] != digits[i + 1]]
        i = rng.choice(pairs)
        digits[i], digits[i + 1] = digits[i + 1], digits[i]
    return code[:letters] + "".join(digits)


@dataclass
class Content:
    content: str
    description: str | None
    mangling: list[str]


class ContentWriter:
    """Notes as stall holders type them and as banks deliver them (vietqr.md §12.1)."""

    def __init__(self, rng: random.Random, *, mangle: bool, account_number: str, market: str):
        self.rng = rng
        self.mangle = mangle
        self.account_number = account_number
        self.market_name = f"BQL CHO {market}"

    def note(self, kind: str, codes: list[str], *, name: str, stall: str, period: date) -> str:
        rng = self.rng
        m, y = period.month, period.year
        if kind in ("demand", "wrong", "split") and codes:
            code = codes[0]
            templates = [
                "{c}",
                "{c} {stall}",
                "{c} phí tháng {m}",
                "{c} {name} chuyển tiền",
                "Thanh toán {c} sạp {stall} T{mm}/{y}",
                "CK {c} {dd}/{mm}",
                "{name} nộp tiền sạp {stall} {c}",
            ]
            if kind == "split":
                templates = ["{c} lần {part}", "{c} đợt {part}", "{c} {name} trả {part}/2"]
            return rng.choice(templates).format(
                c=code,
                stall=stall,
                m=m,
                mm=f"{m:02d}",
                y=y,
                dd=f"{rng.randint(1, 28):02d}",
                name=name,
                part="{part}",
            )
        if kind == "multi":
            c1, c2 = codes
            return rng.choice(
                ["{a} {b} {name}", "{a} và {b}", "Nộp 2 sạp {a}, {b}", "{a},{b} tháng {m}"]
            ).format(a=c1, b=c2, name=name, m=m)
        if kind == "stall":
            return rng.choice(
                ["{c} {name}", "{name} nộp tiền sạp {stall} {c}", "{c} tiền sạp T{m}"]
            ).format(c=codes[0], name=name, stall=stall, m=m)
        return rng.choice(
            [
                "{name} chuyển tiền",
                "Nộp tiền chợ tháng {m}",
                "Tiền sạp {stall} tháng {m}",
                "{name} CK",
                "chuyen tien",
            ]
        ).format(name=name, stall=stall, m=m)

    def deliverable(
        self, note: str, codes: list[str], *, payer: str, when: datetime, split_allowed: bool
    ) -> Content:
        """The content the aggregator reports for ``note`` and the bank's full text."""
        rng = self.rng
        if not self.mangle:
            return Content(note, None, [])
        steps: list[str] = []
        text = note
        if codes and split_allowed and rng.random() < 0.15:
            # Every code of a note is split or none is. The matcher searches the token
            # string first and the compact string only when that finds nothing, so a
            # note with one intact and one split code would pay only the intact one;
            # that mixed case is left out of the ledger's expectations on purpose.
            for code in codes:
                text = text.replace(code, split_code(code, rng))
            steps.append("code-split")
        if rng.random() < 0.75:
            text = ascii_upper(text)
            steps.append("upper-no-diacritics")
            if rng.random() < 0.35:
                text = re.sub(r" +", " ", _SPECIALS.sub(" ", text)).strip()
                steps.append("specials-removed")
        if rng.random() < 0.2 and len(text) > 19:
            keep = self._code_end(text, codes)
            limit = rng.choice([19, 25])
            if keep <= limit:
                text = text[:limit].rstrip()
                steps.append(f"truncated-{limit}")
        content = text
        full = text
        local = when.astimezone(VN_TZ)
        roll = rng.random()
        if roll < 0.25:
            full = f"MBVCB.{_digits(rng, 10)}.{_digits(rng, 6)}.{full}"
            steps.append("prefix-mbvcb")
        elif roll < 0.35:
            full = f"{_digits(rng, 6)}.{local:%d%m%y}.{local:%H%M%S}.{full}"
            steps.append("prefix-seq-date-time")
        roll = rng.random()
        if roll < 0.18:
            full = (
                f"{full}.CT tu {_digits(rng, 13)} {ascii_upper(payer)} toi "
                f"{self.account_number} {self.market_name} Ngan hang TMCP Ngoai thuong"
            )
            steps.append("suffix-ct-tu-toi")
        elif roll < 0.33:
            full = f"{full} GD {_digits(rng, 6)}-{local:%d%m%y} {local:%H:%M:%S}"
            steps.append("suffix-gd")
        elif roll < 0.48:
            full = f"{full} FT{local:%y}{_digits(rng, 12)}"
            steps.append("suffix-ft")
        # ``content`` is the note as the bank passed it on, ``description`` the bank's
        # whole text; the caller picks what each provider reports (§3.1, §4.1).
        return Content(content, full if full != content else None, steps)

    @staticmethod
    def _code_end(text: str, codes: list[str]) -> int:
        if not codes:
            return 0
        compact_positions = []
        for code in codes:
            tail = code[-4:]
            # The code's last four characters survive every mangling step above except
            # some splits, which then leave the note untruncated; rfind errs long.
            pos = text.upper().rfind(tail)
            compact_positions.append(len(text) if pos < 0 else pos + 4)
        return max(compact_positions)


# --- planning ------------------------------------------------------------------------------


def _next_number(connection: BankConnection, rng: random.Random) -> int:
    """The bank's next transaction number on this connection: after every id already
    stored, so a second run never reuses one; a fresh connection starts somewhere
    realistic (SePay's sample ids are around 92 704)."""
    highest = 0
    for ptid in BankTransaction.objects.filter(connection=connection).values_list(
        "provider_transaction_id", flat=True
    ):
        match = re.search(r"(\d+)$", ptid)
        if match:
            highest = max(highest, int(match.group(1)))
    return highest + 1 if highest else rng.randint(100_000, 900_000)


def _ids(provider: str, number: int, rng: random.Random) -> tuple[str, str]:
    """(provider transaction id, bank reference) in the provider's format."""
    if provider == Provider.PAYOS:
        reference = f"FT{number:014d}"
        link = "".join(rng.choice("0123456789abcdef") for _ in range(32))
        return f"{link}:{reference}", reference
    if provider == Provider.SIMULATOR:
        return f"SIM{number:010d}", f"FT{number:014d}"
    reference = rng.choice([f"MBVCB.{_digits(rng, 10)}", f"FT{_digits(rng, 14)}"])
    return str(number), reference


def _variant(provider: str, connection: BankConnection, rng: random.Random) -> dict[str, Any]:
    options = connection.options or {}
    if provider == Provider.SEPAY:
        return {"mode": options.get("mode", "hmac")}
    if provider == Provider.CASSO:
        version = options.get("version", "v2")
        if version == "v1":
            return {"version": "v1"}
        # Casso's serialisation is undocumented (§4.3): exercise every form.
        return {"version": "v2", "form": rng.choice(casso.FORMS)}
    if provider == Provider.PAYOS:
        variant: dict[str, Any] = {"empty_as_null": rng.random() < 0.3}
        if rng.random() < 0.2:
            variant["extra_data"] = {"paymentLinkVersion": 2}
        return variant
    return {}


def _sepay_code(content: str) -> str | None:
    """SePay's own code detection (§3.1, vietqr.md §12.1): the first prefix + digits of
    the configured length, case-insensitive, without any check-digit validation."""
    scheme = code_scheme()
    pattern = (
        f"(?i)({scheme.demand_prefix}\\d{{{DEMAND_BODY_DIGITS + 1}}}"
        f"|{scheme.stall_prefix}\\d{{{STALL_BODY_DIGITS + 1}}})"
    )
    match = re.search(pattern, content)
    return match.group(1).upper() if match else None


def _choose_scenarios(
    rng: random.Random, paying: list[FeeDemand], faults: frozenset[str], static_ok: set[int]
) -> dict[int, str]:
    """A scenario for each paying demand; each enabled scenario at least once when there
    are enough demands, then by ``SCENARIO_WEIGHTS``."""
    enabled = ["exact"] + [s for s in SCENARIO_WEIGHTS if s != "exact" and s in faults]
    chosen: dict[int, str] = {}
    pool = list(paying)
    for scenario in enabled[1:]:
        need = 2 if scenario == "multi" else 1
        candidates = [d for d in pool if scenario != "static" or d.pk in static_ok]
        if len(pool) - need < 1 or len(candidates) < need:
            continue
        for demand in candidates[:need]:
            chosen[demand.pk] = scenario
            pool.remove(demand)
    weights = [SCENARIO_WEIGHTS[s] for s in enabled]
    for demand in pool:
        scenario = rng.choices(enabled, weights=weights)[0]
        if scenario == "static" and demand.pk not in static_ok:
            scenario = "exact"
        chosen[demand.pk] = scenario
    return chosen


def _pair_multi(rng: random.Random, demands: list[FeeDemand]) -> list[tuple[FeeDemand, ...]]:
    """Pairs for one-transfer-two-demands: same holder first (a holder with two stalls),
    then any two (a relative paying for both); an odd one left pays alone."""
    by_holder: dict[int, list[FeeDemand]] = {}
    for demand in demands:
        by_holder.setdefault(demand.holder_id, []).append(demand)
    pairs: list[tuple[FeeDemand, ...]] = []
    rest: list[FeeDemand] = []
    for group in by_holder.values():
        while len(group) >= 2:
            pairs.append((group.pop(), group.pop()))
        rest.extend(group)
    rng.shuffle(rest)
    while len(rest) >= 2:
        pairs.append((rest.pop(), rest.pop()))
    pairs.extend((d,) for d in rest)
    return pairs


def simulation_plan(
    *, connection: BankConnection, period: date, options: SimulationOptions
) -> Plan:
    """Plan a month of transfers for the open demands of ``period`` and their deliveries."""
    rng = random.Random(options.seed)
    faults = options.faults
    market = connection.market
    provider = connection.provider
    demands = [
        d
        for d in FeeDemand.objects.filter(market=market, period=period, status__in=OPEN_STATUSES)
        .select_related("stall", "holder")
        .order_by("id")
        if d.outstanding_vnd > 0
    ]
    open_per_stall = dict(
        FeeDemand.objects.filter(market=market, status__in=OPEN_STATUSES)
        .order_by()
        .values("stall_id")
        .annotate(n=Count("id"))
        .values_list("stall_id", "n")
    )
    # A static-code payment pays the stall's open demands oldest first; only stalls
    # whose one open demand is this one keep the expectation independent of others.
    static_ok = {d.pk for d in demands if open_per_stall.get(d.stall_id) == 1}

    shuffled = list(demands)
    rng.shuffle(shuffled)
    paying = shuffled[: round(len(shuffled) * options.share_paid)]
    scenarios = _choose_scenarios(rng, paying, faults, static_ok)

    writer = ContentWriter(
        rng,
        mangle="mangle" in faults,
        account_number=connection.account.account_number,
        market=market.code,
    )
    last_day = ((period + timedelta(days=32)).replace(day=1) - timedelta(days=1)).day
    used_times: set[datetime] = set()

    def bank_time() -> datetime:
        while True:
            moment = datetime(
                period.year,
                period.month,
                rng.randint(1, last_day),
                rng.randint(6, 21),
                rng.randint(0, 59),
                rng.randint(0, 59),
                tzinfo=VN_TZ,
            )
            if moment not in used_times:
                used_times.add(moment)
                return moment

    drafts: list[dict[str, Any]] = []
    expectations: dict[str, dict[str, Any]] = {}

    def expect(demand: FeeDemand, allocated: int) -> None:
        paid = demand.paid_vnd + allocated
        expectations[demand.payment_code] = {
            "total_vnd": demand.total_vnd,
            "paid_before_vnd": demand.paid_vnd,
            "expected_paid_vnd": paid,
            "expected_status": FeeDemand.status_for(demand.total_vnd, paid),
        }

    def draft(
        *,
        expected: str,
        amount: int,
        note: str,
        codes: list[str],
        code_kind: str,
        payer: str,
        allocations: list[tuple[str, int]],
        credit: int = 0,
        direction: str = "in",
        same_holder: bool | None = None,
        split_allowed: bool = True,
        is_test: bool = False,
        forged: bool = False,
    ) -> None:
        drafts.append(
            dict(
                expected=expected,
                amount=amount,
                note=note,
                codes=codes,
                code_kind=code_kind,
                payer=payer,
                allocations=allocations,
                credit=credit,
                direction=direction,
                same_holder=same_holder,
                split_allowed=split_allowed,
                is_test=is_test,
                forged=forged,
                when=bank_time(),
            )
        )

    multi = [d for d in paying if scenarios[d.pk] == "multi"]
    for group in _pair_multi(rng, multi):
        if len(group) == 1:
            scenarios[group[0].pk] = "exact"
            continue
        a, b = group
        codes = [a.payment_code, b.payment_code]
        note = writer.note("multi", codes, name=a.holder.full_name, stall="", period=period)
        draft(
            expected="multi",
            amount=a.outstanding_vnd + b.outstanding_vnd,
            note=note,
            codes=codes,
            code_kind="demand",
            payer=a.holder.full_name,
            allocations=[(a.payment_code, a.outstanding_vnd), (b.payment_code, b.outstanding_vnd)],
            same_holder=a.holder_id == b.holder_id,
        )
        expect(a, a.outstanding_vnd)
        expect(b, b.outstanding_vnd)

    for demand in paying:
        scenario = scenarios[demand.pk]
        if scenario == "multi":
            continue
        due = demand.outstanding_vnd
        name, stall = demand.holder.full_name, demand.stall.code
        code = demand.payment_code

        def note_for(kind: str, codes: list[str], *, _name=name, _stall=stall) -> str:
            return writer.note(kind, codes, name=_name, stall=_stall, period=period)

        if scenario == "partial" and due >= 2000:
            amount = max(1000, (due * rng.randint(30, 90) // 100) // 1000 * 1000)
            amount = min(amount, due - 1000)
            draft(
                expected="partial",
                amount=amount,
                note=note_for("demand", [code]),
                codes=[code],
                code_kind="demand",
                payer=name,
                allocations=[(code, amount)],
            )
            expect(demand, amount)
        elif scenario == "over":
            surplus = rng.choice([1000, 5000, 10_000, 50_000, 100_000])
            draft(
                expected="over",
                amount=due + surplus,
                note=note_for("demand", [code]),
                codes=[code],
                code_kind="demand",
                payer=name,
                allocations=[(code, due)],
                credit=surplus,
            )
            expect(demand, due)
        elif scenario == "split" and due >= 2000:
            first = max(1000, (due * rng.randint(30, 70) // 100) // 1000 * 1000)
            first = min(first, due - 1000)
            template = note_for("split", [code])
            for part, amount in ((1, first), (2, due - first)):
                draft(
                    expected="split",
                    amount=amount,
                    note=template.replace("{part}", str(part)),
                    codes=[code],
                    code_kind="demand",
                    payer=name,
                    allocations=[(code, amount)],
                )
            expect(demand, due)
        elif scenario == "static":
            static = demand.stall.payment_code
            draft(
                expected="static",
                amount=due,
                note=note_for("stall", [static]),
                codes=[static],
                code_kind="stall",
                payer=name,
                allocations=[(code, due)],
            )
            expect(demand, due)
        elif scenario == "no_code":
            draft(
                expected="unmatched",
                amount=due,
                note=note_for("none", []),
                codes=[],
                code_kind="none",
                payer=name,
                allocations=[],
            )
            expect(demand, 0)
        elif scenario == "wrong_code":
            wrong = corrupt_code(code, rng)
            draft(
                expected="unmatched",
                amount=due,
                note=note_for("wrong", [wrong]),
                codes=[wrong],
                code_kind="wrong",
                payer=name,
                allocations=[],
            )
            expect(demand, 0)
        else:
            draft(
                expected="exact",
                amount=due,
                note=note_for("demand", [code]),
                codes=[code],
                code_kind="demand",
                payer=name,
                allocations=[(code, due)],
            )
            expect(demand, due)

    # Open demands nobody pays this month must stay exactly as they are.
    for demand in demands:
        if demand.payment_code not in expectations:
            expect(demand, 0)

    if "outgoing" in faults and provider != Provider.PAYOS:
        for _ in range(1 + len(demands) // 80):
            draft(
                expected="outgoing",
                amount=rng.randint(5, 50) * 100_000,
                note=rng.choice(
                    [
                        f"TT tien dien thang {period.month} {market.code}",
                        "Chi tra luong bao ve",
                        "Nop thue GTGT",
                    ]
                ),
                codes=[],
                code_kind="none",
                payer=f"BQL {market.code}",
                allocations=[],
                direction="out",
            )

    # Chronological order at the bank: ids, references and running balances follow it.
    drafts.sort(key=lambda d: d["when"])
    number = _next_number(connection, rng)
    balance = connection.last_balance_vnd
    if balance is None:
        balance = rng.randint(200, 800) * 100_000
    opening = balance
    carries_balance = provider in (Provider.SEPAY, Provider.CASSO, Provider.SIMULATOR)

    transfers: list[PlannedTransfer] = []
    for d in drafts:
        ptid, reference = _ids(provider, number, rng)
        number += 1
        balance += d["amount"] if d["direction"] == "in" else -d["amount"]
        transfers.append(
            _make_transfer(
                d,
                ptid=ptid,
                reference=reference,
                balance=balance if carries_balance else None,
                writer=writer,
                connection=connection,
                rng=rng,
            )
        )

    if "missed_webhook" in faults:
        candidates = [
            i
            for i, t in enumerate(transfers)
            if t.expected == "exact" and 0 < i < len(transfers) - 1
        ]
        if candidates:
            missed = transfers[rng.choice(candidates)]
            missed.delivered = False
            missed.expected = "not-delivered"
            for code, _amount in missed.allocations:
                expectations[code]["expected_paid_vnd"] = expectations[code]["paid_before_vnd"]
                expectations[code]["expected_status"] = FeeDemand.status_for(
                    expectations[code]["total_vnd"], expectations[code]["paid_before_vnd"]
                )
            missed.allocations = []

    specials: list[PlannedTransfer] = []
    if "test_call" in faults and provider != Provider.SEPAY:
        specials.append(_test_call(provider, connection, number, rng, transfers))
        number += 1
    forged: list[PlannedTransfer] = []
    if "bad_signature" in faults and demands:
        for _ in range(1 + len(demands) // 150):
            victim = rng.choice(demands)
            ptid, reference = _ids(provider, number, rng)
            number += 1
            note = writer.note(
                "demand",
                [victim.payment_code],
                name=victim.holder.full_name,
                stall=victim.stall.code,
                period=period,
            )
            forged.append(
                _make_transfer(
                    dict(
                        expected="rejected-signature",
                        amount=victim.outstanding_vnd,
                        note=note,
                        codes=[victim.payment_code],
                        code_kind="demand",
                        payer=victim.holder.full_name,
                        allocations=[],
                        credit=0,
                        direction="in",
                        same_holder=None,
                        split_allowed=True,
                        is_test=False,
                        forged=True,
                        when=bank_time(),
                    ),
                    ptid=ptid,
                    reference=reference,
                    balance=None,
                    writer=writer,
                    connection=connection,
                    rng=rng,
                )
            )

    all_transfers = specials + transfers + forged
    deliveries = _plan_deliveries(
        rng,
        connection=connection,
        transfers=all_transfers,
        n_specials=len(specials),
        n_forged=len(forged),
        faults=faults,
    )
    return Plan(
        connection=connection,
        period=period,
        options=options,
        transfers=all_transfers,
        deliveries=deliveries,
        demands=expectations,
        opening_balance_vnd=opening if carries_balance else None,
    )


def _make_transfer(
    d: dict[str, Any],
    *,
    ptid: str,
    reference: str,
    balance: int | None,
    writer: ContentWriter,
    connection: BankConnection,
    rng: random.Random,
) -> PlannedTransfer:
    provider = connection.provider
    content = writer.deliverable(
        d["note"], d["codes"], payer=d["payer"], when=d["when"], split_allowed=d["split_allowed"]
    )
    text = content.content
    description = content.description
    if provider != Provider.SEPAY and description:
        text, description = description, None
    provider_code = None
    if provider == Provider.SEPAY:
        provider_code = _sepay_code(text)
    elif provider == Provider.PAYOS:
        # payOS's orderCode is our order number; a demand's digits, or any number.
        provider_code = str(rng.randint(10_000, 99_999_999))
    transfer = Transfer(
        provider_transaction_id=ptid,
        direction=d["direction"],
        amount_vnd=d["amount"],
        content=text,
        description=description,
        bank_reference=reference,
        counter_account=_digits(rng, rng.choice([10, 12, 13])) if d["direction"] == "in" else None,
        counter_name=ascii_upper(d["payer"]) if d["direction"] == "in" else None,
        counter_bank=rng.choice(COUNTER_BANKS) if d["direction"] == "in" else None,
        account_number=connection.account.account_number,
        bank_time=d["when"],
        running_balance_vnd=balance,
        provider_code=provider_code,
        is_test=d["is_test"],
    )
    return PlannedTransfer(
        transfer=transfer,
        expected=d["expected"],
        codes=d["codes"],
        code_kind=d["code_kind"],
        note=d["note"],
        mangling=content.mangling,
        allocations=d["allocations"],
        credit_vnd=d["credit"],
        forged=d["forged"],
        same_holder=d["same_holder"],
    )


def _test_call(
    provider: str,
    connection: BankConnection,
    number: int,
    rng: random.Random,
    transfers: list[PlannedTransfer],
) -> PlannedTransfer:
    """The provider's test call (webhooks.md §4.1, §6.3), just before the first transfer.
    It carries no running balance, so it cannot break the balance chain."""
    first = transfers[0].transfer.bank_time if transfers else timezone.now()
    when = first - timedelta(minutes=5)
    if provider == Provider.CASSO:
        ptid, reference, content = "0", casso.TEST_REFERENCE, "giao dich thu nghiem"
    elif provider == Provider.PAYOS:
        ptid, reference = _ids(provider, number, rng)
        content = payos.TEST_DESCRIPTION
    else:
        ptid, reference = _ids(provider, number, rng)
        content = "Giao dich thu nghiem"
    transfer = Transfer(
        provider_transaction_id=ptid,
        direction="in",
        amount_vnd=599_000 if provider == Provider.CASSO else 3000,
        content=content,
        bank_reference=reference,
        account_number=connection.account.account_number,
        bank_time=when,
        provider_code=str(rng.randint(100, 999)) if provider == Provider.PAYOS else None,
        is_test=True,
    )
    return PlannedTransfer(
        transfer=transfer,
        expected="test",
        codes=[],
        code_kind="none",
        note=content,
        mangling=[],
        allocations=[],
    )


def _plan_deliveries(
    rng: random.Random,
    *,
    connection: BankConnection,
    transfers: list[PlannedTransfer],
    n_specials: int,
    n_forged: int,
    faults: frozenset[str],
) -> list[PlannedDelivery]:
    provider = connection.provider
    batching = provider == Provider.SIMULATOR or (
        provider == Provider.CASSO and (connection.options or {}).get("version") == "v1"
    )
    genuine = [i for i in range(n_specials, len(transfers) - n_forged) if transfers[i].delivered]
    groups: list[list[int]] = [[i] for i in range(n_specials)]
    position = 0
    while position < len(genuine):
        size = rng.choice([1, 1, 1, 2, 3]) if batching else 1
        groups.append(genuine[position : position + size])
        position += size

    order: list[PlannedDelivery] = [
        PlannedDelivery(
            number=0, transfers=g, kind="original", variant=_variant(provider, connection, rng)
        )
        for g in groups
    ]
    if "duplicate" in faults:
        originals = [d for d in order if d.kind == "original"]
        picked = [d for d in originals if rng.random() < 0.1] or originals[:1]
        for original in picked:
            for _copy in range(rng.choice([1, 1, 1, 2])):
                redelivery = PlannedDelivery(
                    number=0,
                    transfers=list(original.transfers),
                    kind="redelivery",
                    variant=_variant(provider, connection, rng),
                    original=original,
                )
                at = order.index(original) + rng.randint(1, 15)
                order.insert(min(at, len(order)), redelivery)
    for i in range(len(transfers) - n_forged, len(transfers)):
        forged = PlannedDelivery(
            number=0, transfers=[i], kind="forged", variant=_variant(provider, connection, rng)
        )
        order.insert(rng.randint(0, len(order)), forged)
    first_regular = n_specials
    if "out_of_order" in faults and len(order) > first_regular + 2:
        swaps = max(1, len(order) // 7)
        for _ in range(swaps):
            i = rng.randint(first_regular, len(order) - 2)
            j = min(len(order) - 1, i + rng.randint(1, 3))
            order[i], order[j] = order[j], order[i]
    if "late" in faults and len(order) > first_regular + 2:
        late = [d for d in order[first_regular:] if rng.random() < 0.05] or [order[first_regular]]
        for delivery in late:
            order.remove(delivery)
            delivery.late = True
            order.append(delivery)
    candidates = [d for d in order if d.kind != "forged"]
    if "server_error" in faults and candidates:
        flaky = [d for d in candidates if rng.random() < 0.05] or candidates[:1]
        # The first one meets each kind of failure once; the others 1 to 3 at random.
        flaky[0].gateway_failures = ["503", "502", "refused"]
        for delivery in flaky[1:]:
            delivery.gateway_failures = [
                rng.choice(["503", "503", "502", "refused"]) for _ in range(rng.randint(1, 3))
            ]
    for n, delivery in enumerate(order, 1):
        delivery.number = n
    for delivery in order:
        if delivery.original is not None:
            delivery.duplicate_of = delivery.original.number
    return order


# --- transports --------------------------------------------------------------------------


class DeliveryError(Exception):
    """The request never got an HTTP answer (refused, reset, timed out)."""


class Transport(Protocol):
    label: str

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]: ...

    def close(self) -> None: ...


class HttpTransport:
    """HTTP/1.1 with keep-alive, one connection per thread (http.client)."""

    def __init__(self, base_url: str, *, timeout_s: float = 30.0):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.label = base_url.rstrip("/")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = (
                http.client.HTTPSConnection
                if self.scheme == "https"
                else http.client.HTTPConnection
            )
            conn = cls(self.host, self.port, timeout=self.timeout_s)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        for attempt in (1, 2):
            conn = self._connection()
            reused = conn.sock is not None
            try:
                conn.request("POST", self.prefix + path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                return response.status, data
            except (OSError, http.client.HTTPException) as error:
                conn.close()
                # A keep-alive connection the server had already closed: send again on
                # a fresh one, as every HTTP client does, before calling it a failure.
                if attempt == 1 and reused and not isinstance(error, TimeoutError):
                    continue
                raise DeliveryError(f"{type(error).__name__}: {error}") from error
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


class InProcessTransport:
    """The real endpoint through ``django.test.Client``: same URLconf, middleware,
    view and signatures, no socket."""

    label = "in-process"

    def __init__(self) -> None:
        from django.test import Client

        hosts = [h for h in settings.ALLOWED_HOSTS if h and "*" not in h and h[0] != "."]
        self.host = hosts[0] if hosts else "testserver"
        self.secure = bool(getattr(settings, "SECURE_SSL_REDIRECT", False))
        self.client = Client()

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        extra = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        extra["Host"] = self.host
        response = self.client.post(
            path,
            data=body,
            content_type=headers.get("Content-Type", "application/json"),
            headers=extra,
            secure=self.secure,
        )
        return response.status_code, response.content

    def close(self) -> None:
        pass


class _Unavailable(BaseHTTPRequestHandler):
    """What a proxy in front of a restarting service answers."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        status = 502 if self.path.startswith("/502") else 503
        body = b'{"message":"Service Unavailable"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FlakyGateway:
    """Real loopback HTTP that fails: a server answering 503/502, and a closed port."""

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.http = HttpTransport(f"http://127.0.0.1:{self.server.server_address[1]}", timeout_s=5)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.closed_port = sock.getsockname()[1]
        self.refused = HttpTransport(f"http://127.0.0.1:{self.closed_port}", timeout_s=5)

    def post(self, failure: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if failure == "refused":
            return self.refused.post("/", body, headers)
        return self.http.post(f"/{failure}/", body, headers)

    def close(self) -> None:
        self.http.close()
        self.refused.close()
        self.server.shutdown()
        self.server.server_close()


# --- delivering ------------------------------------------------------------------------------


def _wrong_key(secret: str) -> str:
    return "wrong-" + hashlib.sha256(secret.encode()).hexdigest()[:24]


def build_signed(
    plan: Plan, delivery: PlannedDelivery, *, now: datetime
) -> tuple[bytes, dict[str, str]]:
    """The delivery's body and headers, signed now (a retry is signed again, so its
    timestamp stays fresh, as a provider's retry is)."""
    connection = plan.connection
    module = PROVIDERS[connection.provider]
    secret = connection.secret
    if delivery.kind == "forged":
        secret = _wrong_key(secret)
    transfers = [plan.transfers[i].transfer for i in delivery.transfers]
    return module.build_delivery(transfers, secret, now=now, **delivery.variant)


@dataclass
class _Job:
    delivery: PlannedDelivery
    attempt: int = 1
    planned_delay_ms: int = 0


def deliver(
    deliveries: list[PlannedDelivery],
    *,
    sign: Callable[[PlannedDelivery], tuple[bytes, dict[str, str]]],
    transport: Transport,
    path: str,
    backoff_ms: int = 1000,
    late_ms: int = 2000,
    concurrency: int = 1,
    gateway: FlakyGateway | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Send every delivery, retrying on SePay's schedule; records attempts on each.

    Deliveries are sent in list order (late ones ``late_ms`` after the start), at most
    ``concurrency`` at a time; a retry is due ``retry_delays_ms(backoff_ms)[n]`` after
    the failed attempt and other deliveries go on meanwhile, as in a provider's queue.
    """
    delays = retry_delays_ms(backoff_ms)
    start = time.monotonic()
    heap: list[tuple[float, int, _Job]] = []
    seq = 0

    def push(due_s: float, job: _Job) -> None:
        # Equal due times keep list order: the sequence number breaks ties.
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (due_s, seq, job))

    for delivery in deliveries:
        push(late_ms / 1000 if delivery.late else 0.0, _Job(delivery))

    completed = 0

    def attempt(job: _Job) -> dict[str, Any]:
        delivery = job.delivery
        body, headers = sign(delivery)
        record: dict[str, Any] = {
            "attempt": job.attempt,
            "at_ms": round((time.monotonic() - start) * 1000),
            "planned_delay_ms": job.planned_delay_ms,
        }
        failure = (
            delivery.gateway_failures[job.attempt - 1]
            if job.attempt <= len(delivery.gateway_failures)
            else None
        )
        try:
            if failure is not None:
                if gateway is None:
                    raise RuntimeError("gateway failures need a FlakyGateway")
                record["via"] = f"gateway-{failure}"
                status, _data = gateway.post(failure, body, headers)
            else:
                record["via"] = "endpoint"
                status, _data = transport.post(path, body, headers)
            record["status"] = status
        except DeliveryError as error:
            record["status"] = None
            record["error"] = str(error)[:200]
        delivery.body_sha256 = hashlib.sha256(body).hexdigest()
        return record

    def settle(job: _Job, record: dict[str, Any]) -> None:
        nonlocal completed
        delivery = job.delivery
        delivery.attempts.append(record)
        status = record["status"]
        if status is not None and 200 <= status < 300:
            delivery.outcome = "delivered"
        elif delivery.kind == "forged":
            delivery.outcome = "rejected" if status is not None else "failed"
        elif job.attempt < MAX_ATTEMPTS:
            wait_ms = delays[job.attempt - 1]
            push(
                time.monotonic() - start + wait_ms / 1000,
                _Job(delivery, job.attempt + 1, wait_ms),
            )
            return
        else:
            delivery.outcome = "failed"
        completed += 1
        delivery.completed_seq = completed

    if concurrency == 1:
        while heap:
            due, _seq, job = heap[0]
            now = time.monotonic() - start
            if due > now:
                sleep(due - now)
                continue
            heapq.heappop(heap)
            settle(job, attempt(job))
        return

    in_flight: dict[Future, _Job] = {}
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bank") as pool:
        while heap or in_flight:
            now = time.monotonic() - start
            while heap and heap[0][0] <= now and len(in_flight) < concurrency:
                job = heapq.heappop(heap)[2]
                in_flight[pool.submit(attempt, job)] = job
            timeout = None
            if heap and len(in_flight) < concurrency:
                timeout = max(0.0, heap[0][0] - (time.monotonic() - start))
            if in_flight:
                done, _pending = wait(in_flight, timeout=timeout, return_when=FIRST_COMPLETED)
                for future in done:
                    settle(in_flight.pop(future), future.result())
            elif timeout:
                sleep(timeout)


# --- running and the ledger --------------------------------------------------------------------


@dataclass
class Ledger:
    plan: Plan
    target: str
    started_at: datetime
    finished_at: datetime

    @property
    def summary(self) -> dict[str, int]:
        deliveries = self.plan.deliveries
        attempts = [a for d in deliveries for a in d.attempts]
        statuses = Counter(a["status"] for a in attempts)
        genuine = [d for d in deliveries if d.kind != "forged"]
        return {
            "transfers": sum(1 for t in self.plan.transfers if not t.forged),
            "sent": len(deliveries),
            "attempts": len(attempts),
            "accepted": sum(1 for d in genuine if d.expected_event in ("accepted", "test")),
            "duplicates": sum(1 for d in genuine if d.expected_event == "duplicate"),
            "rejected": sum(1 for d in deliveries if d.outcome == "rejected"),
            "retried": sum(max(0, len(d.attempts) - 1) for d in deliveries),
            "5xx": sum(n for status, n in statuses.items() if status and status >= 500),
            "connection_errors": statuses.get(None, 0),
            "failed": sum(1 for d in deliveries if d.outcome == "failed"),
            "not_delivered": sum(1 for t in self.plan.transfers if not t.delivered),
        }

    def as_json(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "format": "market40-simulator-ledger/1",
            "market": plan.connection.market.code,
            "period": f"{plan.period:%Y-%m}",
            "connection": plan.connection.pk,
            "provider": plan.connection.provider,
            "target": self.target,
            "seed": plan.options.seed,
            "share_paid": plan.options.share_paid,
            "faults": sorted(plan.options.faults),
            "backoff_ms": plan.options.backoff_ms,
            "retry_delays_ms": retry_delays_ms(plan.options.backoff_ms),
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "opening_balance_vnd": plan.opening_balance_vnd,
            "summary": self.summary,
            "transfers": [t.as_json() for t in plan.transfers],
            "deliveries": [d.as_json(plan) for d in plan.deliveries],
            "demands": plan.demands,
        }

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(self.as_json(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
        return path


def _expected_events(plan: Plan) -> None:
    """Which delivery the service should take as new (the first of a set of transfers
    to be answered 2xx) and which as duplicates; exact when deliveries ran one at a
    time, else only the counts are certain (``accepted`` goes to the first to finish)."""
    seen: set[str] = set()
    for delivery in sorted(
        (d for d in plan.deliveries if d.completed_seq is not None),
        key=lambda d: d.completed_seq or 0,
    ):
        ids = {plan.transfers[i].transfer.provider_transaction_id for i in delivery.transfers}
        if delivery.kind == "forged":
            delivery.expected_event = "rejected" if delivery.outcome == "rejected" else None
        elif delivery.outcome != "delivered":
            delivery.expected_event = None
        elif all(plan.transfers[i].transfer.is_test for i in delivery.transfers):
            delivery.expected_event = "test"
            seen |= ids
        elif ids <= seen:
            delivery.expected_event = "duplicate"
        else:
            delivery.expected_event = "accepted"
            seen |= ids


def simulation_run(
    *,
    connection: BankConnection,
    period: date,
    options: SimulationOptions,
    url: str | None = None,
    transport: Transport | None = None,
) -> Ledger:
    """Plan and deliver; returns the ledger (not yet written)."""
    plan = simulation_plan(connection=connection, period=period, options=options)
    return deliver_plan(plan, url=url, transport=transport)


def deliver_plan(
    plan: Plan, *, url: str | None = None, transport: Transport | None = None
) -> Ledger:
    options = plan.options
    if transport is None:
        transport = HttpTransport(url, timeout_s=options.timeout_s) if url else InProcessTransport()
    if isinstance(transport, InProcessTransport) and options.concurrency != 1:
        # The test client shares this thread's database connection and transaction.
        options = dataclasses.replace(options, concurrency=1)
    gateway = FlakyGateway() if any(d.gateway_failures for d in plan.deliveries) else None
    started = timezone.now()
    try:
        deliver(
            plan.deliveries,
            sign=lambda delivery: build_signed(plan, delivery, now=timezone.now()),
            transport=transport,
            path=plan.connection.webhook_path,
            backoff_ms=options.backoff_ms,
            late_ms=options.late_ms,
            concurrency=options.concurrency,
            gateway=gateway,
        )
    finally:
        transport.close()
        if gateway is not None:
            gateway.close()
    _expected_events(plan)
    return Ledger(plan=plan, target=transport.label, started_at=started, finished_at=timezone.now())


def default_ledger_path(market_code: str, period: date) -> Path:
    return Path(settings.VAR_DIR) / f"simulator-ledger-{market_code}-{period:%Y-%m}.json"


def ledger_stored_check(ledger: dict[str, Any], connection: BankConnection) -> dict[str, int]:
    """What the service stored against what the ledger says it should: transfers that
    should exist (delivered, not forged) and do, are missing, or exist but should not."""
    carried = {
        ptid
        for d in ledger["deliveries"]
        if d["outcome"] == "delivered"
        for ptid in d["provider_transaction_ids"]
    }
    should = {
        t["provider_transaction_id"]
        for t in ledger["transfers"]
        if t["delivered"] and not t["forged"] and t["provider_transaction_id"] in carried
    }
    should_not = {
        t["provider_transaction_id"]
        for t in ledger["transfers"]
        if t["provider_transaction_id"] not in should
    }
    stored = set(
        BankTransaction.objects.filter(
            connection=connection,
            provider_transaction_id__in=should | should_not,
        ).values_list("provider_transaction_id", flat=True)
    )
    return {
        "expected": len(should),
        "stored": len(should & stored),
        "missing": len(should - stored),
        "unexpected": len(should_not & stored),
    }


# --- one click on the demo page ------------------------------------------------------------


def simulate_one_payment(
    *, connection: BankConnection, demand: FeeDemand, transport: Transport | None = None
) -> PlannedDelivery:
    """One exact transfer for ``demand``, now, delivered through the same path as a run
    (signed with the connection's secret, posted to the real endpoint)."""
    rng = random.Random()
    number = _next_number(connection, rng)
    ptid, reference = _ids(connection.provider, number, rng)
    balance = None
    if connection.provider in (Provider.SEPAY, Provider.CASSO, Provider.SIMULATOR):
        balance = (connection.last_balance_vnd or 50_000_000) + demand.outstanding_vnd
    content = f"{demand.payment_code} {ascii_upper(demand.holder.full_name)} CK"
    transfer = Transfer(
        provider_transaction_id=ptid,
        direction="in",
        amount_vnd=demand.outstanding_vnd,
        content=content,
        bank_reference=reference,
        counter_name=ascii_upper(demand.holder.full_name),
        counter_bank=rng.choice(COUNTER_BANKS),
        counter_account=_digits(rng, 12),
        account_number=connection.account.account_number,
        bank_time=timezone.now().astimezone(VN_TZ).replace(microsecond=0),
        running_balance_vnd=balance,
        provider_code=(
            _sepay_code(content)
            if connection.provider == Provider.SEPAY
            else str(rng.randint(10_000, 99_999_999))
            if connection.provider == Provider.PAYOS
            else None
        ),
    )
    planned = PlannedTransfer(
        transfer=transfer,
        expected="exact",
        codes=[demand.payment_code],
        code_kind="demand",
        note=content,
        mangling=[],
        allocations=[(demand.payment_code, demand.outstanding_vnd)],
    )
    delivery = PlannedDelivery(
        number=1,
        transfers=[0],
        kind="original",
        variant=_variant(connection.provider, connection, rng),
    )
    plan = Plan(
        connection=connection,
        period=demand.period,
        options=SimulationOptions(),
        transfers=[planned],
        deliveries=[delivery],
        demands={},
        opening_balance_vnd=None,
    )
    deliver_plan(plan, transport=transport or InProcessTransport())
    return delivery
