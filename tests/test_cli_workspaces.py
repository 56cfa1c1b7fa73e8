"""The `vsm` command line with more than one Slack workspace in the database (issue 14 §2, §3):
`--workspace` reads one workspace's teams, org settings, experiments and figures and nothing of
another's; `vsm workspaces` lists what the database holds; `vsm forget-workspace` deletes everything
one workspace owns, confirmed, and nothing else. Run as a user runs it: a real process on a real
database (the sample's, in single-workspace mode, with two more workspaces beside it)."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from fakes.slack import MockSlack
from fakes.slack import Workspace as SlackWorkspace
from slackkit import NOW
from test_cli import digest_of, vsm
from test_sync_engine import jira_source

from bot.installs import Installations
from bot.store import Store
from metrics import workspace_rows
from metrics.errors import VsmError
from metrics.experiments import start
from metrics.results import after_sync
from metrics.store import open_db
from metrics.teams import create_team, get_team, set_org

T1, T2, GRID = "T0AAA1", "T0BBB2", "E0GRID1"
OWNED = ("teams", "org", "settings_log", "deliveries", "nudge_log", "experiments", "results")
SOURCE = ("raw", "work_items", "transitions", "pull_requests", "deployments", "incidents", "sync_status")


TOKEN = "xoxb-never-printed"  # every installed workspace's bot token, unless a test gives another


def install(
    path: Path,
    *,
    team_id: str | None,
    enterprise_id: str | None = None,
    org_wide: bool = False,
    token: str = TOKEN,
):
    """A workspace installed as the OAuth flow stores it (bot.installs)."""
    from slack_sdk.oauth.installation_store import Installation

    Installations(Store(path), "CID1").save(
        Installation(
            app_id="A1",
            enterprise_id=enterprise_id,
            enterprise_name="Acme Grid" if org_wide else None,
            team_id=team_id,
            team_name=None if org_wide else "Acme \x1b[2JWeb",  # a name from Slack, printed safely
            bot_token=token,
            bot_id="B1",
            bot_user_id="U0BOT",
            bot_scopes=["chat:write"],
            user_id="U0INSTALLER",
            is_enterprise_install=org_wide,
        )
    )


@pytest.fixture(scope="module")
def base(sample_db, tmp_path_factory):
    """The sample database (three teams in single-workspace mode) plus workspace T1 (uninstalled:
    its own `payments`, with its own mapping, and `web`, org settings, a delivery, a nudge, an
    experiment, stored figures and replayed flows), T2 (installed, its own `payments`) and an
    org-wide Grid install with no team yet."""
    path = tmp_path_factory.mktemp("ws") / "two.db"
    shutil.copy(sample_db, path)
    db = open_db(path, create=False)
    sample = get_team(db, "payments")
    workflow = [dict(s) for s in sample.workflow]
    workflow[0] = {**workflow[0], "statuses": [*workflow[0]["statuses"], "Parked"]}  # a mapping of its own
    pay1 = replace(sample, channel="C0T1PAY", metrics=["throughput", "cycle-time"], workflow=workflow)
    create_team(db, pay1, who="U1", ws=T1)
    create_team(db, replace(sample, name="web", channel="C0T1WEB", metrics=["wip"]), who="U1", ws=T1)
    set_org(db, "north_star", ["throughput"], who="U1", ws=T1)
    create_team(db, replace(sample, channel="C0T2PAY", metrics=["wip"]), who="U2", ws=T2)
    db["deliveries"].insert(
        {"key": f"payments/digest/2026-11-23/{T1}", "workspace": T1, "team": "payments", "state": "sent"}
    )
    db["nudge_log"].insert(
        {"workspace": T1, "team": "payments", "kind": "stale-prs", "subject": "acme/pay#1", "sent": 1.0}
    )
    start(db, "payments", "cycle-time", "pair on every review", 4, "U1", NOW, ws=T1)
    install(path, team_id=T1)
    install(path, team_id=T2)
    after_sync(db, NOW)  # what a sync leaves: every installed workspace's flows and figures
    db.execute("delete from installations where team_id = ?", [T1])  # uninstalled since: Slack's event
    db.conn.commit()
    db.conn.close()
    install(path, team_id=None, enterprise_id=GRID, org_wide=True)
    return path


@pytest.fixture
def two(base, tmp_path):
    """A copy of ``base`` a test may change (SQLite's backup: the file and what its WAL holds)."""
    path = tmp_path / "two.db"
    source, copy = sqlite3.connect(base), sqlite3.connect(path)
    try:
        source.backup(copy)
    finally:
        source.close()
        copy.close()
    return path


def rows(path: Path, table: str, where: str = "1", params=()) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return sorted(conn.execute(f"select * from {table} where {where}", params).fetchall(), key=repr)
    finally:
        conn.close()


def held(path: Path, ws: str) -> dict[str, int]:
    return {t: len(rows(path, t, "workspace = ?", [ws])) for t in OWNED}


def t1_fingerprint(path: Path) -> str:
    db = open_db(path, readonly=True)
    try:
        return get_team(db, "payments", ws=T1).flow.fingerprint
    finally:
        db.conn.close()


def one_line_error(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert run.stdout == "" and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    return run.stderr


# -- vsm workspaces ------------------------------------------------------------------------------------
def test_workspaces_lists_each_with_its_teams_and_whether_it_is_installed(base):
    run = vsm("workspaces", "--db", str(base), cwd=base.parent)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "the single workspace: 3 teams, single-workspace mode (SLACK_BOT_TOKEN)",
        f"workspace {GRID} (Acme Grid): 0 teams, installed",
        f"workspace {T1}: 2 teams, not installed (`vsm forget-workspace {T1}` deletes what it holds)",
        f"workspace {T2} (Acme [2JWeb): 1 team, installed",  # Slack's name, its ESC dropped: inert
    ]
    listed = json.loads(vsm("workspaces", "--json", "--db", str(base), cwd=base.parent).stdout)
    assert listed == [
        {"workspace": "", "name": None, "teams": 3, "installed": False},
        {"workspace": GRID, "name": "Acme Grid", "teams": 0, "installed": True},
        {"workspace": T1, "name": None, "teams": 2, "installed": False},
        {"workspace": T2, "name": "Acme \x1b[2JWeb", "teams": 1, "installed": True},  # JSON escapes it
    ]
    assert "xoxb" not in run.stdout + run.stderr


def test_an_empty_database_has_no_workspaces_yet(tmp_path):
    open_db(tmp_path / "empty.db").conn.close()
    run = vsm("workspaces", "--db", "empty.db", cwd=tmp_path)
    assert run.returncode == 0 and run.stdout.startswith("No workspaces yet")
    assert json.loads(vsm("workspaces", "--json", "--db", "empty.db", cwd=tmp_path).stdout) == []


# -- --workspace ---------------------------------------------------------------------------------------
def test_each_command_reads_only_the_workspace_it_is_given(base):
    def run(*args: str) -> subprocess.CompletedProcess:
        done = vsm(*args, "--db", str(base), cwd=base.parent)
        assert done.returncode == 0, done.stderr
        return done

    teams = json.loads(run("teams", "--json", "--workspace", T1).stdout)
    assert [(t["name"], t["channel"]) for t in teams] == [("payments", "C0T1PAY"), ("web", "C0T1WEB")]
    assert [t["channel"] for t in json.loads(run("teams", "--json", "--workspace", T2).stdout)] == ["C0T2PAY"]
    assert json.loads(run("teams", "--json", "--workspace", GRID).stdout) == []  # installed, no team yet
    assert "No teams yet" in run("teams", "--workspace", GRID).stdout

    digest = json.loads(run("digest", "--team", "payments", "--json", "--workspace", T1).stdout)
    assert digest["channel"] == "C0T1PAY"
    assert json.loads(run("digest", "--team", "payments", "--json").stdout)["channel"] != "C0T1PAY"

    wip = json.loads(run("metric", "wip", "--team", "web", "--json", "--workspace", T1).stdout)
    assert wip["team"] == "web" and wip["metric"] == "wip"
    assert "unknown team 'web'" in one_line_error(
        vsm("metric", "wip", "--team", "web", "--db", str(base), cwd=base.parent)
    )

    found = json.loads(run("experiments", "--team", "payments", "--json", "--workspace", T1).stdout)
    assert [(e["team"], e["change"]) for e in found] == [("payments", "pair on every review")]
    assert json.loads(run("experiments", "--team", "payments", "--json", "--workspace", T2).stdout) == []
    text = run("experiments", "--team", "payments", "--workspace", T1).stdout  # its progress, in T1
    assert (
        "Trying: pair on every review" in text and "  So far: " in text and "cannot be measured" not in text
    )
    assert json.loads(run("experiments", "--team", "payments", "--json").stdout) == []

    north = json.loads(run("northstar", "--json", "--workspace", T1).stdout)
    assert [m["metric"] for m in north["metrics"]] == ["throughput"]  # T1's own North Star
    assert [r["team"] for r in north["metrics"][0]["teams"]] == ["payments", "web"]  # T1's teams, by name
    single = json.loads(run("northstar", "--json").stdout)
    assert {r["team"] for m in single["metrics"] for r in m["teams"]} == {"mobile", "payments", "platform"}


def test_without_workspace_every_command_prints_what_it_did_before_workspaces(sample_db, base, tmp_path):
    """Single-workspace mode byte for byte: the sample database alone, and the same with two more
    workspaces beside it, print the same; ``--workspace ""`` is single-workspace mode too."""
    alone = tmp_path / "alone.db"
    shutil.copy(sample_db, alone)
    for args in (
        ("teams", "--json"),
        ("teams",),
        ("digest", "--team", "payments"),
        ("digest", "--team", "payments", "--json"),
        ("metric", "cycle-time", "--team", "payments", "--json"),
        ("experiments", "--team", "payments"),
        ("northstar", "--json"),
    ):
        before = vsm(*args, "--db", str(alone), cwd=tmp_path)
        assert before.returncode == 0, before.stderr
        for extra in ((), ("--workspace", "")):
            after = vsm(*args, *extra, "--db", str(base), cwd=tmp_path)
            assert (after.returncode, after.stdout, after.stderr) == (0, before.stdout, before.stderr), args


@pytest.mark.parametrize(
    "workspace,message",
    [
        ("T0NOPE9", "the database holds nothing for workspace T0NOPE9 (`vsm workspaces` lists"),
        ("payments", "'payments' is not a Slack workspace id"),
        ("t0aaa1", "not a Slack workspace id"),
    ],
)
def test_a_workspace_the_database_does_not_hold_is_one_line_and_exit_2(base, workspace, message):
    before = digest_of(base)
    for args in (("teams",), ("digest", "--team", "payments"), ("northstar", "--json")):
        run = vsm(*args, "--workspace", workspace, "--db", str(base), cwd=base.parent)
        assert message in one_line_error(run), args
    assert digest_of(base) == before


# -- vsm forget-workspace --------------------------------------------------------------------------------
def test_forget_deletes_everything_the_workspace_owns_and_nothing_else(two):
    owned = held(two, T1)
    assert all(owned[t] > 0 for t in OWNED), owned  # every kind of row is there to be deleted
    others = {t: rows(two, t, "workspace != ?", [T1]) for t in OWNED}
    source = {t: rows(two, t) for t in (*SOURCE, "installations")}
    mine = t1_fingerprint(two)
    kept_flows = rows(two, "flows", "workflow != ?", [mine])
    assert rows(two, "flows", "workflow = ?", [mine]) and kept_flows

    run = vsm("forget-workspace", T1, "--yes", "--db", str(two), cwd=two.parent)
    assert run.returncode == 0, run.stderr
    assert run.stdout == (
        f"Forgot workspace {T1}: deleted 2 teams, 1 org setting, {owned['settings_log']} settings log rows, "
        f"1 delivery record, 1 nudge record, 1 experiment, {owned['results']} stored figures. "
        "Source data is kept.\n"
    )
    assert held(two, T1) == dict.fromkeys(OWNED, 0)
    assert {t: rows(two, t, "workspace != ?", [T1]) for t in OWNED} == others
    assert {t: rows(two, t) for t in (*SOURCE, "installations")} == source
    assert rows(two, "flows", "workflow = ?", [mine]) == []  # no remaining team maps that way
    assert rows(two, "flows", "workflow != ?", [mine]) == kept_flows

    listed = json.loads(vsm("workspaces", "--json", "--db", str(two), cwd=two.parent).stdout)
    assert [r["workspace"] for r in listed] == ["", GRID, T2]
    gone = vsm("teams", "--workspace", T1, "--db", str(two), cwd=two.parent)
    assert "holds nothing for workspace T0AAA1" in one_line_error(gone)
    again = vsm("forget-workspace", T1, "--yes", "--db", str(two), cwd=two.parent)
    assert "nothing to forget" in one_line_error(again)


@pytest.mark.parametrize(
    "args,message",
    [
        ((T1,), "confirm with --yes"),  # no terminal to type the id on, and no --yes
        (("", "--yes"), "forget-workspace takes a workspace id"),
        (("T0NOPE9", "--yes"), "holds nothing for workspace T0NOPE9"),
        (("C0T1PAY", "--yes"), "not a Slack workspace id"),
        ((), "the following arguments are required"),
    ],
)
def test_forget_refuses_in_one_line_and_deletes_nothing(base, args, message):
    before = digest_of(base)
    run = vsm("forget-workspace", *args, "--db", str(base), cwd=base.parent, env={})
    assert message in one_line_error(run)
    assert digest_of(base) == before


@pytest.mark.parametrize("ws", [T2, GRID])
def test_forget_asks_slack_and_refuses_an_installed_workspace_whose_token_works(base, ws):
    """Installed (a row in installations) and its token alive, as ``auth.test`` says: in use, refused."""
    before = digest_of(base)
    with MockSlack() as slack:
        slack.tokens[TOKEN] = SlackWorkspace(team_id=T2, team_name="Acme Web")
        run = vsm("forget-workspace", ws, "--yes", "--db", str(base), cwd=base.parent, env=api(slack))
        asked = [c.auth for c in slack.calls if c.method == "auth.test"]
    assert f"workspace {ws} is installed now: uninstall vsm-bot from it first" in one_line_error(run)
    assert asked == [f"Bearer {TOKEN}"]
    assert digest_of(base) == before


def test_forget_deletes_an_installed_workspace_whose_token_slack_says_is_dead(two):
    """vsm-bot was uninstalled from T2 while nothing listened (the event missed): its installation row
    and token stayed, and Slack answers ``token_revoked`` for it. Forgotten, its installation with it, in
    one go; the other installation (the Grid's) and the other workspaces' rows stay."""
    others = {t: rows(two, t, "workspace != ?", [T2]) for t in OWNED}
    grid = rows(two, "installations", "enterprise_id = ?", [GRID])
    owned = held(two, T2)
    assert (owned["teams"], owned["settings_log"], owned["results"]) == (1, 1, 1)
    assert rows(two, "installations", "team_id = ?", [T2])
    with MockSlack() as slack:
        slack.tokens[TOKEN] = SlackWorkspace(team_id=T2, team_name="Acme Web")
        slack.revoke(T2)  # uninstalled: its tokens stop working
        run = vsm("forget-workspace", T2, "--yes", "--db", str(two), cwd=two.parent, env=api(slack))
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        f"Slack says the bot token of workspace {T2} no longer works (vsm-bot was uninstalled there, or "
        "its token revoked, and the event was missed), so forgetting it also deletes its installation.",
        f"Forgot workspace {T2}: deleted 1 team, 0 org settings, 1 settings log row, 0 delivery records, "
        "0 nudge records, 0 experiments, 1 stored figure, 1 installation. Source data is kept.",
    ]
    assert TOKEN not in run.stdout + run.stderr
    assert held(two, T2) == dict.fromkeys(OWNED, 0)
    assert rows(two, "installations", "team_id = ?", [T2]) == []
    assert rows(two, "installations", "enterprise_id = ?", [GRID]) == grid
    assert {t: rows(two, t, "workspace != ?", [T2]) for t in OWNED} == others


