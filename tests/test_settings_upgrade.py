"""Settings across an upgrade: what an older vsm.toml or database holds (a plain `wip = 8`, a zero
target, lists in another order) still loads, is shown with a hint rather than an error, saves
nothing when nothing changed, and becomes a change when the team states something new; and what is
stored now still reads as numbers to the build before (a rollback)."""

from __future__ import annotations

import json

import pytest
from fakes.server import Fault
from fakes.slack import MockSlack
from slackkit import assert_valid_view, command, initial_state, interaction, slack_app

from metrics.catalogue import CATALOGUE
from metrics.config import load_config
from metrics.store import open_db
from metrics.targets import bounds, target_status
from metrics.teams import Team, diff, get_team, save_team, seed_from_config, settings_log

TOML = """
[[team]]
name = "payments"
channel = "C0123456789"
targets = { %s }
"""


def _load(tmp_path, targets: str) -> Team:
    path = tmp_path / "vsm.toml"
    path.write_text(TOML % targets)
    return load_config(str(path)).teams[0]


# -- B6: an existing vsm.toml still loads -------------------------------------------------------------


def test_targets_valid_before_still_load_from_vsm_toml_and_are_judged_as_before(tmp_path):
    team = _load(
        tmp_path,
        'wip = 8, "net-flow" = 0, throughput = 0, "cycle-time" = 0, "change-failure-rate" = 0',
    )
    wip, throughput, cycle = (team.targets[m] for m in ("wip", "throughput", "cycle-time"))
    assert target_status(CATALOGUE["wip"], 9, wip) is None  # no direction: kept, never judged
    assert target_status(CATALOGUE["throughput"], 3.0, throughput) == "met"  # at least 0, as before
    assert target_status(CATALOGUE["cycle-time"], {"p50": 10, "p85": 30}, cycle) == "missed"
    assert target_status(CATALOGUE["change-failure-rate"], 0.0, team.targets["change-failure-rate"]) == "met"
    assert target_status(CATALOGUE["net-flow"], 0.0, team.targets["net-flow"]) is None  # ≈ 0: as before


def test_vsm_says_how_to_rewrite_what_only_older_settings_allowed(tmp_path):
    """`vsm sync` and `vsm serve` seed the database from vsm.toml and print its notes: the fix is named
    in the file's own syntax. A rate of 0% is a fair aim: no note. Net flow, like WIP, has no better
    direction: `net-flow = 0` was never judged, and says so."""
    team = _load(tmp_path, 'wip = 8, throughput = 0, "change-failure-rate" = 0, "net-flow" = 0')
    db = open_db(tmp_path / "vsm.db", create=True)
    notes = seed_from_config(db, [team], {})
    assert notes == [
        "team payments: target wip = 8 is kept but not judged: work in progress has no better direction, "
        'so write wip = "<= 8" (at most) or wip = ">= 8" (at least)',
        "team payments: target throughput = 0 is always met, so it says little: write a bound above 0, "
        "or remove it",
        "team payments: target net-flow = 0 is kept but not judged: net flow has no better direction, "
        'so write net-flow = "<= 0" (at most) or net-flow = ">= 0" (at least)',
    ]


def test_the_cli_reads_an_older_vsm_toml(tmp_path, capsys):
    from bot.cli import main

    _load(tmp_path, 'wip = 8, "cycle-time" = 0')
    db = open_db(tmp_path / "vsm.db", create=True)
    seed_from_config(db, [_load(tmp_path, 'wip = 8, "cycle-time" = 0')], {})
    db.conn.close()
    code = main(["teams", "--config", str(tmp_path / "vsm.toml"), "--db", str(tmp_path / "vsm.db")])
    assert code == 0, capsys.readouterr().err


def test_vsm_serve_starts_on_an_older_vsm_toml_and_logs_the_fix(tmp_path):
    """After an upgrade `vsm serve` refused an existing vsm.toml (`wip = 8`, `throughput = 0`); it
    starts, serves, and its log names the fix."""
    from test_slack_serve import vsm_serve

    (tmp_path / "vsm.toml").write_text(TOML % 'wip = 8, throughput = 0, "cycle-time" = "5d"')
    with MockSlack() as slack, vsm_serve(tmp_path, slack.base_url) as served:
        log = served.wait_for_log('write wip = "<= 8" (at most)')
        assert "target throughput = 0 is always met" in log


