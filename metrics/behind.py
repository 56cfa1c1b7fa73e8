"""The work behind a figure: the few items a lead would open first, with their titles and links.

A figure says *that* something is off; a team acts on *which* work. The digest names up to three
items under a signal or a missed target, nudges name items by title and by the status the team wrote
in its workflow mapping, and Explain lists every item with its title and dates. Metrics keep only what
they need to compute (often a key and a URL), so the titles come from the store here, through the same
``TeamData`` loads the figure used (cached: no second read of the store); a Scrum figure's few items
are read by key, since a sprint item may have been done long before the period. Durations read as
``metrics.catalogue.base.duration_text`` shows them, the one copy of the display rule in ``metrics``.

Everything here is team-level: items, pull requests, deployments and incidents, never a person.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from metrics.catalogue import CATALOGUE
from metrics.catalogue.base import Metric, Result, duration_text, one_decimal
from metrics.catalogue.scrum import SprintFigures, SprintMetric
from metrics.dataset import Item, TeamData
from metrics.timeutil import parse_instant
from metrics.workflow import Workflow

MAX_BEHIND = 3  # items named under one figure in a digest

# What a duration's two instants are, per metric: Explain and the digest say "started 3 Nov, done
# 12 Nov" rather than "start"/"end", which mean something else for every metric.
SPAN_WORDS: dict[str, tuple[str, str]] = {
    "cycle-time": ("started", "done"),
    "flow-efficiency": ("started", "done"),
    "lead-time": ("created", "done"),
    "time-to-value": ("created", "delivered"),
    "pr-pickup-time": ("ready", "first review"),
    "pr-review-time": ("first review", "merged"),
    "pr-cycle-time": ("first commit", "merged"),
    "lead-time-for-changes": ("first commit", "deployed"),
    "time-to-restore": ("opened", "restored"),
}


# -- words ----------------------------------------------------------------------------------------------
def age_text(hours: float) -> str:
    """An age as people say it: whole days once it is a day or more ("21 days"), else hours."""
    if hours < 24:
        return f"{one_decimal(hours)} h"
    days = int(hours // 24)
    return f"{days} day{'s' if days != 1 else ''}"


def day_text(when: str | float | None, tz: ZoneInfo, *, clock: bool = False) -> str:
    """``3 Nov`` (``3 Nov 14:05`` with ``clock``) in the team's zone; "" when unknown."""
    ts = parse_instant(when) if isinstance(when, str) else when
    if ts is None:
        return ""
    dt = datetime.fromtimestamp(ts, tz)
    return f"{dt.day} {dt:%b}" + (f" {dt:%H:%M}" if clock else "")


def span_text(metric_id: str, item: dict, tz: ZoneInfo) -> str:
    """``started 3 Nov, done 12 Nov`` for a duration's item; "" when the metric has no such words."""
    words = SPAN_WORDS.get(metric_id)
    if words is None or not item.get("start") or not item.get("end"):
        return ""
    return f"{words[0]} {day_text(item['start'], tz)}, {words[1]} {day_text(item['end'], tz)}"


def status_label(workflow: Workflow, it: Item) -> str:
    """The item's status as the team wrote it in its workflow mapping ("In Progress", not the stage id
    ``in_progress``); the tool's own name for a status the team did not map ("Blocked")."""
    return status_name(workflow, it.status)


def status_name(workflow: Workflow, status: str) -> str:
    """A status as the team wrote it in its workflow mapping, else as the tool names it."""
    current = status.strip().lower()
    for stage in workflow.stages:
        for written in stage.statuses:
            if written.strip().lower() == current:
                return written
    return status


