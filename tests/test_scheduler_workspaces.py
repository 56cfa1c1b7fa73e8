"""The scheduler with many workspaces installed (issue 14 §2, §3): each workspace's digests, org
digest and verdicts go to its own channels with its own bot token, once, under keys that name it;
uninstalling a workspace removes all its jobs at once and leaves the others'; a workspace with no
client any more sends nothing and records nothing; single-workspace mode's keys are as they were.

Two workspaces each hold a team named ``payments``; the Web API is the loopback mock, which records
the token of every call. NOW is Wed 25 Nov 2026 15:00 UTC, when every digest here is due."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
from builders import team
from fakes.slack import MockSlack
from slackkit import NOW

from bot.app import web_client
from bot.schedule.delivery import EVENT_TYPE, Key, ledger_row
from bot.schedule.scheduler import ORG, Scheduler
from bot.schedule.verdicts import verdict_key
from bot.store import Store
from metrics import experiments as ex
from metrics.store import open_db
from metrics.teams import create_team, get_team, set_org
from metrics.workspace import SINGLE, Workspace

T1, T2 = Workspace("T0AAA1"), Workspace("T0BBB2")
TOKENS = {T1: "xoxb-t1", T2: "xoxb-t2"}
CHANNELS = {T1: "CT1PAY", T2: "CT2PAY"}
ORG_CHANNELS = {T1: "CT1ORG", T2: "CT2ORG"}
WEDNESDAY = {"day": "wed", "time": "15:00", "period_days": 28}  # due at NOW
DAY = 86400.0


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Env:
    """The database, the mock Slack, the installed workspaces' clients (a workspace removed from
    ``installed`` is uninstalled: its client is None) and a scheduler built as ``vsm serve`` builds
    it in OAuth mode."""

    def __init__(self, path, slack: MockSlack) -> None:
        self.path, self.slack = path, slack
        self.clock = Clock(NOW + timedelta(minutes=1))
        self.installed = {ws: web_client(TOKENS[ws], slack.base_url) for ws in (T1, T2)}
        self.broken: set[Workspace] = set()
        self.listed = [T1, T2]  # what ``workspaces()`` says: installed, as the installations table last said
        self.dead: list[tuple[Workspace, str | None]] = []  # what ``on_dead_token`` was told
        self.sched = Scheduler(
            Store(path),
            web_client("xoxb-single", slack.base_url),
            clock=self.clock,
            clients=self.client,
            workspaces=lambda: list(self.listed),
            on_dead_token=lambda ws, token: self.dead.append((ws, token)),
        )

    def client(self, ws: Workspace):
        """``clients`` as ``vsm serve`` gives it: the workspace's client, None when not installed;
        one in ``broken`` raises, as a token renewal Slack refuses does."""
        if ws in self.broken:
            raise RuntimeError("invalid_refresh_token")
        return self.installed.get(ws)

    def db(self):
        return open_db(self.path, create=False)

    def posts(self) -> list[tuple[str, str]]:
        """(channel, token) of every message posted, in order."""
        return [
            (c.body["channel"], (c.auth or "").removeprefix("Bearer "))
            for c in self.slack.calls_to("chat.postMessage")
        ]

    def ledger(self) -> dict[str, str]:
        """Every ledger row's key and workspace."""
        return {r["key"]: r["workspace"] for r in self.db()["deliveries"].rows}

    def jobs(self) -> set[str]:
        return {job.id for job in self.sched.aps.get_jobs()}


@pytest.fixture
def env(tmp_path):
    path = tmp_path / "ws.db"
    db = open_db(path)
    metrics = ["pr-cycle-time", "merged-without-review"]
    # Single mode's team of the same name, in the channel id the one-workspace tests use: never served
    # in OAuth mode (no installation is SINGLE).
    create_team(db, team(name="payments", channel="C1", digest=WEDNESDAY, metrics=metrics), who="U0")
    for ws in (T1, T2):
        create_team(
            db,
            team(name="payments", channel=CHANNELS[ws], digest=WEDNESDAY, metrics=metrics),
            who="U0",
            ws=ws,
        )
        set_org(db, "channel", ORG_CHANNELS[ws], who="U0", ws=ws)
        set_org(db, "digest", {"day": "wed", "time": "15:00"}, who="U0", ws=ws)
    db.conn.close()
    members = {c: ["U1"] for c in [*CHANNELS.values(), *ORG_CHANNELS.values(), "C1"]}
    with MockSlack(members=members) as slack:
        e = Env(path, slack)
        yield e
        e.sched.shutdown()


