"""The organisation digest's schedule (issue 13 §2): planned from ``[org] digest`` in the org's time
zone only while ``[org] channel`` is set, re-planned when the org changes them, fired once under its
own ledger key beside the teams' digests, caught up after downtime by the teams' rule, and recovered
(not repeated) after a crash between posting and recording.

The clock is a variable the test moves; Slack is the loopback mock; nothing sleeps."""

from __future__ import annotations

import logging

import pytest
from builders import configure_org
from fakes.slack import MockSlack
from slackkit import assert_valid_message
from test_scheduler import Clock, Crash, Dies, posted, utc

from bot.app import web_client
from bot.schedule.delivery import EVENT_TYPE, ChannelPacer, Key, ledger_row
from bot.schedule.scheduler import ORG, ORG_JOB, Scheduler, org_key
from bot.store import Store
from metrics.sample import sample_teams
from metrics.store import open_db

ORG_CHANNEL = "C0ORGDIGEST"
MONDAY_8 = {"day": "mon", "time": "08:00", "period_days": 28}


@pytest.fixture
def env(sample_db, tmp_path):
    path = tmp_path / "org.db"
    path.write_bytes(sample_db.read_bytes())
    configure_org(path, channel=ORG_CHANNEL, timezone="Europe/London", digest=MONDAY_8)
    with MockSlack(members={ORG_CHANNEL: ["U1"]}) as slack:
        clock = Clock(utc("2026-11-23 08:01"))  # Monday 08:01 in London (GMT)
        client = web_client("xoxb-test", slack.base_url, server_error_backoff=0.001)
        sched = Scheduler(Store(path), client, clock=clock, pacer=ChannelPacer(interval=0))
        yield sched, slack, clock, path
        sched.shutdown()


def _late_note(message: dict) -> str | None:
    late = [b for b in message["blocks"] if b.get("block_id") == "late"]
    return late[0]["elements"][0]["text"] if late else None


def test_no_job_without_an_org_channel_and_one_as_soon_as_it_is_set(env):
    sched, slack, clock, path = env
    configure_org(path, channel="")
    sched.aps.start(paused=True)
    sched.plan_all()
    assert sched.aps.get_job(ORG_JOB) is None and sched.next_org_digest() is None
    assert sched.run_org_digest() is None and slack.calls_to("chat.postMessage") == []
    assert all(o.key.team != ORG for o in sched.catch_up()) and posted(slack, ORG_CHANNEL) == []

    configure_org(path, channel=ORG_CHANNEL)
    sched.plan_org()  # what Deps.on_org_saved calls after an org admin's change
    assert sched.next_org_digest() == utc("2026-11-30 08:00")  # next Monday 08:00 GMT


def test_a_change_of_day_time_or_zone_replans_at_once_and_no_channel_unplans(env):
    sched, slack, clock, path = env
    sched.aps.start(paused=True)
    sched.plan_all()
    assert sched.next_org_digest() == utc("2026-11-30 08:00")
    configure_org(
        path, timezone="America/New_York", digest={"day": "tue", "time": "07:15", "period_days": 14}
    )
    sched.plan_org()
    assert sched.next_org_digest() == utc("2026-11-24 12:15")  # Tuesday 07:15 EST
    configure_org(path, channel="")
    sched.plan_org()
    assert sched.aps.get_job(ORG_JOB) is None
    assert [j.id for j in sched.aps.get_jobs() if j.id.startswith("digest:")]  # the teams' stay planned


def test_the_org_digest_fires_once_under_its_own_key_beside_the_teams(env, caplog):
    sched, slack, clock, path = env
    caplog.set_level(logging.INFO, logger="vsm.scheduler")
    first = sched.run_org_digest()
    assert first.state == "sent" and first.key == Key(ORG, "org-digest", "2026-11-23")
    assert first.compose_ms is not None and first.compose_ms > 0
    [message] = posted(slack, ORG_CHANNEL)
    assert message["metadata"] == {
        "event_type": EVENT_TYPE,
        "event_payload": {
            "key": "*org*/org-digest/2026-11-23",
            "team": ORG,
            "kind": "org-digest",
            "period": "2026-11-23",
        },
    }
    call = slack.calls_to("chat.postMessage")[0].body
    assert_valid_message({k: v for k, v in call.items() if k in ("text", "blocks")})
    period = next(b for b in message["blocks"] if b.get("block_id") == "period")
    # The 28 complete days before the digest day, in the org's zone.
    assert period["elements"][0]["text"].startswith("2026-10-26 – 2026-11-22 (Europe/London)")
    assert _late_note(message) is None
    assert "org digest *org*/org-digest/2026-11-23: sent (composed in" in caplog.text

    clock.now = utc("2026-11-23 09:31")  # payments' own digest, the same morning: its own key and row
    assert sched.run_org_digest().state == "already-sent"
    team = sched.run_digest("payments")
    assert team.state == "sent" and team.key == Key("payments", "digest", "2026-11-23")
    assert len(posted(slack, ORG_CHANNEL)) == 1
    db = open_db(path, create=False)
    assert ledger_row(db, org_key(clock.now.date()))["channel"] == ORG_CHANNEL
    assert ledger_row(db, team.key)["channel"] != ORG_CHANNEL


