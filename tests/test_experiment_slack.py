"""Improvement experiments in Slack (issue 13 §4), driven as Slack drives them: signed `/vsm
experiment`, `view_submission` and `block_actions` requests through the app, the loopback Slack's
Web API log read for what was opened and posted, the answers read from the response URL.

The team is `pay` in C1 (UTC), with two metrics a verdict can judge per observation (PR cycle
time, merged without review), one compared week by week (deployment frequency) and two it cannot
judge (WIP: no better direction; sprint completion: no single observations). "Now" is slackkit's
NOW, Wed 25 Nov 2026 15:00 UTC; the scheduler's clock is moved by hand.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from builders import team
from fakes.slack import MockSlack
from slackkit import (
    NOW,
    ack_json,
    assert_valid_message,
    assert_valid_view,
    click,
    command,
    command_reply,
    initial_state,
    interaction,
    slack_app,
)
from test_experiments import merged_pr
from test_slack_authz import Clock

from bot.app import web_client
from bot.authz import MemberCache
from bot.schedule.delivery import ChannelPacer, ledger_row
from bot.schedule.scheduler import Scheduler
from bot.schedule.verdicts import verdict_key
from bot.store import Store
from metrics import experiments as ex
from metrics.store import open_db
from metrics.teams import create_team, set_org, settings_log

METRICS = ["pr-cycle-time", "merged-without-review", "deployment-frequency", "wip", "sprint-completion"]
DAY = 86400.0


class Env:
    def __init__(self, app, slack, db_path, clock) -> None:
        self.app, self.slack, self.db_path, self.clock = app, slack, db_path, clock

    def db(self):
        return open_db(self.db_path, create=False)

    def posts(self, channel: str = "C1") -> list[dict]:
        return [c.body for c in self.slack.calls_to("chat.postMessage") if c.body.get("channel") == channel]

    def answer(self, url: str) -> dict:
        [reply] = [json.loads(r.body) for r in self.slack.requests_to(f"/response/{url}")]
        return reply


@pytest.fixture
def env(tmp_path):
    db_path = tmp_path / "exp.db"
    db = open_db(db_path)
    create_team(db, team(metrics=METRICS), who="U0")
    create_team(db, team(name="ops", channel="C2", metrics=["wip", "sprint-completion"]), who="U0")
    create_team(db, team(name="empty", channel="C3", metrics=[]), who="U0")
    set_org(db, "north_star", ["pr-cycle-time"], who="U0")
    db.conn.close()
    clock = Clock()
    members = {"C1": ["U1", "U2"], "C2": ["U1"], "C3": ["U1"]}
    with MockSlack(members=members) as slack:
        yield Env(slack_app(db_path, slack, members=MemberCache(clock=clock)), slack, db_path, clock)


# -- opening the form --------------------------------------------------------------------------------
def _open(env: Env, user: str = "U1", channel: str = "C1") -> dict:
    command(env.app, "experiment", channel=channel, user=user, response_url=f"{env.slack.url}/response/open")
    [opened] = env.slack.calls_to("views.open")
    return opened.body["view"]


def test_a_member_opens_the_form_with_the_metrics_a_verdict_can_judge(env):
    view = _open(env)
    assert_valid_view(view)
    assert view["callback_id"] == "experiment"
    assert json.loads(view["private_metadata"]) == {"team": "pay", "channel": "C1", "by": "U1"}
    blocks = {b["block_id"]: b for b in view["blocks"]}
    metric = blocks["metric"]
    assert [o["value"] for o in metric["element"]["options"]] == [
        "pr-cycle-time",
        "merged-without-review",
        "deployment-frequency",
    ]
    hint = metric["hint"]["text"]
    assert "Work in progress has no better direction" in hint
    assert "Sprint completion (say/do) has no single observations to compare" in hint
    assert blocks["change"]["element"]["max_length"] == 300
    weeks = blocks["weeks"]["element"]
    assert [o["value"] for o in weeks["options"]] == [str(w) for w in range(2, 13)]
    assert blocks["weeks"]["hint"]["text"] == (
        "2 to 12 weeks. Deployment frequency is compared week by week and needs at least 10 weeks "
        "for a verdict."
    )
    assert env.slack.responses() == []  # a form, and nothing said besides


def test_someone_outside_the_channel_gets_a_refusal_and_no_form(env):
    command(env.app, "experiment", channel="C1", user="UOUT", response_url=f"{env.slack.url}/response/out")
    assert env.slack.calls_to("views.open") == []
    assert env.answer("out")["text"] == "Only members of <#C1> can start an experiment for its team."


@pytest.mark.parametrize(
    ("channel", "said"),
    [
        (
            "C2",
            "None of ops's metrics can be judged by an experiment (Work in progress has no better direction, so no "
            "change in it is an improvement; Sprint completion (say/do) has no single observations to "
            "compare before and during an experiment).",
        ),
        ("C3", "empty has no metrics chosen yet."),
    ],
)
def test_a_team_with_no_metric_a_verdict_can_judge_is_told_why_and_gets_no_form(env, channel, said):
    command(env.app, "experiment", channel=channel, user="U1", response_url=f"{env.slack.url}/response/none")
    assert env.slack.calls_to("views.open") == []
    answer = env.answer("none")["text"]
    assert answer.startswith(said) and "`/vsm settings`" in answer


# -- submitting it ------------------------------------------------------------------------------------
def _state(view: dict, change="pair on every review", metric="pr-cycle-time", weeks="4") -> dict:
    state = initial_state(view)
    values = state["values"]
    values["change"]["v"]["value"] = change
    values["metric"]["v"]["selected_option"] = {
        "text": {"type": "plain_text", "text": metric},
        "value": metric,
    }
    values["weeks"]["v"]["selected_option"] = {"text": {"type": "plain_text", "text": weeks}, "value": weeks}
    return state


def _submit(env: Env, view: dict, state: dict, user: str = "U1") -> dict:
    payload = {"type": "view_submission", "user": {"id": user}, "view": {**view, "id": "V1", "state": state}}
    return ack_json(interaction(env.app, payload))


def _nothing_started(env: Env, log_before: list) -> None:
    db = env.db()
    assert ex.experiments(db, "pay") == []
    assert settings_log(db, "pay") == log_before
    assert env.posts() == []


def test_a_good_submission_starts_the_experiment_and_announces_it_with_stop_early(env):
    view = _open(env)
    assert _submit(env, view, _state(view, change="pair on <!channel> & every\nreview")) == {}
    [exp] = ex.experiments(env.db(), "pay")
    assert (exp.metric, exp.weeks, exp.state, exp.started) == ("pr-cycle-time", 4, "running", NOW.timestamp())
    assert exp.change == "pair on <!channel> & every review"  # one line of plain text
    last = settings_log(env.db(), "pay")[-1]
    assert last["who"] == "U1" and last["what"].startswith(f"started experiment #{exp.id} on PR cycle time")

    [post] = env.posts()
    assert_valid_message(post)
    section = post["blocks"][0]["text"]["text"]
    assert section.startswith("🧪 <@U1> started an experiment for *pay*\n")
    assert "*Trying:* pair on &lt;!channel&gt; &amp; every review" in section  # escaped: pings nobody
    assert "*To move:* PR cycle time" in section
    assert "*For:* 4 weeks, until Wed 23 Dec 2026 15:00 UTC" in section
    compared = post["blocks"][1]["elements"][0]["text"]
    assert (
        "compared with the 4 weeks before it (Wed 28 Oct 2026 15:00 UTC to Wed 25 Nov 2026 15:00 UTC)"
        in compared
    )
    [button] = post["blocks"][2]["elements"]
    assert (button["action_id"], button["value"]) == ("stop_experiment", str(exp.id))
    assert button["confirm"]["confirm"]["text"] == "Stop early" and button["confirm"]["style"] == "danger"
    assert "<!channel>" not in post["text"] and "&lt;!channel&gt;" in post["text"]


@pytest.mark.parametrize(
    ("fields", "field", "said"),
    [
        ({"change": "x" * 301}, "change", "what the team will try is 301 characters long: at most 300"),
        ({"change": "   "}, "change", "say what the team will try (1 to 300 characters)"),
        ({"change": "try \u202eevil"}, "change", "must be plain text"),
        ({"weeks": "1"}, "weeks", "from 2 to 12"),
        ({"weeks": "13"}, "weeks", "from 2 to 12"),
        ({"weeks": "4.5"}, "weeks", "from 2 to 12"),
        ({"weeks": ""}, "weeks", "from 2 to 12"),
        (
            {"metric": "deployment-frequency", "weeks": "8"},
            "weeks",
            "Deployment frequency is compared week by week: an experiment on it needs at least 10 weeks",
        ),
        ({"metric": "wip"}, "metric", "Work in progress has no better direction"),
        ({"metric": "cycle-time"}, "metric", "choose one of pay's metrics"),
        ({"metric": "no-such-metric"}, "metric", "choose one of pay's metrics"),
        ({"metric": ""}, "metric", "choose one of pay's metrics"),
    ],
)
def test_a_bad_field_is_answered_on_that_field_and_nothing_is_stored(env, fields, field, said):
    view = _open(env)
    log_before = settings_log(env.db(), "pay")
    body = _submit(env, view, _state(view, **fields))
    assert body["response_action"] == "errors" and list(body["errors"]) == [field]
    assert said in body["errors"][field]
    _nothing_started(env, log_before)


def test_a_second_experiment_on_the_same_metric_is_refused_on_the_metric(env):
    view = _open(env)
    assert _submit(env, view, _state(view)) == {}
    body = _submit(env, view, _state(view, change="something else"))
    [first] = ex.experiments(env.db(), "pay")
    assert body == {
        "response_action": "errors",
        "errors": {
            "metric": f"pay already runs experiment #{first.id} on PR cycle time: stop it first, or choose "
            "another metric"
        },
    }
    assert len(env.posts()) == 1
    # Another metric may run beside it.
    assert _submit(env, view, _state(view, metric="merged-without-review")) == {}
    assert len(ex.running(env.db(), "pay")) == 2


def test_an_opener_who_left_the_channel_cannot_submit_the_form_they_hold(env):
    view = _open(env)
    log_before = settings_log(env.db(), "pay")
    env.slack.members["C1"] = ["U2"]
    env.clock.pass_ttl()
    body = _submit(env, view, _state(view))
    assert body["response_action"] == "errors" and "not in it now" in body["errors"]["change"]
    _nothing_started(env, log_before)
    # Another member submitting the form U1 opened: refused too (only its opener may).
    body = _submit(env, view, _state(view), user="U2")
    assert body["response_action"] == "errors" and "who opened this form" in body["errors"]["change"]
    _nothing_started(env, log_before)


def test_a_form_for_a_team_that_is_gone_or_moved_is_refused(env):
    view = _open(env)
    log_before = settings_log(env.db(), "pay")
    forged = {**view, "private_metadata": json.dumps({"team": "ghost", "channel": "C1", "by": "U1"})}
    body = _submit(env, forged, _state(view))
    assert body["response_action"] == "errors" and "team changed" in body["errors"]["change"]
    moved = {**view, "private_metadata": json.dumps({"team": "ops", "channel": "C1", "by": "U1"})}
    assert _submit(env, moved, _state(view))["response_action"] == "errors"
    _nothing_started(env, log_before)
    assert ex.experiments(env.db(), "ops") == []


# -- stopping early ------------------------------------------------------------------------------------
STARTED = NOW.timestamp() - 28 * DAY  # Wed 28 Oct 15:00: during [28 Oct, 25 Nov), before [30 Sep, 28 Oct)


def _with_a_clear_improvement(env: Env, weeks: int = 6, started: float = STARTED) -> ex.Experiment:
    """Twelve PRs of 48..59 h in the four weeks before ``started``, twelve of 10..21 h after it."""
    db = env.db()
    for i in range(12):
        merged_pr(db, 100 + i, _utc(started - 27 * DAY + 2 * i * DAY), 48 + i)
        merged_pr(db, 200 + i, _utc(started + DAY + 2 * i * DAY), 10 + i)
    return ex.start(db, "pay", "pr-cycle-time", "pair on every review", weeks, "U1", started)


def _utc(at: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M")


def _stop(env: Env, exp_id: object, user: str = "U1", url: str = "stop"):
    action = {
        "action_id": "stop_experiment",
        "block_id": "experiment_actions",
        "type": "button",
        "value": exp_id,
    }
    return click(env.app, [action], channel="C1", user=user, response_url=f"{env.slack.url}/response/{url}")


def test_stop_early_posts_the_verdict_on_the_data_so_far_once(env):
    exp = _with_a_clear_improvement(env)
    assert _stop(env, str(exp.id)).status == 200
    [post] = env.posts()
    assert_valid_message(post)
    blocks = {b.get("block_id"): b for b in post["blocks"]}
    assert post["blocks"][0]["text"]["text"] == "🧪 Experiment verdict: improved"
    verdict = blocks["verdict"]["text"]["text"]
    assert verdict.startswith("✅ *Improved* (stopped early): PR cycle time moved the better way")
    assert "stopped early at Wed 25 Nov 2026 15:00 UTC" in verdict
    windows = blocks["windows"]["text"]["text"]
    assert (
        "*During the experiment* (Wed 28 Oct 2026 15:00 UTC to Wed 25 Nov 2026 15:00 UTC): p50 15.5 h"
        in windows
    )
    assert (
        "*The same length of time before* (Wed 30 Sep 2026 15:00 UTC to Wed 28 Oct 2026 15:00 UTC): p50 2.2 d"
        in windows
    )
    assert windows.count("(12 PRs)") == 2
    assert blocks["statistic"]["elements"][0]["text"].startswith(
        "Mann–Whitney U test, two-sided, α = 0.05: p &lt; 0.001"  # mrkdwn: &lt; reads <
    )
    north = blocks["north_star"]["text"]["text"]
    assert north.startswith("*pay's North Star figures over the same windows*\n• PR cycle time: p50 15.5 h")
    assert blocks["north_star_note"]["elements"][0]["text"] == (
        "The North Star over the same two windows, for context: not the experiment's effect."
    )
    assert post["metadata"]["event_payload"]["key"] == f"pay/experiment-verdict/{exp.id}"

    db = env.db()
    done = ex.get(db, exp.id)
    assert (done.state, done.verdict) == ("stopped", "improved")
    assert ledger_row(db, verdict_key(done))["state"] == "sent"
    last = settings_log(db, "pay")[-1]
    assert (last["who"], last["what"]) == (
        "U1",
        f"stopped experiment #{exp.id} on PR cycle time (pair on every review) early: improved",
    )
    assert env.answer("stop") == {
        "replace_original": False,
        "text": f"Stopped experiment #{exp.id} on PR cycle time early: the verdict (improved) is in <#C1>.",
    }

    # A second click, by anyone: a short answer, nothing posted.
    assert _stop(env, str(exp.id), user="U2", url="again").status == 200
    assert len(env.posts()) == 1
    assert env.answer("again")["text"] == f"Experiment #{exp.id} is over already (improved)."


def test_someone_outside_the_channel_cannot_stop_it(env):
    exp = _with_a_clear_improvement(env)
    log_before = settings_log(env.db(), "pay")
    assert _stop(env, str(exp.id), user="UOUT", url="out").status == 200
    assert env.answer("out")["text"] == "Only members of <#C1> can stop its team's experiments."
    assert ex.get(env.db(), exp.id).running and env.posts() == []
    assert settings_log(env.db(), "pay") == log_before


@pytest.mark.parametrize("value", ["999", "abc", "", "1; drop table experiments", "-1", "9" * 40])
def test_a_forged_stop_changes_nothing(env, value):
    exp = _with_a_clear_improvement(env)
    assert _stop(env, value, url="forged").status == 200
    assert env.answer("forged")["text"] == "That experiment is not known here."
    assert ex.get(env.db(), exp.id).running and env.posts() == []


# -- the verdict job ------------------------------------------------------------------------------------
class Moving:
    """The scheduler's clock, set by the test."""

    def __init__(self, at) -> None:
        self.at = at

    def __call__(self):
        return self.at


