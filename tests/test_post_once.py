"""The digest preview's "Post to channel" posts once per digest cycle, however often it is pressed
(issue 12 §6): double clicks, two members, presses at the same moment, an attempt that died, and
beside the schedule's own digest of the cycle (already sent, being sent, or fired while a press is
posting), with no sleeping retries that could outlive a press's claim.

Driven as Slack drives it: signed `/vsm digest` and `block_actions` requests, the posts counted on
the loopback Slack's `chat.postMessage` log, the answers read from the response_url."""

import json
import re
import threading
import time
from datetime import datetime
from urllib.parse import urlencode

import pytest
from fakes.server import Fault
from fakes.slack import MockSlack
from slackkit import NOW, click, command, signed, slack_app

from bot.app import web_client
from bot.listeners.actions.digest import cycle_day
from bot.schedule.delivery import EVENT_TYPE, Key, ledger_row
from bot.schedule.scheduler import Scheduler, manual_key
from bot.store import Store
from metrics.sample import sample_teams
from metrics.store import open_db
from metrics.timeutil import parse_instant

POST = {"action_id": "post_digest", "block_id": "preview_actions", "type": "button", "value": "payments"}


@pytest.fixture
def env(sample_db, tmp_path):
    db_path = tmp_path / "post.db"
    db_path.write_bytes(sample_db.read_bytes())
    payments = next(t for t in sample_teams() if t.name == "payments")
    with MockSlack(members={payments.channel: ["U1", "U2"]}) as slack:
        yield slack_app(db_path, slack), slack, payments, db_path


def _press(env, user: str = "U1", url: str = "1"):
    app, slack, team, _ = env
    resp = click(app, [POST], channel=team.channel, user=user, response_url=f"{slack.url}/response/{url}")
    assert resp.status == 200


def _answers(slack, url: str) -> list[dict]:
    return [json.loads(r.body) for r in slack.requests_to(f"/response/{url}")]


def _posts(slack, team) -> list:
    return [c for c in slack.calls_to("chat.postMessage") if c.body["channel"] == team.channel]


def _key(team):
    return manual_key(team, cycle_day(team, NOW))


def test_a_second_press_says_when_it_was_posted_and_posts_nothing(env):
    app, slack, team, db_path = env
    _press(env, url="first")
    [posted] = _posts(slack, team)
    assert "value-stream digest" in posted.body["text"]
    assert posted.body["metadata"]["event_payload"]["key"] == str(_key(team))
    [first] = _answers(slack, "first")
    assert first == {"replace_original": True, "text": f"Posted the digest to <#{team.channel}>."}

    _press(env, url="second")
    assert len(_posts(slack, team)) == 1
    [second] = _answers(slack, "second")
    row = ledger_row(open_db(db_path, create=False), _key(team))
    when = datetime.fromtimestamp(parse_instant(row["finished"]), team.tz)
    assert second["replace_original"] is False  # the preview stays; the answer is a new ephemeral line
    assert second["text"] == (
        f"Already posted to <#{team.channel}> at {when:%H:%M %Z on %a %d %b}; this period's digest goes there once."
    )
    assert re.search(r" at \d\d:\d\d (GMT|BST) on \w{3} \d\d \w{3};", second["text"])


def test_two_members_each_pressing_their_own_preview_post_once(env):
    app, slack, team, _ = env
    for user in ("U1", "U2"):
        command(app, "digest", channel=team.channel, user=user, response_url=f"{slack.url}/response/p{user}")
    _press(env, user="U1", url="a")
    _press(env, user="U2", url="b")
    assert len(_posts(slack, team)) == 1
    assert _answers(slack, "b")[0]["text"].startswith(f"Already posted to <#{team.channel}> at ")