# -- titles from the store ------------------------------------------------------------------------------
class Titles:
    """Title and link of work items, pull requests and incidents by key, from ``TeamData``'s cached
    loads (``start``: the earliest end event of the items to be named)."""

    def __init__(self, data: TeamData, start: float):
        self.data, self.start = data, start
        self._map: dict[str, tuple[str, str]] | None = None
        self._items: dict[str, Item] = {}

    def _build(self) -> dict[str, tuple[str, str]]:
        d, s = self.data, self.start
        out: dict[str, tuple[str, str]] = {}
        for inc in d.incidents(s):
            out[inc.id] = (inc.title, inc.url or "")
        for pr in d.pull_requests(s):
            out[pr.key] = (pr.title, pr.url)
        for it in d.items(s):
            out[it.key] = (it.summary, it.url)
            self._items[it.key] = it
        return out

    def get(self, key: str | None) -> tuple[str, str]:
        if self._map is None:
            self._map = self._build()
        return self._map.get(key or "", ("", ""))

    def status(self, key: str) -> str | None:
        """The work item's current status as the team wrote it (``status_label``), if it is one."""
        self.get(key)
        it = self._items.get(key)
        return status_label(self.data.workflow, it) if it is not None else None


def readable_stage(stage: str | None) -> str:
    """A stage id as words (``in_progress`` -> ``In progress``), for a past instant's stage."""
    return (stage or "").replace("_", " ").capitalize()


def titled(data: TeamData, result: Result) -> list[dict]:
    """The result's items, each with its ``title`` (and ``url`` when it had none) from the store: what
    Explain lists. Items that already carry a title keep it. An open item's stage (WIP, aging WIP)
    reads as its status as the team wrote it when the figure is as of now, else as the stage's words:
    never a stage id. The items a figure lists apart (WIP's ``extra["current_items"]``, the items in
    progress at its end) get their titles too, in place."""
    titles = Titles(data, min(result.window.start, data.now))
    as_of_now = result.window.end >= data.now

    def one(i: dict) -> dict:
        if "stage" in i and i.get("key") and not i.get("status"):
            status = titles.status(i["key"]) if as_of_now else None
            i = i | {"status": status or readable_stage(i["stage"])}
        if i.get("title") or i.get("summary") or not i.get("key"):
            return i
        title, url = titles.get(i["key"])
        return i | {"title": title, "url": i.get("url") or url}

    current = result.extra.get("current_items") if isinstance(result.extra, dict) else None
    if isinstance(current, list):
        result.extra["current_items"] = [one(i) if isinstance(i, dict) else i for i in current]
    return [one(i) for i in result.items]


# -- the digest's "behind" --------------------------------------------------------------------------------
def _entry(key: str, title: str, url: str | None, detail: str) -> dict:
    return {"key": key, "title": title or "", "url": url or "", "detail": detail}


def _behind(heading: str, entries: list[dict]) -> dict | None:
    """What the digest shows under a figure: a heading and the first ``MAX_BEHIND`` entries, or
    None when there is nothing to name."""
    return {"heading": heading, "items": entries[:MAX_BEHIND]} if entries else None


def _slowest(metric: Metric, result: Result, data: TeamData) -> dict | None:
    titles = Titles(data, result.window.start)
    items = sorted(result.items, key=lambda i: (-(i.get("hours") or 0), str(i.get("key"))))
    out = []
    for i in items[:MAX_BEHIND]:
        title, url = (i.get("title"), i.get("url")) if i.get("title") else titles.get(i.get("key"))
        when = span_text(metric.id, i, data.tz)
        out.append(
            _entry(
                i["key"],
                title,
                i.get("url") or url,
                duration_text(i["hours"] * 3600) + (f", {when}" if when else ""),
            )
        )
    heading = {
        "time-to-restore": "Incidents that took longest to restore",
        "pr-cycle-time": "Slowest merged PRs",
        "lead-time-for-changes": "Slowest PRs to production",
        "pr-pickup-time": "Slowest first reviews in the period",
        "pr-review-time": "Slowest from first review to merge",
    }.get(metric.id, "Slowest finished items")
    return _behind(heading, out)


def _least_efficient(metric: Metric, result: Result, data: TeamData) -> dict | None:
    titles = Titles(data, result.window.start)
    items = sorted(result.items, key=lambda i: (i.get("efficiency") or 0, str(i.get("key"))))
    out = []
    for i in items[:MAX_BEHIND]:
        title, url = titles.get(i["key"])
        detail = f"{one_decimal(i['efficiency'])}% active over {duration_text(i['hours'] * 3600)}"
        out.append(_entry(i["key"], title, i.get("url") or url, detail))
    return _behind("Finished items with the least active time", out)