def _scheduler(env: Env, clock: Moving) -> Scheduler:
    client = web_client("xoxb-test", env.slack.base_url)
    return Scheduler(Store(env.db_path), client, clock=clock, pacer=ChannelPacer(interval=0))


def test_the_job_posts_a_verdict_once_when_the_experiment_ends(env):
    # Four weeks from 28 Oct 14:00: it ends on 25 Nov at 14:00, an hour before NOW.
    exp = _with_a_clear_improvement(env, weeks=4, started=STARTED - 3600)
    clock = Moving(NOW - timedelta(hours=2))
    sched = _scheduler(env, clock)
    assert sched.run_verdicts() == [] and env.posts() == []
    assert ex.get(env.db(), exp.id).running

    clock.at = NOW
    [outcome] = sched.run_verdicts()
    assert (outcome.state, str(outcome.key)) == ("sent", f"pay/experiment-verdict/{exp.id}")
    [post] = env.posts()
    assert_valid_message(post)
    assert post["blocks"][0]["text"]["text"] == "🧪 Experiment verdict: improved"
    assert "stopped early" not in json.dumps(post)
    done = ex.get(env.db(), exp.id)
    assert (done.state, done.verdict, done.measured_until) == ("concluded", "improved", exp.ends)
    assert settings_log(env.db(), "pay")[-1]["who"] == "vsm-bot"

    assert sched.run_verdicts() == []  # run again: nothing more
    clock.at = NOW + timedelta(minutes=15)
    assert sched.run_verdicts() == []
    assert len(env.posts()) == 1


