"""The organisation digest in Slack (issue 13 §2): `/vsm digest` in the org channel previews it, and
its "Post to channel" posts it to the org channel once per org digest cycle, only for a member of that
channel at the moment of the press, never beside the cycle's scheduled one.

Driven as Slack drives it: signed commands and `block_actions` dispatched through the app (the clock
pinned), then the same bytes over HTTP to a real `vsm serve --http`; the Block Kit read from the
loopback Slack's `chat.postMessage` log and response URLs."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from builders import configure_org
from fakes.slack import MockSlack
from slackkit import (
    NOW,
    ack_json,
    assert_valid_message,
    click,
    command,
    command_body,
    command_reply,
    signed,
    slack_app,
    wait_for,
)

from bot import ids
from bot.app import web_client
from bot.schedule.delivery import ledger_row
from bot.schedule.scheduler import Scheduler, org_cycle_day, org_manual_key
from bot.store import Store
from metrics.sample import sample_teams
from metrics.store import open_db
from metrics.teams import DAYS, get_org

ORG_CHANNEL = "C0ORGDIGEST"
POST = {"action_id": ids.POST_ORG_DIGEST, "block_id": "org_preview_actions", "type": "button", "value": "org"}
POSTED = f"Posted the organisation digest to <#{ORG_CHANNEL}>."


@pytest.fixture
def env(sample_db, tmp_path):
    db_path = tmp_path / "org.db"
    db_path.write_bytes(sample_db.read_bytes())
    configure_org(
        db_path,
        channel=ORG_CHANNEL,
        timezone="Europe/London",
        digest={"day": "mon", "time": "08:00", "period_days": 28},
    )
    with MockSlack(members={ORG_CHANNEL: ["U1", "U2"]}) as slack:
        yield slack_app(db_path, slack), slack, db_path


def _press(app, slack, url: str, user: str = "U1", channel: str = ORG_CHANNEL) -> dict:
    resp = click(app, [POST], channel=channel, user=user, response_url=f"{slack.url}/response/{url}")
    assert resp.status == 200
    [answer] = [json.loads(r.body) for r in slack.requests_to(f"/response/{url}")]
    return answer


def _posts(slack) -> list:
    return [c for c in slack.calls_to("chat.postMessage") if c.body["channel"] == ORG_CHANNEL]


def test_vsm_digest_in_the_org_channel_previews_the_org_digest(env):
    app, slack, _ = env
    reply = command_reply(app, slack, "digest", channel=ORG_CHANNEL)
    assert reply["response_type"] == "ephemeral"
    assert reply["blocks"][0]["text"]["text"] == "🧭 Organisation · value-stream digest"
    ids_ = [b.get("block_id") for b in reply["blocks"]]
    assert {"north_star", "ns:lead-time-for-changes", "ns:deployment-frequency", "moved"} <= set(ids_)
    teams = next(b for b in reply["blocks"] if b.get("block_id") == "ns:lead-time-for-changes:teams:1")
    assert [line.split(":")[0] for line in teams["text"]["text"].split("\n")] == [
        "• mobile",
        "• payments",
        "• platform",
    ]
    assert reply["blocks"][-1]["elements"][0]["action_id"] == ids.POST_ORG_DIGEST
    assert _posts(slack) == []  # a preview posts nothing


@pytest.mark.parametrize("text", ["settings", "experiment", "cycle-time 30d", "forecast 10"])
def test_a_teams_command_in_the_org_channel_says_where_it_works_and_offers_no_set_up(env, text):
    """No team may be set up in the org channel (create_team refuses it), so offering "Set up a team
    here" there would lead to a refusal at submit: the answer says where the command works instead."""
    app, slack, db_path = env
    reply = ack_json(command(app, text, channel=ORG_CHANNEL))
    assert reply["response_type"] == "ephemeral" and "blocks" not in reply
    assert reply["text"].startswith("This is the organisation's channel: a team's figures, settings")
    assert "`/vsm digest` previews the organisation's digest" in reply["text"]
    assert slack.calls_to("views.open") == []
    db = open_db(db_path, create=False)
    assert db.execute("select count(*) from teams where channel = ?", [ORG_CHANNEL]).fetchone()[0] == 0


def test_where_the_org_channel_is_a_teams_channel_the_teams_digest_is_previewed(env):
    app, slack, db_path = env
    payments = next(t for t in sample_teams() if t.name == "payments")
    # Both forms refuse this overlap now; a database from before they did may still hold it.
    db = open_db(db_path, create=False)
    db["org"].upsert(
        {"workspace": "", "key": "channel", "value": json.dumps(payments.channel)}, pk=("workspace", "key")
    )
    db.conn.close()
    reply = command_reply(app, slack, "digest", channel=payments.channel)
    assert reply["blocks"][0]["text"]["text"] == "📈 payments · value-stream digest"
    assert reply["blocks"][-1]["elements"][0]["action_id"] == ids.POST_DIGEST


def test_post_to_channel_twice_posts_once(env):
    app, slack, db_path = env
    command(app, "digest", channel=ORG_CHANNEL, response_url=f"{slack.url}/response/preview")
    first = _press(app, slack, "first")
    assert first == {"replace_original": True, "text": POSTED}
    [post] = _posts(slack)
    assert_valid_message({k: v for k, v in post.body.items() if k in ("text", "blocks")})
    assert post.body["blocks"][0]["text"]["text"] == "🧭 Organisation · value-stream digest"
    key = org_manual_key(org_cycle_day(get_org(open_db(db_path, create=False)), NOW))
    assert str(key) == "*org*/org-digest-posted/2026-11-23"  # the cycle began on Monday
    assert post.body["metadata"]["event_payload"]["key"] == str(key)

    second = _press(app, slack, "second", user="U2")  # another member, their own preview
    assert len(_posts(slack)) == 1
    assert second["replace_original"] is False
    assert re.fullmatch(
        rf"Already posted to <#{ORG_CHANNEL}> at \d\d:\d\d (GMT|BST) on \w{{3}} \d\d \w{{3}}; "
        r"this period's organisation digest goes there once\.",
        second["text"],
    ), second["text"]
    assert ledger_row(open_db(db_path, create=False), key)["state"] == "sent"


