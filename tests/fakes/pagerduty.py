"""A loopback PagerDuty REST API v2: ``GET /incidents`` and ``GET /incidents/{id}``.

Payloads follow the incident example of PagerDuty's OpenAPI description (PagerDuty/api-schema,
``reference/REST/openapiv3.json``): ids like ``PT4KHLK``, ``service`` / ``escalation_policy`` references,
``assignments``, ``acknowledgements``, ``alert_counts``. The listing behaves as the API documents: it
filters ``since <= created_at < until``, refuses ranges over 6 months and offsets past 10,000, caps
``limit`` at 100, and answers ``incidents``, ``limit``, ``offset``, ``more``, ``total`` (null). Where the
real API would silently read a time without a zone in the account's zone, the fake refuses it, so a
connector that forgets the ``Z`` fails loudly in tests.

``outage`` (a predicate on the request) answers 500 while it holds: a sync interrupted mid-way.
``arm(after, *faults)`` queues transport faults (``fakes.server.Fault``) for the listing once ``after``
more listing requests have been answered, so a fault can hit a page in the middle of a sync.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fakes.server import FakeApi, FakeServer, Fault, Reply, Request

ACCEPT = "application/vnd.pagerduty+json;version=2"
MAX_OFFSET = 10_000
WEB = "https://acme.pagerduty.com"
API = "https://api.pagerduty.com"


def when(value: str | float) -> str:
    """``"2026-01-05 09:00"`` (UTC) or epoch seconds -> PagerDuty's ``2026-01-05T09:00:00Z``."""
    if isinstance(value, int | float):
        dt = datetime.fromtimestamp(value, UTC)
    else:
        dt = datetime.fromisoformat(value)
        dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ref(kind: str, id_: str, summary: str, path: str) -> dict:
    return {
        "id": id_,
        "type": f"{kind}_reference",
        "summary": summary,
        "self": f"{API}/{path}/{id_}",
        "html_url": f"{WEB}/{path}/{id_}",
    }


def _id(n: int) -> str:
    """A seven-character PagerDuty-style id, deterministic per incident number."""
    alphabet = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    out = ""
    x = n * 7919 + 104729
    for _ in range(6):
        x, r = divmod(x, len(alphabet))
        out += alphabet[r]
    return "Q" + out


def _error(status: int, message: str, code: int, *errors: str) -> Reply:
    body: dict = {"error": {"message": message, "code": code}}
    if errors:
        body["error"]["errors"] = list(errors)
    return Reply(status, body)


def _instant(text: str | None) -> datetime | None:
    """A ``since``/``until`` value; None when missing; ValueError when it has no zone."""
    if not text:
        return None
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError("no time zone")
    return dt.astimezone(UTC)


def _six_months_after(dt: datetime) -> datetime:
    month = dt.month + 6
    year = dt.year + (month - 1) // 12
    month = (month - 1) % 12 + 1
    day = dt.day
    while True:
        try:
            return dt.replace(year=year, month=month, day=day)
        except ValueError:  # 31 Aug + 6 months -> 28/29 Feb
            day -= 1


