"""Every surface shows a figure one way (issue 12, review round): WIP with the count it is at beside
its average; a change judged at the precision the figures are shown in; the command line finding
metrics by the names `/vsm` knows; `/vsm forecast 20 items`; no control character from a tool's text
reaching a terminal.

Expectations are worked out by hand from the rows each test writes (tests/builders.py). The clock is
``slackkit.NOW``, Wednesday 25 Nov 2026 15:00 UTC; the team is in UTC with a 28-day digest period, so
its window is 28 Oct – 24 Nov (until 25 Nov 00:00).
"""

from __future__ import annotations

import json
import re

import pytest
from builders import item, team
from fakes.slack import MockSlack
from slackkit import NOW, ack_json, assert_valid_message, click, command, command_reply, event, slack_app

from bot import cli
from bot.render import format as fmt
from bot.render import replies
from bot.render.terminal import safe
from metrics.catalogue import CATALOGUE
from metrics.catalogue.base import Result
from metrics.store import open_db
from metrics.teams import seed_from_config
from metrics.timeutil import dates_window, zone

ESC_TITLE = "Fix \x1b]0;pwned\x07login\x1b[2J page\u202e\x9b\x7f"
ESC_URL = "https://jira.example/browse/PAY-2\x1b[1A"


@pytest.fixture
def db_path(tmp_path):
    """Daily WIP samples (each local day's end) over the digest window, by hand:
    PAY-1 committed 1 Oct, open: in all 28 samples.
    PAY-2 committed 10 Nov 06:00, done 20 Nov 12:00: the samples of 10–19 Nov (ends 11–20 Nov 00:00), 10.
    PAY-3 committed 24 Nov 12:00, open: the last sample (25 Nov 00:00), 1.
    PAY-4 committed 25 Nov 10:00 (today, before NOW): in no sample of the window.
    Average 39 / 28 = 1.39 -> 1.4 items; at the end of 24 Nov, 2 in progress (PAY-1, PAY-3)."""
    path = tmp_path / "wip.db"
    db = open_db(path)
    item(db, "PAY-1", "2026-09-30 00:00", [("2026-10-01 00:00", "Selected")])
    item(db, "PAY-2", "2026-11-01 00:00", [("2026-11-10 06:00", "Selected"), ("2026-11-20 12:00", "Done")])
    item(db, "PAY-3", "2026-11-20 00:00", [("2026-11-24 12:00", "In Progress")])
    item(db, "PAY-4", "2026-11-20 00:00", [("2026-11-25 10:00", "In Progress")])
    # Tool text a terminal would act on: an OSC title, a bell, a screen clear, a bidi override.
    db.execute("update work_items set summary = ?, url = ? where key = 'PAY-2'", [ESC_TITLE, ESC_URL])
    seed_from_config(db, [team(metrics=["wip", "cycle-time"], targets={"cycle-time": 1.0})], {})
    db.conn.close()
    return path


@pytest.fixture
def app_env(db_path):
    with MockSlack(members={"C1": ["U1"]}) as slack:
        yield slack_app(db_path, slack), slack


def _vsm(capsys, monkeypatch, tmp_path, *args: str) -> tuple[int, str, str]:
    """``vsm`` as a person runs it (its ``main``), in a directory without a vsm.toml."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VSM_NOW", NOW.isoformat())
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# -- WIP: the count it is at, beside the average ------------------------------------------------------------
WIP_AT_END = "2 in progress at the end of 24 Nov · average 1.4 items"


def test_wip_shows_its_current_count_beside_the_average_on_every_slack_surface(app_env):
    app, slack = app_env
    figure = command_reply(app, slack, "wip")["blocks"][0]["text"]["text"]
    assert f"*{WIP_AT_END}*  (28 days sampled)" in figure
    digest = command_reply(app, slack, "digest")
    fig = next(b for b in digest["blocks"] if b.get("block_id") == "fig:wip")
    assert f"*Work in progress*  {WIP_AT_END}\n" in fig["text"]["text"]
    event(app, {"type": "app_home_opened", "user": "U1", "tab": "home"})
    [published] = slack.calls_to("views.publish")
    home = next(b for b in published.body["view"]["blocks"] if b.get("block_id") == "figures:1")
    assert f"Work in progress: *{WIP_AT_END}*" in home["text"]["text"]


def test_wip_over_a_window_running_to_now_says_now(app_env):
    """`/vsm wip 7d` is 19–25 Nov, today sampled at NOW: samples of 19–24 Nov hold PAY-1 six times,
    PAY-2 once (19 Nov) and PAY-3 once (24 Nov); today's holds PAY-1, PAY-3 and PAY-4. 11 / 7 = 1.6."""
    app, slack = app_env
    figure = command_reply(app, slack, "wip 7d")["blocks"][0]["text"]["text"]
    assert "*3 in progress now · average 1.6 items*  (7 days sampled)" in figure


