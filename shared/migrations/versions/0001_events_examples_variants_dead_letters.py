"""events, examples, variants, dead letters

Revision ID: 0001
Revises: 
Create Date: 2026-11-25
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dead_letters',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('stream_id', sa.String(length=64), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('delivery_count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dead_letters')),
    sa.UniqueConstraint('stream_id', name=op.f('uq_dead_letters_stream_id'))
    )
    op.create_index(op.f('ix_dead_letters_created_at'), 'dead_letters', ['created_at'], unique=False)

    op.create_table('feedback_events',
    sa.Column('variant', sa.String(length=200), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('feedback_type', sa.String(length=64), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.Uuid(as_uuid=False), nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback_events')),
    sa.UniqueConstraint('event_id', name=op.f('uq_feedback_events_event_id'))
    )
    op.create_index(op.f('ix_feedback_events_ts'), 'feedback_events', ['ts'], unique=False)

    op.create_table('metric_events',
    sa.Column('family', sa.String(length=64), nullable=True),
    sa.Column('variant', sa.String(length=200), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('latency_ms', sa.Float(), nullable=False),
    sa.Column('success', sa.Boolean(), nullable=False),
    sa.Column('quality', sa.Float(), nullable=True),
    sa.Column('tokens_in', sa.Integer(), nullable=True),
    sa.Column('tokens_out', sa.Integer(), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.Uuid(as_uuid=False), nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_metric_events')),
    sa.UniqueConstraint('event_id', name=op.f('uq_metric_events_event_id'))
    )
    op.create_index(op.f('ix_metric_events_ts'), 'metric_events', ['ts'], unique=False)

    op.create_table('production_examples',
    sa.Column('family', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('variant', sa.String(length=200), nullable=False),
    sa.Column('input', sa.Text(), nullable=False),
    sa.Column('output', sa.Text(), nullable=False),
    sa.Column('reference', sa.Text(), nullable=True),
    sa.Column('latency_ms', sa.Float(), nullable=True),
    sa.Column('tokens_in', sa.Integer(), nullable=True),
    sa.Column('tokens_out', sa.Integer(), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.Uuid(as_uuid=False), nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_production_examples')),
    sa.UniqueConstraint('event_id', name=op.f('uq_production_examples_event_id'))
    )
    op.create_index(op.f('ix_production_examples_family_model_ts'), 'production_examples', ['family', 'model', 'ts'], unique=False)
    op.create_index(op.f('ix_production_examples_ts'), 'production_examples', ['ts'], unique=False)

    op.create_table('prompt_variants',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('family', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('template', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('parent_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['prompt_variants.id'], name=op.f('fk_prompt_variants_parent_id_prompt_variants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prompt_variants')),
    sa.UniqueConstraint('family', 'model', 'name', name=op.f('uq_prompt_variants_family_model_name'))
    )


def downgrade() -> None:
    op.drop_table('prompt_variants')
    op.drop_index(op.f('ix_production_examples_ts'), table_name='production_examples')
    op.drop_index(op.f('ix_production_examples_family_model_ts'), table_name='production_examples')

    op.drop_table('production_examples')
    op.drop_index(op.f('ix_metric_events_ts'), table_name='metric_events')

    op.drop_table('metric_events')
    op.drop_index(op.f('ix_feedback_events_ts'), table_name='feedback_events')

    op.drop_table('feedback_events')
    op.drop_index(op.f('ix_dead_letters_created_at'), table_name='dead_letters')

    op.drop_table('dead_letters')
