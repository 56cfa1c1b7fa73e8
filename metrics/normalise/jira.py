"""Jira Cloud payloads -> ``work_items``, ``transitions``, ``flags``, ``sprints``, ``sprint_events``.

An issue's child rows (transitions, flags, sprint events) are derived from its whole changelog and
replaced wholesale, so normalising the same issue twice leaves the same rows. Statuses are stored as
the tool names them (with ids): mapping to stages happens at computation time.
"""

from __future__ import annotations

import json
import re

from metrics.store.raw import replace_children, upsert
from metrics.store.statuses import status_code
from metrics.timeutil import parse_instant

DEFAULT_SPRINT_FIELD = "customfield_10020"  # Jira Cloud's usual id; found by shape when it differs
# Data Center (REST v2) renders a sprint field value as the Java object's string, not as JSON:
# "com.atlassian.greenhopper.service.sprint.Sprint@1a2b3c[id=12,rapidViewId=3,state=CLOSED,name=...]".
DC_SPRINT_PREFIX = "com.atlassian.greenhopper.service.sprint.Sprint"
_DC_SPRINT_ID = re.compile(r"\[id=(\d+)[,\]]")


def _sprint_id(value) -> str | None:
    """A sprint field entry's id: Cloud's object ``{"id": 12, ...}`` or Data Center's string."""
    if isinstance(value, dict):
        return str(value["id"]) if value.get("id") is not None else None
    if isinstance(value, str):
        match = _DC_SPRINT_ID.search(value)
        return match.group(1) if match else None
    return None


def _looks_like_sprints(value) -> bool:
    if not isinstance(value, list) or not value:
        return False
    first = value[0]
    if isinstance(first, dict):
        return "boardId" in first and "state" in first
    return isinstance(first, str) and first.startswith(DC_SPRINT_PREFIX)


def _sprint_field(fields: dict, options: dict) -> str | None:
    """The sprint custom field: configured, else the usual id, else the field whose value looks like
    sprints (a list of objects with ``boardId`` and ``state``, or Data Center's sprint strings)."""
    configured = options.get("sprint_field")
    if configured:
        return configured
    if DEFAULT_SPRINT_FIELD in fields:
        return DEFAULT_SPRINT_FIELD
    for name, value in fields.items():
        if name.startswith("customfield_") and _looks_like_sprints(value):
            return name
    return None


