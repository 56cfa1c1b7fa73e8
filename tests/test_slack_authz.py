"""Issue 10 item 10: a change is authorised against the channel's members when it is made.

Someone who opened the settings form, the set-up form or a digest preview while in the channel, and
has left it since, can change nothing and post nothing. Membership comes from the mock Slack's
``conversations.members`` (which the tests edit at runtime), cached per channel for ``MEMBERS_TTL``
seconds on a clock the tests move.
"""

import threading
import time

import pytest
from fakes.slack import MockSlack
from slackkit import ack_json, click, command, initial_state, interaction, slack_app

from bot.app import web_client
from bot.authz import MEMBERS_TTL, PRE_ACK_S, MemberCache
from metrics.sample import sample_teams
from metrics.store import open_db
from metrics.teams import get_team, settings_log


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def pass_ttl(self) -> None:
        self.now += MEMBERS_TTL + 1


@pytest.fixture
def env(sample_db, tmp_path):
    db_path = tmp_path / "authz.db"
    db_path.write_bytes(sample_db.read_bytes())
    payments = next(t for t in sample_teams() if t.name == "payments")
    clock = Clock()
    with MockSlack(members={payments.channel: ["U1", "U2"], "CNEWCHAN1": ["U3"]}) as slack:
        app = slack_app(db_path, slack, members=MemberCache(clock=clock))
        yield app, slack, payments, db_path, clock


def _leave(slack, channel: str, user: str) -> None:
    slack.members[channel] = [u for u in slack.members[channel] if u != user]


def _submit(app, view: dict, state: dict, user: str):
    return interaction(
        app, {"type": "view_submission", "user": {"id": user}, "view": {**view, "id": "V1", "state": state}}
    )


def _click(app, slack, channel: str, user: str, action: dict):
    return click(app, [action], channel=channel, user=user, response_url=f"{slack.url}/response/click")


POST = {"action_id": "post_digest", "block_id": "preview_actions", "type": "button", "value": "payments"}


def _settings_form(app, slack, channel: str, user: str) -> dict:
    command(app, "settings", channel=channel, user=user, response_url=f"{slack.url}/response/9")
    [opened] = slack.calls_to("views.open")
    return opened.body["view"]


def test_a_member_who_left_cannot_save_the_settings_form_they_opened(env):
    app, slack, team, db_path, clock = env
    view = _settings_form(app, slack, team.channel, "U1")
    state = initial_state(view)
    state["values"]["timezone"]["v"]["value"] = "Europe/Paris"
    before = get_team(open_db(db_path, create=False), team.name)
    log = settings_log(open_db(db_path, create=False), team.name)

    _leave(slack, team.channel, "U1")
    clock.pass_ttl()
    body = ack_json(_submit(app, view, state, "U1"))
    assert body["response_action"] == "errors"
    assert "not in it now" in body["errors"]["name"]
    db = open_db(db_path, create=False)
    assert get_team(db, team.name) == before
    assert settings_log(db, team.name) == log
    assert slack.calls_to("chat.postMessage") == []

    # Back in the channel, the same form saves (the refusal was the membership, nothing else).
    slack.members[team.channel].append("U1")
    clock.pass_ttl()
    assert _submit(app, view, state, "U1").body == ""
    assert get_team(open_db(db_path, create=False), team.name).timezone == "Europe/Paris"


def test_a_member_who_left_cannot_set_up_a_team_in_that_channel(env):
    app, slack, team, db_path, clock = env
    button = ack_json(command(app, "settings", channel="CNEWCHAN1", user="U3"))["blocks"][0]["accessory"]
    _click(app, slack, "CNEWCHAN1", "U3", {**button, "block_id": "no_team", "type": "button"})
    [opened] = slack.calls_to("views.open")
    view = opened.body["view"]
    state = initial_state(view)
    state["values"]["name"]["v"]["value"] = "checkout"

    _leave(slack, "CNEWCHAN1", "U3")
    clock.pass_ttl()
    body = ack_json(_submit(app, view, state, "U3"))
    assert body["response_action"] == "errors" and set(body["errors"]) == {"name"}
    db = open_db(db_path, create=False)
    assert next(db.query("select name from teams where name = 'checkout'"), None) is None
    assert settings_log(db, "checkout") == []
    assert slack.calls_to("chat.postMessage") == []


