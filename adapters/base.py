"""The courier contract: what the service may ask of a courier, and what it gets back.

Every courier integration (``adapters/jnt``, ``adapters/posind``) implements :class:`CourierAdapter`
and speaks only in the values defined here. Nothing in this module does I/O.

Errors form one tree; the service decides what to do from the class alone::

    CourierError                      base: ``courier`` and a message safe to log (no PII)
    ├── CourierUnavailable            transient: 5xx, timeout, connection refused, circuit open.
    │   │                             Safe calls (track, find, token) are retried; a create is not.
    │   ├── RateLimited               429 or our own quota; ``retry_after`` seconds to wait
    │   └── ResponseInvalid           the courier answered with a shape we do not understand;
    │                                 ``path`` names where (the payload itself is never logged)
    ├── OutcomeUnknown                a create that may or may not have happened (timeout after
    │   │                             sending): reconcile by reference, never book again with a
    │   │                             new one
    │   ├── DuplicateReference        the courier refused the reference as already used: for a
    │   │                             courier known to dedupe, the order exists
    │   └── NotUnderstood             a create answered in a shape we do not know: the order may
    │                                 exist; ``raw`` keeps the answer redacted for a person
    ├── CourierRejected               permanent: the courier refused (bad address, field too long,
    │                                 cancel after pickup). ``code`` and ``reason`` for a human
    ├── AuthFailed                    credentials or signature refused; needs configuration
    ├── RequestNotBuilt               our request could not be built, signed or encoded (a lone
    │                                 surrogate in a street name): nothing was sent
    └── NotSupported                  the courier has no such operation (Pos Indonesia cancel),
                                      or this account has not got it (a lookup that is not
                                      configured, or whose route answers 404/405)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from core.status import Status

if TYPE_CHECKING:
    from adapters.http import CourierTransport

# --------------------------------------------------------------------------------------------
# Errors


class CourierError(Exception):
    """Base of every courier failure. ``str(err)`` is safe to log: it never carries PII."""

    def __init__(self, courier: str, message: str) -> None:
        super().__init__(f"{courier}: {message}")
        self.courier = courier
        self.message = message


class CourierUnavailable(CourierError):
    """Transient: worth trying again later."""


class RateLimited(CourierUnavailable):
    def __init__(self, courier: str, message: str, retry_after: float) -> None:
        super().__init__(courier, message)
        self.retry_after = retry_after


class ResponseInvalid(CourierUnavailable):
    def __init__(self, courier: str, message: str, path: str = "$") -> None:
        super().__init__(courier, f"{message} at {path}")
        self.path = path


class OutcomeUnknown(CourierError):
    """A create that may have happened. Reconcile by the same reference; never mint a new one."""


class DuplicateReference(OutcomeUnknown):
    """The courier refused our reference as already used (J&T "Orderid tidak boleh sama").
    From a courier known to refuse a reused reference, this means the order exists."""


class NotUnderstood(OutcomeUnknown):
    """The courier answered a create in a shape we do not know: the order may exist.

    ``raw`` is the answer with every value that could carry personal data masked
    (:func:`redact_answer`), kept for the person who checks ``reference`` in the portal.
    """

    def __init__(self, courier: str, reference: str, path: str, raw: Any) -> None:
        super().__init__(
            courier,
            "the courier's answer was not understood; the order may exist: check reference "
            f"{reference} in the portal",
        )
        self.reference = reference
        self.path = path
        self.raw = redact_answer(raw)


class CourierRejected(CourierError):
    def __init__(self, courier: str, code: str, reason: str) -> None:
        super().__init__(courier, f"rejected ({code}): {reason}")
        self.code = code
        self.reason = reason


class AuthFailed(CourierError):
    """Credentials, token or signature refused."""


class RequestNotBuilt(CourierError):
    """Building, signing or encoding our own request failed: nothing reached the courier.
    The message names the exception's type only (its text may quote the data)."""


def not_built(courier: str, operation: str, exc: Exception) -> RequestNotBuilt:
    return RequestNotBuilt(
        courier, f"{operation}: the request could not be built ({type(exc).__name__})"
    )


