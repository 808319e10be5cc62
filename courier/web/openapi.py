"""The OpenAPI 3.1 document, built from the JSON Schemas in ``schemas/`` and a route catalogue.

One source of truth: request and response bodies are the very schemas the handlers validate
with (``schemas/api/*.json``, ``schemas/common/*.json``), copied into ``components/schemas`` with
their ``$ref``s rewritten; URL parameters come from ``schemas/api/parameters.json``; every error
answer is ``schemas/api/error.json``. What this module adds is the catalogue below: which route
takes which schema, answers with which status, refuses with which errors, and who may call it.
``tests/integration/web/test_openapi.py`` checks that the catalogue and the app's router agree
both ways, and schemathesis checks the app's answers against the document.

Served at ``/openapi.json``; ``/docs`` is Swagger UI (vendored under ``static/swagger-ui/``,
no CDN). Plug in (courier/web/app.py): add ``"courier.web.openapi"`` to ``ROUTE_MODULES``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata, resources
from typing import Any

from aiohttp import web

import schemas
from courier.web import console

OPENAPI_VERSION = "3.1.0"
API_SCHEMA_PREFIXES = ("api/", "common/")

# Routes that are not part of the JSON API and so are not in the document (see the test).
UNDOCUMENTED_PREFIXES = ("/static/", "/docs")
UNDOCUMENTED_PATHS = frozenset({"/openapi.json", "/metrics"})


@dataclass(frozen=True)
class Param:
    name: str
    schema: str  # a $defs entry of ``source``
    where: str = "path"
    required: bool = True
    source: str = "api/parameters"  # the schema file whose $defs hold ``schema``


@dataclass(frozen=True)
class Operation:
    """One documented route. ``auth``: ``public``, ``staff`` (Bearer API token with one of
    ``roles``; admin may do all), ``tracking_token`` (the token in the path is the credential)
    or ``courier_signature`` (a courier's signed push)."""

    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    auth: str = "public"
    roles: tuple[str, ...] = ()
    request: str | None = None  # schema name of the JSON body
    response: str | None = None  # schema name of the success body
    binary: tuple[str, ...] = ()  # media types of a success body that is a file, not JSON
    status: int = 200
    also_status: tuple[int, ...] = ()  # other success statuses with the same body (201 on create)
    errors: tuple[int, ...] = ()  # error statuses beyond those implied by body and auth
    not_errors: tuple[int, ...] = ()  # implied statuses this route never gives
    # statuses answered with another body than the error shape: (status, schema, description)
    other_responses: tuple[tuple[int, str, str], ...] = ()
    params: tuple[Param, ...] = ()
    description: str = ""
    request_type: str = "application/json"
    uses_database: bool = True  # 503 when the database cannot be reached
    extra: Mapping[str, Any] = field(default_factory=dict)
    alt_content: Mapping[str, Any] = field(default_factory=dict)  # other success media types

    def error_statuses(self) -> list[int]:
        implied: set[int] = set()
        if self.request is not None:
            implied |= {400, 413, 422}  # malformed JSON; over the body limit; bad fields
            if self.request_type == "application/json":
                implied.add(415)  # a body not declared as JSON
        if self.uses_database:
            implied.add(503)
        if self.auth == "staff":
            implied |= {401, 403}
        if any(p.where == "path" for p in self.params):
            implied.add(422 if self.auth != "tracking_token" else 404)
        return sorted((implied | set(self.errors)) - set(self.not_errors))


TAGS = {
    "intake": "The office's system registers applications and marks passports ready",
    "opt-in": "Applicants opt into home delivery",
    "tracking": "Applicants follow their passport and confirm they received it",
    "couriers": "Couriers push status updates",
    "operations": "Health and readiness for load balancers",
    "dispatch": "Dispatchers work the exceptions queue and act on deliveries of their office",
    "pickup": "The day's pickup manifest: sealed passports handed over to the courier",
    "packing": "Packing at the office: find the passport in hand, seal it, print its label",
    "console": "The dispatch console's board, search and exceptions queue, as JSON",
    "contracts": "Contract managers keep the courier contracts and read the couriers' scorecards",
}

APPLICATION_NO = Param("application_no", "application_no")
TRACKING_TOKEN = Param("token", "tracking_token")
REGION_CODE = Param("code", "region_code")
COURIER = Param("courier", "courier")
_DISPATCH_PARAMS = "api/dispatch_parameters"
RECORD_ID = Param("id", "id", source=_DISPATCH_PARAMS)
QUEUE_PARAMS = tuple(
    Param(name, name, where="query", required=False, source=_DISPATCH_PARAMS)
    for name in ("kind", "open", "limit", "cursor")
)
_CONSOLE_PARAMS = "api/console_parameters"
CONSOLE_ID = Param("id", "id", source=_CONSOLE_PARAMS)
FIND_PARAMS = tuple(
    Param(name, name, where="query", required=False, source=_CONSOLE_PARAMS)
    for name in (
        "state",
        "courier",
        "regency",
        "from",
        "to",
        "kind",
        "q",
        "limit",
        "cursor",
        "format",
    )
)
_OFFICE_SCOPED = "Another office's ids answer 404, exactly like ids that do not exist."
_PACKING = "api/packing_parameters"
DELIVERY_ID = Param("delivery_id", "id", source=_DISPATCH_PARAMS)
CONTRACTS = ("contract_manager",)
SCORECARD_PARAMS = tuple(
    Param(name, name, where="query", required=name == "period", source="api/scorecard_parameters")
    for name in ("period", "office")
)
_CONTRACT_SCOPED = (
    "Only contracts serving the caller's office; any other answers 404, like one that does "
    "not exist."
)

CATALOGUE: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/healthz",
        "healthz",
        "Liveness: the process answers",
        "operations",
        response="api/health",
        uses_database=False,
    ),
    Operation(
        "GET",
        "/readyz",
        "readyz",
        "Readiness: the database answers and its schema is at the migrations' head",
        "operations",
        response="api/readiness",
        errors=(503,),
    ),
    Operation(
        "PUT",
        "/api/v1/applications/{application_no}",
        "putApplication",
        "Register or replace an application",
        "intake",
        auth="staff",
        roles=("intake",),
        request="api/application_put",
        response="api/application_view",
        status=200,
        also_status=(201,),
        params=(APPLICATION_NO,),
        description="Idempotent: the same body twice answers the same and changes nothing. "
        "201 when the application is new, 200 when it existed.",
    ),
    Operation(
        "POST",
        "/api/v1/applications/{application_no}/ready",
        "markReady",
        "The passport is printed: record its issue time and (hashed) number",
        "intake",
        auth="staff",
        roles=("intake",),
        request="api/application_ready",
        response="api/application_view",
        params=(APPLICATION_NO,),
        errors=(404,),
    ),
    Operation(
        "POST",
        "/api/v1/delivery-requests",
        "requestDelivery",
        "An applicant opts into home delivery and gets a private tracking link",
        "opt-in",
        request="api/delivery_request",
        response="api/delivery_request_result",
        status=201,
        also_status=(200,),
        errors=(409, 429),
        description="Identity is proven by the application number, date of birth and phone on "
        "file; any mismatch gets one generic 422, and repeated failures are refused with 429 per "
        "application and per client address. Sent again with the same identity before the "
        "passport is booked, it changes the address and re-issues the link (200); after "
        "booking it is refused with 409. Ineligible destinations get 422 with the reason in "
        "Bahasa Indonesia and English.",
    ),
    Operation(
        "GET",
        "/api/v1/regions",
        "listProvinces",
        "The provinces, for a cascading address form",
        "opt-in",
        response="api/regions",
        uses_database=False,
        description="Public and cached (ETag, Cache-Control: public, max-age=86400; 304 for a "
        "matching If-None-Match). From the bundled Kemendagri dataset.",
    ),
    Operation(
        "GET",
        "/api/v1/regions/{code}",
        "listRegionChildren",
        "The regencies of a province, the districts of a regency or the villages of a district",
        "opt-in",
        response="api/regions",
        params=(REGION_CODE,),
        errors=(404,),
        uses_database=False,
        description="Villages carry their postal code (the opt-in checks the address's postal "
        "code against it). Public and cached like /api/v1/regions; an unknown code is 404.",
    ),
    Operation(
        "GET",
        "/api/v1/track/{token}",
        "track",
        "Where the passport is, in Bahasa Indonesia and English",
        "tracking",
        auth="tracking_token",
        response="api/track_view",
        params=(TRACKING_TOKEN,),
        errors=(429,),
        description="The private token from the opt-in is the credential: an unknown token is "
        "404, and a client address that sent many unknown tokens gets 429 for every lookup "
        "until its window ends. Nothing personal is shown, so a link can be forwarded.",
    ),
    Operation(
        "POST",
        "/api/v1/track/{token}/confirm",
        "confirmHandover",
        "The applicant confirms they hold the passport (types the number printed in it)",
        "tracking",
        auth="tracking_token",
        request="api/track_confirm",
        response="api/track_confirmed",
        params=(TRACKING_TOKEN,),
        errors=(409, 429),
        description="A wrong number is one generic 422 and is counted; after a few wrong "
        "numbers 429 (office staff take over). 409 when there is nothing to confirm yet.",
    ),
    Operation(
        "POST",
        "/webhooks/{courier}",
        "courierPush",
        "A courier pushes status updates",
        "couriers",
        auth="courier_signature",
        request="api/webhook_push",
        request_type="application/x-www-form-urlencoded",
        response="api/webhook_ack",
        params=(
            COURIER,
            Param("apiAccount", "push_api_account", where="header"),
            Param("digest", "push_digest", where="header"),
            Param("timestamp", "push_timestamp", where="header"),
        ),
        errors=(401, 404),
        not_errors=(422,),
        other_responses=(
            (
                400,
                "api/webhook_ack",
                "The push cannot be read: the courier's own refusal, so the courier sends it again",
            ),
        ),
        description="Verified over the raw bytes (a forged or altered push is 401 and nothing "
        "is stored), stored in the inbox deduplicated, answered at once with the courier's "
        "exact ACK. Couriers that do not push (Pos Indonesia) are 404.",
    ),
    Operation(
        "GET",
        "/api/v1/exceptions",
        "listExceptions",
        "The office's exceptions queue, newest first",
        "dispatch",
        auth="staff",
        roles=("dispatcher",),
        response="api/dispatch_queue",
        params=QUEUE_PARAMS,
        errors=(422,),
        description="Open items by default (open=false: the resolved ones), each with what to do "
        "next. Keyset pagination: pass next_cursor as cursor for the next page. No applicant "
        "names, phones or addresses: the queue is shown on shared screens.",
    ),
    Operation(
        "GET",
        "/api/v1/deliveries/{id}",
        "getDelivery",
        "One delivery as a dispatcher acts on it",
        "dispatch",
        auth="staff",
        roles=("dispatcher",),
        response="api/dispatch_delivery",
        params=(RECORD_ID,),
        errors=(404,),
        description="State and reason, shipments, tracking events with the couriers' raw codes, "
        "custody chain, handover and open items, with the applicant's name and phone. "
        + _OFFICE_SCOPED,
    ),
    Operation(
        "GET",
        "/api/v1/deliveries/{id}/artefacts/{sha256}",
        "getDeliveryArtefact",
        "A proof-of-delivery photo or signature the courier sent",
        "dispatch",
        auth="staff",
        roles=("dispatcher",),
        params=(RECORD_ID, Param("sha256", "artefact_sha256")),
        errors=(404,),
        description="The file as the worker kept it (JPEG, PNG, WebP or PDF, with its type), "
        'from the configured artefact store: with `storage.artefacts = "database"` any '
        "process shows what any worker fetched. 404 for a digest the delivery's proof does not "
        "name or bytes not kept (yet). " + _OFFICE_SCOPED,
        binary=("image/jpeg", "image/png", "image/webp", "application/pdf"),
    ),
    Operation(
        "POST",
        "/api/v1/handovers/{id}/review",
        "reviewHandover",
        "Approve or refuse a handover under review",
        "dispatch",
        auth="staff",
        roles=("dispatcher",),
        request="api/dispatch_review",
        response="api/dispatch_handover",
        params=(RECORD_ID,),
        errors=(404, 409),
        description="Approved: the handover is verified and the delivery handed over. Refused: "
        "the delivery needs attention. 409 when the handover is already decided or awaits the "
        "applicant's own confirmation; 403 also for a token not issued to a staff user (a "
        "review is signed by a person). " + _OFFICE_SCOPED,
    ),
    Operation(
        "POST",
        "/api/v1/deliveries/{id}/reship",
        "reshipDelivery",
        "A returned passport: re-ship it, or keep it for collection at the counter",
        "dispatch",
        auth="staff",
        roles=("dispatcher",),
        request="api/dispatch_action",
        response="api/dispatch_reship_result",
        params=(RECORD_ID,),
        errors=(404, 409),
        description="Records the passport back in the office's custody; queues it for a new "
        "shipment attempt when there is time before the deadline, else keeps it at the counter "
        "and tells the applicant. A delivery whose booking was left in doubt is released for "
        "a new attempt (queued). 409 when the delivery is neither returned nor has a booking "
        "in doubt. " + _OFFICE_SCOPED,
    ),
    Operation(
        "POST",
        "/api/v1/deliveries/{id}/collected",
        "collectedAtCounter",
        "The applicant collected the passport in person at the counter",
        "dispatch",
        auth="staff",
        roles=("dispatcher",),
        request="api/dispatch_collected",
        response="api/dispatch_collected_result",
        params=(RECORD_ID,),
        errors=(404, 409),
        description="Final, after the counter checked an identity document: its type and "
        "masked number (the last four characters) are kept with the custody event. 409 when "
        "the delivery cannot be collected at the counter (e.g. it "
        "is with the courier or already handed over). A booking left in doubt is closed "
        "first. " + _OFFICE_SCOPED,
    ),
    Operation(
        "POST",
        "/api/v1/deliveries/{id}/booking/waybill",
        "recordBookingWaybill",
        "A booking left in doubt was found in the courier's portal: record its waybill",
        "dispatch",
        auth="staff",
        roles=("dispatcher",),
        request="api/dispatch_booking_waybill",
        response="api/dispatch_booking_result",
        params=(RECORD_ID,),
        errors=(404, 409),
        description="For a delivery whose shipment rests in booking (an item of kind "
        "booking_unknown, booking_exists, answer_not_understood or booking_fault asks for it): "
        "the shipment is booked with this waybill and tracked from now on; the items are "
        "resolved. 409 when no shipment of the delivery is in booking, a worker is settling "
        "it right now, or the waybill is recorded for another shipment. " + _OFFICE_SCOPED,
    ),
    Operation(
        "POST",
        "/api/v1/deliveries/{id}/booking/release",
        "releaseBooking",
        "A booking left in doubt is not in the courier's portal: book a new attempt",
        "dispatch",
        auth="staff",
        roles=("dispatcher",),
        request="api/dispatch_booking_release",
        response="api/dispatch_booking_result",
        params=(RECORD_ID,),
        errors=(404, 409),
        description="Closes the attempt (booking_failed; its reference is never sent again) "
        "and queues the delivery for a new attempt under a new reference; the items are "
        "resolved. 409 when no shipment of the delivery is in booking or a worker is settling "
        "it right now. " + _OFFICE_SCOPED,
    ),
    Operation(
        "POST",
        "/api/v1/deliveries/{id}/cancel",
        "cancelShipment",
        "Cancel a booked shipment before pickup, then re-book or keep it for the counter",
        "dispatch",
        auth="staff",
        roles=("dispatcher",),
        request="api/dispatch_cancel",
        response="api/dispatch_cancel_result",
        params=(RECORD_ID,),
        errors=(404, 409, 503),
        description="Cancels the order at the courier (J&T's signed cancel); a courier without "
        "a cancel API (Pos Indonesia) gets the cancel requested here and an item of kind "
        "cancel_at_courier telling staff to cancel it at the courier's counter or portal. Then "
        "the delivery is queued for a new attempt (rebook) or kept for collection at the "
        "counter (counter; the applicant is told). 409 with the reason when there is no booked "
        "shipment, the booking is still in progress, or the courier has picked the parcel up; "
        "503 when the courier did not answer (nothing changed; cancelling again is harmless). "
        + _OFFICE_SCOPED,
    ),
    Operation(
        "POST",
        "/api/v1/deliveries/{id}/returned-to-office",
        "returnedToOffice",
        "The envelope came back to the office without the courier's final return scan",
        "dispatch",
        auth="staff",
        roles=("dispatcher",),
        request="api/dispatch_returned",
        response="api/dispatch_returned_result",
        params=(RECORD_ID,),
        errors=(404, 409),
        description="The shipment becomes returned, the passport goes back into the office's "
        "custody (the seal's state recorded), the delivery becomes returned with an item to "
        "re-ship it or keep it for the counter (/reship). 409 when no shipment of the delivery "
        "is with the courier. " + _OFFICE_SCOPED,
    ),
    Operation(
        "POST",
        "/api/v1/manifests",
        "openManifest",
        "Open the day's pickup manifest of one courier",
        "pickup",
        auth="staff",
        roles=("dispatcher",),
        request="api/manifest_create",
        response="api/manifest_view",
        status=201,
        errors=(409,),
        description="Lists every booked shipment of the courier at the office that the courier "
        "has not picked up yet and that is on no other manifest (a shipment is on at most one). "
        "409 when there is none.",
    ),
    Operation(
        "GET",
        "/api/v1/manifests/{id}",
        "getManifest",
        "A pickup manifest: its passports, seals and signatures",
        "pickup",
        auth="staff",
        roles=("dispatcher",),
        response="api/manifest_view",
        params=(RECORD_ID,),
        errors=(404,),
        description="References, waybills, seals and destination regencies; no applicant names, "
        "phones or addresses (the manifest is printed for the courier). " + _OFFICE_SCOPED,
    ),
    Operation(
        "POST",
        "/api/v1/manifests/{id}/seals",
        "sealManifestItems",
        "Record the seal number of each passport's tamper-evident envelope",
        "pickup",
        auth="staff",
        roles=("dispatcher",),
        request="api/manifest_seals",
        response="api/manifest_view",
        params=(RECORD_ID,),
        errors=(404, 409),
        description="Seal numbers are unique per office: a number already used, a shipment not "
        "on the manifest or one named twice is a 422 naming $.items[i]. 409 once the manifest is "
        "handed over. " + _OFFICE_SCOPED,
    ),
    Operation(
        "POST",
        "/api/v1/manifests/{id}/handover",
        "handOverManifest",
        "The courier's agent signs for the sealed passports",
        "pickup",
        auth="staff",
        roles=("dispatcher",),
        request="api/manifest_handover",
        response="api/manifest_view",
        params=(RECORD_ID,),
        errors=(404, 409),
        description="Every passport must be sealed (else 409 naming the shipments without a "
        "seal). The signature is a base64 PNG of at most 40 KB (also bounded by the server's "
        "body limit); only its sha256 is kept with the manifest. The office signs through the "
        "staff user the token was issued to (403 for a token nobody holds). Each passport is "
        "then in the courier's custody, with the manifest and seal as evidence. " + _OFFICE_SCOPED,
    ),
    Operation(
        "POST",
        "/api/v1/deliveries/{id}/rebook",
        "rebookDelivery",
        "Book a delivery again after the courier refused it or its shipment was cancelled",
        "dispatch",
        auth="staff",
        roles=("dispatcher",),
        request="api/dispatch_rebook",
        response="api/dispatch_rebook_result",
        params=(RECORD_ID,),
        errors=(404, 409),
        description="Queues the delivery for a new attempt under a new reference (earlier "
        "attempts keep their records); the items that asked for it are resolved. 409 with the "
        "next step in words while a shipment is booked (cancel first), in doubt (record its "
        "waybill or release it) or with the courier, or when the delivery does not wait for a "
        "person. " + _OFFICE_SCOPED,
    ),
    Operation(
        "POST",
        "/api/v1/deliveries/{id}/address",
        "correctAddress",
        "Correct the applicant's address, and book again at once if asked",
        "dispatch",
        auth="staff",
        roles=("dispatcher",),
        request="api/dispatch_address",
        response="api/dispatch_address_result",
        params=(RECORD_ID,),
        errors=(404, 409),
        description="Checked as the opt-in checks it (region codes, postal code, eligibility: "
        "422 naming $.address.<field>). 409 while a shipment is open: the courier has the old "
        "address. " + _OFFICE_SCOPED,
    ),
    Operation(
        "PUT",
        "/api/v1/office/sender",
        "correctSender",
        "Correct the office's sender block (the shipper the courier prints)",
        "dispatch",
        auth="staff",
        roles=("dispatcher",),
        request="api/office_sender",
        response="api/office_sender_result",
        description="Checked against the office courier's limits (422 naming $.sender.<field>), "
        "as configuring the office is. Re-book the deliveries refused for it with /rebook.",
    ),
    Operation(
        "POST",
        "/api/v1/deliveries/{id}/lost",
        "markLost",
        "The courier lost the passport: record its report",
        "dispatch",
        auth="staff",
        roles=("dispatcher",),
        request="api/dispatch_lost",
        response="api/dispatch_lost_result",
        params=(RECORD_ID,),
        errors=(404, 409),
        description="The shipment becomes lost, the custody chain ends with the report as "
        "evidence, the delivery is cancelled, its items are resolved and the applicant is told. "
        "409 when no shipment is with the courier. " + _OFFICE_SCOPED,
    ),
    Operation(
        "GET",
        "/api/v1/packing",
        "findForPacking",
        "Find the booked passport in hand by its application number (typed or scanned)",
        "packing",
        auth="staff",
        roles=("dispatcher",),
        response="api/packing_view",
        params=(Param("application_no", "application_no", where="query", source=_PACKING),),
        errors=(404, 409, 422),
        description="404 when the office has no delivery with this number; 409 when its "
        "passport is not booked and waiting for pickup.",
    ),
    Operation(
        "POST",
        "/api/v1/deliveries/{id}/seal",
        "sealEnvelope",
        "Record the seal number of the passport's envelope",
        "packing",
        auth="staff",
        roles=("dispatcher",),
        request="api/packing_seal",
        response="api/packing_view",
        params=(RECORD_ID,),
        errors=(404, 409),
        description="Upper-cased, spaces and dashes removed; unique per office (422 naming "
        "$.seal_number). The seal is kept on the passport's line of the courier's open pickup "
        "manifest (the passport joins it, or opens it). 409 when the passport is not booked or "
        "its manifest is handed over. " + _OFFICE_SCOPED,
    ),
    Operation(
        "GET",
        "/api/v1/deliveries/{id}/label.pdf",
        "getLabel",
        "The passport's shipping label as PDF (waybill as Code 128)",
        "packing",
        auth="staff",
        roles=("dispatcher",),
        params=(RECORD_ID,),
        errors=(404, 409),
        binary=("application/pdf",),
        description="Rendered by us for both couriers (neither gives a label to print): "
        "sender, receiver, weight, service, waybill and reference; no application number, "
        "passport data or tracking link. 409 when nothing is booked. " + _OFFICE_SCOPED,
    ),
    Operation(
        "GET",
        "/api/v1/labels.pdf",
        "getDayLabels",
        "The day's labels in one PDF, one A6 page each",
        "packing",
        auth="staff",
        roles=("dispatcher",),
        params=(Param("date", "date", where="query", required=False, source=_PACKING),),
        errors=(422,),
        binary=("application/pdf",),
        description="Every shipment of the office booked that day (WIB; today by default) and "
        "still waiting for pickup.",
    ),
    Operation(
        "GET",
        "/api/v1/manifests/{id}.pdf",
        "getManifestPdf",
        "The pickup manifest printed for both signatures",
        "pickup",
        auth="staff",
        roles=("dispatcher",),
        params=(RECORD_ID,),
        errors=(404,),
        binary=("application/pdf",),
        description="Application numbers, masked names, seals, waybills and destination "
        "regencies; the pickup slot; signature lines for the office and the courier's agent. "
        + _OFFICE_SCOPED,
    ),
    Operation(
        "DELETE",
        "/api/v1/manifests/{id}/items/{delivery_id}",
        "removeManifestItem",
        "Take a passport off an open pickup manifest",
        "pickup",
        auth="staff",
        roles=("dispatcher",),
        request="api/manifest_item_remove",
        response="api/manifest_view",
        params=(RECORD_ID, DELIVERY_ID),
        errors=(404, 409),
        description="The shipment stays booked (a later manifest lists it again); audited with "
        "its seal. 409 when the delivery's passport is not on this manifest, or once the "
        "manifest is handed over. " + _OFFICE_SCOPED,
    ),
    Operation(
        "GET",
        "/api/v1/board",
        "getBoard",
        "The office's dispatch board",
        "console",
        auth="staff",
        roles=("dispatcher",),
        response="api/board",
        errors=(422,),
        description="Deliveries under way by state, open shipments by courier and status, "
        "today's pickup slots (WIB) with the shipments waiting for them, deadlines at risk "
        "(collect-by within 3 days or past) and open exception items by kind. The console's "
        "board (/) shows the same. No query parameters (an unknown one is a 422).",
    ),
    Operation(
        "GET",
        "/api/v1/deliveries",
        "findDeliveries",
        "Find the office's deliveries",
        "console",
        auth="staff",
        roles=("dispatcher",),
        response="api/deliveries_page",
        params=FIND_PARAMS,
        errors=(422,),
        description="Filters combine (AND). q is an application number, a waybill or an "
        "envelope's seal number (exact), else the start of the applicant's name (case and "
        "accents do not matter). Newest first; pass next_cursor as cursor for the next page. "
        "format=csv answers text/csv with every matching row (at most 100,000; cells that a "
        "spreadsheet would run as a formula are prefixed with an apostrophe).",
        alt_content={"text/csv": {"schema": {"type": "string"}}},
    ),
    Operation(
        "POST",
        "/api/v1/exceptions/{id}/resolve",
        "resolveException",
        "Close an exception item with a note",
        "console",
        auth="staff",
        roles=("dispatcher",),
        request="api/exception_resolve",
        response="api/exception_resolved",
        params=(CONSOLE_ID,),
        errors=(404, 409),
        description="Who (the caller), when and why (the note) are kept on the item and in the "
        "audit log. 409 when the item is closed already (by a person, or by itself when its "
        "cause went away). " + _OFFICE_SCOPED,
    ),
    Operation(
        "GET",
        "/api/v1/contracts",
        "listContracts",
        "The courier contracts serving the office, newest period first",
        "contracts",
        auth="staff",
        roles=CONTRACTS,
        response="api/contract_list",
        errors=(422,),
        description="Each with its terms, status and whether it is in force today (WIB).",
    ),
    Operation(
        "POST",
        "/api/v1/contracts",
        "createContract",
        "Register a courier contract (a draft)",
        "contracts",
        auth="staff",
        roles=CONTRACTS,
        request="api/contract_terms",
        response="api/contract_view",
        status=201,
        errors=(409,),
        description="Contradictory terms are refused naming the field (422); a number already "
        "used is 409. The offices must include the caller's. Audited.",
    ),
    Operation(
        "GET",
        "/api/v1/contracts/{id}",
        "getContract",
        "One courier contract",
        "contracts",
        auth="staff",
        roles=CONTRACTS,
        response="api/contract_view",
        params=(RECORD_ID,),
        errors=(404,),
        description=_CONTRACT_SCOPED,
    ),
    Operation(
        "PUT",
        "/api/v1/contracts/{id}",
        "updateContract",
        "New terms for a draft contract",
        "contracts",
        auth="staff",
        roles=CONTRACTS,
        request="api/contract_terms",
        response="api/contract_view",
        params=(RECORD_ID,),
        errors=(404, 409),
        description="Only a draft's terms change (409 contract_not_draft otherwise). Audited. "
        + _CONTRACT_SCOPED,
    ),
    Operation(
        "POST",
        "/api/v1/contracts/{id}/status",
        "setContractStatus",
        "Activate, suspend or end a contract",
        "contracts",
        auth="staff",
        roles=CONTRACTS,
        request="api/contract_status",
        response="api/contract_view",
        params=(RECORD_ID,),
        errors=(404, 409),
        description="draft → active ⇄ suspended → ended. Activation is refused (409 "
        "contract_overlaps, naming the other contract) while a live contract of the same courier "
        "serves a same office for a same regency over an overlapping period. Suspending or "
        "ending stops new bookings at once; shipments under it continue. Audited. "
        + _CONTRACT_SCOPED,
    ),
    Operation(
        "GET",
        "/api/v1/scorecards",
        "getScorecards",
        "Courier scorecards for a period: per courier, per contract and month by month",
        "contracts",
        auth="staff",
        roles=CONTRACTS,
        response="api/scorecard",
        params=SCORECARD_PARAMS,
        errors=(404, 422),
        description="Computed in the database from every shipment booked in the period (WIB). "
        "On time against the contract's SLA in working days (weekends, public holidays and "
        "cuti bersama excluded); definitions in the scorecard schema's description.",
    ),
    Operation(
        "GET",
        "/api/v1/scorecards.csv",
        "getScorecardsCsv",
        "The scorecards as CSV (text/csv)",
        "contracts",
        auth="staff",
        roles=CONTRACTS,
        params=SCORECARD_PARAMS,
        errors=(404, 422),
        description="One line per courier, per contract and per courier and month (column "
        "level), the same figures as the JSON; cells a spreadsheet would run as a formula are "
        "neutralised.",
    ),
)
_ERROR_DESCRIPTIONS = {
    400: "Malformed request (the body is not JSON, or not an object)",
    401: "No usable credential (missing, malformed, unknown or revoked token)",
    403: "The credential is valid but its role may not do this",
    404: "No such resource (for this office, or for this token)",
    409: "The request is valid but the current state refuses it",
    413: "The request body is larger than the configured limit",
    415: "The request body is not declared as JSON (Content-Type: application/json)",
    422: "Invalid fields: each detail names a field by its JSON path",
    429: "Too many attempts: wait for Retry-After seconds",
    503: "Unavailable: the database cannot be reached right now; try again after Retry-After "
    "seconds (on /readyz: also a schema behind the migrations)",
}


