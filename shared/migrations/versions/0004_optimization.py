"""optimization: runs (lease with fencing token, budget, outcome) and their scored trials

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('optimization_runs',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('job_id', sa.String(length=200), nullable=True),
    sa.Column('family', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('optimizer', sa.String(length=64), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('stop_reason', sa.Text(), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('settings', sa.Text(), nullable=False),
    sa.Column('train_ids', sa.Text(), nullable=False),
    sa.Column('val_ids', sa.Text(), nullable=False),
    sa.Column('parent_id', Id, nullable=False),
    sa.Column('best_variant_id', Id, nullable=True),
    sa.Column('lease_owner', sa.String(length=200), nullable=True),
    sa.Column('lease_token', sa.Integer(), nullable=False),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lm_calls', sa.Integer(), nullable=False),
    sa.Column('cached_calls', sa.Integer(), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('result', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['parent_id'], ['prompt_variants.id'], name=op.f('fk_optimization_runs_parent_id_prompt_variants')),
    sa.ForeignKeyConstraint(['best_variant_id'], ['prompt_variants.id'], name=op.f('fk_optimization_runs_best_variant_id_prompt_variants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_optimization_runs')),
    sa.UniqueConstraint('job_id', name=op.f('uq_optimization_runs_job_id'))
    )
    op.create_index(op.f('ix_optimization_runs_family'), 'optimization_runs', ['family'], unique=False)
    op.create_table('optimization_trials',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('run_id', Id, nullable=False),
    sa.Column('trial', sa.Integer(), nullable=False),
    sa.Column('variant_id', Id, nullable=False),
    sa.Column('config', sa.Text(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('metrics', sa.Text(), nullable=False),
    sa.Column('lm_calls', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['optimization_runs.id'], name=op.f('fk_optimization_trials_run_id_optimization_runs')),
    sa.ForeignKeyConstraint(['variant_id'], ['prompt_variants.id'], name=op.f('fk_optimization_trials_variant_id_prompt_variants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_optimization_trials')),
    sa.UniqueConstraint('run_id', 'trial', name=op.f('uq_optimization_trials_run_id_trial'))
    )
    op.create_index(op.f('ix_optimization_trials_run_id'), 'optimization_trials', ['run_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_optimization_trials_run_id'), table_name='optimization_trials')
    op.drop_table('optimization_trials')
    op.drop_index(op.f('ix_optimization_runs_family'), table_name='optimization_runs')
    op.drop_table('optimization_runs')
