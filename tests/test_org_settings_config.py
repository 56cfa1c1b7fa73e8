"""Issue 13 §1: ``[org]`` targets, channel, time zone and digest in vsm.toml, checked as a team's are,
stored with a change log, and read back by the roll-up (``metrics.org``) with the direction stated."""

from __future__ import annotations

import json

import pytest
from test_config import config_error, line_of, write

from metrics.catalogue import CATALOGUE
from metrics.config import load_config
from metrics.errors import VsmError
from metrics.org import org_target, org_targets, org_window
from metrics.store import open_db
from metrics.targets import Target
from metrics.teams import (
    ORG_LOG,
    get_org,
    org_settings,
    org_version,
    seed_from_config,
    set_org,
    settings_log,
)

BASE = """
[[team]]
name = "payments"
channel = "C0PAYMENTS1"

[org]
north_star = ["lead-time-for-changes", "deployment-frequency", "wip"]
channel = "C0LEADERS01"
timezone = "Europe/London"
digest = { day = "wed", time = "10:15" }
targets = { "lead-time-for-changes" = "2d", "deployment-frequency" = 5, "wip" = "<= 8" }
"""


@pytest.fixture
def db(tmp_path):
    return open_db(tmp_path / "t.db")


def test_org_targets_load_as_a_teams_targets_do_with_their_direction_and_words(tmp_path):
    org = load_config(write(tmp_path, BASE)).org
    targets = org["targets"]
    assert targets == {
        "lead-time-for-changes": 48.0,
        "deployment-frequency": 5.0,
        "wip": 8.0,
    }
    assert all(isinstance(t, Target) for t in targets.values())
    assert (targets["lead-time-for-changes"].better, targets["lead-time-for-changes"].text) == ("lower", "2d")
    assert targets["deployment-frequency"].better == "higher"
    assert (targets["wip"].better, targets["wip"].op) == ("lower", "≤")  # stated: wip has no direction
    assert org["channel"] == "C0LEADERS01" and org["timezone"] == "Europe/London"


def test_org_targets_are_stored_as_plain_numbers_with_forms_beside_and_read_back_by_the_rollup(tmp_path, db):
    org = load_config(write(tmp_path, BASE)).org
    assert seed_from_config(db, [], org) == []
    rows = {r["key"]: json.loads(r["value"]) for r in db.query("select key, value from org")}
    # The plain numbers a reader that knows no forms judges in the metric's better direction.
    assert rows["targets"] == {"lead-time-for-changes": 48.0, "deployment-frequency": 5.0, "wip": 8.0}
    assert rows["target_forms"]["wip"] == {"value": 8.0, "better": "lower", "op": "≤", "text": "8"}
    loaded = get_org(db)
    assert "target_forms" not in loaded
    assert loaded["targets"]["lead-time-for-changes"].text == "2d"
    # metrics.org reads them: a context metric keeps the direction the org stated (read again as a
    # plain number it would have none, and never be judged).
    wip = org_target(CATALOGUE["wip"], org_targets(loaded)["wip"])
    assert wip == 8.0 and wip.better == "lower"
    lead = org_target(CATALOGUE["lead-time-for-changes"], org_targets(loaded)["lead-time-for-changes"])
    assert lead == 48.0 and lead.better == "lower"
    # A second start with the same file: nothing differs, nothing is written again.
    assert seed_from_config(db, [], org) == []
    assert [r["who"] for r in settings_log(db, ORG_LOG)] == ["vsm.toml"] * 5


@pytest.mark.parametrize(
    "targets,expected",
    [
        (
            '{ "lead-time-for-changes" = "soon", "deployment-frequency" = -1, "throughput" = 5 }',
            "org: targets: lead-time-for-changes: 'soon' is not a duration above 0 and up to 365d, such as "
            "36h, 5d or 2w (a plain number is hours); deployment-frequency: expected a number above 0 and "
            "up to 100000 (deploys/week), not -1; throughput: not a North Star metric (north_star: "
            "'lead-time-for-changes', 'deployment-frequency', 'wip'); the org's targets are shown only "
            "beside the North Star figures",
        ),
        ('{ "lead-time-for-changes" = ">= 2d" }', "org: targets: lead-time-for-changes: lower is better"),
        ('{ "wip" = 8 }', "org: targets: wip: work in progress has no better direction: say which way"),
        ('{ "nope" = 8 }', "org: targets: 'nope': unknown metric (see `vsm metrics`)"),
        ('{ "lead-time-for-changes" = "nan" }', "org: targets: lead-time-for-changes: expected a duration"),
        ("5", "org: targets: expected a table of North Star metric id = target"),
    ],
)
def test_bad_org_targets_fail_in_one_line_naming_the_file_line_and_every_bad_target(
    tmp_path, targets, expected
):
    text = BASE.replace(
        'targets = { "lead-time-for-changes" = "2d", "deployment-frequency" = 5, "wip" = "<= 8" }',
        f"targets = {targets}",
    )
    message = config_error(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'vsm.toml'}, line {line_of(text, 'targets =')}: ")
    assert expected in message


