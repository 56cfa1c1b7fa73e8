"""``vsm``: the command line (README "Command line"). Errors are one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from metrics import workspace_rows
from metrics.errors import VsmError
from metrics.workspace import SINGLE, Workspace, parse_workspace

if TYPE_CHECKING:
    import sqlite_utils

    from metrics.config import Config
    from metrics.experiments import Experiment

# Start-up cost is paid by every command, so this module imports only what parsing needs. Each
# command imports what it uses when it runs: `vsm metrics` never loads the Slack SDK, the HTTP
# client or the template engine, and only `vsm serve` loads the Slack app and the scheduler.

DEMO_DB = "vsm-demo.db"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 2, like every other error
        raise VsmError(f"{message} (see `{self.prog} --help`)")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="config file (default $VSM_CONFIG, else ./vsm.toml)")
    p.add_argument("--db", help="SQLite database (overrides the config's database.path)")


def _scoped(p: argparse.ArgumentParser) -> None:
    """``--workspace``: for the commands that read one workspace's teams, org settings, experiments or
    figures. Its form is checked as it is parsed, before the database is opened, and whether the
    database holds it when it is opened (``_open``); the default is single-workspace mode, so a
    command without it reads what it always read."""
    p.add_argument(
        "--workspace",
        type=parse_workspace,
        default=SINGLE,
        metavar="T…",
        help="the Slack workspace (its team id; E… for an org-wide Grid install) whose teams to read "
        "(default: single-workspace mode's, SLACK_BOT_TOKEN); `vsm workspaces` lists them",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vsm", description="Value-stream metrics for the teams who do the work.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("demo", help="build the sample database and print every sample team's digest")
    _common(p)
    p = sub.add_parser("teams", help="list the teams")
    _common(p)
    _scoped(p)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("sync", help="incremental sync of the configured sources, with progress")
    _common(p)
    p.add_argument("--source", help="sync only this source (its name in the config)")
    p = sub.add_parser("metrics", help="the metric catalogue")
    _common(p)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("metric", help="one metric for one team")
    _common(p)
    _scoped(p)
    p.add_argument("id", nargs="+", help="its id or a name `/vsm` knows: cycle-time, ct, 'cycle time'")
    p.add_argument("--team", required=True)
    p.add_argument(
        "--period", help="7d, 30d, 90d, 12w or a quarter such as 2026Q3 (default: the team's digest period)"
    )
    p.add_argument("--since", help="first local day, YYYY-MM-DD")
    p.add_argument("--until", help="the local day after the last one, YYYY-MM-DD (exclusive)")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("northstar", help="the org's North Star metrics across all teams")
    _common(p)
    _scoped(p)
    p.add_argument("--period", help="7d, 30d, 90d, 12w or a quarter (default: the org's digest period)")
    p.add_argument("--since", help="first local day, YYYY-MM-DD")
    p.add_argument("--until", help="the local day after the last one, YYYY-MM-DD (exclusive)")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("experiments", help="a team's improvement experiments, running and concluded")
    _common(p)
    _scoped(p)
    p.add_argument("--team", required=True)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("digest", help="a team's digest")
    _common(p)
    _scoped(p)
    p.add_argument("--team", required=True)
    p.add_argument("--json", action="store_true", help="print the exact Slack message payload")
    p = sub.add_parser("workspaces", help="the Slack workspaces the database holds, and which are installed")
    _common(p)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser(
        "forget-workspace", help="delete everything one uninstalled workspace owns (asks to confirm)"
    )
    _common(p)
    p.add_argument(
        "workspace", type=parse_workspace, metavar="T…", help="its team id (E… for an org-wide Grid install)"
    )
    p.add_argument("--yes", action="store_true", help="do not ask: for scripts, where nobody can type the id")
    p = sub.add_parser(
        "move-workspace",
        help="hand single-workspace mode's teams, settings and history to an installed workspace (asks to confirm)",
    )
    _common(p)
    p.add_argument("workspace", type=parse_workspace, metavar="T…", help="the workspace they were set up in")
    p.add_argument("--yes", action="store_true", help="do not ask: for scripts, where nobody can type the id")
    p = sub.add_parser("serve", help="run the Slack app: Socket Mode, or HTTP with --http")
    _common(p)
    p.add_argument("--http", action="store_true")
    p.add_argument("--port", type=int, default=3000)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address HTTP mode listens on (default 127.0.0.1: put a TLS proxy in front; 0.0.0.0 for all)",
    )
    return parser


def now() -> datetime:
    """The clock; ``VSM_NOW`` (ISO 8601) pins it for reproducible runs and tests.

    A pinned time is checked here, once, against the dates a window can be computed for
    (``metrics.timeutil.check_day``): every command stretches its window from it (the
    previous period, the baseline weeks), and a time near year 1 or 9999 would otherwise end in an
    OverflowError deep in a metric.
    """
    pinned = os.environ.get("VSM_NOW")
    if pinned:
        try:
            dt = datetime.fromisoformat(pinned.replace("Z", "+00:00"))
        except ValueError as exc:
            raise VsmError(f"VSM_NOW {pinned!r} is not an ISO 8601 time") from exc
        from metrics.timeutil import check_day

        check_day(dt.date(), f"VSM_NOW {pinned!r}")
        return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    return datetime.now(UTC)


def _db_path(args, cfg: Config) -> str:
    """The database file a command works on: ``--db``, else the config's (the sample's for demo)."""
    if args.command == "demo":
        return args.db or DEMO_DB
    return args.db or cfg.db_path


def _open(args, cfg: Config) -> sqlite_utils.Database:
    """The database, read-only: the commands that only read never create or change a file.

    Teams and org settings declared in vsm.toml are written into the database by the commands that
    write (`vsm sync`, `vsm serve`: ``_open_for_writing``); here, whatever that would do or report is
    said as a note instead.
    """
    from metrics.store import open_db

    db = open_db(_db_path(args, cfg), readonly=True)
    ws = getattr(args, "workspace", SINGLE)
    if ws != SINGLE:  # vsm.toml configures single-workspace mode only: its notes are not about ws
        _check_known(db, ws)
        return db
    for note in _config_notes(db, cfg):
        print(f"vsm: note: {note}", file=sys.stderr)
    return db


def _check_known(db: sqlite_utils.Database, ws: Workspace) -> None:
    """A ``--workspace`` the database knows nothing of is a mistyped id (or another database): said,
    rather than answered with an empty list that looks like a workspace without teams."""
    if ws == SINGLE:
        return
    if ws in workspace_rows.holdings(db):
        return
    raise VsmError(
        f"the database holds nothing for workspace {ws} (`vsm workspaces` lists the ones it holds)"
    )


def _open_for_writing(args, cfg: Config) -> sqlite_utils.Database:
    """The database, created when missing, with the teams and org settings of vsm.toml seeded."""
    from metrics.store import open_db
    from metrics.teams import seed_from_config

    db = open_db(_db_path(args, cfg), create=True)
    for warning in seed_from_config(db, cfg.teams, cfg.org):
        print(f"vsm: note: {warning}", file=sys.stderr)
    return db


def _config_notes(db: sqlite_utils.Database, cfg: Config) -> list[str]:
    """How vsm.toml's teams and org settings differ from the database, without writing: the same
    differences ``metrics.teams.seed_from_config`` reports, plus what it would add."""
    from metrics.teams import Team, diff, get_org

    stored = {
        r["name"]: r["settings"] for r in db.query("select name, settings from teams where workspace = ''")
    }
    notes = []
    for team in cfg.teams:
        if team.name not in stored:
            notes.append(
                f"team {team.name}: declared in vsm.toml, not in the database yet "
                "(`vsm sync` or `vsm serve` adds it)"
            )
            continue
        changed = sorted(diff(Team.from_json(stored[team.name]), team))
        if changed:
            notes.append(
                f"team {team.name}: vsm.toml differs from the database on {', '.join(changed)}; "
                "the database wins (the team changes its settings in Slack)"
            )
    from metrics.teams import target_notes

    notes += [note for team in cfg.teams for note in target_notes(team)]
    org = get_org(db)
    for key, value in cfg.org.items():
        if key not in org:
            notes.append(
                f"org {key}: set in vsm.toml, not in the database yet (`vsm sync` or `vsm serve` adds it)"
            )
        elif org[key] != value:
            notes.append(f"org {key}: vsm.toml differs from the database; the database wins")
    return notes


def cmd_demo(args, cfg: Config) -> int:
    from pathlib import Path

    from bot.render import digest as digest_view
    from metrics.digest import build_digest
    from metrics.sample import build_sample, seed_sample
    from metrics.store import open_db
    from metrics.teams import list_teams

    t = now()
    path = Path(_db_path(args, cfg))
    _check_replaceable(path)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    db = open_db(path)
    build_sample(db, end=t.date())
    tried = seed_sample(db, end=t.date())
    teams = list_teams(db)
    for team in teams:
        print(digest_view.text(build_digest(db, team, t), t))
    first = teams[0].name
    print(f"The sample database is {path}. Explore it further:")
    print(f"  vsm teams --db {path}")
    print(f"  vsm metric cycle-time --team {first} --period 90d --db {path}")
    print(
        f"  vsm metric cycle-time --team {first} --period 90d --json --db {path}   # with the items behind it"
    )
    print(f"  vsm digest --team {first} --json --db {path}   # the exact Slack message payload")
    print(f"  vsm northstar --db {path}   # the organisation's North Star, pooled over every team")
    for team in sorted({e.team for e in tried}):  # by name, as teams are always listed
        states = " and ".join(sorted({e.state for e in tried if e.team == team}))
        print(f"  vsm experiments --team {team} --db {path}   # its improvement experiments ({states})")
    return 0


def _check_replaceable(path) -> None:
    """`vsm demo` deletes the file it rebuilds: only a vsm database (even a damaged or older one) or
    an empty file, never a mistyped ``--db`` naming another application's database or a document."""
    from metrics.store import NotVsmDatabase, open_db

    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return
    try:
        open_db(path, readonly=True).conn.close()
    except NotVsmDatabase as exc:
        raise VsmError(f"{exc}: `vsm demo` replaces only a vsm database (choose another --db)") from None
    except VsmError:
        pass  # a vsm database it cannot read (damaged, older and read-only): rebuilding is the fix


