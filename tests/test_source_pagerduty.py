"""The PagerDuty connector over real HTTP against a loopback fake of the REST API v2.

Every test checks the stored rows exactly (``expected`` recomputes them from the fake's incidents), and
never sleeps: the policy records the waits instead.
"""

from __future__ import annotations

import json
from datetime import date

import pytest
from builders import assert_not_in_files, deploy, new_db, run_sync, team, ts
from fakes.pagerduty import FakePagerDuty, _six_months_after
from fakes.server import Fault

from metrics.catalogue import compute
from metrics.normalise import ingest
from metrics.sources.pagerduty import OVERLAP, WINDOW, PagerDutyConnector
from metrics.store import open_db
from metrics.timeutil import Window, local_midnight, parse_instant, zone

TOKEN = "pdkey-u+S3cr3t-7Qz9XwV2"
SERVICE = "PIJ90N7"
NOW = ts("2026-02-10 00:00")
DAY = 86400.0


@pytest.fixture
def pd():
    fake = FakePagerDuty(TOKEN)
    yield fake
    fake.close()


def source(pd: FakePagerDuty, **kw) -> dict:
    return {
        "name": "pagerduty",
        "kind": "pagerduty",
        "url": pd.url,
        "token_env": "PAGERDUTY_TOKEN",
        "services": [SERVICE],
        "history_days": 365,
        **kw,
    }


def sync(db, pd, *, now: float = NOW, token: str = TOKEN, waits: list | None = None, **kw):
    return run_sync(db, source(pd, **kw), "PAGERDUTY_TOKEN", token, now, waits)


def rows(db) -> dict[str, tuple]:
    return {
        r["id"]: (r["service"], r["created"], r["resolved"], r["status"], r["severity"])
        for r in db.query("select * from incidents where source = 'pagerduty'")
    }


def expected(
    pd: FakePagerDuty, *, now: float = NOW, days: int = 365, services=(SERVICE,)
) -> dict[str, tuple]:
    """What the incidents table must hold: the fake's incidents of the services, created in history."""
    out = {}
    for i in pd.incidents.values():
        created = parse_instant(i["created_at"])
        if i["service"]["id"] in services and now - days * DAY <= created < now:
            out[i["id"]] = (
                i["service"]["id"],
                created,
                parse_instant(i["resolved_at"]),
                i["status"],
                i["urgency"],
            )
    return out


def raw_snapshot(db) -> list[tuple]:
    return db.execute(
        "select external_id, updated_at, fetched_at, payload from raw order by external_id"
    ).fetchall()


def status(db) -> dict:
    row = next(db.query("select * from sync_status where source = 'pagerduty' and stream = 'incidents'"))
    return {**row, "state": json.loads(row["cursor"])}


def listings(pd: FakePagerDuty) -> list[dict]:
    return [
        {"since": r.arg("since"), "until": r.arg("until"), "offset": int(r.arg("offset", "0"))}
        for r in pd.server.requests_to("/incidents")
    ]


def spread(pd: FakePagerDuty, n: int, first: str, step_hours: float, **kw) -> list[dict]:
    start = ts(first)
    return [pd.add(start + k * step_hours * 3600, **kw) for k in range(n)]


def history(pd: FakePagerDuty) -> None:
    """A year of incidents: resolved, acknowledged, open, another service's, one too old."""
    for k in range(24):  # every ~15 days across the year, resolved after 2 h 30
        created = NOW - 360 * DAY + k * 15 * DAY
        pd.add(created, created + 2.5 * 3600, urgency="high" if k % 3 else "low")
    pd.acknowledge(pd.add("2026-02-08 10:00")["id"], "2026-02-08 10:05")
    pd.add("2026-02-09 23:50")  # open, inside the overlap of the next sync
    pd.add("2026-01-20 08:00", "2026-01-20 09:00", service="PFOREIGN")  # not ours
    pd.add(NOW - 400 * DAY, NOW - 399 * DAY)  # before the history window


