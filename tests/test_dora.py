"""DORA family: hand-computed expectations on tiny data sets.

Window: Mon 5 Jan – Mon 2 Feb 2026 (28 days, 4 whole weeks, UTC unless said); previous window
8 Dec – 5 Jan; load horizon (20-week baseline) 18 Aug 2025.
"""

from __future__ import annotations

from datetime import date

import pytest
from builders import deploy, incident, new_db, pr, team, ts

from metrics.catalogue import CATALOGUE
from metrics.catalogue import compute as catalogue_compute
from metrics.catalogue.dora import (
    deployment_days,
    frequency_level,
    lead_time_level,
    link_incidents,
    restore_level,
)
from metrics.dataset import Deployment, Incident, TeamData
from metrics.timeutil import Window, local_midnight, zone

NOW = "2026-02-10 00:00"


def win(since: str = "2026-01-05", until: str = "2026-02-02", tz: str = "UTC") -> Window:
    z = zone(tz)
    return Window(local_midnight(date.fromisoformat(since), z), local_midnight(date.fromisoformat(until), z))


def run(db, metric_id: str, window: Window | None = None, now: str = NOW, **team_kw):
    t = team(**team_kw)
    return CATALOGUE[metric_id].compute(TeamData(db, t, ts(now)), window or win(tz=t.timezone))


# -- catalogue entries ---------------------------------------------------------------------------------
def test_catalogue_entries_match_metrics_md():
    expected = {
        "deployment-frequency": ("Deployment frequency", "deploys/week", "higher"),
        "lead-time-for-changes": ("Lead time for changes", "duration", "lower"),
        "change-failure-rate": ("Change failure rate", "%", "lower"),
        "time-to-restore": ("Time to restore", "duration", "lower"),
        "rework-rate": ("Rework rate", "%", "lower"),
    }
    for mid, (name, unit, better) in expected.items():
        m = CATALOGUE[mid]
        assert (m.name, m.unit, m.better, m.family) == (name, unit, better, "dora")


# -- deployment frequency -----------------------------------------------------------------------------
def test_deployment_frequency_counts_success_production_deploys_by_finish():
    db = new_db()
    deploy(db, "a", "2026-01-05 10:00")
    deploy(db, "b", "2026-01-05 15:00")  # same day: 2 deploys, 1 deployment day
    deploy(db, "c", "2026-01-07 09:00")
    deploy(db, "d", "2026-01-14 09:00")
    deploy(db, "e", "2026-01-27 09:00")
    deploy(db, "f", "2026-01-08 09:00", status="failure")  # not a success
    deploy(db, "g", "2026-01-08 09:00", environment="staging", production=False)
    deploy(db, "h", "2026-01-09 09:00", service="other/repo")  # not the team's
    deploy(db, "i", "2026-02-03 09:00")  # after the window
    deploy(db, "j", "2026-01-02 09:00")  # previous window
    deploy(db, "k", "2026-01-04 23:59:59")  # previous window, last second of it
    r = run(db, "deployment-frequency")
    assert r.value == 1.25  # 5 deploys / 4 weeks
    # j and k (2 deploys / 4 weeks) are the history's first week; the 4 weeks before begin earlier, so
    # their figure is unknown rather than counted over weeks nobody synced.
    assert (r.previous, r.previous_note) == (None, "no earlier data")
    assert r.sample_size == 5
    assert [p["value"] for p in r.series] == [3.0, 1.0, 0.0, 1.0]  # zero-filled weeks
    assert [p["week"] for p in r.series] == ["2026-01-05", "2026-01-12", "2026-01-19", "2026-01-26"]
    assert [i["finished"] for i in r.items][:2] == ["2026-01-05T10:00:00Z", "2026-01-05T15:00:00Z"]
    # Deployment days 5, 7, 14, 27 Jan: 4 days * 7 / 28 days = 1.0 a week; weeks [2, 1, 0, 1] ->
    # median 1 -> high; no whole month in the window -> 4 * 30 / 28 = 4.2857 a month.
    assert r.extra == {
        "deployment_days": 4,
        "deployment_days_per_week": 1.0,
        "median_deployment_days_per_week": 1.0,
        "median_deployment_days_per_month": 4.2857,
        "level": "high",
    }