def test_a_verdict_that_could_not_be_posted_is_posted_at_the_next_run_and_once(env):
    exp = _with_a_clear_improvement(env, weeks=4, started=STARTED - 3600)
    sched = _scheduler(env, Moving(NOW))
    env.slack.channel_errors["C1"] = "is_archived"
    [failed] = sched.run_verdicts()
    assert (failed.state, failed.error) == ("failed", "is_archived")
    assert env.slack.posted["C1"] == []
    assert ex.get(env.db(), exp.id).state == "concluded"  # judged once, whatever the post did
    assert ledger_row(env.db(), verdict_key(exp))["state"] == "failed"

    del env.slack.channel_errors["C1"]
    [sent] = sched.run_verdicts()
    assert sent.state == "sent"
    assert len(env.slack.calls_to("conversations.history")) == 1  # a failed attempt may have landed
    assert len(env.slack.posted["C1"]) == 1
    assert sched.run_verdicts() == []
    assert len(env.slack.posted["C1"]) == 1


def test_a_verdict_is_never_posted_days_late(env):
    """Past ``GRACE`` (2 days) a verdict is no longer tried: a failed one stays failed, with Slack's
    error, and one never attempted (a stop whose process died) is recorded skipped."""
    exp = _with_a_clear_improvement(env, weeks=4, started=STARTED - 3600)
    clock = Moving(NOW)
    sched = _scheduler(env, clock)
    env.slack.channel_errors["C1"] = "channel_not_found"
    assert [o.state for o in sched.run_verdicts()] == ["failed"]
    del env.slack.channel_errors["C1"]
    never = ex.start(
        env.db(), "pay", "merged-without-review", "review pairs", 2, "U1", NOW.timestamp() - 15 * DAY
    )
    ex.conclude(env.db(), never, NOW)  # concluded, and nothing attempted
    clock.at = NOW + timedelta(days=3)
    assert sched.run_verdicts() == []
    assert env.slack.posted["C1"] == []
    failed = ledger_row(env.db(), verdict_key(exp))
    assert (failed["state"], failed["error"]) == ("failed", "channel_not_found")
    skipped = ledger_row(env.db(), verdict_key(never))
    assert skipped["state"] == "skipped" and skipped["note"] == "not posted within 2 days of its conclusion"


