"""Teams and org settings, kept in the database with a change log (who, when, what).

A team declared in ``vsm.toml`` is created on first start; from then on the database is the source of
truth, because the team changes its own settings in chat. ``seed_from_config`` reports where the file
and the database disagree so an operator is never surprised.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import sqlite_utils

from metrics.errors import VsmError
from metrics.store import flows
from metrics.store.tx import transaction
from metrics.timeutil import zone
from metrics.workflow import Workflow

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# The nudges a team can get between digests (``metrics.nudges``), all on unless the team says otherwise.
NUDGE_KINDS = ("target", "stale-prs", "aging-items")
DEFAULT_WORK_TYPES = {
    "story": "feature",
    "feature": "feature",
    "epic": "feature",
    "bug": "defect",
    "defect": "defect",
    "incident": "defect",
    "tech debt": "debt",
    "debt": "debt",
    "chore": "debt",
    "task": "debt",
    "risk": "risk",
    "security": "risk",
    "compliance": "risk",
}
DEFAULT_WORKFLOW = {
    "backlog": ["Backlog", "To Do", "Open"],
    "committed": ["Selected", "Selected for Development", "Ready"],
    "in_progress": ["In Progress"],
    "review": {"statuses": ["In Review", "Code Review"], "waiting": True},
    "done": ["Done", "Closed", "Resolved"],
}


@dataclass
class Team:
    """A team's whole settings. Everything here is editable from Slack."""

    name: str
    channel: str = ""
    timezone: str = "UTC"
    jira_projects: list[str] = field(default_factory=list)
    jql: str = ""
    boards: list[str] = field(default_factory=list)
    repos: list[str] = field(default_factory=list)
    gitlab_projects: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    targets: dict[str, float] = field(default_factory=dict)  # base units: hours, %, items, ...
    digest: dict = field(default_factory=lambda: {"day": "mon", "time": "09:00", "period_days": 28})
    workflow: list[dict] = field(default_factory=lambda: Workflow.from_config(DEFAULT_WORKFLOW).to_dict())
    work_types: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_WORK_TYPES))
    discarded_resolutions: list[str] = field(default_factory=lambda: ["Won't Do", "Duplicate", "Cancelled"])
    impediments_wait: bool = False
    include_bot_prs: bool = False
    rework_patterns: list[str] = field(default_factory=lambda: [r"^revert\b", r"\bhotfix\b"])
    stale_pr_hours: float = 48.0
    nudges: list[str] = field(default_factory=lambda: list(NUDGE_KINDS))
    nudge_repeat_hours: float = 72.0  # the same item is not nudged again sooner
    snooze_until: str = ""  # ISO instant; no nudges before it

    @property
    def tz(self):
        return zone(self.timezone)

    @property
    def flow(self) -> Workflow:
        return Workflow.from_list(self.workflow)

    @property
    def all_repos(self) -> list[str]:
        return self.repos + self.gitlab_projects

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Team:
        data = json.loads(text)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def validate(self, catalogue_ids: set[str] | None = None) -> None:
        """Raise VsmError naming the first bad setting; ``catalogue_ids`` checks metric ids."""
        if not self.name or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}", self.name):
            raise VsmError(f"team name {self.name!r}: letters, digits, space, _ . - (max 64)")
        try:
            zone(self.timezone)
        except VsmError as exc:
            raise VsmError(f"team {self.name}: timezone: {exc}") from exc
        day, time = self.digest.get("day", "mon"), self.digest.get("time", "09:00")
        if str(day).lower()[:3] not in DAYS:
            raise VsmError(f"team {self.name}: digest: day {day!r} is not one of {', '.join(DAYS)}")
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", str(time)):
            raise VsmError(f"team {self.name}: digest: time {time!r} must be HH:MM (24 h)")
        period = self.digest.get("period_days", 28)
        if not isinstance(period, int) or not 7 <= period <= 182:
            raise VsmError(f"team {self.name}: digest: period_days must be a whole number from 7 to 182")
        for kind in self.nudges:
            if kind not in NUDGE_KINDS:
                raise VsmError(f"team {self.name}: nudges: {kind!r} is not one of {', '.join(NUDGE_KINDS)}")
        try:
            Workflow.from_list(self.workflow)
        except VsmError as exc:
            raise VsmError(f"team {self.name}: workflow: {exc}") from exc
        repeated = sorted({m for m in self.metrics if self.metrics.count(m) > 1})
        if repeated:
            raise VsmError(f"team {self.name}: metrics: {', '.join(repeated)} chosen twice")
        if catalogue_ids is not None:
            for key, chosen in (("metrics", self.metrics), ("targets", self.targets)):
                for m in chosen:
                    if m not in catalogue_ids:
                        raise VsmError(f"team {self.name}: {key}: unknown metric {m!r} (see `vsm metrics`)")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def get_team(db: sqlite_utils.Database, name: str) -> Team:
    row = next(db.query("select settings from teams where lower(name) = lower(?)", [name]), None)
    if row is None:
        known = ", ".join(t.name for t in list_teams(db)) or "none yet"
        raise VsmError(f"unknown team {name!r} (known: {known})")
    return Team.from_json(row["settings"])


