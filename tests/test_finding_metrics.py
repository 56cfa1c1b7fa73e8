"""Finding a metric as people name it (issue 12 §7): aliases, did-you-mean, and a help that lists them.

Driven as Slack drives the app: signed `/vsm` requests, the ack and the response_url reply read back.
"""

import json
from urllib.parse import urlencode

import pytest
from fakes.slack import MockSlack
from slackkit import ack_json, assert_valid_message, command, signed, slack_app

from bot.listeners.commands.parse import parse
from bot.render.usage import catalogue_message
from metrics.catalogue import CATALOGUE
from metrics.catalogue.aliases import METRIC_ALIASES
from metrics.sample import sample_teams

FAMILIES = {"flow": "Flow", "dora": "DORA", "scrum": "Scrum", "pull_requests": "Pull requests"}


@pytest.fixture
def env(sample_db, tmp_path):
    db_path = tmp_path / "find.db"
    db_path.write_bytes(sample_db.read_bytes())
    payments = next(t for t in sample_teams() if t.name == "payments")
    with MockSlack(members={payments.channel: ["U1"]}) as slack:
        yield slack_app(db_path, slack), slack, payments


def _ask(env, text: str) -> tuple[dict, list[dict]]:
    """The ack's body and what followed through the response_url."""
    app, slack, team = env
    before = len(slack.responses())
    resp = command(app, text, channel=team.channel, response_url=f"{slack.url}/response/1")
    assert resp.status == 200
    return ack_json(resp), slack.responses()[before:]


def _figure(env, text: str) -> tuple[str, dict]:
    """The reply's fallback text and its Explain button's value: which metric, which window."""
    _, [reply] = _ask(env, text)
    button = reply["blocks"][-1]["elements"][0]
    assert button["action_id"] == "explain"
    return reply["text"], json.loads(button["value"])


@pytest.mark.parametrize(
    "text",
    ["cycle time 2026Q3", "cycletime 2026Q3", "ct 2026Q3", "Cycle-Time 2026Q3", "CYCLE_TIME 2026q3"],
)
def test_the_ways_people_write_cycle_time_all_find_it_with_the_period(env, text):
    said, explain = _figure(env, text)
    assert said.startswith("Cycle time for payments")
    assert explain["metric"] == "cycle-time"
    # The period after a two-word name is read as the period, not as part of the name.
    # 2026Q3 in the team's zone (Europe/London, summer time: UTC+1).
    assert (explain["since"], explain["until"]) == ("2026-06-30T23:00:00Z", "2026-09-30T23:00:00Z")


@pytest.mark.parametrize(
    ("text", "metric"),
    [
        ("lead time", "lead-time"),
        ("lead time for changes", "lead-time-for-changes"),
        ("mttr", "time-to-restore"),
        ("cfr", "change-failure-rate"),
        ("Deployment Frequency", "deployment-frequency"),
        ("wip", "wip"),
    ],
)
def test_names_and_short_names_find_their_metric(env, text, metric):
    said, explain = _figure(env, text)
    assert explain["metric"] == metric
    assert said.startswith(f"{CATALOGUE[metric].name} for payments")


def test_a_chart_after_a_two_word_name_is_still_drawn(env):
    _, [reply] = _ask(env, "cycle time 90d chart")
    assert reply["text"].startswith("Cycle time for payments")
    assert reply["text"].endswith("(chart posted to the channel)")
    assert len(env[1].calls_to("files.completeUploadExternal")) == 1


@pytest.mark.parametrize(
    ("text", "meant"),
    [
        ("cyle-time 90d", "did you mean `cycle-time`"),
        ("cycle tme", "did you mean `cycle-time`"),
        ("throughptu", "did you mean `throughput`?"),
        ("deploy", "did you mean `deployment-frequency`?"),
        ("hlep", "did you mean `help`?"),
    ],
)
def test_a_near_miss_is_answered_with_the_closest_ids_and_nothing_else(env, text, meant):
    body, followed = _ask(env, text)
    assert meant in body["blocks"][0]["text"]["text"]
    assert body["response_type"] == "ephemeral"
    assert_valid_message(body)
    assert followed == [] and env[1].calls_to("chat.postMessage") == []


def test_nothing_close_points_to_help(env):
    body, _ = _ask(env, "zzqx")
    assert (
        body["blocks"][0]["text"]["text"]
        == ":grey_question: I don't know `zzqx`: `/vsm help` lists what I know"
    )