# -- first sync -----------------------------------------------------------------------------------------
def test_first_sync_reads_the_year_in_windows_of_at_most_six_months(pd):
    history(pd)
    db = new_db()
    result = sync(db, pd)
    assert result.ok, result.errors
    assert rows(db) == expected(pd) and len(rows(db)) == 26
    calls = listings(pd)
    windows = sorted({(c["since"], c["until"]) for c in calls})
    assert len(windows) >= 2
    for since, until in windows:
        assert since.endswith("Z") and until.endswith("Z")
        assert parse_instant(until) - parse_instant(since) <= WINDOW
        assert parse_instant(until) <= _six_months_after_ts(since)
    # Contiguous, from history_days back to now, no gap and no overlap within one pass.
    assert parse_instant(windows[0][0]) == NOW - 365 * DAY and parse_instant(windows[-1][1]) == NOW
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:], strict=False))
    req = pd.server.requests_to("/incidents")[0]
    assert req.headers["authorization"] == f"Token token={TOKEN}"
    assert req.headers["accept"] == "application/vnd.pagerduty+json;version=2"
    assert req.query["service_ids[]"] == [SERVICE]
    assert (req.arg("sort_by"), req.arg("limit"), req.arg("time_zone")) == ("created_at:asc", "100", "UTC")
    state = status(db)["state"]
    assert state["cursor"] == "2026-02-10T00:00:00Z" and "pass" not in state
    open_ids = {i["id"] for i in pd.incidents.values() if i["status"] != "resolved" and i["id"] in rows(db)}
    assert set(state["open"]) == open_ids and len(open_ids) == 2


def _six_months_after_ts(since: str) -> float:
    from datetime import datetime

    return _six_months_after(datetime.fromisoformat(since.replace("Z", "+00:00"))).timestamp()


def test_many_pages_in_one_window(pd):
    made = spread(pd, 250, "2026-01-25 00:00", 1)  # 250 hourly incidents inside one 30-day window
    db = new_db()
    assert sync(db, pd).ok
    assert rows(db) == expected(pd) and len(rows(db)) == 250
    window = [
        c for c in listings(pd) if parse_instant(c["since"]) <= ts("2026-01-25") < parse_instant(c["until"])
    ]
    assert [c["offset"] for c in window] == [0, 100, 200]
    assert set(rows(db)) == {i["id"] for i in made}


def test_a_deep_window_is_narrowed_instead_of_paged_deep(pd, monkeypatch):
    monkeypatch.setattr(PagerDutyConnector, "max_offset", 300)
    spread(pd, 700, "2026-01-15 00:00", 0.5)
    db = new_db()
    assert sync(db, pd).ok
    assert rows(db) == expected(pd) and len(rows(db)) == 700
    offsets = [c["offset"] for c in listings(pd)]
    assert max(offsets) <= 200  # re-anchored on the last created_at instead of going to offset 300+
    anchors = {c["since"] for c in listings(pd)} - {c["until"] for c in listings(pd)}
    assert len(anchors) >= 3  # the history start, and re-anchored starts inside the window


# -- incremental ----------------------------------------------------------------------------------------
def test_second_sync_with_no_remote_change_writes_nothing(pd):
    history(pd)
    db = new_db()
    assert sync(db, pd).ok
    before_raw, before_rows = raw_snapshot(db), rows(db)
    n = len(pd.server.log)
    result = sync(db, pd, now=NOW + 3600)
    assert result.ok and result.changed == 0
    assert raw_snapshot(db) == before_raw and rows(db) == before_rows
    assert status(db)["rows_changed"] == 0
    # Only the overlap is listed again; both open incidents were created inside it or re-read.
    calls = (
        listings(pd)[n - len(pd.server.log) :]
        if False
        else [
            {"since": r.arg("since"), "until": r.arg("until")}
            for r in pd.server.log[n:]
            if r.path == "/incidents"
        ]
    )
    assert calls == [{"since": "2026-02-09T23:45:00Z", "until": "2026-02-10T01:00:00Z"}]
    assert parse_instant(calls[0]["since"]) == NOW - OVERLAP
    singles = [r.path for r in pd.server.log[n:] if r.path.startswith("/incidents/")]
    assert len(singles) == 1  # the acknowledged one, created before the overlap


