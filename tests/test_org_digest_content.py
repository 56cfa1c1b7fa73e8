"""What the org digest says (metrics/org_digest.py), with hand-made history.

Three teams, each on its own Jira project, with cycle time as their determinant metric: an item
done every day for 26 weeks, committed 20 to 28 hours before it is done. In the org's period (5 Jan
– 2 Feb 2026, UTC, as of Mon 2 Feb) "fast" finishes its items in 2 hours, "slow" in 10 days, and
"calm" as before. The sync ledger: Jira synced, the incident tool's last sync failed, a GitHub source
never synced.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from builders import item, new_db, team, ts

from metrics import experiments as ex
from metrics import results
from metrics.catalogue import CATALOGUE
from metrics.org import rollups
from metrics.org_digest import build_org_digest, signal_better
from metrics.teams import create_team, set_org

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


@pytest.mark.parametrize(
    "metric, signal, better",
    [
        ("cycle-time", "faster than its normal weekly range (week of 5 Jan)", True),
        ("cycle-time", "slower than the 20 weeks before (items in this period vs before)", False),
        ("throughput", "higher (better) than usual for 8 weeks in a row, ending the week of 5 Jan", True),
        ("change-failure-rate", "higher (worse) than the 20 weeks before", False),
        ("change-failure-rate", "lower (better) than the 20 weeks before", True),
        ("wip", "higher than its normal weekly range", None),  # a context metric
        ("net-flow", "lower than its normal weekly range", None),  # balance is the aim
        ("cycle-time", None, None),
    ],
)
def test_which_way_a_signal_went_is_judged_by_the_metrics_direction(metric, signal, better):
    assert signal_better(CATALOGUE[metric], signal) is better
