"""``vsm.toml``: read with the standard library, checked up front, every error naming its key and line.

The file declares the database, the sources (secrets only by environment-variable name), the teams
(created in the database on first start) and org settings. The keys are documented in docs/sources.md and docs/slack.md.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from metrics.errors import VsmError
from metrics.kinds import SOURCE_KINDS
from metrics.teams import (
    ORG_RULES,
    TEAM_NAME,
    TEAM_RULES,
    Rule,
    Team,
    check_number,
    check_org,
    check_setting,
    number_rule,
    off_north_star,
    shown,
    string_list,
    unknown_key,
)
from metrics.workflow import Workflow

DEFAULT_CONFIG = "vsm.toml"
DEFAULT_PRODUCTION = ("production",)
SECTIONS = ("database", "slack", "schedule", "source", "team", "org")
SCHEDULE_KEYS = ("sync_every_minutes", "grace_hours")
TEAM_KEYS = ("name", "waiting_stages", *TEAM_RULES)
# What each connector can take as its deployment signal (metrics/sources/github.py, gitlab.py).
DEPLOYMENT_SIGNALS = {
    "github": ("deployments", "releases", "workflow_runs"),
    "gitlab": ("deployments", "pipelines"),
}
# Keys a kind cannot do without (the others have defaults): Jira has no default site, and its search
# needs a bounded query.
REQUIRED = {"jira": ("url", "jql")}
URL_ALLOWED = "an http:// or https:// URL with a host, such as https://acme.atlassian.net"


def production_environments(source: dict) -> list[str]:
    """The environment names whose deployments count, as a GitHub or GitLab source configures them:
    ``production`` when it names none, for both tools (docs/sources.md), so a source left at its
    defaults still has deployments."""
    return list(source.get("production_environments") or DEFAULT_PRODUCTION)


def _is_url(value: object) -> bool:
    """An absolute http(s) URL naming a host (and a valid port, if any): ``https://`` alone is not."""
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
        _ = parts.port  # a bad port raises ValueError
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _text(allowed: str) -> Rule:
    return Rule(allowed, lambda v: isinstance(v, str) and v != "")


# Every key a [[source]] may have (the connectors read no others), with what it may hold.
SOURCE_RULES: dict[str, Rule] = {
    "name": _text("a name"),
    "kind": Rule(" or ".join(SOURCE_KINDS), lambda v: v in SOURCE_KINDS),
    "url": Rule(URL_ALLOWED, _is_url),
    "user": _text("the account's user name or email"),
    "token_env": Rule(
        "the name of an environment variable, such as JIRA_TOKEN",
        lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v) is not None,
    ),
    "jql": _text("a JQL query"),
    "history_days": number_rule("history_days"),
    "deployment": Rule("cloud or datacenter", lambda v: v in ("cloud", "datacenter")),
    "boards": TEAM_RULES["boards"],
    "sprint_field": _text("a Jira field id such as customfield_10020"),
    "points_field": _text("a Jira field id such as customfield_10016"),
    "flag_field": _text("a Jira field id such as customfield_10021"),
    "repos": Rule("a list of repositories such as acme/payments", string_list),
    "projects": Rule("a list of GitLab project paths such as acme/mobile", string_list),
    "services": Rule("a list of service ids", string_list),
    "production_environments": Rule("a list of environment names", string_list),
    "deployment_signal": _text("the kind's deployment signal"),
    "deploy_workflow": _text("a workflow name or file, such as deploy.yml"),
    "deploy_ref": _text("a branch or tag, such as main"),
    "incident_labels": Rule("a list of labels", string_list),
    "incident_label": _text("a label"),
    "allow_plain_http": Rule("true or false", lambda v: isinstance(v, bool)),
}


@dataclass
class Config:
    path: Path | None
    db_path: str = "vsm.db"
    slack_api_url: str = "https://slack.com/api/"
    sources: list[dict] = field(default_factory=list)
    teams: list[Team] = field(default_factory=list)
    org: dict = field(default_factory=dict)
    sync_every_minutes: int = 60  # [schedule]: how often `vsm serve` syncs the sources
    grace_hours: float = 6.0  # [schedule]: a digest missed by downtime is sent late within this

    def source(self, name: str) -> dict:
        for s in self.sources:
            if s["name"] == name:
                return s
        raise VsmError(
            f"unknown source {name!r} (configured: {', '.join(s['name'] for s in self.sources) or 'none'})"
        )