def test_after_downtime_within_grace_it_is_sent_late_with_a_note(env):
    sched, slack, clock, path = env
    clock.now = utc("2026-11-23 11:00")  # due 08:00, 3 h ago: within the 6 h grace
    [org] = [o for o in sched.catch_up() if o.key.team == ORG]
    assert org.state == "sent" and org.key == org_key(clock.now.date())
    [message] = posted(slack, ORG_CHANNEL)
    assert _late_note(message) == "Sent late: it was due Mon 23 Nov 08:00 GMT."
    assert [o for o in sched.catch_up() if o.key.team == ORG] == []  # a second start: nothing to do
    assert len(posted(slack, ORG_CHANNEL)) == 1


def test_after_downtime_beyond_grace_it_is_recorded_skipped_and_never_sent(env):
    sched, slack, clock, path = env
    clock.now = utc("2026-11-23 14:30")  # 6.5 h late
    [org] = [o for o in sched.catch_up() if o.key.team == ORG]
    assert org.state == "skipped" and "missed at Mon 23 Nov 08:00 GMT" in org.error
    row = ledger_row(open_db(path, create=False), org.key)
    assert row["state"] == "skipped" and row["channel"] == ORG_CHANNEL
    assert sched.run_org_digest().state == "skipped"  # the job firing late now sends nothing either
    assert posted(slack, ORG_CHANNEL) == []


def test_a_crash_after_posting_is_recovered_not_posted_again(env):
    sched, slack, clock, path = env
    real = sched.client
    sched.client = Dies(real, after_posting=True)
    with pytest.raises(Crash):
        sched.run_org_digest()
    [message] = posted(slack, ORG_CHANNEL)
    sched.client = real  # the restarted process
    [org] = [o for o in sched.catch_up() if o.key.team == ORG]
    assert org.state == "recovered" and org.ts == message["ts"]
    assert len(posted(slack, ORG_CHANNEL)) == 1


def test_a_broken_org_setting_never_stops_the_teams_catch_up(env, caplog):
    """A zone no one could set through ``set_org`` (a hand-edited database): logged, teams served."""
    sched, slack, clock, path = env
    db = open_db(path, create=False)
    db["org"].upsert({"workspace": "", "key": "timezone", "value": '"Mars/Olympus"'}, pk=("workspace", "key"))
    clock.now = utc("2026-11-23 11:00")
    sched.aps.start(paused=True)
    sched.plan_all()
    assert sched.aps.get_job(ORG_JOB) is None
    outcomes = {o.key.team: o.state for o in sched.catch_up()}
    assert outcomes["payments"] == "sent" and ORG not in outcomes
    assert "org digest catch-up failed: VsmError: unknown time zone 'Mars/Olympus'" in caplog.text
    assert posted(slack, ORG_CHANNEL) == []
    assert {t.name for t in sample_teams()} <= set(outcomes)


def test_an_org_admins_change_in_the_settings_form_replans_the_org_digest_at_once(sample_db, tmp_path):
    """The whole path: the org settings form submitted by an admin (signed, through Bolt), its
    ``on_org_saved`` wired to the scheduler as ``vsm serve`` wires it, and the job moved at once."""
    from slackkit import SECRET
    from test_org_settings import AdminSlack, _open, _option, _set, _state, _submit

    from bot.app import create_app

    path = tmp_path / "form.db"
    path.write_bytes(sample_db.read_bytes())
    configure_org(path, channel=ORG_CHANNEL, timezone="Europe/London", digest=MONDAY_8)
    with AdminSlack({"UANA1"}) as slack:
        clock = Clock(utc("2026-11-23 09:31"))
        client = web_client("xoxb-test", slack.base_url)
        sched = Scheduler(Store(path), client, clock=clock)
        sched.aps.start(paused=True)
        sched.plan_all()
        assert sched.next_org_digest() == utc("2026-11-30 08:00")
        app = create_app(
            Store(path),
            client,
            signing_secret=SECRET,
            process_before_response=True,
            clock=clock,
            on_org_saved=sched.plan_org,
        )
        view = _open(app, slack)
        state = _state(view)
        state["values"]["day"]["v"]["selected_option"] = _option("wed")
        state["values"]["time"]["v"]["selected_time"] = "10:15"
        _set(state, "timezone", "America/New_York")
        assert _submit(app, view, state).status == 200
        try:
            assert sched.next_org_digest() == utc("2026-11-25 15:15")  # Wednesday 10:15 EST
        finally:
            sched.shutdown()
