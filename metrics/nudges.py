"""What deserves a nudge between digests, and what was nudged already.

Three kinds, each one a team can switch off (``Team.nudges``):

- ``target``: judged on the same window as the digest and every other surface (``digest_window``: the
  last ``period_days`` complete local days), never a running window of its own, so the figure a nudge
  quotes is the one ``/vsm <metric>`` shows that day. A note when the period the last digest reported
  missed a target; else a heads-up when the period as it stands now (what a digest sent today would
  report) misses one, before the next digest closes it. Said once per digest period. Never on a
  figure nobody could know (no source in the team's scope, never synced: ``metrics.catalogue.base``'s
  rule): that is a sync problem to fix, not a miss to blame the team for. A known zero (a synced
  scope where nothing was finished) is a miss like any other.
- ``stale-prs``: open, ready pull requests with no review for longer than ``stale_pr_hours``, by title.
- ``aging-items``: committed work items older than the team's p85 cycle time (``aging-wip``'s flags),
  by title and the status the team wrote in its workflow mapping ("In Progress"), never a stage id.

A nudge names work items and pull requests with their links, never people: the question is for the
team. The same item is not named again within ``nudge_repeat_hours`` (``nudge_log``), and nothing is
said while the team has snoozed nudges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlite_utils

from metrics.behind import status_label
from metrics.catalogue import CATALOGUE
from metrics.catalogue.pull_requests import stale_prs
from metrics.dataset import TeamData
from metrics.digest import digest_window
from metrics.store.tx import transaction
from metrics.targets import headline, target_status
from metrics.teams import DAYS, NUDGE_KINDS, Team
from metrics.timeutil import days_ending_today, parse_instant
from metrics.workspace import SINGLE, Workspace

MAX_ITEMS = 10  # items named in one nudge; the rest are counted


@dataclass
class Nudge:
    """One message's worth: a kind, what it says, and the items it names (subject -> item)."""

    kind: str
    period: str  # with team and kind, the delivery key: at most one such message per period
    headline: str
    items: list[dict] = field(default_factory=list)  # {"subject", "key", "title", "url", "detail"}
    more: int = 0  # items left out of the message (over MAX_ITEMS)


def last_digest_day(team: Team, today: date) -> date:
    """The most recent local date (today included) that is the team's digest day."""
    return last_weekday(today, str(team.digest.get("day", "mon")))


def last_weekday(today: date, day: str) -> date:
    """The most recent date (``today`` included) that falls on ``day`` (``mon`` … ``sun``): where a
    weekly digest cycle began, the team's or the org's."""
    want = DAYS.index(day.lower()[:3])
    return today - timedelta(days=(today.weekday() - want) % 7)


def snoozed(team: Team, now: datetime) -> bool:
    until = parse_instant(team.snooze_until) if team.snooze_until else None
    return until is not None and now.timestamp() < until


def recently_nudged(
    db: sqlite_utils.Database, team: Team, kind: str, now: float, *, ws: Workspace = SINGLE
) -> set[str]:
    """Subjects of ``kind`` named to the team (of workspace ``ws``) within its repeat interval."""
    since = now - team.nudge_repeat_hours * 3600
    return {
        r[0]
        for r in db.execute(
            "select subject from nudge_log where workspace = ? and team = ? and kind = ? and sent > ?",
            [ws, team.name, kind, since],
        )
    }


def record_nudged(
    db: sqlite_utils.Database, team: Team, nudge: Nudge, at: float, *, ws: Workspace = SINGLE
) -> None:
    """Remember every item a delivered nudge named (also the ones counted in ``more``), for the team
    of workspace ``ws``: a team of the same name in another workspace is nudged on its own."""
    with transaction(db):
        db.conn.executemany(
            "insert or replace into nudge_log (workspace, team, kind, subject, sent) values (?, ?, ?, ?, ?)",
            [(ws, team.name, nudge.kind, i["subject"], at) for i in nudge.items],
        )


