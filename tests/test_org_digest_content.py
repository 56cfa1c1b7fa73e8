"""What the org digest says (metrics/org_digest.py), with hand-made history.

Three teams, each on its own Jira project, with cycle time as their determinant metric: an item
done every day for 26 weeks, committed 20 to 28 hours before it is done. In the org's period (5 Jan
– 2 Feb 2026, UTC, as of Mon 2 Feb) "fast" finishes its items in 2 hours, "slow" in 10 days, and
"calm" as before. The sync ledger: Jira synced, the incident tool's last sync failed, a GitHub source
never synced.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from builders import item, new_db, team, ts

from bot.render import org_digest as render
from metrics import experiments as ex
from metrics import results
from metrics.catalogue import CATALOGUE
from metrics.catalogue.base import Result, Words
from metrics.digest import build_digest, digest_window
from metrics.org import org_window, rollups
from metrics.org_digest import STALE_AFTER, build_org_digest, signal_better, source_kinds
from metrics.teams import create_team, get_team, list_teams, set_org

NOW = datetime(2026, 2, 2, 12, 0, tzinfo=UTC)
START = ts("2025-08-04 00:00")
WINDOW_START = ts("2026-01-05 00:00")


def history(db, project: str, hours_in_window: float) -> None:
    day, n = START, 0
    while day + 86400 <= NOW.timestamp() - 12 * 3600:
        n += 1
        hours = hours_in_window if day >= WINDOW_START else 20 + (n * 7) % 9
        done = day + 12 * 3600
        at = lambda h, d=done: datetime.fromtimestamp(d - h * 3600, UTC).isoformat()  # noqa: E731
        item(db, f"{project}-{n}", at(hours + 1), [(at(hours), "Selected"), (at(0), "Done")])
        day += 86400


@pytest.fixture
def db():
    d = new_db()
    scopes = {
        "fast": dict(jira_projects=["FAS"], repos=["acme/fast"], services=[]),
        "slow": dict(jira_projects=["SLO"], repos=[], services=["PSLOW"]),
        "calm": dict(jira_projects=["CAL"], repos=[], services=[]),
    }
    for i, (name, scope) in enumerate(scopes.items()):
        history(d, scope["jira_projects"][0], {"fast": 2, "slow": 240, "calm": 24}[name])
        create_team(
            d, team(name=name, channel=f"C{i}", metrics=["cycle-time", "throughput"], **scope), who="U0"
        )
    set_org(d, "north_star", ["throughput"], who="U0")
    d["sync_status"].insert_all(
        [
            {"source": "jira", "stream": "issues", "last_success": "2026-02-02T10:00:00Z"},
            {
                "source": "pagerduty",
                "stream": "incidents",
                "last_success": "2026-01-20T10:00:00Z",
                "last_error": "HTTP 503",
            },
            {"source": "gh", "stream": "pulls", "last_success": None, "last_error": "HTTP 401"},
            {"source": "gh", "stream": "deployments", "last_success": None},
        ]
    )
    return d


def test_teams_whose_determinants_moved_with_a_real_signal_better_or_worse_by_name(db):
    d = build_org_digest(db, NOW)
    assert (d.window.label(), d.timezone) == ("2026-01-05 – 2026-02-01", "UTC")
    moved = [(m.team, m.channel, m.metric, m.better) for m in d.moved]
    assert moved == [("fast", "C0", "cycle-time", True), ("slow", "C1", "cycle-time", False)]
    fast, slow = d.moved
    assert fast.line.startswith("faster") and slow.line.startswith("slower")
    assert fast.metric_name == CATALOGUE["cycle-time"].name
    assert [r.metric.id for r in d.north_star] == ["throughput"]  # the North Star is not a determinant


def test_the_north_star_is_the_org_roll_up(db):
    d = build_org_digest(db, NOW)
    [expected] = rollups(db, ["throughput"], d.window, NOW)
    assert json.dumps(d.north_star[0].to_json()) == json.dumps(expected.to_json())
    assert [t.team for t in d.north_star[0].teams] == ["calm", "fast", "slow"]


def test_stale_teams_are_those_with_a_source_in_their_scope_behind(db):
    d = build_org_digest(db, NOW)
    stale = {s.team: s.sources for s in d.stale}
    assert sorted(stale) == ["fast", "slow"]  # calm names Jira only, which is current
    assert stale["fast"] == [{"source": "gh", "as_of": None, "error": "HTTP 401"}]
    assert stale["slow"] == [{"source": "pagerduty", "as_of": "2026-01-20T10:00:00Z", "error": "HTTP 503"}]


def test_experiments_concluded_in_the_period_with_their_verdicts(db):
    early = ex.start(db, "calm", "cycle-time", "smaller items", 2, who="U1", now=ts("2025-11-03 09:00"))
    ex.conclude(db, early, ts("2025-11-18 09:00"))
    ours = ex.start(db, "calm", "cycle-time", "pair on reviews", 2, who="U1", now=ts("2026-01-05 09:00"))
    ex.conclude(db, ours, ts("2026-01-20 09:00"))
    ex.start(db, "fast", "cycle-time", "WIP limit of 3", 4, who="U1", now=ts("2026-01-19 09:00"))  # running
    d = build_org_digest(db, NOW)
    assert [(e.team, e.change) for e in d.concluded] == [("calm", "pair on reviews")]
    assert d.concluded[0].verdict in ("improved", "worse", "no real change", "not enough data for a verdict")


def test_read_back_from_the_store_the_digest_is_the_same(db):
    first = build_org_digest(db, NOW)
    stored = db.execute("select count(*) from results").fetchone()[0]
    again = build_org_digest(db, NOW)
    assert stored == 3 * 2 + 1  # each team's cycle time and throughput, and the org's throughput
    assert again.moved == first.moved and again.stale == first.stale
    assert json.dumps(again.north_star[0].to_json()) == json.dumps(first.north_star[0].to_json())
    item(db, "CAL-999", "2026-01-28 09:00", [("2026-01-28 10:00", "Selected"), ("2026-01-28 11:00", "Done")])
    after = build_org_digest(db, NOW)
    [expected] = rollups(db, ["throughput"], after.window, NOW)
    assert json.dumps(after.north_star[0].to_json()) == json.dumps(expected.to_json())
    assert after.north_star[0].sample_size == first.north_star[0].sample_size + 1
    assert results.data_version(db) > 0


def _result(metric: str, signal: str | None, up: bool | None) -> Result:
    return Result(metric, "t", org_window({}, NOW), 1.0, "", 12, None, [], signal=signal, signal_up=up)


@pytest.mark.parametrize(
    "metric, up, better",
    [
        ("cycle-time", False, True),  # faster
        ("cycle-time", True, False),  # slower
        ("throughput", True, True),
        ("change-failure-rate", True, False),
        ("change-failure-rate", False, True),
        ("wip", True, None),  # a context metric
        ("net-flow", False, None),  # balance is the aim
    ],
)
def test_which_way_a_signal_went_is_judged_by_the_metrics_direction(metric, up, better):
    assert signal_better(CATALOGUE[metric], _result(metric, "a signal", up)) is better


def test_no_signal_or_no_direction_is_neither_better_nor_worse():
    assert signal_better(CATALOGUE["cycle-time"], _result("cycle-time", None, True)) is None
    assert signal_better(CATALOGUE["cycle-time"], _result("cycle-time", "slower than…", None)) is None


def test_the_direction_comes_from_the_signal_rule_not_its_wording(db, monkeypatch):
    """Every signal reworded to say nothing of its direction: which team got better or worse is the
    same, since it is carried from the finding (``Result.signal_up``), not read from the words."""
    monkeypatch.setattr(Words, "said", lambda self, up: "different")
    d = build_org_digest(db, NOW)
    assert [(m.team, m.line.split(" ")[0], m.better) for m in d.moved] == [
        ("fast", "different", True),
        ("slow", "different", False),
    ]


# -- each team's own window ------------------------------------------------------------------------------
def varied_history(db, project: str, hours_of) -> None:
    """An item done every day at noon UTC since START, committed ``hours_of(day start)`` before."""
    day, n = START, 0
    while day + 86400 <= NOW.timestamp() - 12 * 3600:
        n += 1
        hours, done = hours_of(day), day + 12 * 3600
        at = lambda h, d=done: datetime.fromtimestamp(d - h * 3600, UTC).isoformat()  # noqa: E731
        item(db, f"{project}-{n}", at(hours + 1), [(at(hours), "Selected"), (at(0), "Done")])
        day += 86400


def test_moved_is_judged_on_each_teams_own_digest_window_as_its_digest_says(db):
    """Two teams with a 14-day digest period (19 Jan – 1 Feb, UTC; the org's is 5 Jan – 1 Feb):
    "early" finished its items in 2 hours only in 5–18 Jan, so the org's window shows a signal its
    own window does not: its own digest says nothing moved, and so does the org digest. "late" did
    so only from 19 Jan: its signal is found on its own window, which the Moved line names."""
    fortnight = ts("2026-01-19 00:00")
    varied_history(db, "EAR", lambda d: 2 if WINDOW_START <= d < fortnight else 20 + (d // 86400) % 9)
    varied_history(db, "LAT", lambda d: 2 if d >= fortnight else 20 + (d // 86400) % 9)
    for name, project, channel in (("early", "EAR", "C7"), ("late", "LAT", "C8")):
        create_team(
            db,
            team(
                name=name,
                channel=channel,
                jira_projects=[project],
                repos=[],
                services=[],
                metrics=["cycle-time"],
                digest={"period_days": 14},
            ),
            who="U0",
        )
    d = build_org_digest(db, NOW)
    early, late = (get_team(db, n) for n in ("early", "late"))
    # On the org's window, "early"'s cycle time does signal: the old rule listed it.
    [on_org] = results.team_figures(db, early, ["cycle-time"], d.window, NOW)
    assert on_org.signal and on_org.signal_up is False
    own = digest_window(early, NOW)
    assert own.label() == "2026-01-19 – 2026-02-01" and d.window.label() == "2026-01-05 – 2026-02-01"
    # Every team's Moved lines are exactly its own digest's signals, on its own window.
    for t in list_teams(db):
        theirs = [(f.metric.id, f.result.signal) for f in build_digest(db, t, NOW).determinants]
        ours = [(m.metric, m.line) for m in d.moved if m.team == t.name]
        assert ours == [(mid, s) for mid, s in theirs if s], t.name
        assert all(m.window == digest_window(t, NOW) for m in d.moved if m.team == t.name)
    assert "early" not in {m.team for m in d.moved}
    [moved_late] = [m for m in d.moved if m.team == "late"]
    assert moved_late.better is True and moved_late.window.label() == "2026-01-19 – 2026-02-01"
    line = render._moved_line(moved_late, d.window)
    assert line.endswith("_(its digest's period: 2026-01-19 – 2026-02-01, UTC)_")
    [fast] = [m for m in d.moved if m.team == "fast"]  # on the org's own window: not named again
    assert "its digest's period" not in render._moved_line(fast, d.window)
    assert late.digest["period_days"] == 14


def test_a_team_in_another_time_zone_is_judged_on_its_local_days(db):
    create_team(
        db,
        team(
            name="tokyo",
            channel="C9",
            jira_projects=["SLO"],
            repos=[],
            services=[],
            metrics=["cycle-time"],
            timezone="Asia/Tokyo",
        ),
        who="U0",
    )
    d = build_org_digest(db, NOW)
    [tokyo] = [m for m in d.moved if m.team == "tokyo"]
    assert tokyo.window.tz.key == "Asia/Tokyo" and tokyo.window == digest_window(get_team(db, "tokyo"), NOW)
    [theirs] = [f.result.signal for f in build_digest(db, get_team(db, "tokyo"), NOW).determinants]
    assert tokyo.line == theirs and tokyo.better is False
    assert render._moved_line(tokyo, d.window).endswith(", Asia/Tokyo)_")


# -- stale by age -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "last_success, stale",
    [
        ("2026-01-09T10:00:00Z", True),  # 24 days before the digest, no error: its sync job stopped
        ("2026-02-01T11:59:00Z", True),  # just over STALE_AFTER
        ("2026-02-01T12:01:00Z", False),  # just within it
        ("2026-02-02T11:00:00Z", False),
    ],
)
def test_a_source_not_synced_for_more_than_a_day_is_stale_even_without_an_error(db, last_success, stale):
    assert timedelta(hours=24) == STALE_AFTER
    db.execute(
        "update sync_status set last_error = null, last_success = ? where source = 'pagerduty'",
        [last_success],
    )
    d = build_org_digest(db, NOW)
    listed = {s.team: s.sources for s in d.stale}
    assert ("slow" in listed) is stale  # slow's scope names a PagerDuty service; nobody else's does
    if stale:
        assert listed["slow"] == [{"source": "pagerduty", "as_of": last_success, "error": None}]
    assert listed["fast"] == [{"source": "gh", "as_of": None, "error": "HTTP 401"}]  # unchanged
    assert "calm" not in listed  # its Jira synced two hours before


def test_jira_behind_for_a_day_makes_every_jira_team_stale(db):
    db.execute("update sync_status set last_success = '2026-02-01T10:00:00Z' where source = 'jira'")
    d = build_org_digest(db, NOW)
    assert [s.team for s in d.stale] == ["calm", "fast", "slow"]
    assert d.stale[0].sources == [{"source": "jira", "as_of": "2026-02-01T10:00:00Z", "error": None}]


def test_a_sources_kind_is_the_one_its_sync_recorded_not_guessed_from_stream_names(db):
    """A GitHub source that syncs only deployments and incidents shares those stream names with
    GitLab and PagerDuty: the kind its sync recorded decides (rows from before kinds were recorded
    are still told by their streams)."""
    db["sync_status"].insert_all(
        [
            {
                "source": "gh-ops",
                "stream": "deployments",
                "kind": "github",
                "last_success": "2026-02-02T10:00:00Z",
            },
            {
                "source": "gh-ops",
                "stream": "incidents",
                "kind": "github",
                "last_success": "2026-02-02T10:00:00Z",
            },
            {"source": "old-pd", "stream": "incidents", "last_success": "2026-02-02T10:00:00Z"},
        ]
    )
    kinds = source_kinds(db)
    assert kinds["gh-ops"] == "github" and kinds["old-pd"] == "pagerduty"
    assert kinds["jira"] == "jira" and kinds["gh"] == "github"  # the fixture's rows, without kinds