def test_each_workspaces_digests_go_to_its_own_channels_with_its_own_token_once(env):
    outcomes = env.sched.catch_up()
    assert sorted((o.key.workspace, o.key.team, o.key.kind, o.state) for o in outcomes) == [
        (T1, ORG, "org-digest", "sent"),
        (T1, "payments", "digest", "sent"),
        (T2, ORG, "org-digest", "sent"),
        (T2, "payments", "digest", "sent"),
    ]
    assert sorted(env.posts()) == [
        ("CT1ORG", "xoxb-t1"),
        ("CT1PAY", "xoxb-t1"),
        ("CT2ORG", "xoxb-t2"),
        ("CT2PAY", "xoxb-t2"),
    ]
    [t1] = env.slack.posted["CT1PAY"]
    assert t1["metadata"] == {
        "event_type": EVENT_TYPE,
        "event_payload": {
            "key": "T0AAA1:payments/digest/2026-11-25",
            "team": "payments",
            "kind": "digest",
            "period": "2026-11-25",
            "workspace": T1,
        },
    }
    assert env.ledger() == {
        "T0AAA1:payments/digest/2026-11-25": T1,
        "T0BBB2:payments/digest/2026-11-25": T2,
        "T0AAA1:*org*/org-digest/2026-11-25": T1,
        "T0BBB2:*org*/org-digest/2026-11-25": T2,
    }
    # Once: the next start finds nothing to do, and a fire of either job says it was sent.
    assert env.sched.catch_up() == []
    assert env.sched.run_digest("payments", ws=T1).state == "already-sent"
    assert env.sched.run_org_digest(ws=T2).state == "already-sent"
    assert len(env.posts()) == 4 and env.slack.posted["C1"] == []


def test_uninstalling_removes_every_job_of_that_workspace_at_once_and_leaves_the_others(env):
    env.sched.aps.start(paused=True)  # running, as under `vsm serve`, with no job let fire
    env.sched.plan_all()
    planned = {f"{kind}:{ws}:payments" for kind in ("digest", "nudges") for ws in (T1, T2)}
    planned |= {f"org-digest:{T1}", f"org-digest:{T2}", "verdicts"}
    assert env.jobs() == planned
    assert env.sched.next_digest("payments", ws=T1) == NOW + timedelta(days=7)
    assert env.sched.next_digest("payments") is None  # single mode's team is not served

    env.sched.unplan_workspace(T1)  # what Deps.on_uninstalled calls
    assert env.jobs() == {j for j in planned if T1 not in j}
    assert env.sched.next_digest("payments", ws=T1) is None and env.sched.next_org_digest(ws=T1) is None
    assert env.sched.next_digest("payments", ws=T2) == NOW + timedelta(days=7)

    env.sched.plan_workspace(T1)  # installed again: its team and org digest come back as they were
    assert env.jobs() == planned

    # A settings change in T2 moves T2's job only; planning a workspace drops a job its database no
    # longer calls for (a team planned in T1 that T1 no longer has).
    moved = get_team(env.db(), "payments", ws=T2)
    moved.digest = {**WEDNESDAY, "time": "16:30"}
    env.sched.plan_team(moved, T2)  # what Deps.on_team_saved calls
    assert env.sched.next_digest("payments", ws=T2) == NOW + timedelta(minutes=90)
    assert env.sched.next_digest("payments", ws=T1) == NOW + timedelta(days=7)
    env.sched.plan_team(team(name="gone", channel="CGONE", digest=WEDNESDAY), T1)
    assert f"digest:{T1}:gone" in env.jobs()
    env.sched.plan_workspace(T1)
    assert env.jobs() == planned


def test_a_workspace_with_no_client_gets_nothing_sent_and_nothing_recorded(env):
    del env.installed[T1]  # uninstalled after the installations were listed
    outcomes = env.sched.catch_up()
    assert {o.key.workspace for o in outcomes} == {T2}
    assert env.sched.run_digest("payments", ws=T1) is None
    assert env.sched.run_org_digest(ws=T1) is None
    assert env.sched.run_nudges("payments", ws=T1) == []
    assert {ch for ch, _ in env.posts()} == {"CT2PAY", "CT2ORG"}
    assert T1 not in env.ledger().values()  # no failure, no skip: as it was if T1 installs again

    env.installed[T1] = web_client(TOKENS[T1], env.slack.base_url)  # installed again, within the grace
    sent = env.sched.catch_up()
    assert sorted((o.key.workspace, o.key.team, o.state) for o in sent) == [
        (T1, ORG, "sent"),
        (T1, "payments", "sent"),
    ]
    assert sorted(env.posts())[:2] == [("CT1ORG", "xoxb-t1"), ("CT1PAY", "xoxb-t1")]


