"""Printed documents as PDF (reportlab: one maintained library for the page and the Code 128
barcode): shipping labels (A6, one per page) and the pickup manifest (A4, signature lines).

Rendering only: the views come from the use cases (courier/services/labels.py,
courier/services/manifests.py), which decide what may be printed. Text is Bahasa Indonesia
first, English second; times in WIB.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime

from reportlab.graphics.barcode.code128 import Code128
from reportlab.lib.pagesizes import A4, A6
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from adapters.base import Party
from core.clock import WIB
from courier.services.labels import Label
from courier.services.manifests import Sheet

FONT = "Helvetica"
BOLD = "Helvetica-Bold"


def _wib(value: datetime | None) -> str:
    return f"{value.astimezone(WIB):%d-%m-%Y %H:%M} WIB" if value is not None else "-"


def _address_lines(party: Party) -> list[str]:
    a = party.address
    lines = [a.street]
    if a.note:
        lines.append(f"({a.note})")
    lines.append(", ".join(x for x in (a.village, a.district) if x))
    lines.append(", ".join(x for x in (a.regency, a.province) if x) + f" {a.postal_code}")
    return [line for line in (" ".join(x.split()) for x in lines) if line]


def _fit(text: str, font: str, size: float, width: float, canvas: Canvas) -> str:
    """``text`` cut (with an ellipsis) to fit ``width`` points."""
    if canvas.stringWidth(text, font, size) <= width:
        return text
    while text and canvas.stringWidth(text + "...", font, size) > width:
        text = text[:-1]
    return text + "..."


def _label_page(canvas: Canvas, label: Label) -> None:
    width, height = A6
    margin = 6 * mm
    inner = width - 2 * margin
    y = height - margin - 4 * mm
    canvas.setFont(BOLD, 13)
    canvas.drawString(margin, y, label.courier_name)
    canvas.setFont(FONT, 9)
    canvas.drawRightString(width - margin, y, f"Layanan / Service: {label.service}")
    y -= 6 * mm
    canvas.drawString(margin, y, f"Berat / Weight: {label.weight_kg} kg")
    canvas.drawRightString(width - margin, y, "DOKUMEN")
    # the waybill: the courier's scanners read it as Code 128
    barcode = Code128(label.waybill, barWidth=0.33 * mm, barHeight=16 * mm, quiet=False)
    y -= 20 * mm
    barcode.drawOn(canvas, margin + max(0.0, (inner - barcode.width) / 2), y)
    y -= 5 * mm
    canvas.setFont(BOLD, 12)
    canvas.drawCentredString(width / 2, y, label.waybill)
    canvas.setFont(FONT, 8)
    y -= 4.5 * mm
    canvas.drawCentredString(width / 2, y, f"Ref: {label.reference}")
    for title, party, size in (
        ("PENERIMA / TO", label.receiver, 10.0),
        ("PENGIRIM / FROM", label.sender, 8.0),
    ):
        y -= 5 * mm
        canvas.line(margin, y + 3.5 * mm, width - margin, y + 3.5 * mm)
        canvas.setFont(BOLD, 7)
        canvas.drawString(margin, y, title)
        y -= size * 0.45 * mm
        canvas.setFont(BOLD, size)
        y -= size * 0.4 * mm
        canvas.drawString(margin, y, _fit(party.name, BOLD, size, inner, canvas))
        canvas.setFont(FONT, size - 1)
        for line in [party.phone, *_address_lines(party)]:
            y -= (size + 1) * 0.38 * mm
            canvas.drawString(margin, y, _fit(line, FONT, size - 1, inner, canvas))
    canvas.setFont(FONT, 6)
    canvas.drawString(margin, margin - 2 * mm, f"Dipesan / Booked: {_wib(label.booked_at)}")


def labels_pdf(labels: Sequence[Label], *, title: str) -> bytes:
    """One A6 page per label; an empty sequence is one page saying there is nothing to print."""
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A6, invariant=True)
    canvas.setTitle(title)
    canvas.setAuthor("passport-courier")
    if not labels:
        canvas.setFont(FONT, 10)
        canvas.drawString(10 * mm, A6[1] / 2, "Tidak ada label / No labels to print")
        canvas.showPage()
    for label in labels:
        _label_page(canvas, label)
        canvas.showPage()
    canvas.save()
    return out.getvalue()


_COLUMNS = (  # (heading, x in mm from the left margin)
    ("No", 0),
    ("No. permohonan / Application", 8),
    ("Nama / Name", 48),
    ("Segel / Seal", 88),
    ("Resi / Waybill", 118),
    ("Tujuan / Destination", 150),
)


def _sheet_header(canvas: Canvas, sheet: Sheet, page: int) -> float:
    width, height = A4
    margin = 15 * mm
    y = height - margin
    canvas.setFont(BOLD, 14)
    canvas.drawString(margin, y, "MANIFES PENJEMPUTAN / PICKUP MANIFEST")
    canvas.setFont(FONT, 9)
    canvas.drawRightString(width - margin, y, f"Hal. / Page {page}")
    y -= 6 * mm
    canvas.setFont(BOLD, 10)
    canvas.drawString(margin, y, sheet.number)
    canvas.setFont(FONT, 9)
    y -= 5 * mm
    canvas.drawString(margin, y, f"{sheet.office_name} ({sheet.office_code})")
    y -= 5 * mm
    canvas.drawString(
        margin,
        y,
        f"Kurir / Courier: {sheet.courier_code.upper()}    "
        f"Jadwal jemput / Pickup slot: {sheet.pickup_slot} WIB    "
        f"Dibuat / Opened: {_wib(sheet.created_at)}    "
        f"Jumlah / Count: {len(sheet.lines)}",
    )
    y -= 8 * mm
    canvas.setFont(BOLD, 8)
    for heading, x in _COLUMNS:
        canvas.drawString(margin + x * mm, y, heading)
    canvas.line(margin, y - 1.5 * mm, width - margin, y - 1.5 * mm)
    return y - 6 * mm


def _signatures(canvas: Canvas, sheet: Sheet, y: float) -> None:
    width = A4[0]
    margin = 15 * mm
    canvas.setFont(FONT, 9)
    canvas.drawString(
        margin,
        y,
        "Paspor di atas diserahkan dalam amplop bersegel dengan nomor segel tercatat. / "
        "The passports above are handed over in sealed envelopes with the seals listed.",
    )
    y -= 22 * mm
    half = (width - 2 * margin) / 2
    for n, (who, name) in enumerate(
        (
            ("Petugas kantor / Office staff", ""),
            ("Agen kurir / Courier agent", sheet.courier_agent_name or ""),
        )
    ):
        x = margin + n * half
        canvas.line(x, y, x + half - 10 * mm, y)
        canvas.drawString(x, y - 4.5 * mm, who)
        canvas.drawString(x, y - 9 * mm, f"Nama / Name: {name}")
        canvas.drawString(x, y - 13.5 * mm, "Tanggal, jam / Date, time:")
    if sheet.handed_over_at is not None:
        canvas.setFont(BOLD, 9)
        canvas.drawString(
            margin, y - 20 * mm, f"Diserahkan / Handed over: {_wib(sheet.handed_over_at)}"
        )


def manifest_pdf(sheet: Sheet) -> bytes:
    """The manifest on A4: one line per passport (application number, masked name, seal,
    waybill, destination regency), then the statement and both signature lines."""
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4, invariant=True)
    canvas.setTitle(f"Manifest {sheet.number}")
    canvas.setAuthor("passport-courier")
    margin = 15 * mm
    page = 1
    y = _sheet_header(canvas, sheet, page)
    for n, line in enumerate(sheet.lines, start=1):
        if y < 60 * mm:
            canvas.showPage()
            page += 1
            y = _sheet_header(canvas, sheet, page)
        canvas.setFont(FONT, 8)
        where = line.destination.regency_name or line.destination.regency_code
        values = (
            str(n),
            line.application_no,
            line.masked_name,
            line.seal_number or "-",
            line.waybill or "-",
            where,
        )
        for (_, x), value in zip(_COLUMNS, values, strict=True):
            canvas.drawString(margin + x * mm, y, _fit(value, FONT, 8, 38 * mm, canvas))
        y -= 6 * mm
    _signatures(canvas, sheet, min(y - 4 * mm, 55 * mm))
    canvas.showPage()
    canvas.save()
    return out.getvalue()
