"""A team's targets: what a target says, how one is read, and whether a figure meets it.

A target is a bound in the metric's base unit (hours, %, items or deploys a week), the direction it is
judged in (at most, for a metric where lower is better; at least, where higher is better; either, as
the team states it, for a context metric such as WIP), and the words the team wrote (``10d``), so the
settings form shows `cycle-time = 10d` back rather than `240`. The config file and the settings modal
both read targets with ``read_target``; a bad line is refused with what is allowed, never stored.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from metrics.errors import VsmError

if TYPE_CHECKING:
    from metrics.catalogue.base import Metric

AT_MOST, AT_LEAST, BETTER = "≤", "≥", "="
# What a team may write between a metric and its bound: `=` means the metric's better direction.
OPERATORS = {"<=": AT_MOST, "≤": AT_MOST, ">=": AT_LEAST, "≥": AT_LEAST, "=": BETTER}
_DIRECTION = {AT_MOST: "lower", AT_LEAST: "higher"}
_OPERATOR = re.compile(r"<=|>=|≤|≥|=")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([hdw])$")
_HOURS = {"h": 1, "d": 24, "w": 168}
MAX_HOURS = 8760.0  # a year
MAX_COUNT = 100_000.0
MAX_NET_FLOW = 1_000.0  # net flow is a difference of counts: either sign, and 0 is a fair target
# Metrics whose figure is not one number (shares by work type; a forecast's dates): nothing to bound.
UNTARGETABLE_UNITS = ("% by type", "items / date")


class Target(float):
    """A target: a float in the metric's base unit, so every reader compares, draws and stores it as
    the number it always was, carrying the direction it is judged in (``better``: ``lower`` or
    ``higher``), the operator the team wrote (``op``: ≤, ≥ or =) and the bound as they wrote it
    (``text``, e.g. ``10d``). Two targets are equal when they judge alike: same bound, same direction.
    Against a plain number a Target compares as the number it is (figures and charts compare it so);
    whether a *setting* changed is ``judged_as``'s question, never ``==``'s."""

    better: str
    op: str
    text: str

    def __new__(cls, value: float, better: str, text: str = "", op: str = BETTER) -> Target:
        self = super().__new__(cls, value)
        self.better, self.op, self.text = better, op, text
        return self

    def __reduce__(self):  # copies (``dataclasses.asdict``) and pickles keep the direction and words
        return (Target, (float(self), self.better, self.text, self.op))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Target):
            return float(self) == float(other) and self.better == other.better
        return float(self) == other

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = float.__hash__

    def __repr__(self) -> str:
        return f"Target({float(self)!r}, {self.better!r}, {self.text!r}, {self.op!r})"

    def to_dict(self) -> dict:
        return {"value": float(self), "better": self.better, "op": self.op, "text": self.text}


def judged_as(metric: Metric | None, target: object) -> object:
    """What a target means, to compare two settings: its bound and the direction it is judged in
    (a plain number, from older settings, in the metric's better direction; none for a context
    metric). ``Target(8, "lower") == 8`` as numbers, yet stating "≤" on a plain ``wip = 8`` is a
    change: this tells them apart. Anything that is not a number is returned as it is."""
    if isinstance(target, bool) or not isinstance(target, int | float):
        return target
    if isinstance(target, Target):
        return (float(target), target.better)
    better = getattr(metric, "better", "")
    return (float(target), better if better in ("lower", "higher") else "")


def headline(metric: Metric, value) -> float | None:
    """The one number a target is compared with: p85 for durations (most items finish within it)."""
    if isinstance(value, dict):
        return value.get("p85")
    return value if isinstance(value, int | float) else None


def direction(metric: Metric, target: float | None) -> str | None:
    """The direction ``target`` is judged in: the one the team stated, else the metric's better one;
    None for a context metric whose target states none (a plain number from older settings)."""
    better = getattr(target, "better", "") or metric.better
    return better if better in ("lower", "higher") else None


def target_status(metric: Metric, value, target: float | None) -> str | None:
    """``met``, ``missed``, or None when there is no target, no figure, or no direction to judge in."""
    v = headline(metric, value)
    better = direction(metric, target)
    if target is None or v is None or better is None:
        return None
    ok = v <= target if better == "lower" else v >= target
    return "met" if ok else "missed"


def words(text: str) -> str:
    """A metric's catalogue name inside a sentence: `cycle time`, but `PR pickup time` and `DORA`."""
    return text if len(text) > 1 and text[1].isupper() else text[:1].lower() + text[1:]


