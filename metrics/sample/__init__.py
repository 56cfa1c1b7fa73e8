"""A deterministic, realistic 26-week history for three teams: what ``vsm demo`` and the tests run on.

Everything is written the way a sync would write it: raw payloads in each tool's wire format (Jira
search/jql issues with changelogs and Agile sprints, GitHub pulls/reviews/commits/timeline/deployments/
compares, PagerDuty incidents), then ``rebuild`` derives the normalised tables. So the demo exercises
the same normalisation path as a real sync, and a change there shows in the demo.

The history is a small simulation, seeded (``random.Random(seed)``) and anchored at ``end``: every
instant is before ``end`` 00:00 UTC, so nothing lies in the future on that day. What it contains:

- work items with back-moves, reopenings, skipped stages, items closed without flow, *Won't Do*,
  detours through an unmapped status and flagged impediments;
- two Scrum teams with 2-week sprints, scope added and removed after start, items created inside a
  sprint and carry-over; one Kanban team without a committed stage;
- PRs linked to items by title or branch, drafts made ready, reviews (self-reviews, bots, dismissed,
  pending), bot-authored PRs, reverts and hotfixes, and one PR with hostile text;
- production deployments (staging too) with failures, re-runs and redeploys, compare payloads that
  link the PRs, and incidents after some deployments (some still open);
- a shift: the ``payments`` team's reviews slow down sharply in the last 5 weeks.

``build_sample`` writes no teams: the caller seeds ``sample_teams()`` and ``SAMPLE_ORG`` (their
change log carries wall-clock times, which would make two builds differ), or calls ``seed_sample``,
which also runs the sample's improvement experiments (``trials``): one that ran its course and was
concluded by the real test, one still running.
"""

from __future__ import annotations

import random
from datetime import date

import sqlite_utils

from metrics.errors import VsmError
from metrics.experiments import Experiment
from metrics.normalise import rebuild
from metrics.sample.base import cutoff_of
from metrics.sample.delivery import DeliverySimulation
from metrics.sample.profiles import (
    CATEGORIES,
    PROFILES,
    SAMPLE_EXPERIMENTS,
    SAMPLE_ORG,
    SAMPLE_SOURCES,
    SEED,
    STATUSES,
    WEEKS,
    Trial,
    sample_teams,
)
from metrics.sample.trials import run_trials
from metrics.sample.wire import Wire
from metrics.sample.work import WorkSimulation
from metrics.store.raw import save_raw
from metrics.store.tx import transaction
from metrics.teams import seed_from_config
from metrics.timeutil import iso


def simulate(end: date, seed: int = SEED) -> Wire:
    """Run the whole simulation; the result renders every payload."""
    rng = random.Random(seed)
    cutoff = cutoff_of(end)
    work = WorkSimulation(rng, cutoff)
    for p in PROFILES:
        if p.board is None:
            work.kanban(p)
        else:
            work.scrum(p)
    work.items.sort(key=lambda it: (it.created, it.profile.project))
    counters: dict[str, int] = {}
    for n, item in enumerate(work.items):
        counters[item.profile.project] = counters.get(item.profile.project, 0) + 1
        item.key = f"{item.profile.project}-{counters[item.profile.project]}"
        item.id = str(10100 + n)
    delivery = DeliverySimulation(rng, cutoff)
    delivery.run(work.items)
    return Wire(cutoff, work.items, work.sprints, delivery)


def build_sample(db: sqlite_utils.Database, end: date, seed: int = SEED) -> dict[str, int]:
    """Write the sample history ending before ``end`` (raw payloads, then ``rebuild``).

    The same ``end`` and ``seed`` give the same database content, byte for byte (``fetched_at`` is
    the history's end, not the wall clock). Returns the number of payloads normalised per source.
    """
    wire = simulate(end, seed)
    fetched = iso(wire.cutoff)
    with transaction(db):
        for source, kind, external_id, updated_at, payload in wire.raw_rows():
            save_raw(db, source, kind, external_id, updated_at, payload, fetched_at=fetched)
        return rebuild(db, SAMPLE_SOURCES)


def seed_sample(db: sqlite_utils.Database, end: date) -> list[Experiment]:
    """Seed the sample teams and org settings on a database ``build_sample`` wrote for ``end``, then
    run the sample's experiments (``run_trials``): what ``vsm demo`` shows. Returns the experiments."""
    warnings = seed_from_config(db, sample_teams(), SAMPLE_ORG)
    if warnings:  # the sample's own settings are checked by its tests: a warning here is a bug
        raise VsmError("; ".join(warnings))
    return run_trials(db, end)


__all__ = [
    "CATEGORIES",
    "PROFILES",
    "SAMPLE_EXPERIMENTS",
    "SAMPLE_ORG",
    "SAMPLE_SOURCES",
    "SEED",
    "STATUSES",
    "WEEKS",
    "Trial",
    "Wire",
    "build_sample",
    "run_trials",
    "sample_teams",
    "seed_sample",
    "simulate",
]
