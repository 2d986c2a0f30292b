"""evaluation hardening: reasoning beside answers, chunk runs (deaths counted per chunk)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('evaluation_scores') as batch:
        batch.add_column(sa.Column('reasoning', sa.Text(), nullable=True))
    with op.batch_alter_table('lm_cache') as batch:
        batch.add_column(sa.Column('reasoning', sa.Text(), nullable=True))
    op.create_table('evaluation_chunk_runs',
    sa.Column('batch_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('chunk_key', sa.String(length=64), nullable=False),
    sa.Column('unfinished', sa.Integer(), nullable=False),
    sa.Column('running_example', sa.String(length=200), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['evaluation_batches.id'], name=op.f('fk_evaluation_chunk_runs_batch_id_evaluation_batches')),
    sa.PrimaryKeyConstraint('batch_id', 'chunk_key', name=op.f('pk_evaluation_chunk_runs'))
    )


def downgrade() -> None:
    op.drop_table('evaluation_chunk_runs')
    with op.batch_alter_table('lm_cache') as batch:
        batch.drop_column('reasoning')
    with op.batch_alter_table('evaluation_scores') as batch:
        batch.drop_column('reasoning')
