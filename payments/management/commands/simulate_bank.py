"""``manage.py simulate_bank MARKET_CODE YYYY-MM --connection ID``: a month of stall
holders paying, delivered to the webhook endpoint as the connection's bank aggregator
would (see ``payments.simulator``)."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from market40.commands import market_argument
from market40.errors import DomainError
from market40.services import parse_period
from payments.models import BankConnection
from payments.simulator import (
    FAULTS,
    MAX_ATTEMPTS,
    SimulationOptions,
    default_ledger_path,
    ledger_stored_check,
    parse_faults,
    simulation_run,
)


class Command(BaseCommand):
    help = (
        "Giả lập ngân hàng/nhà cung cấp của một kết nối: tạo các lệnh chuyển khoản cho các "
        "phiếu chưa thanh toán của kỳ và gửi webhook có chữ ký thật tới máy chủ (--url) hoặc "
        "trong tiến trình. Lỗi giả lập (--faults): all, none hoặc danh sách: " + ", ".join(FAULTS)
    )

    def add_arguments(self, parser):
        parser.add_argument("market_code")
        parser.add_argument("period", help="YYYY-MM")
        parser.add_argument("--connection", required=True, help="Mã kết nối ngân hàng.")
        parser.add_argument(
            "--url",
            help="Gửi qua HTTP tới máy chủ này, ví dụ http://127.0.0.1:8000; "
            "bỏ trống để gửi trong tiến trình (django.test.Client).",
        )
        parser.add_argument("--seed", type=int, default=2026)
        parser.add_argument(
            "--share-paid", type=float, default=0.8, help="Tỷ lệ phiếu được chuyển tiền."
        )
        parser.add_argument(
            "--faults", default="none", help="all, none hoặc danh sách, cách nhau bởi dấu phẩy."
        )
        parser.add_argument("--ledger", help="Tệp JSON ghi lại những gì đã gửi.")
        parser.add_argument(
            "--backoff-ms",
            type=int,
            default=1000,
            help="Đơn vị chờ giữa các lần gửi lại (Fibonacci 1,1,2,3,5,8,13 lần; SePay: 1 phút).",
        )
        parser.add_argument(
            "--late-ms", type=int, default=2000, help="Các lần gửi trễ đi sau bấy nhiêu ms."
        )
        parser.add_argument(
            "--concurrency", type=int, default=1, help="Số lần gửi đồng thời (chỉ với --url)."
        )
        parser.add_argument("--timeout", type=float, default=30.0, help="Giây chờ mỗi lần gửi.")
        parser.add_argument(
            "--no-check",
            action="store_true",
            help="Không đối chiếu sổ ghi với các giao dịch trong cơ sở dữ liệu sau khi gửi.",
        )

    def handle(self, market_code, period, connection, url, seed, share_paid, faults, ledger, **o):
        market = market_argument(market_code)
        try:
            first = parse_period(period)
        except DomainError as error:
            raise CommandError(error.message) from None
        conn = (
            BankConnection.objects.select_related("market", "account").filter(pk=connection).first()
        )
        if conn is None or conn.market_id != market.pk:
            raise CommandError(f"Chợ {market.code} không có kết nối ngân hàng “{connection}”.")
        if not conn.active:
            raise CommandError(f"Kết nối “{connection}” đang tắt.")
        try:
            options = SimulationOptions(
                seed=seed,
                share_paid=share_paid,
                faults=parse_faults(faults),
                backoff_ms=o["backoff_ms"],
                late_ms=o["late_ms"],
                concurrency=o["concurrency"],
                timeout_s=o["timeout"],
            )
        except ValueError as error:
            raise CommandError(str(error)) from None

        result = simulation_run(connection=conn, period=first, options=options, url=url)
        path = Path(ledger) if ledger else default_ledger_path(market.code, first)
        result.write(path)

        s = result.summary
        self.stdout.write(
            f"Ngân hàng mô phỏng {conn.provider} → {result.target}: chợ {market.code}, "
            f"kỳ {first:%m/%Y}, seed {seed}, lỗi: {', '.join(sorted(options.faults)) or 'không'}"
        )
        self.stdout.write(
            f"  giao dịch {s['transfers']} · đã gửi {s['sent']} (lượt thử {s['attempts']}) · "
            f"nhận mới {s['accepted']} · trùng {s['duplicates']} · bị từ chối {s['rejected']} · "
            f"gửi lại {s['retried']} · 5xx {s['5xx']} · lỗi kết nối {s['connection_errors']} · "
            f"thất bại {s['failed']} · không gửi {s['not_delivered']}"
        )
        self.stdout.write(
            f"  sent {s['sent']}, accepted {s['accepted']}, duplicates {s['duplicates']}, "
            f"rejected {s['rejected']}, retried {s['retried']}, 5xx {s['5xx']}, "
            f"failed {s['failed']}, not delivered {s['not_delivered']}"
        )
        self.stdout.write(f"  sổ ghi / ledger: {path}")
        if not o["no_check"]:
            check = ledger_stored_check(json.loads(path.read_text(encoding="utf-8")), conn)
            line = (
                f"  đối chiếu: {check['stored']}/{check['expected']} giao dịch đã lưu, "
                f"thiếu {check['missing']}, thừa {check['unexpected']}"
            )
            ok = check["missing"] == 0 and check["unexpected"] == 0
            self.stdout.write(self.style.SUCCESS(line) if ok else self.style.ERROR(line))
        if s["failed"]:
            raise CommandError(f"{s['failed']} lần gửi thất bại sau {MAX_ATTEMPTS} lượt thử.")
