"""``/vsm`` text -> a command, without touching anything: safe to call on any input.

Every reply to bad input says what was understood, so the user can fix one word instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from metrics.catalogue import CATALOGUE
from metrics.errors import VsmError
from metrics.timeutil import parse_period, zone

_COUNT = re.compile(r"[0-9]{1,6}", re.ASCII)
SIMPLE = ("help", "metrics", "digest", "settings", "northstar")
MAX_FORECAST_ITEMS = 10_000


@dataclass(frozen=True)
class Command:
    name: str  # help | metrics | digest | settings | northstar | forecast | metric | error
    metric: str | None = None
    period: str | None = None
    chart: bool = False
    items: int | None = None
    error: str | None = None  # plain text: the reply escapes it


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
        # more than 4,300 digits.
        if len(rest) != 1 or not _COUNT.fullmatch(rest[0]) or not 1 <= int(rest[0]) <= MAX_FORECAST_ITEMS:
            return Command(
                "error",
                error=f"`forecast` takes a number of items, 1 to {MAX_FORECAST_ITEMS:,}: `forecast 20`",
            )
        return Command("forecast", items=int(rest[0]))
    if head in CATALOGUE:
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
                        metric=head,
                        error=f"understood `{head}`, but not the period `{_shown(word)}`: use 7d, 30d, 90d, 12w or 2026Q3",
                    )
                period = w
                continue
            return Command(
                "error", metric=head, error=f"understood `{head} {period}`, but not `{_shown(word)}`"
            )
        return Command("metric", metric=head, period=period, chart=chart)
    return Command("error", error=f"I don't know `{_shown(words[0])}`")
