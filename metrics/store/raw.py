"""The raw layer: every payload's content as a tool returned it, keyed by (source, kind, external id).

Normalised tables are always re-derivable from here (``metrics.normalise.rebuild``), so a fix to the
normalisation never needs a refetch. ``save_raw`` writes nothing when a payload did not change, which
keeps a re-sync with no remote change free of writes and tells the caller there is nothing to re-derive.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import sqlite_utils

from metrics.store.tx import transaction


def canonical(payload: dict | list) -> str:
    """The stored text of a payload: key order and whitespace fixed, so equal content compares equal."""
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def save_raw(
    db: sqlite_utils.Database,
    source: str,
    kind: str,
    external_id: str,
    updated_at: str | None,
    payload: dict | list,
    *,
    fetched_at: str | None = None,
) -> bool:
    """Upsert one payload; False (and no write at all) when the stored payload is identical.

    ``payload`` is a dict for objects and a list for list endpoints (e.g. a PR's reviews).
    ``fetched_at`` defaults to now; the sample history passes a fixed value to stay deterministic.
    """
    text = canonical(payload)
    row = db.execute(
        "select payload from raw where source = ? and kind = ? and external_id = ?",
        [source, kind, str(external_id)],
    ).fetchone()
    if row is not None and row[0] == text:
        return False
    fetched = fetched_at or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with transaction(db):
        db.execute(
            "insert into raw (source, kind, external_id, updated_at, fetched_at, payload) "
            "values (?, ?, ?, ?, ?, ?) on conflict (source, kind, external_id) do update set "
            "updated_at = excluded.updated_at, fetched_at = excluded.fetched_at, payload = excluded.payload",
            [source, kind, str(external_id), updated_at, fetched, text],
        )
    return True


def iter_raw(db: sqlite_utils.Database, source: str, kind: str) -> Iterator[dict]:
    """Stored payloads of one source and kind, by external id: ``{external_id, updated_at,
    fetched_at, payload}`` with ``payload`` parsed. Lazy, so a large table is never held in memory."""
    cursor = db.execute(
        "select external_id, updated_at, fetched_at, payload from raw "
        "where source = ? and kind = ? order by external_id",
        [source, kind],
    )
    for external_id, updated_at, fetched_at, payload in cursor:
        yield {
            "external_id": external_id,
            "updated_at": updated_at,
            "fetched_at": fetched_at,
            "payload": json.loads(payload),
        }


def get_raw(db: sqlite_utils.Database, source: str, kind: str, external_id: str) -> dict | list | None:
    """One stored payload, parsed, or None."""
    row = db.execute(
        "select payload from raw where source = ? and kind = ? and external_id = ?",
        [source, kind, str(external_id)],
    ).fetchone()
    return json.loads(row[0]) if row else None


def stored_updated(db: sqlite_utils.Database, source: str, kind: str, external_id: str) -> str | None:
    """The stored payload's ``updated_at`` (None when absent): enough to skip an unchanged parent."""
    return stored_updates(db, source, kind, [external_id]).get(str(external_id))


def stored_updates(
    db: sqlite_utils.Database, source: str, kind: str, external_ids: list[str]
) -> dict[str, str]:
    """``stored_updated`` for a page of ids in one query: id -> stored ``updated_at`` (absent when not
    stored)."""
    ids = [str(i) for i in external_ids]
    if not ids:
        return {}
    return dict(
        db.execute(
            "select external_id, updated_at from raw where source = ? and kind = ? "
            f"and external_id in ({', '.join('?' * len(ids))})",
            [source, kind, *ids],
        ).fetchall()
    )


# -- writing normalised rows (shared by the normalisers; they run in the caller's transaction) -------
def upsert(db: sqlite_utils.Database, table: str, row: dict, pk: tuple[str, ...]) -> None:
    """Insert or update ``row`` by its key, touching only the columns it names (a PR's row is written
    by several payloads, each owning its columns). Call inside ``transaction``."""
    cols = list(row)
    updates = [c for c in cols if c not in pk]
    sql = f"insert into {table} ({', '.join(cols)}) values ({', '.join('?' * len(cols))})"
    if updates:
        sql += f" on conflict ({', '.join(pk)}) do update set " + ", ".join(
            f"{c} = excluded.{c}" for c in updates
        )
    else:
        sql += " on conflict do nothing"
    db.execute(sql, [row[c] for c in cols])


def replace_children(db: sqlite_utils.Database, table: str, where: dict, rows: list[dict]) -> None:
    """Delete a parent's child rows (``where`` names the parent) and insert ``rows`` instead.
    Call inside ``transaction``: the writes then land together or not at all."""
    db.execute(
        f"delete from {table} where " + " and ".join(f"{c} = ?" for c in where),
        list(where.values()),
    )
    if rows:
        cols = list(rows[0])
        db.conn.executemany(
            f"insert or ignore into {table} ({', '.join(cols)}) values ({', '.join('?' * len(cols))})",
            [[r[c] for c in cols] for r in rows],
        )
