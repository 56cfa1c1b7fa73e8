"""Experiment verdicts judged only on data that is current (metrics/experiments.py, "Judged only on
data that is current"): a source the metric is counted from that stopped syncing leaves the last
weeks empty, and those empty weeks must never read as a real change.

The team is tests/builders.py's ``pay`` (Jira project PAY, repository acme/pay, service SVC, UTC).
The experiment is on deployment frequency (counted from GitHub's deployments), ten weeks from Monday
2 March 2026 00:00 UTC: during = [2 Mar, 11 May), before = [22 Dec 2025, 2 Mar). Deployments run at
5 a week throughout, until GitHub's sync fails after 13 Apr (six weeks in): the last four weeks hold
nothing, as if the team had stopped shipping.
"""

from __future__ import annotations

import pytest
from builders import new_db, team
from test_experiments import START, deploy, deploys_per_week

from metrics import experiments as ex
from metrics.teams import create_team, set_org, settings_log
from metrics.timeutil import iso

WEEK = 7 * 86400.0
END = START + 10 * WEEK  # Mon 11 May 2026 00:00 UTC
SYNCED = START + 6 * WEEK  # Mon 13 Apr 2026 00:00 UTC: GitHub's last success
HOUR = 3600.0


def sync_row(db, source: str, stream: str, success: float | None, error: str | None = None) -> None:
    """``sync_status`` as metrics/sources/sync.py leaves it: a success clears the error."""
    db["sync_status"].upsert(
        {
            "source": source,
            "stream": stream,
            "cursor": None,
            "last_success": iso(success),
            "last_error": error,
            "rows_changed": 0,
            "updated": iso(success),
        },
        pk=("source", "stream"),
    )


@pytest.fixture
def db():
    d = new_db()
    create_team(d, team(metrics=["deployment-frequency", "pr-cycle-time"]), who="U0")
    set_org(d, "north_star", ["deployment-frequency"], who="U0")
    deploys_per_week(d, START - 10 * WEEK, 10, 5, "b")  # 5 a week before
    deploys_per_week(d, START, 6, 5, "d")  # 5 a week for six weeks, then the sync failed
    sync_row(d, "github", "deployments", SYNCED, "2026-04-20T00:00:00Z: HTTP 401 (token expired)")
    sync_row(d, "github", "pulls", END + HOUR)  # GitHub's other streams are current: only this one lags
    sync_row(d, "jira", "issues", END + HOUR)
    return d


def start(db) -> ex.Experiment:
    return ex.start(db, "pay", "deployment-frequency", "ship behind flags", 10, "U1", START)


def test_judged_on_the_data_as_it_is_the_empty_weeks_would_read_as_worse(db):
    """What the verdict was before this rule: the four unsynced weeks counted as zeros."""
    exp = start(db)
    before, during = ex.windows(exp, exp.ends)
    c = ex.compare(ex.CATALOGUE["deployment-frequency"], ex.TeamData(db, team(), END), before, during)
    assert c.verdict == "worse" and c.samples[1] == [5.0] * 6 + [0.0] * 4


def test_a_failing_sync_gives_no_verdict_it_waits_then_says_why(db):
    exp = start(db)
    # Ended, GitHub behind: still running at each run of the wait, however often asked.
    for at in (END, END + HOUR, END + 2 * 86400 - 1):
        assert ex.conclude(db, exp, at).running
    assert ex.waiting_for(db, exp) == "GitHub has not synced since 13 Apr: the last 4 weeks cannot be judged"
    assert [r["what"] for r in settings_log(db, "pay")][-1].startswith("started experiment")

    done = ex.conclude(db, exp, END + ex.SYNC_WAIT.total_seconds())
    assert (done.state, done.verdict) == ("concluded", "not enough data for a verdict")
    reason = "GitHub has not synced since 13 Apr: the last 4 weeks cannot be judged"
    assert done.detail == f"not enough data for a verdict: {reason}"
    # No figures: a window missing its last weeks is a wrong number, not a late one.
    assert done.result == {"unjudged": reason} and done.north_star == []
    assert done.to_json()["not_judged"] == reason
    assert settings_log(db, "pay")[-1]["what"] == (
        f"experiment #{exp.id} on deployment frequency (ship behind flags) ended: not enough data for a verdict"
    )


def test_the_wait_ends_in_a_verdict_once_the_sync_catches_up(db):
    exp = start(db)
    assert ex.conclude(db, exp, END + HOUR).running
    deploys_per_week(db, START + 6 * WEEK, 4, 5, "late")  # the next sync brings the four weeks
    sync_row(db, "github", "deployments", END + 3 * HOUR)
    done = ex.conclude(db, exp, END + 3 * HOUR + 60)
    assert (done.state, done.verdict) == ("concluded", "no real change")
    assert done.result["during"]["sample_size"] == 50 and done.measured_until == END
    assert "unjudged" not in done.result and done.north_star[0]["metric"] == "deployment-frequency"


