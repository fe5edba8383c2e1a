"""Printable placard sheets: one static VietQR per stall, several per A4 page, as HTML
(print from the browser) or as a PDF drawn with reportlab.

The PDF embeds Roboto (Apache 2.0, from the ``font-roboto`` package), which carries the
Vietnamese glyphs that reportlab's built-in fonts lack.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from datetime import date
from functools import cache

from django.db.models import Q
from django.utils.translation import gettext as _

from market40 import vietqr_service
from market40.errors import NotFound
from market40.models import Lease, Market, Stall

PER_PAGE = 6  # 2 columns × 3 rows on A4

INSTRUCTIONS = (
    "Mở ứng dụng ngân hàng, chọn Quét QR, nhập số tiền cần nộp rồi xác nhận. "
    "Giữ nguyên nội dung chuyển khoản {code}."
)


@dataclass(frozen=True)
class Placard:
    stall_code: str
    zone: str
    holder_name: str
    payment_code: str
    payload: str
    png: bytes

    @property
    def png_data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")

    @property
    def instructions(self) -> str:
        return INSTRUCTIONS.format(code=self.payment_code)


@dataclass(frozen=True)
class Sheet:
    market: Market
    bank_name: str
    account_number: str
    account_name: str
    placards: list[Placard]

    @property
    def pages(self) -> list[list[Placard]]:
        return [self.placards[i : i + PER_PAGE] for i in range(0, len(self.placards), PER_PAGE)]


def build_sheet(*, market: Market, zone_code: str | None, today: date) -> Sheet:
    account = vietqr_service.receiving_account(market)
    stalls = Stall.objects.filter(market=market, active=True).select_related("zone")
    if zone_code:
        stalls = stalls.filter(zone__code=zone_code)
        if not stalls.exists():
            raise NotFound(_("Khu %(zone)s không có sạp nào đang hoạt động.") % {"zone": zone_code})
    holders = dict(
        Lease.objects.filter(stall__market=market, start_date__lte=today)
        .filter(Q(end_date__isnull=True) | Q(end_date__gte=today))
        .values_list("stall_id", "holder__full_name")
    )
    placards = []
    for stall in stalls.order_by("zone__code", "code"):
        payload = vietqr_service.stall_payload(stall, account)
        placards.append(
            Placard(
                stall_code=stall.code,
                zone=stall.zone.name if stall.zone else "",
                holder_name=holders.get(stall.pk, ""),
                payment_code=stall.payment_code,
                payload=payload,
                png=vietqr_service.render_cached(payload, "png"),
            )
        )
    return Sheet(
        market=market,
        bank_name=account.bank.short_name,
        account_number=account.account_number,
        account_name=account.account_name,
        placards=placards,
    )


@cache
def _fonts() -> tuple[str, str]:
    import font_roboto
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    pdfmetrics.registerFont(TTFont("Roboto", font_roboto.Roboto))
    pdfmetrics.registerFont(TTFont("Roboto-Bold", font_roboto.RobotoBold))
    return "Roboto", "Roboto-Bold"


def render_pdf(sheet: Sheet) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    regular, bold = _fonts()
    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=A4, pageCompression=1)
    pdf.setTitle(f"Mã QR thanh toán – {sheet.market.name}")
    pdf.setAuthor("market40")
    width, height = A4
    margin = 10 * mm
    cell_w = (width - 2 * margin) / 2
    cell_h = (height - 2 * margin) / 3
    for page in sheet.pages:
        for index, placard in enumerate(page):
            col, row = index % 2, index // 2
            x = margin + col * cell_w
            y = height - margin - (row + 1) * cell_h
            _draw_placard(pdf, sheet, placard, x, y, cell_w, cell_h, regular, bold, mm, ImageReader)
        pdf.showPage()
    pdf.save()
    return out.getvalue()


def _draw_placard(pdf, sheet, placard, x, y, w, h, regular, bold, mm, image_reader) -> None:
    pdf.setStrokeColorRGB(0.6, 0.6, 0.6)
    pdf.setDash(3, 3)
    pdf.rect(x + 2 * mm, y + 2 * mm, w - 4 * mm, h - 4 * mm)
    pdf.setDash()
    cx = x + w / 2
    top = y + h - 8 * mm
    pdf.setFont(bold, 10)
    pdf.drawCentredString(cx, top, _fit(sheet.market.name, 48))
    pdf.setFont(bold, 20)
    pdf.drawCentredString(cx, top - 8 * mm, f"Sạp {placard.stall_code}")
    pdf.setFont(regular, 10)
    if placard.holder_name:
        pdf.drawCentredString(cx, top - 13 * mm, placard.holder_name)
    qr_size = 44 * mm
    pdf.drawImage(
        image_reader(io.BytesIO(placard.png)),
        cx - qr_size / 2,
        top - 15 * mm - qr_size,
        qr_size,
        qr_size,
    )
    text_y = top - 18.5 * mm - qr_size
    pdf.setFont(bold, 9)
    pdf.drawCentredString(cx, text_y, f"{sheet.bank_name} · {sheet.account_number}")
    pdf.setFont(regular, 8.5)
    pdf.drawCentredString(cx, text_y - 4.5 * mm, _fit(sheet.account_name, 50))
    pdf.drawCentredString(cx, text_y - 9 * mm, f"Nội dung: {placard.payment_code}")
    pdf.setFont(regular, 7)
    for n, line in enumerate(_wrap(placard.instructions, 62)):
        pdf.drawCentredString(cx, text_y - 13.5 * mm - n * 3.5 * mm, line)


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _wrap(text: str, width: int) -> list[str]:
    lines, current = [], ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    return lines + ([current] if current else [])