class HeldPosts(MockSlack):
    """Slack that holds every ``chat.postMessage`` until ``release`` is set (or a deadline passes): the
    first press is still posting while the others arrive, the moment two posts could both go out."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.release = threading.Event()

    def _api(self, req):
        if req.path == "/chat.postMessage":
            self.release.wait(timeout=25)
        return super()._api(req)


def test_presses_at_the_same_moment_post_once(sample_db, tmp_path):
    db_path = tmp_path / "race.db"
    db_path.write_bytes(sample_db.read_bytes())
    team = next(t for t in sample_teams() if t.name == "payments")
    presses = 8
    with HeldPosts(members={team.channel: ["U1", "U2"]}) as slack:
        env = (slack_app(db_path, slack), slack, team, db_path)
        start = threading.Barrier(presses)
        failures: list[BaseException] = []

        def press(i: int) -> None:
            try:
                start.wait(timeout=30)
                _press(env, user=("U1", "U2")[i % 2], url=f"c{i}")
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                failures.append(exc)

        threads = [threading.Thread(target=press, args=(i,)) for i in range(presses)]
        for t in threads:
            t.start()
        # The first post stays in flight until every other press has been answered (or 20 s pass).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(slack.responses()) < presses - 1:
            threading.Event().wait(0.01)
        slack.release.set()
        for t in threads:
            t.join(timeout=120)
        assert not failures and not any(t.is_alive() for t in threads)
        assert len(_posts(slack, team)) == 1
        texts = sorted(_answers(slack, f"c{i}")[0]["text"] for i in range(presses))
    assert texts.count(f"Posted the digest to <#{team.channel}>.") == 1
    others = [t for t in texts if not t.startswith("Posted")]
    assert len(others) == presses - 1
    assert all(
        t.startswith(f"Already posted to <#{team.channel}> at ")
        or t.startswith(f"The digest is being posted to <#{team.channel}> right now")
        for t in others
    ), others


def test_an_attempt_that_died_after_posting_is_found_not_posted_again(env):
    """The crash state "posted, not recorded": a stale `sending` claim and the message, carrying its key,
    already in the channel. The next press finds it in the channel's history instead of posting."""
    app, slack, team, db_path = env
    key = _key(team)
    db = open_db(db_path, create=False)
    long_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 600))
    meta = {"event_type": EVENT_TYPE, "event_payload": {"key": str(key)}}
    slack.posted[team.channel].append({"ts": f"{time.time() - 590:.6f}", "text": "digest", "metadata": meta})
    db["deliveries"].insert(
        {"key": str(key), "team": key.team, "kind": key.kind, "period": key.period, "channel": team.channel}
        | {"state": "sending", "attempts": 1, "started": long_ago}
    )
    _press(env, url="after-crash")
    assert _posts(slack, team) == []
    assert len(slack.calls_to("conversations.history")) == 1
    assert _answers(slack, "after-crash")[0]["text"] == f"Posted the digest to <#{team.channel}>."
    assert ledger_row(db, key)["state"] == "sent"


def test_a_press_while_another_is_posting_waits_for_it(env):
    """A fresh `sending` claim is another attempt at work: this press posts nothing and says so."""
    app, slack, team, db_path = env
    key = _key(team)
    db = open_db(db_path, create=False)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    db["deliveries"].insert(
        {"key": str(key), "team": key.team, "kind": key.kind, "period": key.period, "channel": team.channel}
        | {"state": "sending", "attempts": 1, "started": now}
    )
    _press(env, url="meanwhile")
    assert _posts(slack, team) == [] and slack.calls_to("conversations.history") == []
    [answer] = _answers(slack, "meanwhile")
    assert answer["text"].startswith(
        f"The digest is being posted to <#{team.channel}> right now (pressed at "
    )
    assert answer["replace_original"] is False


def test_a_refused_post_can_be_pressed_again(env):
    app, slack, team, _ = env
    slack.channel_errors[team.channel] = "is_archived"
    _press(env, url="refused")
    assert _answers(slack, "refused")[0]["text"] == (
        f"Could not post the digest to <#{team.channel}>: is_archived. Try again in a minute."
    )
    del slack.channel_errors[team.channel]
    _press(env, url="again")
    assert _answers(slack, "again")[0]["text"] == f"Posted the digest to <#{team.channel}>."
    posts = _posts(slack, team)
    assert len(posts) == 2  # the refused call, then the one that landed
    assert len(slack.posted[team.channel]) == 1


def test_a_press_after_the_cycles_scheduled_digest_posts_nothing(env):
    """The schedule posted this cycle's digest on Monday: on Wednesday the channel has it already."""
    app, slack, team, db_path = env
    scheduler = Scheduler(Store(db_path), web_client("xoxb-test", slack.base_url), clock=lambda: NOW)
    assert scheduler.run_digest(team.name).state == "sent"  # Mon 23 Nov's, sent late: a fresh database
    _press(env, url="after")
    assert len(_posts(slack, team)) == 1
    [answer] = _answers(slack, "after")
    assert answer["text"].startswith(
        f"This period's digest was posted to <#{team.channel}> by the schedule at "
    )