def test_a_failure_after_a_sync_past_the_end_still_waits(db):
    """The rule as the digest says a source is behind: a sync past the end, then a failure."""
    exp = start(db)
    sync_row(db, "github", "deployments", END + HOUR, "2026-05-11T02:00:00Z: HTTP 502")
    assert ex.conclude(db, exp, END + 3 * HOUR).running
    assert ex.waiting_for(db, exp) == (
        "GitHub's last sync failed: its data cannot be confirmed complete to the experiment's end"
    )


def test_a_source_the_metric_is_not_counted_from_does_not_hold_it(db):
    """Jira failing says nothing about deployments: a deployment-frequency verdict does not wait."""
    exp = start(db)
    deploys_per_week(db, START + 6 * WEEK, 4, 5, "late")
    sync_row(db, "github", "deployments", END + HOUR)
    sync_row(db, "jira", "issues", SYNCED, "2026-04-20T00:00:00Z: HTTP 401")
    assert ex.waiting_for(db, exp) is None
    assert ex.conclude(db, exp, END + 2 * HOUR).verdict == "no real change"


def test_a_source_that_never_synced_is_said(db):
    exp = start(db)
    sync_row(db, "github", "deployments", None, "2026-03-01T00:00:00Z: HTTP 401")
    assert (
        ex.waiting_for(db, exp)
        == "GitHub has never synced: nothing since the experiment started can be judged"
    )


def test_stop_early_judges_up_to_the_last_complete_sync_not_now(db):
    exp = start(db)
    stop_at = START + 8 * WEEK + 3 * 86400  # Thu 30 Apr 00:00; GitHub last synced 13 Apr
    done = ex.stop(db, exp.id, "pay", "U2", stop_at)
    assert (done.state, done.concluded_at, done.measured_until) == ("stopped", stop_at, SYNCED)
    # Judged on [2 Mar, 13 Apr) against the six weeks before: 5 a week both sides, six weeks each.
    assert done.result["during"] == {
        "since": "2026-03-02T00:00:00Z",
        "until": "2026-04-13T00:00:00Z",
        "value": 5.0,
        "sample_size": 30,
    }
    assert done.result["before"]["since"] == "2026-01-19T00:00:00Z"
    assert done.verdict == "not enough data for a verdict"  # six weeks a side: fewer than 10
    assert done.result["judged_to_sync"] == {
        "until": "2026-04-13T00:00:00Z",
        "reason": "GitHub has not synced since 13 Apr: the last 17 days cannot be judged",
    }


def test_stop_with_no_sync_since_the_start_is_not_enough_data_with_the_reason(db):
    exp = start(db)
    sync_row(db, "github", "deployments", START - WEEK, "2026-03-01T00:00:00Z: HTTP 401")
    done = ex.stop(db, exp.id, "pay", "U2", START + 3 * WEEK)
    assert (done.state, done.verdict) == ("stopped", "not enough data for a verdict")
    assert done.detail == (
        "not enough data for a verdict: GitHub has not synced since 23 Feb: "
        "nothing since the experiment started can be judged"
    )


def test_a_stop_after_the_end_with_data_behind_waits_for_the_data_and_says_so(db):
    """Pressed after the end (an old button), it is not "stopped early" and not judged on part of
    the run: nothing changes, the press is told what the verdict waits for, and once the data is
    in a press concludes it as the scheduled run would, judged to its end."""
    exp = start(db)
    with pytest.raises(ex.Waiting) as refused:
        ex.stop(db, exp.id, "pay", "U2", END + HOUR)
    assert str(refused.value) == (
        f"experiment #{exp.id} on deployment frequency ended on 11 May, so it is not stopped early: its "
        "verdict on the whole run waits for the data (GitHub has not synced since 13 Apr: the last 4 weeks "
        "cannot be judged) and is posted to the team's channel when it arrives, at the latest on 13 May"
    )
    assert ex.get(db, exp.id).running
    assert [r["what"] for r in settings_log(db, "pay")][-1].startswith("started experiment")

    deploys_per_week(db, START + 6 * WEEK, 4, 5, "late")
    sync_row(db, "github", "deployments", END + 2 * HOUR)
    done = ex.stop(db, exp.id, "pay", "U2", END + 3 * HOUR)
    assert (done.state, done.stopped_early, done.measured_until) == ("concluded", False, END)
    assert done.verdict == "no real change" and "judged_to_sync" not in done.result
    assert settings_log(db, "pay")[-1]["what"] == (
        f"experiment #{exp.id} on deployment frequency (ship behind flags) ended: no real change"
    )


