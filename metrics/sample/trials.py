"""The sample's improvement experiments, run through ``metrics.experiments`` as a team and the
scheduler would run them: each started at its instant (``Trial.started``), then every one whose end
has passed by the history's end concluded at its end, by the real test on the sample's data. Nothing
here states a verdict or a state: what the demo shows is what the model makes of the data."""

from __future__ import annotations

from datetime import date

import sqlite_utils

from metrics import experiments
from metrics.sample.base import cutoff_of
from metrics.sample.profiles import SAMPLE_EXPERIMENTS


def run_trials(db: sqlite_utils.Database, end: date) -> list[experiments.Experiment]:
    """Start the sample experiments on a seeded sample database ending before ``end``, and conclude
    those due by then at their end, as the scheduler's verdict job does. Their settings-log rows
    carry the wall clock, as every audit row does; everything else depends on ``end`` only.
    Returns them in the order they were started."""
    cutoff = cutoff_of(end)
    started = [
        experiments.start(db, t.team, t.metric, t.change, t.weeks, t.who, t.started(cutoff))
        for t in SAMPLE_EXPERIMENTS
    ]
    for exp in experiments.due(db, cutoff):
        experiments.conclude(db, exp, exp.ends)
    return [experiments.get(db, e.id) for e in started]  # type: ignore[misc]