def test_deployment_frequency_one_per_run_keeping_last_finish_and_redeploys_count_again():
    db = new_db()
    deploy(db, "r1-try1", "2026-01-06 10:00", run="r1", sha="abc")
    deploy(db, "r1-try2", "2026-01-06 11:00", run="r1", sha="abc")  # same run: one deployment
    deploy(db, "r2", "2026-01-08 10:00", run="r2", sha="abc")  # redeploy of the same sha: counts
    r = run(db, "deployment-frequency")
    assert r.sample_size == 2
    assert r.value == 0.5  # 2 / 4 weeks
    assert [i["finished"] for i in r.items] == ["2026-01-06T11:00:00Z", "2026-01-08T10:00:00Z"]


def test_deployment_days_are_local_dates_in_the_team_zone():
    db = new_db()
    # New York is UTC-5 in January: both are on 5 Jan locally (10:00 and 22:00), 2 UTC dates.
    deploy(db, "a", "2026-01-05 15:00")
    deploy(db, "b", "2026-01-06 03:00")
    r = run(db, "deployment-frequency", timezone="America/New_York")
    assert r.sample_size == 2
    assert r.extra["deployment_days"] == 1
    assert run(db, "deployment-frequency").extra["deployment_days"] == 2  # in UTC


def test_deployment_frequency_elite_when_deploying_every_weekday():
    db = new_db()
    n = 0
    for week in range(4):
        for day in range(5):  # Mon..Fri of each of the 4 weeks
            d = date(2026, 1, 5 + 7 * week + day)
            deploy(db, f"d{n}", f"{d.isoformat()} 12:00")
            n += 1
    r = run(db, "deployment-frequency")
    assert r.value == 5.0  # 20 / 4
    assert r.extra["median_deployment_days_per_week"] == 5.0
    assert r.extra["level"] == "elite"


def test_deployment_days_medians_use_whole_weeks_and_months():
    w = win("2026-01-01", "2026-04-01")  # 90 days: Jan, Feb, Mar whole; weeks 5 Jan .. 23 Mar whole
    monthly = deployment_days({date(2026, 1, 10), date(2026, 2, 10), date(2026, 3, 10)}, w)
    assert monthly["median_deployment_days_per_week"] == 0.0  # 3 weeks of 12 have one
    assert monthly["median_deployment_days_per_month"] == 1.0  # [1, 1, 1]
    assert monthly["deployment_days_per_week"] == 0.2333  # 3 * 7 / 90
    assert monthly["level"] == "medium"
    assert deployment_days({date(2026, 1, 10), date(2026, 2, 10)}, w)["level"] == "medium"  # [1, 1, 0]
    assert deployment_days({date(2026, 1, 10)}, w)["level"] == "low"  # months [1, 0, 0] -> median 0
    assert deployment_days(set(), w)["level"] == "low"
    # Days outside the window are ignored.
    assert deployment_days({date(2025, 12, 31), date(2026, 4, 1)}, w)["deployment_days"] == 0


def test_deployment_days_short_window_without_a_whole_week_uses_its_rate():
    w = win("2026-01-07", "2026-01-14")  # Wed..Tue: no whole Monday week inside
    out = deployment_days({date(2026, 1, 8)}, w)
    assert out["median_deployment_days_per_week"] == 1.0  # 1 * 7 / 7
    assert out["level"] == "high"


def test_frequency_level_thresholds():
    assert frequency_level(5, 0) == "elite"
    assert frequency_level(4.99, 30) == "high"
    assert frequency_level(1, 4) == "high"
    assert frequency_level(0.5, 1) == "medium"
    assert frequency_level(0, 0.99) == "low"


def test_deployment_frequency_without_services_or_repos_has_no_value():
    db = new_db()
    deploy(db, "a", "2026-01-06 10:00")
    r = run(db, "deployment-frequency", services=[], repos=[])
    assert r.value is None
    assert r.sample_size == 0
    assert r.no_data_reason == "no services or repositories in this team's scope"
    assert r.signal_note == "no data in this period"  # never "within normal variation"