class NotSupported(CourierError):
    """The courier's API has no such operation."""


# Keys whose values are codes, messages and identifiers of ours or the courier's: kept. Every
# other string (it could echo a name, a phone, an address) is masked.
_SAFE_KEY = re.compile(
    r"(code|status|msg|message|desc|result|success|error|reason|barcode|awb|awb_no|orderid|id)$",
    re.IGNORECASE,
)
MASK = "[redacted]"


def redact_answer(value: Any, key: str = "", depth: int = 0) -> Any:
    """A courier answer's structure with only safe values left (codes, messages, identifiers;
    numbers and booleans); strings under other keys masked, long texts cut to 200 characters.
    What is kept of an answer we did not understand, for the person who checks it."""
    if depth > 6:
        return MASK
    if isinstance(value, Mapping):
        return {str(k): redact_answer(v, str(k), depth + 1) for k, v in list(value.items())[:50]}
    if isinstance(value, list):
        return [redact_answer(v, key, depth + 1) for v in value[:20]]
    if isinstance(value, str):
        return value[:200] if key and _SAFE_KEY.search(key) else MASK
    if value is None or isinstance(value, bool | int | float):
        return value
    return MASK


# --------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True, slots=True)
class Address:
    street: str
    village: str
    district: str
    regency: str
    province: str
    postal_code: str
    regency_code: str  # BPS/Kemendagri code, e.g. "35.73" (Kota Malang)
    district_code: str  # e.g. "35.73.01"
    note: str = ""


@dataclass(frozen=True, slots=True)
class Party:
    name: str
    phone: str  # E.164, e.g. "+6281234567890"
    address: Address
    email: str = ""


@dataclass(frozen=True, slots=True)
class ShipmentOrder:
    """One courier order. ``reference`` is ours, deterministic, at most 20 characters (J&T)."""

    reference: str
    sender: Party  # the office
    receiver: Party  # the applicant
    weight_kg: Decimal
    declared_value: int  # rupiah
    service: str  # courier service code, e.g. "EZ" (J&T regular), "240" (Pos express)
    description: str = "DOKUMEN"
    pickup_start: datetime | None = None  # aware; the courier's pickup window
    pickup_end: datetime | None = None
    insured: bool = False


@dataclass(frozen=True, slots=True)
class Booking:
    reference: str
    waybill: str
    courier_reference: str = ""  # courier's own id when it differs from the waybill
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Artefact:
    kind: str  # "photo" | "signature"
    url: str  # often a signed link that expires: fetch it when the event arrives


