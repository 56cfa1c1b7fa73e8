"""``/vsm`` text -> a command, without touching anything: safe to call on any input.

Every reply to bad input says what was understood, so the user can fix one word instead of guessing.
"""

from __future__ import annotations

import json
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


# Interaction payloads. A button click or a modal submission is only a signed request: its JSON can
# be any shape (an empty ``actions`` list, no ``state``, ``private_metadata`` that is not JSON). These
# readers never raise; a missing or mistyped part comes back empty and the listener refuses it.


def obj(value: object) -> dict:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def text(value: object) -> str:
    """``value`` if it is a string, else ``""``."""
    return value if isinstance(value, str) else ""


def user_id(body: dict) -> str:
    return text(obj(body.get("user")).get("id"))


def first_action(body: dict) -> dict:
    """The clicked element (Slack sends exactly one); ``{}`` when the list is empty or not a list."""
    actions = body.get("actions")
    return obj(actions[0]) if isinstance(actions, list) and actions else {}


def selected_value(action: dict) -> str:
    """A select's or overflow's chosen value, ``""`` when there is none."""
    return text(obj(action.get("selected_option")).get("value"))


def message_channel(body: dict) -> str:
    """The channel the clicked message is in."""
    return text(obj(body.get("channel")).get("id")) or text(obj(body.get("container")).get("channel_id"))


def private_metadata(view: dict) -> dict:
    """A modal's ``private_metadata`` as the object we stored in it, ``{}`` when forged."""
    try:
        return obj(json.loads(text(view.get("private_metadata")) or "{}"))
    except ValueError:
        return {}


def state_values(view: dict) -> dict[str, dict]:
    """``view.state.values`` (block id -> action id -> element state), keeping only well-formed parts."""
    values = obj(obj(view.get("state")).get("values"))
    return {
        k: {a: v for a, v in obj(actions).items() if isinstance(v, dict)}
        for k, actions in values.items()
        if isinstance(actions, dict)
    }
