"""Instants, team-local windows and weeks.

Every stored timestamp is a UTC instant in epoch seconds (floats compare and subtract fast, which the
catalogue does millions of times). Windows and weeks are drawn in the team's IANA zone, so a "week"
starts on Monday 00:00 where the team works, across DST changes.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from metrics.errors import VsmError

WEEK = 7 * 86400
# Windows a person may ask for: dates from 1970 to 2199, at most ten years long. Every window is
# later stretched (the previous period of equal length, 20 weeks of baseline, whole weeks), and
# datetime stops at years 1 and 9999: checked here, a typo such as `9999Q4` or `--since 0001-01-01`
# is one clear error instead of an OverflowError deep in a metric.
EARLIEST = date(1970, 1, 1)
LATEST = date(2200, 1, 1)  # exclusive: the last allowed day is 2199-12-31
MAX_DAYS = 3660
# Instants a window may start or end at, a day of slack either side for any zone's offset.
_FIRST_TS = datetime(EARLIEST.year, 1, 1, tzinfo=UTC).timestamp() - 2 * 86400
_LAST_TS = datetime(LATEST.year, 1, 1, tzinfo=UTC).timestamp() + 2 * 86400


def parse_instant(text: str | None) -> float | None:
    """An ISO 8601 timestamp from any tool (``Z``, ``+0000`` or ``+00:00``) as epoch seconds."""
    if not text:
        return None
    value = text.strip().replace("Z", "+00:00")
    # Jira writes offsets as +hhmm and milliseconds; fromisoformat (3.11) accepts both.
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def epoch(now: datetime | float) -> float:
    """``now`` as epoch seconds: the readers of stored figures take an aware datetime or a timestamp."""
    return now.timestamp() if isinstance(now, datetime) else float(now)


def iso(ts: float | None) -> str | None:
    """Epoch seconds as an ISO 8601 UTC string (``2026-01-02T03:04:05Z``)."""
    if ts is None:
        return None
    if ts == int(ts):  # the common case, three times faster than through datetime
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_iso() -> str:
    """The wall clock as stored in audit and status columns (whole seconds, UTC): the real time even
    under ``VSM_NOW``, since it records when something happened, not what a figure is as of."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def zone(name: str) -> ZoneInfo:
    """The IANA zone, or a clear error naming the bad value."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise VsmError(f"unknown time zone {name!r} (use an IANA name such as Europe/London)") from exc


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def week_start(ts: float, tz: ZoneInfo) -> date:
    """The Monday (team-local date) of the week holding the instant."""
    d = datetime.fromtimestamp(ts, tz).date()
    return d - timedelta(days=d.weekday())


@dataclass(frozen=True)
class Window:
    """A half-open window ``[since, until)`` of team-local days."""

    since: datetime
    until: datetime

    @property
    def tz(self) -> ZoneInfo:
        return self.since.tzinfo  # type: ignore[return-value]

    @cached_property
    def start(self) -> float:
        return self.since.timestamp()

    @cached_property
    def end(self) -> float:
        return self.until.timestamp()

    @property
    def days(self) -> int:
        return (self.until.date() - self.since.date()).days

    @property
    def weeks(self) -> float:
        """The window's length in weeks, by local calendar days (a DST week is still a week)."""
        return self.days / 7

    def previous(self) -> Window:
        """The period of equal length (in local days) just before this one."""
        return Window(
            local_midnight(self.since.date() - timedelta(days=self.days), self.tz),
            self.since,
        )

    def shifted_back(self, days: int) -> Window:
        return Window(local_midnight(self.since.date() - timedelta(days=days), self.tz), self.until)

    def contains(self, ts: float | None) -> bool:
        return ts is not None and self.start <= ts < self.end

    def week_starts(self) -> list[date]:
        """Mondays of every week that overlaps the window, oldest first."""
        first = self.since.date() - timedelta(days=self.since.weekday())
        last_day = (self.until - timedelta(microseconds=1)).date()
        out = []
        d = first
        while d <= last_day:
            out.append(d)
            d += timedelta(days=7)
        return out

    def label(self) -> str:
        last = (self.until - timedelta(days=1)).date()
        return f"{self.since.date().isoformat()} – {last.isoformat()}"


def _out_of_range(what: str) -> VsmError:
    return VsmError(f"{what} is out of range: dates from {EARLIEST} to {LATEST - timedelta(days=1)}")