def test_a_team_without_a_channel_gets_its_verdict_concluded_and_nothing_posted(env):
    db = env.db()
    create_team(db, team(name="solo", channel="", metrics=["pr-cycle-time"]), who="U0")
    exp = ex.start(db, "solo", "pr-cycle-time", "smaller PRs", 2, "U0", NOW.timestamp() - 15 * DAY)
    [outcome] = _scheduler(env, Moving(NOW)).run_verdicts()
    assert outcome.state == "skipped"
    done = ex.get(env.db(), exp.id)
    assert (done.state, done.verdict) == ("concluded", "not enough data for a verdict")
    assert env.slack.calls_to("chat.postMessage") == []
    assert _scheduler(env, Moving(NOW)).run_verdicts() == []  # recorded: not looked at again


def test_a_stop_and_the_job_never_both_post(env):
    # Ended an hour ago, not yet concluded: a click concludes it as run to its end, and posts; the
    # job then finds the verdict in the ledger and posts nothing.
    exp = _with_a_clear_improvement(env, weeks=4, started=STARTED - 3600)
    _stop(env, str(exp.id))
    assert ex.get(env.db(), exp.id).state == "concluded"
    assert env.answer("stop")["text"].startswith(
        f"The experiment #{exp.id} on PR cycle time had run its course"
    )
    assert _scheduler(env, Moving(NOW)).run_verdicts() == []
    assert len(env.posts()) == 1

    # The other way round: the job first, then a click.
    other = ex.start(
        env.db(), "pay", "merged-without-review", "review pairs", 2, "U1", NOW.timestamp() - 15 * DAY
    )
    [outcome] = _scheduler(env, Moving(NOW)).run_verdicts()
    assert outcome.state == "sent"
    _stop(env, str(other.id), url="late")
    assert (
        env.answer("late")["text"]
        == f"Experiment #{other.id} is over already (not enough data for a verdict)."
    )
    assert len(env.posts()) == 2


