"""A loopback Jira, Cloud or Data Center, serving what the connector reads.

Payloads follow the examples of Atlassian's REST descriptions (swagger-v3 for Cloud, the v2 reference
for Data Center): issues ``{expand, id, self, key, fields, changelog}``, histories ``{id, author,
created, items[{field, fieldtype, fieldId, from, fromString, to, toString}]}``, instants written in
the API user's zone as ``2026-01-05T09:00:00.000+0000``, Agile sprints ``{id, self, state, name,
startDate, endDate, completeDate, createdDate, originBoardId, goal}``.

Cloud (``deployment="cloud"``) behaves as docs/sources.md says:

- ``GET /rest/api/3/search/jql``: ``nextPageToken`` (opaque, tied to its query, absent on the last
  page), ``isLast``, no ``total``; ``fields`` defaults to ``id`` only; a bounded JQL is required;
  ``expand=changelog`` gives at most ``changelog_cap`` histories, newest first, with the true
  ``total``; ``maxResults`` is capped at ``page_cap`` (``id_page_cap`` for an id listing);
- the removed ``/rest/api/{2,3}/search`` answer 410 Gone;
- ``GET /rest/api/3/issue/{key}/changelog`` pages the whole history oldest first (``startAt``,
  ``maxResults`` <= 100, ``total``, ``isLast``, ``values``);
- basic auth ``email:token``.

Data Center (``deployment="datacenter"``): ``/rest/api/2`` only, ``GET /rest/api/2/search`` with
``startAt``/``maxResults``/``total`` (and the same optional changelog cap, to exercise completion),
``GET /rest/api/2/issue/{key}?expand=changelog`` with the whole history (oldest first), sprint fields as
the Java object strings, a personal access token as ``Authorization: Bearer``.

Both: ``GET /rest/api/2/serverInfo`` (also ``/rest/api/3/serverInfo`` on Cloud) answers without auth
(``server_info_auth=True`` for the sites that want it) with ``deploymentType`` ``"Cloud"``, or
``"Server"``/``"DataCenter"`` (``deployment_type``), ``baseUrl`` the site's own address (a Cloud site on
its own domain: this fake runs on 127.0.0.1, and still answers 410 on the removed searches), and a
``serverTime`` that changes on every call; ``GET /rest/api/{v}/field`` and the Agile ``GET /rest/agile/1.0/board/{id}/sprint``
(``state`` filter, ``startAt``/``maxResults`` <= 50/``isLast``).

JQL is understood only as far as the connector writes it: ``AND`` of ``project = K`` / ``project in
(...)``, ``updated >= <epoch ms>`` (or a date literal, read as Jira does: in the user's zone, to the
minute), ``id in (...)``, then ``ORDER BY created ASC``; anything else is a 400 like Jira's.

Fast enough for a benchmark of tens of thousands of issues: issues are kept as payload dicts, sorted
by ``created`` lazily, and each query's matches are computed once per data version.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from fakes.server import FakeApi, FakeServer, Reply, Request
from metrics.sample import CATEGORIES, STATUSES

CLOUD, DATACENTER = "cloud", "datacenter"
SPRINT_FIELD = "customfield_10020"
POINTS_FIELD = "customfield_10016"
FLAG_FIELD = "customfield_10021"
SITE = "https://acme.atlassian.net"
REMOVED = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)


class JqlError(ValueError):
    pass


def _error(status: int, *messages: str) -> Reply:
    return Reply(status, {"errorMessages": list(messages), "errors": {}})


def _split_and(text: str) -> list[str]:
    """Top-level ``AND`` operands (parentheses respected)."""
    parts, depth, start, i = [], 0, 0, 0
    upper = text.upper()
    while i < len(text):
        c = text[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif depth == 0 and upper.startswith(" AND ", i):
            parts.append(text[start:i])
            start = i + 5
            i += 4
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _unwrap(text: str) -> str:
    """``(a AND b)`` -> ``a AND b`` when the parentheses enclose the whole text."""
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, c in enumerate(text):
            depth += c == "("
            depth -= c == ")"
            if depth == 0 and i < len(text) - 1:
                return text
        text = text[1:-1].strip()
    return text


def _values(text: str) -> list[str]:
    return [v.strip().strip('"').strip("'") for v in text.split(",") if v.strip()]


class Query:
    """A parsed JQL: its restrictions and whether it asked for ``ORDER BY created ASC``."""

    def __init__(self, jql: str, zone: ZoneInfo):
        match = re.match(r"^(.*?)\s*\bORDER\s+BY\s+(.+)$", jql.strip(), re.IGNORECASE | re.DOTALL)
        where, order = (match.group(1), match.group(2)) if match else (jql.strip(), None)
        if order is not None and order.strip().lower() != "created asc":
            raise JqlError(f"the fake orders by created ASC only, not {order!r}")
        self.projects: set[str] | None = None
        self.ids: set[str] | None = None
        self.updated_from: int | None = None  # epoch ms
        self.where = where.strip()
        self.zone = zone
        self.literals: list[str] = []  # date literals met (a connector should send epoch ms)
        for clause in self._clauses(self.where):
            self._clause(clause)

    def _clauses(self, text: str) -> list[str]:
        out = []
        for part in _split_and(_unwrap(text)):
            inner = _unwrap(part)
            out += self._clauses(inner) if len(_split_and(inner)) > 1 else [inner]
        return out

    def _clause(self, clause: str) -> None:
        m = re.match(r"^(project|id|issue|issuekey)\s+(=|in)\s+(.+)$", clause, re.IGNORECASE)
        if m:
            values = _values(m.group(3).strip().lstrip("(").rstrip(")"))
            if m.group(1).lower() == "project":
                self.projects = set(values) if self.projects is None else self.projects & set(values)
            else:
                self.ids = set(values) if self.ids is None else self.ids & set(values)
            return
        m = re.match(r"^updated\s*>=\s*(.+)$", clause, re.IGNORECASE)
        if m:
            value = m.group(1).strip()
            if value.isdigit():
                ms = int(value)
            else:
                self.literals.append(value)
                text = value.strip('"').strip("'").replace("/", "-")
                try:
                    local = datetime.strptime(text, "%Y-%m-%d %H:%M")
                except ValueError:
                    try:
                        local = datetime.strptime(text, "%Y-%m-%d")
                    except ValueError as exc:
                        raise JqlError(f"Date value '{value}' for field 'updated' is invalid.") from exc
                ms = int(local.replace(tzinfo=self.zone).timestamp()) * 1000
            self.updated_from = ms if self.updated_from is None else max(self.updated_from, ms)
            return
        raise JqlError(f"Error in the JQL Query: the fake does not understand {clause!r}.")

    @property
    def bounded(self) -> bool:
        return bool(self.where)


class FakeJira(FakeApi):
    """Issues and sprints in memory, served over real HTTP; ``add``/``move``/``delete``... change them."""

    def __init__(
        self,
        token: str,
        *,
        deployment: str = CLOUD,
        user: str | None = "bot@acme.com",
        server: FakeServer | None = None,
        zone: str = "Europe/London",
        page_cap: int = 100,
        id_page_cap: int = 5000,
        changelog_cap: int | None = 100,
        deployment_type: str | None = None,
        server_info_auth: bool = False,
    ) -> None:
        self.token, self.user, self.deployment = token, user, deployment
        self.deployment_type = deployment_type or ("Cloud" if deployment == CLOUD else "Server")
        self.server_info_auth = server_info_auth
        self.clock = 1770681600.0  # serverTime: advances on every call, as a real clock would
        super().__init__(server)
        self.zone = ZoneInfo(zone)
        self.page_cap, self.id_page_cap, self.changelog_cap = page_cap, id_page_cap, changelog_cap
        self.issues: dict[str, dict] = {}  # id -> payload without changelog
        self.histories: dict[str, list[dict]] = {}  # id -> histories, oldest first
        self.keys: dict[str, str] = {}  # key (also old keys after a move) -> id
        self.boards: dict[str, list[dict]] = {}  # board id -> sprint payloads
        self.created_ms: dict[str, int] = {}
        self.updated_ms: dict[str, int] = {}
        self.version = 0
        self.token_epoch = 0  # bumped by ``expire_tokens``: older page tokens are refused
        self.outage: Callable[[Request], bool] | None = None
        self.before_search: Callable[[Request], None] | None = None  # e.g. edit an issue mid-crawl
        self._order: list[tuple[int, int]] = []
        self._sorted = True
        self._matches: dict[str, tuple[int, list[tuple[int, int]]]] = {}
        self._next_history = 100000
        self._next_id = 10000
        v = "3" if deployment == CLOUD else "2"
        self.search_path = "/rest/api/3/search/jql" if deployment == CLOUD else "/rest/api/2/search"
        self.server.route("GET", "/rest/api/*", lambda r: _error(404, "Not found"))
        self.server.route("GET", "/rest/agile/1.0/board/*", self._sprints)
        self.server.route("GET", f"/rest/api/{v}/field", self._fields)
        for info in {"/rest/api/2/serverInfo", f"/rest/api/{v}/serverInfo"}:
            self.server.route("GET", info, self._server_info)
        self.server.route("GET", f"/rest/api/{v}/issue/*", self._issue)
        if deployment == CLOUD:
            for path in ("/rest/api/3/search", "/rest/api/2/search"):
                for method in ("GET", "POST"):
                    self.server.route(method, path, lambda r: _error(410, REMOVED))
            self.server.route("GET", "/rest/api/3/search/jql", self._search_cloud)
        else:
            self.server.route("GET", "/rest/api/2/search", self._search_datacenter)

    # -- faults ----------------------------------------------------------------------------------------
    def expire_tokens(self) -> None:
        """Every page token handed out so far becomes invalid (they live 7 days on Cloud)."""
        self.token_epoch += 1

    # -- time and rendering ------------------------------------------------------------------------------
    def when(self, ts: float) -> str:
        """Epoch seconds as Jira writes them: milliseconds and the user's ``+hhmm`` offset."""
        dt = datetime.fromtimestamp(ts, self.zone)
        return f"{dt:%Y-%m-%dT%H:%M:%S}.{int(round(ts * 1000)) % 1000:03d}{dt:%z}"

    def _status(self, name: str) -> dict:
        status_id, category = STATUSES.get(name, (str(20000 + len(name)), "indeterminate"))
        return {
            "self": f"{SITE}/rest/api/3/status/{status_id}",
            "description": "",
            "name": name,
            "id": status_id,
            "statusCategory": CATEGORIES[category],
        }

    def _sprint_value(self, sprint_ids: list[int]) -> list | None:
        """The sprint field as each deployment renders it: objects on Cloud, Java strings on DC."""
        sprints = {s["id"]: s for board in self.boards.values() for s in board}
        out = []
        for sid in sprint_ids:
            s = sprints.get(sid, {"id": sid, "name": f"Sprint {sid}", "state": "active", "originBoardId": 1})
            if self.deployment == CLOUD:
                value = {"id": sid, "name": s["name"], "state": s["state"], "boardId": s["originBoardId"]}
                out.append(value | {k: s[k] for k in ("goal", "startDate", "endDate") if k in s})
            else:
                out.append(
                    f"com.atlassian.greenhopper.service.sprint.Sprint@{sid:x}[id={sid},"
                    f"rapidViewId={s['originBoardId']},state={s['state'].upper()},name={s['name']},"
                    f"startDate={s.get('startDate') or '<null>'},endDate={s.get('endDate') or '<null>'}]"
                )
        return out or None

    def render(self, issue_id: str, fields: list[str] | None, changelog: bool) -> dict:
        """One issue as search returns it: the named fields only, the changelog capped if asked."""
        stored = self.issues[issue_id]
        out = {k: stored[k] for k in ("expand", "id", "self", "key")}
        if fields is None:
            out["fields"] = dict(stored["fields"])
        elif fields != ["id"]:
            out["fields"] = {f: stored["fields"][f] for f in fields if f in stored["fields"]}
        if changelog:
            hist = self.histories[issue_id]
            newest = hist[::-1] if self.changelog_cap is None else hist[: -self.changelog_cap - 1 : -1]
            out["changelog"] = {
                "startAt": 0,
                "maxResults": len(newest),
                "total": len(hist),
                "histories": newest,
            }
        return out

    def payload(self, key: str, fields: list[str] | None) -> dict:
        """The issue as an uncapped search naming ``fields`` would return it: what the store must hold."""
        issue_id = self.keys[key]
        cap, self.changelog_cap = self.changelog_cap, None
        try:
            return self.render(issue_id, fields, True)
        finally:
            self.changelog_cap = cap

    # -- data ----------------------------------------------------------------------------------------------
    def _touch(self, issue_id: str, at: float) -> None:
        fields = self.issues[issue_id]["fields"]
        fields["updated"] = self.when(at)
        self.updated_ms[issue_id] = int(round(at * 1000))
        self.version += 1

    def add(
        self,
        key: str,
        created: float,
        *,
        status: str = "Backlog",
        type: str = "Story",
        summary: str | None = None,
        sprints: list[int] | None = None,
        points: float | None = None,
        labels: list[str] | None = None,
        issue_id: str | None = None,
    ) -> dict:
        """A new issue, no history yet."""
        self._next_id += 1
        issue_id = issue_id or str(self._next_id)
        project = key.rsplit("-", 1)[0]
        api = "3" if self.deployment == CLOUD else "2"
        fields = {
            "summary": summary or f"Work on {key}",
            "status": self._status(status),
            "issuetype": {"id": "10001", "name": type, "subtask": False, "hierarchyLevel": 0},
            "created": self.when(created),
            "updated": self.when(created),
            "resolution": None,
            "resolutiondate": None,
            "labels": list(labels or []),
            "components": [],
            "project": {
                "self": f"{SITE}/rest/api/{api}/project/{project}",
                "id": str(10000 + sum(map(ord, project))),
                "key": project,
                "name": project.title(),
                "projectTypeKey": "software",
                "simplified": False,
            },
            SPRINT_FIELD: self._sprint_value(sprints or []),
            POINTS_FIELD: points,
            FLAG_FIELD: None,
            "description": None,  # not named by the connector: must not be fetched
        }
        self._store(
            {
                "expand": "operations,versionedRepresentations,editmeta,changelog,renderedFields",
                "id": issue_id,
                "self": f"{SITE}/rest/api/{api}/issue/{issue_id}",
                "key": key,
                "fields": fields,
            },
            [],
        )
        return self.issues[issue_id]

    def load(self, payload: dict) -> None:
        """An issue as the sample history writes it (search shape, whole changelog newest first)."""
        hist = list((payload.get("changelog") or {}).get("histories") or [])[::-1]
        self._store({k: v for k, v in payload.items() if k != "changelog"}, hist)

    def _store(self, issue: dict, histories: list[dict]) -> None:
        issue_id = str(issue["id"])
        self.issues[issue_id] = issue
        self.histories[issue_id] = histories
        self.keys[issue["key"]] = issue_id
        self.created_ms[issue_id] = int(
            round(datetime.fromisoformat(issue["fields"]["created"]).timestamp() * 1000)
        )
        self.updated_ms[issue_id] = int(
            round(datetime.fromisoformat(issue["fields"]["updated"]).timestamp() * 1000)
        )
        self._order.append((self.created_ms[issue_id], int(issue_id)))
        self._sorted = False
        self.version += 1

    def change(self, key: str, at: float, *items: dict) -> dict:
        """One history (a change of one or more fields) at ``at``; ``updated`` moves to ``at``."""
        issue_id = self.keys[key]
        self._next_history += 1
        history = {
            "id": str(self._next_history),
            "author": {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Mia Krystof", "active": True},
            "created": self.when(at),
            "items": list(items),
        }
        self.histories[issue_id].append(history)
        self._touch(issue_id, at)
        return history

    def move_status(self, key: str, at: float, to: str, *, resolution: str | None = None) -> dict:
        """A workflow transition (with a resolution set or cleared alongside when it changes)."""
        fields = self.issues[self.keys[key]]["fields"]
        old = fields["status"]
        new = self._status(to)
        items = [
            {
                "field": "status",
                "fieldtype": "jira",
                "fieldId": "status",
                "from": old["id"],
                "fromString": old["name"],
                "to": new["id"],
                "toString": new["name"],
            }
        ]
        before = (fields["resolution"] or {}).get("name")
        if resolution != before:
            items.append(
                {
                    "field": "resolution",
                    "fieldtype": "jira",
                    "fieldId": "resolution",
                    "from": None,
                    "fromString": before,
                    "to": "10000" if resolution else None,
                    "toString": resolution,
                }
            )
            fields["resolution"] = (
                {"id": "10000", "name": resolution, "description": ""} if resolution else None
            )
            fields["resolutiondate"] = self.when(at) if resolution else None
        fields["status"] = new
        return self.change(key, at, *items)

    def set_sprints(self, key: str, at: float, sprint_ids: list[int]) -> dict:
        """The Sprint field changed: ``from``/``to`` are comma-separated ids, strings the names."""
        fields = self.issues[self.keys[key]]["fields"]
        before = [int(s) for s in _sprint_ids(fields.get(SPRINT_FIELD))]
        names = {s["id"]: s["name"] for board in self.boards.values() for s in board}
        item = {
            "field": "Sprint",
            "fieldtype": "custom",
            "fieldId": SPRINT_FIELD,
            "from": ", ".join(map(str, before)),
            "fromString": ", ".join(names.get(s, f"Sprint {s}") for s in before),
            "to": ", ".join(map(str, sprint_ids)),
            "toString": ", ".join(names.get(s, f"Sprint {s}") for s in sprint_ids),
        }
        fields[SPRINT_FIELD] = self._sprint_value(sprint_ids)
        return self.change(key, at, item)

    def edit(self, key: str, at: float, **fields) -> None:
        """A field edit that writes no history the normaliser reads (e.g. the summary)."""
        issue_id = self.keys[key]
        self.issues[issue_id]["fields"].update(fields)
        self._touch(issue_id, at)

    def delete(self, key: str) -> None:
        issue_id = self.keys.pop(key)
        for other in [k for k, v in self.keys.items() if v == issue_id]:
            del self.keys[other]
        del self.issues[issue_id], self.histories[issue_id]
        self._order.remove((self.created_ms.pop(issue_id), int(issue_id)))
        self.updated_ms.pop(issue_id)
        self.version += 1

    def move(self, key: str, new_key: str, at: float) -> None:
        """Moved to another project: same id, a new key (the old key still resolves)."""
        issue_id = self.keys[key]
        issue = self.issues[issue_id]
        issue["key"] = new_key
        project = new_key.rsplit("-", 1)[0]
        issue["fields"]["project"] = {**issue["fields"]["project"], "key": project, "name": project.title()}
        self.keys[new_key] = issue_id
        self.change(
            new_key,
            at,
            {
                "field": "Key",
                "fieldtype": "jira",
                "from": None,
                "fromString": key,
                "to": None,
                "toString": new_key,
            },
        )

    def add_sprint(
        self,
        board: int,
        sprint_id: int,
        name: str,
        state: str,
        start: float | None = None,
        end: float | None = None,
        complete: float | None = None,
    ) -> dict:
        """A sprint of ``board`` as the Agile API lists it."""
        sprint = {
            "id": sprint_id,
            "self": f"{SITE}/rest/agile/1.0/sprint/{sprint_id}",
            "state": state,
            "name": name,
            "originBoardId": board,
            "goal": f"{name} goal",
        }
        iso = _agile_time
        if start is not None:
            sprint |= {"startDate": iso(start), "endDate": iso(end), "createdDate": iso(start - 3 * 86400)}
        if complete is not None:
            sprint["completeDate"] = iso(complete)
        self.boards.setdefault(str(board), []).append(sprint)
        return sprint

    # -- queries ---------------------------------------------------------------------------------------
    def _matching(self, query: Query) -> list[tuple[int, int]]:
        """``(created ms, id)`` of the issues the query selects, in created order (cached per version)."""
        if not self._sorted:
            self._order.sort()
            self._sorted = True
        cached = self._matches.get(query.where)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        if query.ids is not None:
            ids = [i for i in query.ids if i in self.issues] + [
                self.keys[k] for k in query.ids if k in self.keys
            ]
            candidates = sorted({(self.created_ms[i], int(i)) for i in ids})
        else:
            candidates = self._order
        out = []
        for created, n in candidates:
            issue_id = str(n)
            if query.updated_from is not None and self.updated_ms[issue_id] < query.updated_from:
                continue
            if (
                query.projects is not None
                and self.issues[issue_id]["key"].rsplit("-", 1)[0] not in query.projects
            ):
                continue
            out.append((created, n))
        self._matches = {k: v for k, v in self._matches.items() if v[0] == self.version}
        self._matches[query.where] = (self.version, out)
        return out

    def _denied(self, req: Request) -> Reply | None:
        if self.outage is not None and self.outage(req):
            return _error(500, "Internal server error")
        auth = req.headers.get("authorization", "")
        ok = set()
        if self.user:
            ok.add("Basic " + base64.b64encode(f"{self.user}:{self.token}".encode()).decode())
        if self.deployment == DATACENTER:
            ok.add(f"Bearer {self.token}")
        if auth not in ok:
            return Reply(401, {"errorMessages": ["You are not authenticated. Authentication required."]})
        return None

    def _query(self, req: Request) -> tuple[Query | None, Reply | None]:
        try:
            query = Query(req.arg("jql") or "", self.zone)
        except JqlError as exc:
            return None, _error(400, str(exc))
        if not query.bounded and self.deployment == CLOUD:
            return None, _error(
                400,
                "Unbounded JQL queries are not allowed here. Please add a search restriction to your query.",
            )
        return query, None

    @staticmethod
    def _fields_arg(req: Request, default: list[str] | None) -> list[str] | None:
        text = req.arg("fields")
        if text is None:
            return default
        names = [f.strip() for f in text.split(",") if f.strip()]
        return None if names in (["*all"], ["*navigable"]) else names

    def _token(self, query: Query, after: tuple[int, int]) -> str:
        digest = hashlib.sha1(query.where.encode()).hexdigest()[:10]
        raw = json.dumps({"q": digest, "a": list(after), "e": self.token_epoch}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _untoken(self, query: Query, token: str) -> tuple[int, int] | None:
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except ValueError:
            return None
        digest = hashlib.sha1(query.where.encode()).hexdigest()[:10]
        if data.get("q") != digest or data.get("e") != self.token_epoch:
            return None
        return tuple(data["a"])

    def _page_size(self, req: Request, fields: list[str] | None, expand: bool) -> int:
        cap = self.id_page_cap if fields == ["id"] and not expand else self.page_cap
        return max(1, min(int(req.arg("maxResults", "50")), cap))

    def _search_request(self, req: Request, default_fields: list[str] | None):
        """``(reply, None)`` for a refused search, else ``(None, (query, fields, expand))``."""
        if self.before_search is not None:
            self.before_search(req)
        denied = self._denied(req)
        if denied is not None:
            return denied, None
        query, error = self._query(req)
        if error is not None:
            return error, None
        expand = "changelog" in (req.arg("expand") or "").split(",")
        return None, (query, self._fields_arg(req, default_fields), expand)

    def _search_cloud(self, req: Request) -> Reply:
        refused, parsed = self._search_request(req, ["id"])
        if refused is not None:
            return refused
        query, fields, expand = parsed
        size = self._page_size(req, fields, expand)
        matches = self._matching(query)
        start = 0
        token = req.arg("nextPageToken")
        if token:
            after = self._untoken(query, token)
            if after is None:
                return _error(400, "The provided next page token is invalid or expired.")
            start = bisect.bisect_right(matches, after)
        page = matches[start : start + size]
        body: dict = {"issues": [self.render(str(n), fields, expand) for _, n in page]}
        last = start + size >= len(matches)
        if not last:
            body["nextPageToken"] = self._token(query, page[-1])
        body["isLast"] = last
        return Reply(200, body)

    def _search_datacenter(self, req: Request) -> Reply:
        refused, parsed = self._search_request(req, None)
        if refused is not None:
            return refused
        query, fields, expand = parsed
        size = min(
            int(req.arg("maxResults", "50")), 1000 if fields == ["id"] and not expand else self.page_cap
        )
        start = int(req.arg("startAt", "0"))
        matches = self._matching(query)
        page = matches[start : start + size]
        return Reply(
            200,
            {
                "expand": "schema,names",
                "startAt": start,
                "maxResults": size,
                "total": len(matches),
                "issues": [self.render(str(n), fields, expand) for _, n in page],
            },
        )

    def _issue(self, req: Request) -> Reply:
        """``/issue/{key}/changelog`` (Cloud) or ``/issue/{key}?expand=changelog`` (both)."""
        denied = self._denied(req)
        if denied is not None:
            return denied
        parts = req.path.split("/")  # '', rest, api, v, issue, key[, changelog]
        issue_id = self.keys.get(parts[5]) or (parts[5] if parts[5] in self.issues else None)
        if issue_id is None:
            return _error(404, "Issue does not exist or you do not have permission to see it.")
        hist = self.histories[issue_id]
        if len(parts) == 7 and parts[6] == "changelog" and self.deployment == CLOUD:
            start = int(req.arg("startAt", "0"))
            size = max(1, min(int(req.arg("maxResults", "100")), 100))
            values = hist[start : start + size]
            return Reply(
                200,
                {
                    "self": f"{SITE}{req.path}?maxResults={size}&startAt={start}",
                    "maxResults": size,
                    "startAt": start,
                    "total": len(hist),
                    "isLast": start + size >= len(hist),
                    "values": values,
                },
            )
        if len(parts) != 6:
            return _error(404, "Not found")
        fields = self._fields_arg(req, None)
        out = self.render(issue_id, fields, False)
        if "changelog" in (req.arg("expand") or "").split(","):
            out["changelog"] = {
                "startAt": 0,
                "maxResults": len(hist),
                "total": len(hist),
                "histories": list(hist),
            }
        return Reply(200, out)

    def _server_info(self, req: Request) -> Reply:
        """``/serverInfo``: anonymous unless the site wants auth. Cloud's example in swagger-v3 (plus
        the ``displayUrl`` Cloud adds); Data Center's as its v2 reference shows, ``databaseBuildNumber``
        included. ``serverTitle`` is the site's name; ``baseUrl`` where it is served."""
        if self.server_info_auth:
            denied = self._denied(req)
            if denied is not None:
                return denied
        self.clock += 1.0
        body = {
            "baseUrl": self.url,
            "deploymentType": self.deployment_type,
            "serverTime": self.when(self.clock),
            "serverTitle": "Acme Jira",
        }
        if self.deployment == CLOUD:
            body |= {
                "displayUrl": self.url,
                "version": "1001.0.0-SNAPSHOT",
                "versionNumbers": [1001, 0, 0],
                "buildNumber": 100287,
                "buildDate": "2026-01-29T00:00:00.000+0000",
                "scmInfo": "a7c0e4d4e6b9b3b1b6d1d8f6e0bd2d3c1b2a0f9e",
            }
        else:
            body |= {
                "version": "9.12.15",
                "versionNumbers": [9, 12, 15],
                "buildNumber": 9120015,
                "buildDate": "2024-10-01T00:00:00.000+0000",
                "databaseBuildNumber": 9120015,
                "scmInfo": "2c0a6e3e0bf2d3f1c9a4e5b6d7c8e9f0a1b2c3d4",
            }
        return Reply(200, body)

    def _fields(self, req: Request) -> Reply:
        denied = self._denied(req)
        if denied is not None:
            return denied

        def custom(fid: str, name: str, schema: dict) -> dict:
            return {
                "id": fid,
                "key": fid,
                "name": name,
                "custom": True,
                "orderable": True,
                "navigable": True,
                "searchable": True,
                "clauseNames": [f"cf[{fid.rsplit('_', 1)[1]}]", name],
                "schema": {**schema, "customId": int(fid.rsplit("_", 1)[1])},
            }

        system = [
            {"id": f, "key": f, "name": f.title(), "custom": False, "schema": {"type": t, "system": f}}
            for f, t in (("summary", "string"), ("status", "status"), ("updated", "datetime"))
        ]
        return Reply(
            200,
            system
            + [
                custom(
                    POINTS_FIELD,
                    "Story point estimate",
                    {"type": "number", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:float"},
                ),
                custom(
                    SPRINT_FIELD,
                    "Sprint",
                    {"type": "array", "items": "json", "custom": "com.pyxis.greenhopper.jira:gh-sprint"},
                ),
                custom(
                    FLAG_FIELD,
                    "Flagged",
                    {
                        "type": "array",
                        "items": "option",
                        "custom": "com.atlassian.jira.plugin.system.customfieldtypes:multicheckboxes",
                    },
                ),
            ],
        )

    def _sprints(self, req: Request) -> Reply:
        denied = self._denied(req)
        if denied is not None:
            return denied
        m = re.match(r"^/rest/agile/1\.0/board/(\d+)/sprint$", req.path)
        if not m or m.group(1) not in self.boards:
            return _error(
                404,
                "The requested board cannot be viewed because it either does not exist or you do not have permission to view it.",
            )
        states = set((req.arg("state") or "future,active,closed").split(","))
        sprints = [s for s in self.boards[m.group(1)] if s["state"] in states]
        start = int(req.arg("startAt", "0"))
        size = max(1, min(int(req.arg("maxResults", "50")), 50))
        values = sprints[start : start + size]
        return Reply(
            200,
            {"maxResults": size, "startAt": start, "isLast": start + size >= len(sprints), "values": values},
        )


def _agile_time(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _sprint_ids(value) -> list[str]:
    out = []
    for entry in value or []:
        if isinstance(entry, dict):
            out.append(str(entry["id"]))
        else:
            m = re.search(r"\[id=(\d+)", str(entry))
            if m:
                out.append(m.group(1))
    return out