def test_a_press_before_the_scheduled_digest_takes_its_place_and_the_next_cycle_is_sent(env):
    """Pressed on the digest day before its time: the same days, so the scheduled one is skipped;
    the next cycle's digest arrives on its day."""
    app, slack, team, db_path = env
    monday = datetime(2026, 11, 23, 8, 0, tzinfo=NOW.tzinfo)  # payments: Mondays 09:30 Europe/London
    clock = {"now": monday}
    early = _app_at(db_path, slack, clock)
    click(early, [POST], channel=team.channel, user="U1", response_url=f"{slack.url}/response/early")
    assert len(_posts(slack, team)) == 1
    scheduler = Scheduler(Store(db_path), web_client("xoxb-test", slack.base_url), clock=lambda: clock["now"])
    clock["now"] = monday.replace(hour=9, minute=31)
    assert scheduler.run_digest(team.name).state == "skipped"
    assert len(_posts(slack, team)) == 1
    # A day later, in the same cycle: still posted once.
    clock["now"] = monday.replace(day=24, hour=12)
    click(early, [POST], channel=team.channel, user="U2", response_url=f"{slack.url}/response/tue")
    assert len(_posts(slack, team)) == 1
    assert _answers(slack, "tue")[0]["text"].startswith(f"Already posted to <#{team.channel}> at ")
    clock["now"] = monday.replace(day=30, hour=9, minute=31)  # the next cycle
    assert scheduler.run_digest(team.name).state == "sent"
    assert len(_posts(slack, team)) == 2


def test_through_vsm_serve_http_concurrent_and_repeated_presses_post_once(sample_db, tmp_path):
    """The same through the real `vsm serve --http` process: signed clicks over HTTP, two at once and
    one after, and one post of the manual kind (the scheduler may send the scheduled digest too)."""
    from test_slack_serve import FORM, post, vsm_serve

    (tmp_path / "s.db").write_bytes(sample_db.read_bytes())
    team = next(t for t in sample_teams() if t.name == "payments")
    with (
        MockSlack(members={team.channel: ["U1", "U2"]}) as slack,
        vsm_serve(tmp_path, slack.base_url) as served,
    ):

        def press(user: str, url: str):
            payload = {
                "type": "block_actions",
                "user": {"id": user},
                "channel": {"id": team.channel},
                "response_url": f"{slack.url}/response/{url}",
                "trigger_id": "t",
                "actions": [POST],
            }
            body = urlencode({"payload": json.dumps(payload)})
            return post(served.url, body, signed(body, content_type=FORM))

        def answered(n: int) -> None:
            """Each answer comes after its ack, through the response_url: poll for them."""
            deadline = time.monotonic() + 60
            while len(slack.responses()) < n:
                assert time.monotonic() < deadline, slack.responses()
                threading.Event().wait(0.02)

        together = [threading.Thread(target=press, args=(u, f"s{u}")) for u in ("U1", "U2")]
        for t in together:
            t.start()
        for t in together:
            t.join(timeout=60)
        answered(2)
        assert press("U1", "later").status_code == 200
        answered(3)
        manual = [
            c
            for c in slack.calls_to("chat.postMessage")
            if (c.body.get("metadata") or {}).get("event_payload", {}).get("kind") == "digest-posted"
        ]
        assert len(manual) == 1 and manual[0].body["channel"] == team.channel
        assert _answers(slack, "later")[0]["text"].startswith(f"Already posted to <#{team.channel}> at ")


def _app_at(db_path, slack, clock: dict):
    """The app with "now" read from ``clock["now"]``, for presses on the digest day itself."""
    return slack_app(db_path, slack, clock=lambda: clock["now"])


def _scheduled_key(team, now=NOW) -> Key:
    return Key(team.name, "digest", cycle_day(team, now).isoformat())