@dataclass(frozen=True, slots=True)
class TrackingEvent:
    waybill: str
    occurred_at: datetime  # aware, UTC
    raw_code: str
    raw_text: str
    status: Status | None  # None: unmapped code. Store it, change nothing, raise an exception item
    location: str = ""
    receiver_name: str = ""  # on delivery
    relation: str = ""  # on delivery, as the courier wrote it (free text)
    artefacts: tuple[Artefact, ...] = ()
    reason: str = ""  # failed attempt / return reason, as given
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dedupe_key(self) -> str:
        """Same event seen twice (push and poll, or a re-sent push) → same key."""
        basis = "|".join((self.waybill, self.occurred_at.isoformat(), self.raw_code, self.raw_text))
        return hashlib.sha256(basis.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Capabilities:
    cancel: bool
    push: bool
    find: bool
    track_batch_size: int  # waybills per API call
    #: The courier is KNOWN (documented, or confirmed under contract) to refuse a second order
    #: with the same reference, so resending it can never make a second order (J&T: "Orderid
    #: tidak boleh sama"). False when that is only inferred or unknown: then a create whose
    #: outcome is unknown is never resent; a human checks the courier's portal (DESIGN §5.1).
    dedupes_reference: bool = False


TrackOutcome = Sequence[TrackingEvent] | CourierError


@dataclass(frozen=True, slots=True)
class PushReply:
    """The exact HTTP answer a courier expects from our push receiver."""

    status: int
    body: bytes
    content_type: str = "application/json"


@runtime_checkable
class CourierAdapter(Protocol):
    code: str  # "jnt" | "posind"

    @property
    def capabilities(self) -> Capabilities: ...

    async def book(self, order: ShipmentOrder) -> Booking:
        """Create the order. Duplicate reference → OutcomeUnknown (then ``find``), not failure."""
        ...

    async def find(self, reference: str) -> Booking | None:
        """Look an order up by our reference; None when the courier has none."""
        ...

    async def cancel(self, booking: Booking, reason: str) -> None: ...

    async def track(self, waybills: Sequence[str]) -> Mapping[str, TrackOutcome]:
        """Events per waybill, oldest first. Unknown waybill → empty list. Errors per waybill."""
        ...

    def verify_push(self, headers: Mapping[str, str], body: bytes) -> bool: ...

    def parse_push(self, body: bytes) -> list[TrackingEvent]:
        """Raises ResponseInvalid naming the path when the body is not a push we understand."""
        ...

    def push_ack(self, accepted: bool) -> PushReply: ...

    async def close(self) -> None: ...


# --------------------------------------------------------------------------------------------
# The one registration point per courier


@dataclass(frozen=True, slots=True)
class CourierNames:
    """How staff and applicants know the courier, in Bahasa Indonesia and in English."""

    id: str
    en: str


_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class PodOrigin:
    """Where a courier's proof-of-delivery links may point: exactly this scheme, host and port.

    ``allow_private``: the host may resolve to a private, loopback or link-local address (a
    simulator on this machine); without it such an address is refused after DNS resolution."""

    scheme: str
    host: str
    port: int
    allow_private: bool = False

    @classmethod
    def of_url(cls, url: str, *, allow_private: bool = False) -> PodOrigin | None:
        """The origin of an ``http(s)`` URL without credentials (host lower-cased, the default
        port filled in); None for anything else."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return None
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
            return None
        return cls(scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme], allow_private)

    def same_place(self, other: PodOrigin) -> bool:
        return (self.scheme, self.host, self.port) == (other.scheme, other.host, other.port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


#: Builds the adapter from settings already checked against the descriptor's schema.
AdapterFactory = Callable[[Mapping[str, Any], "CourierTransport"], CourierAdapter]


@dataclass(frozen=True, slots=True)
class CourierDescriptor:
    """Everything the service knows about a courier outside its own package. Each courier
    package exports one (``DESCRIPTOR``); ``adapters/registry.py`` lists them, and booking, the
    tracking page, ``courier simulate``, the demo, the configuration docs and the schemas'
    courier enums read them from there (a new courier is its package plus one registry line).
    """

    code: str  # stored in shipments.courier_code and offices.courier_code: never rename one
    names: CourierNames
    #: a schema name under ``schemas/`` (``"couriers/jnt/settings"``), or the schema itself for a
    #: courier whose package ships its own
    settings_schema: str | Mapping[str, Any]
    adapter: AdapterFactory
    #: what the courier's API offers at most; an adapter may offer less with a given account
    #: (``CourierAdapter.capabilities`` is the truth for one configured account)
    capabilities: Capabilities
    default_service: str = ""  # service code when the settings name none ("" = the adapter's)
    #: where its proof-of-delivery links are known to point (exact scheme, host and port),
    #: beyond its API's own origins; the ``pod_origins`` setting replaces both
    pod_origins: tuple[PodOrigin, ...] = ()
    #: dotted module of its simulator (``create_app(clock, options=...)``,
    #: ``adapter_settings(url, options)``): a string, so adapters never import simulators
    simulator: str = ""
    simulator_port: int = 0  # ``courier simulate``'s default port
    #: the courier's limits on the sender block (the office), checked when an office is
    #: configured rather than at its first booking: ``(field, problem)`` pairs, the field as
    #: the courier names it, e.g. ``("shipper_name", "39 characters, at most 30")``
    sender_problems: Callable[[Party], list[tuple[str, str]]] | None = None

    def name(self, language: str = "id") -> str:
        return self.names.en if language == "en" else self.names.id