def test_a_stop_after_the_wait_concludes_with_no_verdict_and_the_reason(db):
    exp = start(db)
    done = ex.stop(db, exp.id, "pay", "U2", END + ex.SYNC_WAIT.total_seconds())
    assert (done.state, done.verdict) == ("concluded", "not enough data for a verdict")
    assert done.result == {
        "unjudged": "GitHub has not synced since 13 Apr: the last 4 weeks cannot be judged"
    }


def test_a_stop_with_every_sync_minutes_old_cuts_there_and_says_nothing(db):
    """Syncs run on a schedule: at any press the last one is minutes old, which is not a lag; the
    minutes since are unknown, so the window ends at the sync, without a word."""
    deploys_per_week(db, START + 6 * WEEK, 4, 5, "late")
    stop_at = START + 8 * WEEK + 3 * 86400
    for source, stream in (("github", "pulls"), ("github", "deployments"), ("jira", "issues")):
        sync_row(db, source, stream, stop_at - 600)
    exp = start(db)
    done = ex.stop(db, exp.id, "pay", "U2", stop_at)
    assert (done.state, done.concluded_at, done.measured_until) == ("stopped", stop_at, stop_at - 600)
    assert "judged_to_sync" not in done.result and done.result["during"]["until"] == iso(stop_at - 600)


def test_a_stop_cuts_silently_at_a_sync_within_the_tolerance(db):
    stop_at = START + 8 * WEEK + 3 * 86400
    synced = stop_at - ex.SYNC_TOLERANCE.total_seconds() + 60
    sync_row(db, "github", "deployments", synced)
    done = ex.stop(db, start(db).id, "pay", "U2", stop_at)
    assert done.measured_until == synced and "judged_to_sync" not in done.result


def test_a_stop_with_a_sync_within_the_tolerance_does_not_count_the_unsynced_hours_as_empty():
    """The reviewer's repro: 4 deployments every day before and during, a daily sync 23 hours before
    the press (day 10, 22:00). Equal rates must read as equal, not as a tenth fewer: judged to the
    sync, both windows 8 days 23 hours, 36 deployments each."""
    d = new_db()
    create_team(d, team(metrics=["deployment-frequency", "pr-cycle-time"]), who="U0")
    stop_at = START + 9 * 86400 + 22 * HOUR
    synced = stop_at - 23 * HOUR
    for day in range(-70, 10):
        for k in range(4):
            at = START + day * 86400 + HOUR * (2 + 5 * k)
            if at <= synced:
                deploy(d, f"g{day}-{k}", at)
    for source, stream in (
        ("github", "pulls"),
        ("github", "deployments"),
        ("github", "incidents"),
        ("jira", "issues"),
    ):
        sync_row(d, source, stream, synced)
    exp = ex.start(d, "pay", "deployment-frequency", "ship behind flags", 10, "U1", START)
    p = ex.progress(d, exp, stop_at)
    assert p.lag is None and p.during["value"] == p.before["value"] == round(36 / (8 + 23 / 24) * 7, 4)
    done = ex.stop(d, exp.id, "pay", "U2", stop_at)
    assert done.measured_until == synced and "judged_to_sync" not in done.result
    assert done.result["during"]["sample_size"] == done.result["before"]["sample_size"] == 36
    assert done.result["during"]["value"] == done.result["before"]["value"]


def test_a_stop_cuts_at_a_sync_older_than_the_tolerance(db):
    stop_at = START + 8 * WEEK + 3 * 86400
    old = stop_at - ex.SYNC_TOLERANCE.total_seconds() - 60
    sync_row(db, "github", "deployments", old)
    done = ex.stop(db, start(db).id, "pay", "U2", stop_at)
    assert done.measured_until == old
    assert done.result["judged_to_sync"]["reason"] == (
        "GitHub has not synced since 28 Apr: the last 2 days cannot be judged"
    )


def test_a_stop_cuts_at_a_recent_sync_that_failed_since(db):
    stop_at = START + 8 * WEEK + 3 * 86400
    sync_row(db, "github", "deployments", stop_at - HOUR, "2026-04-29T23:30:00Z: HTTP 502")
    done = ex.stop(db, start(db).id, "pay", "U2", stop_at)
    assert done.measured_until == stop_at - HOUR and "judged_to_sync" in done.result