def team_for_channel(db: sqlite_utils.Database, channel: str) -> Team | None:
    row = next(db.query("select settings from teams where channel = ?", [channel]), None)
    return Team.from_json(row["settings"]) if row else None


def list_teams(db: sqlite_utils.Database) -> list[Team]:
    return [Team.from_json(r["settings"]) for r in db.query("select settings from teams order by name")]


def diff(old: Team | None, new: Team) -> dict:
    """What changed, setting by setting: ``{key: [old, new]}``."""
    a = asdict(old) if old else {}
    b = asdict(new)
    return {k: [a.get(k), v] for k, v in b.items() if a.get(k) != v}


def save_team(db: sqlite_utils.Database, team: Team, who: str, what: str | None = None) -> dict:
    """Create or update a team and log the change in the same transaction. Returns the diff."""
    team.validate()
    old = next(db.query("select settings from teams where name = ?", [team.name]), None)
    old_team = Team.from_json(old["settings"]) if old else None
    changes = diff(old_team, team)
    if not changes:
        return {}
    at = now_iso()
    with transaction(db):
        db["teams"].upsert(
            {
                "name": team.name,
                "channel": team.channel,
                "timezone": team.timezone,
                "settings": team.to_json(),
                "created": at if old is None else None,
                "updated": at,
            },
            pk="name",
        )
        if old is not None:
            db.execute("update teams set created = coalesce(created, ?) where name = ?", [at, team.name])
        if old_team is not None and old_team.flow.fingerprint != team.flow.fingerprint:
            flows.keep_only(db, [t.flow.fingerprint for t in list_teams(db)])
        db["settings_log"].insert(
            {
                "team": team.name,
                "at": at,
                "who": who,
                "what": what or ("created" if old is None else "changed " + ", ".join(sorted(changes))),
                "change": json.dumps(changes, sort_keys=True, default=str),
            }
        )
    return changes


def settings_log(db: sqlite_utils.Database, team: str) -> list[dict]:
    return list(db.query("select * from settings_log where team = ? order by id", [team]))


def get_org(db: sqlite_utils.Database) -> dict:
    return {r["key"]: json.loads(r["value"]) for r in db.query("select key, value from org")}


def set_org(db: sqlite_utils.Database, key: str, value, who: str) -> None:
    old = get_org(db).get(key)
    if old == value:
        return
    with transaction(db):
        db["org"].upsert({"key": key, "value": json.dumps(value)}, pk="key")
        db["settings_log"].insert(
            {
                "team": "*org*",
                "at": now_iso(),
                "who": who,
                "what": f"changed org {key}",
                "change": json.dumps({key: [old, value]}),
            }
        )


def seed_from_config(db: sqlite_utils.Database, teams: list[Team], org: dict) -> list[str]:
    """Create teams (and org settings) declared in the file that the database lacks.

    Returns one warning per team whose file declaration differs from what the database holds: after
    first start, the database (the team's choices in chat) wins.
    """
    warnings = []
    for team in teams:
        row = next(db.query("select settings from teams where name = ?", [team.name]), None)
        if row is None:
            save_team(db, team, who="vsm.toml", what="created from vsm.toml")
            continue
        stored = Team.from_json(row["settings"])
        changed = sorted(diff(stored, team))
        if changed:
            warnings.append(
                f"team {team.name}: vsm.toml differs from the database on {', '.join(changed)}; "
                "the database wins (the team changes its settings in Slack)"
            )
    current = get_org(db)
    for key, value in org.items():
        if key not in current:
            set_org(db, key, value, who="vsm.toml")
        elif current[key] != value:
            warnings.append(f"org {key}: vsm.toml differs from the database; the database wins")
    return warnings
