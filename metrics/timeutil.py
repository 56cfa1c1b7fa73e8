"""Instants, team-local windows and weeks.

Every stored timestamp is a UTC instant in epoch seconds (floats compare and subtract fast, which the
catalogue does millions of times). Windows and weeks are drawn in the team's IANA zone, so a "week"
starts on Monday 00:00 where the team works, across DST changes.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from metrics.errors import VsmError

WEEK = 7 * 86400


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


def iso(ts: float | None) -> str | None:
    """Epoch seconds as an ISO 8601 UTC string (``2026-01-02T03:04:05Z``)."""
    if ts is None:
        return None
    if ts == int(ts):  # the common case, three times faster than through datetime
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


def days_ending_today(days: int, tz: ZoneInfo, now: datetime) -> Window:
    """The last ``days`` local days, today included: until = the coming local midnight."""
    today = now.astimezone(tz).date()
    until = local_midnight(today + timedelta(days=1), tz)
    return Window(local_midnight(today + timedelta(days=1 - days), tz), until)


_PERIOD = re.compile(r"^(\d{1,4})([dw])$")
_QUARTER = re.compile(r"^(\d{4})-?q([1-4])$")


def parse_period(text: str, tz: ZoneInfo, now: datetime) -> Window:
    """``7d``, ``30d``, ``12w`` (ending today) or a quarter such as ``2026Q3``; anything else is an error."""
    t = (text or "").strip().lower()
    m = _PERIOD.match(t)
    if m:
        n = int(m.group(1)) * (7 if m.group(2) == "w" else 1)
        if not 1 <= n <= 3660:
            raise VsmError(f"period {text!r} is out of range (1d to 10 years)")
        return days_ending_today(n, tz, now)
    m = _QUARTER.match(t)
    if m:
        year, q = int(m.group(1)), int(m.group(2))
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
    return Window(local_midnight(s, tz), local_midnight(u, tz))