def _line_of(text: str, header: str, index: int, key: str | None) -> int | None:
    """The line of ``key`` inside the ``index``-th ``[[header]]`` table (or of the header itself)."""
    lines = text.splitlines()
    count, start = -1, None
    for n, line in enumerate(lines):
        if re.match(rf"^\s*\[\[?\s*{re.escape(header)}\s*\]\]?", line):
            count += 1
            if count == index:
                start = n
                break
    if start is None:  # not a table: a top-level key of that name (`schedule = 5`)
        return next(
            (n + 1 for n, line in enumerate(lines) if re.match(rf"^\s*{re.escape(header)}\s*=", line)), None
        )
    if key is None:
        return start + 1
    for n in range(start + 1, len(lines)):
        if re.match(rf"^\s*\[\[\s*{re.escape(header)}\s*\]\]", lines[n]):
            break
        if re.match(rf"^\s*\[\s*{re.escape(header)}\.{re.escape(key)}\s*\]", lines[n]) or re.match(
            rf'^\s*"?{re.escape(key)}"?\s*=', lines[n]
        ):
            return n + 1
    return start + 1


def resolve_path(path: str | None) -> tuple[Path, bool]:
    """The config path and whether the user asked for it (flag or $VSM_CONFIG) or it is the default."""
    if path:
        return Path(path), True
    env = os.environ.get("VSM_CONFIG")
    if env:
        return Path(env), True
    return Path(DEFAULT_CONFIG), False