def test_a_failing_incidents_stream_does_not_hold_a_deployment_frequency_verdict(db):
    """Freshness is judged on the streams the metric's data comes from, not the whole source."""
    deploys_per_week(db, START + 6 * WEEK, 4, 5, "late")
    sync_row(db, "github", "deployments", END + HOUR)
    sync_row(db, "github", "pulls", END + HOUR)
    sync_row(db, "github", "incidents", END + HOUR, "2026-05-11T01:30:00Z: HTTP 403 issues search")
    exp = start(db)
    assert ex.waiting_for(db, exp) is None
    assert ex.conclude(db, exp, END + 2 * HOUR).verdict == "no real change"
    # The deployments stream failing does hold it.
    sync_row(db, "github", "deployments", END + HOUR, "2026-05-11T01:30:00Z: HTTP 502")
    other = ex.start(db, "pay", "deployment-frequency", "smaller batches", 10, "U1", START + WEEK)
    assert ex.waiting_for(db, other) is not None


def test_a_failing_sprints_stream_does_not_hold_a_cycle_time_verdict():
    d = new_db()
    create_team(d, team(metrics=["cycle-time", "sprint-completion"], boards=[7]), who="U0")
    sync_row(d, "jira", "issues", END + HOUR)
    sync_row(d, "jira", "sprints", SYNCED, "2026-04-20T00:00:00Z: HTTP 500 board 7")
    exp = ex.start(d, "pay", "cycle-time", "limit WIP", 10, "U1", START)
    assert ex.waiting_for(d, exp) is None
    assert ex.conclude(d, exp, END + 2 * HOUR).state == "concluded"
    assert "unjudged" not in ex.get(d, exp.id).result
    # The issues stream failing does hold it.
    sync_row(d, "jira", "issues", SYNCED, "2026-04-20T00:00:00Z: HTTP 401")
    other = ex.start(d, "pay", "cycle-time", "pair more", 10, "U1", START)
    assert ex.waiting_for(d, other) == "Jira has not synced since 13 Apr: the last 4 weeks cannot be judged"


def test_stream_data_names_every_connector_stream():
    """One mapping from stream to data kind, covering each connector's streams."""
    from metrics.sources.jira import ISSUES, SPRINTS
    from metrics.sources.pagerduty import STREAM

    for stream in (
        "pulls",
        "deployments",
        "incidents",
        "merge_requests",
        "pipelines",
        ISSUES,
        SPRINTS,
        STREAM,
    ):
        assert stream in ex.STREAM_DATA


def test_a_teams_concluded_experiments_are_read_for_that_team_only(db):
    create_team(db, team(name="web", channel="C9", metrics=["deployment-frequency"]), who="U0")
    mine = start(db)
    other = ex.start(db, "web", "deployment-frequency", "smaller changes", 10, "U1", START)
    ex.stop(db, other.id, "web", "U1", START + WEEK)
    ex.stop(db, mine.id, "pay", "U1", START + 2 * WEEK)
    assert [e.id for e in ex.concluded_for(db, "pay", START, END)] == [mine.id]
    assert [e.id for e in ex.concluded_for(db, "web", START, END)] == [other.id]
    assert ex.concluded_for(db, "pay", START + 2 * WEEK + 1, END) == []


def test_progress_past_the_end_shows_no_figures_and_says_what_the_verdict_waits_for(db):
    exp = start(db)
    p = ex.progress(db, exp, END + 20 * HOUR)
    assert (p.ended, p.before, p.during) == (True, {}, {})
    assert p.waiting == "GitHub has not synced since 13 Apr: the last 4 weeks cannot be judged"
    # Current data: it ended, and the next scheduled run gives the verdict.
    sync_row(db, "github", "deployments", END + HOUR)
    assert ex.progress(db, exp, END + 2 * HOUR).waiting is None


def test_progress_while_running_stops_its_figures_at_a_lagging_sync_and_says_why(db):
    exp = start(db)
    p = ex.progress(db, exp, START + 8 * WEEK)
    assert p.during["until"] == iso(SYNCED) and p.during["sample_size"] == 30
    assert p.lag == "GitHub has not synced since 13 Apr: the last 2 weeks cannot be judged"


def test_a_stop_after_a_day_with_the_last_sync_inside_the_first_day_compares_nothing(db):
    """Pressed 26 hours in, the last sync 4 hours old: the data reaches 22 hours into the run, too
    little to compare, and the detail says how far it reaches rather than "stopped within a day"."""
    stop_at = START + 26 * HOUR
    for source, stream in (("github", "pulls"), ("github", "deployments"), ("jira", "issues")):
        sync_row(db, source, stream, stop_at - 4 * HOUR)
    done = ex.stop(db, start(db).id, "pay", "U2", stop_at)
    assert (done.verdict, done.measured_until) == ("not enough data for a verdict", START + 22 * HOUR)
    assert done.detail == (
        "not enough data for a verdict: its data has synced only to 2 Mar 22:00, less than a day into it"
    )
    assert "before" not in done.result and done.north_star == []
