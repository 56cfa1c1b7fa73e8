"""A digest stays a valid Slack message however many figures and signals it carries."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
from slackkit import NOW, assert_valid_message

from bot.render import digest as digest_view
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
    assert len(signals["text"]["text"]) == digest_view.SECTION_TEXT


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
    assert quality.startswith("Data quality: unmapped statuses") and len(quality) == digest_view.SECTION_TEXT