def test_one_table_of_bounds_zero_where_a_team_would_aim_for_it():
    assert bounds(CATALOGUE["change-failure-rate"]) == (0.0, 100.0, False)
    assert bounds(CATALOGUE["net-flow"])[2] is False  # 0 is its aim
    assert bounds(CATALOGUE["cycle-time"])[2] is True  # typed anew: above 0
    assert bounds(CATALOGUE["throughput"])[2] is True


# -- B7: a rollback reads numbers --------------------------------------------------------------------


def test_what_is_stored_now_is_numbers_to_the_build_before(tmp_path):
    team = _load(tmp_path, 'wip = "<= 8", "cycle-time" = "10d", throughput = 0')
    stored = json.loads(team.to_json())
    assert stored["targets"] == {"wip": 8.0, "cycle-time": 240.0, "throughput": 0.0}
    # The build before: unknown fields dropped, `v <= target` on the stored number.
    older = {k: v for k, v in stored.items() if k in Team.__dataclass_fields__}
    assert all(type(v) is float for v in older["targets"].values())
    back = Team.from_json(team.to_json())
    assert (back.targets["wip"].better, back.targets["cycle-time"].text) == ("lower", "10d")


# -- B3 and B4: a change is what a user would call one ------------------------------------------------


def test_a_direction_stated_on_an_older_plain_target_is_a_change():
    old = Team(name="t", targets={"wip": 8.0})  # a plain number, as an older build kept it
    new = Team.from_json(old.to_json())
    new.targets = {"wip": _read("wip", "<= 8")}
    assert "targets" in diff(old, new)


def _read(metric: str, text: str):
    from metrics.targets import read_target

    return read_target(CATALOGUE[metric], text)


def test_order_alone_is_no_change_and_is_neither_saved_nor_logged(tmp_path):
    db = open_db(tmp_path / "vsm.db", create=True)
    team = Team(name="t", channel="C0123456789", jira_projects=["PAY", "WEB"], repos=["a/x", "a/y"])
    save_team(db, team, who="test")
    log = settings_log(db, "t")
    again = Team.from_json(team.to_json())
    again.nudges = list(reversed(again.nudges))
    again.jira_projects, again.repos = ["WEB", "PAY"], ["a/y", "a/x"]
    for stage in again.workflow:
        stage["statuses"] = list(reversed(stage["statuses"]))
    assert diff(team, again) == {}
    assert save_team(db, again, who="test") == {}
    assert settings_log(db, "t") == log
    # vsm.toml in another order: no "differs from the database" note on every start.
    assert seed_from_config(db, [again], {}) == []
    # The stages' order is the workflow: that is a change.
    moved = Team.from_json(team.to_json())
    moved.workflow = [moved.workflow[0], moved.workflow[2], moved.workflow[1], *moved.workflow[3:]]
    assert "workflow" in diff(team, moved)


# -- the form, driven as Slack drives it ---------------------------------------------------------------


@pytest.fixture
def older(sample_db, tmp_path):
    """The sample database with the payments team's targets as an older build stored them."""
    db_path = tmp_path / "app.db"
    db_path.write_bytes(sample_db.read_bytes())
    db = open_db(db_path, create=False)
    row = next(db.query("select settings from teams where name = 'payments'"))
    settings = json.loads(row["settings"])
    settings["targets"] = {"wip": 8, "throughput": 0, "cycle-time": 300}
    settings.pop("target_forms", None)
    db.execute("update teams set settings = ? where name = 'payments'", [json.dumps(settings)])
    team = get_team(db, "payments")
    db.conn.close()
    with MockSlack(members={team.channel: ["U1"], "CNEWCHAN1": ["U3"]}) as slack:
        yield slack_app(db_path, slack), slack, team, db_path


def _open(app, slack, channel: str, user: str = "U1") -> dict:
    command(app, "settings", channel=channel, user=user, response_url=f"{slack.url}/response/1")
    [opened] = slack.calls_to("views.open")
    view = opened.body["view"]
    assert_valid_view(view)
    return view


def _block(view: dict, block_id: str) -> dict:
    return next(b for b in view["blocks"] if b.get("block_id") == block_id)


def _submit(app, view: dict, state: dict, user: str = "U1"):
    return interaction(
        app, {"type": "view_submission", "user": {"id": user}, "view": {**view, "id": "V1", "state": state}}
    )


def _posted(slack) -> list[str]:
    return [c.body["text"] for c in slack.calls_to("chat.postMessage")]


