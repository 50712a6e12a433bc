"""The durable job store: jobs, their models, shards and events, in SQLite or PostgreSQL (:mod:`service.db`).

Everything the service knows about a job lives here, so a killed server restarts from the store, and
any number of API replicas sharing one PostgreSQL database see the same jobs: a job's state, its lease
(which runner works on it, and its fencing epoch), the shards it is cut into and which of them are
finished (with the Parquet part that holds each), and an event log for ``/events``. Every time stored
is the database's clock.

One class, :class:`JobStore`, in parts along its concerns:

- :mod:`service.store.jobs`: submission (idempotency keys, per-owner limits), lookup, states, cancellation;
- :mod:`service.store.claims`: leases, takeover of dead runners' jobs, crash streaks;
- :mod:`service.store.shards`: models and shards (commits);
- :mod:`service.store.events`: the event log;
- :mod:`service.store.base`: the database and fencing (:class:`LeaseLost`).

The records it returns are in :mod:`service.records`.
"""

from __future__ import annotations

from service.db import Database, open_database
from service.records import EventRecord, JobRecord, ModelRecord, ShardKey, ShardRecord
from service.settings import Settings
from service.store.base import TERMINAL_STATES, UNFINISHED_STATES, LeaseLost
from service.store.claims import ClaimsMixin, new_lease_owner
from service.store.events import EventsMixin
from service.store.jobs import JobsMixin, spec_digest
from service.store.shards import ShardsMixin

__all__ = [
    "TERMINAL_STATES",
    "UNFINISHED_STATES",
    "EventRecord",
    "JobRecord",
    "JobStore",
    "LeaseLost",
    "ModelRecord",
    "ShardKey",
    "ShardRecord",
    "new_lease_owner",
    "open_store",
    "spec_digest",
]


class JobStore(JobsMixin, ClaimsMixin, ShardsMixin, EventsMixin):
    """Jobs, leases, shards and events; every method is one short transaction and safe from any thread."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)


def open_store(settings: Settings) -> JobStore:
    """The job store the settings name: ``MORALSCOPE_STORE_URL``, else the SQLite file ``MORALSCOPE_STORE_PATH``."""
    return JobStore(open_database(settings.effective_store_url))
