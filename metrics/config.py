"""``vsm.toml``: read with the standard library, checked up front, every error naming its key and line.

The file declares the database, the sources (secrets only by environment-variable name), the teams
(created in the database on first start) and org settings. See INTERFACE.md for the contract.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from metrics.errors import VsmError
from metrics.teams import Team
from metrics.workflow import Workflow

SOURCE_KINDS = ("jira", "github", "gitlab", "pagerduty")
DEFAULT_CONFIG = "vsm.toml"


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
    if start is None:
        return None
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


def parse_config(data: dict, text: str = "", path: Path | None = None) -> Config:
    where = str(path or DEFAULT_CONFIG)

    def fail(msg: str, header: str | None = None, index: int = 0, key: str | None = None) -> VsmError:
        line = _line_of(text, header, index, key) if header else None
        loc = f"{where}, line {line}" if line else where
        return VsmError(f"{loc}: {msg}")

    known_top = {"database", "slack", "schedule", "source", "team", "org"}
    for k in data:
        if k not in known_top:
            raise fail(f"unknown section [{k}] (expected one of {', '.join(sorted(known_top))})")
    cfg = Config(path=path)
    db = data.get("database", {})
    if not isinstance(db, dict) or not isinstance(db.get("path", "vsm.db"), str):
        raise fail("database.path must be a string")
    cfg.db_path = db.get("path", "vsm.db")
    slack = data.get("slack", {})
    cfg.slack_api_url = os.environ.get("SLACK_API_URL") or slack.get("api_url", cfg.slack_api_url)
    for key in ("token", "bot_token", "app_token", "signing_secret"):
        if key in slack:
            raise fail(f"slack.{key}: secrets never go in the file; set them in the environment")
    schedule = data.get("schedule", {})
    for key, low, high in (("sync_every_minutes", 5, 1440), ("grace_hours", 0, 72)):
        if key not in schedule:
            continue
        value = schedule[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise fail(f"schedule.{key} must be a number from {low} to {high}", "schedule", 0, key)
        setattr(cfg, key, value)

    names: set[str] = set()
    for i, src in enumerate(data.get("source", [])):

        def bad(msg: str, key: str | None = None, i=i) -> VsmError:
            return fail(msg, "source", i, key)

        if not isinstance(src, dict):
            raise bad("each [[source]] must be a table")
        for key in ("name", "kind"):
            if not isinstance(src.get(key), str) or not src.get(key):
                raise bad(
                    f"source #{i + 1}: `{key}` is required and must be a string", key if key in src else None
                )
        if src["name"] in names:
            raise bad(f"source name {src['name']!r} is used twice", "name")
        names.add(src["name"])
        if src["kind"] not in SOURCE_KINDS:
            raise bad(
                f"source {src['name']}: kind {src['kind']!r} is not one of {', '.join(SOURCE_KINDS)}", "kind"
            )
        if "token" in src:
            raise bad(
                f"source {src['name']}: put the secret in an environment variable and name it in token_env",
                "token",
            )
        if not isinstance(src.get("url", ""), str) or not re.match(r"^https?://", src.get("url", "http://")):
            raise bad(f"source {src['name']}: url must start with http:// or https://", "url")
        hd = src.get("history_days", 365)
        if not isinstance(hd, int) or isinstance(hd, bool) or not 1 <= hd <= 3650:
            raise bad(
                f"source {src['name']}: history_days must be a whole number from 1 to 3650", "history_days"
            )
        for key in ("repos", "projects", "services", "production_environments"):
            if key in src and not (isinstance(src[key], list) and all(isinstance(x, str) for x in src[key])):
                raise bad(f"source {src['name']}: {key} must be a list of strings", key)
        cfg.sources.append({"history_days": 365, **src})

    team_fields = {f.name for f in fields(Team)}
    team_names: set[str] = set()
    for i, raw in enumerate(data.get("team", [])):

        def bad(msg: str, key: str | None = None, i=i) -> VsmError:
            return fail(msg, "team", i, key)

        if not isinstance(raw, dict):
            raise bad("each [[team]] must be a table")
        t = dict(raw)
        if not isinstance(t.get("name"), str) or not t["name"]:
            raise bad(f"team #{i + 1}: `name` is required", "name" if "name" in t else None)
        if t["name"].lower() in team_names:
            raise bad(f"team name {t['name']!r} is used twice", "name")
        team_names.add(t["name"].lower())
        waiting = t.pop("waiting_stages", [])
        if "workflow" in t:
            if not isinstance(t["workflow"], dict):
                raise bad(
                    f"team {t['name']}: [team.workflow] must be a table of stage = [statuses]", "workflow"
                )
            try:
                t["workflow"] = Workflow.from_config(t["workflow"], waiting).to_dict()
            except VsmError as exc:
                raise bad(f"team {t['name']}: {exc}", "workflow") from exc
        if "work_types" in t and isinstance(t["work_types"], dict):
            t["work_types"] = {k.lower(): v for k, v in t["work_types"].items()}
        if "targets" in t:
            if not isinstance(t["targets"], dict):
                raise bad(f"team {t['name']}: targets must be a table of metric = number", "targets")
            for m, v in t["targets"].items():
                try:
                    t["targets"][m] = parse_target(v)
                except VsmError as exc:
                    raise bad(f"team {t['name']}: target {m}: {exc}", "targets") from exc
        if "digest" in t:
            if not isinstance(t["digest"], dict):
                raise bad(
                    f'team {t["name"]}: digest must be a table such as {{ day = "mon", time = "09:00" }}',
                    "digest",
                )
            t["digest"] = {"day": "mon", "time": "09:00", "period_days": 28, **t["digest"]}
        unknown = sorted(set(t) - team_fields)
        if unknown:
            raise bad(f"team {t['name']}: unknown key {unknown[0]!r}", unknown[0])
        for key in ("jira_projects", "repos", "gitlab_projects", "services", "metrics", "boards"):
            if key in t and not (isinstance(t[key], list) and all(isinstance(x, str | int) for x in t[key])):
                raise bad(f"team {t['name']}: {key} must be a list", key)
        if "boards" in t:
            t["boards"] = [str(b) for b in t["boards"]]
        team = Team(**t)
        try:
            from metrics.catalogue import ids

            team.validate(ids())
        except VsmError as exc:
            key = _guess_key(str(exc))
            raise bad(str(exc), key) from exc
        cfg.teams.append(team)

    org = data.get("org", {})
    if not isinstance(org, dict):
        raise fail("[org] must be a table")
    from metrics.catalogue import ids

    for m in org.get("north_star", []):
        if m not in ids():
            line = next(
                (n + 1 for n, ln in enumerate(text.splitlines()) if ln.strip().startswith("north_star")), None
            )
            raise VsmError(f"{where}{f', line {line}' if line else ''}: org.north_star: unknown metric {m!r}")
    cfg.org = org
    return cfg


def _guess_key(message: str) -> str | None:
    """Team.validate says ``team NAME: KEY: ...``; the key locates the line."""
    m = re.match(r"^team [^:]+: ([a-z_]+):", message)
    return m.group(1) if m else None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([hdw])\s*$")


def parse_target(value) -> float:
    """A target in the metric's base unit: a number, or a duration string (``36h``, ``5d``, ``2w``) in hours."""
    if isinstance(value, bool):
        raise VsmError("must be a number or a duration such as 5d")
    if isinstance(value, int | float):
        if value < 0:
            raise VsmError("must not be negative")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value.lower())
        if m:
            return float(m.group(1)) * {"h": 1, "d": 24, "w": 168}[m.group(2)]
        v = value.strip().rstrip("%")
        try:
            return parse_target(float(v))
        except ValueError:
            pass
    raise VsmError(f"{value!r} is not a number or a duration such as 36h, 5d, 2w")
