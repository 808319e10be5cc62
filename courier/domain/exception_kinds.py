"""What staff read: every kind of item in the dispatch exceptions queue with its next step, and
every delivery state in words, in Bahasa Indonesia first and English second.

The texts are data, so a new kind cannot be opened without saying what a person should do about it
(``tests/unit/domain/test_domain_exception_kinds.py`` checks that every kind and every state has
both languages). An item's ``detail`` carries the specifics of one case (the courier's reason, a
count, a date); the next step here is the same for every item of a kind.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from courier.domain.states import DeliveryState


class ExceptionKind(enum.StrEnum):
    BOOKING_REJECTED = "booking_rejected"
    BOOKING_UNKNOWN = "booking_unknown"
    BOOKING_EXISTS = "booking_exists"
    ANSWER_NOT_UNDERSTOOD = "answer_not_understood"
    BOOKING_FAULT = "booking_fault"
    COURIER_AUTH = "courier_auth"
    ROUTING = "routing"
    NO_CONTRACT = "no_contract"
    ADDRESS_INCOMPLETE = "address_incomplete"
    UNMAPPED_CODE = "unmapped_code"
    DELIVERY_FAILED = "delivery_failed"
    SHIPMENT_LOST = "shipment_lost"
    SHIPMENT_CANCELLED = "shipment_cancelled"
    STUCK = "stuck"
    RETURN_OVERDUE = "return_overdue"
    RETURNED = "returned"
    CANCEL_AT_COURIER = "cancel_at_courier"
    POD_MISSING = "pod_missing"
    HANDOVER_REVIEW = "handover_review"
    HANDOVER_EXCEPTION = "handover_exception"
    HANDOVER_LOCKED = "handover_locked"
    HANDOVER_REFUSED = "handover_refused"
    UNCONFIRMED = "unconfirmed"
    DEADLINE_WARNING = "deadline_warning"
    EXPIRED = "expired"
    INBOX_UNPROCESSABLE = "inbox_unprocessable"
    PUSH_UNKNOWN_WAYBILL = "push_unknown_waybill"
    NOTIFY_FAILED = "notify_failed"
    APPLICANT_REPORT = "applicant_report"


@dataclass(frozen=True, slots=True)
class Text:
    """One staff-facing text in both languages."""

    id: str
    en: str

    def in_language(self, language: str) -> str:
        return self.en if language == "en" else self.id


NEXT_STEPS: dict[ExceptionKind, Text] = {
    ExceptionKind.BOOKING_REJECTED: Text(
        "Periksa alamat dan data pengirim, perbaiki, lalu pesan ulang (atau minta pemohon "
        "mengambil di kantor).",
        "Check the address and the sender data, correct them and book again (or ask the "
        "applicant to collect at the counter).",
    ),
    ExceptionKind.BOOKING_UNKNOWN: Text(
        "Cari referensi pengiriman di portal kurir: jika ada, catat nomor resinya; jika tidak "
        "ada, lepaskan untuk percobaan baru. Jangan pesan ulang sebelum diperiksa.",
        "Look the shipment's reference up in the courier's portal: if it is there, record its "
        "waybill; if not, release it for a new attempt. Do not book again before checking.",
    ),
    ExceptionKind.BOOKING_EXISTS: Text(
        "Kurir menyatakan pesanan dengan referensi ini sudah ada: cari referensinya di portal "
        "kurir dan catat nomor resinya. Jangan pesan ulang.",
        "The courier says an order with this reference exists: find the reference in the "
        "courier's portal and record its waybill. Do not book again.",
    ),
    ExceptionKind.ANSWER_NOT_UNDERSTOOD: Text(
        "Jawaban kurir tidak dipahami; pesanan mungkin sudah ada: cari referensinya di portal "
        "kurir. Jika ada, catat nomor resinya; jika tidak, lepaskan untuk percobaan baru. "
        "Teruskan jawaban yang tersimpan (tanpa data pribadi) ke tim dukungan.",
        "The courier's answer was not understood; the order may exist: look the reference up "
        "in the courier's portal. If it is there, record its waybill; if not, release it for a "
        "new attempt. Pass the stored answer (personal data removed) on to support.",
    ),
    ExceptionKind.BOOKING_FAULT: Text(
        "Pemesanan gagal berulang kali karena kesalahan program: periksa data alamat dan "
        "pemohon (mis. karakter yang tidak lazim), laporkan ke tim dukungan, lalu cari "
        "referensinya di portal kurir: jika ada, catat nomor resinya; jika tidak, lepaskan "
        "untuk percobaan baru.",
        "The booking failed on every try with an error in our code: check the address and the "
        "applicant's data (unusual characters, for one), tell support, then look the reference "
        "up in the courier's portal: if it is there, record its waybill; if not, release it "
        "for a new attempt.",
    ),
    ExceptionKind.COURIER_AUTH: Text(
        "Periksa kredensial API kurir di konfigurasi; pemesanan menunggu sampai diperbaiki.",
        "Check the courier's API credentials in the configuration; bookings wait until fixed.",
    ),
    ExceptionKind.ROUTING: Text(
        "Tidak ada kurir yang dapat mengantar ke tujuan ini: periksa konfigurasi kurir kantor, "
        "atau minta pemohon mengambil di kantor.",
        "No courier can carry to this destination: check the office's courier configuration, "
        "or ask the applicant to collect at the counter.",
    ),
    ExceptionKind.NO_CONTRACT: Text(
        "Pengiriman menunggu: tidak ada kontrak kurir yang berlaku untuk tujuan ini hari ini. "
        "Item ini tertutup sendiri dan paket dipesan begitu sebuah kontrak mencakupnya; minta "
        "pengelola kontrak mengaktifkan kontrak, atau minta pemohon mengambil di kantor bila "
        "batas waktu pengambilan dekat.",
        "The delivery waits: no courier contract is in force for this destination today. The "
        "item closes by itself and the parcel is booked as soon as a contract covers it; ask "
        "the contract manager to activate one, or ask the applicant to collect at the counter "
        "if the collect-by deadline is near.",
    ),
    ExceptionKind.ADDRESS_INCOMPLETE: Text(
        "Minta pemohon melengkapi alamat pengiriman, lalu antrekan ulang.",
        "Ask the applicant to complete the delivery address, then queue it again.",
    ),
    ExceptionKind.UNMAPPED_CODE: Text(
        "Baca kejadian mentah di halaman pengiriman, tindak lanjuti bila perlu, dan minta kode "
        "itu ditambahkan ke tabel status kurir.",
        "Read the raw event on the shipment page, act on it if needed, and ask for the code to "
        "be added to the courier's status table.",
    ),
    ExceptionKind.DELIVERY_FAILED: Text(
        "Hubungi pemohon untuk memastikan alamat dan kapan ada orang di rumah; kurir mencoba lagi.",
        "Contact the applicant to confirm the address and when someone is home; the courier "
        "tries again.",
    ),
    ExceptionKind.SHIPMENT_LOST: Text(
        "Ajukan klaim ke kurir sesuai kontrak, beri tahu pemohon, dan atur penggantian paspor "
        "atau pengambilan di kantor sebelum batas waktu.",
        "Claim with the courier under the contract, tell the applicant, and arrange a "
        "replacement passport or a counter pickup before the deadline.",
    ),
    ExceptionKind.SHIPMENT_CANCELLED: Text(
        "Pastikan paspor kembali ke kantor, beri tahu pemohon, lalu kirim ulang atau serahkan "
        "di kantor sebelum batas waktu.",
        "Make sure the passport comes back to the office, tell the applicant, then re-ship or "
        "hand it over at the counter before the deadline.",
    ),
    ExceptionKind.STUCK: Text(
        "Tanyakan posisi paket ke kurir; jika tidak ditemukan, tandai hilang dan atur "
        "penggantian atau pengambilan di kantor.",
        "Ask the courier where the parcel is; if it cannot be found, mark it lost and arrange "
        "a replacement or a counter pickup.",
    ),
    ExceptionKind.RETURN_OVERDUE: Text(
        "Paket sedang diretur tetapi kurir tidak mengirim kabar lagi: periksa apakah amplop "
        "sudah tiba di kantor; jika sudah, tandai diterima kembali di kantor (periksa segel); "
        "jika belum, tanyakan posisinya ke kurir.",
        "The parcel is on its way back but the courier has sent nothing more: check whether "
        "the envelope has reached the office; if it has, mark it returned to the office "
        "(check the seal); if not, ask the courier where it is.",
    ),
    ExceptionKind.RETURNED: Text(
        "Terima paspor di loket (periksa segel), lalu kirim ulang atau minta pemohon mengambil "
        "di kantor sebelum batas waktu.",
        "Receive the passport at the counter (check the seal), then re-ship it or ask the "
        "applicant to collect it before the deadline.",
    ),
    ExceptionKind.CANCEL_AT_COURIER: Text(
        "Kurir ini tidak menyediakan pembatalan lewat API: batalkan pesanan dengan referensi "
        "dan nomor resi di rincian ini di loket atau portal kurir, lalu tutup item ini. Paspor "
        "tetap di kantor.",
        "This courier offers no cancel through its API: cancel the order with the reference "
        "and waybill in the detail at the courier's counter or portal, then close this item. "
        "The passport stays at the office.",
    ),
    ExceptionKind.POD_MISSING: Text(
        "Minta foto/tanda tangan bukti serah terima kepada kurir sesuai kontrak.",
        "Ask the courier for the proof-of-delivery photo/signature under the contract.",
    ),
    ExceptionKind.HANDOVER_REVIEW: Text(
        "Periksa bukti serah terima terhadap Kartu Keluarga (KK) atau surat kuasa, lalu setujui "
        "atau tolak serah terima.",
        "Check the proof of delivery against the family card (KK) or power of attorney (surat "
        "kuasa), then approve or refuse the handover.",
    ),
    ExceptionKind.HANDOVER_EXCEPTION: Text(
        "Hubungi pemohon dan kurir: pulihkan paspor atau pastikan pemohon sudah menerimanya, "
        "lalu setujui atau tolak serah terima.",
        "Call the applicant and the courier: recover the passport or confirm the applicant has "
        "it, then approve or refuse the handover.",
    ),
    ExceptionKind.HANDOVER_LOCKED: Text(
        "Hubungi pemohon; periksa serah terima (setujui atau tolak).",
        "Call the applicant; review the handover (approve or refuse).",
    ),
    ExceptionKind.HANDOVER_REFUSED: Text(
        "Pulihkan paspor melalui kurir; lalu kirim ulang atau serahkan di loket sebelum batas "
        "waktu.",
        "Recover the passport through the courier; then re-ship or hand it over at the counter "
        "before the deadline.",
    ),
    ExceptionKind.UNCONFIRMED: Text(
        "Hubungi pemohon: minta konfirmasi dengan nomor paspor, atau periksa serah terima.",
        "Call the applicant: ask them to confirm with the passport number, or review the handover.",
    ),
    ExceptionKind.DEADLINE_WARNING: Text(
        "Tindak lanjuti sekarang: kirim ulang, tanyakan ke kurir, atau hubungi pemohon untuk "
        "mengambil di kantor.",
        "Act on the delivery now: re-ship, chase the courier, or call the applicant to collect "
        "at the counter.",
    ),
    ExceptionKind.EXPIRED: Text(
        "Paspor dibatalkan sesuai peraturan: pulihkan dari kurir bila masih di jalan, dan minta "
        "pemohon mengajukan permohonan baru.",
        "The passport is cancelled under the regulation: recover it from the courier if it is "
        "still out, and tell the applicant to apply again.",
    ),
    ExceptionKind.INBOX_UNPROCESSABLE: Text(
        "Laporkan ke tim dukungan: kiriman data kurir disimpan apa adanya; sampai diperbaiki, "
        "pengiriman terkait tetap dilacak berkala.",
        "Tell support: the push is kept as received; until it is fixed, the shipments it "
        "concerns are still polled.",
    ),
    ExceptionKind.PUSH_UNKNOWN_WAYBILL: Text(
        "Cari nomor resi di kurir: jika itu paket kita, temukan pengiriman yang tidak mencatatnya "
        "dan laporkan ke tim dukungan; jika bukan, abaikan.",
        "Look the waybill up at the courier: if it is one of our parcels, find the delivery "
        "whose booking did not record it and tell support; otherwise ignore it.",
    ),
    ExceptionKind.NOTIFY_FAILED: Text(
        "Pesan ke pemohon tidak terkirim setelah beberapa percobaan: hubungi pemohon lewat "
        "telepon, lalu periksa pengaturan e-mail/SMS (notify) dan log pengirim.",
        "A message to the applicant could not be sent after several tries: call the applicant, "
        "then check the e-mail/SMS settings (notify) and the sender's log.",
    ),
    ExceptionKind.APPLICANT_REPORT: Text(
        "Pemohon melaporkan masalah penerimaan paspor: hubungi pemohon hari ini, periksa bukti "
        "serah terima kurir, dan laporkan ke kurir bila paspor tidak diterima pemohon.",
        "The applicant reported a problem receiving the passport: call them today, check the "
        "courier's proof of delivery, and raise it with the courier if they did not get it.",
    ),
}


STATE_TEXTS: dict[DeliveryState, Text] = {
    DeliveryState.REQUESTED: Text(
        "Menunggu paspor selesai dicetak", "Waiting for the passport to be ready"
    ),
    DeliveryState.QUEUED: Text("Menunggu pemesanan kurir", "Waiting to be booked with a courier"),
    DeliveryState.SHIPPING: Text("Dalam pengiriman", "With the courier"),
    DeliveryState.DELIVERED: Text(
        "Diantar; menunggu konfirmasi pemohon", "Delivered; waiting for the applicant to confirm"
    ),
    DeliveryState.HANDED_OVER: Text("Diterima pemohon (terverifikasi)", "Handed over (verified)"),
    DeliveryState.RETURNED: Text("Kembali di kantor", "Back at the office"),
    DeliveryState.COLLECTED_AT_OFFICE: Text("Diambil di kantor", "Collected at the office"),
    DeliveryState.NEEDS_ATTENTION: Text("Perlu tindakan petugas", "Needs a person's attention"),
    DeliveryState.CANCELLED: Text("Dibatalkan", "Cancelled"),
    DeliveryState.EXPIRED: Text(
        "Melewati batas pengambilan 30 hari", "Past the 30-day collection deadline"
    ),
}


def next_step(kind: ExceptionKind | str) -> Text:
    """The next step for an item of ``kind``; ValueError for a kind that does not exist."""
    return NEXT_STEPS[ExceptionKind(kind)]