# -- lead time for changes ------------------------------------------------------------------------------
def test_lead_time_for_changes_first_commit_to_first_production_deploy():
    db = new_db()
    pr(db, 1, "2026-01-05 12:00", first_commit="2026-01-05 09:00", merged="2026-01-06 09:00")
    pr(db, 2, "2026-01-06 10:00", merged="2026-01-06 12:00")  # no commits: starts when created
    pr(db, 3, "2026-01-08 01:00", first_commit="2026-01-08 00:00", merged="2026-01-08 06:00")
    deploy(db, "d1", "2026-01-07 09:00", prs=[1, 2])
    deploy(db, "d2", "2026-01-08 12:00", prs=[3])
    deploy(db, "d3", "2026-01-09 12:00", service="SVC", prs=[3])  # a second service: not counted again
    r = run(db, "lead-time-for-changes")
    # PR1 48 h (5 Jan 09:00 -> 7 Jan 09:00), PR2 23 h, PR3 12 h -> sorted [12, 23, 48]
    # p50 = 23; p85: h = 2 * 0.85 = 1.7 -> 23 + 0.7 * 25 = 40.5
    assert r.value == {"p50": 23.0, "p85": 40.5}
    assert r.sample_size == 3
    assert r.extra["level"] == "elite"  # p50 23 h < 1 day
    assert sorted(i["hours"] for i in r.items) == [12.0, 23.0, 48.0]
    pr3 = next(i for i in r.items if i["key"] == "acme/pay#3")
    assert pr3["end"] == "2026-01-08T12:00:00Z"  # d2, not d3
    assert pr3["start"] == "2026-01-08T00:00:00Z"
    assert any(n.startswith("low sample") for n in r.notes)


def test_lead_time_finds_a_pr_merged_before_the_load_horizon():
    db = new_db()
    # Merged in June 2025, long before the 18 Aug 2025 horizon, first deployed on 12 Jan 2026.
    pr(db, 6, "2025-06-01 00:00", first_commit="2025-05-31 12:00", merged="2025-06-01 10:00")
    deploy(db, "d1", "2026-01-12 00:00", prs=[6])
    r = run(db, "lead-time-for-changes")
    # 31 May 12:00 -> 12 Jan 00:00: 226 days - 12 h = 5412 h
    assert r.value == {"p50": 5412.0, "p85": 5412.0}
    assert r.extra["level"] == "low"  # beyond a month


def test_lead_time_skips_a_pr_first_shipped_before_the_horizon_elsewhere():
    db = new_db()
    pr(db, 6, "2025-06-01 00:00", merged="2025-06-01 10:00")
    deploy(db, "old", "2025-06-02 00:00", prs=[6])  # first shipped here, before the horizon
    deploy(db, "new", "2026-01-12 00:00", service="SVC", prs=[6])  # first time on SVC
    r = run(db, "lead-time-for-changes")
    assert r.value is None
    assert r.sample_size == 0


def test_lead_time_lists_merged_prs_awaiting_deployment():
    db = new_db()
    pr(db, 1, "2026-01-05 09:00", merged="2026-01-06 09:00")
    deploy(db, "d1", "2026-01-07 09:00", prs=[1])
    pr(db, 4, "2026-01-19 09:00", merged="2026-01-20 09:00")  # never deployed
    pr(db, 5, "2026-01-29 09:00", merged="2026-01-30 09:00")
    deploy(db, "d2", "2026-02-03 09:00", prs=[5])  # deployed after the window: awaiting at its end
    pr(db, 7, "2026-01-10 09:00", closed="2026-01-11 09:00")  # closed unmerged: not awaiting
    pr(db, 8, "2026-01-10 09:00")  # open: not awaiting
    r = run(db, "lead-time-for-changes")
    assert r.extra["awaiting_deployment"] == 2
    assert [a["key"] for a in r.extra["awaiting"]] == ["acme/pay#4", "acme/pay#5"]
    assert "2 PRs merged in this period are not in production yet" in r.notes
    assert r.sample_size == 1  # PR1 only; PR5's deployment is outside the window