def component_name(schema_name: str) -> str:
    """``api/opt_in`` → ``api.opt_in`` (component names allow letters, digits, ``.-_``)."""
    return schema_name.replace("/", ".")


def _ref_target(ref: str, owner: str) -> tuple[str, str]:
    """(schema name, JSON pointer) a ``$ref`` in schema ``owner`` points to."""
    target, _, pointer = ref.partition("#")
    if not target:
        return owner, pointer
    return target.removeprefix("urn:courier:").removesuffix(".json"), pointer


def _rewrite(node: Any, owner: str, found: set[str]) -> Any:
    if isinstance(node, list):
        return [_rewrite(item, owner, found) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            name, pointer = _ref_target(value, owner)
            found.add(name)
            out[key] = f"#/components/schemas/{component_name(name)}{pointer}"
        elif key in ("$schema", "$id"):
            continue  # the document is the resource now; refs are rewritten to point into it
        elif key in ("properties", "$defs", "patternProperties", "dependentSchemas"):
            out[key] = {k: _rewrite(v, owner, found) for k, v in value.items()}
        else:
            out[key] = _rewrite(value, owner, found)
    return out


def component_schemas(extra: Iterable[str] = ()) -> dict[str, Any]:
    """Every API and common schema, plus ``extra`` and whatever they reference, rewritten."""
    pending = [n for n in schemas.names() if n.startswith(API_SCHEMA_PREFIXES)]
    pending += list(extra)
    done: dict[str, Any] = {}
    while pending:
        name = pending.pop()
        if component_name(name) in done:
            continue
        refs: set[str] = set()
        done[component_name(name)] = _rewrite(copy.deepcopy(schemas.load(name)), name, refs)
        pending.extend(sorted(refs))
    return dict(sorted(done.items()))


def _schema_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{component_name(name)}"}


def _parameter(param: Param) -> dict[str, Any]:
    source = schemas.load(param.source)["$defs"][param.schema]
    schema = {k: v for k, v in source.items() if k != "description"}
    return {
        "name": param.name,
        "in": param.where,
        "required": param.required,
        "description": source.get("description", ""),
        "schema": schema,
    }


def _success(op: Operation) -> dict[str, Any]:
    body: dict[str, Any] = {"description": "Success"}
    if op.binary:  # a file: a photo, a printed PDF
        body["content"] = {t: {"schema": {"type": "string", "format": "binary"}} for t in op.binary}
    elif op.response is not None:
        body["content"] = {"application/json": {"schema": _schema_ref(op.response)}}
        body["content"].update(op.alt_content)
    return body


def _operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
    }
    if op.description:
        out["description"] = op.description
    if op.params:
        out["parameters"] = [_parameter(p) for p in op.params]
    if op.request is not None:
        out["requestBody"] = {
            "required": True,
            "content": {op.request_type: {"schema": _schema_ref(op.request)}},
        }
    responses: dict[str, Any] = {str(op.status): _success(op)}
    for status in op.also_status:
        responses[str(status)] = _success(op)
    for status in op.error_statuses():
        responses[str(status)] = {"$ref": f"#/components/responses/Error{status}"}
    for status, schema_name, text in op.other_responses:
        responses[str(status)] = {
            "description": text,
            "content": {"application/json": {"schema": _schema_ref(schema_name)}},
        }
    out["responses"] = responses
    if op.auth == "staff":
        out["security"] = [{"staffToken": []}]
        out["x-roles"] = ["admin", *op.roles]
    out.update(op.extra)
    return out


