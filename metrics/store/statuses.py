"""Status codes: each (source, status id, status name) the tools report gets a small integer.

Transitions store codes, not strings: reading a team's year of history then creates no string
objects, which was most of the cost of every flow metric. Names stay one lookup away (the
``statuses`` table, or the ``status_changes`` view that joins them back for people and tests).
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

import sqlite_utils

_CODES: WeakKeyDictionary[sqlite_utils.Database, dict[tuple[str, str, str], int]] = WeakKeyDictionary()


def status_code(
    db: sqlite_utils.Database, source: str, status_id: str | None, name: str | None
) -> int | None:
    """The code of a status, created on first sight; None when the tool gave neither id nor name."""
    if status_id is None and name is None:
        return None
    key = (source, "" if status_id is None else str(status_id), name or "")
    cache = _CODES.setdefault(db, {})
    code = cache.get(key)
    if code is None:
        row = db.execute(
            "select code from statuses where source = ? and status_id = ? and name = ?", list(key)
        ).fetchone()
        if row is None:
            nxt = db.execute(
                "select coalesce(max(code), 0) + 1 from statuses where source = ?", [source]
            ).fetchone()
            db.execute(
                "insert into statuses (source, code, status_id, name) values (?, ?, ?, ?)",
                [source, nxt[0], *key[1:]],
            )
            code = nxt[0]
        else:
            code = row[0]
        cache[key] = code
    return code


def forget_codes(db: sqlite_utils.Database) -> None:
    """Drop the cache (after a rollback, which may have undone codes it holds)."""
    _CODES.pop(db, None)


def status_table(
    db: sqlite_utils.Database, sources: list[str]
) -> dict[str, dict[int, tuple[str | None, str | None]]]:
    """``{source: {code: (status id, name)}}`` for the given sources."""
    out: dict[str, dict[int, tuple[str | None, str | None]]] = {s: {} for s in sources}
    if not sources:
        return out
    marks = ",".join("?" * len(sources))
    for source, code, status_id, name in db.execute(
        f"select source, code, status_id, name from statuses where source in ({marks})", sources
    ):
        out[source][code] = (status_id or None, name or None)
    return out