# -- the digest -------------------------------------------------------------------------------------------
def test_the_digest_shows_the_running_experiment_with_stop_early_then_its_verdict(env):
    exp = _with_a_clear_improvement(env)
    reply = command_reply(env.app, env.slack, "digest", channel="C1")
    blocks = {b.get("block_id"): b for b in reply["blocks"]}
    running = blocks[f"exp:{exp.id}"]
    text = running["text"]["text"]
    assert text.startswith("*Trying:* pair on every review on PR cycle time, week 5 of 6: so far p50 15.5 h")
    assert "(12 PRs) vs p50 2.2 d" in text and text.endswith(
        "(12 PRs) before (nothing is tested until it ends)"
    )
    assert (running["accessory"]["action_id"], running["accessory"]["value"]) == (
        "stop_experiment",
        str(exp.id),
    )
    assert "concluded" not in blocks

    # The button in the digest stops it, like the announcement's.
    assert _stop(env, running["accessory"]["value"]).status == 200
    reply = command_reply(env.app, env.slack, "digest", channel="C1")
    blocks = {b.get("block_id"): b for b in reply["blocks"]}
    assert f"exp:{exp.id}" not in blocks
    assert blocks["concluded"]["text"]["text"] == (
        "*Concluded*\n• PR cycle time: *improved* (stopped early) · tried: pair on every review"
    )


