"""api token expiry

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 01:05:00.000000

Tokens made before this revision keep ``expires_at`` NULL: they count from their creation with
the configured default lifetime (``security.token_lifetime_days``), so none lives for ever.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
