"""``/vsm`` text -> a command, without touching anything: safe to call on any input.

Every reply to bad input says what was understood, so the user can fix one word instead of guessing.
Metrics are found as people name them (``cycle time``, ``CT``, ``Cycle_Time``: see
``metrics.catalogue.aliases``), and what is not found is answered with the closest names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from metrics.catalogue.aliases import FAMILY_TITLES, leading_name, suggest
from metrics.errors import VsmError
from metrics.timeutil import parse_period, zone

_COUNT = re.compile(r"[0-9]{1,6}", re.ASCII)
SIMPLE = ("help", "metrics", "digest", "settings", "northstar", "teams", "experiment")
MAX_FORECAST_ITEMS = 10_000


@dataclass(frozen=True)
class Command:
    name: str  # help metrics digest settings northstar teams experiment forecast metric error
    metric: str | None = None
    period: str | None = None
    chart: bool = False
    items: int | None = None
    error: str | None = None  # plain text: the reply escapes it
    family: str | None = None  # with "metrics": only this family's metrics (`/vsm dora`)


def _shown(word: str) -> str:
    word = "".join(ch for ch in word if ch.isprintable())
    return word if len(word) <= 30 else word[:29] + "…"


def parse(text: str | None) -> Command:
    words = (text or "").split()
    if not words:
        return Command("help")
    head, rest = words[0].lower(), words[1:]
    if head in SIMPLE:
        if rest:
            return Command("error", error=f"`{head}` takes nothing after it (got `{_shown(rest[0])}`)")
        return Command(head)
    if head == "forecast":
        # ASCII digits, and few of them: "²".isdigit() is True but int("²") raises, and int() refuses
        # more than 4,300 digits. "forecast 20 items" says the unit as people do: the word is allowed.
        if len(rest) == 2 and rest[1].lower() in ("item", "items"):
            rest = rest[:1]
        if len(rest) != 1 or not _COUNT.fullmatch(rest[0]) or not 1 <= int(rest[0]) <= MAX_FORECAST_ITEMS:
            return Command(
                "error",
                error=f"`forecast` takes a number of items, 1 to {MAX_FORECAST_ITEMS:,}: `forecast 20` or `forecast 20 items`",
            )
        return Command("forecast", items=int(rest[0]))
    found = leading_name(words)
    if found is None:
        return _unknown(words)
    kind, ident, used = found
    if kind == "family":
        return _family(ident, words, used)
    return _metric(ident, words[used:])


def _family(family: str, words: list[str], used: int) -> Command:
    """``/vsm dora``: the family's metrics, listed (what a lead asking "what is there on DORA" wants
    first; each line says how to ask for its figure). Nothing may follow but a mistyped metric."""
    rest = words[used:]
    if not rest:
        return Command("metrics", family=family)
    close = [s for s in suggest(words, extra=SIMPLE + ("forecast",)) if s != family.replace("_", "-")]
    if close:
        return Command("error", error=f"I don't know `{_shown(' '.join(words))}`: {_did_you_mean(close)}")
    return Command(
        "error",
        error=f"understood `{_shown(' '.join(words[:used]))}` (the {FAMILY_TITLES[family]} metrics), "
        f"but not `{_shown(rest[0])}`: ask for one metric with a period, e.g. `/vsm cycle-time 90d`",
    )


def _metric(metric: str, rest: list[str]) -> Command:
    """A metric's figure: a period and ``chart``, in any order, after its name."""
    period, chart = None, False
    for word in rest:
        w = word.lower()
        if w == "chart" and not chart:
            chart = True
            continue
        if period is None:
            try:
                parse_period(w, zone("UTC"), datetime.now(UTC))
            except VsmError:
                return Command(
                    "error",
                    metric=metric,
                    error=f"understood `{metric}`, but not the period `{_shown(word)}`: use 7d, 30d, 90d, 12w or 2026Q3",
                )
            period = w
            continue
        return Command(
            "error", metric=metric, error=f"understood `{metric} {period}`, but not `{_shown(word)}`"
        )
    return Command("metric", metric=metric, period=period, chart=chart)


def _did_you_mean(names: list[str]) -> str:
    quoted = [f"`{n}`" for n in names]
    return (
        "did you mean "
        + (" or ".join(quoted) if len(quoted) < 3 else ", ".join(quoted[:-1]) + " or " + quoted[-1])
        + "?"
    )


def _unknown(words: list[str]) -> Command:
    """Neither a command nor a metric: the closest ids and commands, else a pointer to the list."""
    close = suggest(words, extra=SIMPLE + ("forecast",))
    hint = _did_you_mean(close) if close else "`/vsm help` lists what I know"
    return Command("error", error=f"I don't know `{_shown(words[0])}`: {hint}")