def test_each_workspaces_verdict_is_posted_with_its_token_and_an_uninstalled_ones_waits(env):
    started = NOW.timestamp() - 15 * DAY  # two weeks: ended yesterday
    db = env.db()
    one = ex.start(db, "payments", "merged-without-review", "review pairs", 2, "U1", started, ws=T1)
    two = ex.start(db, "payments", "merged-without-review", "review pairs", 2, "U1", started, ws=T2)
    assert (str(verdict_key(one)), str(verdict_key(two))) == (
        f"T0AAA1:payments/experiment-verdict/{one.id}",
        f"T0BBB2:payments/experiment-verdict/{two.id}",
    )
    del env.installed[T1]
    [outcome] = env.sched.run_verdicts()
    assert (outcome.key, outcome.state) == (verdict_key(two), "sent")
    assert env.posts() == [("CT2PAY", "xoxb-t2")]
    assert (
        ex.get(env.db(), one.id, ws=one.workspace).state == "concluded"
    )  # judged: concluding is the deployment's
    assert ledger_row(env.db(), verdict_key(one)) is None  # nothing recorded: tried at the next run

    env.installed[T1] = web_client(TOKENS[T1], env.slack.base_url)
    env.clock.now += timedelta(minutes=15)
    [outcome] = env.sched.run_verdicts()
    assert (outcome.key, outcome.state) == (verdict_key(one), "sent")
    assert env.posts() == [("CT2PAY", "xoxb-t2"), ("CT1PAY", "xoxb-t1")]
    assert env.sched.run_verdicts() == []


def test_a_workspace_whose_client_cannot_be_had_holds_up_no_other(env):
    env.broken.add(T1)
    db = env.db()
    for ws in (T1, T2):
        ex.start(
            db,
            "payments",
            "merged-without-review",
            "review pairs",
            2,
            "U1",
            NOW.timestamp() - 15 * DAY,
            ws=ws,
        )
    assert {(o.key.workspace, o.state) for o in env.sched.catch_up()} == {(T2, "sent")}
    assert [(o.key.workspace, o.key.kind, o.state) for o in env.sched.run_verdicts()] == [
        (T2, "experiment-verdict", "sent")
    ]
    assert {ch for ch, _ in env.posts()} == {"CT2PAY", "CT2ORG"}
    assert T1 not in env.ledger().values()


def test_single_workspace_mode_keeps_its_keys_and_serves_no_installed_workspace(env):
    """A ledger key written before workspaces is the key single mode looks for: its digest is not sent
    again. A new one's key and metadata are exactly as before, with no workspace in them."""
    assert str(Key("payments", "digest", "2026-11-25")) == "payments/digest/2026-11-25"
    assert str(Key("payments", "digest", "2026-11-25", T1)) == "T0AAA1:payments/digest/2026-11-25"
    db = env.db()
    db["deliveries"].insert(  # as the ledger held it before m013 (the column's default after it)
        {
            "key": "payments/digest/2026-11-25",
            "team": "payments",
            "kind": "digest",
            "state": "sent",
            "ts": "1.1",
        }
    )
    create_team(db, team(name="ops", channel="C2", digest=WEDNESDAY), who="U0")
    with MockSlack(members={"C1": ["U1"], "C2": ["U1"]}) as slack:
        single = Scheduler(
            Store(env.path), web_client("xoxb-single", slack.base_url), clock=env.clock
        )  # token mode: no clients, no workspaces
        outcomes = single.catch_up()
        assert sorted((str(o.key), o.state) for o in outcomes) == [("ops/digest/2026-11-25", "sent")]
        assert single.run_digest("payments").state == "already-sent"
        assert single.run_digest("payments", ws=T1) is None  # not this mode's workspace
        [message] = slack.posted["C2"]
        assert message["metadata"]["event_payload"] == {
            "key": "ops/digest/2026-11-25",
            "team": "ops",
            "kind": "digest",
            "period": "2026-11-25",
        }
        assert [c.auth for c in slack.calls_to("chat.postMessage")] == ["Bearer xoxb-single"]
        assert slack.posted["C1"] == [] and slack.posted["CT1PAY"] == []
        single.plan_all()
        assert {j.id for j in single.aps.get_jobs()} == {
            "digest:payments",
            "nudges:payments",
            "digest:ops",
            "nudges:ops",
            "verdicts",
        }
    assert ledger_row(env.db(), Key("ops", "digest", "2026-11-25"))["workspace"] == SINGLE
    single.shutdown()


