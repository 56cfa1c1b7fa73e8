"""Teams and org settings, kept in the database with a change log (who, when, what).

A team declared in ``vsm.toml`` is created on first start; from then on the database is the source of
truth, because the team changes its own settings in chat. ``seed_from_config`` reports where the file
and the database disagree so an operator is never surprised.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import re
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields

import sqlite_utils

from metrics.errors import VsmError
from metrics.store import flows
from metrics.store.tx import transaction
from metrics.targets import Target, allowed, from_stored, in_bounds, judged_as, legacy_note
from metrics.timeutil import now_iso, zone
from metrics.workflow import Workflow
from metrics.workspace import SINGLE, Workspace

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
# What flow distribution sorts work into (``metrics.catalogue.flow``); a work type maps to one of them.
WORK_TYPE_CATEGORIES = ("feature", "defect", "debt", "risk")
TEAM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}")
# Slack channel ids (public C…, private G…): digests are posted by id, and a name such as `#general`
# or a mention such as `<!channel>` would fail on every post, or ping a whole channel.
CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{1,31}")
USER_ID = re.compile(r"[UW][A-Z0-9]{1,31}")
DIGEST_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d")  # HH:MM, 24 h
DEFAULT_WORKFLOW = {
    "backlog": ["Backlog", "To Do", "Open"],
    "committed": ["Selected", "Selected for Development", "Ready"],
    "in_progress": ["In Progress"],
    "review": {"statuses": ["In Review", "Code Review"], "waiting": True},
    "done": ["Done", "Closed", "Resolved"],
}


# Every number a user can set, and what it may be: (lowest, highest, whole numbers only, unit). One
# table, read by the config file and by Slack alike, so a value refused in one is refused in the other
# (an `inf` or `nan` stored once would break the team's digest on every run).
NUMBERS: dict[str, tuple[float, float, bool, str]] = {
    "stale_pr_hours": (1, 720, False, "hours"),
    "nudge_repeat_hours": (1, 2160, False, "hours"),
    "period_days": (7, 182, True, "days"),
    "sync_every_minutes": (5, 1440, False, "minutes"),
    "grace_hours": (0, 72, False, "hours"),
    "history_days": (1, 3650, True, "days"),
}


def shown(value: object) -> str:
    """A user's value quoted for a one-line error: ``repr`` escapes newlines; long values are cut."""
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def unknown_key(key: str, known: Iterable[str]) -> str:
    """``unknown key 'tokn_env' (did you mean 'token_env'?)``: a typo names its intended key."""
    close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
    if close:
        return f"unknown key {shown(key)} (did you mean {close[0]!r}?)"
    return f"unknown key {shown(key)} (allowed: {', '.join(sorted(known))})"


