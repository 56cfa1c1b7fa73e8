"""Nudges between digests: what is named, when it is not repeated, snoozing and choosing kinds."""

from datetime import UTC, datetime

from builders import item, new_db, pr, team, ts

from bot.render import nudge as nudge_view
from metrics.nudges import find_nudges, last_digest_day, record_nudged
from metrics.teams import NUDGE_KINDS


def at(text: str) -> datetime:
    return datetime.fromtimestamp(ts(text), UTC)


def stale_db():
    db = new_db()
    pr(db, 1, "2026-01-07 09:00", title="<!channel> fix & ship")  # 75 h waiting at NOW
    pr(db, 2, "2026-01-09 09:00")  # 27 h: under the 48 h threshold
    pr(db, 3, "2026-01-07 09:00", reviews=[("2026-01-07 10:00", "bob", "COMMENTED")])  # reviewed
    return db


NOW = at("2026-01-10 12:00")  # a Saturday


def kinds(nudges) -> dict:
    return {n.kind: [i["subject"] for i in n.items] for n in nudges}


def test_stale_prs_are_named_with_links_and_never_people():
    db = stale_db()
    [nudge] = find_nudges(db, team(nudges=["stale-prs"]), NOW)
    assert nudge.kind == "stale-prs" and nudge.period == "2026-01-10"
    assert [i["subject"] for i in nudge.items] == ["acme/pay#1"]
    msg = nudge_view.message(team(), nudge)
    text = msg["blocks"][0]["text"]["text"]
    assert "<https://github.example/acme/pay/pull/1|acme/pay#1>" in text
    assert "&lt;!channel&gt; fix &amp; ship" in text and "<!channel>" not in text
    assert "waiting 3.1 d" in text
    assert "alice" not in str(msg) and "bob" not in str(msg)


def test_an_item_is_not_named_again_within_the_repeat_interval():
    db = stale_db()
    t = team(nudges=["stale-prs"], nudge_repeat_hours=72)
    [nudge] = find_nudges(db, t, NOW)
    record_nudged(db, t, nudge, NOW.timestamp())
    # 48 h later #2 has waited too long as well; #1 was named and stays quiet.
    [later] = find_nudges(db, t, at("2026-01-12 12:00"))
    assert [i["subject"] for i in later.items] == ["acme/pay#2"]
    record_nudged(db, t, later, at("2026-01-12 12:00").timestamp())
    [again] = find_nudges(db, t, at("2026-01-13 12:01"))  # past 72 h: #1 is named again
    assert [i["subject"] for i in again.items] == ["acme/pay#1"]


def test_snoozed_teams_and_switched_off_kinds_get_nothing():
    db = stale_db()
    assert find_nudges(db, team(snooze_until="2026-01-11T00:00:00Z"), NOW) == []
    assert find_nudges(db, team(nudges=["aging-items"]), NOW) == []
    assert kinds(find_nudges(db, team(snooze_until="2026-01-10T00:00:00Z"), NOW)) == {
        "stale-prs": ["acme/pay#1"]
    }


def test_aging_items_are_those_older_than_the_p85_cycle_time():
    db = new_db()
    # Five items done in the last 90 days, cycle times 1..5 days: p85 = 4.4 days (linear interpolation).
    for n in range(1, 6):
        item(
            db,
            f"PAY-{n}",
            "2026-01-01 00:00",
            [("2026-01-02 00:00", "Selected"), (f"2026-01-{2 + n:02d} 00:00", "Done")],
        )
    item(db, "PAY-10", "2026-01-01 00:00", [("2026-01-05 00:00", "Selected")])  # committed 5.5 d ago
    item(db, "PAY-11", "2026-01-01 00:00", [("2026-01-08 00:00", "In Progress")])  # 2.5 d ago
    [nudge] = find_nudges(db, team(nudges=["aging-items"]), NOW)
    assert [i["subject"] for i in nudge.items] == ["PAY-10"]
    assert nudge.items[0]["detail"] == {"age_hours": 132.0, "p85_hours": 105.6, "status": "Selected"}
    text = nudge_view.message(team(), nudge)["blocks"][0]["text"]["text"]
    assert "<https://jira.example/browse/PAY-10|PAY-10> summary of PAY-10 — Selected, 5 days" in text
    assert "usual p85 4.4 d" in text


def test_target_missed_in_the_closed_period_then_at_risk_in_the_current_digest_period():
    db = new_db()
    t = team(
        nudges=["target"],
        targets={"throughput": 5.0},
        digest={"day": "mon", "time": "09:00", "period_days": 7},
    )
    now = at("2026-01-15 12:00")  # Thursday; the last digest was Mon 12 Jan for 5-11 Jan
    assert last_digest_day(t, now.date()).isoformat() == "2026-01-12"
    assert find_nudges(db, t, now) == []  # Jira never synced: nothing is known, so nothing is missed
    item(db, "PAY-99", "2025-12-20 00:00", [("2025-12-22 00:00", "Selected"), ("2026-01-02 10:00", "Done")])
    [nudge] = find_nudges(db, t, now)  # synced, nothing done in 5-11 Jan: the closed period missed
    assert [i["subject"] for i in nudge.items] == ["throughput:missed:2026-01-12"]
    assert nudge.period == "2026-01-12"
    # Ten items done on Mon-Tue 5-6 Jan: the closed period met its target (10/week), but the digest
    # period as of today (the last seven complete days, 8-14 Jan) holds none: a heads-up before the
    # next digest.
    for n in range(10):
        item(
            db,
            f"PAY-{n}",
            "2026-01-01 00:00",
            [("2026-01-02 00:00", "Selected"), (f"2026-01-0{5 + n % 2} 10:00", "Done")],
        )
    [nudge] = find_nudges(db, t, now)
    assert [i["subject"] for i in nudge.items] == ["throughput:at-risk:2026-01-12"]
    text = nudge_view.message(t, nudge)["blocks"][0]["text"]["text"]
    assert "0.0/wk against a target of 5.0/wk" in text
    assert "misses its target in 2026-01-08 – 2026-01-14" in text


def test_every_kind_is_on_by_default():
    assert team().nudges == list(NUDGE_KINDS)