def test_lead_time_excludes_bot_prs_unless_the_team_opts_in():
    db = new_db()
    pr(db, 1, "2026-01-05 09:00", merged="2026-01-05 10:00", author="dependabot[bot]", author_bot=True)
    pr(db, 2, "2025-06-01 09:00", merged="2025-06-01 10:00", author="renovate[bot]", author_bot=True)
    deploy(db, "d1", "2026-01-05 12:00", prs=[1, 2])
    r = run(db, "lead-time-for-changes")
    assert r.value is None
    assert not any("not in the store" in n for n in r.notes)  # a bot PR is not missing data
    r = run(db, "lead-time-for-changes", include_bot_prs=True)
    assert r.sample_size == 2  # PR1 3 h; PR2 (merged before the horizon, loaded by key)
    assert r.value["p50"] == 2619.0  # [3, 5235] / 2; PR2: 1 Jun 09:00 -> 5 Jan 12:00 = 218 d + 3 h


def test_lead_time_negative_and_unknown_prs_are_noted_and_left_out():
    db = new_db()
    pr(db, 1, "2026-01-09 09:00", first_commit="2026-01-10 12:00", merged="2026-01-09 10:00")
    deploy(db, "d1", "2026-01-10 00:00", prs=[1, 99])  # PR 99 was never synced
    r = run(db, "lead-time-for-changes")
    assert r.value is None
    assert (
        "1 PR reached production before its first commit (clock skew or bad data) and is left out" in r.notes
    )
    assert "1 deployed PR has not been synced yet and is left out" in r.notes
    assert r.no_data_reason == "no PRs reached production in this period"


def test_lead_time_previous_window_and_weekly_median():
    db = new_db()
    pr(db, 1, "2025-12-10 09:00", merged="2025-12-10 10:00")
    deploy(db, "d0", "2025-12-11 09:00", prs=[1])  # previous window: 24 h
    pr(db, 2, "2026-01-05 00:00", merged="2026-01-05 01:00")
    pr(db, 3, "2026-01-05 00:00", merged="2026-01-05 02:00")
    deploy(db, "d1", "2026-01-05 10:00", prs=[2])  # 10 h
    deploy(db, "d2", "2026-01-06 06:00", prs=[3])  # 30 h
    r = run(db, "lead-time-for-changes")
    assert r.previous == {"p50": 24.0, "p85": 24.0}
    assert r.value == {"p50": 20.0, "p85": 27.0}  # [10, 30]: p50 20; p85 10 + 0.85 * 20 = 27
    assert [p["value"] for p in r.series] == [20.0, None, None, None]


def test_lead_time_level_bands():
    assert lead_time_level(None) is None
    assert lead_time_level(23.99) == "elite"
    assert lead_time_level(24) == "high"
    assert lead_time_level(167.9) == "high"
    assert lead_time_level(168) == "medium"
    assert lead_time_level(719) == "medium"
    assert lead_time_level(720) == "low"


# -- change failure rate --------------------------------------------------------------------------------
def test_change_failure_rate_links_each_incident_to_the_latest_prior_deployment():
    db = new_db()
    deploy(db, "d1", "2026-01-06 10:00")
    deploy(db, "d2", "2026-01-08 10:00")
    deploy(db, "d3", "2026-01-13 10:00")
    deploy(db, "d4", "2026-01-20 10:00")
    incident(db, "i1", "2026-01-08 12:00")  # -> d2
    incident(db, "i2", "2026-01-08 13:00")  # -> d2 again: still one failed deployment
    incident(db, "i3", "2026-01-08 10:00")  # at d2's finish: not after it -> d1
    incident(db, "i4", "2026-01-05 00:00", "2026-01-05 01:00")  # before every deployment: unlinked
    incident(db, "i5", "2026-02-03 00:00")  # after the window, still d4's failure
    incident(db, "x", "2026-01-13 11:00", service="OTHER")  # another team's service
    r = run(db, "change-failure-rate")
    assert r.value == 75.0  # d1, d2, d4 of 4 deployments
    assert r.sample_size == 4
    assert [i["incidents"] for i in r.items] == [["i3"], ["i1", "i2"], [], ["i5"]]
    assert [u["key"] for u in r.extra["unlinked_incidents"]] == ["i4"]
    assert r.extra["linked_incidents"] == 4
    assert r.extra["clusters"]["2024"]["high"] == 20.0
    assert "1 incident began before any deployment in this team's scope and is not in the rate" in r.notes


