"""courier contracts, the offices' courier preference, the working-day calendar

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 12:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "contracts",
        sa.Column("id", _ID, nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("courier_code", sa.String(length=16), nullable=False),
        sa.Column("parties", sa.JSON(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=False),
        sa.Column("all_regencies", sa.Boolean(), nullable=False),
        sa.Column("regency_codes", sa.JSON(), nullable=False),
        sa.Column("zones", sa.JSON(), nullable=False),
        sa.Column("declared_value_cap", sa.BigInteger(), nullable=False),
        sa.Column("insurance_cover", sa.BigInteger(), nullable=False),
        sa.Column("penalty_late", sa.BigInteger(), nullable=False),
        sa.Column("penalty_lost", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contracts")),
        sa.UniqueConstraint("number", name=op.f("uq_contracts_number")),
    )
    op.create_index("ix_contracts_courier_status", "contracts", ["courier_code", "status"])
    op.create_table(
        "contract_offices",
        sa.Column("contract_id", _ID, nullable=False),
        sa.Column("office_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contracts.id"],
            name=op.f("fk_contract_offices_contract_id_contracts"),
        ),
        sa.ForeignKeyConstraint(
            ["office_id"], ["offices.id"], name=op.f("fk_contract_offices_office_id_offices")
        ),
        sa.PrimaryKeyConstraint("contract_id", "office_id", name=op.f("pk_contract_offices")),
    )
    op.create_index("ix_contract_offices_office_id", "contract_offices", ["office_id"])
    op.create_table(
        "working_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("working", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_working_days")),
    )
    with op.batch_alter_table("offices") as batch:
        batch.add_column(
            sa.Column("courier_preference", sa.JSON(), nullable=False, server_default="[]")
        )
    with op.batch_alter_table("shipments") as batch:
        batch.add_column(sa.Column("sla_days", sa.Integer(), nullable=True))
    op.create_index("ix_shipments_contract_id", "shipments", ["contract_id"])
    op.create_index("ix_shipments_booked_at", "shipments", ["booked_at"])


def downgrade() -> None:
    op.drop_index("ix_shipments_booked_at", table_name="shipments")
    op.drop_index("ix_shipments_contract_id", table_name="shipments")
    with op.batch_alter_table("shipments") as batch:
        batch.drop_column("sla_days")
    with op.batch_alter_table("offices") as batch:
        batch.drop_column("courier_preference")
    op.drop_table("working_days")
    op.drop_index("ix_contract_offices_office_id", table_name="contract_offices")
    op.drop_table("contract_offices")
    op.drop_index("ix_contracts_courier_status", table_name="contracts")
    op.drop_table("contracts")
