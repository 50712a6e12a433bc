"""The event log of each job (what ``/events`` streams besides state and progress)."""

from __future__ import annotations

from service.db import Tx
from service.records import EventRecord
from service.store.base import StoreBase


def insert_event(tx: Tx, job_id: str, type_: str, message: str, now: float) -> None:
    tx.execute(
        "INSERT INTO events (job_id, created_at, type, message) VALUES (?, ?, ?, ?)", (job_id, now, type_, message)
    )


class EventsMixin(StoreBase):
    def add_event(self, job_id: str, type_: str, message: str) -> None:
        with self.db.transaction() as tx:
            now = tx.now()
            self._guard(tx, job_id, now)
            insert_event(tx, job_id, type_, message, now)

    def events(self, job_id: str, *, after_id: int = 0) -> list[EventRecord]:
        """The job's events after ``after_id``, oldest first."""
        with self.db.read() as tx:
            rows = tx.all("SELECT * FROM events WHERE job_id = ? AND id > ? ORDER BY id", (job_id, after_id))
        return [EventRecord(r["id"], r["job_id"], r["created_at"], r["type"], r["message"]) for r in rows]
