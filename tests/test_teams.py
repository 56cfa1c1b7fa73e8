import json
import threading

import pytest

from metrics.errors import VsmError
from metrics.store import open_db
from metrics.teams import (
    Team,
    TeamConflict,
    create_team,
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


def _snapshot(db) -> tuple[list, list]:
    return list(db.query("select * from teams order by name")), list(db.query("select * from settings_log"))


def test_a_new_team_never_replaces_an_existing_one(db):
    """Issue 10.1: creating takes a free name and a free channel; saving never moves a team."""
    save_team(db, Team(name="payments", channel="C1", metrics=["cycle-time"]), who="U1")
    before = _snapshot(db)
    for name, channel, key in (
        ("payments", "C2", "name"),
        ("PAYMENTS", "C2", "name"),
        ("web", "C1", "channel"),
    ):
        with pytest.raises(TeamConflict) as exc:
            create_team(db, Team(name=name, channel=channel), who="U2")
        assert exc.value.key == key
    with pytest.raises(VsmError, match="team payments belongs to channel C1; it cannot be saved from C2"):
        save_team(db, Team(name="payments", channel="C2", metrics=["wip"]), who="U2")
    with pytest.raises(TeamConflict, match=r"the name 'Payments' is taken by another team \(payments\)"):
        save_team(db, Team(name="Payments", channel="C2"), who="U2")
    assert _snapshot(db) == before
    # Teams with no channel yet (declared in the file without one) do not collide with each other.
    create_team(db, Team(name="web"), who="U2")
    create_team(db, Team(name="data"), who="U2")
    assert [t.name for t in list_teams(db)] == ["data", "payments", "web"]


def test_two_set_ups_racing_for_one_name_create_one_team(tmp_path):
    """The INSERT decides under the write lock: of two connections creating the same team at once,
    exactly one wins and the other is told the name is taken, every time."""
    path = tmp_path / "race.db"
    open_db(path)
    for n in range(8):
        barrier, outcomes = threading.Barrier(2), []

        def attempt(channel: str, n=n, barrier=barrier, outcomes=outcomes) -> None:
            conn = open_db(path)
            barrier.wait()
            try:
                create_team(conn, Team(name=f"team{n}", channel=channel), who=channel)
                outcomes.append("created")
            except TeamConflict as exc:
                outcomes.append(exc.key)

        threads = [
            threading.Thread(target=attempt, args=(f"C{n}A",)),
            threading.Thread(target=attempt, args=(f"C{n}B",)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(outcomes) == ["created", "name"]
    db = open_db(path)
    assert len(list_teams(db)) == 8 and len(list(db["settings_log"].rows)) == 8


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"targets": {"cycle-time": float("inf")}}, "targets: cycle-time: expected a duration"),
        ({"targets": {"throughput": float("nan")}}, "targets: throughput: expected a number from 0"),
        ({"targets": {"no-such": 1.0}}, "targets: unknown metric 'no-such'"),
        ({"metrics": ["cycle-time", "lines-of-code"]}, "metrics: unknown metric 'lines-of-code'"),
        ({"stale_pr_hours": float("inf")}, "stale_pr_hours: expected a number of hours from 1 to 720"),
        ({"nudge_repeat_hours": -1}, "nudge_repeat_hours: expected a number of hours"),
        ({"channel": "#general"}, "channel: expected a Slack channel id"),
        ({"nudges": 5}, "nudges: expected a list of nudge kinds"),
        (
            {"digest": {"day": "mon", "time": "09:00", "period_days": float("nan")}},
            "digest: period_days: expected",
        ),
    ],
)
def test_values_that_would_break_a_team_are_never_saved(db, settings, message):
    with pytest.raises(VsmError, match=message.replace("(", r"\(")):
        save_team(db, Team(**{"name": "web", "channel": "C1", **settings}), who="U1")
    assert _snapshot(db) == ([], [])


def test_org_settings_are_checked_before_they_are_stored(db):
    for key, value, message in (
        ("admins", 5, "org admins: expected a list of up to 50 Slack user ids"),
        ("north_star", ["lines-of-code"], "org north_star: unknown metric 'lines-of-code'"),
        ("nort_star", [], "did you mean 'north_star'"),
    ):
        with pytest.raises(VsmError, match=message):
            set_org(db, key, value, who="U1")
    assert get_org(db) == {} and settings_log(db, "*org*") == []


def test_a_file_team_whose_name_or_channel_is_taken_is_not_created_but_named(db):
    create_team(db, Team(name="checkout", channel="C1"), who="U1")  # set up in Slack
    declared = [
        Team(name="web", channel="C1"),
        Team(name="Checkout", channel="C2"),
        Team(name="data", channel="C3"),
    ]
    assert seed_from_config(db, declared, {}) == [
        "team web: not created from vsm.toml: channel C1 already has a team (checkout)",
        "team Checkout: not created from vsm.toml: the name 'Checkout' is taken by another team (checkout)",
    ]
    assert [(t.name, t.channel) for t in list_teams(db)] == [("checkout", "C1"), ("data", "C3")]


def test_a_new_team_may_not_take_the_organisations_channel(db):
    """The org form refuses a team's channel; creating a team refuses the org's, in the same INSERT."""
    set_org(db, "channel", "C0LEADERS", who="U1")
    with pytest.raises(TeamConflict) as refused:
        create_team(db, Team(name="leaders", channel="C0LEADERS"), who="U2")
    assert refused.value.key == "org-channel"
    assert list_teams(db) == [] and settings_log(db, "leaders") == []
    assert create_team(db, Team(name="leaders", channel="C0OTHER"), who="U2")  # any other channel
