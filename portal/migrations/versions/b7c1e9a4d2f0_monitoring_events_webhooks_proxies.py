"""monitoring events, webhooks, deliveries, proxy instances

Revision ID: b7c1e9a4d2f0
Revises: ad7053dc94ae
Create Date: 2026-11-28 21:20:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'b7c1e9a4d2f0'
down_revision = 'ad7053dc94ae'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('monitoring_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('opened_at', sa.DateTime(), nullable=False),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitoring_events'))
    )
    with op.batch_alter_table('monitoring_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_monitoring_events_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_monitoring_events_key'), ['key'], unique=False)
        batch_op.create_index(batch_op.f('ix_monitoring_events_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_monitoring_events_opened_at'), ['opened_at'], unique=False)

    op.create_table('monitoring_webhooks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('secret', sa.String(length=512), nullable=False),
    sa.Column('event_kinds', sa.JSON(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitoring_webhooks')),
    sa.UniqueConstraint('name', name=op.f('uq_monitoring_webhooks_name'))
    )
    op.create_table('monitoring_event_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('webhook_id', sa.Integer(), nullable=False),
    sa.Column('transition', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_outcome', sa.String(length=255), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['monitoring_events.id'], name=op.f('fk_monitoring_event_deliveries_event_id_monitoring_events'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['webhook_id'], ['monitoring_webhooks.id'], name=op.f('fk_monitoring_event_deliveries_webhook_id_monitoring_webhooks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitoring_event_deliveries'))
    )
    with op.batch_alter_table('monitoring_event_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_monitoring_event_deliveries_event_id'), ['event_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_monitoring_event_deliveries_webhook_id'), ['webhook_id'], unique=False)

    op.create_table('monitoring_proxy_instances',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('metrics_address', sa.String(length=255), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitoring_proxy_instances')),
    sa.UniqueConstraint('metrics_address', name=op.f('uq_monitoring_proxy_instances_metrics_address'))
    )
    with op.batch_alter_table('monitoring_proxy_instances', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_monitoring_proxy_instances_last_seen_at'), ['last_seen_at'], unique=False)


def downgrade():
    op.drop_table('monitoring_proxy_instances')
    op.drop_table('monitoring_event_deliveries')
    op.drop_table('monitoring_webhooks')
    op.drop_table('monitoring_events')