def load_config(path: str | None = None) -> Config:
    """Read and check the config. A missing *default* ``./vsm.toml`` is fine (demo database, no sources);
    a missing file the user named, an unreadable or invalid one is a VsmError naming the key and line."""
    p, explicit = resolve_path(path)
    if not p.exists():
        if explicit:
            raise VsmError(f"config file {p} not found")
        return Config(path=None)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise VsmError(f"cannot read config file {p}: {exc.__class__.__name__}: {exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise VsmError(f"{p}: invalid TOML: {exc}") from exc
    return parse_config(data, text, p)


class _Fail:
    """Builds the one-line errors: ``FILE, line N: WHERE: KEY: what is wrong and what is allowed``."""

    def __init__(self, text: str, path: Path | None) -> None:
        self.text, self.where = text, str(path or DEFAULT_CONFIG)

    def __call__(
        self, msg: str, header: str | None = None, index: int = 0, key: str | None = None
    ) -> VsmError:
        line = _line_of(self.text, header, index, key) if header else None
        loc = f"{self.where}, line {line}" if line else self.where
        return VsmError(f"{loc}: {msg}")


def parse_config(data: dict, text: str = "", path: Path | None = None) -> Config:
    """Check every section, key and value of a parsed file; the first problem is a VsmError."""
    fail = _Fail(text, path)
    for k in data:
        if k not in SECTIONS:
            raise fail(unknown_key(k, SECTIONS).replace("unknown key", "unknown section", 1), k)
        tables = k in ("source", "team")
        if not (
            isinstance(data[k], list) and all(isinstance(x, dict) for x in data[k])
            if tables
            else isinstance(data[k], dict)
        ):
            shape = f"[[{k}]] tables (an array of tables)" if tables else f"a [{k}] table"
            raise fail(f"{k}: expected {shape}, not {shown(data[k])}", k)
    cfg = Config(path=path)
    _database(cfg, data.get("database", {}), fail)
    _slack(cfg, data.get("slack", {}), fail)
    _schedule(cfg, data.get("schedule", {}), fail)
    names: set[str] = set()
    for i, src in enumerate(data.get("source", [])):
        cfg.sources.append(_source(src, i, names, fail))
    for i, raw in enumerate(data.get("team", [])):
        cfg.teams.append(_team(raw, i, cfg.teams, fail))
    cfg.org = _org(data.get("org", {}), cfg.teams, fail)
    return cfg


def _database(cfg: Config, db: dict, fail: _Fail) -> None:
    for key, value in db.items():
        if key != "path":
            raise fail(f"database: {unknown_key(key, ['path'])}", "database", 0, key)
        if not isinstance(value, str) or not value:
            raise fail(f"database: path: expected a file path, not {shown(value)}", "database", 0, key)
        cfg.db_path = value


def _slack(cfg: Config, slack: dict, fail: _Fail) -> None:
    for key, value in slack.items():
        if key in ("token", "bot_token", "app_token", "signing_secret"):
            raise fail(
                f"slack.{key}: secrets never go in the file; set them in the environment", "slack", 0, key
            )
        if key != "api_url":
            raise fail(f"slack: {unknown_key(key, ['api_url'])}", "slack", 0, key)
        if not _is_url(value):
            raise fail(f"slack: api_url: expected {URL_ALLOWED}, not {shown(value)}", "slack", 0, key)
    cfg.slack_api_url = os.environ.get("SLACK_API_URL") or slack.get("api_url", cfg.slack_api_url)


def _schedule(cfg: Config, schedule: dict, fail: _Fail) -> None:
    for key, value in schedule.items():
        if key not in SCHEDULE_KEYS:
            raise fail(f"schedule: {unknown_key(key, SCHEDULE_KEYS)}", "schedule", 0, key)
        try:
            setattr(cfg, key, check_number(key, value))
        except VsmError as exc:
            raise fail(f"schedule: {exc}", "schedule", 0, key) from None


def _source(src: dict, i: int, names: set[str], fail: _Fail) -> dict:
    """One [[source]]: its keys known, each of the right shape; secrets only by variable name."""
    name = src.get("name")
    label = f"source #{i + 1}"
    if isinstance(name, str) and name:
        label = f"source {_name(name)}"
    for key in ("name", "kind"):
        if not isinstance(src.get(key), str) or not src.get(key):
            raise fail(
                f"{label}: `{key}` is required and must be a string", "source", i, key if key in src else None
            )
    if src["kind"] not in SOURCE_KINDS:
        raise fail(
            f"{label}: kind {shown(src['kind'])} is not one of {', '.join(SOURCE_KINDS)}", "source", i, "kind"
        )
    if "token" in src:
        raise fail(
            f"{label}: put the secret in an environment variable and name it in token_env",
            "source",
            i,
            "token",
        )
    for key, value in src.items():
        rule = SOURCE_RULES.get(key)
        if rule is None:
            raise fail(f"{label}: {unknown_key(key, SOURCE_RULES)}", "source", i, key)
        if not rule.ok(value):
            raise fail(f"{label}: {key}: expected {rule.allowed}, not {shown(value)}", "source", i, key)
    if name in names:
        raise fail(f"source name {name!r} is used twice", "source", i, "name")
    names.add(name)
    signal = src.get("deployment_signal")
    if signal is not None and signal not in DEPLOYMENT_SIGNALS.get(src["kind"], ()):
        kinds = "; ".join(f"{k}: {' or '.join(v)}" for k, v in DEPLOYMENT_SIGNALS.items())
        message = f"deployment_signal: {shown(signal)} is not one for kind {src['kind']} (allowed: {kinds})"
        raise fail(f"{label}: {message}", "source", i, "deployment_signal")
    for key in REQUIRED.get(src["kind"], ()):
        if key not in src:
            allowed = SOURCE_RULES[key].allowed
            raise fail(f"{label}: {key}: required for kind {src['kind']}; expected {allowed}", "source", i)
    return {"history_days": 365, **src}


def _team(raw: dict, i: int, teams: list[Team], fail: _Fail) -> Team:
    """One [[team]]: known keys of the right shape, targets in base units, its own channel."""
    from metrics.catalogue import ids

    def bad(msg: str, key: str | None = None) -> VsmError:
        return fail(msg, "team", i, key)

    t = dict(raw)
    if not isinstance(t.get("name"), str) or not t["name"]:
        raise bad(f"team #{i + 1}: `name` is required", "name" if "name" in t else None)
    label = f"team {_name(t['name'])}"
    for key in t:
        if key not in TEAM_KEYS:
            raise bad(f"{label}: {unknown_key(key, TEAM_KEYS)}", key)
    for other in teams:
        if other.name.lower() == t["name"].lower():
            raise bad(f"team name {shown(t['name'])} is used twice", "name")
    for key, value in t.items():
        try:
            _team_value(t, key, value)
        except VsmError as exc:
            raise bad(f"{label}: {exc}", key) from None
    t.pop("waiting_stages", None)
    team = Team(**t)
    try:
        team.validate(ids())
    except VsmError as exc:
        raise bad(str(exc), _guess_key(str(exc))) from exc
    for other in teams:
        if team.channel and other.channel == team.channel:
            message = (
                f"{team.channel} is already the channel of team {other.name}; allowed: one team per channel"
            )
            raise bad(f"{label}: channel: {message}", "channel")
    return team


def _team_value(t: dict, key: str, value: object) -> None:
    """Check one team key as the file writes it, and turn it into the stored form in ``t``."""
    if key == "workflow":
        t[key] = _workflow(value, t.get("waiting_stages", []))
    elif key == "waiting_stages":
        if not string_list(value):
            raise VsmError(f"waiting_stages: expected a list of stage names, not {shown(value)}")
    elif key == "targets":
        check_setting(key, value)
        t[key] = {}
        for m, v in value.items():  # type: ignore[union-attr]
            try:
                t[key][m] = parse_target(v, m)
            except VsmError as exc:
                raise VsmError(f"target {m}: {exc}") from None
    elif key == "digest":
        check_setting(key, value)
        t[key] = {"day": "mon", "time": "09:00", "period_days": 28, **value}  # type: ignore[dict-item]
    elif key == "boards":
        check_setting(key, value)
        t[key] = [str(b) for b in value]  # type: ignore[union-attr]
    elif key == "work_types":
        check_setting(key, value)
        t[key] = {k.lower(): v for k, v in value.items()}  # type: ignore[union-attr]
    elif key != "name":
        check_setting(key, value)


def _workflow(table: object, waiting: object) -> list[dict]:
    """``[team.workflow]``: ordered stages, each a non-empty list of statuses (or a table of them)."""
    if not isinstance(table, dict):
        raise VsmError("workflow: [team.workflow] must be a table of stage = [statuses]")
    for name, spec in table.items():
        stage = _name(name)
        if isinstance(spec, dict):
            for key in spec:
                if key not in ("statuses", "waiting"):
                    raise VsmError(f"workflow: {stage}: {unknown_key(key, ('statuses', 'waiting'))}")
            if not isinstance(spec.get("waiting", False), bool):
                raise VsmError(
                    f"workflow: {stage}: waiting: expected true or false, not {shown(spec['waiting'])}"
                )
            spec = spec.get("statuses")
        if isinstance(spec, list) and not spec:
            raise VsmError(f"workflow: {stage}: expected a non-empty list of statuses (names or ids), not []")
    return Workflow.from_config(table, waiting if string_list(waiting) else []).to_dict()


def _org(org: dict, teams: list[Team], fail: _Fail) -> dict:
    """``[org]``: each key checked as the North Star form checks it; targets read as a team's are
    (``metrics.targets.read_target``), every bad one in the one line, and only for North Star
    metrics; the org channel not a team's (``/vsm digest`` there is the team's digest)."""
    out = dict(org)
    for key, value in org.items():
        try:
            if key == "targets":
                out[key] = _org_targets(value, org.get("north_star"))
            check_org(key, out[key])
            if key == "channel" and value:
                owner = next((t.name for t in teams if t.channel == value), None)
                if owner:
                    raise VsmError(
                        f"channel: {value} is the channel of team {_name(owner)}; allowed: a channel "
                        "of the organisation's own"
                    )
        except VsmError as exc:
            raise fail(f"org: {exc}", "org", 0, key) from None
    return out


def _org_targets(value: object, north_star: object) -> dict:
    """``[org] targets`` as ``Target``s: each read as a target typed in a settings form is (a new
    key has no older files to keep loading, so nothing is read as ``legacy``), every problem in one
    message."""
    from metrics.catalogue import CATALOGUE
    from metrics.targets import read_target

    rule = ORG_RULES["targets"]
    if not rule.ok(value):
        raise VsmError(f"targets: expected {rule.allowed}, not {shown(value)}")
    chosen = north_star if string_list(north_star) else []
    targets, problems = {}, []
    for m, v in value.items():  # type: ignore[union-attr]
        if m not in CATALOGUE:
            problems.append(f"{shown(m)}: unknown metric (see `vsm metrics`)")
            continue
        try:
            targets[m] = read_target(CATALOGUE[m], v)
        except VsmError as exc:
            problems.append(f"{m}: {exc}")
    problems += [
        f"{m}: not a North Star metric (north_star: {', '.join(map(shown, chosen)) or 'none'}); the "
        "org's targets are shown only beside the North Star figures"
        for m in off_north_star(targets, chosen)  # type: ignore[arg-type]
    ]
    if problems:
        raise VsmError(f"targets: {'; '.join(problems)}")
    return targets


def _name(name: str) -> str:
    """A user's name for a team, source or stage as an error shows it: quoted when it is unusual, so a
    name holding a newline or markup cannot break the one-line error."""
    return name if TEAM_NAME.fullmatch(name) else shown(name)


def _guess_key(message: str) -> str | None:
    """Team.validate says ``team NAME: KEY: ...``; the key locates the line."""
    m = re.match(r"^team [^:]+: ([a-z_]+):", message)
    return m.group(1) if m else None


def parse_target(value: object, metric: str) -> float:
    """A target in the metric's base unit, from a number or a text (``36h``, ``5d``, ``2w`` in hours;
    ``80%``; ``"<= 8"`` with a stated direction, for a metric such as ``wip`` that has none), read by
    ``metrics.targets.read_target`` as the settings modal reads it: one reader, one table of bounds.
    What older files held stays valid (``legacy``: ``wip = 8`` kept unjudged, a zero bound), and
    ``metrics.teams.target_notes`` says how to rewrite it. An unknown metric is refused."""
    from metrics.catalogue import CATALOGUE
    from metrics.targets import read_target

    if metric not in CATALOGUE:
        raise VsmError(f"unknown metric {shown(metric)} (see `vsm metrics`)")
    return read_target(CATALOGUE[metric], value, legacy=True)
