"""Monte Carlo forecast (docs/metrics.md "Forecast"): resample the team's recent daily throughput.

Calendar: all days. The history is the 84 complete local days (12 weeks) before the as-of instant's
local day, zero-filled; the forecast covers whole local days from the first local midnight at or after
the as-of instant (mid-day, today's remainder is in neither: history and steps share one calendar of
whole days). Throughput counts what the ``throughput`` metric counts: delivered items (committed, done,
not discarded). Trials are vectorised with numpy and seeded, so an answer can be reproduced; the seed
is returned with it.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from metrics.catalogue.base import CUSTOM, Metric, Result, low_sample_note, series_weeks
from metrics.catalogue.flow import FAMILY, delivered
from metrics.dataset import TeamData
from metrics.errors import VsmError
from metrics.timeutil import Window, iso, local_midnight

if TYPE_CHECKING:  # numpy is imported where a forecast is computed: not on every command's start-up
    import numpy as np

TRIALS = 10_000
HISTORY_DAYS = 84  # 12 weeks
CONFIDENCES = (0.50, 0.85, 0.95)
SEED = 20_240_501
HOW_MANY_DAYS = 14  # the catalogue figure: how many in the next two weeks
WHEN_ITEMS = 20  # and when 20 more will be done
_CHUNK_CELLS = 2_000_000  # bound on one draw matrix (trials x draws): memory stays small
NO_HISTORY = "no items done in the 12 weeks before: no forecast"


def _key(c: float) -> str:
    return f"p{round(c * 100)}"


class DailyThroughput:
    """Delivered items per local day (what ``throughput`` counts), loaded once for many as-of instants."""

    def __init__(self, data: TeamData, earliest: float):
        self.tz = data.tz
        first = datetime.fromtimestamp(earliest, self.tz).date() - timedelta(days=HISTORY_DAYS)
        start = local_midnight(first, self.tz).timestamp()
        self.done: list[tuple[float, date, str]] = sorted(
            (it.flow.done, datetime.fromtimestamp(it.flow.done, self.tz).date(), it.key)
            for it in data.items(start)
            if delivered(it) and it.flow.done >= start
        )

    def history(self, as_of: float) -> tuple[np.ndarray, list[dict], date, date]:
        """The 84 local days before the as-of instant's day, zero-filled; the items behind them; the
        history's first day; and the forecast's first day (the first local midnight at or after as_of).
        """
        end_day = datetime.fromtimestamp(as_of, self.tz).date()
        first = end_day - timedelta(days=HISTORY_DAYS)
        midnight = local_midnight(end_day, self.tz).timestamp()
        first_step = end_day if midnight == as_of else end_day + timedelta(days=1)
        import numpy as np

        counts = np.zeros(HISTORY_DAYS, dtype=np.int32)
        items = []
        for at, day, key in self.done:
            if first <= day < end_day:
                counts[(day - first).days] += 1
                items.append({"key": key, "done": iso(at)})
        return counts, items, first, first_step


def trial_totals(samples: np.ndarray, days: int, seed: int = SEED, trials: int = TRIALS) -> np.ndarray:
    """Per trial, the total of ``days`` daily samples drawn with replacement."""
    import numpy as np

    rng = np.random.default_rng(seed)
    samples = np.asarray(samples, dtype=np.int32)
    return samples[rng.integers(0, len(samples), size=(trials, days), dtype=np.int32)].sum(axis=1)


def trial_steps(samples: np.ndarray, n_items: int, seed: int = SEED, trials: int = TRIALS) -> np.ndarray:
    """Per trial, the number of days drawn until the total reaches ``n_items``.

    Drawing day by day until the total reaches N is, in distribution, the same as drawing only the
    non-zero days until the total reaches N (k draws, k <= N) and adding the zero days between them:
    each draw is non-zero with probability q, so the zero days number NegBin(k, q). That keeps a slow
    team (one item a month, N = 20) as fast as a busy one, with the same answer.
    """
    import numpy as np

    samples = np.asarray(samples, dtype=np.int32)
    nonzero = samples[samples > 0]
    if not len(nonzero):
        raise ValueError("all-zero samples: no forecast")
    q = len(nonzero) / len(samples)
    rng = np.random.default_rng(seed)
    draws = np.zeros(trials, dtype=np.int64)
    totals = np.zeros(trials, dtype=np.int64)
    pending = np.arange(trials)
    width = max(1, math.ceil(1.25 * n_items / float(nonzero.mean())))
    while len(pending):
        width = max(1, min(width, n_items, _CHUNK_CELLS // len(pending)))
        drawn = nonzero[rng.integers(0, len(nonzero), size=(len(pending), width), dtype=np.int32)]
        running = drawn.cumsum(axis=1, dtype=np.int64) + totals[pending, None]
        reached = running >= n_items
        hit = reached.any(axis=1)
        draws[pending[hit]] += reached[hit].argmax(axis=1) + 1
        draws[pending[~hit]] += width
        totals[pending] = running[:, -1]
        pending = pending[~hit]
        width *= 2
    return draws + (rng.negative_binomial(draws, q) if q < 1 else 0)


def _history_info(counts: np.ndarray, first: date) -> dict:
    return {
        "since": first.isoformat(),
        "until": (first + timedelta(days=HISTORY_DAYS)).isoformat(),
        "days": HISTORY_DAYS,
        "done": int(counts.sum()),
    }


def _how_many(counts: np.ndarray, first: date, first_step: date, days: int, seed: int, trials: int) -> dict:
    out = {
        "days": days,
        "from": first_step.isoformat(),
        "by": (first_step + timedelta(days=days - 1)).isoformat(),
        "history": _history_info(counts, first),
        "seed": seed,
        "trials": trials,
    }
    if not counts.any():
        return out | {_key(c): None for c in CONFIDENCES} | {"note": NO_HISTORY}
    import numpy as np

    totals = trial_totals(counts, days, seed, trials)
    return out | {_key(c): math.floor(np.quantile(totals, 1 - c)) for c in CONFIDENCES}


def _when(counts: np.ndarray, first: date, first_step: date, n_items: int, seed: int, trials: int) -> dict:
    out = {
        "items": n_items,
        "from": first_step.isoformat(),
        "history": _history_info(counts, first),
        "seed": seed,
        "trials": trials,
    }
    if not counts.any():
        none = {_key(c): None for c in CONFIDENCES}
        return out | none | {"dates": dict(none), "note": NO_HISTORY}
    import numpy as np

    steps = trial_steps(counts, n_items, seed, trials)
    answers = {_key(c): math.ceil(np.quantile(steps, c)) for c in CONFIDENCES}
    dates = {k: (first_step + timedelta(days=n - 1)).isoformat() for k, n in answers.items()}
    return out | answers | {"dates": dates}


def how_many(
    data: TeamData, days: int, now: float | None = None, *, seed: int = SEED, trials: int = TRIALS
) -> dict:
    """How many items will be done in the next ``days`` local days: at confidence c, the (1 − c)
    percentile of trial totals, rounded down ("at least 12 items, 85%").

    Returns ``{"days", "from", "by", "p50", "p85", "p95", "seed", "trials", "history"}`` (local
    dates, ``by`` inclusive); the answers are None, with a ``note``, when no item was done in the
    history (all-zero samples: no forecast).
    """
    if days < 1:
        raise VsmError(f"forecast: the number of days must be at least 1 (got {days})")
    as_of = data.now if now is None else float(now)
    counts, _items, first, first_step = DailyThroughput(data, as_of).history(as_of)
    return _how_many(counts, first, first_step, days, seed, trials)


def when(
    data: TeamData, n_items: int, now: float | None = None, *, seed: int = SEED, trials: int = TRIALS
) -> dict:
    """When ``n_items`` more items will be done: at confidence c, the c percentile of the days the
    trials needed, rounded up, and the local date that many days from ``from`` ends on.

    Returns ``{"items", "from", "p50", "p85", "p95", "dates": {"p50": "YYYY-MM-DD", ..}, "seed",
    "trials", "history"}``; answers are None, with a ``note``, when no item was done in the history.
    """
    if n_items < 1:
        raise VsmError(f"forecast: the number of items must be at least 1 (got {n_items})")
    as_of = data.now if now is None else float(now)
    counts, _items, first, first_step = DailyThroughput(data, as_of).history(as_of)
    return _when(counts, first, first_step, n_items, seed, trials)


class Forecast(Metric):
    """The catalogue figure: how many items in the next 14 days, as of min(window end, now).

    value = ``{"p50", "p85", "p95"}`` (None with no done item in the history); previous = the same
    forecast as of the window's start; items = the done items the forecast resamples; series = items
    done per week over the window (the throughput a forecast resamples: re-running 10,000 trials per
    week would cost more than the figure); extra = seed, trials, dates, history and the "when will 20
    more be done" answer.
    """

    id = "forecast"
    name = "Monte Carlo forecast"
    unit = "items / date"
    better = "—"
    family = FAMILY
    definition = (
        "resample daily throughput of the last 12 weeks (10,000 seeded trials): "
        "how many in the next 14 days, when 20 more will be done; 50/85/95%"
    )
    kind = CUSTOM

    def compute(self, data: TeamData, window: Window) -> Result:
        tz, now = window.tz, data.now
        at, prev_at = min(window.end, now), min(window.start, now)
        weeks = series_weeks(window, now)
        daily = DailyThroughput(data, min(prev_at, weeks[0][0]))
        counts, done, first, first_step = daily.history(at)
        figure = _how_many(counts, first, first_step, HOW_MANY_DAYS, SEED, TRIALS)
        prev_counts, _items, prev_first, prev_step = daily.history(prev_at)
        previous = _how_many(prev_counts, prev_first, prev_step, HOW_MANY_DAYS, SEED, TRIALS)
        series = []
        for s, e, complete in weeks:
            n = float(sum(1 for t, _d, _k in daily.done if s <= t < e)) if s < now else None
            label = datetime.fromtimestamp(s, tz).date().isoformat()
            series.append({"week": label, "value": n} | ({} if complete else {"partial": True}))
        result = Result(
            metric=self.id,
            team=data.team.name,
            window=window,
            value=_figure(figure),
            unit=self.unit,
            sample_size=int(counts.sum()),
            previous=_figure(previous),
            series=series,
            items=done,
            notes=[figure["note"]] if "note" in figure else [],
            extra={
                "as_of": iso(at),
                "seed": SEED,
                "trials": TRIALS,
                "days": HOW_MANY_DAYS,
                "from": figure["from"],
                "by": figure["by"],
                "history": figure["history"],
                "when": _when(counts, first, first_step, WHEN_ITEMS, SEED, TRIALS),
            },
        )
        result.notes += low_sample_note(result)
        return result


def _figure(answer: dict) -> dict | None:
    v = {_key(c): answer[_key(c)] for c in CONFIDENCES}
    return None if v["p50"] is None else v


METRICS: list[Metric] = [Forecast()]
