"""Issue 14 §2 at its root: every team, org setting and settings log row belongs to one workspace
(``metrics.workspace``), the same team name may live in two, and a database from before workspaces
(m012) keeps every row, in single-workspace mode's workspace, unchanged."""

import json

import pytest
import sqlite_utils

from metrics.errors import VsmError
from metrics.store import open_db
from metrics.store.schema import MIGRATIONS
from metrics.teams import (
    Team,
    TeamConflict,
    all_teams,
    create_team,
    get_org,
    get_team,
    list_teams,
    org_version,
    save_team,
    set_org,
    settings_log,
    team_for_channel,
)
from metrics.workspace import SINGLE, parse_workspace, shown, workspace_of

T1, T2 = "T0AAA1", "T0BBB2"


@pytest.fixture
def db(tmp_path):
    return open_db(tmp_path / "w.db")


def test_a_workspace_is_its_team_id_or_an_org_wide_grid_install_its_enterprise_id():
    assert workspace_of(None, T1, False) == T1
    assert workspace_of("E0GRID", T1, False) == T1  # installed on its own: still its team id
    assert workspace_of("E0GRID", T1, True) == "E0GRID"  # org-wide: one set of teams for the org
    assert workspace_of("E0GRID", None, True) == "E0GRID"
    for enterprise, team, org_wide in ((None, None, False), (None, "", False), ("E0GRID", "x'; drop", False)):
        with pytest.raises(VsmError):
            workspace_of(enterprise, team, org_wide)
    assert parse_workspace(" T0AAA1 ") == T1
    assert parse_workspace("") == SINGLE
    with pytest.raises(VsmError, match="not a Slack workspace id"):
        parse_workspace("payments")
    assert shown(SINGLE) == "the single workspace"
    assert shown(T1) == f"workspace {T1}"


def test_the_same_team_name_lives_in_two_workspaces_each_with_its_own_settings_and_log(db):
    create_team(db, Team(name="payments", channel="C1", metrics=["cycle-time"]), who="U1", ws=T1)
    create_team(db, Team(name="Payments", channel="C2", metrics=["lead-time"]), who="U9", ws=T2)
    assert get_team(db, "payments", ws=T1).metrics == ["cycle-time"]
    assert get_team(db, "payments", ws=T2).metrics == ["lead-time"]
    with pytest.raises(VsmError, match="unknown team"):
        get_team(db, "payments")  # single mode's workspace has none
    assert [t.channel for t in list_teams(db, ws=T1)] == ["C1"]
    assert team_for_channel(db, "C2", ws=T1) is None
    assert team_for_channel(db, "C2", ws=T2).name == "Payments"
    assert sorted(t.channel for t in all_teams(db)) == ["C1", "C2"]

    team = get_team(db, "payments", ws=T1)
    team.metrics = ["cycle-time", "pr-pickup-time"]
    assert save_team(db, team, who="U1", ws=T1)
    assert get_team(db, "payments", ws=T2).metrics == ["lead-time"]  # T2's same-named team untouched
    assert [r["what"] for r in settings_log(db, "payments", ws=T1)] == ["created", "changed metrics"]
    assert [r["who"] for r in settings_log(db, "Payments", ws=T2)] == ["U9"]
    assert settings_log(db, "payments") == []


def test_a_name_or_channel_is_taken_only_within_its_workspace(db):
    create_team(db, Team(name="payments", channel="C1"), who="U1", ws=T1)
    with pytest.raises(TeamConflict) as taken:
        create_team(db, Team(name="PAYMENTS", channel="C7"), who="U2", ws=T1)
    assert taken.value.key == "name"
    with pytest.raises(TeamConflict) as channel:
        create_team(db, Team(name="mobile", channel="C1"), who="U2", ws=T1)
    assert channel.value.key == "channel"
    # A team saved from another workspace never reaches T1's row, even under the same name.
    create_team(db, Team(name="payments", channel="C5"), who="U3", ws=T2)
    assert get_team(db, "payments", ws=T1).channel == "C1"


def test_org_settings_and_their_version_are_each_workspaces_own(db):
    assert set_org(db, "channel", "C0ORG1", who="U1", ws=T1)
    assert set_org(db, "north_star", ["lead-time"], who="U1", ws=T1)
    assert get_org(db, ws=T1)["channel"] == "C0ORG1"
    assert "channel" not in get_org(db, ws=T2)
    assert get_org(db) == {}
    assert org_version(db, ws=T2) == 0 and org_version(db, ws=T1) > 0
    # T1's org channel is not a team's there, but is nothing to T2.
    with pytest.raises(TeamConflict) as org_channel:
        create_team(db, Team(name="web", channel="C0ORG1"), who="U1", ws=T1)
    assert org_channel.value.key == "org-channel"
    create_team(db, Team(name="web", channel="C0ORG1"), who="U1", ws=T2)
    # Targets keep their forms per workspace (two rows, written in one transaction).
    assert set_org(db, "targets", {"lead-time": 5}, who="U1", ws=T2)
    assert float(get_org(db, ws=T2)["targets"]["lead-time"]) == 5.0
    assert "targets" not in get_org(db, ws=T1)


def test_a_database_from_before_workspaces_keeps_every_row_in_single_mode(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    MIGRATIONS.apply(db, stop_before="m013_workspaces")
    team = Team(name="payments", channel="C1", metrics=["cycle-time"])
    db["teams"].insert({"name": team.name, "channel": "C1", "timezone": "UTC", "settings": team.to_json()})
    db["org"].insert({"key": "channel", "value": json.dumps("C0ORG")})
    db["settings_log"].insert(
        {"team": "payments", "at": "2026-01-01", "who": "U1", "what": "created", "change": "{}"}
    )
    db["deliveries"].insert(
        {"key": "payments/digest/2026-01-05", "team": "payments", "state": "sent", "ts": "1.2"}
    )
    db["nudge_log"].insert({"team": "payments", "kind": "stale-prs", "subject": "acme/pay#1", "sent": 1.0})
    db.execute(
        "insert into experiments (team, metric, change, weeks, timezone, started, ends) "
        "values ('payments', 'cycle-time', 'pairing', 4, 'UTC', 1, 2)"
    )
    db.conn.close()

    db = open_db(path)  # applies m013
    assert get_team(db, "payments").metrics == ["cycle-time"]
    assert team_for_channel(db, "C1").name == "payments"
    assert get_org(db) == {"channel": "C0ORG"}
    assert [r["who"] for r in settings_log(db, "payments")] == ["U1"]
    assert db["deliveries"].get("payments/digest/2026-01-05")["workspace"] == SINGLE
    assert [r["workspace"] for r in db["nudge_log"].rows] == [SINGLE]
    assert [r["workspace"] for r in db["experiments"].rows] == [SINGLE]
    assert list_teams(db, ws=T1) == []
    # The one-running rule is per workspace now: T1 may run the same metric while single mode's runs.
    db.execute(
        "insert into experiments (workspace, team, metric, change, weeks, timezone, started, ends) "
        "values (?, 'payments', 'cycle-time', 'pairing', 4, 'UTC', 1, 2)",
        [T1],
    )
    with pytest.raises(sqlite_utils.db.sqlite3.IntegrityError):
        db.execute(
            "insert into experiments (team, metric, change, weeks, timezone, started, ends) "
            "values ('payments', 'cycle-time', 'again', 4, 'UTC', 1, 2)"
        )
