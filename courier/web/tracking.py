"""The applicant's tracking API: where the passport is, in plain words, and confirming it arrived.

``GET /api/v1/track/{token}``: the delivery behind a private tracking token (only its sha256 is
stored), every text in Bahasa Indonesia first and English second (``{"id": …, "en": …}``),
times in WIB, each status explained with what happens next. No name, phone, address or receiver
is shown: a link can be forwarded.

``POST /api/v1/track/{token}/confirm`` ``{"passport_no"}``: the applicant confirms possession;
a wrong number is one generic 422, too many wrong numbers a 429 (a dispatcher takes over).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from adapters import registry
from core.clock import WIB
from courier.services import applicant, handover
from courier.web.body import read_json
from courier.web.errors import ApiError, json_ok, not_found
from courier.web.keys import context_of
from courier.web.optin import client_address

routes = web.RouteTableDef()

Text = dict[str, str]


STATUS_TEXT: dict[str, Text] = {
    "booking": {"id": "Kurir sedang dipesan", "en": "Booking the courier"},
    "booked": {
        "id": "Menunggu dijemput kurir di kantor imigrasi",
        "en": "Waiting for the courier's pickup at the immigration office",
    },
    "picked_up": {"id": "Sudah dijemput kurir", "en": "Picked up by the courier"},
    "in_transit": {"id": "Dalam perjalanan", "en": "In transit"},
    "out_for_delivery": {
        "id": "Sedang diantar ke alamat Anda",
        "en": "Out for delivery to your address",
    },
    "delivery_failed": {
        "id": "Pengantaran gagal; kurir akan mencoba lagi",
        "en": "Delivery attempt failed; the courier will try again",
    },
    "delivered": {"id": "Sudah diterima di alamat tujuan", "en": "Delivered"},
    "returning": {
        "id": "Dikembalikan ke kantor imigrasi",
        "en": "Being returned to the immigration office",
    },
    "returned": {"id": "Sudah kembali di kantor imigrasi", "en": "Back at the immigration office"},
    "cancelled": {"id": "Pengiriman dibatalkan", "en": "Shipment cancelled"},
    "lost": {
        "id": "Kiriman dilaporkan hilang oleh kurir",
        "en": "The courier reports the parcel lost",
    },
    "booking_failed": {"id": "Kurir menolak pesanan", "en": "The courier refused the order"},
}
UNKNOWN_EVENT: Text = {"id": "Kabar dari kurir", "en": "Update from the courier"}

# delivery state → (what it means, what happens next)
STATE_TEXT: dict[str, tuple[Text, Text]] = {
    "requested": (
        {"id": "Paspor Anda belum selesai dicetak.", "en": "Your passport is not ready yet."},
        {
            "id": "Kami mengirimkannya setelah paspor siap.",
            "en": "We send it as soon as it is ready.",
        },
    ),
    "queued": (
        {
            "id": "Paspor Anda siap dan menunggu dipesankan kurir.",
            "en": "Your passport is ready and waiting for a courier booking.",
        },
        {
            "id": "Kurir akan menjemputnya di kantor imigrasi.",
            "en": "The courier will collect it from the immigration office.",
        },
    ),
    "shipping": (
        {
            "id": "Paspor Anda sedang dikirim oleh kurir.",
            "en": "Your passport is on its way with the courier.",
        },
        {
            "id": "Pastikan ada orang di alamat Anda; paspor sebaiknya Anda terima sendiri.",
            "en": "Be at the address if you can: the passport should be received by you in person.",
        },
    ),
    "delivered": (
        {
            "id": "Kurir melaporkan paspor sudah diantar.",
            "en": "The courier reports the passport delivered.",
        },
        {
            "id": "Konfirmasikan penerimaan dengan memasukkan nomor paspor yang tercetak di "
            "paspor Anda.",
            "en": "Confirm receipt by entering the passport number printed in your passport.",
        },
    ),
    "handed_over": (
        {
            "id": "Serah terima paspor sudah terverifikasi. Terima kasih.",
            "en": "The handover is verified. Thank you.",
        },
        {
            "id": "Tidak ada lagi yang perlu dilakukan. Terima kasih telah memakai layanan antar "
            "paspor.",
            "en": "Nothing more to do. Thank you for using the passport delivery service.",
        },
    ),
    "returned": (
        {
            "id": "Paspor kembali ke kantor imigrasi.",
            "en": "The passport is back at the immigration office.",
        },
        {
            "id": "Ambil paspor di loket kantor dengan KTP asli sebelum batas pengambilan, atau "
            "hubungi kantor untuk dikirim ulang. Petugas juga akan menghubungi Anda.",
            "en": "Collect the passport at the office counter with your original ID before the "
            "collect-by date, or call the office to have it sent again. The office will also "
            "contact you.",
        },
    ),
    "collected_at_office": (
        {
            "id": "Paspor sudah Anda ambil di loket.",
            "en": "You collected the passport at the counter.",
        },
        {"id": "Tidak ada lagi yang perlu dilakukan.", "en": "Nothing more to do."},
    ),
    "needs_attention": (
        {
            "id": "Petugas sedang menangani pengiriman Anda.",
            "en": "Office staff are looking into your delivery.",
        },
        {
            "id": "Petugas akan menghubungi Anda bila diperlukan.",
            "en": "The office will contact you if needed.",
        },
    ),
    "cancelled": (
        {"id": "Pengiriman dibatalkan.", "en": "The delivery was cancelled."},
        {
            "id": "Hubungi kantor imigrasi untuk mengambil paspor di loket.",
            "en": "Contact the immigration office to collect the passport at the counter.",
        },
    ),
    "expired": (
        {
            "id": "Batas waktu pengambilan paspor sudah lewat.",
            "en": "The deadline to collect the passport has passed.",
        },
        {
            "id": "Hubungi kantor imigrasi untuk langkah selanjutnya.",
            "en": "Contact the immigration office for what to do next.",
        },
    ),
}

FAILED_NEXT: Text = {
    "id": "Kurir akan mencoba lagi pada hari kerja berikutnya. Pastikan ada yang dapat menerima "
    "dengan KTP asli, atau hubungi kantor bila alamat perlu diperjelas.",
    "en": "The courier will try again on the next working day. Make sure someone can receive it "
    "with their original ID, or call the office if the address needs clarifying.",
}

REVIEW_NEXT: Text = {
    "id": "Petugas sedang memeriksa bukti penerimaan oleh kurir.",
    "en": "Office staff are checking the courier's proof of delivery.",
}


def wib(when: datetime | None) -> dict[str, str] | None:
    """A time as ISO 8601 in WIB, plus how a person reads it."""
    if when is None:
        return None
    local = when.astimezone(WIB)
    return {
        "iso": local.isoformat(timespec="minutes"),
        "text": local.strftime("%d-%m-%Y %H:%M WIB"),
    }


def view(found: applicant.TrackView) -> dict[str, Any]:
    """The applicant's view of one delivery as JSON (no personal details)."""
    record, shipment = found.handover, found.shipment
    meaning, next_step = STATE_TEXT.get(found.state, STATE_TEXT["needs_attention"])
    if found.state == "shipping" and shipment is not None:
        meaning = STATUS_TEXT.get(shipment.status, meaning)
    if found.state == "shipping" and shipment is not None and shipment.status == "delivery_failed":
        next_step = FAILED_NEXT
    if record is not None and record.state == handover.NEEDS_REVIEW:
        next_step = REVIEW_NEXT
    return {
        "state": found.state,
        "headline": meaning,
        "next_step": next_step,
        "collect_by": wib(found.collect_by),
        "shipment": None
        if shipment is None
        else {
            "courier": registry.name(shipment.courier_code),
            "waybill": shipment.waybill,
            "attempt_no": shipment.attempt_no,
            "status": shipment.status,
            "label": STATUS_TEXT.get(shipment.status, UNKNOWN_EVENT),
        },
        "events": [
            {
                "at": wib(event.occurred_at),
                "status": event.status,
                "label": STATUS_TEXT.get(event.status or "", UNKNOWN_EVENT),
                "location": event.location,
            }
            for event in found.events
        ],
        "handover": None
        if record is None
        else {
            "state": record.state,
            "verified": record.verified,
            "can_confirm": record.attempts_left > 0,
            "verified_at": wib(record.verified_at),
        },
    }


@routes.get("/api/v1/track/{token}")
async def track(request: web.Request) -> web.Response:
    ctx = context_of(request)
    client = client_address(request, ctx.settings.trusted_proxies)
    found = await applicant.track(ctx, request.match_info["token"], client)
    if found is None:
        raise not_found("no delivery for this tracking link")
    return json_ok(view(found))


@routes.post("/api/v1/track/{token}/confirm")
async def confirm(request: web.Request) -> web.Response:
    body = await read_json(request, "api/track_confirm")
    result = await applicant.confirm_receipt(
        context_of(request), request.match_info["token"], body["passport_no"]
    )
    # committed: a wrong number stays counted even though the answer is a refusal
    refusal = handover.confirmation_error(result.outcome)
    if refusal is not None:
        raise ApiError.from_service(refusal)
    return json_ok(
        {
            "handover": "verified",
            "message": {
                "id": "Terima kasih, penerimaan paspor Anda sudah tercatat.",
                "en": "Thank you: your receipt of the passport is recorded.",
            },
        }
    )