def test_the_terminal_digest_shows_the_experiment(env):
    from bot.render import digest as digest_view
    from metrics.digest import build_digest
    from metrics.teams import get_team

    exp = _with_a_clear_improvement(env)
    db = env.db()
    d = build_digest(db, get_team(db, "pay"), NOW)
    assert [p.experiment.id for p in d.experiments] == [exp.id]
    out = digest_view.text(d, NOW)
    assert (
        "Experiments\n  Trying: pair on every review on PR cycle time, week 5 of 6: so far p50 15.5 h" in out
    )
    trying = next(line for line in out.splitlines() if line.startswith("  Trying: "))
    assert trying.endswith("before (nothing is tested until it ends)")  # a line of its own


def test_a_verdict_without_figures_says_why_and_stays_a_valid_message():
    """An experiment whose metric left the catalogue is concluded with no figures: its verdict has
    no windows to show, only why (``experiments._finish``)."""
    from bot.render.experiment import verdict_message

    gone = ex.Experiment(
        7, "pay", "retired-metric", "try <b>", 4, "UTC", NOW.timestamp() - 28 * DAY, NOW.timestamp(),
        state="concluded", verdict=ex.NOT_ENOUGH,
        detail="not enough data for a verdict: the team or its metric no longer exists",
    )  # fmt: skip
    message = verdict_message(gone, team())
    assert_valid_message(message)
    ids = [b.get("block_id") for b in message["blocks"]]
    assert "windows" not in ids and "north_star" not in ids
    assert message["blocks"][1]["text"]["text"].startswith("❔ *Not enough data for a verdict*: too few")
    assert "try &lt;b&gt;" in message["blocks"][1]["text"]["text"]