def _error_responses() -> dict[str, Any]:
    return {
        f"Error{status}": {
            "description": text,
            "content": {"application/json": {"schema": _schema_ref("api/error")}},
        }
        for status, text in _ERROR_DESCRIPTIONS.items()
    }


def _version() -> str:
    try:
        return metadata.version("passport-courier")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def build_document(catalogue: Iterable[Operation] = CATALOGUE) -> dict[str, Any]:
    ops = list(catalogue)
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    used = [n for op in ops for n in (op.request, op.response) if n is not None]
    used += [name for op in ops for _, name, _ in op.other_responses]
    used_tags = {op.tag for op in ops}
    tags = [t for t in TAGS if t in used_tags] + sorted(used_tags - set(TAGS))
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "passport-courier",
            "version": _version(),
            "summary": "Home delivery of finished passports through couriers",
            "description": "JSON API of passport-courier. Every answer that is not a success has "
            'the one error shape `{"error": {"code", "message", "details": [{"path", '
            '"message"}]}}`, each detail naming a bad field by its JSON path. Times are UTC '
            "ISO 8601; they are shown in WIB (Asia/Jakarta) on the pages.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [{"name": t, "description": TAGS.get(t, "")} for t in tags],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": component_schemas(used),
            "responses": _error_responses(),
            "securitySchemes": {
                "staffToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a staff API token from `courier token add --role ROLE`",
                }
            },
        },
    }


