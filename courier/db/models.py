"""Tables (DESIGN §4). Time is stored in UTC; nothing is ever hard-deleted.

Columns that hold personal data (names, dates of birth, phones, addresses) exist only where
delivery needs them; passport numbers and tokens are never stored, only their hashes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, validates
from sqlalchemy.types import TypeDecorator

from courier.domain.text import search_key

# Statuses a shipment can still move from: at most one such shipment per delivery.
OPEN_SHIPMENT_STATUSES = (
    "booking",
    "booked",
    "picked_up",
    "in_transit",
    "out_for_delivery",
    "delivery_failed",
    "returning",
)
# Delivery states that are not final (courier.domain.states.FINAL_DELIVERY_STATES' complement).
UNDER_WAY_STATES = (
    "requested",
    "queued",
    "shipping",
    "delivered",
    "returned",
    "needs_attention",
)
_UNDER_WAY_SQL = "state IN (" + ", ".join(f"'{s}'" for s in UNDER_WAY_STATES) + ")"
_OPEN_SQL = "status IN (" + ", ".join(f"'{s}'" for s in OPEN_SHIPMENT_STATUSES) + ")"

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (which keeps no zone) and PG alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: store aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite rowid aliases only for INTEGER


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Office(Base):
    __tablename__ = "offices"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    code: Mapped[str] = mapped_column(String(8), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    home_regency_codes: Mapped[list[Any]] = mapped_column(JSON)
    pickup_slots: Mapped[list[Any]] = mapped_column(JSON)  # ["10:00", "15:00"] WIB
    collect_days: Mapped[int] = mapped_column(Integer, default=30)
    courier_code: Mapped[str] = mapped_column(String(16))
    sender: Mapped[dict[str, Any]] = mapped_column(JSON)  # the office as courier sender
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # routing policy: courier codes, most preferred first (courier/domain/routing.py)
    courier_preference: Mapped[list[Any]] = mapped_column(
        JSON, default=list, server_default=text("'[]'")
    )


def _search_name_default(context: DefaultExecutionContext) -> str:
    return search_key(str(context.get_current_parameters().get("applicant_name") or ""))


class Application(Base):
    __tablename__ = "applications"
    __table_args__ = (
        UniqueConstraint("office_id", "application_no"),
        # the console's name search: a prefix of the search key, within one office
        Index(
            "ix_applications_search_name",
            "office_id",
            "search_name",
            postgresql_ops={"search_name": "varchar_pattern_ops"},
        ),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"), index=True)
    application_no: Mapped[str] = mapped_column(String(32))
    applicant_name: Mapped[str] = mapped_column(String(120))
    # the name as the console searches it (courier.domain.text.search_key): set with the name,
    # by the ORM (validates) and by bulk inserts (the column default) alike
    search_name: Mapped[str] = mapped_column(
        String(120), default=_search_name_default, server_default=""
    )
    date_of_birth: Mapped[date] = mapped_column(Date)
    phone: Mapped[str] = mapped_column(String(20))  # E.164
    priority_kind: Mapped[str | None] = mapped_column(String(16))
    express: Mapped[bool] = mapped_column(Boolean, default=False)
    passport_no_hash: Mapped[str | None] = mapped_column(String(200))
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    collect_by: Mapped[datetime | None] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(16), default="registered")  # registered | ready
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @validates("applicant_name")
    def _keep_search_name(self, _key: str, value: str) -> str:
        self.search_name = search_key(value)
        return value


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_claim", "state", "next_attempt_at"),
        # the console (courier/services/board.py, find.py): newest first within an office, by
        # state, by destination, by deadline and by day
        Index("ix_deliveries_office_recent", "office_id", "id"),
        Index("ix_deliveries_office_state", "office_id", "state", "id"),
        Index("ix_deliveries_office_regency", "office_id", "destination_regency_code", "id"),
        # deadlines at risk: only deliveries still under way (final ones keep old deadlines)
        Index(
            "ix_deliveries_open_collect_by",
            "office_id",
            "collect_by",
            "id",
            postgresql_where=text(_UNDER_WAY_SQL),
            sqlite_where=text(_UNDER_WAY_SQL),
        ),
        # the board's counts by state: the deliveries under way, a few percent of all
        Index(
            "ix_deliveries_open_state",
            "office_id",
            "state",
            postgresql_where=text(_UNDER_WAY_SQL),
            sqlite_where=text(_UNDER_WAY_SQL),
        ),
        Index("ix_deliveries_office_created", "office_id", "created_at", "id"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), unique=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"), index=True)
    address: Mapped[dict[str, Any]] = mapped_column(JSON)
    destination_regency_code: Mapped[str] = mapped_column(String(8))
    consent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    consent_version: Mapped[str] = mapped_column(String(16))
    tracking_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(24))
    state_reason: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(Integer, default=0)  # higher first: priority, express
    collect_by: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claim_count: Mapped[int] = mapped_column(Integer, default=0)
    handed_over_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Shipment(Base):
    __tablename__ = "shipments"
    __table_args__ = (
        UniqueConstraint("courier_code", "client_reference"),
        UniqueConstraint("delivery_id", "attempt_no"),
        Index(
            "uq_shipments_open_per_delivery",
            "delivery_id",
            unique=True,
            postgresql_where=text(_OPEN_SQL),
            sqlite_where=text(_OPEN_SQL),
        ),
        Index("ix_shipments_poll", "next_poll_at"),
        Index("ix_shipments_waybill", "courier_code", "waybill"),
        Index("ix_shipments_waybill_any", "waybill"),  # the console finds a waybill of any courier
        # the board's open shipments by courier and status, read from the index alone
        Index(
            "ix_shipments_open_courier",
            "delivery_id",
            "courier_code",
            "status",
            postgresql_where=text(_OPEN_SQL),
            sqlite_where=text(_OPEN_SQL),
        ),
        Index("ix_shipments_booked_at", "booked_at"),  # scorecards choose a period's shipments
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"))
    attempt_no: Mapped[int] = mapped_column(Integer)
    courier_code: Mapped[str] = mapped_column(String(16))
    contract_id: Mapped[int | None] = mapped_column(Id, index=True)
    # the contract's service level for this destination, in working days, pinned at booking
    sla_days: Mapped[int | None] = mapped_column(Integer)
    client_reference: Mapped[str] = mapped_column(String(20))
    waybill: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(24))
    status_reason: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claim_count: Mapped[int] = mapped_column(Integer, default=0)
    reconcile_count: Mapped[int] = mapped_column(Integer, default=0)
    # False only when the last create certainly never reached the courier (refused connection,
    # open circuit, rate limit): only then may a courier that cannot be asked get it again
    create_may_exist: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cost: Mapped[int | None] = mapped_column(Integer)  # rupiah
    booked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TrackingEventRow(Base):
    __tablename__ = "tracking_events"
    __table_args__ = (Index("ix_tracking_events_shipment", "shipment_id", "occurred_at"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"))
    source: Mapped[str] = mapped_column(String(8))  # push | poll
    raw_code: Mapped[str] = mapped_column(String(64))
    raw_text: Mapped[str] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(String(24))  # None: unmapped
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    location: Mapped[str] = mapped_column(String(120), default="")
    applied: Mapped[bool] = mapped_column(Boolean, default=False)  # moved the status
    raw: Mapped[dict[str, Any]] = mapped_column(JSON)
    # the same scan as another source reported it (push beside poll): one entry per further
    # source, {source, raw_code, raw_text, raw, received_at}; the row above is the first copy
    other_raws: Mapped[list[Any]] = mapped_column(JSON, server_default=text("'[]'"))
    # courier.domain.scans.scan_key: shipment, status, time and place, not the raw words
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)


class Proof(Base):
    __tablename__ = "proofs"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"), index=True)
    receiver_name: Mapped[str] = mapped_column(String(120))
    relation: Mapped[str] = mapped_column(String(120))
    relation_kind: Mapped[str] = mapped_column(String(16))  # self | family | other | unknown
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    artefacts: Mapped[list[Any]] = mapped_column(JSON)  # [{kind, sha256, size, fetched_at}]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Handover(Base):
    __tablename__ = "handovers"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), index=True)
    shipment_id: Mapped[int | None] = mapped_column(ForeignKey("shipments.id"))
    method: Mapped[str] = mapped_column(String(24))  # applicant_confirmation | review | counter
    # awaiting_confirmation | needs_review | verified | refused
    state: Mapped[str] = mapped_column(String(24))
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    confirm_failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CustodyEvent(Base):
    """Append-only: who held the passport, from when, on what evidence."""

    __tablename__ = "custody_events"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), index=True)
    shipment_id: Mapped[int | None] = mapped_column(ForeignKey("shipments.id"))
    holder: Mapped[str] = mapped_column(String(24))  # office | courier | applicant | family | other
    holder_ref: Mapped[str] = mapped_column(String(64), default="")  # courier code, staff id…
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    recorded_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ExceptionItem(Base):
    __tablename__ = "exception_items"
    __table_args__ = (
        Index("ix_exception_items_open", "office_id", "resolved_at"),
        Index("ix_exception_items_delivery", "delivery_id", "resolved_at"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"))
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id"))
    shipment_id: Mapped[int | None] = mapped_column(ForeignKey("shipments.id"))
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    next_step: Mapped[str] = mapped_column(Text, default="")
    dedupe_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolution: Mapped[str | None] = mapped_column(Text)


class InboxItem(Base):
    """Verified courier pushes, stored before they are processed."""

    __tablename__ = "inbox"
    __table_args__ = (
        # the claim (courier/db/queue.py take_inbox) and the inbox lag (courier/metrics.py)
        # read only rows still to apply
        Index(
            "ix_inbox_unprocessed",
            "id",
            postgresql_where=text("processed_at IS NULL"),
            sqlite_where=text("processed_at IS NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    courier_code: Mapped[str] = mapped_column(String(16))
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # both found through ix_inbox_unprocessed only: see migration 0011_perf
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # when the inbox loop may try this row again (None: at once); due rows are found in SQL
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboxItem(Base):
    """Notifications to send (applicant e-mails/SMS, staff alerts)."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    dedupe_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # the sender's claim (courier/db/queue.py: claim_outbox), like the deliveries' leases
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claim_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # given up after notify.max_attempts: an exception item says so; never claimed again
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class NotifyOptOut(Base):
    """The applicant followed the opt-out link of a delivery's messages: only the essential ones
    are sent from then on (courier/domain/messages.py)."""

    __tablename__ = "notify_opt_outs"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), unique=True)
    opted_out_at: Mapped[datetime] = mapped_column(UTCDateTime)