@pytest.mark.parametrize(
    "old,new,expected,marker",
    [
        (
            'channel = "C0LEADERS01"',
            'channel = "C0PAYMENTS1"',
            "org: channel: C0PAYMENTS1 is the channel of team payments; allowed: a channel of the "
            "organisation's own",
            'channel = "C0PAYMENTS1"\ntimezone',
        ),
        (
            'channel = "C0LEADERS01"',
            'channel = "#leaders"',
            "org: channel: expected a Slack channel id such as C0123456789",
            'channel = "#leaders"',
        ),
        (
            'timezone = "Europe/London"',
            'timezone = "Mars/Olympus"',
            "org: timezone: expected an IANA time zone",
            "timezone =",
        ),
        (
            'digest = { day = "wed", time = "10:15" }',
            'digest = { day = "wed", time = "25:00" }',
            "org: digest: time '25:00' must be HH:MM (24 h)",
            "digest =",
        ),
        (
            'digest = { day = "wed", time = "10:15" }',
            "digest = { period_days = 400 }",
            "org: digest: period_days: expected a whole number of days from 7 to 182, not 400",
            "digest =",
        ),
    ],
)
def test_bad_org_channel_zone_and_digest_fail_in_one_line(tmp_path, old, new, expected, marker):
    text = BASE.replace(old, new, 1)
    message = config_error(tmp_path, text)
    first = marker.split("\n")[0]
    lines = [n for n, ln in enumerate(text.splitlines(), start=1) if ln.strip().startswith(first)]
    assert message.startswith(f"{tmp_path / 'vsm.toml'}, line {lines[-1]}: "), message
    assert expected in message


def test_a_digest_set_in_part_is_in_effect_with_its_defaults(tmp_path, db):
    seed_from_config(db, [], load_config(write(tmp_path, BASE)).org)
    org = get_org(db)
    assert org["digest"] == {"day": "wed", "time": "10:15"}  # as the file said
    assert org_settings(org)["digest"] == {"day": "wed", "time": "10:15", "period_days": 28}
    assert org_settings({})["digest"] == {"day": "mon", "time": "08:00", "period_days": 28}
    assert org_settings({})["timezone"] == "UTC" and org_settings({})["channel"] == ""


def test_set_org_logs_a_change_in_words_once_and_an_unchanged_value_not_at_all(db):
    assert org_version(db) == 0
    two_days = Target(48.0, "lower", "2d", "=")
    assert set_org(db, "targets", {"lead-time-for-changes": two_days}, who="U1", what="target set")
    version = org_version(db)
    assert version > 0
    # The same bound written another way is the same target: nothing is written or logged.
    assert not set_org(db, "targets", {"lead-time-for-changes": Target(48.0, "lower", "48h")}, who="U2")
    assert org_version(db) == version
    [row] = settings_log(db, ORG_LOG)
    assert (row["who"], row["what"]) == ("U1", "target set")
    change = json.loads(row["change"])
    # As a team's log keeps targets: each with its direction and words, never a bare number.
    assert change == {
        "targets": [
            None,
            {"lead-time-for-changes": {"value": 48.0, "better": "lower", "op": "=", "text": "2d"}},
        ]
    }
    # A digest equal to the one set but for its defaults is no change either.
    assert set_org(db, "digest", {"day": "wed", "time": "10:15"}, who="U1")
    assert not set_org(db, "digest", {"day": "wed", "time": "10:15", "period_days": 28}, who="U1")
    assert len(settings_log(db, ORG_LOG)) == 2


def test_set_org_refuses_targets_out_of_their_metrics_bounds(db):
    for value, said in (
        ({"change-failure-rate": 150.0}, "org targets: change-failure-rate: expected a percentage"),
        ({"lead-time-for-changes": float("inf")}, "org targets: lead-time-for-changes: expected a duration"),
        ({"lines-of-code": 5.0}, "org targets: unknown metric 'lines-of-code'"),
    ):
        with pytest.raises(VsmError) as exc:
            set_org(db, "targets", value, who="U1")
        assert said in str(exc.value)
    assert get_org(db) == {} and settings_log(db, ORG_LOG) == []


def test_the_org_window_follows_the_org_zone_and_period(tmp_path, db):
    """The settings stored are the ones the roll-up draws its window with."""
    from datetime import UTC, datetime

    text = BASE.replace('digest = { day = "wed", time = "10:15" }', "digest = { period_days = 14 }")
    seed_from_config(db, [], load_config(write(tmp_path, text)).org)
    window = org_window(get_org(db), datetime(2026, 7, 15, 12, 0, tzinfo=UTC))
    # 14 whole London days before 15 July: from 1 July 00:00 BST (30 June 23:00 UTC).
    assert window.start == datetime(2026, 6, 30, 23, 0, tzinfo=UTC).timestamp()
    assert window.end == datetime(2026, 7, 14, 23, 0, tzinfo=UTC).timestamp()