def test_an_incident_resolved_after_the_first_sync_is_updated_by_the_second(pd):
    old = pd.add(NOW - 100 * DAY)  # open for months: re-read by id
    fresh = pd.add(NOW - 4 * 60)  # open, inside the overlap: refreshed by the listing
    acked = pd.add(NOW - 2 * DAY)
    done = pd.add(NOW - 3 * DAY, NOW - 3 * DAY + 600)
    db = new_db()
    assert sync(db, pd).ok
    assert rows(db)[old["id"]][2:4] == (None, "triggered")
    assert set(status(db)["state"]["open"]) == {old["id"], fresh["id"], acked["id"]}
    n = len(pd.server.log)
    pd.resolve(old["id"], NOW + 3600)
    pd.resolve(fresh["id"], NOW + 1800)
    pd.acknowledge(acked["id"], NOW + 60)
    new = pd.add(NOW + 7200, NOW + 9000)
    later = NOW + DAY
    result = sync(db, pd, now=later)
    assert result.ok, result.errors
    assert rows(db) == expected(pd, now=later)
    assert rows(db)[old["id"]][2:4] == (NOW + 3600, "resolved")
    assert rows(db)[fresh["id"]][2:4] == (NOW + 1800, "resolved")
    assert rows(db)[acked["id"]][2:4] == (None, "acknowledged")
    assert rows(db)[new["id"]][2:4] == (NOW + 9000, "resolved")
    assert rows(db)[done["id"]] == expected(pd)[done["id"]]
    assert status(db)["state"]["open"] == {acked["id"]: acked["created_at"]}
    singles = sorted(r.path for r in pd.server.log[n:] if r.path.startswith("/incidents/"))
    assert singles == sorted([f"/incidents/{old['id']}", f"/incidents/{acked['id']}"])
    assert status(db)["rows_changed"] == 4  # old, fresh, acked, new


def test_an_open_incident_gone_from_the_api_keeps_its_row_and_leaves_the_open_set(pd):
    gone = pd.add(NOW - 50 * DAY)
    db = new_db()
    assert sync(db, pd).ok
    del pd.incidents[gone["id"]]
    result = sync(db, pd, now=NOW + DAY)
    assert result.ok, result.errors
    assert rows(db)[gone["id"]][3] == "triggered"
    assert status(db)["state"]["open"] == {}


def test_a_changed_service_list_reads_the_history_again(pd):
    history(pd)
    db = new_db()
    assert sync(db, pd).ok
    both = [SERVICE, "PFOREIGN"]
    result = sync(db, pd, now=NOW + 3600, services=both)
    assert result.ok
    assert rows(db) == expected(pd, now=NOW + 3600, services=both)
    assert status(db)["state"]["services"] == sorted(both)


# -- faults: the stored data is exactly right after each --------------------------------------------------
def test_429_with_retry_after_is_waited_out(pd):
    history(pd)
    pd.arm_listing(3, Fault(429, {"Retry-After": "7"}), Fault(429, {"Retry-After": "2"}))
    db, waits = new_db(), []
    result = sync(db, pd, waits=waits)
    assert result.ok, result.errors
    assert waits == [7.0, 2.0]
    assert rows(db) == expected(pd)


def test_a_burst_of_5xx_is_absorbed(pd):
    spread(pd, 150, "2026-01-20 00:00", 2)
    pd.arm_listing(1, Fault(500), Fault(502), Fault(503), Fault(504))
    db = new_db()
    assert sync(db, pd).ok
    assert rows(db) == expected(pd) and len(rows(db)) == 150


