"""Scheduled digests: local times across DST, re-planning on a settings change, catching up after
downtime, and exactly-once delivery through crashes, 429 storms, 5xx bursts and archived channels.

The clock is a variable the test moves; Slack is the loopback mock; nothing sleeps but the Web API
client's own Retry-After waits (0 s here, plus its jitter)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fakes.server import Fault
from fakes.slack import MockSlack
from slackkit import assert_valid_message, initial_state, interaction

from bot.app import create_app, web_client
from bot.schedule.delivery import EVENT_TYPE, ChannelPacer, Key, deliver, ledger_row
from bot.schedule.scheduler import ORG, Scheduler, digest_trigger, last_fire
from bot.store import Store
from metrics.sample import sample_teams
from metrics.store import open_db
from metrics.teams import Team, get_team, list_teams, save_team


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Crash(BaseException):
    """The process dying: not an error any handler would catch."""


class Dies:
    """A Web API client whose process dies at ``chat.postMessage``, before or after the post lands."""

    def __init__(self, real, *, after_posting: bool):
        self.real, self.after_posting = real, after_posting

    def chat_postMessage(self, **kw):
        if self.after_posting:
            self.real.chat_postMessage(**kw)
        raise Crash

    def __getattr__(self, name):
        return getattr(self.real, name)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- triggers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("zone", "day", "time", "start", "expected_utc"),
    [
        # London: GMT until 29 Mar 2026, then BST (UTC+1): Monday 09:30 local stays 09:30 local.
        (
            "Europe/London",
            "mon",
            "09:30",
            "2026-03-16",
            ["2026-03-16 09:30", "2026-03-23 09:30", "2026-03-30 08:30"],
        ),
        # New York: EST (UTC-5) until 8 Mar 2026, then EDT (UTC-4).
        (
            "America/New_York",
            "fri",
            "16:00",
            "2026-02-27",
            ["2026-02-27 21:00", "2026-03-06 21:00", "2026-03-13 20:00"],
        ),
        # Sydney: AEDT (UTC+11) until 5 Apr 2026, then AEST (UTC+10); Tuesday 10:00 is Monday in UTC.
        (
            "Australia/Sydney",
            "tue",
            "10:00",
            "2026-03-30",
            ["2026-03-30 23:00", "2026-04-07 00:00", "2026-04-14 00:00"],
        ),
        # London back to GMT on 25 Oct 2026.
        (
            "Europe/London",
            "mon",
            "09:30",
            "2026-10-19",
            ["2026-10-19 08:30", "2026-10-26 09:30", "2026-11-02 09:30"],
        ),
    ],
)
def test_digests_fire_at_the_teams_local_time_across_dst(zone, day, time, start, expected_utc):
    team = Team(name="t", channel="C1", timezone=zone, digest={"day": day, "time": time, "period_days": 28})
    trigger = digest_trigger(team)
    fires, t = [], utc(start + " 00:00") - timedelta(days=1)
    for _ in expected_utc:
        t = trigger.get_next_fire_time(None, t + timedelta(seconds=1))
        fires.append(t)
    assert [f.astimezone(UTC).strftime("%Y-%m-%d %H:%M") for f in fires] == expected_utc
    assert {f.strftime("%a %H:%M") for f in fires} == {f"{day.capitalize()} {time}"}
    assert last_fire(trigger, fires[1] + timedelta(minutes=5)) == fires[1]


# -- the scheduler on the sample database ----------------------------------------------------------
@pytest.fixture
def env(sample_db, tmp_path):
    path = tmp_path / "sched.db"
    path.write_bytes(sample_db.read_bytes())
    teams = {t.name: t for t in sample_teams()}
    with MockSlack(members={t.channel: ["U1"] for t in teams.values()}) as slack:
        clock = Clock(utc("2026-11-23 09:31"))  # payments: Monday 09:30 Europe/London (GMT)
        client = web_client("xoxb-test", slack.base_url, server_error_backoff=0.001)
        sched = Scheduler(Store(path), client, clock=clock, pacer=ChannelPacer(interval=0))
        yield sched, slack, clock, teams, path
        sched.shutdown()


def posted(slack: MockSlack, channel: str) -> list[dict]:
    return slack.posted.get(channel, [])


def test_a_digest_fires_once_with_its_key_in_the_metadata(env):
    sched, slack, clock, teams, path = env
    channel = teams["payments"].channel
    first = sched.run_digest("payments")
    assert first.state == "sent" and first.key == Key("payments", "digest", "2026-11-23")
    [message] = posted(slack, channel)
    assert message["metadata"] == {
        "event_type": EVENT_TYPE,
        "event_payload": {
            "key": "payments/digest/2026-11-23",
            "team": "payments",
            "kind": "digest",
            "period": "2026-11-23",
        },
    }
    call = slack.calls_to("chat.postMessage")[0].body
    assert_valid_message({k: v for k, v in call.items() if k in ("text", "blocks")})
    assert "2026-10-26 – 2026-11-22" in str(message["blocks"])  # the 28 days before the digest day
    clock.now += timedelta(minutes=30)
    assert sched.run_digest("payments").state == "already-sent"
    assert len(posted(slack, channel)) == 1


def test_a_schedule_changed_in_chat_takes_effect_at_once(env):
    sched, slack, clock, teams, path = env
    sched.aps.start(paused=True)
    sched.plan_all()
    team = teams["payments"]
    assert sched.next_digest("payments") == utc("2026-11-30 09:30")
    app = create_app(
        Store(path),
        web_client("xoxb-test", slack.base_url),
        signing_secret="test-signing-secret",
        process_before_response=True,
        clock=clock,
        on_team_saved=sched.plan_team,
    )
    from bot.render.modals import settings_view as view

    v = view(
        open_db(path, create=False),
        get_team(open_db(path, create=False), "payments"),
        team.channel,
        opener="U1",
    )
    state = initial_state(v)
    state["values"]["day"]["v"]["selected_option"] = {
        "text": {"type": "plain_text", "text": "Wed"},
        "value": "wed",
    }
    state["values"]["time"]["v"]["selected_time"] = "14:15"
    resp = interaction(
        app, {"type": "view_submission", "user": {"id": "U1"}, "view": {**v, "id": "V1", "state": state}}
    )
    assert resp.status == 200
    assert sched.next_digest("payments") == utc("2026-11-25 14:15")  # Wednesday, GMT
    nudges = sched.aps.get_job("nudges:payments").trigger
    assert nudges.get_next_fire_time(None, utc("2026-11-24 15:00")) == utc("2026-11-26 14:15")  # not on Wed


def test_after_downtime_a_digest_within_grace_is_sent_late_and_older_ones_are_skipped(env):
    sched, slack, clock, teams, path = env
    clock.now = utc("2026-11-23 11:00")  # payments was due 09:30 (1.5 h ago): within 6 h of grace
    outcomes = {o.key.team: o for o in sched.catch_up()}
    assert outcomes["payments"].state == "sent"
    [message] = posted(slack, teams["payments"].channel)
    assert any(b.get("block_id") == "late" for b in message["blocks"])
    assert "Sent late: it was due Mon 23 Nov 09:30 GMT." in str(message["blocks"])
    # mobile (Tue 10:00 New York, last due 17 Nov) and platform (Fri 16:00 Kolkata, 20 Nov): too old.
    # (The org digest, caught up too when the org has a channel, is tests/test_org_digest_schedule.py's.)
    assert {t: o.state for t, o in outcomes.items() if t not in ("payments", ORG)} == {
        "mobile": "skipped",
        "platform": "skipped",
    }
    assert posted(slack, teams["mobile"].channel) == [] and posted(slack, teams["platform"].channel) == []
    db = open_db(path, create=False)
    assert ledger_row(db, outcomes["mobile"].key)["state"] == "skipped"
    assert {o.state for o in sched.catch_up()} == set()  # a second start finds nothing to do
    assert len(posted(slack, teams["payments"].channel)) == 1


def test_crash_between_recorded_and_sent_ends_with_one_message(env):
    sched, slack, clock, teams, path = env

    real = sched.client
    sched.client = Dies(real, after_posting=False)
    with pytest.raises(Crash):
        sched.run_digest("payments")
    db = open_db(path, create=False)
    assert ledger_row(db, Key("payments", "digest", "2026-11-23"))["state"] == "sending"
    assert posted(slack, teams["payments"].channel) == []
    sched.client = real  # the restarted process
    outcome = {o.key.team: o for o in sched.catch_up()}["payments"]
    assert outcome.state == "sent"
    assert len(posted(slack, teams["payments"].channel)) == 1
    assert slack.calls_to("conversations.history")  # it looked before posting


def test_crash_between_sent_and_recorded_ends_with_one_message(env):
    sched, slack, clock, teams, path = env

    real = sched.client
    sched.client = Dies(real, after_posting=True)
    with pytest.raises(Crash):
        sched.run_digest("payments")
    [message] = posted(slack, teams["payments"].channel)
    sched.client = real
    outcome = sched.run_digest("payments")
    assert outcome.state == "recovered" and outcome.ts == message["ts"]
    assert len(posted(slack, teams["payments"].channel)) == 1
    db = open_db(path, create=False)
    assert (
        ledger_row(db, outcome.key)["state"] == "sent" and ledger_row(db, outcome.key)["ts"] == message["ts"]
    )


def test_a_429_storm_and_a_5xx_burst_are_absorbed(env):
    sched, slack, clock, teams, path = env
    slack.fail("/chat.postMessage", *[Fault(429, {"Retry-After": "0"})] * 3)
    assert sched.run_digest("payments").state == "sent"
    slack.fail("/chat.postMessage", Fault(500), Fault(503), Fault(500))
    clock.now = utc("2026-11-24 15:01")  # mobile: Tuesday 10:00 New York (EST) = 15:00 UTC
    mobile = sched.run_digest("mobile")
    assert mobile.state == "sent", mobile
    assert (
        len(posted(slack, teams["payments"].channel)) == 1
        and len(posted(slack, teams["mobile"].channel)) == 1
    )


def test_an_archived_channel_is_reported_and_the_others_still_get_theirs(env):
    sched, slack, clock, teams, path = env
    slack.channel_errors[teams["mobile"].channel] = "is_archived"
    db = open_db(path, create=False)
    for team in list_teams(db):  # all three due at once
        team.digest = {**team.digest, "day": "mon", "time": "09:30"}
        team.timezone = "Europe/London"
        save_team(db, team, who="test")
    outcomes = {o.key.team: o for o in sched.catch_up()}
    assert outcomes["mobile"].state == "failed" and outcomes["mobile"].error == "is_archived"
    assert outcomes["payments"].state == outcomes["platform"].state == "sent"
    assert ledger_row(db, outcomes["mobile"].key)["error"] == "is_archived"
    assert (
        len(posted(slack, teams["payments"].channel)) == 1
        and len(posted(slack, teams["platform"].channel)) == 1
    )


def test_nudges_go_out_once_per_period_and_name_items_once(env):
    sched, slack, clock, teams, path = env
    clock.now = utc("2026-11-25 09:30")  # a Wednesday: payments' nudge day
    first = sched.run_nudges("payments")
    assert first and {o.state for o in first} == {"sent"}
    kinds = {o.key.kind for o in first}
    assert "nudge-stale-prs" in kinds
    n = len(posted(slack, teams["payments"].channel))
    assert n == len(first)
    assert sched.run_nudges("payments") == []  # every item was named: nothing new to say
    assert len(posted(slack, teams["payments"].channel)) == n


def test_deliver_paces_messages_per_channel():
    waits: list[float] = []
    t = [100.0]
    pacer = ChannelPacer(interval=1.0, clock=lambda: t[0], sleep=waits.append)
    pacer.wait("C1")
    pacer.wait("C2")
    pacer.wait("C1")
    assert waits == [1.0]


def test_deliver_records_a_refused_channel_without_raising(tmp_path):
    db = open_db(tmp_path / "d.db")
    with MockSlack() as slack:
        slack.channel_errors["CARCH"] = "is_archived"
        out = deliver(
            db,
            web_client("xoxb-test", slack.base_url),
            Key("t", "digest", "2026-11-23"),
            {"channel": "CARCH", "text": "hi"},
        )
    assert out.state == "failed" and out.error == "is_archived"
