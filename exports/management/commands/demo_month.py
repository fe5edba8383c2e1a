"""``manage.py demo_month``: one whole month of a market, end to end (see ``exports.month``)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from exports.month import DEMO_MARKET, SERVERS, MonthOptions, format_summary, month_run
from market40.errors import DomainError
from market40.progress import ProgressBar
from market40.services import parse_period
from payments.models import Provider
from payments.simulator import FAULTS, parse_faults


class Command(BaseCommand):
    help = (
        "Chạy trọn một tháng trên cơ sở dữ liệu đang cấu hình: tạo chợ mẫu (nếu chưa có) → lập "
        "phí kỳ → ngân hàng mô phỏng trả tiền qua HTTP thật tới một máy chủ web tự khởi động "
        "trên cổng loopback trống (kèm các lỗi thường gặp) → đối soát → xuất và ký hóa đơn → "
        "kiểm tra từng hóa đơn → ghi mọi tệp xuất vào một thư mục; in bảng tóm tắt và các bất "
        "biến (OK/FAIL), mã thoát khác 0 nếu có bất biến không đạt. Chạy lại cùng chợ, kỳ, nhà "
        "cung cấp và thư mục thì không lập phí lại, không gửi lại (đã có sổ ghi "
        "ledger-<nhà cung cấp>.json), không xuất hóa đơn trùng: chỉ kiểm tra lại và ghi lại tệp."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--stalls",
            type=int,
            default=200,
            help="Số sạp của chợ mẫu khi phải tạo mới (mặc định 200; chợ đã có thì giữ nguyên).",
        )
        parser.add_argument(
            "--provider",
            default=Provider.SEPAY,
            choices=Provider.values,
            help="Định dạng webhook của ngân hàng mô phỏng (mặc định sepay).",
        )
        parser.add_argument(
            "--market", default=DEMO_MARKET, help=f"Mã chợ (mặc định {DEMO_MARKET})."
        )
        parser.add_argument(
            "--period", help="Kỳ YYYY-MM (mặc định tháng hiện tại theo giờ Việt Nam)."
        )
        parser.add_argument(
            "--out",
            help="Thư mục ghi tệp xuất, sổ ghi ngân hàng và nhật ký máy chủ (mặc định "
            "<MARKET40_VAR_DIR>/demo_month/<MÃ CHỢ>-<YYYY-MM>/, tức var/demo_month/… ).",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=2026,
            help="Hạt giống ngẫu nhiên của chợ mẫu và ngân hàng mô phỏng (mặc định 2026).",
        )
        parser.add_argument(
            "--faults",
            default="all",
            help="Lỗi giả lập: all (mặc định), none hoặc danh sách cách nhau bởi dấu phẩy: "
            + ", ".join(FAULTS),
        )
        parser.add_argument(
            "--share-paid",
            type=float,
            default=0.8,
            help="Tỷ lệ phiếu được chuyển tiền (mặc định 0.8).",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=8,
            help="Số webhook gửi đồng thời (mặc định 8).",
        )
        parser.add_argument(
            "--backoff-ms",
            type=int,
            default=1000,
            help="Đơn vị chờ giữa các lần gửi lại, Fibonacci 1,1,2,3,5,8,13 lần (mặc định "
            "1000 ms; SePay thật: 1 phút).",
        )
        parser.add_argument(
            "--late-ms",
            type=int,
            default=2000,
            help="Các lần gửi trễ đi sau bấy nhiêu ms (mặc định 2000).",
        )
        parser.add_argument(
            "--server",
            default="auto",
            choices=SERVERS,
            help="Máy chủ web nhận webhook: auto (mặc định: gunicorn nếu đã cài, nếu không "
            "thì runserver), gunicorn, runserver, hoặc in-process (không có máy chủ, gửi "
            "trong tiến trình; chỉ để thử nhanh).",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=2,
            help="Số tiến trình gunicorn (mặc định 2, bằng số nhân CPU của máy dev/CI).",
        )
        parser.add_argument("--progress", action="store_true", help="Luôn hiện thanh tiến độ.")

    def handle(self, **o):
        if not 1 <= o["stalls"] <= 200_000:
            raise CommandError("--stalls phải từ 1 đến 200000.")
        if o["concurrency"] < 1 or o["workers"] < 1:
            raise CommandError("--concurrency và --workers phải lớn hơn 0.")
        try:
            period = parse_period(o["period"]) if o["period"] else None
            faults = parse_faults(o["faults"])
        except DomainError as error:
            raise CommandError(error.message) from None
        except ValueError as error:
            raise CommandError(f"--faults không hợp lệ: {error}") from None
        if not 0 <= o["share_paid"] <= 1:
            raise CommandError("--share-paid phải nằm trong khoảng 0…1.")
        options = MonthOptions(
            market_code=o["market"].upper(),
            stalls=o["stalls"],
            provider=o["provider"],
            period=period,
            out_dir=Path(o["out"]).expanduser().resolve() if o["out"] else None,
            seed=o["seed"],
            faults=faults,
            share_paid=o["share_paid"],
            concurrency=o["concurrency"],
            backoff_ms=max(0, o["backoff_ms"]),
            late_ms=max(0, o["late_ms"]),
            server=o["server"],
            workers=o["workers"],
        )
        self.stdout.write(
            f"Một tháng trọn vẹn / a whole month: chợ {options.market_code}, kỳ "
            f"{options.resolved_period():%m/%Y}, {options.provider}, lỗi giả lập: "
            f"{', '.join(sorted(faults)) or 'không'}"
        )

        def progress(label: str) -> ProgressBar:
            return ProgressBar(label, stream=self.stderr, force=o["progress"])

        try:
            result = month_run(options=options, progress=progress, say=self._say)
        except DomainError as error:
            raise CommandError(error.message) from None
        except KeyboardInterrupt:
            # The web server has been stopped by then (month_run's finally blocks).
            raise CommandError(
                "Đã dừng theo yêu cầu (Ctrl-C); máy chủ web đã tắt. Chạy lại để tiếp tục: kỳ "
                "đã lập phí không bị lập lại.",
                returncode=130,
            ) from None

        self.stdout.write("")
        self.stdout.write(f"Tóm tắt / summary ({result.out_dir}):")
        for line in format_summary(result):
            self.stdout.write(line)
        self.stdout.write("")
        self.stdout.write("Bất biến / invariants:")
        for check in result.checks:
            mark = self.style.SUCCESS("OK  ") if check.ok else self.style.ERROR("FAIL")
            self.stdout.write(f"  {mark} {check.name}: {check.detail}")
        failed = [check.name for check in result.checks if not check.ok]
        if failed:
            raise CommandError(
                f"{len(failed)}/{len(result.checks)} bất biến KHÔNG đạt: {'; '.join(failed)}."
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Mọi bất biến đều đạt ({len(result.checks)}/{len(result.checks)}) trong "
                f"{result.total_seconds:.1f} s."
            )
        )

    def _say(self, line: str) -> None:
        self.stdout.write(f"  {line}")
