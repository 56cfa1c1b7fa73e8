"""A digest stays a valid Slack message however many figures and signals it carries."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
from slackkit import NOW, assert_valid_message

from bot.render import digest as digest_view
from bot.render.templates import SECTION_TEXT
from metrics import experiments as ex
from metrics.digest import Digest, build_digest
from metrics.store import open_db
from metrics.teams import list_teams


@pytest.fixture(scope="module")
def sample_digest(sample_db):
    db = open_db(sample_db)
    try:
        return build_digest(db, list_teams(db)[0], NOW), NOW
    finally:
        db.conn.close()


def _widen(d: Digest, copies: int, signal: str | None = None) -> Digest:
    """The digest's determinants repeated ``copies`` times under distinct metric ids."""
    figures = []
    for k in range(copies):
        for f in d.determinants:
            metric = copy.copy(f.metric)
            metric.id = f"{f.metric.id}-{k}"
            result = replace(f.result, signal=signal) if signal else f.result
            figures.append(replace(f, metric=metric, result=result))
    return replace(d, determinants=figures)


def test_too_many_figures_keep_the_buttons_and_point_to_the_rest(sample_digest):
    d, now = sample_digest
    wide = _widen(d, 14)
    assert len(wide.figures) > 50
    payload = digest_view.message(wide, now)
    assert_valid_message(payload)
    ids = [b.get("block_id") for b in payload["blocks"]]
    assert ids[-1] == "digest_actions" and "signals" in ids and "more_figures" in ids
    assert ids.index("more_figures") == max(i for i, b in enumerate(ids) if str(b).startswith("fig:")) + 1


def test_every_figure_signalling_stays_within_the_section_limit(sample_digest):
    d, now = sample_digest
    wide = _widen(d, 8, signal="a shift of 9 points above the mean, the longest run since records began " * 2)
    payload = digest_view.message(wide, now)
    assert_valid_message(payload)
    signals = next(b for b in payload["blocks"] if b.get("block_id") == "signals")
    assert len(signals["text"]["text"]) == SECTION_TEXT


def test_many_sources_and_a_long_shared_note_stay_within_a_context_block(sample_digest):
    d, now = sample_digest
    fresh = [{"source": f"jira-{k}", "as_of": "2026-11-30 08:00 UTC", "error": k == 3} for k in range(12)]
    note = "unmapped statuses ignored: " + ", ".join(f"Status {k}" for k in range(400))
    figures = [replace(f, result=replace(f.result, notes=[note])) for f in d.determinants]
    payload = digest_view.message(replace(d, freshness=fresh, determinants=figures), now)
    assert_valid_message(payload)
    blocks = {b.get("block_id"): b for b in payload["blocks"]}
    (freshness,) = blocks["freshness"]["elements"]
    assert "jira-0 data as of" in freshness["text"] and "jira-11 data as of" in freshness["text"]
    assert "jira-3 data as of 2026-11-30 08:00 UTC (last sync failed)" in freshness["text"]
    quality = blocks["quality"]["elements"][0]["text"]
    assert quality.startswith("Data quality: unmapped statuses") and len(quality) == SECTION_TEXT


def _experiments(d: Digest, running: int, concluded: int) -> Digest:
    """``d`` with ``running`` experiments in progress and ``concluded`` ones, each with the longest
    text a team may type, full of characters mrkdwn must escape."""
    change = ("<!channel> & <b>" * 40)[: ex.MAX_CHANGE]
    start = NOW.timestamp() - 20 * 86400

    def exp(i: int, **kw) -> ex.Experiment:
        return ex.Experiment(i, d.team.name, "cycle-time", change, 12, "UTC", start, start + 84 * 86400, **kw)

    side = {"since": "2026-10-01T00:00:00Z", "until": "2026-11-01T00:00:00Z", "sample_size": 40}
    progress = [
        ex.Progress(exp(i), side | {"value": {"p50": 30.0, "p85": 90.0}}, side | {"value": None}, False, 20.0)
        for i in range(1, running + 1)
    ]
    done = [exp(1000 + i, state="stopped", verdict=ex.NO_CHANGE) for i in range(concluded)]
    return replace(d, experiments=progress, concluded=done)


@pytest.mark.parametrize("copies", [1, 14])
def test_many_experiments_with_long_texts_keep_the_digest_valid(sample_digest, copies):
    d, now = sample_digest
    payload = digest_view.message(_experiments(_widen(d, copies), 15, 40), now)
    assert_valid_message(payload)
    ids = [b.get("block_id") for b in payload["blocks"]]
    assert ids[-1] == "digest_actions" and "signals" in ids
    running = [i for i in ids if str(i).startswith("exp:")]
    assert running == [f"exp:{i}" for i in range(1, digest_view.RUNNING_SHOWN + 1)]
    blocks = {b.get("block_id"): b for b in payload["blocks"]}
    more = blocks["more_experiments"]["elements"][0]["text"]
    assert more.startswith(f"…and {15 - digest_view.RUNNING_SHOWN} more running")
    for i in running:
        assert blocks[i]["accessory"]["action_id"] == "stop_experiment"
        assert (
            "<!channel>" not in blocks[i]["text"]["text"]
            and "&lt;!channel&gt; &amp; &lt;b&gt;" in blocks[i]["text"]["text"]
        )
    concluded = blocks["concluded"]["text"]["text"]
    assert len(concluded) == SECTION_TEXT and concluded.endswith("…")
    # The preview keeps its button.
    preview = digest_view.preview(_experiments(_widen(d, copies), 15, 40), now, d.team)
    assert_valid_message(preview)
    assert preview["blocks"][-1]["block_id"] == "preview_actions"