def test_the_terminal_shows_wip_as_slack_does(capsys, monkeypatch, tmp_path, db_path):
    code, out, _ = _vsm(capsys, monkeypatch, tmp_path, "metric", "wip", "--team", "pay", "--db", str(db_path))
    assert code == 0
    assert f"  {WIP_AT_END}   (28 days sampled)\n" in out


# -- a change at the precision the figures are shown in ----------------------------------------------------
def _result(metric: str, value, previous) -> Result:
    window = dates_window("2026-11-06", "2026-12-06", zone("UTC"))
    return Result(metric, "pay", window, value, CATALOGUE[metric].unit, 30, previous, [])


def test_a_reply_never_shows_a_change_between_two_figures_that_read_the_same():
    r = _result("cycle-time", {"p50": 218.0, "p85": 336.0}, {"p50": 218.4, "p85": 336.5})
    figure = replies.metric_message(team(), r)["blocks"][0]["text"]["text"]
    assert "*p50 9.1 d · p85 14.0 d*" in figure
    assert "No change (previous period: p50 9.1 d · p85 14.0 d)" in figure


def test_duration_has_one_display_rule():
    """``format.duration`` (hours) is the catalogue's ``duration_text`` (seconds), half-up."""
    assert [fmt.duration(h) for h in (7.45, 23.94, 23.96, 34, 78, 0)] == [
        "7.5 h",
        "23.9 h",
        "24.0 h",
        "1.4 d",
        "3.3 d",
        "0.0 h",
    ]


# -- the same names in the terminal as in Slack ----------------------------------------------------------
@pytest.mark.parametrize("words", [["ct"], ["cycle", "time"], ["Cycle_Time"], ["cycletime"], ["CYCLE-TIME"]])
def test_the_command_line_finds_a_metric_by_the_names_slack_knows(
    capsys, monkeypatch, tmp_path, db_path, words
):
    code, out, err = _vsm(
        capsys, monkeypatch, tmp_path, "metric", *words, "--team", "pay", "--db", str(db_path)
    )
    assert code == 0, err
    assert out.startswith("Cycle time · pay · 2026-10-28 – 2026-11-24\n")


@pytest.mark.parametrize(
    ("words", "said"),
    [
        (["cyletime"], "vsm: unknown metric 'cyletime': did you mean cycle-time or pr-cycle-time?\n"),
        (["no-such-metric"], "vsm: unknown metric 'no-such-metric': `vsm metrics` lists them\n"),
        (["dora"], "vsm: 'dora' is a family of metrics, not one metric: `vsm metrics` lists them\n"),
    ],
)
def test_the_command_line_answers_a_name_it_does_not_know_before_opening_anything(
    capsys, monkeypatch, tmp_path, words, said
):
    missing = tmp_path / "none.db"
    code, out, err = _vsm(
        capsys, monkeypatch, tmp_path, "metric", *words, "--team", "pay", "--db", str(missing)
    )
    assert (code, out, err) == (2, "", said)
    assert not missing.exists()


# -- /vsm forecast 20 items ---------------------------------------------------------------------------------
def test_forecast_takes_a_trailing_items(app_env):
    app, slack = app_env
    reply = command_reply(app, slack, "forecast 20 items")
    assert reply["text"] == "Forecast for pay: 20 items"
    assert command_reply(app, slack, "forecast 1 item")["text"] == "Forecast for pay: 1 items"
    answered = len(slack.responses())
    bad = ack_json(command(app, "forecast 20 apples", channel="C1", response_url=f"{slack.url}/response/1"))
    assert "takes a number of items" in json.dumps(bad)
    assert len(slack.responses()) == answered  # no forecast was made


