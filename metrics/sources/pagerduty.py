"""PagerDuty incidents (REST API v2) -> raw ``incident`` payloads -> the ``incidents`` table.

One stream, ``incidents``, for all the configured services at once (``service_ids[]`` takes a list).

Why the cursor is not just "largest ``updated_at``": ``GET /incidents`` filters ``since``/``until`` on
the incident's *creation*, and an incident changes long after it was created (acknowledged, resolved
days later). So the state remembers the incidents still open, and every sync re-reads them:

- ``cursor``: the instant up to which creations have been listed (the ``until`` of the last complete
  pass). The next pass lists from ``cursor - OVERLAP`` (the list is eventually consistent, and
  duplicates are harmless upserts).
- ``open``: ``{id: created_at}`` of incidents last seen triggered or acknowledged. Those created before
  the next pass's start are re-read one by one (``GET /incidents/{id}``); the others fall inside the
  listed range and are refreshed by the listing itself. A resolution is picked up either way.
- ``pass``: the pass in progress, ``{start, until, since, offset, recheck}``; saved after every page
  and every re-read, so an interrupted sync resumes at the page where it stopped (offsets are stable:
  the list is sorted by ``created_at`` ascending and ``until`` is fixed when the pass starts).
- ``services``: the service ids the cursor is for; a changed list starts over from ``history_days``.

Ranges: at most ``WINDOW`` (30 days) per query, well inside the API's 6-month limit, and a window that
pages past ``max_offset`` is re-anchored at the last ``created_at`` read: narrow windows, not deep
offsets (the API refuses offsets past 10,000).

Deletions: the REST API has no way to delete an incident (merged incidents are resolved, not removed),
so there is no id listing to reconcile: stored incidents are kept. An open incident that answers 404
when re-read (its service was deleted, or the token lost access) leaves the open set and its row stays
as last seen.
"""

from __future__ import annotations

from metrics.sources.base import Connector
from metrics.sources.http import Http, SourceError
from metrics.timeutil import iso, parse_instant

STREAM = "incidents"
DEFAULT_URL = "https://api.pagerduty.com"
ACCEPT = "application/vnd.pagerduty+json;version=2"
WINDOW = 30 * 86400  # seconds per listing query; the API allows at most 6 months
OVERLAP = 15 * 60  # seconds re-listed before the cursor (>= 5 min)
LIMIT = 100  # the API's maximum page size


