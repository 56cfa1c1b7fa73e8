"""PagerDuty incidents (REST API v2, ``GET /incidents``) -> ``incidents``."""

from __future__ import annotations

from metrics.store.raw import upsert
from metrics.timeutil import parse_instant


def incident_row(payload: dict, source: str) -> dict:
    """``service`` is the PagerDuty service id (what teams list), ``severity`` the urgency.

    A resolved incident without ``resolved_at`` (older payloads) takes ``last_status_change_at``.
    """
    status = payload.get("status")
    resolved = parse_instant(payload.get("resolved_at"))
    if resolved is None and status == "resolved":
        resolved = parse_instant(payload.get("last_status_change_at"))
    return {
        "source": source,
        "id": str(payload["id"]),
        "service": (payload.get("service") or {}).get("id"),
        "title": payload.get("title"),
        "url": payload.get("html_url"),
        "created": parse_instant(payload.get("created_at")),
        "resolved": resolved,
        "severity": payload.get("urgency"),
        "status": status,
    }


def normalise_incident(db, source: str, payload: dict, options: dict, external_id: str | None = None) -> None:
    upsert(db, "incidents", incident_row(payload, source), ("source", "id"))


NORMALISERS = {"incident": normalise_incident}
ORDER = ["incident"]