def entered(metric: Metric | None, value: float) -> str:
    """How a bound given as a number (the config file, older settings) is written back: durations in
    whole days or hours where exact (``10d``, ``36h``), rates with ``%``."""
    unit = getattr(metric, "unit", "")
    if unit == "duration":
        days = value / 24
        return f"{days:g}d" if (days * 100).is_integer() else f"{value:g}h"
    return f"{value:g}%" if "%" in unit else f"{value:g}"


def from_stored(metric: Metric | None, stored: object) -> float:
    """A target as the settings store keeps it (``Target.to_dict``), or a plain number from older
    settings, judged in the metric's better direction. A ``Target`` already read (the org's
    targets, as ``metrics.teams.get_org`` returns them) is itself: read again as a plain number it
    would lose the direction a team stated for a context metric."""
    if isinstance(stored, Target):
        return stored
    if isinstance(stored, dict):
        value = stored.get("value")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return Target(
                value,
                str(stored.get("better") or ""),
                str(stored.get("text") or entered(metric, value)),
                str(stored.get("op") or BETTER),
            )
        return math.nan  # refused by Team.validate, like any other malformed setting
    if isinstance(stored, int | float) and not isinstance(stored, bool):
        better = getattr(metric, "better", "") if metric is not None else ""
        return Target(stored, better if better in ("lower", "higher") else "", entered(metric, stored))
    return math.nan


def split_line(line: str) -> tuple[str, str, str]:
    """``cycle-time = 10d`` → (``cycle-time``, ``=``, ``10d``); ``wip <= 8`` → (``wip``, ``≤``, ``8``).
    No operator → an empty one (the caller says what is expected)."""
    m = _OPERATOR.search(line)
    if m is None:
        return line.strip(), "", ""
    return line[: m.start()].strip(), OPERATORS[m.group()], line[m.end() :].strip()


def read_target(metric: Metric, value: object, op: str = BETTER, *, legacy: bool = False) -> Target:
    """A target for ``metric`` from what a team wrote: a number or text (``36h``, ``5d``, ``2w``,
    ``80%``, ``8``; a text may start with its operator, ``<= 8``). Raises VsmError saying what is
    wrong and what is allowed: a duration on a count, a rate outside 0–100, a bound that is not
    positive, an operator against the metric's direction, or none on a metric without one.

    ``legacy``: what was valid before targets were checked against their metric is read as it was
    instead of refused, so an existing vsm.toml still loads and an untouched line of the form still
    saves: a plain number on a metric without a better direction (``wip = 8``) as an *undirected*
    target, kept but never judged; a zero duration or count (``throughput = 0``), judged as before.
    ``legacy_note`` says what to write instead; the caller shows it."""
    name = words(metric.name)
    if metric.unit in UNTARGETABLE_UNITS:
        raise VsmError(f"{name} is not one number, so it takes no target")
    if isinstance(value, str):
        lead = _OPERATOR.match(value.strip())
        if lead and op == BETTER:
            op, value = OPERATORS[lead.group()], value.strip()[lead.end() :]
    if legacy and op == BETTER and metric.better not in ("lower", "higher"):
        bound, text = _bound(metric, value, legacy)
        return Target(bound, "", text, op)
    better = _better(metric, op)
    bound, text = _bound(metric, value, legacy)
    return Target(bound, better, text, op)


def undirected(target: object) -> bool:
    """A target kept but never judged: a plain number on a metric without a better direction."""
    return isinstance(target, Target) and not target.better


def legacy_note(metric: Metric | None, target: object, *, toml: bool = False) -> str | None:
    """Why a target valid only because older settings allowed it (``read_target(legacy=True)``)
    should be rewritten, and how (``toml``: as vsm.toml writes it, ``wip = "<= 8"``; else as the
    settings form does, ``wip ≤ 8``); None for a target that is fine as it is."""
    if metric is None or not isinstance(target, int | float) or isinstance(target, bool):
        return None
    value = f"{float(target):g}"
    if undirected(target) or (not isinstance(target, Target) and metric.better not in ("lower", "higher")):
        at_most, at_least = (
            (f'{metric.id} = "<= {value}"', f'{metric.id} = ">= {value}"')
            if toml
            else (f"{metric.id} ≤ {value}", f"{metric.id} ≥ {value}")
        )
        return (
            f"{metric.id} = {value} is kept but not judged: {words(metric.name)} has no better "
            f"direction, so write {at_most} (at most) or {at_least} (at least)"
        )
    low, _, strict = bounds(metric)
    if strict and float(target) <= low:
        verdict = "is hardly ever met" if direction(metric, target) == "lower" else "is always met"
        return f"{metric.id} = 0 {verdict}, so it says little: write a bound above 0, or remove it"
    return None