def test_the_job_posts_nothing_while_a_stop_is_posting_the_same_verdict(env):
    """A Stop early still posting (its claim on the verdict key is fresh) when the job runs: the job
    claims the key too (``exclusive``), so it posts nothing and leaves the claim alone; without the
    claim it would take the key over and post a second verdict."""
    import time

    exp = _with_a_clear_improvement(env, weeks=4, started=STARTED - 3600)
    db = env.db()
    ex.conclude(db, exp, NOW)
    key = verdict_key(exp)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    db["deliveries"].insert(
        {"key": str(key), "team": key.team, "kind": key.kind, "period": key.period, "channel": "C1"}
        | {"state": "sending", "attempts": 1, "started": started}
    )
    [outcome] = _scheduler(env, Moving(NOW)).run_verdicts()
    assert outcome.state == "in-flight"
    assert env.posts() == [] and ledger_row(env.db(), key)["started"] == started


def test_the_job_waits_for_a_lagging_source_then_posts_not_enough_data_with_the_reason(env):
    from test_experiments_current import sync_row

    # Ends 25 Nov 14:00; GitHub last synced 18 Nov 14:00 and failed since.
    exp = _with_a_clear_improvement(env, weeks=4, started=STARTED - 3600)
    db = env.db()
    sync_row(db, "github", "pulls", exp.ends - 7 * DAY, "2026-11-20T00:00:00Z: HTTP 401")
    db.conn.commit()
    clock = Moving(NOW)
    sched = _scheduler(env, clock)
    assert sched.run_verdicts() == [] and env.posts() == []  # ended, data behind: waits
    clock.at = NOW + timedelta(days=1)
    assert sched.run_verdicts() == [] and ex.get(env.db(), exp.id).running

    clock.at = NOW + ex.SYNC_WAIT  # two days after the end (and an hour): concluded, with why
    [outcome] = sched.run_verdicts()
    assert outcome.state == "sent"
    [post] = env.posts()
    assert_valid_message(post)
    blocks = {b.get("block_id"): b for b in post["blocks"]}
    assert post["blocks"][0]["text"]["text"] == "🧪 Experiment verdict: not enough data for a verdict"
    assert blocks["verdict"]["text"]["text"].startswith(
        "❔ *Not enough data for a verdict*: the data PR cycle time is counted from did not reach the end "
        "of the experiment, and a verdict on part of it would be a guess."
    )
    assert blocks["statistic"]["elements"][0]["text"] == (
        "not enough data for a verdict: GitHub has not synced since 18 Nov: the last 7 days cannot be judged"
    )
    assert "windows" not in blocks and "north_star" not in blocks  # no figures from a partial window
    assert "improved" not in json.dumps(post)