# None: Slack not reached at all. invalid_auth: also what a call from outside the workspace's IP
# allowlist gets (an operator's laptop), so it never confirms a token dead.
@pytest.mark.parametrize("slack_says", ["internal_error", "invalid_auth", None])
def test_forget_refuses_an_installed_workspace_when_slack_cannot_be_asked(base, slack_says):
    before = digest_of(base)
    with MockSlack() as slack:
        if slack_says:
            slack.errors["auth.test"] = slack_says
            run = vsm("forget-workspace", T2, "--yes", "--db", str(base), cwd=base.parent, env=api(slack))
    if not slack_says:  # the mock closed: nothing listens at its address any more
        run = vsm("forget-workspace", T2, "--yes", "--db", str(base), cwd=base.parent, env=api(slack))
    assert run.returncode == 2 and "Traceback" not in run.stderr and run.stdout == ""
    assert run.stderr.splitlines()[-1] == (
        f"vsm: workspace {T2} is installed, and Slack could not be asked whether its token still works: "
        "nothing deleted (try again later, or uninstall vsm-bot from it first)"
    )
    assert TOKEN not in run.stderr
    assert digest_of(base) == before


def test_a_token_stored_after_slack_said_dead_refuses_the_forget(two):
    """Slack was asked about T2's old token (dead), and T2 installed again before the delete: its new
    token is not the one Slack said was dead, so nothing is deleted, under the write lock."""
    install(two, team_id=T2, token="xoxb-new-install")
    before = digest_of(two)
    with pytest.raises(VsmError, match=f"workspace {T2} was installed meanwhile: nothing deleted"):
        workspace_rows.forget(open_db(two, create=False), T2, dead_tokens={TOKEN})
    assert digest_of(two) == before
    assert workspace_rows.forget(open_db(two, create=False), T1, dead_tokens={TOKEN})["teams"] == 2