def _better(metric: Metric, op: str) -> str:
    name = words(metric.name)
    if metric.better in ("lower", "higher"):
        wanted = AT_MOST if metric.better == "lower" else AT_LEAST
        if op not in (BETTER, wanted):
            side = "lower" if metric.better == "lower" else "higher"
            raise VsmError(f"{side} is better for {name}, so its target is “{wanted}”, not “{op}”")
        return metric.better
    if op not in _DIRECTION:
        raise VsmError(
            f"{name} has no better direction: say which way the team wants it, "
            f"e.g. {metric.id} ≤ 8 (at most) or {metric.id} ≥ 8 (at least)"
        )
    return _DIRECTION[op]


def _bound(metric: Metric, value: object, legacy: bool = False) -> tuple[float, str]:
    """The bound in base units and as written, checked finite and within the metric's range (with
    its lowest value, when ``legacy``, as older settings allowed)."""
    duration = metric.unit == "duration"
    rate = "%" in metric.unit
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise VsmError(f"{_shown(value)} is not {_allowed(metric)}")
    text = value.strip() if isinstance(value, str) else entered(metric, value)
    number: float
    if isinstance(value, str):
        raw = " ".join(value.lower().split())
        m = _DURATION.match(raw)
        if m and duration:
            number = float(m.group(1)) * _HOURS[m.group(2)]
        elif m:
            raise VsmError(
                f"{words(metric.name)} is counted in {metric.unit}, not a duration: {_allowed(metric)}"
            )
        else:
            raw = raw.removesuffix("%").strip() if rate else raw
            try:
                number = float(raw)  # also reads "inf" and "nan": checked below
            except ValueError:
                raise VsmError(f"{_shown(value)} is not {_allowed(metric)}") from None
    else:
        try:
            number = float(value)
        except OverflowError:  # an int beyond any float
            number = math.inf
    if not in_bounds(metric, number, strict=not legacy):
        raise VsmError(f"expected {_allowed(metric)}, not {number:g}")
    return number, text


def bounds(metric: Metric | None) -> tuple[float, float, bool]:
    """The one table of what a target may be, by its metric: (lowest, highest, lowest excluded when
    a team types it). Rates 0–100 (0% failures is a fair aim); net flow either sign (0 is its aim);
    durations and counts above 0 (≤ 0 days can never be met, ≥ 0 a week is always met), though a 0
    stored before targets were checked stays valid (``legacy``). No metric: a count."""
    unit = getattr(metric, "unit", "")
    if unit == "duration":
        return 0.0, MAX_HOURS, True
    if "%" in unit:
        return 0.0, 100.0, False
    if getattr(metric, "better", "") == "≈ 0":
        return -MAX_NET_FLOW, MAX_NET_FLOW, False
    return 0.0, MAX_COUNT, True


def in_bounds(metric: Metric | None, value: object, *, strict: bool = True) -> bool:
    """``value`` a finite number within ``bounds(metric)``; ``strict=False`` admits the lowest value
    (what a stored setting may hold: older settings allowed 0)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    low, high, excluded = bounds(metric)
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float
        return False
    return math.isfinite(number) and low <= number <= high and not (strict and excluded and number <= low)


def _allowed(metric: Metric | None, strict: bool = True) -> str:
    """What ``bounds(metric)`` allows, in words for an error."""
    low, high, excluded = bounds(metric)
    above = "above 0" if strict and excluded else "from 0"
    unit = getattr(metric, "unit", "")
    if unit == "duration":
        return f"a duration {above} and up to 365d, such as 36h, 5d or 2w (a plain number is hours)"
    if "%" in unit:
        return "a percentage from 0 to 100"
    if low < 0:
        return f"a number from {low:g} to {high:g} ({unit})"
    return f"a number {above} and up to {high:g}" + (f" ({unit})" if unit else "")


def allowed(metric: Metric | None) -> str:
    """What a stored target may be (``in_bounds(strict=False)``), for the last check before a save."""
    return _allowed(metric, strict=False)


def _shown(value: object) -> str:
    from metrics.teams import shown

    return shown(value)