# -- nothing from a tool drives the terminal -----------------------------------------------------------------
def test_the_terminal_digest_prints_tool_text_without_control_characters(
    capsys, monkeypatch, tmp_path, db_path
):
    """The cycle-time target (1 h) is missed, so the digest names the slowest finished item, PAY-2,
    with the title and URL its tool gave: printed without the ESC sequences' control characters."""
    code, out, err = _vsm(capsys, monkeypatch, tmp_path, "digest", "--team", "pay", "--db", str(db_path))
    assert code == 0, err
    assert (
        "PAY-2 Fix ]0;pwnedlogin[2J page — 10.3 d, started 10 Nov, done 20 Nov (https://jira.example/browse/PAY-2[1A)"
        in out
    )
    assert not any(ch in out for ch in "\x1b\x07\u202e\x9b\x7f\r")


def test_the_terminal_json_is_the_exact_payload_with_nothing_a_terminal_acts_on(
    capsys, monkeypatch, tmp_path, db_path
):
    """`vsm digest --json` prints the exact payload: the title comes back whole when the JSON is read,
    but DEL, C1 controls and bidi marks are written as \\u escapes (json.dumps escapes only C0)."""
    code, out, err = _vsm(
        capsys, monkeypatch, tmp_path, "digest", "--team", "pay", "--json", "--db", str(db_path)
    )
    assert code == 0, err
    assert not any(ch in out for ch in "\x1b\x07\u202e\x9b\x7f\r")
    assert "page\\u202e\\u009b\\u007f" in out
    fig = next(b for b in json.loads(out)["blocks"] if b.get("block_id") == "fig:cycle-time")
    assert f"|PAY-2> {ESC_TITLE} — 10.3 d" in fig["text"]["text"]


@pytest.mark.parametrize(
    ("raw", "printed"),
    [
        ("plain title", "plain title"),
        ("a\x1b[31mred\x1b[0m", "a[31mred[0m"),
        ("two\nlines\r\tand tab", "two lines  and tab"),
        ("c1\x9bcsi \x7fdel", "c1csi del"),
        ("bidi \u202egnp.exe\u2066x\u2069", "bidi gnp.exex"),
        ("émoji 👩\u200d💻 kept", "émoji 👩\u200d💻 kept"),
    ],
)
def test_safe_removes_what_a_terminal_would_act_on(raw, printed):
    assert safe(raw) == printed


# -- Explain behind WIP: the items in progress first ---------------------------------------------------------
def test_wip_explain_lists_the_items_in_progress_before_the_days_it_sampled(app_env):
    """The reply leads with "2 in progress at the end of 24 Nov": Explain names those two, oldest
    first, each with its status as the team wrote it and when it started;
    then the 28 days the average was sampled on."""
    app, slack = app_env
    value = json.dumps(
        {"metric": "wip", "team": "pay", "since": "2026-10-28T00:00:00Z", "until": "2026-11-25T00:00:00Z"}
    )
    action = {"action_id": "explain", "block_id": "metric_actions", "value": value, "type": "button"}
    click(app, [action], channel="C1", user="U1", response_url=f"{slack.url}/response/7")
    reply = slack.responses()[-1]
    reply.pop("replace_original")
    assert_valid_message(reply)
    blocks = {b["block_id"]: b for b in reply["blocks"]}
    assert "28 days sampled behind the figure" in blocks["explain_head"]["text"]["text"]
    assert blocks["explain_now_head"]["text"]["text"] == "*2 in progress at the end of 24 Nov, oldest first*"
    lines = blocks["explain_now_1"]["text"]["text"].split("\n")
    pattern = re.compile(
        r"^• <https://jira\.example/browse/(PAY-\d)\|\1>(?: summary of \1)? · ([^·]+) · started (\d+ \w{3})$"
    )
    found = [pattern.match(line) for line in lines]
    assert all(found), lines
    assert [(m[1], m[3]) for m in found] == [("PAY-1", "1 Oct"), ("PAY-3", "24 Nov")]
    assert [m[2] for m in found] == ["Selected", "In Progress"]  # as the team wrote them
    assert blocks["explain_days_head"]["text"]["text"] == "*The days the average was sampled on*"
    assert blocks["explain_1"]["text"]["text"].startswith("• 28 Oct · 1 in progress\n")


def test_aging_wip_says_how_many_open_items_are_older_than_usual_in_the_figure():
    from metrics.catalogue import CATALOGUE
    from metrics.catalogue.base import Result

    metric = CATALOGUE["aging-wip"]
    r = Result("aging-wip", "t", None, 8, metric.unit, 8, 5, [], extra={"flagged": 2, "p85_hours": 120.0})
    figure, _ = fmt.shown(metric, r)
    assert figure.startswith("8") and figure.endswith(" open, 2 older than usual")