def test_a_member_who_left_cannot_post_the_digest_they_previewed(env):
    app, slack, team, _, clock = env
    command(app, "digest", channel=team.channel, user="U1", response_url=f"{slack.url}/response/1")
    [preview] = slack.responses()
    assert preview["blocks"][-1]["elements"][0]["action_id"] == "post_digest"

    _leave(slack, team.channel, "U1")
    clock.pass_ttl()
    assert _click(app, slack, team.channel, "U1", POST).status == 200
    assert slack.calls_to("chat.postMessage") == []
    reply = slack.responses()[-1]
    assert reply["text"] == f"Only members of <#{team.channel}> can post its digest there."
    assert reply["replace_original"] is False  # the preview stays, for a member to post

    # Someone who was never in the channel, clicking a preview passed to them: refused as well.
    assert _click(app, slack, team.channel, "UOUT", POST).status == 200
    assert slack.calls_to("chat.postMessage") == []


def _refusals(slack) -> int:
    return sum(r["text"].startswith("Only members") for r in slack.responses())


def test_membership_is_read_once_per_channel_within_the_ttl(env):
    """The cache is honoured: a burst of clicks costs one ``conversations.members`` call, and someone
    removed keeps their rights at most ``MEMBERS_TTL`` seconds."""
    app, slack, team, _, clock = env
    for user in ("U1", "U2", "U1"):
        _click(app, slack, team.channel, user, POST)
    assert len(slack.calls_to("conversations.members")) == 1
    # Allowed each time: posted once, then told it was already posted (issue 12: posts once).
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert _refusals(slack) == 0 and slack.responses()[-1]["text"].startswith("Already posted")

    _leave(slack, team.channel, "U2")
    clock.now += MEMBERS_TTL - 1  # still cached: U2's click is allowed, with no new call
    _click(app, slack, team.channel, "U2", POST)
    assert len(slack.calls_to("conversations.members")) == 1
    assert _refusals(slack) == 0 and slack.responses()[-1]["text"].startswith("Already posted")
    clock.now += 2  # expired: read again, and U2 is refused
    _click(app, slack, team.channel, "U2", POST)
    assert len(slack.calls_to("conversations.members")) == 2
    assert _refusals(slack) == 1 and len(slack.calls_to("chat.postMessage")) == 1