class FakePagerDuty(FakeApi):
    """Incidents in memory, served over real HTTP; ``add``/``acknowledge``/``resolve`` change them."""

    def __init__(self, token: str, server: FakeServer | None = None) -> None:
        self.token = token
        super().__init__(server)
        self.incidents: dict[str, dict] = {}
        self.outage: Callable[[Request], bool] | None = None
        self.server.route("GET", "/incidents", self._list)
        self.server.route("GET", "/incidents/*", self._one)

    def arm_listing(self, after: int, *faults: Fault) -> None:
        """Queue ``faults`` on ``/incidents`` once ``after`` more listing requests have been answered."""
        self.server.arm("/incidents", after, *faults)

    # -- data ----------------------------------------------------------------------------------------
    def add(
        self,
        created: str | float,
        resolved: str | float | None = None,
        *,
        service: str = "PIJ90N7",
        title: str | None = None,
        urgency: str = "high",
    ) -> dict:
        """A triggered incident (resolved at ``resolved`` if given), as ``GET /incidents`` shows it."""
        number = 1000 + len(self.incidents) + 1
        id_ = _id(number)
        at = when(created)
        incident = {
            "id": id_,
            "type": "incident",
            "summary": f"[#{number}] {title or 'The server is on fire.'}",
            "self": f"{API}/incidents/{id_}",
            "html_url": f"{WEB}/incidents/{id_}",
            "incident_number": number,
            "title": title or "The server is on fire.",
            "description": title or "The server is on fire.",
            "created_at": at,
            "updated_at": at,
            "status": "triggered",
            "incident_key": f"baf7cf21b1da41b4b0221008339f{number:04x}",
            "service": _ref("service", service, "My Mail Service", "services"),
            "assignments": [
                {"at": at, "assignee": _ref("user", "PXPGF42", "Earline Greenholt", "users")},
            ],
            "assigned_via": "escalation_policy",
            "last_status_change_at": at,
            "resolved_at": None,
            "first_trigger_log_entry": _ref(
                "trigger_log_entry", "Q02JTSNZWHSEKV", "Triggered", "log_entries"
            ),
            "alert_counts": {"all": 1, "triggered": 1, "resolved": 0},
            "is_mergeable": True,
            "escalation_policy": _ref(
                "escalation_policy", "PT20YPA", "Another Escalation Policy", "escalation_policies"
            ),
            "teams": [_ref("team", "PQ9K7I8", "Engineering", "teams")],
            "pending_actions": [],
            "acknowledgements": [],
            "basic_alert_grouping": None,
            "alert_grouping": None,
            "last_status_change_by": _ref("service", service, "My Mail Service", "services"),
            "priority": {
                "id": "P53ZZH5",
                "type": "priority_reference",
                "summary": "P2",
                "self": f"{API}/priorities/P53ZZH5",
            },
            "resolve_reason": None,
            "incidents_responders": [],
            "responder_requests": [],
            "subscriber_requests": [],
            "urgency": urgency,
        }
        self.incidents[id_] = incident
        if resolved is not None:
            self.resolve(id_, resolved)
        return incident

    def acknowledge(self, id_: str, at: str | float) -> dict:
        incident = self.incidents[id_]
        t = when(at)
        incident["status"] = "acknowledged"
        incident["acknowledgements"] = [
            {"at": t, "acknowledger": _ref("user", "PXPGF42", "Earline Greenholt", "users")}
        ]
        incident["last_status_change_at"] = incident["updated_at"] = t
        incident["last_status_change_by"] = _ref("user", "PXPGF42", "Earline Greenholt", "users")
        return incident

    def resolve(self, id_: str, at: str | float) -> dict:
        incident = self.incidents[id_]
        t = when(at)
        incident["status"] = "resolved"
        incident["resolved_at"] = incident["last_status_change_at"] = incident["updated_at"] = t
        incident["alert_counts"] = {"all": 1, "triggered": 0, "resolved": 1}
        incident["assignments"] = []
        incident["last_status_change_by"] = _ref("user", "PXPGF42", "Earline Greenholt", "users")
        return incident

    # -- HTTP ----------------------------------------------------------------------------------------
    def _denied(self, req: Request) -> Reply | None:
        if self.outage is not None and self.outage(req):
            return _error(500, "Internal Server Error", 5000)
        if req.headers.get("authorization") != f"Token token={self.token}":
            return _error(401, "Unauthorized", 2006)
        if req.headers.get("accept") != ACCEPT:
            return _error(406, "Not Acceptable", 2001, f"Accept must be {ACCEPT}")
        return None

    def _list(self, req: Request) -> Reply:
        denied = self._denied(req)
        if denied is not None:
            return denied
        try:
            since, until = _instant(req.arg("since")), _instant(req.arg("until"))
        except ValueError:
            return _error(400, "Invalid Input Provided", 2001, "since and until need a time zone")
        now = datetime.now(UTC)
        until = until or now
        since = since or until - timedelta(days=30)  # the API's default range: about a month
        if until < since or _six_months_after(since) < until:
            return _error(400, "Invalid Input Provided", 2001, "Date range must be 6 months or less")
        if req.arg("sort_by", "created_at:asc") != "created_at:asc":
            return _error(400, "Invalid Input Provided", 2001, "the fake sorts by created_at:asc only")
        limit = min(int(req.arg("limit", "25")), 100)
        offset = int(req.arg("offset", "0"))
        if offset + limit > MAX_OFFSET:
            return _error(400, "Invalid Input Provided", 2001, "Offset must be less than 10000")
        services = set(req.query.get("service_ids[]", []))
        matching = sorted(
            (
                i
                for i in self.incidents.values()
                if (not services or i["service"]["id"] in services)
                and since <= datetime.fromisoformat(i["created_at"].replace("Z", "+00:00")) < until
            ),
            key=lambda i: (i["created_at"], i["incident_number"]),
        )
        page = matching[offset : offset + limit]
        return Reply(
            200,
            {
                "incidents": page,
                "limit": limit,
                "offset": offset,
                "more": offset + limit < len(matching),
                "total": None,
            },
        )

    def _one(self, req: Request) -> Reply:
        denied = self._denied(req)
        if denied is not None:
            return denied
        incident = self.incidents.get(req.path.rsplit("/", 1)[-1])
        if incident is None:
            return _error(404, "Not Found", 2100)
        return Reply(200, {"incident": incident})