def _oldest_open(metric: Metric, result: Result, data: TeamData) -> dict | None:
    """Committed items still open now, oldest commitment first: what the team can act on today (an
    item open at the period's end but done since needs nobody), with its current status."""
    at = data.now
    open_items = [
        it
        for it in data.items(at)
        if it.flow.committed is not None
        and it.flow.committed <= at
        and (it.flow.done is None or max(it.flow.done, it.flow.committed) > at)
    ]
    open_items.sort(key=lambda it: (it.flow.committed, it.key))
    out = [
        _entry(
            it.key,
            it.summary,
            it.url,
            f"{status_label(data.workflow, it)}, {age_text((at - it.flow.committed) / 3600)}",
        )
        for it in open_items[:MAX_BEHIND]
    ]
    return _behind("Oldest open items", out)


def _open_prs(reviewed: bool) -> Callable[[Metric, Result, TeamData], dict | None]:
    """Open, ready PRs waiting longest: for a first review (``reviewed`` False) or, reviewed, to be
    merged, as of now (what the team can pick up today). None waiting: the slowest of the period."""

    def pick(metric: Metric, result: Result, data: TeamData) -> dict | None:
        at = data.now
        waiting = []
        for pr in data.pull_requests(at):
            if pr.merged is not None or pr.closed is not None or pr.draft or pr.ready_at > at:
                continue
            reviews = [r["submitted"] for r in pr.reviews if r["submitted"] <= at]
            if bool(reviews) != reviewed:
                continue
            since = reviews[0] if reviewed else pr.ready_at
            waiting.append((at - since, pr))
        waiting.sort(key=lambda x: (-x[0], x[1].key))
        if not waiting:
            return _slowest(metric, result, data)
        what = "since the first review" if reviewed else "without a review"
        out = [_entry(pr.key, pr.title, pr.url, f"{duration_text(w)} {what}") for w, pr in waiting]
        heading = (
            "Reviewed PRs waiting longest to merge" if reviewed else "PRs waiting longest for a first review"
        )
        return _behind(heading, out)

    return pick


def _largest_prs(metric: Metric, result: Result, data: TeamData) -> dict | None:
    items = sorted(result.items, key=lambda i: (-(i.get("lines") or 0), str(i.get("key"))))
    out = [
        _entry(
            i["key"],
            i.get("title", ""),
            i.get("url"),
            f"{i['lines']:,} lines (+{i['additions']:,} −{i['deletions']:,}), merged {day_text(i['merged'], data.tz)}",
        )
        for i in items[:MAX_BEHIND]
    ]
    return _behind("Largest merged PRs", out)


def _unreviewed(metric: Metric, result: Result, data: TeamData) -> dict | None:
    items = sorted(
        (i for i in result.items if not i.get("reviewed")), key=lambda i: i["merged"], reverse=True
    )
    out = [
        _entry(i["key"], i.get("title", ""), i.get("url"), f"merged {day_text(i['merged'], data.tz)}")
        for i in items[:MAX_BEHIND]
    ]
    return _behind("PRs merged without a review", out)


def _undeployed(metric: Metric, result: Result, data: TeamData) -> dict | None:
    """Deployment frequency: the merged work waiting longest for a deployment."""
    shipping = CATALOGUE["lead-time-for-changes"].compute(data, result.window)
    out = [
        _entry(
            p["key"],
            p.get("title", ""),
            p.get("url"),
            f"merged {day_text(p['merged'], data.tz)}, not deployed",
        )
        for p in shipping.extra.get("awaiting", [])[:MAX_BEHIND]
    ]
    return _behind("Merged PRs waiting longest for a deployment", out)


