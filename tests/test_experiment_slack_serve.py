"""An experiment through the real `vsm serve --http` process (its own clock and scheduler): signed
`/vsm experiment` opens the form, a bad submission is answered on its field within the request, a
good one is announced in the channel, and Stop early posts the verdict once, however often pressed."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from builders import team
from fakes.slack import MockSlack
from slackkit import command_body, initial_state, signed, wait_for
from test_slack_serve import FORM, post, vsm_serve

from metrics import experiments as ex
from metrics.store import open_db
from metrics.teams import create_team

METRICS = ["pr-cycle-time", "wip"]


def _interaction(served, payload: dict):
    body = urlencode({"payload": json.dumps(payload)})
    return post(served.url, body, signed(body, content_type=FORM))


def _posted(slack, block_id: str) -> list[dict]:
    """Messages posted to C1 with a block ``block_id`` (the scheduler may post a digest there too)."""
    return [
        c.body
        for c in slack.calls_to("chat.postMessage")
        if c.body.get("channel") == "C1"
        and any(b.get("block_id") == block_id for b in c.body.get("blocks") or [])
    ]


def test_start_and_stop_an_experiment_through_vsm_serve_http(tmp_path):
    db = open_db(tmp_path / "s.db")
    create_team(db, team(metrics=METRICS), who="U0")
    db.conn.close()
    with MockSlack(members={"C1": ["U1", "U2"]}) as slack, vsm_serve(tmp_path, slack.base_url) as served:
        body = command_body("experiment", response_url=f"{slack.url}/response/open")
        assert post(served.url, body, signed(body, content_type=FORM)).status_code == 200
        [opened] = wait_for(lambda: slack.calls_to("views.open"))
        view = opened.body["view"]
        assert [
            o["value"]
            for o in next(b for b in view["blocks"] if b["block_id"] == "metric")["element"]["options"]
        ] == ["pr-cycle-time"]

        state = initial_state(view)
        state["values"]["metric"]["v"]["selected_option"] = {"value": "pr-cycle-time"}
        state["values"]["change"]["v"]["value"] = "x" * 301
        submission = {
            "type": "view_submission",
            "user": {"id": "U1"},
            "view": {**view, "id": "V1", "state": state},
        }
        refused = _interaction(served, submission)
        assert refused.status_code == 200
        assert refused.json() == {
            "response_action": "errors",
            "errors": {"change": "what the team will try is 301 characters long: at most 300"},
        }

        state["values"]["change"]["v"]["value"] = "review every PR within a day"
        accepted = _interaction(served, submission)
        assert accepted.status_code == 200 and accepted.text == ""
        [started] = wait_for(lambda: _posted(slack, "experiment"))
        [button] = next(b for b in started["blocks"] if b["block_id"] == "experiment_actions")["elements"]
        assert button["action_id"] == "stop_experiment"

        for user, url in (("U1", "stop1"), ("U2", "stop2")):
            action = {**button, "block_id": "experiment_actions"}
            click = {
                "type": "block_actions",
                "user": {"id": user},
                "channel": {"id": "C1"},
                "response_url": f"{slack.url}/response/{url}",
                "trigger_id": "t",
                "actions": [action],
            }
            assert _interaction(served, click).status_code == 200
            wait_for(lambda url=url: slack.requests_to(f"/response/{url}"))
        [verdict] = _posted(slack, "verdict")
        assert "(stopped early)" in verdict["blocks"][1]["text"]["text"]
        assert verdict["blocks"][0]["text"]["text"] == "🧪 Experiment verdict: not enough data for a verdict"
        answers = [
            json.loads(slack.requests_to(f"/response/{u}")[0].body)["text"] for u in ("stop1", "stop2")
        ]
        assert answers[0].startswith("Stopped experiment #") and "is in <#C1>" in answers[0]
        assert answers[1].endswith("is over already (not enough data for a verdict).")
    db = open_db(tmp_path / "s.db", create=False)
    [exp] = ex.experiments(db, "pay")
    assert (exp.state, exp.change) == ("stopped", "review every PR within a day")
