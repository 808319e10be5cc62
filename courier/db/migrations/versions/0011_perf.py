"""inbox: a partial index on the rows not yet applied; artefacts kept in the database

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 12:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UNPROCESSED = "processed_at IS NULL"


def upgrade() -> None:
    # the inbox claim walks only rows still to apply, in id order: its cost no longer grows
    # with the history of applied pushes. The full indexes on processed_at and next_attempt_at
    # go: every applied row stays in them with a NULL next_attempt_at, and a planner with stale
    # statistics combined that index with this one, reading the whole history on each claim
    with op.batch_alter_table("inbox") as batch_op:
        batch_op.drop_index("ix_inbox_next_attempt_at")
        batch_op.drop_index("ix_inbox_processed_at")
    op.create_index(
        "ix_inbox_unprocessed",
        "inbox",
        ["id"],
        postgresql_where=sa.text(UNPROCESSED),
        sqlite_where=sa.text(UNPROCESSED),
    )
    op.create_table(
        "artefacts",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_artefacts")),
    )


def downgrade() -> None:
    op.drop_table("artefacts")
    op.drop_index("ix_inbox_unprocessed", table_name="inbox")
    with op.batch_alter_table("inbox") as batch_op:
        batch_op.create_index("ix_inbox_processed_at", ["processed_at"], unique=False)
        batch_op.create_index("ix_inbox_next_attempt_at", ["next_attempt_at"], unique=False)