def test_the_same_team_name_has_one_key_per_workspace():
    assert sorted(str(Key("payments", "digest", "2026-11-25", ws)) for ws in (SINGLE, T1, T2)) == [
        "T0AAA1:payments/digest/2026-11-25",
        "T0BBB2:payments/digest/2026-11-25",
        "payments/digest/2026-11-25",
    ]
    assert str(Key(ORG, "org-digest", "2026-11-25", T1)) == "T0AAA1:*org*/org-digest/2026-11-25"


def test_a_token_slack_calls_dead_is_told_once_per_token_and_again_after_a_reinstall(env, caplog):
    """T1 uninstalled while vsm serve was down: every call with its token is refused. The first
    refusal, whichever job meets it (a verdict here), tells ``on_dead_token`` (vsm serve: the
    uninstall's path); the next ones with the same token are not told again. T2 is served."""
    for channel in (CHANNELS[T1], ORG_CHANNELS[T1]):
        env.slack.channel_errors[channel] = "token_revoked"
    ex.start(
        env.db(), "payments", "merged-without-review", "pairs", 2, "U1", NOW.timestamp() - 15 * DAY, ws=T1
    )
    [verdict] = env.sched.run_verdicts()
    assert (verdict.key.workspace, verdict.state, verdict.error) == (T1, "failed", "token_revoked")
    assert env.dead == [(T1, "xoxb-t1")]
    outcomes = env.sched.catch_up()
    assert sorted((o.key.workspace, o.key.kind, o.state) for o in outcomes) == [
        (T1, "digest", "failed"),
        (T1, "org-digest", "failed"),
        (T2, "digest", "sent"),
        (T2, "org-digest", "sent"),
    ]
    assert env.dead == [(T1, "xoxb-t1")]  # once for that token
    said = [r.getMessage() for r in caplog.records if "Slack refused" in r.getMessage()]
    assert said == [
        "Slack refused the bot token of workspace T0AAA1 (token_revoked): is the app uninstalled there?"
    ]
    env.sched.plan_workspace(T1)  # installed again; its new token dies too
    env.clock.now += timedelta(minutes=30)
    env.sched.run_digest("payments", ws=T1)
    assert env.dead == [(T1, "xoxb-t1"), (T1, "xoxb-t1")]
    # A failure that is the channel's, not the token's, is no uninstall.
    env.slack.channel_errors[CHANNELS[T2]] = "is_archived"
    env.sched.run_digest("payments", env.clock.now + timedelta(days=7), ws=T2)
    assert [ws for ws, _ in env.dead] == [T1, T1]


def test_single_workspace_mode_a_dead_token_is_only_logged_loudly(env, caplog):
    with MockSlack(members={"C1": ["U1"]}) as slack:
        slack.channel_errors["C1"] = "account_inactive"
        told = []
        single = Scheduler(
            Store(env.path),
            web_client("xoxb-single", slack.base_url),
            clock=env.clock,
            on_dead_token=lambda ws, token: told.append(ws),
        )
        [outcome] = single.catch_up()
        assert (outcome.key.workspace, outcome.state) == (SINGLE, "failed")
    assert told == []  # SLACK_BOT_TOKEN is the operator's: nothing uninstalled, nothing deleted
    [loud] = [r for r in caplog.records if "Slack refuses" in r.getMessage()]
    assert loud.levelno == logging.ERROR
    assert loud.getMessage().startswith(
        "Slack refuses the single workspace's bot token (account_inactive): every digest, nudge and "
        "verdict fails until SLACK_BOT_TOKEN is replaced"
    )
    assert "xoxb-single" not in caplog.text
    assert get_team(env.db(), "payments").channel == "C1"


def test_a_settings_save_after_an_uninstall_plans_nothing_for_that_workspace(env, caplog):
    caplog.set_level(logging.INFO, logger="vsm.scheduler")
    env.sched.aps.start(paused=True)
    env.sched.plan_all()
    env.listed.remove(T1)  # uninstalled: its installation is gone, then its jobs
    env.sched.unplan_workspace(T1)
    saved = get_team(env.db(), "payments", ws=T1)  # a settings save that finishes after it
    env.sched.plan_team(saved, T1)
    env.sched.plan_org(T1)
    env.sched.plan_workspace(T1)
    assert not [j for j in env.jobs() if T1 in j]
    assert f"digest:{T2}:payments" in env.jobs()
    assert "digest and nudges of payments not planned: workspace T0AAA1 is not installed" in caplog.text
    assert "organisation digest not planned: workspace T0AAA1 is not installed" in caplog.text
    env.listed.append(T1)  # installed again: planned as before
    env.sched.plan_team(saved, T1)
    assert f"digest:{T1}:payments" in env.jobs()
