"""Jira (Cloud and Data Center) issues and sprints -> raw ``issue`` / ``sprint`` payloads.

Two streams: ``issues`` (every issue the configured JQL selects, with its *complete* changelog) and,
when ``boards`` are configured, ``sprints`` (the Agile API's active and closed sprints of each board).

Cloud or Data Center: the ``deployment`` setting when given (an override), else what
``GET /rest/api/2/serverInfo`` answers (``deploymentType`` ``Cloud``, or ``Server``/``DataCenter``),
asked once per sync because a site can migrate and Cloud sites can have their own domains (the host
name does not tell). The answer is remembered in ``raw`` (kind ``server_info``): when serverInfo cannot
be read (some sites want auth there, a proxy may hide it) the last answer is used, else the host rule
(``*.atlassian.net`` is Cloud), and an error of that sync names the guess so the override is easy to find.

Issues, Cloud: ``GET /rest/api/3/search/jql`` with ``nextPageToken`` (the old ``/rest/api/{2,3}/search``
answer 410 Gone there). Data Center: ``GET /rest/api/2/search`` with ``startAt``/``total``. Both with the
fields named (Cloud returns only ids otherwise), ``expand=changelog``, and the JQL
``(<jql>) AND updated >= <epoch ms> ORDER BY created ASC``:

- epoch milliseconds, because date literals are read in the API user's profile zone, to the minute;
- ``created`` order, because in ``updated`` order an issue edited mid-crawl jumps pages (missed or
  doubled); created order is stable while we page.

The expanded changelog is capped (newest first). When ``changelog.total`` says more exist, the full
history is fetched (Cloud: ``/issue/{key}/changelog``, paged, oldest first; Data Center:
``/issue/{key}?expand=changelog``) and stored in the issue payload, newest first as search sends it, so
the raw payload is "the issue as search would return it uncapped". A history already stored whole for
the same ``updated`` and ``total`` is reused instead of refetched (children only follow a changed parent).

State of ``issues`` (JSON in ``sync_status.cursor``):

- ``cursor``: the largest ``updated`` seen (epoch ms), but never later than the instant the crawl
  started, written only when a crawl completes; the next crawl starts at ``cursor - OVERLAP_MS``
  (search is eventually consistent: recent edits may lag). The cap matters: an issue created early
  and edited mid-crawl is on a page already read, while later pages carry newer ``updated`` values;
  without it the next window would start after that edit and never see it;
- while a crawl runs: ``since`` (its lower bound, kept so a resumed crawl runs the same query),
  ``started`` (epoch ms, the cap above),
  ``page_token`` (Cloud) or ``start_at`` (Data Center) of the next page, ``high`` (largest ``updated``
  so far), saved after every page. A resumed crawl continues from there; a stale page token (Cloud
  tokens live 7 days) falls back to the first page of the same ``since`` window: nothing is lost;
- ``jql`` and ``fields``: what the cursor is for. A changed query or field list starts over from
  ``history_days`` back (the cursor says nothing about issues the old query did not select), and
  checks deletions at once (issues only the old query selected are tombstoned);
- ``reconciled``: when the last deletion check ran (epoch seconds).

Deletions: searches never report them. Every ``RECONCILE_EVERY`` (7 days) the ids matching the JQL
over the history window are listed (``fields=id``). A stored issue last updated inside the window and
absent from the listing is tombstoned (``work_items.deleted = 1``); one that is listed again comes back
(``deleted = 0``). Issues listed but never stored (a page boundary shifted by a deletion mid-crawl, an
index lag longer than the overlap) are fetched then. A moved issue (same id, new key) tombstones its
old key as soon as the move is ingested. Sprints are not reconciled: each sync lists every configured
board's active and closed sprints in full, and a deleted sprint simply stops being refreshed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

from metrics.sources.base import Connector
from metrics.sources.http import AuthError, Http, RateLimited, SourceError
from metrics.store.raw import get_raw, save_raw
from metrics.store.tx import transaction
from metrics.timeutil import parse_instant

ISSUES, SPRINTS = "issues", "sprints"
FIELDS = (
    "summary",
    "status",
    "issuetype",
    "created",
    "updated",
    "resolution",
    "resolutiondate",
    "labels",
    "components",
    "project",
)
OVERLAP_MS = 5 * 60 * 1000  # re-read before the cursor: edits reach the search index late
RECONCILE_EVERY = 7 * 86400  # seconds between deletion checks
RECONCILE_MARGIN = 86400  # only judge issues updated at least a day inside the window's edge
PAGE = 100  # issues per search page (with the changelog expanded)
ID_PAGE = 1000  # ids per page when listing for reconciliation
CHANGELOG_PAGE = 100  # the changelog endpoint's maximum
SPRINT_PAGE = 50  # the Agile API's default and maximum
ID_BATCH = 50  # ids per ``id in (...)`` refetch
SPRINT_SCHEMA = "com.pyxis.greenhopper.jira:gh-sprint"
CLOUD, DATACENTER = "cloud", "datacenter"


SERVER_INFO = "/rest/api/2/serverInfo"  # on both deployments; no auth needed on most sites
SERVER_INFO_KIND = "server_info"  # the raw kind the answer is remembered under (one row per source)
SERVER_INFO_KEPT = ("baseUrl", "deploymentType", "version")  # not serverTime: it changes every call
DEPLOYMENT_TYPES = {"cloud": CLOUD, "server": DATACENTER, "datacenter": DATACENTER}
LABELS = {CLOUD: "Jira Cloud", DATACENTER: "Jira Data Center"}


def configured_deployment(source: dict) -> str | None:
    """The ``deployment`` setting (``cloud``/``datacenter``), checked, or None when not set."""
    value = source.get("deployment")
    if not value:
        return None
    if value not in (CLOUD, DATACENTER):
        raise SourceError(f"deployment must be {CLOUD!r} or {DATACENTER!r}, not {value!r}")
    return value


def deployment_by_host(url: str) -> str:
    """The last resort when the site cannot say: Cloud for ``*.atlassian.net`` (and the OAuth gateway
    ``api.atlassian.com``), Data Center for any other host (wrong for Cloud on its own domain)."""
    host = (urlsplit(url or "").hostname or "").lower()
    return CLOUD if host.endswith(".atlassian.net") or host == "api.atlassian.com" else DATACENTER


def deployment_of(server_info: object) -> str | None:
    """``cloud``/``datacenter`` from a serverInfo answer's ``deploymentType``; None when it names
    neither (a proxy's page, an unknown value): then the answer cannot decide."""
    if not isinstance(server_info, dict):
        return None
    return DEPLOYMENT_TYPES.get(str(server_info.get("deploymentType") or "").lower())


def deployment(source: dict, server_info: object = None) -> str:
    """``cloud`` or ``datacenter``: as configured, else as the site's serverInfo answer says, else by
    the host name."""
    return (
        configured_deployment(source) or deployment_of(server_info) or deployment_by_host(source.get("url"))
    )


def base_jql(jql: str) -> str:
    """The configured JQL without a trailing ``ORDER BY`` (the connector's own order is required)."""
    return re.sub(r"\s+order\s+by\s+.*$", "", " " + jql.strip(), flags=re.IGNORECASE | re.DOTALL).strip()


def epoch_ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def _updated_ms(issue: dict) -> int | None:
    value = parse_instant((issue.get("fields") or {}).get("updated"))
    return None if value is None else epoch_ms(value)


def _newest_first(history: dict) -> tuple[float, int]:
    """Sort key putting the latest history first (by ``created``, then by id)."""
    history_id = str(history.get("id") or "")
    return (-(parse_instant(history.get("created")) or 0.0), -int(history_id) if history_id.isdigit() else 0)


def _is_last(data: dict, read: int, got: int, asked: int) -> bool:
    """The end of a ``startAt`` listing: ``isLast`` when given, else by ``total``, else a short page."""
    if not got:
        return True
    if data.get("isLast") is not None:
        return bool(data["isLast"])
    total = data.get("total")
    return read >= int(total) if total is not None else got < asked


class JiraConnector(Connector):
    """Issues (with full changelogs) selected by ``jql``, and sprints of the configured ``boards``."""

    kind = "jira"
    cloud = True  # set at each sync: the ``deployment`` setting, else the site's serverInfo answer
    detected: str | None = None  # this sync's answer (one connector per sync: asked once per sync)
    guess: str | None = None  # why the deployment is a guess (serverInfo unreadable), for error messages

    @staticmethod
    def make_http(source: dict, token: str) -> Http:
        """Basic auth ``user:token`` when ``user`` is set (Cloud API tokens; Data Center basic),
        else ``Authorization: Bearer`` (Data Center personal access tokens, OAuth 2.0 apps)."""
        user = source.get("user")
        if user:
            return Http(source["url"], auth=(user, token))
        return Http(source["url"], {"Authorization": f"Bearer {token}"})

    def streams(self) -> list[str]:
        return ([SPRINTS] if self.ctx.source.get("boards") else []) + [ISSUES]

    def sync(self, stream: str, state: dict) -> dict:
        self.cloud = self._check_config() == CLOUD
        try:
            if stream == SPRINTS:
                return self._sync_sprints(state)
            return self._sync_issues(state)
        except SourceError as exc:
            if self.guess is None:
                raise
            raise type(exc)(f"{exc} ({self.guess})", exc.status) from None

    # -- configuration -------------------------------------------------------------------------------
    def _check_config(self) -> str:
        jql = self.ctx.source.get("jql")
        if not isinstance(jql, str) or not base_jql(jql):
            raise SourceError(
                "jql is required: a bounded query naming what to sync, e.g. project in (PAY, WEB)"
            )
        boards = self.ctx.source.get("boards") or []
        if not isinstance(boards, list) or not all(str(b).isdigit() for b in boards):
            raise SourceError("boards must be a list of board ids (numbers)")
        configured = configured_deployment(self.ctx.source)
        if configured is not None:
            return configured
        if self.detected is None:
            self.detected = self._detect_deployment()
        return self.detected

    def _detect_deployment(self) -> str:
        """Ask serverInfo and remember the answer; when it cannot say, use the remembered answer of an
        earlier sync, else the host rule, and keep the reason in ``guess`` for this sync's errors."""
        try:
            page = self.ctx.http.get(SERVER_INFO)
        except RateLimited:
            raise  # the search would be limited too: fail the stream as rate-limited
        except SourceError as exc:
            return self._fallback(str(exc))
        data = page.data if page is not None else None
        found = deployment_of(data)
        if found is None:
            return self._fallback(f"GET {SERVER_INFO}: no deploymentType Cloud, Server or DataCenter")
        kept = {k: data[k] for k in SERVER_INFO_KEPT if k in data}
        save_raw(self.ctx.db, self.ctx.name, SERVER_INFO_KIND, SERVER_INFO_KIND, None, kept)
        return found

    def _fallback(self, reason: str) -> str:
        stored = get_raw(self.ctx.db, self.ctx.name, SERVER_INFO_KIND, SERVER_INFO_KIND)
        chosen = deployment(self.ctx.source, stored)
        how = "as the site said at an earlier sync" if deployment_of(stored) else "by its host name"
        self.guess = (
            f"could not ask the site whether it is Cloud or Data Center ({reason}); "
            f'took it for {LABELS[chosen]} {how}; set deployment = "cloud" or "datacenter" to say'
        )
        return chosen

    @property
    def api(self) -> str:
        return "/rest/api/3" if self.cloud else "/rest/api/2"

    def _fields(self) -> list[str]:
        """Every field the normaliser reads, named (Cloud returns only ids otherwise)."""
        names = list(FIELDS)
        source = self.ctx.source
        sprint_field = source.get("sprint_field") or (
            self._find_sprint_field() if source.get("boards") else None
        )
        for extra in (sprint_field, source.get("flag_field"), source.get("points_field")):
            if extra and extra not in names:
                names.append(extra)
        return names

    def _find_sprint_field(self) -> str | None:
        """The sprint custom field's id (it differs per site), when sprints are wanted and it is not
        configured: without it an issue created inside a sprint would miss its initial membership."""
        page = self.ctx.http.get(f"{self.api}/field")
        for field in page.data if page is not None and isinstance(page.data, list) else []:
            if (field.get("schema") or {}).get("custom") == SPRINT_SCHEMA:
                return field.get("id")
        return None

    # -- issues --------------------------------------------------------------------------------------
    def _sync_issues(self, state: dict) -> dict:
        jql = base_jql(self.ctx.source["jql"])
        fields = self._fields()
        scope = {"jql": jql, "fields": ",".join(fields)}
        if any(state.get(k) != v for k, v in scope.items()):
            state = {}  # a new query: its cursor starts over, and deletions are checked at once
        cursor = state.get("cursor")
        if "since" in state:
            since = state["since"]
        elif cursor is not None:
            since = cursor - OVERLAP_MS
        else:
            since = epoch_ms(self.ctx.history_start)
        position = state.get("page_token") if self.cloud else state.get("start_at")
        high = state.get("high")
        started = state.get("started") or epoch_ms(self.ctx.now)
        query = f"({jql}) AND updated >= {since} ORDER BY created ASC"
        running = {**scope, "cursor": cursor, "since": since, "started": started}
        running["reconciled"] = state.get("reconciled")
        for issues, nxt in self._search(query, fields, position, expand=True):
            for issue in issues:
                self._ingest_issue(issue)
                updated = _updated_ms(issue)
                if updated is not None and (high is None or updated > high):
                    high = updated
            self._restore([issue.get("key") for issue in issues])
            self.ctx.checkpoint(ISSUES, {**running, "high": high, self._position_key: nxt})
        reached = min(high, started) if high is not None else None
        done = {**scope, "cursor": max((v for v in (cursor, reached) if v is not None), default=None)}
        done["reconciled"] = state.get("reconciled")
        self.ctx.checkpoint(ISSUES, done)
        if done["reconciled"] is None or self.ctx.now - done["reconciled"] >= RECONCILE_EVERY:
            self._reconcile(jql, fields)
            done["reconciled"] = self.ctx.now
        return done

    @property
    def _position_key(self) -> str:
        return "page_token" if self.cloud else "start_at"

    def _search(
        self, jql: str, fields: list[str], position, *, expand: bool, page_size: int = PAGE
    ) -> Iterator[tuple[list[dict], object]]:
        """Pages of ``(issues, position of the next page or None)`` from ``position`` on."""
        if self.cloud:
            return self._search_cloud(jql, fields, position, expand, page_size)
        return self._search_datacenter(jql, fields, position or 0, expand, page_size)

    def _search_cloud(
        self, jql: str, fields: list[str], token: str | None, expand: bool, page_size: int
    ) -> Iterator[tuple[list[dict], str | None]]:
        """``/rest/api/3/search/jql``: follow ``nextPageToken`` until it is absent. A token from a
        saved state that the server no longer accepts restarts the same query from its first page."""
        resumed = token is not None
        while True:
            params = {"jql": jql, "fields": ",".join(fields), "maxResults": page_size}
            if expand:
                params["expand"] = "changelog"
            if token:
                params["nextPageToken"] = token
            try:
                page = self.ctx.http.get("/rest/api/3/search/jql", params)
            except (AuthError, RateLimited):
                raise
            except SourceError as exc:
                if resumed and exc.status == 400:
                    token = resumed = None  # stale token: the same window again, from its start
                    continue
                raise
            resumed = False
            data = page.data if page is not None else {}
            nxt = None if data.get("isLast") is True else (data.get("nextPageToken") or None)
            if nxt is not None and nxt == token:
                raise SourceError("GET /rest/api/3/search/jql: the page token did not advance")
            yield list(data.get("issues") or []), nxt
            if nxt is None:
                return
            token = nxt

    def _search_datacenter(
        self, jql: str, fields: list[str], start_at: int, expand: bool, page_size: int
    ) -> Iterator[tuple[list[dict], int | None]]:
        """``/rest/api/2/search``: ``startAt`` advances by what came back (the server may cap
        ``maxResults``) until it reaches ``total`` or a page is empty."""
        while True:
            params = {"jql": jql, "fields": ",".join(fields), "maxResults": page_size, "startAt": start_at}
            if expand:
                params["expand"] = "changelog"
            try:
                page = self.ctx.http.get("/rest/api/2/search", params)
            except (AuthError, RateLimited):
                raise
            except SourceError as exc:
                if exc.status == 410:  # a Cloud site on its own domain: v2 search is gone there
                    raise SourceError(
                        f'{exc}; this looks like Jira Cloud: set deployment = "cloud" for this source'
                    ) from None
                raise
            data = page.data if page is not None else {}
            issues = list(data.get("issues") or [])
            start_at += len(issues)
            total = data.get("total")
            more = bool(issues) and (total is None or start_at < int(total))
            yield issues, (start_at if more else None)
            if not more:
                return

    def _ingest_issue(self, issue: dict) -> bool:
        """Store one issue with its whole changelog; a changed key (a move) tombstones the old one."""
        issue = self._complete(issue)
        issue_id = str(issue["id"])
        row = self.ctx.db.execute(
            "select json_extract(payload, '$.key') from raw where source = ? and kind = 'issue' "
            "and external_id = ?",
            [self.ctx.name, issue_id],
        ).fetchone()
        changed = self.ctx.ingest(
            ISSUES, "issue", issue_id, (issue.get("fields") or {}).get("updated"), issue
        )
        if changed and row and row[0] and row[0] != issue.get("key"):
            self._set_deleted([row[0]], 1)
        return changed

    def _complete(self, issue: dict) -> dict:
        """The issue with its full changelog: as searched when complete, else the stored history when
        it is already whole for this very version, else fetched."""
        changelog = issue.get("changelog")
        if not isinstance(changelog, dict):
            return issue
        histories = changelog.get("histories") or []
        total = int(changelog.get("total") or len(histories))
        if total <= len(histories):
            return issue
        full = self._stored_histories(issue, total, histories)
        if full is None:
            full = self._fetch_histories(issue["key"])
        return {
            **issue,
            "changelog": {"startAt": 0, "maxResults": len(full), "total": len(full), "histories": full},
        }

    def _stored_histories(self, issue: dict, total: int, histories: list[dict]) -> list[dict] | None:
        stored = get_raw(self.ctx.db, self.ctx.name, "issue", str(issue["id"]))
        if not isinstance(stored, dict):
            return None
        old = (stored.get("changelog") or {}).get("histories") or []
        same_version = (stored.get("fields") or {}).get("updated") == (issue.get("fields") or {}).get(
            "updated"
        )
        ids = {h.get("id") for h in old}
        if same_version and len(old) == total and all(h.get("id") in ids for h in histories):
            return old
        return None

    def _fetch_histories(self, key: str) -> list[dict]:
        """Every history of one issue, newest first (the order search uses)."""
        path = quote(key, safe="")
        if not self.cloud:
            page = self.ctx.http.get(
                f"/rest/api/2/issue/{path}", {"expand": "changelog", "fields": "updated"}
            )
            data = page.data if page is not None else {}
            histories = list((data.get("changelog") or {}).get("histories") or [])
            return sorted(histories, key=_newest_first)  # Data Center lists them oldest first
        out: list[dict] = []
        while True:
            page = self.ctx.http.get(
                f"/rest/api/3/issue/{path}/changelog", {"startAt": len(out), "maxResults": CHANGELOG_PAGE}
            )
            data = page.data if page is not None else {}
            values = list(data.get("values") or [])
            out += values
            if _is_last(data, len(out), len(values), CHANGELOG_PAGE):
                break
        return out[::-1]  # the endpoint lists oldest first

    # -- deletions -------------------------------------------------------------------------------------
    def _reconcile(self, jql: str, fields: list[str]) -> None:
        """List the ids the JQL selects over the history window; tombstone the stored ones missing,
        restore the listed ones tombstoned, fetch the listed ones never stored."""
        window = self.ctx.history_start
        query = f"({jql}) AND updated >= {epoch_ms(window)} ORDER BY created ASC"
        live: set[str] = set()
        for issues, _ in self._search(query, ["id"], None, expand=False, page_size=ID_PAGE):
            live.update(str(issue["id"]) for issue in issues if issue.get("id") is not None)
        stored = self.ctx.db.execute(
            "select external_id, json_extract(payload, '$.key'), updated_at from raw "
            "where source = ? and kind = 'issue'",
            [self.ctx.name],
        ).fetchall()
        judged = window + RECONCILE_MARGIN
        gone = [
            key for id_, key, updated in stored if id_ not in live and (parse_instant(updated) or 0) >= judged
        ]
        self._set_deleted(gone, 1)
        self._restore([key for id_, key, _ in stored if id_ in live])
        unseen = sorted(live - {id_ for id_, _, _ in stored}, key=int)
        for i in range(0, len(unseen), ID_BATCH):
            batch = f"id in ({', '.join(unseen[i : i + ID_BATCH])}) ORDER BY created ASC"
            for issues, _ in self._search(batch, fields, None, expand=True):
                for issue in issues:
                    self._ingest_issue(issue)

    def _restore(self, keys: list[str | None]) -> None:
        """Issues seen again are not deleted (a no-op, and no write, unless one was tombstoned)."""
        self._set_deleted([k for k in keys if k], 0)

    def _set_deleted(self, keys: list[str], flag: int) -> None:
        if not keys:
            return
        changed = 0
        with transaction(self.ctx.db):
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                cur = self.ctx.db.execute(
                    f"update work_items set deleted = ? where source = ? and deleted != ? "
                    f"and key in ({', '.join('?' * len(chunk))})",
                    [flag, self.ctx.name, flag, *chunk],
                )
                changed += max(cur.rowcount, 0)
        self.ctx.changed += changed

    # -- sprints -------------------------------------------------------------------------------------
    def _sync_sprints(self, state: dict) -> dict:
        """Each board's active and closed sprints, in full (they change state; there is no cursor).
        ``{"board", "start_at"}`` marks the next page while a listing runs."""
        boards = [str(b) for b in self.ctx.source.get("boards") or []]
        first = boards.index(state["board"]) if state.get("board") in boards else 0
        start_at = int(state.get("start_at") or 0) if state.get("board") in boards else 0
        for n, board in enumerate(boards[first:], start=first):
            while True:
                page = self.ctx.http.get(
                    f"/rest/agile/1.0/board/{board}/sprint",
                    {"state": "active,closed", "startAt": start_at, "maxResults": SPRINT_PAGE},
                )
                data = page.data if page is not None else {}
                values = list(data.get("values") or [])
                for sprint in values:
                    self.ctx.ingest(SPRINTS, "sprint", str(sprint["id"]), None, sprint)
                start_at += len(values)
                if _is_last(data, start_at, len(values), SPRINT_PAGE):
                    break
                self.ctx.checkpoint(SPRINTS, {"board": board, "start_at": start_at})
            start_at = 0
            if n + 1 < len(boards):
                self.ctx.checkpoint(SPRINTS, {"board": boards[n + 1], "start_at": 0})
        return {}


CONNECTOR = JiraConnector
