"""the dispatch console: name search key, search indexes, session cut-off

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 12:45:00

``applications.search_name`` holds the applicant's name as the console searches it
(courier.domain.text.search_key: accents dropped, case folded); existing rows are filled here in
batches (the key needs Unicode decomposition, which neither database does without an extension).
``staff_users.sessions_after``: console sessions issued before it are refused (sign-out).
The indexes serve the console's board and search (see courier/services/find.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from courier.domain.text import search_key

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_BATCH = 5000
_OPEN_SQL = (
    "status IN ('booking', 'booked', 'picked_up', 'in_transit', 'out_for_delivery', "
    "'delivery_failed', 'returning')"
)
_UNDER_WAY_SQL = (
    "state IN ('requested', 'queued', 'shipping', 'delivered', 'returned', 'needs_attention')"
)


def _fill_search_names() -> None:
    bind = op.get_bind()
    applications = sa.table(
        "applications",
        sa.column("id", sa.BigInteger),
        sa.column("applicant_name", sa.String),
        sa.column("search_name", sa.String),
    )
    last = 0
    while True:
        rows = bind.execute(
            sa.select(applications.c.id, applications.c.applicant_name)
            .where(applications.c.id > last)
            .order_by(applications.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        bind.execute(
            applications.update()
            .where(applications.c.id == sa.bindparam("row_id"))
            .values(search_name=sa.bindparam("key")),
            [{"row_id": row.id, "key": search_key(row.applicant_name)} for row in rows],
        )
        last = rows[-1].id


def upgrade() -> None:
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("search_name", sa.String(length=120), nullable=False, server_default="")
        )
    _fill_search_names()
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_applications_search_name",
            ["office_id", "search_name"],
            unique=False,
            postgresql_ops={"search_name": "varchar_pattern_ops"},
        )
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sessions_after", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_office_recent", ["office_id", "id"], unique=False)
        batch_op.create_index(
            "ix_deliveries_office_state", ["office_id", "state", "id"], unique=False
        )
        batch_op.create_index(
            "ix_deliveries_office_regency",
            ["office_id", "destination_regency_code", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_deliveries_open_collect_by",
            ["office_id", "collect_by", "id"],
            unique=False,
            postgresql_where=sa.text(_UNDER_WAY_SQL),
            sqlite_where=sa.text(_UNDER_WAY_SQL),
        )
        batch_op.create_index(
            "ix_deliveries_open_state",
            ["office_id", "state"],
            unique=False,
            postgresql_where=sa.text(_UNDER_WAY_SQL),
            sqlite_where=sa.text(_UNDER_WAY_SQL),
        )
        batch_op.create_index(
            "ix_deliveries_office_created", ["office_id", "created_at", "id"], unique=False
        )
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.create_index("ix_shipments_waybill_any", ["waybill"], unique=False)
        batch_op.create_index(
            "ix_shipments_open_courier",
            ["delivery_id", "courier_code", "status"],
            unique=False,
            postgresql_where=sa.text(_OPEN_SQL),
            sqlite_where=sa.text(_OPEN_SQL),
        )
    with op.batch_alter_table("exception_items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_exception_items_delivery", ["delivery_id", "resolved_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("exception_items", schema=None) as batch_op:
        batch_op.drop_index("ix_exception_items_delivery")
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.drop_index("ix_shipments_open_courier")
        batch_op.drop_index("ix_shipments_waybill_any")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        for name in (
            "ix_deliveries_office_created",
            "ix_deliveries_open_collect_by",
            "ix_deliveries_open_state",
            "ix_deliveries_office_regency",
            "ix_deliveries_office_state",
            "ix_deliveries_office_recent",
        ):
            batch_op.drop_index(name)
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.drop_column("sessions_after")
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.drop_index("ix_applications_search_name")
        batch_op.drop_column("search_name")