def test_concurrent_clicks_share_one_membership_call(env):
    app, slack, team, _, _ = env
    threads = [threading.Thread(target=_click, args=(app, slack, team.channel, "U1", POST)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(slack.calls_to("conversations.members")) == 1
    # All six allowed, one post between them (issue 12: Post to channel posts once).
    assert len(slack.responses()) == 6 and _refusals(slack) == 0
    assert len(slack.calls_to("chat.postMessage")) == 1


def test_when_slack_cannot_say_who_is_in_the_channel_nothing_is_changed(env):
    """Fail closed: a membership call that fails refuses the change, and is not cached."""
    app, slack, team, db_path, clock = env
    view = _settings_form(app, slack, team.channel, "U1")
    state = initial_state(view)
    state["values"]["timezone"]["v"]["value"] = "Europe/Paris"
    clock.pass_ttl()
    slack.errors["conversations.members"] = "ratelimited"
    body = ack_json(_submit(app, view, state, "U1"))
    assert body["response_action"] == "errors" and "try again" in body["errors"]["name"]
    _click(app, slack, team.channel, "U1", POST)
    assert "try again" in slack.responses()[-1]["text"]
    assert get_team(open_db(db_path, create=False), team.name).timezone == team.timezone
    assert slack.calls_to("chat.postMessage") == []
    del slack.errors["conversations.members"]
    assert _submit(app, view, state, "U1").body == ""  # the failure was not cached
    assert get_team(open_db(db_path, create=False), team.name).timezone == "Europe/Paris"


class PagedSlack(MockSlack):
    """``conversations.members`` one member a page, as a big channel pages, each page costing
    ``page_s`` on the cache's clock; ``hold`` (an Event) keeps a page waiting until it is set."""

    def __init__(self, members: dict[str, list[str]], clock: Clock, page_s: float) -> None:
        super().__init__(members=members)
        self.clock, self.page_s = clock, page_s
        self.hold: threading.Event | None = None

    def _canned(self, method: str, body: dict) -> dict:
        if method != "conversations.members":
            return super()._canned(method, body)
        if self.hold is not None:
            self.hold.wait(10)
        self.clock.now += self.page_s
        members, at = self.members.get(body.get("channel"), []), int(body.get("cursor") or 0)
        more = str(at + 1) if at + 1 < len(members) else ""
        return {"members": members[at : at + 1], "response_metadata": {"next_cursor": more}}


def test_a_check_before_the_ack_gives_up_within_its_time_and_refuses():
    """Before a modal's 3-second ack, every page of a big channel shares one deadline (``PRE_ACK_S``):
    out of time, the member is unknown, which refuses, and nothing half-read is cached. After an ack
    the same check reads every page."""
    clock = Clock()
    with PagedSlack({"CBIG": ["U1", "U2", "U3", "U4", "U5"]}, clock, page_s=0.8) as slack:
        client, cache = web_client("xoxb-test", slack.base_url), MemberCache(clock=clock)
        assert cache.is_member(client, "CBIG", "U5", within=PRE_ACK_S) is None
        assert len(slack.calls_to("conversations.members")) == 3  # 2.4 s of pages: the third ran out
        assert cache.is_member(client, "CBIG", "U5") is True  # not cached: read again, all five pages
        assert len(slack.calls_to("conversations.members")) == 3 + 5
        assert cache.is_member(client, "CBIG", "U5", within=PRE_ACK_S) is True  # now from the cache


def test_a_check_before_the_ack_waits_for_another_read_only_so_long():
    """A click's read of the channel (after its ack, with retries) holds the channel; a submission
    that needs the same channel before its ack waits only its own time, then refuses."""
    clock = Clock()
    with PagedSlack({"C1": ["U1"]}, clock, page_s=0) as slack:
        client, cache = web_client("xoxb-test", slack.base_url), MemberCache(clock=clock)
        slack.hold = threading.Event()
        slow = threading.Thread(target=cache.is_member, args=(client, "C1", "U1"))
        slow.start()
        while not slack.calls_to("conversations.members"):
            time.sleep(0.01)
        started = time.monotonic()
        assert cache.is_member(client, "C1", "U1", within=0.2) is None
        assert time.monotonic() - started < 1
        slack.hold.set()
        slow.join()
        assert cache.is_member(client, "C1", "U1", within=0.2) is True


def test_only_a_member_can_post_a_chart_from_the_digest_menu(env):
    """The chart menu posts a PNG to the channel: someone browsing a public channel's digest, not in
    it, posts nothing."""
    app, slack, team, _, _ = env
    command(app, "digest", channel=team.channel, user="U1", response_url=f"{slack.url}/response/1")
    actions = next(b for b in slack.responses()[0]["blocks"] if b.get("block_id") == "digest_actions")
    select = next(e for e in actions["elements"] if e["action_id"] == "chart")
    action = {"action_id": "chart", "block_id": "digest_actions", "type": "static_select"}
    action["selected_option"] = select["options"][0]

    assert _click(app, slack, team.channel, "UOUT", action).status == 200
    assert slack.calls_to("files.getUploadURLExternal") == [] and slack.uploads == []
    assert slack.responses()[-1]["text"] == f"Only members of <#{team.channel}> can post a chart there."
    _click(app, slack, team.channel, "U1", action)
    assert len(slack.uploads) == 1
