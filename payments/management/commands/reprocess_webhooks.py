from django.core.management.base import BaseCommand
from django.db.models import Q

from market40.progress import ProgressBar
from payments.models import WebhookEvent
from payments.services import event_reprocess


class Command(BaseCommand):
    help = (
        "Xử lý lại các lần gọi webhook hợp lệ (đối soát lại). Chạy nhiều lần không tạo "
        "giao dịch hay phân bổ trùng."
    )

    def add_arguments(self, parser):
        parser.add_argument("--failed", action="store_true", help="Chỉ các lần xử lý bị lỗi.")
        parser.add_argument("--ids", nargs="+", type=int, help="Mã các lần gọi cần xử lý lại.")

    def handle(self, failed, ids, **options):
        # Authentic deliveries, and verified ones our own error kept from being stored
        # (services.replayable).
        events = WebhookEvent.objects.filter(
            Q(outcome__in=[WebhookEvent.Outcome.ACCEPTED, WebhookEvent.Outcome.DUPLICATE])
            | (Q(outcome=WebhookEvent.Outcome.RECEIVED, http_status=500) & ~Q(verify_scheme=""))
        ).select_related("connection")
        if failed:
            events = events.exclude(processing_error="")
        if ids:
            events = events.filter(pk__in=ids)
        elif not failed:
            # Never processed (accepted, new transfers) or failed; duplicates carry no
            # new transfer and need nothing.
            events = events.filter(
                outcome=WebhookEvent.Outcome.ACCEPTED, processed_at__isnull=True
            ) | events.exclude(processing_error="")
        events = list(events.order_by("pk"))
        bar = ProgressBar("Xử lý lại webhook", stream=self.stderr)
        done = errors = reconciled = 0
        for event in events:
            try:
                reconciled += event_reprocess(event)
            except Exception as error:  # recorded on the event by event_process
                errors += 1
                self.stderr.write(f"  #{event.pk}: {type(error).__name__}: {error}")
            done += 1
            bar(done, len(events))
        self.stdout.write(
            f"Đã xử lý lại {done} lần gọi: {reconciled} giao dịch được đối soát, {errors} lỗi."
        )
        if errors:
            raise SystemExit(1)
