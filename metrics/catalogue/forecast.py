"""Monte Carlo forecast (docs/metrics.md "Forecast"): resample the team's recent daily throughput.

Calendar: all days. The history is the 84 complete local days (12 weeks) before the as-of instant's
local day, zero-filled; the forecast covers whole local days from the first local midnight at or after
the as-of instant (mid-day, today's remainder is in neither: history and steps share one calendar of
whole days). Throughput counts what the ``throughput`` metric counts: delivered items (committed, done,
not discarded). Trials are seeded, so an answer can be reproduced; the seed is returned with it.

The trials run in plain Python: a `vsm metric forecast` process would otherwise spend more on
importing numpy (about 50 ms) than the catalogue figure's 3 x 10,000 trials cost here (a few ms).
Each daily sample is one byte of ``random.Random(seed).randbytes`` mapped onto the history by
``bytes.translate`` (bytes past the largest multiple of the history's length are dropped, so every day
is equally likely), and a trial's days are summed, or accumulated and bisected, by C loops. Only a
"when" whose trials would draw over ``_PY_CELLS`` days in all (about 1,000 items or more, or a slow team) runs
in numpy, imported then, with the empty-day shortcut of ``_trial_steps_numpy``.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from itertools import accumulate
from typing import TYPE_CHECKING

from metrics.catalogue.base import (
    CUSTOM,
    ITEMS,
    NOT_IN_SCOPE,
    Metric,
    Result,
    in_scope,
    low_sample_note,
    not_synced,
    series_weeks,
)
from metrics.catalogue.flow import FAMILY, delivered
from metrics.dataset import TeamData
from metrics.errors import VsmError
from metrics.timeutil import Window, iso, local_midnight

if TYPE_CHECKING:  # numpy is imported only for a large "when" (_trial_steps_numpy)
    import numpy as np

TRIALS = 10_000
HISTORY_DAYS = 84  # 12 weeks
CONFIDENCES = (0.50, 0.85, 0.95)
SEED = 20_240_501
HOW_MANY_DAYS = 14  # the catalogue figure: how many in the next two weeks
WHEN_ITEMS = 20  # and when 20 more will be done
_CHUNK_CELLS = 2_000_000  # bound on one draw matrix (trials x draws): memory stays small
_PY_CELLS = 2_000_000  # days a "when" draws in plain Python at most (about 40 ms); beyond, numpy
_BLOCK = 1 << 16  # daily samples drawn at a time in plain Python: memory stays small
NO_HISTORY = "no item was done in the last 12 weeks, so there is nothing to resample"


def no_forecast_reason(data: TeamData) -> str:
    """Why there is no forecast, most basic first: the team's scope names no Jira project, Jira has
    not been synced for it, or no item was done in the 12 weeks resampled. A team with nothing to
    resample because nothing was ever synced must hear that, not that it finished nothing."""
    if not in_scope(data.team, ITEMS):
        return NOT_IN_SCOPE[ITEMS]
    if data.history_start((ITEMS,)) is None:
        return not_synced(data, ITEMS)
    return NO_HISTORY


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

    def history(self, as_of: float) -> tuple[list[int], list[dict], date, date]:
        """The 84 local days before the as-of instant's day, zero-filled; the items behind them; the
        history's first day; and the forecast's first day (the first local midnight at or after as_of).
        """
        end_day = datetime.fromtimestamp(as_of, self.tz).date()
        first = end_day - timedelta(days=HISTORY_DAYS)
        midnight = local_midnight(end_day, self.tz).timestamp()
        first_step = end_day if midnight == as_of else end_day + timedelta(days=1)
        counts = [0] * HISTORY_DAYS
        items = []
        for at, day, key in self.done:
            if first <= day < end_day:
                counts[(day - first).days] += 1
                items.append({"key": key, "done": iso(at)})
        return counts, items, first, first_step


def _sampler(samples: Sequence[int], rng: random.Random) -> Callable[[int], Sequence[int]]:
    """``draw(k)``: k daily samples drawn uniformly with replacement from ``samples``.

    Up to 256 samples of 0..255 items (84 days of a team's throughput): one random byte per draw,
    bytes at or past the largest multiple of len(samples) dropped (so each sample is equally likely:
    252 of 256 bytes are kept for 84), the rest mapped onto the samples by ``bytes.translate``; a
    ``bytes`` object comes back. Otherwise ``random.choices``, about ten times slower.
    """
    n = len(samples)
    if not (n <= 256 and min(samples) >= 0 and max(samples) <= 255):
        return lambda k: rng.choices(samples, k=k)
    keep = 256 // n * n
    table = bytes(samples[b % n] for b in range(keep)) + bytes(256 - keep)
    dropped = bytes(range(keep, 256))

    def draw(k: int) -> bytes:
        out = rng.randbytes(k + k // 16 + 16).translate(table, dropped)  # enough, bar a rare top-up
        while len(out) < k:
            out += rng.randbytes(k - len(out) + 16).translate(table, dropped)
        return out[:k]

    return draw


def trial_totals(samples: Sequence[int], days: int, seed: int = SEED, trials: int = TRIALS) -> list[int]:
    """Per trial, the total of ``days`` daily samples drawn with replacement."""
    draw = _sampler([int(s) for s in samples], random.Random(seed))
    per_block = max(1, _BLOCK // days)
    totals: list[int] = []
    while len(totals) < trials:
        n = min(per_block, trials - len(totals)) * days
        drawn = draw(n)
        totals += [sum(drawn[i : i + days]) for i in range(0, n, days)]
    return totals


def trial_steps(samples: Sequence[int], n_items: int, seed: int = SEED, trials: int = TRIALS) -> list[int]:
    """Per trial, the number of days drawn until the total reaches ``n_items``.

    Day by day in plain Python while the trials would draw at most ``_PY_CELLS`` days in all (by
    Wald's identity a trial draws (N + overshoot) / mean days, the overshoot under the largest
    sample); beyond, in numpy with the empty-day shortcut (``_trial_steps_numpy``). The two draw
    from one distribution, not one sequence: a seed reproduces an answer, not the other engine's.
    """
    samples = [int(s) for s in samples]
    total = sum(samples)
    if total <= 0:
        raise ValueError("all-zero samples: no forecast")
    days_per_trial = (n_items + max(samples) - 1) * len(samples) / total
    if trials * days_per_trial > _PY_CELLS:
        return _trial_steps_numpy(samples, n_items, seed, trials).tolist()
    return _trial_steps_python(samples, n_items, seed, trials, days_per_trial)


def _trial_steps_python(
    samples: list[int], n_items: int, seed: int, trials: int, days_per_trial: float
) -> list[int]:
    """Day by day, as docs/metrics.md says: one stream of daily samples, each trial taking the days
    that follow the previous trial's last one until its total reaches N (the running total is
    accumulated and bisected, block by block, so the per-day work stays in C)."""
    draw = _sampler(samples, random.Random(seed))
    steps: list[int] = []
    block = min(_BLOCK, math.ceil(trials * days_per_trial * 1.05) + 64)  # the whole stream, if small
    need, taken = n_items, 0  # what the current trial still needs, and the days it drew before this block
    while len(steps) < trials:
        running = list(accumulate(draw(block)))
        i, base = 0, 0  # the current trial's first day in this block, and the running total before it
        while True:
            j = bisect_left(running, base + need, i)  # the day the trial's total reaches N
            if j == len(running):  # not in this block: carry the trial over
                taken += len(running) - i
                need -= running[-1] - base
                break
            steps.append(taken + j - i + 1)
            if len(steps) == trials:
                break
            i, base, need, taken = j + 1, running[j], n_items, 0
    return steps


def _trial_steps_numpy(samples: list[int], n_items: int, seed: int, trials: int) -> np.ndarray:
    """``trial_steps`` for many days per trial, vectorised.

    Drawing day by day until the total reaches N is, in distribution, the same as drawing only the
    non-zero days until the total reaches N (k draws, k <= N) and adding the zero days between them:
    each draw is non-zero with probability q, so the zero days number NegBin(k, q). That keeps a slow
    team (one item a month, N = 20) as fast as a busy one, with the same answer.
    """
    import numpy as np

    array = np.asarray(samples, dtype=np.int32)
    nonzero = array[array > 0]
    q = len(nonzero) / len(array)
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


def quantile(values: Sequence[int], c: float) -> float:
    """The c quantile of ``values``, interpolated linearly between order statistics (numpy's
    default, ``np.quantile``; R's type 7)."""
    ordered = sorted(values)
    h = (len(ordered) - 1) * c
    lo = math.floor(h)
    hi = min(lo + 1, len(ordered) - 1)
    if ordered[lo] == ordered[hi]:
        return float(ordered[lo])
    return ordered[lo] + (h - lo) * (ordered[hi] - ordered[lo])


def _history_info(counts: list[int], first: date) -> dict:
    return {
        "since": first.isoformat(),
        "until": (first + timedelta(days=HISTORY_DAYS)).isoformat(),
        "days": HISTORY_DAYS,
        "done": sum(counts),
    }


def _how_many(
    counts: list[int], first: date, first_step: date, days: int, seed: int, trials: int, why: str = NO_HISTORY
) -> dict:
    out = {
        "days": days,
        "from": first_step.isoformat(),
        "by": (first_step + timedelta(days=days - 1)).isoformat(),
        "history": _history_info(counts, first),
        "seed": seed,
        "trials": trials,
    }
    if not any(counts):
        return out | {_key(c): None for c in CONFIDENCES} | {"note": why}
    totals = sorted(trial_totals(counts, days, seed, trials))
    return out | {_key(c): math.floor(quantile(totals, 1 - c)) for c in CONFIDENCES}


def _when(
    counts: list[int],
    first: date,
    first_step: date,
    n_items: int,
    seed: int,
    trials: int,
    why: str = NO_HISTORY,
) -> dict:
    out = {
        "items": n_items,
        "from": first_step.isoformat(),
        "history": _history_info(counts, first),
        "seed": seed,
        "trials": trials,
    }
    if not any(counts):
        none = {_key(c): None for c in CONFIDENCES}
        return out | none | {"dates": dict(none), "note": why}
    steps = sorted(trial_steps(counts, n_items, seed, trials))
    answers = {_key(c): math.ceil(quantile(steps, c)) for c in CONFIDENCES}
    dates = {k: (first_step + timedelta(days=n - 1)).isoformat() for k, n in answers.items()}
    return out | answers | {"dates": dates}


def how_many(
    data: TeamData, days: int, now: float | None = None, *, seed: int = SEED, trials: int = TRIALS
) -> dict:
    """How many items will be done in the next ``days`` local days: at confidence c, the (1 − c)
    percentile of trial totals, rounded down ("at least 12 items, 85%").

    Returns ``{"days", "from", "by", "p50", "p85", "p95", "seed", "trials", "history"}`` (local
    dates, ``by`` inclusive); the answers are None, with a ``note`` saying why (``no_forecast_reason``),
    when no item was done in the history (all-zero samples: no forecast).
    """
    if days < 1:
        raise VsmError(f"forecast: the number of days must be at least 1 (got {days})")
    as_of = data.now if now is None else float(now)
    counts, _items, first, first_step = DailyThroughput(data, as_of).history(as_of)
    why = NO_HISTORY if any(counts) else no_forecast_reason(data)
    return _how_many(counts, first, first_step, days, seed, trials, why)


def when(
    data: TeamData, n_items: int, now: float | None = None, *, seed: int = SEED, trials: int = TRIALS
) -> dict:
    """When ``n_items`` more items will be done: at confidence c, the c percentile of the days the
    trials needed, rounded up, and the local date that many days from ``from`` ends on.

    Returns ``{"items", "from", "p50", "p85", "p95", "dates": {"p50": "YYYY-MM-DD", ..}, "seed",
    "trials", "history"}``; answers are None, with a ``note`` saying why (``no_forecast_reason``),
    when no item was done in the history.
    """
    if n_items < 1:
        raise VsmError(f"forecast: the number of items must be at least 1 (got {n_items})")
    as_of = data.now if now is None else float(now)
    counts, _items, first, first_step = DailyThroughput(data, as_of).history(as_of)
    why = NO_HISTORY if any(counts) else no_forecast_reason(data)
    return _when(counts, first, first_step, n_items, seed, trials, why)


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
    history = (ITEMS,)  # what it resamples: weeks before the items' history are unknown, not idle
    nothing = NO_HISTORY

    def compute(self, data: TeamData, window: Window) -> Result:
        tz, now = window.tz, data.now
        at, prev_at = min(window.end, now), min(window.start, now)
        weeks = series_weeks(window, now)
        daily = DailyThroughput(data, min(prev_at, weeks[0][0]))
        counts, done, first, first_step = daily.history(at)
        why = NO_HISTORY if any(counts) else no_forecast_reason(data)
        figure = _how_many(counts, first, first_step, HOW_MANY_DAYS, SEED, TRIALS, why)
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
            sample_size=sum(counts),
            previous=_figure(previous),
            series=series,
            items=done,
            extra={
                "as_of": iso(at),
                "seed": SEED,
                "trials": TRIALS,
                "days": HOW_MANY_DAYS,
                "from": figure["from"],
                "by": figure["by"],
                "history": figure["history"],
                "when": _when(counts, first, first_step, WHEN_ITEMS, SEED, TRIALS, why),
            },
        )
        result.notes += low_sample_note(result)
        # Without a forecast, ``no_data_reason`` says why (no Jira project, never synced, nothing done);
        # the previous forecast is known only if its 12 weeks lie in the items' history.
        since = local_midnight(prev_first, tz).timestamp()
        return self.described(result, data, since=since)


def _figure(answer: dict) -> dict | None:
    v = {_key(c): answer[_key(c)] for c in CONFIDENCES}
    return None if v["p50"] is None else v


METRICS: list[Metric] = [Forecast()]