def test_a_connection_dropped_mid_page_is_retried(pd):
    spread(pd, 250, "2026-01-20 00:00", 1)
    pd.arm_listing(12, Fault(drop=True))  # after the first pages of the incident-heavy window
    db = new_db()
    assert sync(db, pd).ok
    assert rows(db) == expected(pd) and len(rows(db)) == 250
    assert len(pd.server.log) == len({(c["since"], c["offset"]) for c in listings(pd)}) + 1


def test_malformed_json_is_retried(pd):
    spread(pd, 120, "2026-01-20 00:00", 1)
    pd.arm_listing(12, Fault(body=b'{"incidents": [{"id": "Q'))
    db = new_db()
    assert sync(db, pd).ok
    assert rows(db) == expected(pd) and len(rows(db)) == 120


def test_an_expired_token_fails_the_stream_and_keeps_stored_data(pd):
    history(pd)
    db = new_db()
    assert sync(db, pd).ok
    before, success = rows(db), status(db)["last_success"]
    result = sync(db, pd, now=NOW + DAY, token="pdkey-expired-0000")
    assert not result.ok
    assert "authentication failed (401)" in result.errors[0]
    assert rows(db) == before
    st = status(db)
    assert st["last_success"] == success and "401" in st["last_error"]


def test_the_token_is_never_stored_nor_shown(pd, tmp_path):
    history(pd)
    db = open_db(tmp_path / "x.db")
    assert sync(db, pd).ok
    pd.token = "rotated"  # now every request is a 401 for our token
    bad = sync(db, pd, now=NOW + DAY)
    pd.outage = lambda r: True
    down = sync(db, pd, now=NOW + 2 * DAY, token="rotated")
    errors = bad.errors + down.errors
    assert len(errors) == 2 and all(TOKEN not in e and "rotated" not in e for e in errors)
    db.conn.close()
    assert_not_in_files(tmp_path, TOKEN, "Token token=")


# -- resumption --------------------------------------------------------------------------------------------
def test_an_interrupted_sync_resumes_at_the_page_where_it_stopped(pd):
    spread(pd, 60, NOW - 300 * DAY, 24)  # early in the year
    heavy = spread(pd, 250, "2026-01-20 00:00", 1)
    pd.outage = lambda r: r.arg("offset") == "200"  # the third page of the heavy window fails
    db = new_db()
    first = sync(db, pd)
    assert not first.ok and "HTTP 500" in first.errors[0]
    stopped = status(db)["state"]["pass"]
    assert stopped["offset"] == 200
    assert len(rows(db)) == 60 + 200  # everything before the failed page is stored
    pd.outage = None
    n = len(pd.server.log)
    resumed = sync(db, pd)  # same instant: the saved pass is finished, nothing else to list
    assert resumed.ok, resumed.errors
    after = [(r.arg("since"), r.arg("offset")) for r in pd.server.log[n:]]
    assert after[0] == (stopped["since"], "200")
    assert resumed.seen == 50  # the rest of the window: nothing read twice, nothing lost
    assert rows(db) == expected(pd) and len(rows(db)) == 310
    assert {i["id"] for i in heavy} <= set(rows(db))
    assert "pass" not in status(db)["state"] and status(db)["state"]["cursor"] == "2026-02-10T00:00:00Z"


def test_a_resumed_pass_is_followed_by_a_new_one_up_to_now(pd):
    spread(pd, 120, "2026-01-20 00:00", 1)
    pd.outage = lambda r: r.arg("offset") == "100"
    db = new_db()
    assert not sync(db, pd).ok
    pd.outage = None
    late = pd.add(NOW + 3 * 3600)
    result = sync(db, pd, now=NOW + DAY)
    assert result.ok, result.errors
    assert rows(db) == expected(pd, now=NOW + DAY) and late["id"] in rows(db)
    assert status(db)["state"]["cursor"] == "2026-02-11T00:00:00Z"