def check_day(day: date, what: str) -> date:
    """``day`` if a window may hold it (``EARLIEST`` to ``LATEST``, exclusive), else a one-line error
    naming ``what`` it came from (a pinned clock, today)."""
    if not EARLIEST <= day < LATEST:
        raise _out_of_range(what)
    return day


def sane_days(since: date, until: date, what: str) -> tuple[date, date]:
    """``[since, until)`` if it is a window we can compute (see ``EARLIEST``), else a one-line error
    naming ``what`` the user typed."""
    if since < EARLIEST or until > LATEST:
        raise _out_of_range(what)
    if (until - since).days > MAX_DAYS:
        raise VsmError(f"{what} is too long: at most {MAX_DAYS} days (10 years)")
    return since, until


def window_between(start: float, end: float, tz: ZoneInfo, what: str = "window") -> Window:
    """The window between two instants (a button's ``since``/``until``), checked as a typed one is:
    a forged instant in year 1 or 9999 is refused before any arithmetic."""
    if not (math.isfinite(start) and math.isfinite(end)) or not _FIRST_TS <= start < end <= _LAST_TS:
        raise _out_of_range(what)
    since, until = datetime.fromtimestamp(start, tz), datetime.fromtimestamp(end, tz)
    sane_days(since.date(), until.date(), what)
    return Window(since, until)


def complete_days(days: int, tz: ZoneInfo, now: datetime) -> Window:
    """The last ``days`` complete local days before today (``now``'s local date): a team's digest
    period, and the org's, as every surface shows them without an explicit period."""
    today = now.astimezone(tz).date()
    return Window(local_midnight(today - timedelta(days=days), tz), local_midnight(today, tz))


def days_ending_today(days: int, tz: ZoneInfo, now: datetime) -> Window:
    """The last ``days`` local days, today included: until = the coming local midnight."""
    today = now.astimezone(tz).date()
    check_day(today, f"today ({today})")  # a pinned clock (VSM_NOW) far in the past or future
    since, until = sane_days(today + timedelta(days=1 - days), today + timedelta(days=1), f"{days} days")
    return Window(local_midnight(since, tz), local_midnight(until, tz))


# ASCII digits only: \d would also take other scripts' digits, and str.isdigit() takes "²", which
# int() then refuses with a ValueError.
_PERIOD = re.compile(r"^([0-9]{1,4})([dw])$", re.ASCII)
_QUARTER = re.compile(r"^([0-9]{4})-?q([1-4])$", re.ASCII)


def parse_period(text: str, tz: ZoneInfo, now: datetime) -> Window:
    """``7d``, ``30d``, ``12w`` (ending today) or a quarter such as ``2026Q3``; anything else is an error."""
    t = (text or "").strip().lower()
    m = _PERIOD.match(t)
    if m:
        n = int(m.group(1)) * (7 if m.group(2) == "w" else 1)
        if not 1 <= n <= MAX_DAYS:
            raise VsmError(f"period {text!r} is out of range (1d to 10 years)")
        return days_ending_today(n, tz, now)
    m = _QUARTER.match(t)
    if m:
        year, q = int(m.group(1)), int(m.group(2))
        if not EARLIEST.year <= year < LATEST.year:
            raise VsmError(
                f"period {text!r} is out of range: quarters from {EARLIEST.year} to {LATEST.year - 1}"
            )
        start = date(year, 3 * q - 2, 1)
        end = date(year + (q == 4), 1 if q == 4 else 3 * q + 1, 1)
        return Window(local_midnight(start, tz), local_midnight(end, tz))
    raise VsmError(f"malformed period {text!r}: use e.g. 7d, 30d, 90d, 12w or 2026Q3")


def parse_date(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise VsmError(f"malformed {what} {text!r}: use YYYY-MM-DD") from exc


def dates_window(since: str, until: str, tz: ZoneInfo) -> Window:
    """``--since`` / ``--until`` as team-local dates; ``until`` is exclusive, like every window."""
    s, u = parse_date(since, "--since"), parse_date(until, "--until")
    if u <= s:
        raise VsmError(f"--until {until} must be after --since {since}")
    sane_days(s, u, f"--since {since} --until {until}")
    return Window(local_midnight(s, tz), local_midnight(u, tz))
