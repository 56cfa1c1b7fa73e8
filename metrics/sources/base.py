"""What a connector is, and the context the sync engine hands it.

A connector lists its streams (``issues``, ``pulls``, ``deployments``...) and syncs one at a time from
the stream's saved state. It stores every payload through ``SyncContext.ingest`` and saves its state
with ``checkpoint`` after each page: an interrupted sync resumes from the last checkpoint, and the
pages in between are simply fetched again (upserts by key make that harmless).

The rule a state keeps: it only passes what was stored and derived. What depends on a part that
failed is left for the next sync to redo: a stored item the next sync will see unchanged carries its
pending work in the state, saved in the transaction that stores it (GitHub's ``link_from``), and a
row joining two streams is derived from both sides (``metrics.normalise.deploys``), so
neither stream's order of arrival nor its failure can leave the join short (docs/sources.md, "A
failed sync").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlite_utils

from metrics.normalise import ingest
from metrics.sources.http import Http
from metrics.store.tx import transaction
from metrics.timeutil import iso, now_iso

Progress = Callable[[str, str, int], None]  # (source, stream, payloads stored so far)


@dataclass
class SyncContext:
    db: sqlite_utils.Database
    source: dict  # the [[source]] table: name, kind, url, history_days, ...
    http: Http
    now: float
    progress: Progress = field(default=lambda source, stream, n: None)
    changed: int = 0  # payloads that were new or different
    seen: int = 0

    @property
    def name(self) -> str:
        return self.source["name"]

    @property
    def history_start(self) -> float:
        """How far back a first sync reads."""
        return self.now - int(self.source.get("history_days", 365)) * 86400

    def ingest(self, stream: str, kind: str, external_id: str, updated_at: str | None, payload) -> bool:
        """Store one payload raw and normalise it if it changed; True iff it changed."""
        changed = ingest(
            self.db,
            self.name,
            kind,
            str(external_id),
            updated_at,
            payload,
            self.source,
            fetched_at=iso(self.now),
        )
        self.seen += 1
        self.changed += changed
        self.progress(self.name, stream, self.seen)
        return changed

    def checkpoint(self, stream: str, state: dict) -> None:
        """Save the stream's state (its cursor); written at once, so a crash resumes from here."""
        with transaction(self.db):
            self.db.execute(
                "insert into sync_status (source, stream, cursor, updated) values (?, ?, ?, ?) "
                "on conflict(source, stream) do update set cursor = excluded.cursor, updated = excluded.updated",
                [self.name, stream, json.dumps(state, sort_keys=True), now_iso()],
            )


class Connector:
    """One tool. Subclasses set ``kind`` and implement ``streams`` and ``sync``."""

    kind: str = ""

    def __init__(self, ctx: SyncContext):
        self.ctx = ctx

    @staticmethod
    def make_http(source: dict, token: str) -> Http:
        """The source's HTTP client with its auth and pinned API headers."""
        raise NotImplementedError

    def streams(self) -> list[str]:
        raise NotImplementedError

    def sync(self, stream: str, state: dict) -> dict:
        """Bring ``stream`` up to date from ``state`` (``{}`` on a first sync); return the new state."""
        raise NotImplementedError