def test_a_non_member_is_refused_and_nothing_is_posted(env):
    app, slack, _ = env
    answer = _press(app, slack, "outsider", user="U9")
    assert answer["text"] == f"Only members of <#{ORG_CHANNEL}> can post the organisation digest there."
    assert _posts(slack) == []
    assert _press(app, slack, "member")["text"] == POSTED  # a member still can


def test_a_preview_left_in_a_channel_that_is_no_longer_the_org_channel_posts_nothing(env):
    app, slack, db_path = env
    configure_org(db_path, channel="C0NEWORG")
    answer = _press(app, slack, "old")
    assert answer["text"] == "This channel is not the organisation digest's channel any more."
    assert slack.calls_to("chat.postMessage") == []


def test_a_press_after_the_cycles_scheduled_digest_posts_nothing(env):
    app, slack, db_path = env
    scheduler = Scheduler(Store(db_path), web_client("xoxb-test", slack.base_url), clock=lambda: NOW)
    assert scheduler.run_org_digest().state == "sent"  # Monday 23 Nov's, sent late on Wednesday
    answer = _press(app, slack, "after")
    assert len(_posts(slack)) == 1
    assert answer["text"].startswith(
        f"This period's organisation digest was posted to <#{ORG_CHANNEL}> by the schedule at "
    )


def test_a_press_before_the_scheduled_time_takes_its_place_and_the_next_cycle_is_sent(env):
    _, slack, db_path = env
    clock = {"now": datetime(2026, 11, 23, 7, 30, tzinfo=UTC)}  # Monday, before 08:00 GMT
    app = slack_app(db_path, slack, clock=lambda: clock["now"])
    assert _press(app, slack, "early")["text"] == POSTED
    scheduler = Scheduler(Store(db_path), web_client("xoxb-test", slack.base_url), clock=lambda: clock["now"])
    clock["now"] = clock["now"].replace(hour=8, minute=1)
    assert scheduler.run_org_digest().state == "skipped"
    assert len(_posts(slack)) == 1
    clock["now"] = datetime(2026, 11, 30, 8, 1, tzinfo=UTC)  # the next cycle
    assert scheduler.run_org_digest().state == "sent"
    assert len(_posts(slack)) == 2


def test_through_vsm_serve_http_preview_presses_and_refusal(sample_db, tmp_path):
    """The real `vsm serve --http` process (its clock is the real one): `/vsm digest` in the org
    channel, two members pressing at once and one pressing again post once; a non-member is refused.
    The org digest day is set three days ahead, so the server's start-up catch-up has nothing to send."""
    from test_slack_serve import FORM, post, vsm_serve

    (tmp_path / "s.db").write_bytes(sample_db.read_bytes())
    day = DAYS[(datetime.now(UTC) + timedelta(days=3)).weekday()]
    configure_org(
        tmp_path / "s.db", channel=ORG_CHANNEL, digest={"day": day, "time": "08:00", "period_days": 28}
    )
    with (
        MockSlack(members={ORG_CHANNEL: ["U1", "U2"]}) as slack,
        vsm_serve(tmp_path, slack.base_url) as served,
    ):

        def send(body: str):
            resp = post(served.url, body, signed(body, content_type=FORM))
            assert resp.status_code == 200
            return resp

        def press(user: str, url: str):
            payload = {
                "type": "block_actions",
                "user": {"id": user},
                "channel": {"id": ORG_CHANNEL},
                "response_url": f"{slack.url}/response/{url}",
                "trigger_id": "t",
                "actions": [POST],
            }
            return send(urlencode({"payload": json.dumps(payload)}))

        def answer(url: str, deadline_s: float = 60) -> dict:
            """Each answer comes after its ack, through the response_url: polled for."""
            sent = wait_for(lambda: slack.requests_to(f"/response/{url}"), deadline_s, slack.responses)
            return json.loads(sent[-1].body)

        send(command_body("digest", channel=ORG_CHANNEL, response_url=f"{slack.url}/response/preview"))
        preview = answer("preview")  # "Working on it…" went with the ack; this is the final reply
        assert_valid_message({k: v for k, v in preview.items() if k in ("text", "blocks")})
        assert preview["blocks"][-1]["elements"][0]["action_id"] == ids.POST_ORG_DIGEST

        together = [threading.Thread(target=press, args=(u, f"s{u}")) for u in ("U1", "U2")]
        for t in together:
            t.start()
        for t in together:
            t.join(timeout=60)
        texts = sorted(answer(f"s{u}")["text"] for u in ("U1", "U2"))
        press("U1", "again")
        texts.append(answer("again")["text"])
        press("U9", "outsider")
        refused = answer("outsider")["text"]
        manual = [
            c
            for c in slack.calls_to("chat.postMessage")
            if (c.body.get("metadata") or {}).get("event_payload", {}).get("kind") == "org-digest-posted"
        ]
    assert len(manual) == 1 and manual[0].body["channel"] == ORG_CHANNEL
    assert texts.count(POSTED) == 1, texts
    assert all(
        t == POSTED or t.startswith(f"Already posted to <#{ORG_CHANNEL}>") or "right now" in t for t in texts
    )
    assert refused == f"Only members of <#{ORG_CHANNEL}> can post the organisation digest there."