def test_dora_answers_with_the_dora_metrics(env):
    body, followed = _ask(env, "dora")
    assert followed == []
    assert_valid_message(body)
    sections = [b for b in body["blocks"] if b["type"] == "section"]
    assert [b.get("block_id") for b in sections] == ["family:dora"]  # the DORA family alone
    [dora] = sections
    assert dora["text"]["text"].startswith("*DORA*")
    for m in CATALOGUE.values():
        assert (f"`{m.id}`" in dora["text"]["text"]) == (m.family == "dora")


def test_a_family_word_asks_for_that_family_alone():
    for text, family in [
        ("dora", "dora"),
        ("DORA metrics", "dora"),
        ("four keys", "dora"),
        ("prs", "pull_requests"),
    ]:
        cmd = parse(text)
        assert (cmd.name, cmd.family) == ("metrics", family), text
        sections = [b for b in catalogue_message(cmd.family)["blocks"] if b["type"] == "section"]
        assert [b["block_id"] for b in sections] == [f"family:{family}"]
    assert parse("dora 90d").name == "error"


def test_every_id_name_and_alias_parses_to_its_metric_however_it_is_written():
    for m in CATALOGUE.values():
        if m.id == "forecast":  # the `forecast N` command
            continue
        for name in (m.id, m.name, *METRIC_ALIASES.get(m.id, ())):
            for form in (
                name,
                name.upper(),
                name.replace("-", " "),
                name.replace("-", "_"),
                name.replace("-", ""),
            ):
                cmd = parse(f"{form} 30d")
                assert (cmd.name, cmd.metric, cmd.period) == ("metric", m.id, "30d"), form


def test_a_letter_dropped_from_any_id_suggests_that_id():
    for mid in (m for m in CATALOGUE if len(m) > 4):  # `wip` less a letter is anything
        at = next(i for i in range(3, len(mid)) if mid[i].isalpha())
        typo = mid[:at] + mid[at + 1 :]
        cmd = parse(typo)
        assert cmd.name == "error" and f"`{mid}`" in cmd.error, (typo, cmd.error)
        assert len(cmd.error) < 200


def test_help_lists_every_metric_by_family_and_says_what_p50_and_p85_mean(env):
    body, _ = _ask(env, "help")
    assert_valid_message(body)
    sections = {b["block_id"]: b["text"]["text"] for b in body["blocks"] if b["type"] == "section"}
    for block_id, text in sections.items():
        assert len(text) <= 3000, block_id
    assert "p50: half of items finished within it; p85: 85% did" in sections["percentiles"]
    for family, title in FAMILIES.items():
        lines = sections[f"family:{family}"].split("\n")
        assert lines[0] == f"*{title}*"
        assert lines[1:] == [f"`{m.id}` {m.name}" for m in CATALOGUE.values() if m.family == family]


def test_the_catalogue_titles_families_as_people_write_them(env):
    body, _ = _ask(env, "metrics")
    assert_valid_message(body)
    titles = [b["text"]["text"].split("\n")[0] for b in body["blocks"] if b["type"] == "section"]
    assert titles == ["*Flow*", "*DORA*", "*Scrum*", "*Pull requests*"]
    assert "Dora" not in json.dumps(body)


def test_through_vsm_serve_http_names_typos_and_help_are_answered(tmp_path):
    """The real `vsm serve --http` process answers these in its acknowledgement (no team needed)."""
    from test_slack_serve import FORM, post, vsm_serve

    with MockSlack() as slack, vsm_serve(tmp_path, slack.base_url) as served:

        def ask(text: str) -> dict:
            body = urlencode(
                {"command": "/vsm", "text": text, "user_id": "U1", "channel_id": "C1", "team_id": "T1"}
            )
            resp = post(served.url, body, signed(body, content_type=FORM))
            assert resp.status_code == 200
            return resp.json()

        assert "did you mean `cycle-time`" in ask("cycle tme 90d")["blocks"][0]["text"]["text"]
        helped = ask("help")
        assert [b["block_id"] for b in helped["blocks"] if b.get("block_id", "").startswith("family:")] == [
            f"family:{f}" for f in FAMILIES
        ]
        assert "*DORA*" in json.dumps(ask("dora"))


def test_the_help_line_after_a_question_has_no_second_full_stop():
    from bot.render import usage

    asked = usage.help_message("I don't know `exp`: did you mean `experiment`?")["text"]
    assert asked == "I don't know `exp`: did you mean `experiment`? Try /vsm help"  # not "?. Try"
    assert usage.help_message("bad period")["text"] == "bad period. Try /vsm help"
