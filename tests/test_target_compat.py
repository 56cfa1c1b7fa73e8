"""Targets across versions: settings written before targets had directions still load, judge and
save, and settings written now still read as numbers to an older vsm-bot (a rollback)."""

import json

from bot.settings_form import read_targets as _targets
from metrics.catalogue import CATALOGUE
from metrics.targets import read_target, target_status
from metrics.teams import Team, diff


def test_stored_targets_are_plain_numbers_with_their_forms_beside_them():
    team = Team(name="t", targets={"cycle-time": read_target(CATALOGUE["cycle-time"], "10d")})
    stored = json.loads(team.to_json())
    assert stored["targets"] == {"cycle-time": 240.0}  # what an older build compares with a figure
    assert stored["target_forms"]["cycle-time"]["text"] == "10d"
    back = Team.from_json(team.to_json()).targets["cycle-time"]
    assert (back, back.text, back.better) == (240.0, "10d", "lower")


def test_settings_from_before_directions_load_and_judge_as_before():
    old = Team.from_json(json.dumps({"name": "t", "targets": {"cycle-time": 120, "wip": 8}}))
    assert (
        target_status(CATALOGUE["cycle-time"], {"p50": 50, "p85": 130}, old.targets["cycle-time"]) == "missed"
    )
    assert old.targets["wip"].better == "" and target_status(CATALOGUE["wip"], 9, old.targets["wip"]) is None


def test_stating_a_direction_on_an_older_plain_target_is_a_change():
    old = Team.from_json(json.dumps({"name": "t", "targets": {"wip": 8}}))
    errors: dict = {}
    new = Team.from_json(old.to_json())
    new.targets = _targets("wip <= 8", errors, old.targets)
    assert errors == {} and new.targets["wip"].better == "lower"
    assert "targets" in diff(old, new)


def test_an_untouched_older_plain_target_does_not_block_the_form():
    current = Team.from_json(json.dumps({"name": "t", "targets": {"wip": 8}})).targets
    errors: dict = {}
    kept = _targets("wip = 8\ncycle-time = 5d", errors, current)
    assert errors == {} and kept["wip"] == current["wip"] and kept["cycle-time"] == 120.0
    errors = {}
    _targets("wip = 9", errors, current)  # a new plain bound must say which way
    assert "no better direction" in errors["targets"]


def test_a_repeated_line_with_a_bad_value_reports_both_problems():
    errors: dict = {}
    _targets("cycle-time = 5d\ncycle-time = banana", errors)
    assert "already has a target on line 1" in errors["targets"]
    assert "banana" in errors["targets"]