class NotificationSend(Base):
    """One message that left on one channel: an outbox row is done when every channel it
    needs has a row here. ``dedupe_key`` is the outbox row's key and the channel, so a retry
    after a partial failure never repeats a channel that already went out."""

    __tablename__ = "notification_sends"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"))
    channel: Mapped[str] = mapped_column(String(24))  # email | <gateway name>
    dedupe_key: Mapped[str] = mapped_column(String(120), unique=True)
    language: Mapped[str] = mapped_column(String(8))  # id+en: both, Bahasa Indonesia first
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TrackingLink(Base):
    """An earlier tracking link of a delivery (its sha256): after an address change the link
    the applicant already has keeps opening the delivery (courier/services/optin.py)."""

    __tablename__ = "tracking_links"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Rating(Base):
    """The applicant's satisfaction with one delivery, on the IKM scale 1–4, once."""

    __tablename__ = "ratings"
    __table_args__ = (CheckConstraint("score BETWEEN 1 AND 4", name="score_range"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), unique=True)
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="", server_default=text("''"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """Append-only: every state change, by whom, from what, to what, why."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity", "entity_id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    office_id: Mapped[int | None] = mapped_column(ForeignKey("offices.id"))
    # staff:7 | token:3 | applicant | worker:<id> | courier:jnt
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(48))
    entity: Mapped[str] = mapped_column(String(24))
    entity_id: Mapped[int] = mapped_column(Id)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(64))


class StaffUser(Base):
    __tablename__ = "staff_users"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"), index=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(24))  # admin | intake | dispatcher | contract_manager
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # console sessions issued before this are refused (sign-out ends every copy of the cookie)
    sessions_after: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"), index=True)
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(24))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256: tokens are 256-bit
    prefix: Mapped[str] = mapped_column(String(12))  # shown in listings, never enough to use
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # NULL on tokens made before expiry existed: they count from created_at (services/staff.py)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RateCounter(Base):
    """Failure counters shared by every `serve` process (opt-in identity checks, confirmations)."""

    __tablename__ = "rate_counters"
    __table_args__ = (UniqueConstraint("scope", "key"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    scope: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(128))  # hashed: an application no or a client address
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(Integer, default=0)


class Manifest(Base):
    """The day's pickup batch of one courier at one office, signed by both sides at handover
    (DESIGN §2 step 5): office → courier custody for every passport on it."""

    __tablename__ = "manifests"
    __table_args__ = (UniqueConstraint("office_id", "number"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"), index=True)
    courier_code: Mapped[str] = mapped_column(String(16))
    number: Mapped[str] = mapped_column(String(40))  # BLT-20261130-JNT-1
    state: Mapped[str] = mapped_column(String(16), default="open")  # open | handed_over
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))
    handed_over_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    courier_agent_name: Mapped[str | None] = mapped_column(String(120))
    # the courier agent's signature: only its sha256 (the image is in the POD store)
    courier_agent_signature_sha256: Mapped[str | None] = mapped_column(String(64))
    office_signer_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))


class ManifestItem(Base):
    """One passport on a manifest; a shipment is on at most one manifest, and a seal number is
    used once per office (the numbered tamper-evident envelope)."""

    __tablename__ = "manifest_items"
    __table_args__ = (UniqueConstraint("office_id", "seal_number"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    manifest_id: Mapped[int] = mapped_column(ForeignKey("manifests.id"), index=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"))
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"), unique=True)
    seal_number: Mapped[str | None] = mapped_column(String(40))
    sealed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CourierLimit(Base):
    """One courier account's rate and daily quota, shared by every process of the deployment
    (courier/db/limits.py): the slot the next request may leave at, and today's count."""

    __tablename__ = "courier_limits"
    courier: Mapped[str] = mapped_column(String(16), primary_key=True)
    # epoch seconds (a float: the same arithmetic on SQLite and PostgreSQL)
    next_slot: Mapped[float] = mapped_column(Double)
    day: Mapped[date] = mapped_column(Date)  # the WIB day ``used`` counts
    used: Mapped[int] = mapped_column(Integer)
    daily_quota: Mapped[int | None] = mapped_column(Integer)  # as last configured; /metrics
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Contract(Base):
    """A courier contract (courier/domain/contracts.py): who may carry passports where, on what
    terms. Only ``draft`` terms change; afterwards only the status moves."""

    __tablename__ = "contracts"
    __table_args__ = (Index("ix_contracts_courier_status", "courier_code", "status"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    courier_code: Mapped[str] = mapped_column(String(16))
    parties: Mapped[list[Any]] = mapped_column(JSON)  # the signatories' names
    valid_from: Mapped[date] = mapped_column(Date)  # WIB days, both inclusive
    valid_to: Mapped[date] = mapped_column(Date)
    all_regencies: Mapped[bool] = mapped_column(Boolean)
    regency_codes: Mapped[list[Any]] = mapped_column(JSON)  # when not all_regencies
    # [{name, regencies: [codes] | "*", sla_days, tariff_per_kg}]
    zones: Mapped[list[Any]] = mapped_column(JSON)
    declared_value_cap: Mapped[int] = mapped_column(BigInteger)  # rupiah
    insurance_cover: Mapped[int] = mapped_column(BigInteger)  # rupiah per shipment, 0: none
    penalty_late: Mapped[int] = mapped_column(BigInteger)  # rupiah per late shipment
    penalty_lost: Mapped[int] = mapped_column(BigInteger)  # rupiah per lost shipment
    status: Mapped[str] = mapped_column(String(16))  # draft | active | suspended | ended
    status_reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ContractOffice(Base):
    """The offices a contract serves."""

    __tablename__ = "contract_offices"
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id"), primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"), primary_key=True, index=True)


class WorkingDay(Base):
    """The working-day calendar the scorecards count SLAs with (courier/services/calendar.py):
    ``ordinal`` is the number of working days up to and including ``day``, so the working days
    in ``(a, b]`` are ``ordinal(b) - ordinal(a)``, one join in SQL."""

    __tablename__ = "working_days"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    working: Mapped[bool] = mapped_column(Boolean)


class StoredArtefact(Base):
    """An artefact's bytes kept in the database (``storage.artefacts = "database"``:
    courier/services/artefacts.py), by their sha256: immutable, written once."""

    __tablename__ = "artefacts"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
