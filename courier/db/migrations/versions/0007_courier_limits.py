"""courier limits shared by every process

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 01:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "courier_limits",
        sa.Column("courier", sa.String(length=16), nullable=False),
        sa.Column("next_slot", sa.Double(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("daily_quota", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("courier", name=op.f("pk_courier_limits")),
    )


def downgrade() -> None:
    op.drop_table("courier_limits")