def _ids(text: str | None) -> list[str]:
    """A Sprint field change's ``from``/``to``: comma-separated sprint ids (``"12, 13"``)."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _history_key(history: dict) -> tuple[float, int]:
    return (parse_instant(history.get("created")) or 0.0, _int(history.get("id")))


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def issue_rows(payload: dict, source: str, options: dict) -> dict:
    """The rows one issue yields: ``{"work_item": row, "transitions": [...], "flags": [...],
    "sprint_events": [...]}``.

    Choices: a history's items are numbered in changelog order (``seq = history id * 100 + index``,
    so ties on ``created`` keep that order); an issue created already in a sprint or flagged (the first
    change's ``from`` is set, or with no change the current sprint field is set) starts so at
    ``created``; a flag still on has ``end`` = None.
    """
    fields = payload.get("fields") or {}
    key = payload["key"]
    project = (fields.get("project") or {}).get("key") or key.rsplit("-", 1)[0]
    created = parse_instant(fields.get("created"))
    status = fields.get("status") or {}
    sprint_field = _sprint_field(fields, options)
    flag_field = options.get("flag_field")  # "Flagged" is matched by name unless the site's id is given
    histories = sorted((payload.get("changelog") or {}).get("histories") or [], key=_history_key)

    transitions, sprint_changes, flag_changes = [], [], []
    for history in histories:
        at = parse_instant(history.get("created"))
        base = _int(history.get("id")) * 100
        for index, change in enumerate(history.get("items") or []):
            field = change.get("field")
            field_id = change.get("fieldId")
            if field == "status" or field_id == "status":
                transitions.append(
                    {
                        "source": source,
                        "key": key,
                        "project": project,
                        "seq": base + index,
                        "at": at,
                        "from_status": change.get("fromString"),
                        "from_id": change.get("from"),
                        "to_status": change.get("toString"),
                        "to_id": change.get("to"),
                    }
                )
            elif field == "Sprint" or (sprint_field is not None and field_id == sprint_field):
                sprint_changes.append((at, change))
            elif field == "Flagged" or (flag_field is not None and field_id == flag_field):
                flag_changes.append((at, change))

    last_move = max((t["at"] for t in transitions), default=None)
    current_sprints = [i for i in map(_sprint_id, fields.get(sprint_field) or []) if i is not None]
    points_field = options.get("points_field")
    points = fields.get(points_field) if points_field else None
    work_item = {
        "source": source,
        "key": key,
        "project": project,
        "type": (fields.get("issuetype") or {}).get("name"),
        "summary": fields.get("summary"),
        "url": f"{str(options.get('url') or '').rstrip('/')}/browse/{key}",
        "status": status.get("name"),
        "status_id": str(status["id"]) if status.get("id") is not None else None,
        "resolution": (fields.get("resolution") or {}).get("name"),
        "created": created,
        "resolved": parse_instant(fields.get("resolutiondate")),
        "updated": max(created, last_move) if last_move is not None else created,
        "labels": json.dumps(list(fields.get("labels") or [])),
        "components": json.dumps([c.get("name") for c in fields.get("components") or []]),
        "sprints": json.dumps(current_sprints),
        "points": float(points) if isinstance(points, int | float) else None,
        "deleted": 0,
    }

    events = []
    initial = _ids(sprint_changes[0][1].get("from")) if sprint_changes else current_sprints
    for sprint_id in initial:
        events.append({"sprint_id": sprint_id, "at": created, "change": "add"})
    for at, change in sprint_changes:
        before, after = _ids(change.get("from")), _ids(change.get("to"))
        events += [{"sprint_id": s, "at": at, "change": "add"} for s in after if s not in before]
        events += [{"sprint_id": s, "at": at, "change": "remove"} for s in before if s not in after]
    sprint_events = [{"source": source, "key": key} | e for e in events]

    flags: list[dict] = []
    on: float | None = None
    if flag_changes and flag_changes[0][1].get("fromString"):
        on = created
    for at, change in flag_changes:
        flagged = bool(change.get("toString"))
        if flagged and on is None:
            on = at
        elif not flagged and on is not None:
            flags.append({"source": source, "key": key, "start": on, "end": at})
            on = None
    if on is not None:
        flags.append({"source": source, "key": key, "start": on, "end": None})

    return {
        "work_item": work_item,
        "transitions": transitions,
        "flags": flags,
        "sprint_events": sprint_events,
    }


def coded(db, transition: dict) -> dict:
    """A transition row as stored: the status names and ids replaced by their codes."""
    t = dict(transition)
    src = t["source"]
    t["from_code"] = status_code(db, src, t.pop("from_id"), t.pop("from_status"))
    t["to_code"] = status_code(db, src, t.pop("to_id"), t.pop("to_status"))
    return t


def normalise_issue(db, source: str, payload: dict, options: dict, external_id: str | None = None) -> None:
    """One issue (search/jql object with ``changelog`` expanded and complete) into the store."""
    rows = issue_rows(payload, source, options)
    upsert(db, "work_items", rows["work_item"], ("source", "key"))
    where = {"source": source, "key": rows["work_item"]["key"]}
    replace_children(db, "transitions", where, [coded(db, t) for t in rows["transitions"]])
    replace_children(db, "flags", where, rows["flags"])
    replace_children(db, "sprint_events", where, rows["sprint_events"])


def sprint_row(payload: dict, source: str) -> dict:
    """An Agile API sprint object (``/rest/agile/1.0/board/{id}/sprint``) as a ``sprints`` row."""
    board = payload.get("originBoardId")
    return {
        "source": source,
        "id": str(payload["id"]),
        "board": str(board) if board is not None else None,
        "name": payload.get("name"),
        "state": payload.get("state"),
        "start": parse_instant(payload.get("startDate")),
        "end": parse_instant(payload.get("endDate")),
        "complete": parse_instant(payload.get("completeDate")),
    }


def normalise_sprint(db, source: str, payload: dict, options: dict, external_id: str | None = None) -> None:
    upsert(db, "sprints", sprint_row(payload, source), ("source", "id"))


NORMALISERS = {"issue": normalise_issue, "sprint": normalise_sprint}
ORDER = ["sprint", "issue"]