def api(slack: MockSlack) -> dict:
    """The environment that sends the `vsm` process's Slack calls to the mock."""
    return {"SLACK_API_URL": slack.base_url}


def test_forget_on_a_terminal_asks_for_the_id_typed_again(two):
    """The confirmation is the workspace id typed on a real terminal (a pseudo-terminal here): anything
    else keeps every row."""

    def typed(answer: str) -> subprocess.CompletedProcess:
        import pty

        leader, follower = pty.openpty()
        try:
            os.write(leader, f"{answer}\n".encode())  # the terminal holds the line until it is read
            env = {k: v for k, v in os.environ.items() if k != "VSM_CONFIG"}
            return subprocess.run(
                [sys.executable, "-m", "bot.cli", "forget-workspace", T1, "--db", str(two)],
                stdin=follower,
                cwd=two.parent,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            os.close(leader)
            os.close(follower)

    owned = held(two, T1)
    before = digest_of(two)
    refused = typed(T2)
    assert refused.returncode == 2 and "not confirmed: nothing deleted" in refused.stderr
    assert f"Forgetting workspace {T1} deletes 2 teams, 1 org setting," in refused.stdout
    assert f"Type {T1} to delete it" in refused.stdout
    assert digest_of(two) == before
    done = typed(T1)
    assert done.returncode == 0, done.stderr
    assert f"Forgot workspace {T1}: deleted 2 teams" in done.stdout
    assert held(two, T1) == dict.fromkeys(OWNED, 0) != owned


# -- vsm sync ------------------------------------------------------------------------------------------
SYNC_TEAM = """
[[team]]
name = "payments"
channel = "C1"
jira_projects = ["PAY"]
metrics = ["throughput"]

[team.workflow]
backlog = ["To Do"]
in_progress = ["In Progress"]
done = ["Done"]
"""


def test_sync_is_the_deployments_and_warms_every_workspace(tmp_path, monkeypatch):
    """`vsm sync` takes no workspace: the data it fetches is every workspace's, so it stores the
    replayed flows and figures of an installed workspace's team (T1's, with its own mapping) beside
    single mode's (the one vsm.toml declares)."""
    import time

    from fakes.jira import FakeJira

    from bot.cli import main
    from metrics.teams import Team

    path = tmp_path / "s.db"
    db = open_db(path)
    workflow = [
        {"stage": "backlog", "kind": "backlog", "statuses": ["To Do", "Parked"]},
        {"stage": "in_progress", "kind": "active", "statuses": ["In Progress"]},
        {"stage": "done", "kind": "done", "statuses": ["Done"]},
    ]
    theirs = Team(name="pay", channel="C9", jira_projects=["PAY"], metrics=["throughput"], workflow=workflow)
    create_team(db, theirs, who="U1", ws=T1)
    db.conn.close()
    install(path, team_id=T1)  # an installed workspace's digests read what the sync stores
    jira = FakeJira("jira-token-good")
    try:
        now = time.time()
        for n in range(1, 5):
            jira.add(f"PAY-{n}", now - 20 * 86400)
            jira.move_status(f"PAY-{n}", now - (12 - n) * 86400, "In Progress")
            jira.move_status(f"PAY-{n}", now - (8 - n) * 86400, "Done", resolution="Done")
        config = tmp_path / "vsm.toml"
        config.write_text(jira_source(jira.url) + SYNC_TEAM)
        monkeypatch.setenv("JIRA_TOKEN", "jira-token-good")
        monkeypatch.delenv("VSM_NOW", raising=False)
        assert main(["sync", "--config", str(config), "--db", str(path)]) == 0
    finally:
        jira.close()
    conn = sqlite3.connect(path)
    try:
        figures = dict(conn.execute("select workspace, count(*) from results group by workspace").fetchall())
        flows = {w for (w,) in conn.execute("select distinct workflow from flows")}
    finally:
        conn.close()
    assert figures.get(T1, 0) > 0 and figures.get("", 0) > 0, figures
    assert theirs.flow.fingerprint in flows and len(flows) == 2  # T1's mapping and vsm.toml's
