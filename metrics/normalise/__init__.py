"""Raw payloads -> the tool-neutral tables, per source tool.

``normalise`` turns one payload into rows (upserts by natural key; a parent's child rows replaced
wholesale), so normalising the same payload twice leaves the same rows. ``rebuild`` drops a source's
normalised rows and re-derives them all from ``raw`` in one transaction: a fix to a normaliser or a
mapping never needs a refetch. ``ingest`` is the connectors' one call: store raw, and normalise only
when the payload changed.

Source options are the ``[[source]]`` entries: ``{"kind": "jira" | "github" | "pagerduty", "url": ...,
"production_environments": [...]}`` plus, for Jira, optional ``sprint_field``, ``flag_field`` and ``points_field`` (custom field ids).
"""

from __future__ import annotations

from types import ModuleType

import sqlite_utils

from metrics.errors import VsmError
from metrics.kinds import SOURCE_KINDS, normaliser
from metrics.store.raw import iter_raw, save_raw
from metrics.store.tx import transaction

# Every normalised table carries ``source``; a rebuild clears a source's rows in all of them.
NORMALISED_TABLES = (
    "work_items",
    "transitions",
    "flags",
    "sprints",
    "sprint_events",
    "pull_requests",
    "reviews",
    "deployments",
    "deployment_changes",
    "deployment_commits",
    "incidents",
)


def _tool(source_name: str, options: dict) -> ModuleType:
    kind = (options or {}).get("kind")
    module = normaliser(kind) if isinstance(kind, str) else None
    if module is None:
        raise VsmError(
            f"source {source_name}: no normaliser for kind {kind!r} (one of: {', '.join(SOURCE_KINDS)})"
        )
    return module


def normalise(
    db: sqlite_utils.Database,
    source_name: str,
    kind: str,
    payload: dict | list,
    options: dict,
    external_id: str | None = None,
) -> bool:
    """Normalise one raw payload of ``kind`` for the source; False when the tool has no such kind
    (connectors may keep raw payloads that feed nothing yet).

    ``external_id`` is the raw row's id; list payloads need it (``"owner/repo#n"`` for a PR's reviews,
    commits and timeline; the deployment id for a compare) because they do not name their parent.
    """
    module = _tool(source_name, options)
    fn = module.NORMALISERS.get(kind)
    if fn is None:
        return False
    with transaction(db):
        fn(db, source_name, payload, options, external_id)
    return True


def ingest(
    db: sqlite_utils.Database,
    source_name: str,
    kind: str,
    external_id: str,
    updated_at: str | None,
    payload: dict | list,
    options: dict,
    *,
    fetched_at: str | None = None,
) -> bool:
    """Save the payload raw and normalise it, in one transaction; True iff the payload changed."""
    with transaction(db):
        changed = save_raw(db, source_name, kind, external_id, updated_at, payload, fetched_at=fetched_at)
        if changed:
            normalise(db, source_name, kind, payload, options, external_id)
    return changed


def rebuild(db: sqlite_utils.Database, sources: dict[str, dict]) -> dict[str, int]:
    """Delete the normalised rows of ``sources`` (name -> options) and re-derive them from ``raw``.

    One transaction: readers see the old rows or the new ones, never a half-built store. Kinds go
    parents first (PRs before their reviews and before the compares that link them to deployments).
    Work items tombstoned as deleted stay so. Returns the number of payloads normalised per source.
    """
    from metrics.normalise.github import normalise_pull

    modules = {name: _tool(name, options) for name, options in sources.items()}
    counts: dict[str, int] = {}
    with transaction(db):
        # Tombstones (items a connector found deleted remotely) are not in raw: carry them over.
        tombstones = [
            (r[0], r[1])
            for name in sources
            for r in db.execute("select source, key from work_items where source = ? and deleted = 1", [name])
        ]
        for name in sources:
            for table in NORMALISED_TABLES:
                db.execute(f"delete from {table} where source = ?", [name])
        for name, options in sources.items():
            module = modules[name]
            n = 0
            for kind in module.ORDER:
                fn = module.NORMALISERS[kind]
                for raw in iter_raw(db, name, kind):
                    if fn is normalise_pull:
                        fn(db, name, raw["payload"], options, raw["external_id"], with_children=False)
                    else:
                        fn(db, name, raw["payload"], options, raw["external_id"])
                    n += 1
            counts[name] = n
        db.conn.executemany("update work_items set deleted = 1 where source = ? and key = ?", tombstones)
    return counts


__all__ = ["normalise", "ingest", "rebuild", "NORMALISED_TABLES"]