def cmd_teams(args, cfg: Config) -> int:
    import json

    from bot.render.teams import NO_TEAMS, facts
    from metrics.teams import list_teams

    teams = list_teams(_open(args, cfg), ws=args.workspace)
    if args.json:
        rows = [
            {
                "name": t.name,
                "channel": t.channel,
                "timezone": t.timezone,
                "metrics": t.metrics,
                "digest": t.digest,
            }
            for t in teams
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not teams:
        print(NO_TEAMS)
    for f in map(facts, teams):  # the wording `/vsm teams` uses too
        print(f"{f['name']}  channel {f['channel'] or '-'}  {f['timezone']}")
        print(f"  digest: {f['schedule']}")
        print(f"  metrics: {f['metrics']}")
    return 0


def cmd_metrics(args, cfg: Config) -> int:
    import json

    from metrics import catalogue

    entries = [m.entry() for m in catalogue.CATALOGUE.values()]
    if args.json:
        print(json.dumps(entries, indent=2, ensure_ascii=False))
        return 0
    for e in entries:
        print(f"{e['id']:<24} {e['name']:<28} {e['unit']:<14} better: {e['better']:<8} {e['definition']}")
    print("Each metric's rule, edge cases and a worked example: docs/metrics.md in the vsm-bot repository")
    return 0


def cmd_metric(args, cfg: Config) -> int:
    import json

    from bot.render import format as fmt
    from bot.render.terminal import json_text, safe
    from metrics import catalogue
    from metrics.digest import digest_window
    from metrics.teams import get_team
    from metrics.timeutil import dates_window, parse_period, zone

    metric = catalogue.get(_metric_id(args.id))
    if args.period and (args.since or args.until):
        raise VsmError("use either --period or --since/--until, not both")
    if bool(args.since) != bool(args.until):
        raise VsmError("--since and --until go together")
    t = now()
    utc = zone("UTC")
    # Check the period's syntax before the database is opened: bad input never touches it.
    if args.period:
        parse_period(args.period, utc, t)
    elif args.since:
        dates_window(args.since, args.until, utc)
    db = _open(args, cfg)
    team = get_team(db, args.team, ws=args.workspace)
    if args.period:
        window = parse_period(args.period, team.tz, t)
    elif args.since:
        window = dates_window(args.since, args.until, team.tz)
    else:  # the team's digest period, as every Slack surface shows it: the terminal agrees with Slack
        window = digest_window(team, t)
    result = catalogue.compute(db, team, metric.id, window, t)
    if args.json:
        print(json_text(json.dumps(result.to_json(), indent=2, ensure_ascii=False)))
        return 0
    lines = [f"{metric.name} · {team.name} · {window.label()}"]
    shown, spark = fmt.shown(metric, result)
    lines.append(f"  {shown}   ({fmt.counted(metric, result.sample_size)})")
    spread = fmt.spread(metric, result.value)
    if spread:
        lines.append(f"  {spread}")
    lines.append(f"  {fmt.comparison(metric, result)}")
    if spark:
        lines.append(f"  weekly: {spark}")
    lines.append(f"  {fmt.verdict(result.signal, result.signal_note, result.sample_size)}")
    lines += [f"  note: {note}" for note in result.notes]
    for line in lines:  # notes name statuses as a tool wrote them: no control characters reach the terminal
        print(safe(line))
    return 0


def _metric_id(words: list[str]) -> str:
    """The metric the words name, found as `/vsm` finds it (``leading_name``: ids, names, aliases such
    as ``ct`` or ``cycle time``), so the terminal and Slack accept the same names; else an error
    with the closest names."""
    from metrics.catalogue import CATALOGUE
    from metrics.catalogue.aliases import leading_name, suggest

    found = leading_name(words)
    if found is not None and found[0] == "metric" and found[2] == len(words):
        return found[1]
    typed = " ".join(words)
    if found is not None and found[0] == "family" and found[2] == len(words):
        raise VsmError(f"{typed!r} is a family of metrics, not one metric: `vsm metrics` lists them")
    close = [n for n in suggest(words) if n in CATALOGUE]
    hint = f"did you mean {' or '.join(close)}?" if close else "`vsm metrics` lists them"
    raise VsmError(f"unknown metric {typed!r}: {hint}")


def cmd_northstar(args, cfg: Config) -> int:
    """The org roll-up (``metrics.org``): each North Star metric pooled over every team, each team's
    figure beside it on the same window."""
    import json

    from bot.render.org_digest import north_star_text
    from bot.render.terminal import json_text, safe
    from metrics.org import north_star_rollups, northstar, org_window
    from metrics.results import org_rollups
    from metrics.teams import get_org

    db = _open(args, cfg)
    ws = args.workspace
    t = now()
    window = org_window(get_org(db, ws=ws), t, period=args.period, since=args.since, until=args.until)
    # org_rollups: the figures the last sync stored, where they are still current.
    if args.json:
        data = northstar(db, t, window, compute=org_rollups, ws=ws)
        print(json_text(json.dumps(data, indent=2, ensure_ascii=False)))
        return 0
    window, tz, found = north_star_rollups(db, t, window, compute=org_rollups, ws=ws)
    if not found:
        print("No North Star metrics are set for the organisation ([org] north_star).")
        return 0
    for line in north_star_text(window, tz, found):
        print(safe(line))
    return 0


def cmd_experiments(args, cfg: Config) -> int:
    """A team's improvement experiments, newest first (``metrics.experiments``): a running one with
    its metric so far against the same length of time before it, as the digest shows it; one that
    is over with its two windows, the verdict in words and the test behind it, and the North Star
    over the same windows as context."""
    import json

    from bot.render.terminal import json_text, safe
    from metrics.experiments import experiments
    from metrics.teams import get_team

    db = _open(args, cfg)
    team = get_team(db, args.team, ws=args.workspace)
    found = experiments(db, team, ws=args.workspace) if db["experiments"].exists() else []
    if args.json:
        print(json_text(json.dumps([e.to_json() for e in found], indent=2, ensure_ascii=False)))
        return 0
    if not found:
        print(
            f"{safe(team.name)}: no experiments yet (start one with `/vsm experiment` in the team's channel)"
        )
        return 0
    t = now()
    print(f"{safe(team.name)}: {len(found)} experiment{'s' if len(found) > 1 else ''}, newest first")
    for e in found:
        print()
        print("\n".join(_experiment_lines(db, e, t, ws=args.workspace)))
    return 0


def _experiment_lines(
    db: sqlite_utils.Database, e: Experiment, t: datetime, *, ws: Workspace = SINGLE
) -> list[str]:
    """One experiment as ``vsm experiments`` prints it, in the words and figure formats of its Slack
    messages (``bot.render.experiment``); what the team typed passes through ``safe``."""
    from bot.render import experiment as view
    from bot.render.terminal import safe
    from metrics import experiments as ex
    from metrics.errors import VsmError
    from metrics.timeutil import zone

    tz = zone(e.timezone)
    if e.running:
        lines = [f"#{e.id} {e.metric_name}: running until {view.when(e.ends, tz)}"]
        lines.append(f"  Trying: {safe(e.change)}")
        try:
            row = view.running_row(ex.progress(db, e, t, ws=ws))
        except VsmError as exc:  # its metric left the catalogue: say so, never stop the list
            return [*lines, f"  So far: cannot be measured ({exc})"]
        lines.append(f"  Week {row['week']} of {row['weeks']}, from {view.when(e.started, tz)}")
        lines.append(
            f"  So far: {row['so_far']}; the same length of time before it: {row['before']} ({row['untested']})"
        )
        wait = "the data so far would be enough" if row["enough"] else "not yet enough data for one"
        lines.append(f"  The verdict comes when it ends, or when the team stops it early ({wait})")
        return lines
    v = view.verdict_words(e, e.team)
    lines = [
        f"#{e.id} {e.metric_name}: {v['verdict']}",
        f"  Tried: {safe(e.change)}",
        f"  {e.weeks} weeks from {view.when(e.started, tz)}; {v['how']}",
    ]
    if v["judged_to"]:
        lines.append(f"  {safe(v['judged_to'])}")
    if v["windows"]:
        lines.append(f"  During: {v['during']}, {v['during_span']}")
        lines.append(f"  Before: {v['before']}, {v['before_span']}")
    lines.append(f"  {v['meaning'][:1].upper()}{v['meaning'][1:]}")
    if v["detail"]:
        lines.append(f"  {safe(v['detail'])}")
    if v["north_star"]:
        lines.append(f"  {safe(v['north_star_label'])}:")
        for n in v["north_star"]:
            lines.append(f"    {n['name']}: {n['during']} during, {n['before']} before")
        lines.append(f"  {v['north_star_note']}.")
    return lines


def cmd_digest(args, cfg: Config) -> int:
    import json

    from bot.render import digest as digest_view
    from bot.render.terminal import json_text
    from metrics.digest import build_digest
    from metrics.teams import get_team

    db = _open(args, cfg)
    team = get_team(db, args.team, ws=args.workspace)
    t = now()
    d = build_digest(db, team, t, ws=args.workspace)
    if args.json:  # the exact payload, its control characters escaped for the terminal
        print(json_text(json.dumps(digest_view.message(d, t), indent=2, ensure_ascii=False)))
    else:
        print(digest_view.text(d, t))
    return 0


def cmd_workspaces(args, cfg: Config) -> int:
    """Every workspace the database holds, by id, with its number of teams and whether it is installed
    now: what an operator reads before ``vsm forget-workspace``, and the ids ``--workspace`` takes."""
    import json

    from bot.render.terminal import json_text, safe
    from metrics.workspace import shown

    db = _open(args, cfg)
    held = workspace_rows.holdings(db)
    names = {
        ws: (enterprise if org_wide else team) or ""
        for ws, team, enterprise, org_wide in db.execute(
            f"select {workspace_rows.INSTALLED_AS}, team_name, enterprise_name, is_enterprise_install from installations"
        )
    }
    rows = [
        {
            "workspace": ws,
            "name": names.get(ws) or None,
            "teams": n["teams"],
            "installed": n["installations"] > 0,
        }
        for ws, n in sorted(held.items())
    ]
    if args.json:
        print(json_text(json.dumps(rows, indent=2, ensure_ascii=False)))
        return 0
    if not rows:
        print("No workspaces yet: the database holds no teams, org settings or installations.")
    for r in rows:
        teams = f"{r['teams']} team{'' if r['teams'] == 1 else 's'}"
        if r["workspace"] == SINGLE:
            state = "single-workspace mode (SLACK_BOT_TOKEN)"
        elif r["installed"]:
            state = "installed"
        else:  # its teams and history wait for a reinstall: that is what forgetting is for
            state = f"not installed (`vsm forget-workspace {r['workspace']}` deletes what it holds)"
        name = f" ({safe(r['name'])})" if r["name"] else ""  # the workspace's name as Slack gave it
        print(f"{shown(r['workspace'])}{name}: {teams}, {state}")
    return 0


_FORGOTTEN = {
    "teams": ("team", "teams"),
    "org": ("org setting", "org settings"),
    "settings_log": ("settings log row", "settings log rows"),
    "deliveries": ("delivery record", "delivery records"),
    "nudge_log": ("nudge record", "nudge records"),
    "experiments": ("experiment", "experiments"),
    "results": ("stored figure", "stored figures"),
    "installations": ("installation", "installations"),
}
"""Each owned table's rows in words, for what ``vsm forget-workspace`` deletes."""


def _counted(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {_FORGOTTEN[t][n != 1]}" for t, n in counts.items())


def cmd_forget_workspace(args, cfg: Config) -> int:
    """Delete everything a workspace owns (issue 14 §3): an uninstall keeps a workspace's teams and
    history for a reinstall, so deleting them is a separate, deliberate act, confirmed by typing the
    id (or ``--yes``). An installed workspace is refused unless Slack says its token is dead (an
    uninstall whose event was missed: ``_dead_tokens``); then its installation goes too. Every check
    runs on a read-only open, so a refusal changes nothing; the delete is one transaction that checks
    again under the write lock. Source data is the deployment's and
    stays; only the replayed flows no remaining team's mapping uses go."""
    from metrics.store import open_db
    from metrics.workspace import shown

    ws = args.workspace
    if ws == SINGLE:
        raise VsmError(
            "forget-workspace takes a workspace id (T…, or E… for an org-wide Grid install); "
            "single-workspace mode's teams are not forgotten this way"
        )
    path = _db_path(args, cfg)
    db = open_db(path, readonly=True)
    try:
        held = workspace_rows.holdings(db).get(ws)
        if held is None:
            raise VsmError(f"the database holds nothing for workspace {ws}: nothing to forget")
        dead = _dead_tokens(db, ws, cfg) if held["installations"] else frozenset()
    finally:
        db.conn.close()
    owned = {t: held[t] for t in workspace_rows.OWNED}
    if dead:
        owned["installations"] = held["installations"]
    _confirmed(
        args,
        f"forgetting {shown(ws)} deletes {_counted(owned)}",
        ws,
        act="delete it",
        refused=f"nothing deleted from {shown(ws)}",
    )
    deleted = workspace_rows.forget(open_db(path, create=False), ws, dead_tokens=dead)
    print(f"Forgot {shown(ws)}: deleted {_counted(deleted)}. Source data is kept.")
    return 0


def _dead_tokens(db: sqlite_utils.Database, ws: Workspace, cfg: Config) -> frozenset[str]:
    """An installed workspace is forgotten only when Slack says its stored bot token is dead (the app
    was uninstalled and vsm-bot missed the event, so its row stayed): then the tokens Slack was asked
    about, which ``workspace_rows.forget`` deletes with the rest unless another was stored since (a
    reinstall). A token that works, or a Slack that could not be asked, refuses in one line. Read
    before Slack is asked, so a reinstall meanwhile is never taken for the dead token. Never shown."""
    from bot.installs import token_dead
    from metrics.workspace import shown

    tokens = workspace_rows.bot_tokens(db, ws)
    said = token_dead(db, ws, os.environ.get("SLACK_API_URL") or cfg.slack_api_url, tokens=tokens)
    if said is None:
        raise VsmError(
            f"workspace {ws} is installed, and Slack could not be asked whether its token still works: "
            "nothing deleted (try again later, or uninstall vsm-bot from it first)"
        )
    if not said:
        raise VsmError(
            f"workspace {ws} is installed now: uninstall vsm-bot from it first (its teams and "
            "history stay), then forget it"
        )
    print(
        f"Slack says the bot token of {shown(ws)} no longer works (vsm-bot was uninstalled there, or "
        "its token revoked, and the event was missed), so forgetting it also deletes its installation."
    )
    return tokens


def _confirmed(args, what: str, ws: Workspace, *, act: str, refused: str) -> None:
    """``--yes``, or the workspace id typed again on a terminal; anything else refuses in one line
    (``refused``) before anything is written."""
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise VsmError(f"{what}: confirm with --yes")
    print(f"{what[0].upper()}{what[1:]}. Source data stays.")
    print(f"Type {ws} to {act}, anything else to keep it: ", end="", flush=True)
    if sys.stdin.readline().strip() != ws:
        raise VsmError(f"not confirmed: {refused}")


def cmd_move_workspace(args, cfg: Config) -> int:
    """Hand single-workspace mode's rows to an installed workspace (``workspace_rows.move_single``):
    the way from a ``SLACK_BOT_TOKEN`` deployment to one serving installs, whose requests and jobs
    read only installed workspaces' rows. Confirmed as ``forget-workspace`` is."""
    from metrics.store import open_db
    from metrics.workspace import shown

    ws = args.workspace
    if ws == SINGLE:
        raise VsmError(
            "move-workspace takes the workspace to move to (T…, or E… for an org-wide Grid install)"
        )
    path = _db_path(args, cfg)
    db = open_db(path, readonly=True)
    single = workspace_rows.holdings(db).get(SINGLE)
    db.conn.close()
    if single is None or not single["teams"]:
        raise VsmError("single-workspace mode has no teams: nothing to move")
    _confirmed(
        args,
        f"moving single-workspace mode's {single['teams']} teams and their history to {shown(ws)}",
        ws,
        act="move them",
        refused="nothing moved",
    )
    moved = workspace_rows.move_single(open_db(path, create=False), ws)
    print(f"Moved single-workspace mode's rows to {shown(ws)}: {_counted(moved)}.")
    # A running serve plans a workspace's jobs when it starts or the workspace installs, and reads no
    # database change between: without a restart the moved teams would get no digest, and no word.
    print(
        f"Restart `vsm serve` if it is running: it schedules {shown(ws)}'s digests and nudges when it "
        "starts, so the moved teams get none until it does."
    )
    return 0


class _Progress:
    """A live counter per stream on a terminal; plain lines (every 500 payloads) otherwise."""

    def __init__(self, stream) -> None:
        self.out = stream
        self.tty = stream.isatty()
        self.last: tuple[str, str] | None = None

    def __call__(self, source: str, stream: str, n: int) -> None:
        if self.tty:
            bar = "█" * min(30, n // 50) + "░" * max(0, 30 - n // 50)
            self.out.write(f"\r{source:<12} {stream:<14} {bar} {n:>8,} items")
            self.out.flush()
        elif n % 500 == 0:
            print(f"{source}: {stream}: {n:,} items", file=self.out)
        self.last = (source, stream)

    def end(self) -> None:
        if self.tty and self.last:
            self.out.write("\n")
            self.last = None


def cmd_sync(args, cfg: Config) -> int:
    from metrics.sources.sync import sync_source

    if not cfg.sources:
        raise VsmError("no [[source]] in the config: nothing to sync")
    chosen = [cfg.source(args.source)] if args.source else cfg.sources
    db = _open_for_writing(args, cfg)
    progress = _Progress(sys.stderr)
    failed = []
    for source in chosen:
        result = sync_source(db, source, progress=progress)
        progress.end()
        if result.ok:
            print(f"{result.name}: ok, {result.changed:,} changed of {result.seen:,} fetched")
        else:
            print(
                f"{result.name}: FAILED ({'; '.join(result.errors)}), {result.changed:,} changed before it stopped"
            )
            failed.append(f"{result.name} ({result.errors[0]})")
    from metrics.results import after_sync

    # The flows and figures every read would otherwise compute, in every workspace: the synced data is
    # the deployment's, whichever workspace reads it.
    after_sync(db, now())
    if failed:
        print(f"vsm: sync failed for {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def cmd_serve(args, cfg: Config) -> int:
    if not 0 < args.port < 65536:
        raise VsmError(f"--port {args.port} is not a TCP port")
    from bot.serve import serve
    from metrics.runtime import settle

    settle()  # after the app's imports: the long-lived process's modules are frozen out of the GC
    serve(cfg, args.db or cfg.db_path, http=args.http, host=args.host, port=args.port)
    return 0


COMMANDS = {
    "demo": cmd_demo,
    "teams": cmd_teams,
    "metrics": cmd_metrics,
    "metric": cmd_metric,
    "digest": cmd_digest,
    "northstar": cmd_northstar,
    "experiments": cmd_experiments,
    "sync": cmd_sync,
    "workspaces": cmd_workspaces,
    "forget-workspace": cmd_forget_workspace,
    "move-workspace": cmd_move_workspace,
    "serve": cmd_serve,
}


def main(argv: list[str] | None = None) -> int:
    args = cfg = None
    try:
        args = build_parser().parse_args(argv)
        from metrics.config import load_config

        cfg = load_config(args.config)
        return COMMANDS[args.command](args, cfg)
    except VsmError as exc:
        print(f"vsm: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # A database error can surface in any query, long after the file opened cleanly (a damaged
        # page is only read when a query needs it): it is answered here, at the one boundary, rather
        # than around every query. sqlite3 is looked up, not imported: a command that never loaded
        # it cannot have raised its errors, and `vsm metrics` does not pay for loading it.
        sqlite3 = sys.modules.get("sqlite3")
        if sqlite3 is None or not isinstance(exc, sqlite3.DatabaseError) or cfg is None:
            raise
        from metrics.store import damaged, is_damaged

        path = _db_path(args, cfg)
        message = damaged(path, exc) if is_damaged(exc) else f"the database {path}: {exc}"
        print(f"vsm: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
