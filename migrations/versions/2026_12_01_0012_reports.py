"""Reports: churn dates, revenue events, handover feedback, ledger indexes for KPIs

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-01 17:00:00

``customers.churned_at`` is kept by a row trigger on the status (set when a customer becomes
``churned``, unless the statement sets it; cleared when it becomes active again), so every
write path (API, imports, webhooks) dates churn without knowing about it. Existing churned
customers are dated by their last update, the best the data knows.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHURN_FUNCTION = """
CREATE FUNCTION customers_date_churn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'churned' THEN
        IF TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM 'churned' THEN
            NEW.churned_at := COALESCE(NEW.churned_at, statement_timestamp());
        END IF;
    ELSE
        NEW.churned_at := NULL;
    END IF;
    RETURN NEW;
END $$
"""
_CHURN_TRIGGER = (
    "CREATE TRIGGER customers_date_churn BEFORE INSERT OR UPDATE OF status, churned_at "
    "ON customers FOR EACH ROW EXECUTE FUNCTION customers_date_churn()"
)


def upgrade() -> None:
    op.add_column("customers", sa.Column("churned_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE customers SET churned_at = updated_at WHERE status = 'churned'")
    op.execute(_CHURN_FUNCTION)
    op.execute(_CHURN_TRIGGER)

    op.create_table(
        "revenue_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("customer_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("amount", sa.Numeric(18, 2), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.Text(), server_default="api", nullable=False),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_revenue_events_currency_code")),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_revenue_events_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revenue_events")),
    )
    op.create_index(
        "ix_revenue_events_customer_at", "revenue_events", ["customer_id", "occurred_at"]
    )
    op.create_index(
        "uq_revenue_events_source_external_id",
        "revenue_events",
        ["source", "external_id"],
        unique=True,
    )

    op.create_table(
        "handover_feedback",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("handover_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("score", sa.Numeric(4, 2), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("score BETWEEN 0 AND 10", name=op.f("ck_handover_feedback_score_range")),
        sa.ForeignKeyConstraint(
            ["handover_id"],
            ["handovers.id"],
            name=op.f("fk_handover_feedback_handover_id_handovers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handover_feedback")),
    )
    op.create_index("ix_handover_feedback_handover", "handover_feedback", ["handover_id", "id"])

    # KPIs of one manager read only that manager's ledger rows.
    op.create_index("ix_assignments_manager_started", "assignments", ["manager_id", "started_at"])
    op.create_index(
        "ix_handover_items_refused_manager",
        "handover_items",
        ["refused_manager_id", "refused_at"],
        postgresql_where=sa.text("refused_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_handover_items_refused_manager", table_name="handover_items")
    op.drop_index("ix_assignments_manager_started", table_name="assignments")
    op.drop_index("ix_handover_feedback_handover", table_name="handover_feedback")
    op.drop_table("handover_feedback")
    op.drop_index("uq_revenue_events_source_external_id", table_name="revenue_events")
    op.drop_index("ix_revenue_events_customer_at", table_name="revenue_events")
    op.drop_table("revenue_events")
    op.execute("DROP TRIGGER customers_date_churn ON customers")
    op.execute("DROP FUNCTION customers_date_churn()")
    op.drop_column("customers", "churned_at")