def test_a_stop_while_a_source_lags_says_where_the_window_judged_ends(env):
    from test_experiments_current import sync_row

    exp = _with_a_clear_improvement(env)
    db = env.db()
    sync_row(db, "github", "pulls", NOW.timestamp() - 2 * DAY, "2026-11-24T00:00:00Z: HTTP 401")
    db.conn.commit()
    assert _stop(env, str(exp.id)).status == 200
    [post] = env.posts()
    assert_valid_message(post)
    verdict = {b.get("block_id"): b for b in post["blocks"]}["verdict"]["text"]["text"]
    assert "stopped early at Wed 25 Nov 2026 15:00 UTC" in verdict
    assert verdict.endswith(
        "\n_Judged on the data up to Mon 23 Nov 2026 15:00 UTC, the last complete sync (GitHub has not "
        "synced since 23 Nov: the last 2 days cannot be judged)_"
    )
    assert ex.get(env.db(), exp.id).measured_until == NOW.timestamp() - 2 * DAY


def test_an_ended_experiment_waiting_for_its_data_has_no_stop_and_an_old_button_waits_too(env):
    from test_experiments_current import sync_row

    exp = _with_a_clear_improvement(env, weeks=4, started=STARTED - 3600)  # ended an hour ago
    db = env.db()
    sync_row(db, "github", "pulls", exp.ends - 7 * DAY, "2026-11-20T00:00:00Z: HTTP 401")
    db.conn.commit()
    reply = command_reply(env.app, env.slack, "digest", channel="C1")
    line = {b.get("block_id"): b for b in reply["blocks"]}[f"exp:{exp.id}"]
    assert line["text"]["text"] == (
        "*Ended:* pair on every review on PR cycle time, 4 weeks to Wed 25 Nov 2026 14:00 UTC. Its verdict "
        "waits for the data (GitHub has not synced since 18 Nov: the last 7 days cannot be judged)."
    )
    assert "so far" not in line["text"]["text"] and "accessory" not in line  # nothing to stop

    # The announcement's button outlives the end: pressed now, it neither stops nor judges part of
    # the run. The presser is told what the verdict waits for; nothing is posted or changed.
    assert _stop(env, str(exp.id)).status == 200
    assert env.answer("stop")["text"] == (
        f"Experiment #{exp.id} on PR cycle time ended on 25 Nov, so it is not stopped early: its verdict on "
        "the whole run waits for the data (GitHub has not synced since 18 Nov: the last 7 days cannot be "
        "judged) and is posted to <#C1> when it arrives, at the latest on 27 Nov."
    )
    assert env.posts() == [] and ex.get(env.db(), exp.id).running

    # The data in, a press gives the verdict on the whole run, as the scheduled run would.
    sync_row(db, "github", "pulls", NOW.timestamp() - 600)
    db.conn.commit()
    assert _stop(env, str(exp.id), url="late").status == 200
    [post] = env.posts()
    assert "stopped early" not in json.dumps(post) and "Judged on the data up to" not in json.dumps(post)
    done = ex.get(env.db(), exp.id)
    assert (done.state, done.measured_until) == ("concluded", exp.ends)


def test_a_name_ending_in_s_takes_an_apostrophe_only():
    from bot.render.experiment import possessive, verdict_words

    assert (possessive("payments"), possessive("pay")) == ("payments'", "pay's")
    done = ex.Experiment(1, "payments", "pr-cycle-time", "x", 4, "UTC", 0.0, 1.0, state="concluded")
    assert verdict_words(done, "payments")["north_star_label"].startswith("payments' North Star")


def test_a_stop_seconds_after_the_start_says_it_was_too_soon_with_no_figures(env):
    exp = _with_a_clear_improvement(env, started=NOW.timestamp() - 60)
    assert _stop(env, str(exp.id)).status == 200
    [post] = env.posts()
    assert_valid_message(post)
    blocks = {b.get("block_id"): b for b in post["blocks"]}
    assert (
        "it was stopped within a day of its start, too soon to compare PR cycle time"
        in (blocks["verdict"]["text"]["text"])
    )
    assert "windows" not in blocks and "hours before" not in json.dumps(post)
