"""The sync engine: every configured source, independently, stream by stream.

A failing source (or stream) never stops the others and never loses stored data: its error is
recorded in ``sync_status`` beside the time of its last success, which digests show as "data as of".
Secrets come only from the environment variable the config names, and are scrubbed from anything
stored or shown.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from metrics.kinds import connector_class
from metrics.store.tx import transaction
from metrics.timeutil import now_iso

if TYPE_CHECKING:
    import sqlite_utils

    from metrics.sources.base import Connector, Progress
    from metrics.sources.http import Policy

# The connectors and their HTTP client (requests, urllib3) are imported by the functions that sync:
# a process that only reads (a digest, `vsm metric`) never loads them. Reads of ``sync_status``
# (freshness) live in metrics/store/sync_status.py.


@dataclass
class SourceResult:
    name: str
    changed: int = 0
    seen: int = 0
    errors: list[str] = field(default_factory=list)
    wait_seconds: float = 0.0  # time spent waiting on the source's responses
    requests: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


def _scrub(message: object, token: str | None, user: str | None) -> str:
    """One line, safe to store and show: the token in every form gone (``http.scrub``), then cut to
    500 characters (cut before, a secret split at the edge would no longer be recognised)."""
    from metrics.sources.http import scrub

    return " ".join(scrub(str(message), token, user).split())[:500]


def _record(
    db: sqlite_utils.Database,
    source: str,
    stream: str,
    *,
    kind: str,
    ok: bool,
    message: str | None,
    changed: int,
) -> None:
    at = now_iso()
    with transaction(db):
        db.execute(
            "insert into sync_status (source, stream, kind, updated) values (?, ?, ?, ?) "
            "on conflict(source, stream) do update set kind = excluded.kind",
            [source, stream, kind, at],
        )
        if ok:
            db.execute(
                "update sync_status set last_success = ?, last_error = null, rows_changed = ?, updated = ? "
                "where source = ? and stream = ?",
                [at, changed, at, source, stream],
            )
        else:
            db.execute(
                "update sync_status set last_error = ?, updated = ? where source = ? and stream = ?",
                [f"{at} {message}", at, source, stream],
            )


def _state(db: sqlite_utils.Database, source: str, stream: str) -> dict:
    row = db.execute(
        "select cursor from sync_status where source = ? and stream = ?", [source, stream]
    ).fetchone()
    return json.loads(row[0]) if row and row[0] else {}


def _connector(
    db: sqlite_utils.Database, source: dict, token: str | None, now: float, policy: Policy | None
) -> Connector:
    """The source's connector on its HTTP client (auth, policy, stored ETags), or a SourceError
    saying why it cannot run."""
    from metrics.sources.base import SyncContext
    from metrics.sources.http import SourceError, check_transport

    token_env = source.get("token_env")
    if token_env and not token:
        raise SourceError(f"environment variable {token_env} is not set")
    try:
        cls = connector_class(source["kind"])
    except (KeyError, ImportError, AttributeError):
        raise SourceError(f"no connector for kind {source['kind']!r} yet") from None
    http = cls.make_http(source, token or "")
    check_transport(http.base_url, bool(source.get("allow_plain_http")))
    if policy is not None:
        http.policy = policy
    http.etags.update(
        {
            r[0]: r[1]
            for r in db.execute("select key, etag from http_etags where source = ?", [source["name"]])
        }
    )
    return cls(SyncContext(db, source, http, now))


def sync_source(
    db: sqlite_utils.Database,
    source: dict,
    *,
    env: Mapping[str, str] | None = None,
    now: float | None = None,
    progress: Progress | None = None,
    policy: Policy | None = None,
) -> SourceResult:
    """Sync every stream of one source; errors are recorded and returned, never raised."""
    from metrics.sources.http import SourceError

    env = os.environ if env is None else env
    name, kind = source["name"], str(source.get("kind", ""))
    result = SourceResult(name)
    token_env = source.get("token_env")
    token = env.get(token_env) if token_env else None
    user = source.get("user")
    try:
        connector = _connector(db, source, token, time.time() if now is None else now, policy)
        streams = connector.streams()
    except SourceError as exc:  # no token, no connector, a plain-http URL, a bad configuration
        result.errors.append(_scrub(exc, token, user))
        _record(db, name, "*", kind=kind, ok=False, message=result.errors[-1], changed=0)
        return result
    ctx, http = connector.ctx, connector.ctx.http
    if progress is not None:
        ctx.progress = progress
    for stream in streams:
        before = ctx.changed
        try:
            state = connector.sync(stream, _state(db, name, stream))
            ctx.checkpoint(stream, state)
            _record(db, name, stream, kind=kind, ok=True, message=None, changed=ctx.changed - before)
        except SourceError as exc:
            message = _scrub(exc, token, user)
            result.errors.append(f"{stream}: {message}")
            _record(db, name, stream, kind=kind, ok=False, message=message, changed=0)
        except Exception as exc:  # noqa: BLE001 - one broken stream must not stop the others
            message = _scrub(f"{exc.__class__.__name__}: {exc}", token, user)
            result.errors.append(f"{stream}: unexpected error {message}")
            _record(db, name, stream, kind=kind, ok=False, message=f"unexpected error {message}", changed=0)
    with transaction(db):
        db.conn.executemany(
            "insert or replace into http_etags (source, key, etag) values (?, ?, ?)",
            [(name, k, v) for k, v in http.etags.items()],
        )
    result.changed, result.seen = ctx.changed, ctx.seen
    result.wait_seconds, result.requests = http.wait_seconds, http.requests_made
    return result


def sync_sources(
    db: sqlite_utils.Database,
    sources: list[dict],
    *,
    only: str | None = None,
    env: Mapping[str, str] | None = None,
    now: float | None = None,
    progress: Progress | None = None,
    policy: Policy | None = None,
) -> list[SourceResult]:
    """Sync the sources (or just ``only``), each on its own: one failing never stops the others."""
    chosen = [s for s in sources if only is None or s["name"] == only]
    return [sync_source(db, s, env=env, now=now, progress=progress, policy=policy) for s in chosen]
