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
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

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


class Application(Base):
    __tablename__ = "applications"
    __table_args__ = (UniqueConstraint("office_id", "application_no"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"), index=True)
    application_no: Mapped[str] = mapped_column(String(32))
    applicant_name: Mapped[str] = mapped_column(String(120))
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


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_claim", "state", "next_attempt_at"),)
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
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"))
    attempt_no: Mapped[int] = mapped_column(Integer)
    courier_code: Mapped[str] = mapped_column(String(16))
    contract_id: Mapped[int | None] = mapped_column(Id)
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
    __table_args__ = (Index("ix_exception_items_open", "office_id", "resolved_at"),)
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
    # both found through ix_inbox_unprocessed only: see migration 0012_perf
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


class StoredArtefact(Base):
    """An artefact's bytes kept in the database (``storage.artefacts = "database"``:
    courier/services/artefacts.py), by their sha256: immutable, written once."""

    __tablename__ = "artefacts"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
