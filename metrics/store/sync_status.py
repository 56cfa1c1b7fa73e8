"""Reads of ``sync_status``, the sync engine's ledger of each source's streams.

The engine (metrics/sources/sync.py) writes the table; what reads it lives here, in the store, so a
digest can say how fresh its data is without importing the engine, its connectors or their HTTP
client.
"""

from __future__ import annotations

import sqlite_utils


def freshness(db: sqlite_utils.Database) -> list[dict]:
    """Per source: the oldest last success over its streams (the data is as fresh as its stalest
    stream), and the latest error if any stream failed since."""
    rows = db.execute(
        "select source, min(coalesce(last_success, '')), max(last_error) from sync_status group by source"
    ).fetchall()
    return [{"source": s, "as_of": a or None, "error": e} for s, a, e in rows]
