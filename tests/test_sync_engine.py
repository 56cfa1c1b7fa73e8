"""`vsm sync` over several sources: each on its own, a failing one named, the others stored."""

import time

from fakes.jira import FakeJira
from fakes.pagerduty import FakePagerDuty

from bot.cli import main
from metrics.store import open_db
from metrics.store.sync_status import freshness


def jira_source(url: str) -> str:
    """The vsm.toml ``[[source]]`` table of a Jira Cloud site at ``url`` syncing project PAY."""
    return f'''[[source]]
name = "jira"
kind = "jira"
url = "{url}"
deployment = "cloud"
user = "bot@acme.com"
token_env = "JIRA_TOKEN"
jql = "project in (PAY)"
'''


def test_one_failing_source_never_stops_the_others(tmp_path, monkeypatch, capsys):
    pd, jira = FakePagerDuty("pd-key-good"), FakeJira("jira-token-good")
    try:
        now = time.time()
        pd.add(now - 5 * 86400, now - 5 * 86400 + 3600)
        pd.add(now - 2 * 86400)
        config = tmp_path / "vsm.toml"
        config.write_text(
            f'''
{jira_source(jira.url)}
[[source]]
name = "pagerduty"
kind = "pagerduty"
url = "{pd.url}"
token_env = "PAGERDUTY_TOKEN"
services = ["PIJ90N7"]
'''
        )
        monkeypatch.setenv("JIRA_TOKEN", "jira-token-EXPIRED")
        monkeypatch.setenv("PAGERDUTY_TOKEN", "pd-key-good")
        db_path = tmp_path / "s.db"
        code = main(["sync", "--config", str(config), "--db", str(db_path)])
        out, err = capsys.readouterr()
    finally:
        pd.close()
        jira.close()
    assert code == 1
    assert "pagerduty: ok, 2 changed of 2 fetched" in out
    [last] = err.strip().splitlines()[-1:]
    assert last.startswith("vsm: sync failed for jira (") and "401" in last
    assert "EXPIRED" not in out + err
    db = open_db(db_path, create=False)
    assert db.execute("select count(*) from incidents").fetchone()[0] == 2
    fresh = {f["source"]: f for f in freshness(db)}
    assert fresh["pagerduty"]["as_of"] and fresh["pagerduty"]["error"] is None
    assert fresh["jira"]["as_of"] is None and "401" in fresh["jira"]["error"]
    # Each source's kind is recorded beside its streams, whether the sync worked or not.
    assert set(db.execute("select source, kind from sync_status").fetchall()) == {
        ("jira", "jira"),
        ("pagerduty", "pagerduty"),
    }


def test_a_sync_stores_the_teams_flows_so_read_commands_do_not_replay(tmp_path, monkeypatch, capsys):
    """The read-only commands cannot store what they replay: `vsm sync` replays each team's items
    once and stores the flows, and after a later sync only the changed item is replayed again."""
    jira = FakeJira("jira-token-good")
    try:
        now = time.time()
        for n in range(1, 4):
            jira.add(f"PAY-{n}", now - 9 * 86400)
            jira.move_status(f"PAY-{n}", now - 8 * 86400, "In Progress")
        jira.move_status("PAY-1", now - 86400, "Done", resolution="Done")
        config = tmp_path / "vsm.toml"
        config.write_text(
            f"""
{jira_source(jira.url)}
[[team]]
name = "payments"
channel = "C1"
jira_projects = ["PAY"]

[team.workflow]
backlog = ["To Do"]
in_progress = ["In Progress"]
done = ["Done"]
"""
        )
        monkeypatch.setenv("JIRA_TOKEN", "jira-token-good")
        db_path = tmp_path / "s.db"
        assert main(["sync", "--config", str(config), "--db", str(db_path)]) == 0
        db = open_db(db_path, create=False)
        stored = dict(db.execute("select key, done from flows").fetchall())
        assert sorted(stored) == ["PAY-1", "PAY-2", "PAY-3"]
        assert stored["PAY-1"] is not None and stored["PAY-2"] is None
        jira.move_status("PAY-2", time.time(), "Done", resolution="Done")
        assert main(["sync", "--config", str(config), "--db", str(db_path)]) == 0
    finally:
        jira.close()
    stored = dict(db.execute("select key, done from flows").fetchall())
    assert sorted(stored) == ["PAY-1", "PAY-2", "PAY-3"] and stored["PAY-2"] is not None
    capsys.readouterr()
