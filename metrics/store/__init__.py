"""The store: raw payloads exactly as fetched, and normalised rows rebuilt from them.

``open_db`` is the one way in: it turns on WAL (one writer, many readers), applies pending schema
migrations and returns a ``sqlite_utils.Database``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from metrics.errors import VsmError
from metrics.store.schema import MIGRATIONS


def open_db(path: str | Path, *, create: bool = True) -> sqlite_utils.Database:
    """Open (or create) the database at ``path`` with the current schema."""
    p = Path(path)
    if not create and not p.exists():
        raise VsmError(f"no database at {p} (run `vsm demo` or `vsm sync` first)")
    if p.parent and not p.parent.exists():
        raise VsmError(f"cannot create the database {p}: folder {p.parent} does not exist")
    try:
        conn = sqlite3.connect(str(p), timeout=30, check_same_thread=False)
        # No sqlite-utils plugins: the store needs none, and looking for them scans every installed
        # package's metadata, 9 ms of every command.
        db = sqlite_utils.Database(conn, execute_plugins=False)
        db.execute("PRAGMA busy_timeout = 30000")
        db.enable_wal()
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        MIGRATIONS.apply(db)
    except sqlite3.DatabaseError as exc:
        raise VsmError(f"cannot open the database {p}: {exc}") from exc
    return db


def memory_db() -> sqlite_utils.Database:
    """A fresh in-memory database with the schema (tests, previews)."""
    db = sqlite_utils.Database(memory=True, execute_plugins=False)
    MIGRATIONS.apply(db)
    return db
