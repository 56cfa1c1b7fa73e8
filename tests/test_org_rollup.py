"""The North Star roll-up (metrics/org.py): org figures pooled from every team's observations, each
observation once, with hand-computed expectations (docs/metrics.md "Organisation roll-up").

Two teams share the repository acme/shared (its PRs, deployments and incidents are in both scopes);
each also has a repository of its own. Window: Mon 5 Jan – Mon 2 Feb 2026 (28 days, 4 whole weeks,
UTC), the org digest's period as of 2 Feb; previous period 8 Dec – 5 Jan.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import partial

import pytest
from builders import deploy, incident, item, new_db, pr, team, ts

from metrics.catalogue import CATALOGUE
from metrics.catalogue.base import NO_EARLIER_DATA, Observation
from metrics.dataset import TeamData
from metrics.errors import VsmError
from metrics.org import identity, northstar, org_window, poolable, rollup, rollups
from metrics.teams import create_team, get_team, set_org

NOW = datetime(2026, 2, 2, 12, 0, tzinfo=UTC)
DF, LTFC, CFR = "deployment-frequency", "lead-time-for-changes", "change-failure-rate"


def _pr(db, n: int, repo: str, first_commit: str, deployed: str, hours_before: float) -> None:
    """A PR merged an hour before ``deployed``, first committed ``hours_before`` it: a lead time for
    changes of exactly ``hours_before`` hours once ``deployed`` ships it."""
    first = ts(deployed) - hours_before * 3600
    pr(
        db,
        n,
        first_commit,
        repo=repo,
        first_commit=datetime.fromtimestamp(first, UTC).isoformat(),
        merged=datetime.fromtimestamp(ts(deployed) - 3600, UTC).isoformat(),
    )


def two_teams(db, *, pay_targets: dict | None = None) -> None:
    """pay: acme/shared + acme/pay (service SVC); web: acme/shared + acme/web (service WEB).

    Deployments in the window, by week (Monday):
      5 Jan: s1 (shared, Tue 10:00), p1 (pay, Wed 09:00), w1 (web, Thu 09:00)
      12 Jan: s2 (shared, Tue 12:00)
      19 Jan: s3 (shared, Tue 09:00), w2 (web, Wed 09:00)
      26 Jan: none
    Earlier: s0 (shared, 1 Dec, before the previous period), p0 (pay, 10 Dec, in the previous one).
    Lead times for changes (hours): shared #1 24 (s1), #2 48 (s2), #3 12 (s3); pay #10 6 (p1);
    web #20 72 (w1), #21 36 (w2).
    Incidents: on SVC 7 Jan 12:00 (after p1: pay's p1 failed); on acme/shared 13 Jan 14:00 (after s2,
    in both scopes: s2 failed for both teams); on WEB 21 Jan 12:00 (after w2: web's w2 failed).
    """
    deploy(db, "s0", "2025-12-01 09:00", service="acme/shared")
    deploy(db, "p0", "2025-12-10 09:00", service="acme/pay")
    deploy(db, "s1", "2026-01-06 10:00", service="acme/shared", repo="acme/shared", prs=[1])
    deploy(db, "p1", "2026-01-07 09:00", service="acme/pay", repo="acme/pay", prs=[10])
    deploy(db, "w1", "2026-01-08 09:00", service="acme/web", repo="acme/web", prs=[20])
    deploy(db, "s2", "2026-01-13 12:00", service="acme/shared", repo="acme/shared", prs=[2])
    deploy(db, "s3", "2026-01-20 09:00", service="acme/shared", repo="acme/shared", prs=[3])
    deploy(db, "w2", "2026-01-21 09:00", service="acme/web", repo="acme/web", prs=[21])
    _pr(db, 1, "acme/shared", "2026-01-05 09:00", "2026-01-06 10:00", 24)
    _pr(db, 2, "acme/shared", "2026-01-11 09:00", "2026-01-13 12:00", 48)
    _pr(db, 3, "acme/shared", "2026-01-19 09:00", "2026-01-20 09:00", 12)
    _pr(db, 10, "acme/pay", "2026-01-07 01:00", "2026-01-07 09:00", 6)
    _pr(db, 20, "acme/web", "2026-01-05 08:00", "2026-01-08 09:00", 72)
    _pr(db, 21, "acme/web", "2026-01-19 20:00", "2026-01-21 09:00", 36)
    incident(db, "I-1", "2026-01-07 12:00", "2026-01-07 14:00", service="SVC")
    incident(db, "I-2", "2026-01-13 14:00", "2026-01-13 15:00", service="acme/shared")
    incident(db, "I-3", "2026-01-21 12:00", "2026-01-21 13:00", service="WEB")
    create_team(
        db,
        team(
            name="pay",
            channel="C1",
            repos=["acme/shared", "acme/pay"],
            services=["SVC"],
            targets=pay_targets or {},
        ),
        who="test",
    )
    create_team(
        db,
        team(
            name="web",
            channel="C2",
            jira_projects=["WEB"],
            repos=["acme/shared", "acme/web"],
            services=["WEB"],
        ),
        who="test",
    )


@pytest.fixture
def db():
    d = new_db()
    two_teams(d, pay_targets={DF: 2.0, LTFC: 24.0})
    return d


def window():
    return org_window({}, NOW)


def test_the_default_window_is_the_org_digest_period_in_the_org_zone():
    w = org_window({}, NOW)
    assert (w.since.isoformat(), w.until.isoformat()) == (
        "2026-01-05T00:00:00+00:00",
        "2026-02-02T00:00:00+00:00",
    )
    # 14 complete local days in Auckland (UTC+13 in January): 2 Feb 12:00 UTC is 3 Feb there.
    w = org_window({"timezone": "Pacific/Auckland", "digest": {"period_days": 14}}, NOW)
    assert (w.since.date().isoformat(), w.until.date().isoformat()) == ("2026-01-20", "2026-02-03")
    assert w.start == ts("2026-01-19 11:00")
    # Asked for as `vsm metric` reads it.
    w = org_window({}, NOW, since="2026-01-05", until="2026-01-19")
    assert (w.days, w.start) == (14, ts("2026-01-05 00:00"))
    assert org_window({}, NOW, period="7d").days == 7


@pytest.mark.parametrize(
    "org, kw, message",
    [
        ({"timezone": "Mars/Olympus"}, {}, "unknown time zone"),
        ({"timezone": 3}, {}, "IANA"),
        ({"digest": {"period_days": float("nan")}}, {}, "period_days"),
        ({"digest": {"period_days": 10_000}}, {}, "period_days"),
        ({}, {"period": "7d", "since": "2026-01-01", "until": "2026-01-08"}, "either"),
        ({}, {"since": "2026-01-01"}, "together"),
        ({}, {"period": "forever"}, "malformed period"),
    ],
)
def test_a_bad_org_window_is_one_clear_error(org, kw, message):
    with pytest.raises(VsmError, match=message):
        org_window(org, NOW, **kw)


def test_shared_deployments_count_once_for_the_org_and_once_per_team_row(db):
    r = rollup(db, DF, window(), NOW)
    # Distinct deployments in the window: s1 p1 w1 s2 s3 w2 = 6 over 4 weeks. Adding the teams' rows
    # would give (4 + 5) / 4 = 2.25: the three shared ones would count twice.
    assert (r.value, r.sample_size) == (1.5, 6)
    rows = {t.team: (t.value, t.sample_size) for t in r.teams}
    assert rows == {"pay": (1.0, 4), "web": (1.25, 5)}
    assert [p["value"] for p in r.series] == [3.0, 1.0, 2.0, 0.0]
    # Previous period 8 Dec – 5 Jan: p0 alone (s0 is earlier), 1 / 4 weeks; both teams' histories
    # (from s0, 1 Dec) begin before it, so it is known.
    assert (r.previous, r.previous_note) == (0.25, None)
    assert r.signal is None and "not enough history" in r.verdict.note  # 5 weeks of history


def test_lead_time_is_p50_p85_of_the_pooled_prs_each_once(db):
    r = rollup(db, LTFC, window(), NOW)
    # Pooled: 6, 12, 24, 36, 48, 72 h. p50: h = 2.5 -> 24 + 0.5·12 = 30; p85: h = 4.25 -> 48 + 0.25·24 = 54.
    # (With the shared PRs twice, 6 12 12 24 24 36 48 48 72, the p50 would be 24.)
    assert (r.value, r.sample_size) == ({"p50": 30.0, "p85": 54.0}, 6)
    rows = {t.team: t for t in r.teams}
    # pay: 6 12 24 48 -> p50 12 + 0.5·12 = 18, p85 h = 2.55 -> 24 + 0.55·24 = 37.2
    assert (rows["pay"].value, rows["pay"].sample_size) == ({"p50": 18.0, "p85": 37.2}, 4)
    # web: 12 24 36 48 72 -> p50 36, p85 h = 3.4 -> 48 + 0.4·24 = 57.6
    assert (rows["web"].value, rows["web"].sample_size) == ({"p50": 36.0, "p85": 57.6}, 5)
    # pay's target is 24 h, judged on p85 (37.2): missed; web has none.
    assert (rows["pay"].target, rows["pay"].on_target) == (24.0, False)
    assert (rows["web"].target, rows["web"].on_target) == (None, None)
    # Weekly medians of the pooled PRs: week of 5 Jan 6 24 72 -> 24; 12 Jan 48; 19 Jan 12 36 -> 24.
    assert [p["value"] for p in r.series] == [24.0, 48.0, 24.0, None]


def test_change_failure_rate_is_pooled_failures_over_pooled_deployments(db):
    r = rollup(db, CFR, window(), NOW)
    # Distinct deployments 6; failed: p1 (I-1), s2 (I-2, in both scopes), w2 (I-3) = 3 -> 50%.
    # Not the mean of the team rates (45%), nor their summed counts (4 of 9 = 44.4%).
    assert (r.value, r.sample_size) == (50.0, 6)
    rows = {t.team: (t.value, t.sample_size) for t in r.teams}
    assert rows == {"pay": (50.0, 4), "web": (40.0, 5)}


def test_team_rows_are_the_teams_own_figures_on_the_same_window(db):
    found = rollups(db, [DF, LTFC, CFR], window(), NOW)
    for r in found:
        assert [t.team for t in r.teams] == ["pay", "web"]  # by name
        for row in r.teams:
            own = CATALOGUE[r.metric.id].compute(TeamData(db, get_team(db, row.team), NOW), window())
            assert (row.value, row.sample_size) == (own.value, own.sample_size), (r.metric.id, row.team)
            assert row.result.window == window()


def test_teams_are_listed_by_name_whatever_their_figures(db):
    create_team(
        db,
        team(name="Alpha", channel="C3", jira_projects=["AL"], repos=["acme/alpha"], services=["AL"]),
        who="test",
    )
    r = rollup(db, DF, window(), NOW)
    assert [t.team for t in r.teams] == ["Alpha", "pay", "web"]
    # Alpha has nothing in its scope: its row is unknown, and it adds nothing to the org figure.
    assert (r.teams[0].value, r.teams[0].sample_size, r.value) == (None, 0, 1.5)


def test_a_team_whose_figure_is_unknown_adds_no_invented_zeros(db):
    # ops deploys acme/ops but no incident source has ever held anything for its scope: its change
    # failure rate is unknown (every deployment would read as a success), so its deployment is not in
    # the org rate, which stays 3 of 6; its deployment frequency is known and counts (7 / 4 weeks).
    deploy(db, "o1", "2026-01-09 09:00", service="acme/ops")
    create_team(
        db, team(name="ops", channel="C4", jira_projects=[], repos=["acme/ops"], services=[]), who="test"
    )
    cfr, df = rollups(db, [CFR, DF], window(), NOW)
    ops = next(t for t in cfr.teams if t.team == "ops")
    assert (ops.value, ops.sample_size) == (None, 0)
    assert (cfr.value, cfr.sample_size) == (50.0, 6)
    assert cfr.contributors == ["pay", "web"]
    assert (df.value, df.sample_size) == (1.75, 7)


def test_the_org_previous_is_unknown_until_every_contributing_team_has_history():
    db = new_db()
    two_teams(db)
    # A third team whose history begins on 22 Dec, inside the previous period: pooled without it,
    # that period would not be the same population.
    deploy(db, "n1", "2025-12-22 09:00", service="acme/new")
    deploy(db, "n2", "2026-01-14 09:00", service="acme/new")
    create_team(
        db, team(name="new", channel="C5", jira_projects=[], repos=["acme/new"], services=[]), who="test"
    )
    r = rollup(db, DF, window(), NOW)
    assert (r.value, r.sample_size) == (1.75, 7)  # the 6 shared and own, and n2
    assert (r.previous, r.previous_note) == (None, NO_EARLIER_DATA)


def test_work_items_in_two_teams_scopes_count_once_by_source_and_key():
    db = new_db()
    # Both teams take project CORE; pay's workflow is the builder's, web's maps "In Review" as done
    # too, so CORE-1 finishes at a different time for each: the org keeps one observation of it,
    # the first team's by name.
    for key, done in (("CORE-1", "2026-01-08 09:00"), ("CORE-2", "2026-01-15 09:00")):
        item(
            db,
            key,
            "2026-01-02 09:00",
            [
                ("2026-01-05 09:00", "Selected"),
                ("2026-01-06 09:00", "In Progress"),
                ("2026-01-07 09:00", "In Review"),
                (done, "Done"),
            ],
        )
    item(db, "PAY-1", "2026-01-02 09:00", [("2026-01-05 09:00", "Selected"), ("2026-01-09 09:00", "Done")])
    create_team(db, team(name="pay", channel="C1", jira_projects=["CORE", "PAY"]), who="test")
    create_team(
        db,
        team(
            name="web",
            channel="C2",
            jira_projects=["CORE"],
            repos=[],
            services=[],
            workflow=[
                {"stage": "backlog", "kind": "backlog", "statuses": ["Backlog"]},
                {"stage": "committed", "kind": "committed", "statuses": ["Selected"]},
                {"stage": "in_progress", "kind": "active", "statuses": ["In Progress"]},
                {"stage": "done", "kind": "done", "statuses": ["In Review", "Done"]},
            ],
        ),
        who="test",
    )
    tp, ct = rollups(db, ["throughput", "cycle-time"], window(), NOW)
    assert (tp.value, tp.sample_size) == (0.75, 3)  # CORE-1, CORE-2, PAY-1 over 4 weeks
    assert {t.team: t.sample_size for t in tp.teams} == {"pay": 3, "web": 2}
    # pay's cycle times: CORE-1 3 d (72 h), CORE-2 10 d (240 h), PAY-1 4 d (96 h); web's CORE items
    # (done at In Review, 48 h each) are the same items: not pooled again.
    # p50 = 96; p85: h = 1.7 -> 96 + 0.7·144 = 196.8
    assert (ct.value, ct.sample_size) == ({"p50": 96.0, "p85": 196.8}, 3)


def test_net_flow_keeps_an_items_arrival_and_departure_apart():
    # Net flow observes CORE-1 twice: its arrival (committed, 6 Jan) and its departure (done, 8 Jan).
    # Team a has not mapped "Done" (for a, CORE-1 only arrived); team b has: the org keeps a's
    # arrival and b's departure, each once: arrivals CORE-1, CORE-2, departure CORE-1 -> (2 − 1) / 4.
    # Keyed by item alone, b's departure would be lost with its arrival: 2 / 4 = 0.5.
    db = new_db()
    item(db, "CORE-1", "2026-01-02 09:00", [("2026-01-06 09:00", "Selected"), ("2026-01-08 09:00", "Done")])
    item(db, "CORE-2", "2026-01-02 09:00", [("2026-01-06 09:00", "Selected")])
    unfinished = [s for s in team().workflow if s["kind"] != "done"] + [
        {"stage": "done", "kind": "done", "statuses": ["Closed"]}
    ]
    create_team(db, team(name="a", channel="C1", jira_projects=["CORE"], workflow=unfinished), who="test")
    create_team(db, team(name="b", channel="C2", jira_projects=["CORE"]), who="test")
    r = rollup(db, "net-flow", window(), NOW)
    assert {t.team: t.value for t in r.teams} == {"a": 0.5, "b": 0.25}  # a: 2 arrivals; b: 2 − 1
    assert (r.value, r.sample_size) == (0.25, 3)


def test_identity_reads_the_lazy_refs_and_falls_back_to_the_item():
    ref = {"key": "acme/pay#1", "url": "https://github.example/acme/pay/pull/1", "title": "x"}
    from metrics.catalogue.base import span

    lazy = span(ref, 0.0, 10.0)
    assert identity(lazy) == ("ref", ref["url"], "acme/pay#1", None)
    assert identity(Observation(1.0, 1.0, dict(ref))) == identity(lazy)
    built = Observation(1.0, 1.0, partial(dict, {"key": "K-1", "url": "u", "event": "arrival"}))
    assert identity(built) == ("ref", "u", "K-1", "arrival")


def test_team_level_metrics_are_not_pooled_but_each_team_row_is_shown(db):
    assert not poolable(CATALOGUE["wip"]) and poolable(CATALOGUE["flow-efficiency"])
    r = rollup(db, "wip", window(), NOW)
    assert (r.value, r.previous, r.sample_size, r.signal) == (None, None, 0, None)
    assert "not pooled" in r.verdict.note and [t.team for t in r.teams] == ["pay", "web"]


def test_an_unknown_metric_is_one_clear_error(db):
    with pytest.raises(VsmError, match="unknown metric"):
        rollup(db, "happiness", window(), NOW)


def test_northstar_json_has_the_interface_shape_with_org_targets(db):
    set_org(db, "north_star", [LTFC, DF], who="test")
    # [org] targets is someone else's key to validate: stored here as the modal will store it.
    db["org"].upsert(
        {"workspace": "", "key": "targets", "value": json.dumps({DF: 1.0, LTFC: "nonsense"})},
        pk=("workspace", "key"),
    )
    out = northstar(db, NOW)
    assert set(out) == {"since", "until", "timezone", "metrics"}
    assert (out["since"], out["until"], out["timezone"]) == (
        "2026-01-05T00:00:00Z",
        "2026-02-02T00:00:00Z",
        "UTC",
    )
    assert [m["metric"] for m in out["metrics"]] == [LTFC, DF]
    ltfc, df = out["metrics"]
    assert set(ltfc) == {"metric", "unit", "org", "teams"}
    assert set(ltfc["org"]) == {"value", "previous", "sample_size", "series", "signal"}  # a bad target: none
    assert set(df["org"]) == {"value", "previous", "sample_size", "series", "signal", "target", "on_target"}
    assert (df["org"]["value"], df["org"]["target"], df["org"]["on_target"]) == (1.5, 1.0, True)
    assert ltfc["org"]["value"] == {"p50": 30.0, "p85": 54.0}
    assert df["teams"] == [
        {"team": "pay", "value": 1.0, "sample_size": 4, "target": 2.0, "on_target": False},
        {"team": "web", "value": 1.25, "sample_size": 5, "target": None, "on_target": None},
    ]
    assert df["org"]["series"][0] == {"week": "2026-01-05", "value": 3.0}
    json.dumps(out, allow_nan=False)  # plain JSON: no NaN, no objects


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), -1.0, True, "2", {"value": "x"}, [1]])
def test_a_bad_org_target_is_never_judged(db, bad):
    r = rollup(db, DF, window(), NOW, targets={DF: bad})
    assert (r.target, r.on_target) == (None, None)


def test_a_team_whose_observations_fail_is_one_unknown_row_and_the_org_pools_the_others(
    db, monkeypatch, caplog
):
    metric = CATALOGUE[DF]
    real = type(metric).observations

    def failing_for_web(self, data, start, end):
        if data.team.name == "web":
            raise RuntimeError("a damaged row")
        return real(self, data, start, end)

    monkeypatch.setattr(type(metric), "observations", failing_for_web)
    r = rollup(db, DF, window(), NOW)
    pay, web = r.teams
    assert r.contributors == ["pay"] and r.value == pay.value  # pay alone: its own figure
    assert web.value is None and "could not be computed" in web.result.no_data_reason
    assert "deployment-frequency of web could not be computed: RuntimeError: a damaged row" in caplog.text


def test_every_org_surface_lists_teams_in_one_order():
    from metrics import org_digest
    from metrics.org import by_name

    teams = [team(name=n) for n in ("web", "Beta", "alpha", "beta")]
    assert [t.name for t in by_name(teams)] == ["alpha", "Beta", "beta", "web"]
    assert org_digest.by_name is by_name
