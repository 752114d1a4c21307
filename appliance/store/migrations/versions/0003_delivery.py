"""delivery: relays, ip pools, send counters, inbound reports

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_reports",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("remote_ip", sa.String(length=64), nullable=True),
        sa.Column("envelope_from", sa.String(length=320), nullable=True),
        sa.Column("envelope_to", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=True),
        sa.Column("message_id", sa.String(length=32), nullable=True),
        sa.Column("matched_by", sa.String(length=16), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("diagnostic_code", sa.Text(), nullable=True),
        sa.Column("reporting_mta", sa.String(length=255), nullable=True),
        sa.Column("report", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_reports")),
    )
    with op.batch_alter_table("inbound_reports", schema=None) as batch_op:
        batch_op.create_index("ix_inbound_reports_message", ["message_id"], unique=False)
        batch_op.create_index("ix_inbound_reports_received", ["received_at"], unique=False)

    op.create_table(
        "relays",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=253), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("tls_mode", sa.String(length=16), nullable=False),
        sa.Column("verify_tls", sa.Boolean(), server_default=sa.text("(true)"), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=True),
        sa.Column("password", sa.Text(), nullable=True),
        sa.Column("auth_mechanism", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_relays")),
        sa.UniqueConstraint("name", name=op.f("uq_relays_name")),
    )
    op.create_table(
        "send_counters",
        sa.Column("scope", sa.String(length=300), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("count", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("scope", "day", name=op.f("pk_send_counters")),
    )
    op.create_table(
        "ip_pools",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("addresses", sa.Text(), nullable=False),
        sa.Column("relay_id", sa.String(length=32), nullable=True),
        sa.Column("warmup_started_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["relay_id"],
            ["relays.id"],
            name=op.f("fk_ip_pools_relay_id_relays"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ip_pools")),
        sa.UniqueConstraint("name", name=op.f("uq_ip_pools_name")),
    )
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.add_column(sa.Column("warmup_started_at", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("forward_to", sa.String(length=320), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.drop_column("forward_to")
        batch_op.drop_column("warmup_started_at")

    op.drop_table("ip_pools")
    op.drop_table("send_counters")
    op.drop_table("relays")
    with op.batch_alter_table("inbound_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_reports_received")
        batch_op.drop_index("ix_inbound_reports_message")

    op.drop_table("inbound_reports")