def test_an_interruption_during_the_open_re_reads_resumes_with_the_rest(pd):
    olds = [pd.add(NOW - (90 - k) * DAY) for k in range(4)]
    db = new_db()
    assert sync(db, pd).ok
    for o in olds:
        pd.resolve(o["id"], NOW + 600)
    failing = f"/incidents/{olds[2]['id']}"
    pd.outage = lambda r: r.path == failing
    assert not sync(db, pd, now=NOW + DAY).ok
    state = status(db)["state"]
    assert state["pass"]["recheck"] == [olds[2]["id"], olds[3]["id"]]
    assert {k: v[3] for k, v in rows(db).items()} == {
        olds[0]["id"]: "resolved",
        olds[1]["id"]: "resolved",
        olds[2]["id"]: "triggered",
        olds[3]["id"]: "triggered",
    }
    pd.outage = None
    n = len(pd.server.log)
    assert sync(db, pd, now=NOW + DAY).ok
    singles = [r.path for r in pd.server.log[n:] if r.path.startswith("/incidents/")]
    assert singles == [failing, f"/incidents/{olds[3]['id']}"]
    assert rows(db) == expected(pd, now=NOW + DAY) and status(db)["state"]["open"] == {}


def test_plain_http_to_a_remote_host_is_refused_before_any_request(pd):
    db = new_db()
    result = sync(db, pd, url="http://api.pagerduty.example")
    assert not result.ok and "refusing" in result.errors[0]
    assert TOKEN not in result.errors[0]


# -- metrics from synced data equal metrics from the same payloads ingested directly --------------------------
def _window() -> Window:
    z = zone("UTC")
    return Window(local_midnight(date(2026, 1, 5), z), local_midnight(date(2026, 2, 2), z))


def _dora(db) -> dict:
    t = team(services=[SERVICE])
    return {
        m: compute(db, t, m, _window(), NOW + 2 * DAY).to_json()
        for m in ("time-to-restore", "change-failure-rate")
    }


def _direct(pd: FakePagerDuty, now: float) -> object:
    """The same payloads, ingested without HTTP (the fake's incidents of our service in history)."""
    db = new_db()
    for i in pd.incidents.values():
        created = parse_instant(i["created_at"])
        if i["service"]["id"] == SERVICE and now - 365 * DAY <= created < now:
            ingest(db, "pagerduty", "incident", i["id"], i["updated_at"], i, {"kind": "pagerduty"})
    _deploys(db)
    return db


def _deploys(db) -> None:
    for k, at in enumerate(["2026-01-06 10:00", "2026-01-13 10:00", "2026-01-20 10:00", "2026-01-27 10:00"]):
        deploy(db, f"d{k}", at)


def test_dora_metrics_from_synced_incidents_equal_those_from_direct_ingestion(pd):
    pd.add("2026-01-06 12:00", "2026-01-06 14:00")  # after d0: 2 h
    pd.add("2026-01-14 09:00", "2026-01-14 13:00")  # after d1: 4 h
    pd.add("2026-01-14 18:00", "2026-01-15 00:00")  # after d1 too: 6 h
    still_open = pd.add("2026-01-28 08:00")  # after d3, open at the first sync
    pd.add("2026-01-10 08:00", "2026-01-10 09:00", service="PFOREIGN")  # another team's
    synced = new_db()
    assert sync(synced, pd).ok
    _deploys(synced)
    got = _dora(synced)
    assert got == _dora(_direct(pd, NOW))
    assert got["time-to-restore"]["value"] == {"p50": 4.0, "p85": pytest.approx(5.4)}
    assert got["change-failure-rate"]["value"] == pytest.approx(75.0)  # d0, d1, d3 of 4 deployments
    # Resolved after the first sync: the second sync brings the restore in, as direct ingestion does.
    pd.resolve(still_open["id"], "2026-01-28 16:00")
    assert sync(synced, pd, now=NOW + DAY).ok
    again = _dora(synced)
    assert again == _dora(_direct(pd, NOW + DAY))
    assert again["time-to-restore"]["sample_size"] == 4