def find_nudges(
    db: sqlite_utils.Database, team: Team, now: datetime, *, ws: Workspace = SINGLE
) -> list[Nudge]:
    """Every nudge the team (of workspace ``ws``) should get now (none while snoozed), minus items
    named recently."""
    if snoozed(team, now):
        return []
    data = TeamData(db, team, now)
    today = now.astimezone(team.tz).date()
    finders = {"target": _target, "stale-prs": _stale_prs, "aging-items": _aging}
    out = []
    for kind in NUDGE_KINDS:
        if kind not in team.nudges:
            continue
        recent = recently_nudged(db, team, kind, now.timestamp(), ws=ws)
        for nudge in finders[kind](data, team, now, today):
            fresh = [i for i in nudge.items if i["subject"] not in recent]
            if not fresh:
                continue
            nudge.more = max(0, len(fresh) - MAX_ITEMS)
            nudge.items = fresh
            out.append(nudge)
    return out


def _target(data: TeamData, team: Team, now: datetime, today: date) -> list[Nudge]:
    """Targets judged on digest periods only. ``closed`` is the period the last digest reported (a
    miss there is a note of what happened); ``current`` is the digest period as of today, the window
    every surface shows now: a miss there, while the last digest's period met the target, is the
    heads-up that the next digest will report a miss unless the coming days change it. On the digest
    day the two are one window, and only the note is said."""
    period = last_digest_day(team, today)
    current = digest_window(team, now)
    closed = digest_window(team, datetime.combine(period, datetime.min.time(), team.tz))
    checks = (
        ("missed", closed, f"missed its target in {closed.label()}"),
        ("at-risk", current, f"misses its target in {current.label()}, ahead of the next digest"),
    )
    items = []
    for mid, target in sorted(team.targets.items()):
        metric = CATALOGUE.get(mid)
        if metric is None:
            continue
        for state, window, title in checks:
            value = metric.compute(data, window).value  # None when unknown: never judged
            if target_status(metric, value, target) == "missed":
                items.append(
                    {
                        "subject": f"{mid}:{state}:{period.isoformat()}",
                        "key": metric.name,
                        "title": title,
                        "url": "",
                        "detail": {"metric": mid, "value": headline(metric, value), "target": target},
                    }
                )
                break
    if not items:
        return []
    return [Nudge("target", period.isoformat(), "Targets to watch", items)]


def _stale_prs(data: TeamData, team: Team, now: datetime, today: date) -> list[Nudge]:
    prs = stale_prs(data, now.timestamp())
    items = [
        {
            "subject": p["key"],
            "key": p["key"],
            "title": p.get("title") or "",
            "url": p.get("url") or "",
            "detail": {"hours_waiting": p["hours_waiting"]},
        }
        for p in prs
    ]
    if not items:
        return []
    hours = int(team.stale_pr_hours)
    return [
        Nudge(
            "stale-prs", today.isoformat(), f"Pull requests waiting over {hours} h for a first review", items
        )
    ]


def _aging(data: TeamData, team: Team, now: datetime, today: date) -> list[Nudge]:
    # aging-wip's items are as of min(window end, now): a window ending after now reads "now".
    window = days_ending_today(7, team.tz, now)
    result = CATALOGUE["aging-wip"].compute(data, window)
    p85 = result.extra.get("p85_hours")
    by_key = {it.key: it for it in data.items(data.now)}  # the open items, from the same cached load
    items = []
    for i in result.items:
        if not i["flagged"]:
            continue
        it = by_key.get(i["key"])
        status = status_label(data.workflow, it) if it is not None else (i.get("stage") or "")
        items.append(
            {
                "subject": i["key"],
                "key": i["key"],
                "title": it.summary if it is not None else "",
                "url": i.get("url") or "",
                "detail": {"age_hours": i["age_hours"], "p85_hours": p85, "status": status},
            }
        )
    if not items:
        return []
    return [
        Nudge("aging-items", today.isoformat(), "Work items older than your usual cycle time (p85)", items)
    ]
