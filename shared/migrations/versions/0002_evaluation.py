"""evaluation: datasets, batches, scores, results, LM cache

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('eval_examples',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('dataset', sa.String(length=64), nullable=False),
    sa.Column('split', sa.String(length=64), nullable=False),
    sa.Column('family', sa.String(length=64), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('input', sa.Text(), nullable=False),
    sa.Column('reference', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_eval_examples')),
    sa.UniqueConstraint('dataset', 'family', 'external_id', name=op.f('uq_eval_examples_dataset_family_external_id'))
    )
    op.create_index(op.f('ix_eval_examples_family'), 'eval_examples', ['family'], unique=False)

    op.create_table('evaluation_batches',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('n_items', sa.Integer(), nullable=False),
    sa.Column('n_chunks', sa.Integer(), nullable=False),
    sa.Column('spec', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evaluation_batches'))
    )
    op.create_table('lm_cache',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('response', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_lm_cache'))
    )
    op.create_table('evaluation_results',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('batch_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('variant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('family', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('metric', sa.String(length=64), nullable=False),
    sa.Column('mean', sa.Float(), nullable=False),
    sa.Column('std', sa.Float(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('n_failed', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['evaluation_batches.id'], name=op.f('fk_evaluation_results_batch_id_evaluation_batches')),
    sa.ForeignKeyConstraint(['variant_id'], ['prompt_variants.id'], name=op.f('fk_evaluation_results_variant_id_prompt_variants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evaluation_results')),
    sa.UniqueConstraint('batch_id', 'variant_id', 'metric', name=op.f('uq_evaluation_results_batch_id_variant_id_metric'))
    )
    op.create_index(op.f('ix_evaluation_results_batch_id'), 'evaluation_results', ['batch_id'], unique=False)
    op.create_index(op.f('ix_evaluation_results_created_at'), 'evaluation_results', ['created_at'], unique=False)

    op.create_table('evaluation_scores',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('batch_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('variant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('example_source', sa.String(length=16), nullable=False),
    sa.Column('example_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('metrics', sa.Text(), nullable=True),
    sa.Column('output', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('latency_ms', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['evaluation_batches.id'], name=op.f('fk_evaluation_scores_batch_id_evaluation_batches')),
    sa.ForeignKeyConstraint(['variant_id'], ['prompt_variants.id'], name=op.f('fk_evaluation_scores_variant_id_prompt_variants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evaluation_scores')),
    sa.UniqueConstraint('batch_id', 'variant_id', 'example_source', 'example_id', name=op.f('uq_evaluation_scores_batch_id_variant_id_example_source_example_id'))
    )
    op.create_index(op.f('ix_evaluation_scores_batch_id'), 'evaluation_scores', ['batch_id'], unique=False)



def downgrade() -> None:
    op.drop_index(op.f('ix_evaluation_scores_batch_id'), table_name='evaluation_scores')

    op.drop_table('evaluation_scores')
    op.drop_index(op.f('ix_evaluation_results_created_at'), table_name='evaluation_results')
    op.drop_index(op.f('ix_evaluation_results_batch_id'), table_name='evaluation_results')

    op.drop_table('evaluation_results')
    op.drop_table('lm_cache')
    op.drop_table('evaluation_batches')
    op.drop_index(op.f('ix_eval_examples_family'), table_name='eval_examples')

    op.drop_table('eval_examples')
