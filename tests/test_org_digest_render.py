"""The organisation digest as Slack sees it (issue 13 §2): each part, tool text escaped, unknown
figures never calm, and Slack's limits held for a 1,000-team org without dropping anyone silently.

The North Star parts are real roll-ups of the sample database (``metrics.org.rollups``); the other
parts are built directly, so each can be pushed to sizes and texts the sample never holds."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from slackkit import NOW, assert_valid_message

from bot import ids
from bot.render import org_digest as view
from bot.render.templates import LINE_MAX, SECTION_TEXT, pack
from metrics.experiments import Experiment
from metrics.org import org_window, rollups
from metrics.org_digest import Moved, OrgDigest, Stale
from metrics.store import open_db
from metrics.timeutil import Window, local_midnight, zone

NORTH = ["lead-time-for-changes", "deployment-frequency", "cycle-time", "change-failure-rate", "throughput"]
HOSTILE = "<!channel> & <@U1> <https://evil.example|click>"


@pytest.fixture(scope="module")
def sample(sample_db):
    db = open_db(sample_db, create=False)
    try:
        window = org_window({}, NOW)  # UTC, the last 28 complete days: whatever the sample org says
        yield db, window, rollups(db, NORTH, window, NOW)
    finally:
        db.conn.close()


def _experiment(i: int, team: str, change: str, *, verdict: str = "improved", state: str = "concluded"):
    start = (NOW - timedelta(weeks=6)).timestamp()
    return Experiment(
        id=i,
        team=team,
        metric="cycle-time",
        change=change,
        weeks=4,
        timezone="UTC",
        started=start,
        ends=start + 28 * 86400,
        state=state,
        verdict=verdict,
        concluded_at=start + 20 * 86400,
    )


def _blocks(payload: dict, prefix: str) -> list[dict]:
    return [b for b in payload["blocks"] if str(b.get("block_id", "")).startswith(prefix)]


def _texts(payload: dict, prefix: str) -> str:
    return "\n".join(b["text"]["text"] for b in _blocks(payload, prefix))


def _listed_and_more(text: str) -> tuple[list[str], int]:
    """The bullet lines of a list, and the N of its "…and N more" line (0 when everyone is listed)."""
    lines = [line for line in text.split("\n") if line.startswith("• ")]
    more = re.search(r"…and (\d+) more", text)
    return lines, int(more.group(1)) if more else 0


def test_every_part_is_there_in_order_with_each_teams_figure_by_name(sample):
    db, window, north = sample
    d = OrgDigest(
        window,
        "UTC",
        north[:2],
        moved=[Moved("payments", "C1", "cycle-time", "Cycle time", False, "slower than the 20 weeks before")],
        concluded=[
            _experiment(1, "mobile", "Pair on every review", state="stopped", verdict="no real change")
        ],
        stale=[
            Stale(
                "platform", "C3", [{"source": "jira", "as_of": "2026-11-20T10:00:00Z", "error": "HTTP 500"}]
            )
        ],
    )
    payload = view.message(d, NOW, channel="C0ORG")
    assert_valid_message(payload)
    assert payload["channel"] == "C0ORG"
    order = [b.get("block_id") for b in payload["blocks"] if b.get("block_id")]
    assert order == [
        "period",
        "north_star",
        "ns:lead-time-for-changes",
        "ns:lead-time-for-changes:teams:1",
        "ns:deployment-frequency",
        "ns:deployment-frequency:teams:1",
        "moved",
        "moved:1",
        "concluded",
        "concluded:1",
        "stale",
        "stale:1",
    ]
    lead = _texts(payload, "ns:lead-time-for-changes")
    org = north[0]
    assert f"({org.sample_size} PRs)" in lead and "all teams" in lead
    assert "p85 ↑" in lead or "p85 ↓" in lead or "no change" in lead  # the change against the period before
    # Every team's own figure on the same window, by name (the sample's three teams).
    rows = [line for line in lead.split("\n") if line.startswith("• ")]
    assert [r.split(":")[0] for r in rows] == ["• mobile", "• payments", "• platform"]
    assert all(f"({t.sample_size} PRs)" in r for t, r in zip(org.teams, rows, strict=True))
    assert "• *payments* · Cycle time, worse: slower than the 20 weeks before" in _texts(payload, "moved")
    assert (
        "• *mobile* tried “Pair on every review” on Cycle time: *no real change* (stopped early)"
        in _texts(payload, "concluded")
    )
    stale = _texts(payload, "stale")
    assert "• *platform*: jira data as of Fri 20 Nov 10:00 UTC (last sync failed)" in stale
    assert "HTTP 500" not in stale  # the error's text is for the logs, as in the team digest
    assert "2026-10-28 – 2026-11-24 (UTC)" in payload["blocks"][1]["elements"][0]["text"]
    assert payload["text"].startswith(
        "Organisation digest for 2026-10-28 – 2026-11-24; Lead time for changes p50"
    )


def test_the_org_target_is_shown_where_the_org_set_one(sample):
    db, window, north = sample
    lead = replace(north[0], target=24.0, on_target=False)
    payload = view.message(OrgDigest(window, "UTC", [lead]), NOW)
    assert "⚠️ org target: off target (≤ 1.0 d)" in _texts(payload, "ns:lead-time-for-changes")
    untargeted = view.message(OrgDigest(window, "UTC", [north[0]]), NOW)
    assert "org target" not in _texts(untargeted, "ns:lead-time-for-changes")


def test_empty_parts_say_so_or_are_left_out(sample):
    db, window, north = sample
    payload = view.message(OrgDigest(window, "UTC", []), NOW)
    assert_valid_message(payload)
    assert "No North Star metrics are set" in _texts(payload, "north_star")
    assert _texts(payload, "moved") == "*Moved with a real signal*\n" + view.NOTHING_MOVED
    assert _blocks(payload, "concluded") == [] and _blocks(payload, "stale") == []


def test_an_unknown_org_figure_is_never_read_as_calm(sample_db):
    db = open_db(sample_db, create=False)
    tz = zone("UTC")
    before_history = Window(local_midnight(date(2020, 1, 1), tz), local_midnight(date(2020, 1, 29), tz))
    north = rollups(db, ["lead-time-for-changes"], before_history, NOW)
    payload = view.message(OrgDigest(before_history, "UTC", north), NOW)
    figure = _texts(payload, "ns:lead-time-for-changes")
    assert "no data" in figure and "no signal: no data in this period" in figure
    assert "within normal variation" not in figure
    # Each team's row says why it has no figure, in italics, never a number.
    rows = [line for line in figure.split("\n") if line.startswith("• ")]
    assert len(rows) == 3 and all(": _no data" in r for r in rows)


def test_a_team_level_figure_says_it_is_not_pooled(sample):
    db, window, _ = sample
    [wip] = rollups(db, ["wip"], window, NOW)
    figure = _texts(view.message(OrgDigest(window, "UTC", [wip]), NOW), "ns:wip")
    assert "_not pooled across teams_" in figure and "each team's row shows its own" in figure
    assert "within normal variation" not in figure and "no change" not in figure


def test_every_tool_text_is_escaped(sample):
    db, window, north = sample
    lead = replace(north[0], teams=[replace(north[0].teams[0], team=HOSTILE)])
    d = OrgDigest(
        window,
        "UTC",
        [lead],
        moved=[Moved(HOSTILE, "C1", "cycle-time", HOSTILE, True, HOSTILE)],
        concluded=[_experiment(1, HOSTILE, HOSTILE)],
        stale=[Stale(HOSTILE, "C1", [{"source": HOSTILE, "as_of": HOSTILE, "error": HOSTILE}])],
    )
    for payload in (view.message(d, NOW, channel="C0ORG"), view.preview(d, NOW)):
        assert_valid_message(payload)
        raw = json.dumps(payload, ensure_ascii=False)
        assert "<!channel>" not in raw and "<@U1>" not in raw and "<https://evil" not in raw
        assert "&amp;amp;" not in raw  # escaped once, not twice
        escaped = "&lt;!channel&gt; &amp; &lt;@U1&gt; &lt;https://evil.example|click&gt;"
        for part in ("ns:lead-time-for-changes:teams", "moved:", "concluded:", "stale:"):
            assert escaped in _texts(payload, part), part


def test_without_north_star_metrics_it_names_the_button_as_the_north_star_reply_labels_it(sample):
    _db, window, _north = sample
    said = _texts(view.message(OrgDigest(window, "UTC", []), NOW), "north_star")
    source = (Path(view.__file__).parents[2] / "templates" / "north_star.json.j2").read_text()
    [label] = re.findall(r'ids.SET_NORTH_STAR }}", "text": {"type": "plain_text", "text": "([^"]+)"', source)
    assert f"`/vsm northstar` (*{label}*)" in said


def test_the_preview_is_ephemeral_with_a_post_button(sample):
    db, window, north = sample
    payload = view.preview(OrgDigest(window, "UTC", north[:2]), NOW)
    assert_valid_message(payload)
    assert payload["response_type"] == "ephemeral" and "channel" not in payload
    last = payload["blocks"][-1]
    assert last["type"] == "actions"
    assert [e["action_id"] for e in last["elements"]] == [ids.POST_ORG_DIGEST]


def test_a_late_digest_says_when_it_was_due(sample):
    db, window, north = sample
    due = datetime(2026, 11, 23, 8, 0, tzinfo=zone("Europe/London"))
    payload = view.message(OrgDigest(window, "UTC", north[:1]), NOW, channel="C0ORG", late=due)
    [late] = _blocks(payload, "late")
    assert late["elements"][0]["text"] == "Sent late: it was due Mon 23 Nov 08:00 UTC."


@pytest.fixture(scope="module")
def thousand(sample):
    """A 1,000-team org with five North Star metrics, 3,000 moves with long reasons, 400 concluded
    experiments and 1,000 stale teams: every list longer than a message holds."""
    db, window, north = sample
    names = [f"team-{i:04d}" for i in range(1000)]
    wide = [replace(r, teams=[replace(r.teams[i % 3], team=n) for i, n in enumerate(names)]) for r in north]
    reason = "slower than usual in 3 of 4 recent weeks, ending the week of 16 Nov; " * 3
    d = OrgDigest(
        window,
        "UTC",
        wide,
        moved=[Moved(n, "C1", f"m{k}", f"Metric {k}", k % 2 == 0, reason) for n in names for k in range(3)],
        concluded=[_experiment(i, names[i], "x" * 300) for i in range(400)],
        stale=[
            Stale(
                n,
                "C1",
                [{"source": "jira", "as_of": None, "error": "e" * 300}, {"source": "github", "as_of": None}],
            )
            for n in names
        ],
    )
    return d, names


@pytest.mark.parametrize("surface", ["message", "preview"])
def test_a_thousand_teams_fit_slacks_limits_and_every_one_is_counted(thousand, surface):
    d, names = thousand
    payload = view.message(d, NOW, channel="C0ORG") if surface == "message" else view.preview(d, NOW)
    assert_valid_message(payload)
    assert len(payload["blocks"]) <= 50
    for b in payload["blocks"]:
        if b["type"] == "section":
            assert len(b["text"]["text"]) <= SECTION_TEXT
    for r in d.north_star:
        text = _texts(payload, f"ns:{r.metric.id}:teams")
        listed, more = _listed_and_more(text)
        assert listed and len(listed) + more == 1000, r.metric.id
        # The first teams by name, never a selection by figure.
        assert [line[2:].split(":")[0] for line in listed] == names[: len(listed)]
        assert f"…and {more} more teams: `vsm northstar` lists every team." in text
    for part, total in (("moved:", 3000), ("concluded:", 400), ("stale:", 1000)):
        listed, more = _listed_and_more(_texts(payload, part))
        assert listed and more and len(listed) + more == total, part
    if surface == "preview":
        assert payload["blocks"][-1]["elements"][0]["action_id"] == ids.POST_ORG_DIGEST


def test_pack_keeps_order_and_counts_what_it_leaves_out():
    lines = [f"• line {i} " + "x" * 90 for i in range(100)]
    drawn: list[str] = []

    def draw(line: str) -> str:
        drawn.append(line)
        return line

    chunks = pack(lines, draw, 2, lambda n: f"…and {n} more")
    assert len(chunks) == 2 and all(len(c) <= SECTION_TEXT for c in chunks)
    shown = [line for c in chunks for line in c.split("\n") if line.startswith("• ")]
    assert shown == lines[: len(shown)]
    assert chunks[-1].endswith(f"…and {100 - len(shown)} more")
    assert len(drawn) <= len(shown) + 1  # only the lines that fit are drawn
    assert pack(lines[:3], str, 2, lambda n: "never") == ["\n".join(lines[:3])]
    assert pack([], str, 2, lambda n: "never") == []
    # A trailer that does not fit beside the last line takes that line's place, and counts it.
    full = ["y" * (LINE_MAX - 1)] * 6  # five fill a section to 2,999 characters
    assert pack(full, str, 1, lambda n: f"…and {n} more") == ["\n".join(full[:4] + ["…and 2 more"])]
