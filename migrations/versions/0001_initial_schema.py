"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# BIGINT on PostgreSQL; INTEGER on SQLite, the only type SQLite autoincrements.
BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', BIGINT_ID, autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('lineage', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_keys_prefix'), ['prefix'], unique=False)

    op.create_table('lineages',
    sa.Column('id', BIGINT_ID, autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('base_model', sa.String(length=500), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lineages')),
    sa.UniqueConstraint('name', name=op.f('uq_lineages_name'))
    )
    op.create_table('model_versions',
    sa.Column('id', BIGINT_ID, autoincrement=True, nullable=False),
    sa.Column('lineage_id', BIGINT_ID, nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('parent_version_id', BIGINT_ID, nullable=True),
    sa.Column('job_id', sa.String(length=32), nullable=True),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('base_model', sa.String(length=500), nullable=False),
    sa.Column('base_model_checksum', sa.String(length=64), nullable=True),
    sa.Column('artifact_kind', sa.String(length=8), nullable=False),
    sa.Column('artifact_uri', sa.String(length=1000), nullable=False),
    sa.Column('artifact_sha256', sa.String(length=64), nullable=False),
    sa.Column('state', sa.Enum('candidate', 'promoted', 'rejected', name='version_state', native_enum=False, length=16), nullable=False),
    sa.Column('config', sa.JSON(), nullable=True),
    sa.Column('train_metrics', sa.JSON(), nullable=True),
    sa.Column('train_report', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lineage_id'], ['lineages.id'], name=op.f('fk_model_versions_lineage_id_lineages')),
    sa.ForeignKeyConstraint(['parent_version_id'], ['model_versions.id'], name=op.f('fk_model_versions_parent_version_id_model_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_versions')),
    sa.UniqueConstraint('lineage_id', 'number', name='uq_model_versions_lineage_id_number')
    )
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_versions_lineage_id'), ['lineage_id'], unique=False)

    op.create_table('update_batches',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('lineage_id', BIGINT_ID, nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('api_key_id', BIGINT_ID, nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], name=op.f('fk_update_batches_api_key_id_api_keys')),
    sa.ForeignKeyConstraint(['lineage_id'], ['lineages.id'], name=op.f('fk_update_batches_lineage_id_lineages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_update_batches')),
    sa.UniqueConstraint('idempotency_key', name='uq_update_batches_idempotency_key')
    )
    with op.batch_alter_table('update_batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_update_batches_lineage_id'), ['lineage_id'], unique=False)

    op.create_table('aliases',
    sa.Column('id', BIGINT_ID, autoincrement=True, nullable=False),
    sa.Column('lineage_id', BIGINT_ID, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('version_id', BIGINT_ID, nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lineage_id'], ['lineages.id'], name=op.f('fk_aliases_lineage_id_lineages')),
    sa.ForeignKeyConstraint(['version_id'], ['model_versions.id'], name=op.f('fk_aliases_version_id_model_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_aliases')),
    sa.UniqueConstraint('lineage_id', 'name', name='uq_aliases_lineage_id_name')
    )
    with op.batch_alter_table('aliases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_aliases_lineage_id'), ['lineage_id'], unique=False)

    op.create_table('documents',
    sa.Column('id', BIGINT_ID, autoincrement=True, nullable=False),
    sa.Column('batch_id', sa.String(length=32), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['update_batches.id'], name=op.f('fk_documents_batch_id_update_batches'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_documents')),
    sa.UniqueConstraint('batch_id', 'position', name='uq_documents_batch_id_position')
    )
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_documents_batch_id'), ['batch_id'], unique=False)

    op.create_table('evaluation_scores',
    sa.Column('id', BIGINT_ID, autoincrement=True, nullable=False),
    sa.Column('version_id', BIGINT_ID, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['model_versions.id'], name=op.f('fk_evaluation_scores_version_id_model_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evaluation_scores')),
    sa.UniqueConstraint('version_id', 'name', name='uq_evaluation_scores_version_id_name')
    )
    with op.batch_alter_table('evaluation_scores', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluation_scores_version_id'), ['version_id'], unique=False)

    op.create_table('jobs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('batch_id', sa.String(length=32), nullable=False),
    sa.Column('lineage_id', BIGINT_ID, nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('hyperparameters', sa.JSON(), nullable=False),
    sa.Column('probes', sa.JSON(), nullable=True),
    sa.Column('promotion', sa.JSON(), nullable=True),
    sa.Column('status', sa.Enum('queued', 'running', 'evaluating', 'succeeded', 'failed', 'cancelled', name='job_status', native_enum=False, length=16), nullable=False),
    sa.Column('progress', sa.JSON(), nullable=True),
    sa.Column('error', sa.JSON(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('parent_version_id', BIGINT_ID, nullable=True),
    sa.Column('result_version_id', BIGINT_ID, nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('enqueued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['update_batches.id'], name=op.f('fk_jobs_batch_id_update_batches')),
    sa.ForeignKeyConstraint(['lineage_id'], ['lineages.id'], name=op.f('fk_jobs_lineage_id_lineages')),
    sa.ForeignKeyConstraint(['parent_version_id'], ['model_versions.id'], name=op.f('fk_jobs_parent_version_id_model_versions')),
    sa.ForeignKeyConstraint(['result_version_id'], ['model_versions.id'], name=op.f('fk_jobs_result_version_id_model_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
    sa.UniqueConstraint('batch_id', name=op.f('uq_jobs_batch_id'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_lineage_id'), ['lineage_id'], unique=False)
        batch_op.create_index('ix_jobs_status_created_at', ['status', 'created_at'], unique=False)

    # model_versions.job_id and jobs.*_version_id point at each other: the second edge of the
    # cycle is added once both tables exist.
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.create_foreign_key('fk_model_versions_job_id_jobs', 'jobs', ['job_id'], ['id'])

    op.create_table('alias_history',
    sa.Column('id', BIGINT_ID, autoincrement=True, nullable=False),
    sa.Column('alias_id', BIGINT_ID, nullable=False),
    sa.Column('from_version_id', BIGINT_ID, nullable=True),
    sa.Column('to_version_id', BIGINT_ID, nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['alias_id'], ['aliases.id'], name=op.f('fk_alias_history_alias_id_aliases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['from_version_id'], ['model_versions.id'], name=op.f('fk_alias_history_from_version_id_model_versions')),
    sa.ForeignKeyConstraint(['to_version_id'], ['model_versions.id'], name=op.f('fk_alias_history_to_version_id_model_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alias_history'))
    )
    with op.batch_alter_table('alias_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alias_history_alias_id'), ['alias_id'], unique=False)

    op.create_table('job_events',
    sa.Column('id', BIGINT_ID, autoincrement=True, nullable=False),
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_events_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_events'))
    )
    with op.batch_alter_table('job_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_events_job_id'), ['job_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('job_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_events_job_id'))

    op.drop_table('job_events')
    with op.batch_alter_table('alias_history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alias_history_alias_id'))

    op.drop_table('alias_history')
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_constraint('fk_model_versions_job_id_jobs', type_='foreignkey')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_status_created_at')
        batch_op.drop_index(batch_op.f('ix_jobs_lineage_id'))

    op.drop_table('jobs')
    with op.batch_alter_table('evaluation_scores', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluation_scores_version_id'))

    op.drop_table('evaluation_scores')
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_documents_batch_id'))

    op.drop_table('documents')
    with op.batch_alter_table('aliases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_aliases_lineage_id'))

    op.drop_table('aliases')
    with op.batch_alter_table('update_batches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_update_batches_lineage_id'))

    op.drop_table('update_batches')
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_versions_lineage_id'))

    op.drop_table('model_versions')
    op.drop_table('lineages')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_keys_prefix'))

    op.drop_table('api_keys')
