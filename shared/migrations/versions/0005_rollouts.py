"""rollouts: prompt backups, candidate validations, rollouts (compare-and-set version) and transitions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _fk(table, column, target):
    return sa.ForeignKeyConstraint([column], [f'{target}.id'], name=op.f(f'fk_{table}_{column}_{target}'))


def upgrade() -> None:
    op.create_table('prompt_backups',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('variant_id', Id, nullable=False),
    sa.Column('family', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('template', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    _fk('prompt_backups', 'variant_id', 'prompt_variants'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prompt_backups'))
    )
    op.create_table('candidate_validations',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('candidate_id', Id, nullable=False),
    sa.Column('incumbent_id', Id, nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('stages', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    _fk('candidate_validations', 'candidate_id', 'prompt_variants'),
    _fk('candidate_validations', 'incumbent_id', 'prompt_variants'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_candidate_validations'))
    )
    op.create_index(op.f('ix_candidate_validations_candidate_id'), 'candidate_validations', ['candidate_id'],
                    unique=False)
    op.create_table('rollouts',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('family', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('open_key', sa.String(length=300), nullable=True),
    sa.Column('candidate_id', Id, nullable=False),
    sa.Column('incumbent_id', Id, nullable=False),
    sa.Column('backup_id', Id, nullable=False),
    sa.Column('validation_id', Id, nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('percentage', sa.Float(), nullable=False),
    sa.Column('hold_s', sa.Float(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('step_started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_check', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    _fk('rollouts', 'candidate_id', 'prompt_variants'),
    _fk('rollouts', 'incumbent_id', 'prompt_variants'),
    _fk('rollouts', 'backup_id', 'prompt_backups'),
    _fk('rollouts', 'validation_id', 'candidate_validations'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rollouts')),
    sa.UniqueConstraint('open_key', name=op.f('uq_rollouts_open_key'))
    )
    op.create_table('rollout_transitions',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('rollout_id', Id, nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('from_status', sa.String(length=32), nullable=True),
    sa.Column('to_status', sa.String(length=32), nullable=False),
    sa.Column('from_percentage', sa.Float(), nullable=True),
    sa.Column('to_percentage', sa.Float(), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('evidence', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    _fk('rollout_transitions', 'rollout_id', 'rollouts'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rollout_transitions')),
    sa.UniqueConstraint('rollout_id', 'version', name=op.f('uq_rollout_transitions_rollout_id_version'))
    )
    op.create_index(op.f('ix_rollout_transitions_rollout_id'), 'rollout_transitions', ['rollout_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_rollout_transitions_rollout_id'), table_name='rollout_transitions')
    op.drop_table('rollout_transitions')
    op.drop_table('rollouts')
    op.drop_index(op.f('ix_candidate_validations_candidate_id'), table_name='candidate_validations')
    op.drop_table('candidate_validations')
    op.drop_table('prompt_backups')