class PagerDutyConnector(Connector):
    """Incidents of the configured PagerDuty services (``services`` = service ids; all when empty)."""

    kind = "pagerduty"
    max_offset = 2000  # re-anchor a window before paging deeper than this

    @staticmethod
    def make_http(source: dict, token: str) -> Http:
        """API-key auth (``Token token=``) and the pinned v2 media type."""
        return Http(
            source.get("url") or DEFAULT_URL,
            {"Authorization": f"Token token={token}", "Accept": ACCEPT},
        )

    def streams(self) -> list[str]:
        return [STREAM]

    # -- the stream ----------------------------------------------------------------------------------
    def sync(self, stream: str, state: dict) -> dict:
        """Finish a pass left unfinished, then list creations up to now and re-read open incidents."""
        state = self._fresh_state(state)
        if "pass" in state:
            state = self._run_pass(state)
        if state["cursor"] is None or parse_instant(state["cursor"]) < int(self.ctx.now):
            state = self._run_pass(self._start_pass(state))
        return state

    def _fresh_state(self, state: dict) -> dict:
        """The saved state, or a first-sync one when there is none or the service list changed."""
        services = self._services()
        if not state or state.get("services") != services:
            return {"services": services, "cursor": None, "open": dict(state.get("open") or {})}
        return {**state, "open": dict(state.get("open") or {})}

    def _services(self) -> list[str]:
        return sorted(str(s) for s in self.ctx.source.get("services") or [])

    def _start_pass(self, state: dict) -> dict:
        """A new pass from ``cursor - OVERLAP`` (or ``history_days`` back) to now."""
        start = int(self.ctx.history_start)  # whole seconds: the API's own precision
        if state["cursor"] is not None:
            start = max(start, parse_instant(state["cursor"]) - OVERLAP)
        recheck = sorted(
            (i for i, created in state["open"].items() if (parse_instant(created) or 0) < start),
            key=lambda i: (state["open"][i], i),
        )
        until = iso(int(self.ctx.now))
        current = {"start": iso(start), "until": until, "since": iso(start), "offset": 0, "recheck": recheck}
        state = {**state, "pass": current}
        self.ctx.checkpoint(STREAM, state)
        return state

    def _run_pass(self, state: dict) -> dict:
        state = self._recheck_open(state)
        while parse_instant(state["pass"]["since"]) < parse_instant(state["pass"]["until"]):
            state = self._list_page(state)
        done = {k: v for k, v in state.items() if k != "pass"}
        done["cursor"] = state["pass"]["until"]
        return done

    # -- open incidents created before the pass: one GET each ----------------------------------------
    def _recheck_open(self, state: dict) -> dict:
        """Re-read each open incident the listing will not cover, so a resolution is picked up."""
        while state["pass"]["recheck"]:
            incident_id, *rest = state["pass"]["recheck"]
            open_ = dict(state["open"])
            try:
                page = self.ctx.http.get(f"incidents/{incident_id}")
            except SourceError as exc:
                if exc.status != 404:
                    raise
                open_.pop(incident_id, None)  # gone from the API: keep the row as last seen
            else:
                incident = (page.data or {}).get("incident") if isinstance(page.data, dict) else None
                if not isinstance(incident, dict) or "id" not in incident:
                    raise SourceError(f"GET /incidents/{incident_id}: no incident in the response")
                self._store(incident, open_)
            state = {**state, "open": open_, "pass": {**state["pass"], "recheck": rest}}
            self.ctx.checkpoint(STREAM, state)
        return state

    # -- listing creations, window by window ---------------------------------------------------------
    def _list_page(self, state: dict) -> dict:
        """Read one page of the current window, store it, and move the position on; checkpointed."""
        current = state["pass"]
        since = parse_instant(current["since"])
        end = min(since + WINDOW, parse_instant(current["until"]))
        offset = int(current["offset"])
        data = self._get_incidents(since, end, offset)
        incidents = data["incidents"]
        open_ = dict(state["open"])
        for incident in incidents:
            self._store(incident, open_)
        if data.get("more") and incidents:
            position = self._next_position(since, offset, incidents)
        else:
            position = {"since": iso(end), "offset": 0}
        state = {**state, "open": open_, "pass": {**current, **position}}
        self.ctx.checkpoint(STREAM, state)
        return state

    def _next_position(self, since: float, offset: int, incidents: list[dict]) -> dict:
        """Page on by offset, or re-anchor the window at the last creation read once it gets deep.

        Sorted by creation, everything created before the last incident read is stored, so the window
        can restart there at offset 0 (incidents sharing that instant are read again: harmless).
        """
        offset += len(incidents)
        last = parse_instant(incidents[-1].get("created_at"))
        if offset + LIMIT > self.max_offset and last is not None and last > since:
            return {"since": iso(last), "offset": 0}
        return {"since": iso(since), "offset": offset}

    def _get_incidents(self, since: float, until: float, offset: int) -> dict:
        params: dict = {
            "since": iso(since),
            "until": iso(until),
            "sort_by": "created_at:asc",
            "time_zone": "UTC",
            "limit": LIMIT,
            "offset": offset,
        }
        services = self._services()
        if services:
            params["service_ids[]"] = services
        page = self.ctx.http.get("incidents", params)
        data = page.data if page is not None else None
        if not isinstance(data, dict) or not isinstance(data.get("incidents"), list):
            raise SourceError("GET /incidents: the response has no incidents list")
        return data

    def _store(self, incident: dict, open_: dict) -> None:
        """Upsert one incident and keep the open set in step with its status."""
        incident_id = str(incident["id"])
        updated = (
            incident.get("updated_at") or incident.get("last_status_change_at") or incident.get("created_at")
        )
        self.ctx.ingest(STREAM, "incident", incident_id, updated, incident)
        if incident.get("status") == "resolved":
            open_.pop(incident_id, None)
        else:
            open_[incident_id] = iso(parse_instant(incident.get("created_at")) or self.ctx.now)


CONNECTOR = PagerDutyConnector