def _failed_deployments(metric: Metric, result: Result, data: TeamData) -> dict | None:
    """Change failure rate: the incidents behind the failed deployments, latest deployment first."""
    incidents = {inc.id: inc for inc in data.incidents(result.window.start)}
    failed = sorted((i for i in result.items if i.get("failed")), key=lambda i: i["finished"], reverse=True)
    out = []
    for dep in failed:
        for inc_id in dep.get("incidents", []):
            inc = incidents.get(inc_id)
            when = day_text(dep["finished"], data.tz, clock=True)
            detail = f"after the {dep['service']} deployment of {when}"
            out.append(_entry(inc_id, inc.title if inc else "", inc.url if inc else "", detail))
    return _behind("Incidents after deployments in the period", out)


def _rework(metric: Metric, result: Result, data: TeamData) -> dict | None:
    deployments = sorted(
        (i for i in result.items if i.get("rework")), key=lambda i: i["finished"], reverse=True
    )
    out = [
        _entry(
            pr["key"],
            pr.get("title", ""),
            pr.get("url"),
            f"deployed {day_text(dep['finished'], data.tz)}, {pr.get('reason', 'rework')}",
        )
        for dep in deployments
        for pr in dep.get("rework_prs", [])
    ]
    return _behind("Rework shipped in the period", out)


# -- Scrum: the work behind a sprint figure ---------------------------------------------------------------
SprintKey = tuple[str, str]  # (source, item key)


class _Now:
    """A sprint item as it stands now: title, link, status as the team wrote it, and whether done."""

    __slots__ = ("title", "url", "status", "done")

    def __init__(self, title: str, url: str, status: str, done: bool):
        self.title, self.url, self.status, self.done = title, url, status, done

    def entry(self, key: str, what: str) -> dict:
        """``what`` happened to it in the sprint, then where it stands ("…, now In Progress")."""
        return _entry(key, self.title, self.url, what + (f", now {self.status}" if self.status else ""))


def _sprint_items(data: TeamData, keys: set[SprintKey]) -> dict[SprintKey, _Now]:
    """The sprint items a figure may name, read by key: one may have been done long before the period
    (so not among ``TeamData.items``), and only these few are needed. Deleted items are left out, as
    the figure left them out."""
    workflow = data.workflow
    by_source: dict[str, list[str]] = {}
    for source, key in sorted(keys):
        by_source.setdefault(source, []).append(key)
    out = {}
    for source, ks in by_source.items():
        for n in range(0, len(ks), 500):
            part = ks[n : n + 500]
            for key, title, url, status_id, status in data.db.execute(
                "select key, summary, url, status_id, status from work_items "
                f"where source = ? and deleted = 0 and key in ({','.join('?' * len(part))})",
                [source, *part],
            ):
                done = workflow.stage_index(status_id, status) == workflow.done_index
                out[(source, key)] = _Now(title or "", url or "", status_name(workflow, status or ""), done)
    return out


def _period_sprints(
    metric: Metric, result: Result, data: TeamData
) -> tuple[list[SprintFigures], list[SprintFigures]]:
    """Every sprint the figure read (from the cache its computation filled), and those ending in its
    period: the sprints it counted."""
    assert isinstance(metric, SprintMetric)
    figures, _ = metric.loaded(data, result.window)
    return figures, [f for f in figures if result.window.contains(f.end)]


def _left_undone(metric: Metric, result: Result, data: TeamData) -> dict | None:
    """Sprint completion: the committed items the period's sprints did not complete. Still open first
    (the team can still finish them), then those left undone in more sprints, the latest sprint first."""
    undone: dict[SprintKey, list[tuple[SprintFigures, float | None]]] = {}
    for f in _period_sprints(metric, result, data)[1]:
        for key, removed in f.undone.items():
            undone.setdefault((f.source, key), []).append((f, removed))
    now = _sprint_items(data, set(undone))
    keys = sorted(now, key=lambda k: (now[k].done, -len(undone[k]), -undone[k][-1][0].end, k[1]))
    out = []
    for k in keys[:MAX_BEHIND]:
        f, removed = undone[k][-1]
        if removed is None:
            what = f"not done at the end of {f.name}"
        else:
            what = f"removed from {f.name} on {day_text(removed, data.tz)}"
        if len(undone[k]) > 1:
            what += f" (left undone in {len(undone[k])} of the period's sprints)"
        out.append(now[k].entry(k[1], what))
    return _behind("Committed items left undone in the period's sprints", out)


