import json

import pytest

from metrics.errors import VsmError
from metrics.store import open_db
from metrics.teams import (
    Team,
    get_org,
    get_team,
    list_teams,
    save_team,
    seed_from_config,
    set_org,
    settings_log,
    team_for_channel,
)


@pytest.fixture
def db(tmp_path):
    return open_db(tmp_path / "t.db")


def test_teams_round_trip_and_change_log(db):
    t = Team(name="payments", channel="C1", timezone="Europe/London", metrics=["cycle-time"])
    assert save_team(db, t, who="U1")
    t.metrics = ["cycle-time", "pr-pickup-time"]
    changes = save_team(db, t, who="U2")
    assert changes == {"metrics": [["cycle-time"], ["cycle-time", "pr-pickup-time"]]}
    assert save_team(db, t, who="U3") == {}  # nothing changed, nothing logged
    log = settings_log(db, "payments")
    assert [(r["who"], r["what"]) for r in log] == [("U1", "created"), ("U2", "changed metrics")]
    assert json.loads(log[1]["change"])["metrics"][1] == ["cycle-time", "pr-pickup-time"]
    assert get_team(db, "PAYMENTS").metrics == ["cycle-time", "pr-pickup-time"]  # case-insensitive
    assert team_for_channel(db, "C1").name == "payments"
    assert team_for_channel(db, "C2") is None


def test_unknown_team_names_the_known_ones(db):
    save_team(db, Team(name="web"), who="U1")
    with pytest.raises(VsmError, match=r"unknown team 'nope' \(known: web\)"):
        get_team(db, "nope")


def test_invalid_settings_are_refused_and_nothing_is_written(db):
    with pytest.raises(VsmError, match="digest"):
        save_team(db, Team(name="web", digest={"day": "someday", "time": "09:00"}), who="U1")
    with pytest.raises(VsmError, match="timezone"):
        save_team(db, Team(name="web", timezone="Nowhere/Land"), who="U1")
    assert list_teams(db) == []
    assert list(db["settings_log"].rows) == []


def test_seed_creates_once_then_the_database_wins(db):
    declared = Team(name="payments", channel="C1", metrics=["throughput"])
    assert seed_from_config(db, [declared], {"north_star": ["throughput"]}) == []
    # The team changes its metrics in chat; the file still says otherwise.
    chat = get_team(db, "payments")
    chat.metrics = ["cycle-time"]
    save_team(db, chat, who="U9")
    warnings = seed_from_config(db, [declared], {"north_star": ["throughput"]})
    assert warnings == [
        "team payments: vsm.toml differs from the database on metrics; "
        "the database wins (the team changes its settings in Slack)"
    ]
    assert get_team(db, "payments").metrics == ["cycle-time"]
    assert [r["who"] for r in settings_log(db, "payments")] == ["vsm.toml", "U9"]


def test_org_settings_are_logged(db):
    set_org(db, "north_star", ["deployment-frequency"], who="U1")
    set_org(db, "north_star", ["deployment-frequency"], who="U1")  # unchanged: not logged again
    assert get_org(db) == {"north_star": ["deployment-frequency"]}
    assert [r["what"] for r in settings_log(db, "*org*")] == ["changed org north_star"]