def test_change_failure_rate_is_capped_and_none_without_deployments():
    db = new_db()
    deploy(db, "d1", "2026-01-06 10:00")
    for n in range(3):
        incident(db, f"i{n}", f"2026-01-0{7 + n} 10:00")
    r = run(db, "change-failure-rate")
    assert r.value == 100.0  # 1 deployment with 3 incidents: 1 / 1, never 300%
    empty = new_db()
    incident(empty, "i1", "2026-01-07 10:00")
    r = run(empty, "change-failure-rate")
    assert r.value is None
    assert r.sample_size == 0
    assert [u["key"] for u in r.extra["unlinked_incidents"]] == ["i1"]


def test_incident_after_an_old_deployment_is_linked_not_unlinked():
    db = new_db()
    deploy(db, "old", "2025-06-01 00:00")  # before the load horizon
    incident(db, "i1", "2026-01-07 10:00")
    r = run(db, "change-failure-rate")
    assert r.extra["unlinked_incidents"] == []
    assert r.value is None  # no deployment in the window


def test_link_incidents_boundaries():
    deps = [
        Deployment("g", str(i), "s", "production", None, float(f), None, None) for i, f in enumerate([10, 20])
    ]
    incs = [
        Incident("p", name, "s", "", None, float(c), None, None)
        for name, c in [("a", 5), ("b", 10), ("c", 11), ("d", 20.5)]
    ]
    linked, unlinked = link_incidents(deps, incs)
    assert [x.id for x in unlinked] == ["a", "b"]  # b is created at the first finish: not after it
    assert {i: [x.id for x in v] for i, v in linked.items()} == {0: ["c"], 1: ["d"]}


def test_change_failure_rate_previous_window():
    db = new_db()
    deploy(db, "p1", "2025-12-10 10:00")
    deploy(db, "p2", "2025-12-12 10:00")
    incident(db, "i1", "2025-12-11 10:00")  # p1 failed
    deploy(db, "d1", "2026-01-06 10:00")
    r = run(db, "change-failure-rate")
    assert r.previous == 50.0  # 1 of 2
    assert r.value == 0.0


# -- time to restore -----------------------------------------------------------------------------------
def test_time_to_restore_resolved_in_window():
    db = new_db()
    incident(db, "i1", "2026-01-06 10:00", "2026-01-06 12:30")  # 2.5 h
    incident(db, "i2", "2026-01-01 00:00", "2026-01-07 00:00")  # created before, resolved in: 144 h
    incident(db, "i3", "2026-01-10 00:00", "2026-02-05 00:00")  # resolved after the window
    incident(db, "i4", "2026-01-11 00:00")  # open
    incident(db, "i5", "2026-01-12 08:00", "2026-01-12 08:30")  # 0.5 h
    incident(db, "i6", "2026-01-15 10:00", "2026-01-15 09:00")  # negative: bad data
    r = run(db, "time-to-restore")
    # sorted [0.5, 2.5, 144]: p50 2.5; p85 h = 1.7 -> 2.5 + 0.7 * 141.5 = 101.55
    assert r.value == {"p50": 2.5, "p85": 101.55}
    assert r.sample_size == 3
    assert [i["key"] for i in r.items] == ["i1", "i2", "i5"]  # by resolution time
    assert r.extra["level"] == "high"
    assert r.extra["open_incidents"] == 2  # i3 (resolved after the end) and i4
    assert "1 incident resolved before it was created (bad data) is left out" in r.notes


def test_time_to_restore_none_without_resolved_incidents():
    db = new_db()
    incident(db, "i1", "2026-01-06 10:00")
    r = run(db, "time-to-restore")
    assert r.value is None
    assert r.extra["level"] is None
    assert r.extra["open_incidents"] == 1


def test_restore_level_bands():
    assert restore_level(0.99) == "elite"
    assert restore_level(1) == "high"
    assert restore_level(23.9) == "high"
    assert restore_level(24) == "medium"
    assert restore_level(168) == "low"