def _carried_most(metric: Metric, result: Result, data: TeamData) -> dict | None:
    """Sprint carry-over: the items the period's sprints carried over, those carried over most often
    first (counted over every sprint the figure read, up to the period's end: its baseline's too),
    then those still open, the latest sprint first."""
    figures, current = _period_sprints(metric, result, data)
    carried = {(f.source, key) for f in current for key in f.carried}
    times: dict[SprintKey, list[SprintFigures]] = {}
    for f in figures:
        if f.end < result.window.end:
            for key in f.carried:
                if (f.source, key) in carried:
                    times.setdefault((f.source, key), []).append(f)
    since = day_text(min(f.end for f in figures), data.tz) if figures else ""
    now = _sprint_items(data, carried)
    keys = sorted(now, key=lambda k: (-len(times[k]), now[k].done, -times[k][-1].end, k[1]))
    out = []
    for k in keys[:MAX_BEHIND]:
        n, last = len(times[k]), times[k][-1].name
        what = (
            f"carried over from {last}"
            if n == 1
            else f"carried over {n} times since {since}, last from {last}"
        )
        out.append(now[k].entry(k[1], what))
    return _behind("Items carried over most often", out)


def _scope_changes(metric: Metric, result: Result, data: TeamData) -> dict | None:
    """Sprint scope change: the items added to the period's sprints after they started (the latest
    first), then the committed items removed before their end."""
    changes: list[tuple[int, float, SprintKey, str]] = []
    for f in _period_sprints(metric, result, data)[1]:
        for key, at in f.added_at.items():
            changes.append((0, -at, (f.source, key), f"added to {f.name} on {day_text(at, data.tz)}"))
        for key, at in f.undone.items():
            if at is not None:
                changes.append((1, -at, (f.source, key), f"removed from {f.name} on {day_text(at, data.tz)}"))
    now = _sprint_items(data, {c[2] for c in changes})
    changes = sorted((c for c in changes if c[2] in now), key=lambda c: (c[0], c[1], c[2][1]))[:MAX_BEHIND]
    out = [now[k].entry(k[1], what) for _, _, k, what in changes]
    removed = any(c[0] for c in changes)
    return _behind("Items added or removed mid-sprint" if removed else "Items added mid-sprint", out)


# Per metric: what a lead would open first. Metrics not listed (forecast, flow distribution) name no
# items: their figure is a projection or a share of everything done, and Explain lists those.
PICKERS: dict[str, Callable[[Metric, Result, TeamData], dict | None]] = {
    "wip": _oldest_open,
    "flow-load": _oldest_open,
    "aging-wip": _oldest_open,
    "net-flow": _oldest_open,
    "throughput": _oldest_open,
    "cycle-time": _slowest,
    "lead-time": _slowest,
    "time-to-value": _slowest,
    "flow-efficiency": _least_efficient,
    "pr-pickup-time": _open_prs(reviewed=False),
    "pr-review-time": _open_prs(reviewed=True),
    "pr-cycle-time": _slowest,
    "lead-time-for-changes": _slowest,
    "time-to-restore": _slowest,
    "pr-size": _largest_prs,
    "merged-without-review": _unreviewed,
    "deployment-frequency": _undeployed,
    "change-failure-rate": _failed_deployments,
    "rework-rate": _rework,
    "sprint-completion": _left_undone,
    "sprint-carry-over": _carried_most,
    "sprint-scope-change": _scope_changes,
}


def behind(metric: Metric, result: Result, data: TeamData, target_status: str | None) -> dict | None:
    """``{"heading", "items": [{"key", "title", "url", "detail"}]}`` (up to ``MAX_BEHIND`` items) for a
    figure with a real signal or a missed target, else None: a figure within its normal variation and
    its target needs no list, and a digest that names work under every figure names none usefully."""
    if not (result.signal or target_status == "missed"):
        return None
    pick = PICKERS.get(metric.id)
    return pick(metric, result, data) if pick else None