def test_an_older_target_is_shown_with_a_hint_and_blocks_no_save(older):
    app, slack, team, db_path = older
    view = _open(app, slack, team.channel)
    targets = _block(view, "targets")
    assert {"wip = 8", "throughput = 0", "cycle-time = 12.5d"} <= set(
        targets["element"]["initial_value"].splitlines()
    )
    hint = targets["hint"]["text"]
    assert "wip = 8 is kept but not judged" in hint and "wip ≤ 8 (at most)" in hint
    assert "throughput = 0 is always met" in hint
    # Untouched: no error on lines the team did not type, nothing saved, nothing posted.
    db = open_db(db_path, create=False)
    log = settings_log(db, team.name)
    assert _submit(app, view, initial_state(view)).body == ""
    assert settings_log(open_db(db_path, create=False), team.name) == log and _posted(slack) == []
    # Another change saves, the older targets kept as they were.
    state = initial_state(view)
    state["values"]["day"]["v"]["selected_option"] = {
        "text": {"type": "plain_text", "text": "Wed"},
        "value": "wed",
    }
    assert _submit(app, view, state).body == ""
    [said] = _posted(slack)
    assert said == "<@U1> changed the team settings: digest: Mon 09:30 → Wed 09:30 Europe/London"
    kept = get_team(open_db(db_path, create=False), team.name).targets
    assert (kept["wip"], kept["wip"].better, kept["throughput"]) == (8.0, "", 0.0)
    # The figure says its target is not judged, and how to have it judged.
    command(app, "wip", channel=team.channel, user="U1", response_url=f"{slack.url}/response/2")
    reply = json.dumps(slack.responses()[-1], ensure_ascii=False)
    assert "not judged: say which way in the settings, e.g. wip ≤ 8" in reply


def test_stating_a_direction_on_an_older_target_is_saved_and_said(older):
    """B3: `wip <= 8` on a stored plain 8 was seen as no change: nothing saved, nothing said."""
    app, slack, team, db_path = older
    view = _open(app, slack, team.channel)
    state = initial_state(view)
    state["values"]["targets"]["v"]["value"] = "wip <= 8\nthroughput = 0\ncycle-time = 12.5d"
    assert _submit(app, view, state).body == ""
    [said] = _posted(slack)
    assert said == "<@U1> changed the team settings: target work in progress: 8.0 items → ≤ 8.0 items"
    wip = get_team(open_db(db_path, create=False), team.name).targets["wip"]
    assert target_status(CATALOGUE["wip"], 9, wip) == "missed"


def test_an_older_value_typed_anew_is_refused(older):
    app, slack, team, _ = older
    view = _open(app, slack, team.channel)
    state = initial_state(view)
    state["values"]["targets"]["v"]["value"] = "wip = 9\nthroughput = 0\nlead-time = 0"
    body = json.loads(_submit(app, view, state).body)
    error = body["errors"]["targets"]
    assert "Line 1: wip: work in progress has no better direction" in error
    assert "Line 2" not in error  # the team's own 0, untouched
    assert "Line 3: lead-time: expected a duration above 0" in error


# -- opening the form within the trigger's 3 seconds ----------------------------------------------------


def test_a_rate_limited_membership_check_refuses_rather_than_waits(sample_db, tmp_path):
    """The membership check before the form opens is bounded, as the submission's is: the app's own
    client would retry a 429 while the trigger_id expires. A Retry-After of 0 lets the unbounded
    client retry and open the form; the bounded one makes one call and says it could not check."""
    db_path = tmp_path / "app.db"
    db_path.write_bytes(sample_db.read_bytes())
    team = get_team(open_db(db_path, create=False), "payments")
    with MockSlack(members={team.channel: ["U1"]}) as slack:
        app = slack_app(db_path, slack)
        slack.fail("/conversations.members", Fault(429, {"Retry-After": "0"}))
        command(app, "settings", channel=team.channel, user="U1", response_url=f"{slack.url}/response/1")
        assert slack.calls_to("views.open") == []
        assert "Could not check the channel's members" in slack.responses()[-1]["text"]


def test_a_change_is_never_announced_in_no_words():
    """describe() said "" for changes its phrases do not cover (a stage's statuses in another order,
    a plain 8 given a direction), and the channel got "changed the team settings: "."""
    from bot.render.settings_changes import describe

    team = Team(name="t")
    shuffled = [{**s, "statuses": list(reversed(s["statuses"]))} for s in team.workflow]
    assert describe({"workflow": [team.workflow, shuffled]}, team) == "workflow changed"
    said = describe({"targets": [{"wip": 8.0}, {"wip": _read("wip", "<= 8")}]}, team)
    assert said == "target work in progress: 8.0 items → ≤ 8.0 items"
