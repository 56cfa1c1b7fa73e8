"""`vsm sync` over several sources: each on its own, a failing one named, the others stored."""

import time

from fakes.jira import FakeJira
from fakes.pagerduty import FakePagerDuty

from bot.cli import main
from metrics.store import open_db
from metrics.store.sync_status import freshness


def test_one_failing_source_never_stops_the_others(tmp_path, monkeypatch, capsys):
    pd, jira = FakePagerDuty("pd-key-good"), FakeJira("jira-token-good")
    try:
        now = time.time()
        pd.add(now - 5 * 86400, now - 5 * 86400 + 3600)
        pd.add(now - 2 * 86400)
        config = tmp_path / "vsm.toml"
        config.write_text(
            f'''
[[source]]
name = "jira"
kind = "jira"
url = "{jira.url}"
deployment = "cloud"
user = "bot@acme.com"
token_env = "JIRA_TOKEN"
jql = "project in (PAY)"

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