def is_number(value: object, low: float, high: float, whole: bool = False) -> bool:
    """Finite, within ``low..high``, and an int when ``whole``. Booleans are not numbers here, though
    Python counts them as ints."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if whole and not isinstance(value, int):
        return False
    try:
        return math.isfinite(value) and low <= value <= high
    except OverflowError:  # an int beyond any float
        return False


def number_allowed(key: str) -> str:
    low, high, whole, unit = NUMBERS[key]
    return f"a {'whole ' if whole else ''}number of {unit} from {low:g} to {high:g}"


def check_number(key: str, value: object) -> float:
    """``value`` if it is allowed for ``key`` (see NUMBERS), else a VsmError saying what is."""
    low, high, whole, _ = NUMBERS[key]
    if not is_number(value, low, high, whole):
        raise VsmError(f"{key}: expected {number_allowed(key)}, not {shown(value)}")
    return value  # type: ignore[return-value]


def check_target(metric: str, value: object) -> float:
    """A target in base units, finite and within its metric's bounds (``metrics.targets.bounds``,
    the one table of them; a 0 stored before targets were checked stays valid): the number itself
    (a ``metrics.targets.Target`` keeps its direction and words), a plain number as a float."""
    from metrics.catalogue import CATALOGUE

    found = CATALOGUE.get(metric)
    if not in_bounds(found, value, strict=False):
        raise VsmError(f"expected {allowed(found)}, not {shown(value)}")
    return value if isinstance(value, Target) else float(value)  # type: ignore[arg-type]


def string_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


@dataclass(frozen=True)
class Rule:
    """What one setting may hold: ``allowed`` is shown in every error about it."""

    allowed: str
    ok: Callable[[object], bool]


def _is_zone(value: object) -> bool:
    try:
        zone(value)  # type: ignore[arg-type]
    except (VsmError, TypeError):
        return False
    return isinstance(value, str)


def number_rule(key: str) -> Rule:
    low, high, whole, _ = NUMBERS[key]
    return Rule(number_allowed(key), lambda v: is_number(v, low, high, whole))


# The shape of each team setting; Team.validate and the config file both check a value against it.
TEAM_RULES: dict[str, Rule] = {
    "channel": Rule(
        "a Slack channel id such as C0123456789 (shown in the channel's details)",
        lambda v: v == "" or (isinstance(v, str) and CHANNEL_ID.fullmatch(v) is not None),
    ),
    "timezone": Rule("an IANA time zone such as Europe/London", _is_zone),
    "jira_projects": Rule("a list of Jira project keys", string_list),
    "jql": Rule("a JQL string", lambda v: isinstance(v, str)),
    "boards": Rule(
        "a list of board ids", lambda v: isinstance(v, list) and all(type(b) in (int, str) for b in v)
    ),
    "repos": Rule("a list of repositories such as acme/payments", string_list),
    "gitlab_projects": Rule("a list of GitLab project paths", string_list),
    "services": Rule("a list of incident service ids", string_list),
    "metrics": Rule("a list of metric ids (see `vsm metrics`)", string_list),
    "targets": Rule(
        "a table of metric id = target",
        lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v),
    ),
    "digest": Rule(
        'a table such as { day = "mon", time = "09:00", period_days = 28 }',
        lambda v: isinstance(v, dict),
    ),
    "workflow": Rule("ordered stages, each a list of statuses", lambda v: isinstance(v, list)),
    "work_types": Rule(
        f"a table of issue type = work type ({', '.join(WORK_TYPE_CATEGORIES)})",
        lambda v: (
            isinstance(v, dict)
            and all(isinstance(k, str) and x in WORK_TYPE_CATEGORIES for k, x in v.items())
        ),
    ),
    "discarded_resolutions": Rule("a list of resolution names", string_list),
    "impediments_wait": Rule("true or false", lambda v: isinstance(v, bool)),
    "include_bot_prs": Rule("true or false", lambda v: isinstance(v, bool)),
    "rework_patterns": Rule("a list of regular expressions", string_list),
    "stale_pr_hours": number_rule("stale_pr_hours"),
    "nudges": Rule(
        f"a list of nudge kinds ({', '.join(NUDGE_KINDS)})",
        lambda v: string_list(v) and set(v) <= set(NUDGE_KINDS),  # type: ignore[arg-type]
    ),
    "nudge_repeat_hours": number_rule("nudge_repeat_hours"),
    "snooze_until": Rule("an ISO 8601 instant, or empty", lambda v: isinstance(v, str)),
}


def check_setting(key: str, value: object) -> None:
    """A VsmError ``KEY: expected WHAT IS ALLOWED, not VALUE`` when a team setting has the wrong shape."""
    rule = TEAM_RULES[key]
    if not rule.ok(value):
        raise VsmError(f"{key}: expected {rule.allowed}, not {shown(value)}")


def check_digest(digest: dict) -> None:
    """A digest schedule: known keys, a day, an HH:MM time and a period in days."""
    for key in digest:
        if key not in ("day", "time", "period_days"):
            raise VsmError(f"digest: {unknown_key(key, ('day', 'time', 'period_days'))}")
    day, time = digest.get("day", "mon"), digest.get("time", "09:00")
    if str(day).lower()[:3] not in DAYS:
        raise VsmError(f"digest: day {shown(day)} is not one of {', '.join(DAYS)}")
    if not DIGEST_TIME.fullmatch(str(time)):
        raise VsmError(f"digest: time {shown(time)} must be HH:MM (24 h)")
    try:
        check_number("period_days", digest.get("period_days", 28))
    except VsmError as exc:
        raise VsmError(f"digest: {exc}") from None


MAX_ORG_ADMINS = 50  # the org settings form's people picker holds this many
# The org settings (README "Configuration", [org]); the North Star modal and the file both end here.
ORG_RULES: dict[str, Rule] = {
    "north_star": Rule(
        "a list of up to five different metric ids (see `vsm metrics`)",
        lambda v: string_list(v) and len(v) <= 5 and len(set(v)) == len(v),  # type: ignore[arg-type]
    ),
    "admins": Rule(
        f"a list of up to {MAX_ORG_ADMINS} Slack user ids such as U0123456789",
        lambda v: string_list(v) and len(v) <= MAX_ORG_ADMINS and all(USER_ID.fullmatch(x) for x in v),  # type: ignore
    ),
    "channel": TEAM_RULES["channel"],
    "timezone": TEAM_RULES["timezone"],
    "digest": TEAM_RULES["digest"],
    "targets": Rule(
        'a table of North Star metric id = target, such as { "lead-time-for-changes" = "2d" }',
        TEAM_RULES["targets"].ok,
    ),
}
# What an org setting is while nobody has set it: the roll-up's zone and the org digest's schedule
# (``metrics.org`` and the scheduler read the same defaults: Mondays 08:00, INTERFACE.md's example,
# before the teams' usual 09:00), no channel (no org digest), no targets.
ORG_DIGEST = {"day": "mon", "time": "08:00", "period_days": 28}
ORG_DEFAULTS: dict[str, object] = {
    "north_star": [],
    "admins": [],
    "channel": "",
    "timezone": "UTC",
    "digest": ORG_DIGEST,
    "targets": {},
}
# The settings log's ``team`` for the org's own settings (no team may be named so: ``TEAM_NAME``).
ORG_LOG = "*org*"
# The org's targets' forms (direction, operator, words) are stored beside the plain numbers under
# this key, as a team's are beside its ``targets``; ``get_org`` puts them back together.
_ORG_TARGET_FORMS = "target_forms"


def check_org(key: str, value: object) -> None:
    """A VsmError ``KEY: ...`` saying what is allowed when an org setting is unknown or malformed."""
    rule = ORG_RULES.get(key)
    if rule is None:
        raise VsmError(unknown_key(key, ORG_RULES))
    if not rule.ok(value):
        raise VsmError(f"{key}: expected {rule.allowed}, not {shown(value)}")
    if key == "digest":
        check_digest(value)  # type: ignore[arg-type]
    if key in ("north_star", "targets"):
        known = _catalogue_ids()
        for m in value:  # type: ignore[attr-defined]
            if m not in known:
                raise VsmError(f"{key}: unknown metric {shown(m)} (see `vsm metrics`)")
    if key == "targets":
        for m, target in value.items():  # type: ignore[attr-defined]
            try:
                check_target(m, target)
            except VsmError as exc:
                raise VsmError(f"targets: {m}: {exc}") from None


def org_settings(org: dict) -> dict:
    """Every org setting as it is in effect: what was set (``get_org``), else its default
    (``ORG_DEFAULTS``); a digest set in part (``{ time = "08:00" }`` in vsm.toml) is completed. The
    North Star form shows these, and a save is a change only where it differs from them."""
    out = {**copy.deepcopy(ORG_DEFAULTS), **org}  # a caller's change to a default list stays its own
    digest = org.get("digest")
    out["digest"] = {**ORG_DIGEST, **digest} if isinstance(digest, dict) else digest or dict(ORG_DIGEST)
    return out


def org_version(db: sqlite_utils.Database, *, ws: Workspace = SINGLE) -> int:
    """A number that grows with every change to the org settings (its last settings log row), so a
    form can tell that the settings it showed were changed by someone else before it was saved."""
    row = next(
        db.query("select max(id) as n from settings_log where workspace = ? and team = ?", [ws, ORG_LOG]),
        None,
    )
    return int(row["n"] or 0) if row else 0


def off_north_star(targets: dict, north_star: list[str]) -> list[str]:
    """The metrics ``targets`` names that are not North Star metrics. The org's targets are shown
    only beside the North Star figures, so a target elsewhere would be stored and never seen: the
    file and the form refuse it, saying so."""
    return [m for m in targets if m not in north_star]


def same_org_value(key: str, a: object, b: object) -> bool:
    """Whether two values of an org setting are the same setting: targets by bound and direction
    (as a team's, ``_same``), a digest with its defaults filled in, the rest as they are."""
    if key == "digest" and isinstance(a, dict) and isinstance(b, dict):
        return {**ORG_DIGEST, **a} == {**ORG_DIGEST, **b}
    if key == "admins" and isinstance(a, list) and isinstance(b, list):  # who, not in which order
        return set(a) == set(b)
    return _same(key, a) == _same(key, b)


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
    # Base units (hours, %, items...): a ``metrics.targets.Target``, which also keeps the direction and
    # the words the team wrote; a plain number (older settings) is judged in the metric's direction.
    targets: dict[str, float] = field(default_factory=dict)
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
        # allow_nan=False: `Infinity`/`NaN` are not JSON; validate() refuses them before a save.
        # Targets are stored as plain numbers, as before targets had directions, so an older vsm-bot
        # reading this database still judges them; their direction and words go in ``target_forms``,
        # which an older one ignores.
        data = asdict(self)
        if isinstance(self.targets, dict):
            data["targets"] = {m: float(t) if isinstance(t, Target) else t for m, t in self.targets.items()}
            data["target_forms"] = {m: t.to_dict() for m, t in self.targets.items() if isinstance(t, Target)}
        return json.dumps(data, sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Team:
        data = json.loads(text)
        forms = data.pop("target_forms", None)
        known = {f for f in cls.__dataclass_fields__}
        team = cls(**{k: v for k, v in data.items() if k in known})
        if isinstance(team.targets, dict):
            team.targets = {m: _loaded_target(m, v, forms) for m, v in team.targets.items()}
        return team

    def validate(self, catalogue_ids: set[str] | None = None) -> None:
        """Raise VsmError naming the first bad setting; ``catalogue_ids`` checks metric ids.

        Every way in (the config file, the settings modal, a snooze) ends here before a save, so a
        value that would break the team's digests later is refused now, with what is allowed.
        """
        if not isinstance(self.name, str) or not TEAM_NAME.fullmatch(self.name):
            raise VsmError(f"team name {shown(self.name)}: letters, digits, space, _ . - (max 64)")
        try:
            for f in fields(self)[1:]:
                check_setting(f.name, getattr(self, f.name))
            check_digest(self.digest)
            self._check_metrics(catalogue_ids)
            Workflow.from_list(self.workflow)
        except VsmError as exc:
            raise VsmError(f"team {self.name}: {exc}") from None
        except (KeyError, TypeError) as exc:  # a workflow row of the wrong shape
            raise VsmError(f"team {self.name}: workflow: malformed stage ({exc})") from None

    def _check_metrics(self, catalogue_ids: set[str] | None) -> None:
        repeated = sorted({m for m in self.metrics if self.metrics.count(m) > 1})
        if repeated:
            raise VsmError(f"metrics: {', '.join(repeated)} chosen twice")
        if catalogue_ids is not None:
            for key, chosen in (("metrics", self.metrics), ("targets", self.targets)):
                for m in chosen:
                    if m not in catalogue_ids:
                        raise VsmError(f"{key}: unknown metric {shown(m)} (see `vsm metrics`)")
        for m, value in self.targets.items():
            try:
                check_target(m, value)
            except VsmError as exc:
                raise VsmError(f"targets: {m}: {exc}") from None


def _loaded_target(metric_id: str, value: object, forms: object) -> object:
    """A stored target as a ``Target``: with its form (direction, operator, words) when one was saved
    for this very bound, else a plain number judged in the metric's better direction (none for a
    context metric: kept, never judged). A form saved as the value itself (``{"value": ...}``) loads
    too. Anything malformed stays as it is, for ``validate`` to refuse."""
    from metrics.catalogue import CATALOGUE

    form = forms.get(metric_id) if isinstance(forms, dict) else None
    plain = isinstance(value, int | float) and not isinstance(value, bool)
    if plain and isinstance(form, dict) and form.get("value") == value:
        value = form
    if isinstance(value, dict) or (isinstance(value, int | float) and not isinstance(value, bool)):
        loaded = from_stored(CATALOGUE.get(metric_id), value)
        return value if isinstance(loaded, float) and loaded != loaded else loaded
    return value


def stored_targets(targets: object) -> object:
    """Targets as the settings store and the change log keep them: a ``Target`` as its parts (a JSON
    number alone would lose its direction and words), anything else as it is."""
    if not isinstance(targets, dict):
        return targets
    return {m: t.to_dict() if isinstance(t, Target) else t for m, t in targets.items()}


def get_team(db: sqlite_utils.Database, name: str, *, ws: Workspace = SINGLE) -> Team:
    row = next(
        db.query("select settings from teams where workspace = ? and lower(name) = lower(?)", [ws, name]),
        None,
    )
    if row is None:
        known = ", ".join(t.name for t in list_teams(db, ws=ws)) or "none yet"
        raise VsmError(f"unknown team {name!r} (known: {known})")
    return Team.from_json(row["settings"])


def team_for_channel(db: sqlite_utils.Database, channel: str, *, ws: Workspace = SINGLE) -> Team | None:
    row = next(
        db.query("select settings from teams where workspace = ? and channel = ?", [ws, channel]), None
    )
    return Team.from_json(row["settings"]) if row else None


def list_teams(db: sqlite_utils.Database, *, ws: Workspace = SINGLE) -> list[Team]:
    return [
        Team.from_json(r["settings"])
        for r in db.query("select settings from teams where workspace = ? order by name", [ws])
    ]


def all_teams(db: sqlite_utils.Database) -> list[Team]:
    """Every workspace's teams: what the deployment's shared caches (replayed flows) must keep."""
    return [Team.from_json(r["settings"]) for r in db.query("select settings from teams")]


# Settings whose order means nothing: nudge kinds, the data scope, resolutions and patterns are each a
# set. A form (checkboxes, selects) or a vsm.toml may send them in any order; that is no change.
UNORDERED = (
    "nudges",
    "jira_projects",
    "repos",
    "gitlab_projects",
    "services",
    "boards",
    "discarded_resolutions",
    "rework_patterns",
)


def diff(old: Team | None, new: Team) -> dict:
    """What changed, setting by setting: ``{key: [old, new]}``, as a user would call it a change:
    lists that are sets compared as sets (``UNORDERED``), a stage's statuses likewise (the stages'
    order does matter), and targets by bound and direction (stating "≤" on an older plain
    ``wip = 8`` is a change, though ``Target(8, "lower") == 8`` as numbers)."""
    a = asdict(old) if old else {}
    b = asdict(new)
    return {k: [a.get(k), v] for k, v in b.items() if k not in a or _same(k, a[k]) != _same(k, v)}


def _same(key: str, value: object) -> object:
    """``value`` in a form where two settings a user would call the same compare equal."""
    from metrics.catalogue import CATALOGUE

    if key in UNORDERED and isinstance(value, list):
        return sorted(map(repr, value))
    if key == "workflow" and isinstance(value, list):
        return [
            {**s, "statuses": sorted(map(repr, s.get("statuses") or []))} if isinstance(s, dict) else s
            for s in value
        ]
    if key == "targets" and isinstance(value, dict):
        return {m: judged_as(CATALOGUE.get(m), t) for m, t in value.items()}
    return value


def target_notes(team: Team) -> list[str]:
    """One note per target kept only because older settings allowed it (``wip = 8`` with no
    direction, a zero bound), saying what to write instead; shown where vsm reports its config."""
    from metrics.catalogue import CATALOGUE

    notes = []
    for mid, target in team.targets.items() if isinstance(team.targets, dict) else ():
        said = legacy_note(CATALOGUE.get(mid), target, toml=True)
        if said:
            notes.append(f"team {team.name}: target {said}")
    return notes


class TeamConflict(VsmError):
    """A new team's name or channel is taken: ``key`` says what (``name``, ``channel`` of another team,
    or ``org-channel``: the organisation's channel)."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


def _catalogue_ids() -> set[str]:
    from metrics.catalogue import ids

    return ids()


What = str | Callable[[dict], str] | None
"""How a change is logged: words, or a function making them from the change (``{key: [old, new]}``),
so the log says what changed in the same words as the channel is told."""


def _what(what: What, changes: dict, default: str) -> str:
    return what(changes) if callable(what) else what or default


def create_team(
    db: sqlite_utils.Database, team: Team, who: str, what: What = None, *, ws: Workspace = SINGLE
) -> dict:
    """Insert a new team and log it, or raise TeamConflict: an existing team is never touched.

    The INSERT itself refuses a taken name (the primary key, and any other case of it) or channel,
    under the write lock, so two set-ups racing for one name or one channel cannot both win. The
    org's channel is refused too (the org form refuses a team's channel): the org digest and a team's
    would otherwise share it, and `/vsm digest` there could preview only one of them.
    """
    team.validate(_catalogue_ids())
    at = now_iso()
    changes = diff(None, team)
    with transaction(db):
        if not _insert(db, team, at, ws):
            raise _conflict(db, team, ws)
        log_change(db, team.name, at, who, _what(what, changes, "created"), changes, ws=ws)
    return changes


def _insert(db: sqlite_utils.Database, team: Team, at: str, ws: Workspace) -> bool:
    """One statement: insert unless the name (any case) or the channel is taken in the workspace;
    False when refused."""
    try:
        cursor = db.execute(
            "insert into teams (workspace, name, channel, timezone, settings, created, updated) "
            "select ?, ?, ?, ?, ?, ?, ? where not exists (select 1 from teams where workspace = ? "
            "and (lower(name) = lower(?) or (channel = ? and channel != ''))) "
            "and not exists (select 1 from org where workspace = ? and key = 'channel' "
            "and value = json_quote(?) and ? != '')",
            [
                ws,
                team.name,
                team.channel,
                team.timezone,
                team.to_json(),
                at,
                at,
                ws,
                team.name,
                team.channel,
                ws,
                team.channel,
                team.channel,
            ],
        )
    except sqlite3.IntegrityError:  # the primary key: the exact name
        return False
    return cursor.rowcount == 1


def _conflict(db: sqlite_utils.Database, team: Team, ws: Workspace) -> TeamConflict:
    row = next(
        db.query("select name from teams where workspace = ? and lower(name) = lower(?)", [ws, team.name]),
        None,
    )
    if row is not None:
        return TeamConflict(f"the name {team.name!r} is taken by another team ({row['name']})", "name")
    if team.channel and get_org(db, ws=ws).get("channel") == team.channel:
        return TeamConflict(
            f"channel {team.channel} is the organisation's channel, not a team's", "org-channel"
        )
    row = next(
        db.query("select name from teams where workspace = ? and channel = ?", [ws, team.channel]), None
    )
    owner = row["name"] if row else "another team"
    return TeamConflict(f"channel {team.channel} already has a team ({owner})", "channel")


def save_team(
    db: sqlite_utils.Database, team: Team, who: str, what: What = None, *, ws: Workspace = SINGLE
) -> dict:
    """Update a team in place, or create it (``create_team``) when no team has its name; the change is
    logged in the same transaction. Returns the diff.

    A team is keyed by its name and stays in its channel: a save never moves a team to another channel
    (the move would hand its digests and settings to whoever is in that channel).
    """
    team.validate(_catalogue_ids())
    with transaction(db):  # read and write under one write lock: nothing changes in between
        row = next(
            db.query("select channel, settings from teams where workspace = ? and name = ?", [ws, team.name]),
            None,
        )
        if row is None:
            return create_team(db, team, who, what, ws=ws)
        if row["channel"] != team.channel:
            raise VsmError(
                f"team {team.name} belongs to channel {row['channel'] or '(none)'}; "
                f"it cannot be saved from {team.channel or 'no channel'}"
            )
        old = Team.from_json(row["settings"])
        changes = diff(old, team)
        if not changes:
            return {}
        at = now_iso()
        db.execute(
            "update teams set timezone = ?, settings = ?, updated = ?, created = coalesce(created, ?) "
            "where workspace = ? and name = ?",
            [team.timezone, team.to_json(), at, at, ws, team.name],
        )
        if old.flow.fingerprint != team.flow.fingerprint:
            flows.keep_only(db, [t.flow.fingerprint for t in all_teams(db)])
        log_change(
            db,
            team.name,
            at,
            who,
            _what(what, changes, "changed " + ", ".join(sorted(changes))),
            changes,
            ws=ws,
        )
    return changes


def log_change(
    db: sqlite_utils.Database,
    team: str,
    at: str,
    who: str,
    what: str,
    changes: dict,
    *,
    ws: Workspace = SINGLE,
) -> None:
    """One row of the settings log: who changed what, when (team settings, the org, experiments)."""
    db["settings_log"].insert(
        {
            "workspace": ws,
            "team": team,
            "at": at,
            "who": who,
            "what": what,
            "change": json.dumps(
                {
                    k: [stored_targets(a), stored_targets(b)] if k == "targets" else [a, b]
                    for k, (a, b) in changes.items()
                },
                sort_keys=True,
                default=str,
            ),
        }
    )


def settings_log(db: sqlite_utils.Database, team: str, *, ws: Workspace = SINGLE) -> list[dict]:
    return list(
        db.query("select * from settings_log where workspace = ? and team = ? order by id", [ws, team])
    )


def get_org(db: sqlite_utils.Database, *, ws: Workspace = SINGLE) -> dict:
    """The org settings that were set (``org_settings`` adds the defaults). ``targets`` come back as
    ``Target``s, with the direction and words stored beside the plain numbers (``set_org``)."""
    org = {
        r["key"]: json.loads(r["value"])
        for r in db.query("select key, value from org where workspace = ?", [ws])
    }
    forms = org.pop(_ORG_TARGET_FORMS, None)
    if isinstance(org.get("targets"), dict):
        org["targets"] = {m: _loaded_target(m, v, forms) for m, v in org["targets"].items()}
    return org


class OrgConflict(VsmError):
    """An org settings save refused at the moment of the write, nothing written: ``key`` says why
    (``version``: someone changed the settings since the form was read; ``channel``: the channel has
    become a team's since)."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


def set_org(
    db: sqlite_utils.Database, key: str, value: object, who: str, what: What = None, *, ws: Workspace = SINGLE
) -> bool:
    """Set one org setting (``set_org_many`` with one key); False, and nothing written, when the
    value is the one already set (``same_org_value``)."""
    return bool(set_org_many(db, {key: value}, who, what, ws=ws))


def set_org_many(
    db: sqlite_utils.Database,
    values: dict[str, object],
    who: str,
    what: What = None,
    *,
    seen: int | None = None,
    ws: Workspace = SINGLE,
) -> dict:
    """Set several org settings at once, all or nothing: every value checked (see ORG_RULES) before
    anything is written, then, in one transaction, each one that differs from the stored one
    (``same_org_value``) written with its own settings log row (who, when, ``what`` in words, made
    from that key's ``{key: [old, new]}``, old and new). Returns ``{key: [old, new]}`` for what changed.

    One transaction because a form saves several settings: a refusal on the third must not leave the
    first two saved with the admin told nothing was. ``seen`` (``org_version`` when the form was
    read) is compared under the write lock, so of two admins saving forms opened on the same
    settings, the second is refused (``OrgConflict``, key ``version``) instead of silently putting
    back what the first changed. A new channel that a team has taken meanwhile is refused too (key
    ``channel``), as ``create_team`` refuses the org's.

    Targets are stored as a team's are (``Team.to_json``): plain numbers under ``targets``, which any
    reader judges in the metric's better direction, and their forms under ``target_forms``.
    """
    for key, value in values.items():
        try:
            check_org(key, value)
        except VsmError as exc:
            raise VsmError(f"org {exc}") from None
    changes: dict = {}
    with transaction(db):  # read and write under one write lock: nothing changes in between
        if seen is not None and org_version(db, ws=ws) != seen:
            raise OrgConflict("the organisation settings changed since they were read", "version")
        current = get_org(db, ws=ws)
        for key, value in values.items():
            old = current.get(key)
            if old is None or not same_org_value(key, old, value):
                changes[key] = [old, value]
        channel = changes.get("channel", [None, ""])[1]
        team = team_for_channel(db, channel, ws=ws) if channel else None  # type: ignore[arg-type]
        if team is not None:
            raise OrgConflict(f"channel {channel} is the channel of team {team.name}", "channel")
        at = now_iso()
        for key, (old, value) in changes.items():
            _write_org(db, key, value, ws)
            change = {key: [old, value]}
            log_change(db, ORG_LOG, at, who, _what(what, change, f"changed org {key}"), change, ws=ws)
    return changes


def _write_org(db: sqlite_utils.Database, key: str, value: object, ws: Workspace) -> None:
    rows = {key: value}
    if key == "targets":
        targets: dict = value  # type: ignore[assignment]
        rows[key] = {m: float(t) for m, t in targets.items()}
        rows[_ORG_TARGET_FORMS] = {m: t.to_dict() for m, t in targets.items() if isinstance(t, Target)}
    for k, v in rows.items():
        db.execute(
            "insert or replace into org (workspace, key, value) values (?, ?, ?)",
            [ws, k, json.dumps(v, allow_nan=False)],
        )


def seed_from_config(db: sqlite_utils.Database, teams: list[Team], org: dict) -> list[str]:
    """Create teams (and org settings) declared in the file that the database lacks, in
    single-workspace mode's workspace (``SINGLE``): vsm.toml configures one workspace; installed ones
    set up their teams in chat.

    Returns one warning per team whose file declaration differs from what the database holds (after
    first start, the database, the team's choices in chat, wins) and one per target the file states
    only as older settings could (``target_notes``).
    """
    warnings = [note for team in teams for note in target_notes(team)]
    for team in teams:
        row = next(
            db.query("select settings from teams where workspace = ? and name = ?", [SINGLE, team.name]), None
        )
        if row is None:
            try:
                create_team(db, team, who="vsm.toml", what="created from vsm.toml")
                continue
            except TeamConflict as exc:
                row = next(
                    db.query(
                        "select settings from teams where workspace = ? and name = ?", [SINGLE, team.name]
                    ),
                    None,
                )
                if (
                    row is None
                ):  # not a concurrent start creating the same team: another one's name or channel
                    warnings.append(f"team {team.name}: not created from vsm.toml: {exc}")
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
            try:
                set_org(db, key, value, who="vsm.toml")
            except OrgConflict as exc:  # a team set up in Slack took the file's org channel
                warnings.append(f"org {key}: not set from vsm.toml: {exc}")
        elif key == "admins" and current[key] != value:
            stored = ", ".join(map(str, current[key])) or "none"
            warnings.append(
                f"org admins: vsm.toml differs from the database; the database wins: the org admins are "
                f"{stored} (besides workspace admins), not the file's"
            )
        elif current[key] != value:
            warnings.append(f"org {key}: vsm.toml differs from the database; the database wins")
    return warnings