# -- rework rate ----------------------------------------------------------------------------------------
def test_rework_rate_reverts_hotfixes_and_incident_fixes():
    db = new_db()
    incident(db, "P123ABC", "2026-01-02 10:00", "2026-01-02 12:00")
    incident(db, "Q9", "2026-01-03 10:00", "2026-01-03 12:00")
    db["incidents"].update(("pagerduty", "Q9"), {"url": "https://acme.pagerduty.com/incidents/Q9"})
    pr(db, 1, "2026-01-05 09:00", merged="2026-01-05 10:00", title='Revert "Add checkout"')
    pr(db, 2, "2026-01-05 09:00", merged="2026-01-05 10:00", head_ref="HOTFIX/login")
    pr(db, 3, "2026-01-05 09:00", merged="2026-01-05 10:00", refs=["p123abc"])
    pr(
        db,
        4,
        "2026-01-05 09:00",
        merged="2026-01-05 10:00",
        refs=["https://acme.pagerduty.com/incidents/Q9/"],
    )
    pr(db, 5, "2026-01-05 09:00", merged="2026-01-05 10:00", title="Reverting docs", refs=["PAY-12"])
    deploy(db, "d1", "2026-01-06 10:00", prs=[1])
    deploy(db, "d2", "2026-01-07 10:00", prs=[2])
    deploy(db, "d3", "2026-01-08 10:00", prs=[3])
    deploy(db, "d4", "2026-01-09 10:00", prs=[4])
    deploy(db, "d5", "2026-01-12 10:00", prs=[5])  # "Reverting" is not the word "revert"
    deploy(db, "d6", "2026-01-13 10:00")  # shipped nothing new
    r = run(db, "rework-rate")
    assert r.value == pytest.approx(66.6667)  # 4 of 6
    assert [i["rework"] for i in r.items] == [True, True, True, True, False, False]
    assert r.items[2]["rework_prs"][0]["reason"] == "linked to incident P123ABC"
    assert r.items[3]["rework_prs"][0]["reason"] == "linked to incident Q9"
    assert r.items[1]["rework_prs"][0]["reason"] == r"matches \bhotfix\b"


def test_rework_rate_team_patterns_replace_the_defaults_and_bad_ones_are_noted():
    db = new_db()
    pr(db, 1, "2026-01-05 09:00", merged="2026-01-05 10:00", title="Rollback payments")
    pr(db, 2, "2026-01-05 09:00", merged="2026-01-05 10:00", title="Revert x")
    deploy(db, "d1", "2026-01-06 10:00", prs=[1])
    deploy(db, "d2", "2026-01-07 10:00", prs=[2])
    r = run(db, "rework-rate", rework_patterns=[r"\brollback\b", "("])
    assert r.value == 50.0  # d1 only: "revert" is no longer a pattern
    assert any("'('" in n and "not a valid regular expression" in n for n in r.notes)


def test_rework_rate_sees_an_old_revert_pr_loaded_by_key():
    db = new_db()
    pr(db, 1, "2025-06-01 09:00", merged="2025-06-01 10:00", title="Revert everything")
    deploy(db, "d1", "2026-01-06 10:00", prs=[1])
    deploy(db, "d2", "2026-01-07 10:00")
    assert run(db, "rework-rate").value == 50.0  # 1 of 2


def test_rework_rate_none_without_deployments():
    r = run(new_db(), "rework-rate")
    assert r.value is None and r.previous is None


# -- through the catalogue's entry point ----------------------------------------------------------------
def test_compute_entry_point_and_json_shape():
    db = new_db()
    pr(db, 1, "2026-01-05 12:00", first_commit="2026-01-05 09:00", merged="2026-01-06 09:00")
    deploy(db, "d1", "2026-01-07 09:00", prs=[1])
    out = catalogue_compute(db, team(), "lead-time-for-changes", win(), ts(NOW)).to_json()
    assert out["value"] == {"p50": 48.0, "p85": 48.0}
    assert out["since"] == "2026-01-05T00:00:00Z" and out["until"] == "2026-02-02T00:00:00Z"
    assert out["items"][0] == {
        "key": "acme/pay#1",
        "title": "PR 1",
        "url": "https://github.example/acme/pay/pull/1",
        "start": "2026-01-05T09:00:00Z",
        "end": "2026-01-07T09:00:00Z",
        "hours": 48.0,
        "deployment": "acme/pay/deployments/d1",
    }


