from datetime import UTC, datetime

import pytest

from metrics.errors import VsmError
from metrics.timeutil import (
    MAX_DAYS,
    dates_window,
    days_ending_today,
    iso,
    parse_instant,
    parse_period,
    week_start,
    window_between,
    zone,
)

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
LONDON = zone("Europe/London")


def test_parse_instant_accepts_every_tool_format():
    z = parse_instant("2024-05-02T14:03:11Z")
    assert parse_instant("2024-05-02T14:03:11.000+0000") == z  # Jira's +hhmm with milliseconds
    assert parse_instant("2024-05-02T16:03:11+02:00") == z
    assert iso(z) == "2024-05-02T14:03:11Z"
    assert parse_instant(None) is None


def test_days_period_ends_with_today_in_team_zone():
    w = parse_period("30d", LONDON, NOW)
    assert w.since == datetime(2026, 10, 27, tzinfo=LONDON)
    assert w.until == datetime(2026, 11, 26, tzinfo=LONDON)
    assert w.days == 30
    assert parse_period("12w", LONDON, NOW).days == 84


def test_window_across_dst_is_whole_local_days():
    # London left summer time on 25 Oct 2026: 35 local days from 22 Oct hold 35*24 + 1 hours.
    w = parse_period("35d", LONDON, NOW)
    assert w.since == datetime(2026, 10, 22, tzinfo=LONDON)
    assert w.end - w.start == 35 * 86400 + 3600
    prev = w.previous()
    assert prev.until == w.since and prev.days == 35


def test_quarter_and_dates():
    q = parse_period("2026Q3", LONDON, NOW)
    assert (q.since.date().isoformat(), q.until.date().isoformat()) == ("2026-07-01", "2026-10-01")
    d = dates_window("2026-01-01", "2026-02-01", LONDON)
    assert d.days == 31


@pytest.mark.parametrize("bad", ["", "30", "d30", "30x", "2026Q5", "0d", "99999d", "-3d", "30d; drop table"])
def test_malformed_periods_are_refused(bad):
    with pytest.raises(VsmError, match="period"):
        parse_period(bad, LONDON, NOW)


def test_dates_window_errors():
    with pytest.raises(VsmError, match="--since"):
        dates_window("2026-13-01", "2026-02-01", LONDON)
    with pytest.raises(VsmError, match="after"):
        dates_window("2026-02-01", "2026-01-01", LONDON)


def test_week_starts_monday_local():
    # Sunday 23:30 in New York is Monday 04:30 UTC: still the previous local week.
    ny = zone("America/New_York")
    ts = datetime(2026, 3, 8, 23, 30, tzinfo=ny).timestamp()
    assert week_start(ts, ny).isoformat() == "2026-03-02"
    assert week_start(ts, UTC).isoformat() == "2026-03-09"


def test_unknown_zone():
    with pytest.raises(VsmError, match="time zone"):
        zone("Mars/Olympus")


@pytest.mark.parametrize("bad", ["9999Q4", "0000q1", "1969q4", "2200Q1", "²d", "٣٠d", "3０d"])
def test_periods_outside_the_range_or_in_other_digits_are_refused(bad):
    """Issue 10 item 8: `9999Q4` ended in year 10000 (ValueError), a regex's \\d took any script's digits."""
    with pytest.raises(VsmError, match="period"):
        parse_period(bad, LONDON, NOW)


def test_the_range_is_whole_and_inclusive():
    assert parse_period("1970Q1", LONDON, NOW).since.date().isoformat() == "1970-01-01"
    assert parse_period("2199Q4", LONDON, NOW).until.date().isoformat() == "2200-01-01"
    assert dates_window("1970-01-01", "1970-01-02", LONDON).days == 1
    assert dates_window("2016-01-01", "2026-01-08", LONDON).days == MAX_DAYS
    # The stretched windows a metric derives from an allowed one stay computable.
    w = dates_window("1970-01-01", "1979-12-31", zone("Pacific/Kiritimati"))
    assert w.previous().since.year == 1960 and w.week_starts()[0].year == 1969


@pytest.mark.parametrize(
    "since,until,said",
    [
        ("0001-01-01", "2026-01-01", "out of range"),
        ("2026-01-01", "9999-12-31", "out of range"),
        ("1969-12-31", "1970-01-02", "out of range"),
        ("2016-01-01", "2026-01-09", "too long"),
    ],
)
def test_dates_outside_the_range_are_refused(since, until, said):
    with pytest.raises(VsmError, match=said):
        dates_window(since, until, LONDON)


def test_a_window_between_instants_is_checked_like_a_typed_one():
    ok = window_between(parse_instant("2026-01-01T00:00:00Z"), parse_instant("2026-02-01T00:00:00Z"), LONDON)
    assert ok.days == 31
    for since, until in (
        ("0001-01-01T00:00:00Z", "0001-02-01T00:00:00Z"),
        ("9999-01-01T00:00:00Z", "9999-12-31T00:00:00Z"),
        ("2026-02-01T00:00:00Z", "2026-01-01T00:00:00Z"),  # backwards
    ):
        with pytest.raises(VsmError, match="out of range"):
            window_between(parse_instant(since), parse_instant(until), LONDON)
    with pytest.raises(VsmError, match="out of range"):
        window_between(float("nan"), float("inf"), LONDON)


def test_today_out_of_range_is_an_error_not_an_overflow():
    with pytest.raises(VsmError, match="today"):
        days_ending_today(30, UTC, datetime(9999, 12, 31, 23, 59, tzinfo=UTC))
    with pytest.raises(VsmError, match="today"):
        parse_period("7d", UTC, datetime(1, 1, 1, tzinfo=UTC))
