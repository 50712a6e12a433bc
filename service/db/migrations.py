"""The job store's schema as one ordered list of migrations, shared by SQLite and PostgreSQL.

Entry ``i`` moves the schema from version ``i`` to ``i + 1``; the database records how many have been
applied (table ``schema_version``) and opening it applies the missing ones, each in one transaction
(see :meth:`service.db.base.Database.migrate`). **Append only**: never edit an entry that has shipped.

A migration is SQL that both databases accept, with the few differences between them written as
``{tokens}`` that each dialect replaces (:data:`service.db.dialects.SQLITE` / ``POSTGRESQL``):

``{real}``
    a float column: ``REAL`` in SQLite, ``DOUBLE PRECISION`` in PostgreSQL (whose ``REAL`` is 4 bytes,
    too coarse for timestamps);
``{serial_key}``
    an auto-incremented integer primary key.

Everything else is plain SQL both accept: ``TEXT``, ``INTEGER`` (0/1 for booleans), ``BIGINT``,
``ALTER TABLE ... ADD COLUMN ... DEFAULT``, partial indexes, ``INSERT ... ON CONFLICT DO NOTHING``. A
migration that cannot be written once may instead be a mapping ``{"sqlite": ..., "postgresql": ...}``.
Statements are separated by ``;`` and may not contain a literal ``;``, ``?`` or ``%``.

Migrations only add (tables, columns with defaults, indexes), so a replica still running the previous
release keeps working on a migrated database during a rolling upgrade.
"""

from __future__ import annotations

Migration = str | dict[str, str]

MIGRATIONS: list[Migration] = [
    # 1: jobs, the models of each job, shards (the unit of progress and restart), events.
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        idempotency_key TEXT,
        spec TEXT NOT NULL,
        spec_sha256 TEXT NOT NULL,
        name TEXT,
        state TEXT NOT NULL,
        created_at {real} NOT NULL,
        updated_at {real} NOT NULL,
        started_at {real},
        finished_at {real},
        run_started_at {real},
        error TEXT,
        location TEXT NOT NULL,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_expires {real},
        provenance TEXT
    );
    CREATE UNIQUE INDEX jobs_idempotency ON jobs (owner, idempotency_key) WHERE idempotency_key IS NOT NULL;
    CREATE INDEX jobs_by_state ON jobs (state, created_at);
    CREATE INDEX jobs_by_owner ON jobs (owner, created_at);

    CREATE TABLE job_models (
        job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        model TEXT NOT NULL,
        phase TEXT NOT NULL DEFAULT 'pending',
        resolved_path TEXT,
        revision TEXT,
        fingerprint TEXT,
        PRIMARY KEY (job_id, position)
    );

    CREATE TABLE shards (
        job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        model INTEGER NOT NULL,
        benchmark TEXT NOT NULL,
        condition TEXT NOT NULL,
        phase TEXT NOT NULL,
        shard INTEGER NOT NULL,
        requests INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        path TEXT,
        tokens INTEGER NOT NULL DEFAULT 0,
        finished_at {real},
        PRIMARY KEY (job_id, model, benchmark, condition, phase, shard)
    );

    CREATE TABLE events (
        id {serial_key},
        job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        created_at {real} NOT NULL,
        type TEXT NOT NULL,
        message TEXT
    );
    CREATE INDEX events_by_job ON events (job_id, id);
    """,
    # 2: how often a job was resumed after its runner died.
    """
    ALTER TABLE jobs ADD COLUMN crash_resumes INTEGER NOT NULL DEFAULT 0;
    """,
    # 3: fencing and crash loops. lease_epoch counts the claims of a job (a write carrying an older epoch
    # is refused); crash_streak counts runner deaths since the job last committed a shard; lease renewals
    # find a runner's jobs by index.
    """
    ALTER TABLE jobs ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN crash_streak INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX jobs_by_lease_owner ON jobs (lease_owner) WHERE lease_owner IS NOT NULL;
    """,
    # 4: tokens computed (after prefix-cache hits) and error rows per shard; a running model's live progress
    # (JSON); a finished job's failed cells (JSON).
    """
    ALTER TABLE shards ADD COLUMN computed_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE shards ADD COLUMN errors INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE job_models ADD COLUMN progress TEXT;
    ALTER TABLE jobs ADD COLUMN failed_cells TEXT;
    """,
]
"""Ordered schema migrations (see the module docstring). Append only."""


def statements(migration: Migration, dialect: str, tokens: dict[str, str]) -> list[str]:
    """The SQL statements of ``migration`` for ``dialect`` (``sqlite`` or ``postgresql``)."""
    script = migration[dialect] if isinstance(migration, dict) else migration
    return [part.strip().format(**tokens) for part in script.split(";") if part.strip()]