def _until(done, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, what
        threading.Event().wait(0.01)


def test_a_press_while_the_schedule_posts_the_cycles_digest_posts_nothing(env):
    """The schedule is sending this cycle's digest (its row `sending`, fresh): a press in that moment
    must not post a second copy beside it."""
    app, slack, team, db_path = env
    key = _scheduled_key(team)
    db = open_db(db_path, create=False)
    db["deliveries"].insert(
        {"key": str(key), "team": key.team, "kind": key.kind, "period": key.period, "channel": team.channel}
        | {"state": "sending", "attempts": 1, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    )
    _press(env, url="during")
    assert _posts(slack, team) == []
    [answer] = _answers(slack, "during")
    assert answer == {
        "replace_original": False,
        "text": f"The schedule is posting this period's digest to <#{team.channel}> right now.",
    }
    assert ledger_row(db, _key(team)) is None


def test_the_schedule_firing_while_an_early_press_is_posting_posts_nothing(sample_db, tmp_path):
    """Pressed at 09:29 on the digest day, the post still on its way when the 09:30 digest fires: the
    press took the scheduled digest's place when it claimed, so the schedule posts no second copy."""
    db_path = tmp_path / "early.db"
    db_path.write_bytes(sample_db.read_bytes())
    team = next(t for t in sample_teams() if t.name == "payments")  # Mondays 09:30 Europe/London
    clock = {"now": datetime(2026, 11, 23, 9, 29, tzinfo=NOW.tzinfo)}  # GMT: London is UTC in November
    db = open_db(db_path, create=False)
    with HeldPosts(members={team.channel: ["U1"]}) as slack:
        app = _app_at(db_path, slack, clock)
        press = threading.Thread(
            target=click,
            args=(app, [POST]),
            kwargs={"channel": team.channel, "user": "U1", "response_url": f"{slack.url}/response/early"},
        )
        press.start()
        manual = manual_key(team, cycle_day(team, clock["now"]))
        _until(lambda: (ledger_row(db, manual) or {}).get("state") == "sending", "the press's claim")
        clock["now"] = clock["now"].replace(minute=30)
        scheduler = Scheduler(
            Store(db_path), web_client("xoxb-test", slack.base_url), clock=lambda: clock["now"]
        )
        fired: dict = {}
        schedule = threading.Thread(target=lambda: fired.update(outcome=scheduler.run_digest(team.name)))
        schedule.start()
        scheduled = _scheduled_key(team, clock["now"])
        # Either the schedule gives way, or (the bug) it reaches Slack: its own row turns `sending`.
        _until(
            lambda: not schedule.is_alive() or ledger_row(db, scheduled)["state"] == "sending",
            "the schedule's run",
        )
        slack.release.set()
        for t in (press, schedule):
            t.join(timeout=60)
        assert not press.is_alive() and not schedule.is_alive()
        assert len(_posts(slack, team)) == 1
        assert fired["outcome"].state == "skipped"
        assert _answers(slack, "early")[0]["text"] == f"Posted the digest to <#{team.channel}>."
        assert ledger_row(db, scheduled)["note"] == f"posted in its place as {manual}"


def test_an_early_press_that_fails_leaves_the_scheduled_digest_to_arrive(env):
    """Pressed before its time and refused by Slack: the digest still arrives on schedule."""
    _, slack, team, db_path = env
    clock = {"now": datetime(2026, 11, 23, 9, 0, tzinfo=NOW.tzinfo)}
    app = _app_at(db_path, slack, clock)
    slack.fail("/chat.postMessage", Fault(500))
    click(app, [POST], channel=team.channel, user="U1", response_url=f"{slack.url}/response/early")
    assert _answers(slack, "early")[0]["text"].startswith(f"Could not post the digest to <#{team.channel}>: ")
    assert slack.posted[team.channel] == []
    clock["now"] = clock["now"].replace(minute=31)
    scheduler = Scheduler(Store(db_path), web_client("xoxb-test", slack.base_url), clock=lambda: clock["now"])
    outcome = scheduler.run_digest(team.name)
    assert outcome.state == "sent" and outcome.key == _scheduled_key(team, clock["now"])
    assert len(slack.posted[team.channel]) == 1


def test_a_rate_limited_press_is_not_retried_behind_its_claim(env):
    """The app's client sleeps through 429s for as long as Slack says, longer than a press's claim
    lives: a press answers at once instead, posts nothing, and a later press posts."""
    _, slack, team, _ = env
    slack.fail("/chat.postMessage", Fault(429, {"Retry-After": "0"}))
    _press(env, url="limited")
    assert len(slack.requests_to("/chat.postMessage")) == 1  # no retry
    assert slack.posted[team.channel] == []
    assert _answers(slack, "limited")[0]["text"] == (
        f"Could not post the digest to <#{team.channel}>: HTTP 429. Try again in a minute."
    )
    _press(env, url="later")
    assert _answers(slack, "later")[0]["text"] == f"Posted the digest to <#{team.channel}>."
    assert len(slack.posted[team.channel]) == 1
