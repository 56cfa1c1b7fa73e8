"""Database access for the Slack app: one SQLite connection per thread (Bolt runs listeners on a pool),
all on the same WAL database, so readers never block each other or the syncing writer."""

from __future__ import annotations

import threading
from pathlib import Path

import sqlite_utils

from metrics.store import open_db


class Store:
    def __init__(self, path: str | Path):
        self.path = str(path)
        self._local = threading.local()
        open_db(self.path).conn.close()  # create and migrate once, up front

    @property
    def db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = open_db(self.path, create=False)
        return db