@cache
def document() -> dict[str, Any]:
    return build_document()


def is_documented_path(path: str) -> bool:
    """False for what is not the JSON API: docs, static files, metrics, HTML pages."""
    if console.is_console_path(path):
        return False  # the dispatch console's pages
    return path not in UNDOCUMENTED_PATHS and not path.startswith(UNDOCUMENTED_PREFIXES)


# --------------------------------------------------------------------------------------------
# Routes

routes = web.RouteTableDef()

_ASSETS = resources.files("courier.web").joinpath("static", "swagger-ui")
_ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "docs.js": "text/javascript; charset=utf-8",
}

_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>passport-courier API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/docs.js"></script>
</body>
</html>
"""


@routes.get("/openapi.json", name="openapi")
async def get_openapi(_request: web.Request) -> web.Response:
    return web.json_response(document())


# Swagger UI runs its own (vendored) scripts and reads /openapi.json; nothing from elsewhere, no
# framing. Its stylesheet inlines data: images; React sets styles through the DOM (allowed).
DOCS_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@routes.get("/docs", name="docs")
async def get_docs(_request: web.Request) -> web.Response:
    return web.Response(text=_DOCS_PAGE, content_type="text/html", headers=DOCS_SECURITY_HEADERS)


@routes.get("/docs/assets/{name}", name="docs_asset")
async def get_docs_asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    kind = _ASSET_TYPES.get(name)
    if kind is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=_asset(name),
        headers={"Content-Type": kind, "Cache-Control": "public, max-age=86400"},
    )


@cache
def _asset(name: str) -> bytes:
    return _ASSETS.joinpath(name).read_bytes()
