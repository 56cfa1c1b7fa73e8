"""`vsm move-workspace T…` (issue 14 §4): an operator who ran vsm-bot on SLACK_BOT_TOKEN and now serves
installs hands single-workspace mode's teams, settings, experiments and history to the workspace they
were set up in, in one transaction, without a digest sent twice; never over what that workspace holds."""

import shutil
import sqlite3

from test_cli import digest_of, vsm
from test_cli_workspaces import T1, base, one_line_error, rows  # noqa: F401 - base is a fixture

from bot.schedule.delivery import Key, settled
from metrics.store import open_db
from metrics.teams import get_team, list_teams, settings_log

NEW = "T0NEW01"


def test_move_hands_single_modes_rows_to_the_workspace_and_keeps_the_ledger(sample_db, tmp_path):
    path = tmp_path / "single.db"
    shutil.copy(sample_db, path)
    db = open_db(path, create=False)
    before = [(t.name, t.to_json()) for t in list_teams(db)]
    log = [(r["who"], r["what"]) for r in settings_log(db, "payments")]
    db["deliveries"].insert(
        {"key": "payments/digest/2026-11-23", "team": "payments", "state": "sent", "ts": "1.5"}
    )
    db.conn.close()

    run = vsm("move-workspace", NEW, "--yes", "--db", str(path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"Moved single-workspace mode's rows to workspace {NEW}: 3 teams")
    # A running serve planned its jobs at start, from the rows as they were: the operator is told.
    assert run.stdout.splitlines()[-1] == (
        f"Restart `vsm serve` if it is running: it schedules workspace {NEW}'s digests and nudges when it "
        "starts, so the moved teams get none until it does."
    )

    db = open_db(path, create=False)
    assert [(t.name, t.to_json()) for t in list_teams(db, ws=NEW)] == before
    assert list_teams(db) == []
    assert [(r["who"], r["what"]) for r in settings_log(db, "payments", ws=NEW)] == log
    # The day's digest, sent in single mode, is already sent for the workspace: the scheduler's key.
    outcome = settled(db, Key("payments", "digest", "2026-11-23", workspace=NEW))
    assert outcome is not None and outcome.state == "already-sent"
    assert get_team(db, "payments", ws=NEW).channel
    assert rows(path, "results", "workspace in ('', ?)", [NEW]) == []  # cached figures recomputed


def test_move_never_merges_into_a_workspace_that_has_rows(base, tmp_path):  # noqa: F811 - the fixture
    path = tmp_path / "two.db"
    shutil.copy(base, path)
    for wal in ("-wal", "-shm"):
        if (base.parent / (base.name + wal)).exists():
            shutil.copy(base.parent / (base.name + wal), tmp_path / (path.name + wal))
    before = digest_of(path)
    taken = vsm("move-workspace", T1, "--yes", "--db", str(path), cwd=tmp_path)
    assert f"workspace {T1} already has its own teams" in one_line_error(taken)
    unconfirmed = vsm("move-workspace", NEW, "--db", str(path), cwd=tmp_path)
    assert "confirm with --yes" in one_line_error(unconfirmed)
    single = vsm("move-workspace", "", "--yes", "--db", str(path), cwd=tmp_path)
    assert "move-workspace takes the workspace to move to" in one_line_error(single)
    assert digest_of(path) == before
    conn = sqlite3.connect(path)
    assert conn.execute("select count(*) from teams where workspace = ''").fetchone()[0] == 3
    conn.close()


def test_an_installable_serve_says_single_modes_teams_wait_to_be_moved(sample_db, tmp_path, monkeypatch):
    import test_slack_serve
    from fakes.slack import MockSlack
    from test_oauth_serve import oauth_env

    shutil.copy(sample_db, tmp_path / "s.db")  # the database vsm_serve serves: three single-mode teams
    monkeypatch.setattr(test_slack_serve, "serve_env", oauth_env)
    with MockSlack() as slack, test_slack_serve.vsm_serve(tmp_path, slack.base_url) as served:
        said = served.wait_for_log("are not served when installable")
    assert "3 team(s) of single-workspace mode" in said and "`vsm move-workspace T…`" in said