# -- one rule places a deployment: its run's last finish -------------------------------------------------
def test_a_deployment_started_before_the_window_and_finished_inside_it_is_in_both():
    """One run, two production records (a region per job): the first finished before the window
    and shipped PR 1, the last finished inside it. One deployment, at the last finish, in both."""
    db = new_db()
    pr(db, 1, "2026-01-04 08:00", merged="2026-01-04 09:00")
    deploy(db, "r1-eu", "2026-01-04 22:00", run="r1", sha="abc", prs=[1])
    deploy(db, "r1-us", "2026-01-05 02:00", run="r1", sha="abc")
    w = win()
    for horizon in (w.start, ts("2025-06-01 00:00")):  # loaded from the window's start, or earlier
        data = TeamData(db, team(), ts(NOW))
        data.deployments(horizon)  # the load every metric below reuses
        lead, _ = CATALOGUE["lead-time-for-changes"].observations(data, w.start, w.end)
        freq, _ = CATALOGUE["deployment-frequency"].observations(data, w.start, w.end)
        assert [(o.at, o.explain()["key"], o.explain()["deployment"]) for o in lead] == [
            (ts("2026-01-05 02:00"), "acme/pay#1", "acme/pay/deployments/r1-us")
        ]
        assert [(o.at, o.explain()["key"]) for o in freq] == [
            (ts("2026-01-05 02:00"), "acme/pay/deployments/r1-us")
        ]


def test_a_run_begun_before_the_load_horizon_is_in_both_figures():
    db = new_db()
    pr(db, 1, "2025-04-01 08:00", merged="2025-04-01 09:00")
    deploy(db, "r1-eu", "2025-04-01 12:00", run="r1", prs=[1])  # before the 18 Aug 2025 horizon
    deploy(db, "r1-us", "2026-01-05 02:00", run="r1")  # a manual job, played months later
    assert run(db, "deployment-frequency").sample_size == 1
    lead = run(db, "lead-time-for-changes")
    assert lead.sample_size == 1 and lead.items[0]["end"] == "2026-01-05T02:00:00Z"


def test_a_deployment_finished_after_the_window_is_in_neither():
    db = new_db()
    pr(db, 2, "2026-01-29 08:00", merged="2026-01-29 09:00")
    deploy(db, "r2-eu", "2026-01-30 10:00", run="r2", prs=[2])  # inside the window
    deploy(db, "r2-us", "2026-02-03 10:00", run="r2")  # the run ends after it
    assert run(db, "deployment-frequency").sample_size == 0
    lead = run(db, "lead-time-for-changes")
    assert lead.sample_size == 0 and lead.extra["awaiting_deployment"] == 1


def test_an_incident_during_a_run_is_not_linked_to_that_run():
    db = new_db()
    deploy(db, "r1-eu", "2026-01-06 10:00", run="r1")
    deploy(db, "r1-us", "2026-01-08 10:00", run="r1")  # the deployment finishes here
    incident(db, "i1", "2026-01-07 10:00")  # before it finished, and no deployment before that
    r = run(db, "change-failure-rate")
    assert r.value == 0.0 and [u["key"] for u in r.extra["unlinked_incidents"]] == ["i1"]


def test_two_deployments_of_the_same_sha_are_two_items():
    db = new_db()
    deploy(db, "101", "2026-01-06 10:00", run="r1", sha="abc123")
    deploy(db, "102", "2026-01-07 10:00", run="r2", sha="abc123")  # a redeploy of the same commit
    for metric in ("deployment-frequency", "change-failure-rate", "rework-rate"):
        items = run(db, metric).items
        assert [(i["key"], i["sha"]) for i in items] == [
            ("acme/pay/deployments/101", "abc123"),
            ("acme/pay/deployments/102", "abc123"),
        ], metric
    gitlab = Deployment(
        "gitlab", "acme/mobile/deployments/41", "acme/mobile", "production", None, 1.0, "f0", None
    )
    assert gitlab.ref()["key"] == "acme/mobile/deployments/41"  # GitLab's ids already name the project
