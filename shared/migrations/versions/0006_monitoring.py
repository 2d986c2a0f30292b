"""monitoring: alert rules, alerts (fire once / resolve once), optimization triggers, recommendations

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _fk(table, column, target):
    return sa.ForeignKeyConstraint([column], [f'{target}.id'], name=op.f(f'fk_{table}_{column}_{target}'))


def _created():
    return sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    op.create_table('alert_rules',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('metric_name', sa.String(length=64), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('comparison', sa.String(length=32), nullable=False),
    sa.Column('window_minutes', sa.Float(), nullable=False),
    sa.Column('min_samples', sa.Integer(), nullable=False),
    sa.Column('family', sa.String(length=64), nullable=True),
    sa.Column('model', sa.String(length=200), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    _created(),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_rules')),
    sa.UniqueConstraint('name', name=op.f('uq_alert_rules_name'))
    )
    op.create_table('alerts',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('rule_id', Id, nullable=False),
    sa.Column('scope', sa.String(length=600), nullable=False),
    sa.Column('open_key', sa.String(length=700), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('fired_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('fire_posted', sa.Boolean(), nullable=False),
    sa.Column('resolve_posted', sa.Boolean(), nullable=False),
    _fk('alerts', 'rule_id', 'alert_rules'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts')),
    sa.UniqueConstraint('open_key', name=op.f('uq_alerts_open_key'))
    )
    op.create_index(op.f('ix_alerts_rule_id'), 'alerts', ['rule_id'], unique=False)
    op.create_table('optimization_triggers',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('family', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('evidence', sa.Text(), nullable=True),
    sa.Column('dedupe_key', sa.String(length=400), nullable=True),
    sa.Column('run_id', Id, nullable=True),
    sa.Column('job_id', sa.String(length=200), nullable=True),
    _created(),
    _fk('optimization_triggers', 'run_id', 'optimization_runs'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_optimization_triggers')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_optimization_triggers_dedupe_key'))
    )
    op.create_index(op.f('ix_optimization_triggers_created_at'), 'optimization_triggers', ['created_at'], unique=False)
    op.create_table('recommendations',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('candidate_id', Id, nullable=False),
    sa.Column('family', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('validation_id', Id, nullable=True),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('rollout_id', Id, nullable=True),
    _created(),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    _fk('recommendations', 'candidate_id', 'prompt_variants'),
    _fk('recommendations', 'validation_id', 'candidate_validations'),
    _fk('recommendations', 'rollout_id', 'rollouts'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recommendations')),
    sa.UniqueConstraint('candidate_id', name=op.f('uq_recommendations_candidate_id'))
    )


def downgrade() -> None:
    op.drop_table('recommendations')
    op.drop_index(op.f('ix_optimization_triggers_created_at'), table_name='optimization_triggers')
    op.drop_table('optimization_triggers')
    op.drop_index(op.f('ix_alerts_rule_id'), table_name='alerts')
    op.drop_table('alerts')
    op.drop_table('alert_rules')
