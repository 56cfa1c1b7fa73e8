"""Issue 12 §4 for Scrum (review R1-#7): under a sprint figure's signal or missed target the digest
names the work behind it, in the same shape as every other metric's: for sprint completion the
committed items the period's sprints left undone, for carry-over the items carried over most often,
for scope change the items added mid-sprint; each with its title, link, what happened in which sprint,
and where it stands now (the status as the team wrote it). Expectations are worked out by hand.

Now is Wed 25 Nov 2026 15:00 UTC (the app's clock in tests/slackkit.py). Sprints, all on board 1:
- Sprint 0: 5 – 16 Oct (closed 16 Oct 10:00), before the period. PAY-1 committed, carried over.
- Sprint 1: 2 – 13 Nov (closed 13 Nov 10:00). Committed PAY-1, PAY-5, PAY-8; PAY-9 added 4 Nov.
  PAY-8 and PAY-9 done in it; PAY-1 and PAY-5 carried over.
- Sprint 2: 16 – 24 Nov (closed 24 Nov 10:00). Committed PAY-1 … PAY-5; PAY-4 removed 18 Nov;
  PAY-6 added 17 Nov (done), PAY-7 added 20 Nov (not done). PAY-2 done in it; PAY-3 done at noon
  on 24 Nov, two hours after the close: not done in it. Carried over: PAY-1, PAY-3, PAY-5, PAY-7.
Now: PAY-1 In Progress, PAY-4 Selected, PAY-5 In Review (the tool spells it IN REVIEW), PAY-7 In
Progress, the others Done.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from builders import item, new_db, sprint, team
from fakes.slack import MockSlack
from slackkit import NOW, assert_valid_message, command, slack_app

from metrics.digest import build_digest
from metrics.store import open_db
from metrics.teams import Team, save_team

TARGETS = {"sprint-completion": 80.0, "sprint-carry-over": 10.0, "sprint-scope-change": 10.0}


def scrum_team(period_days: int = 28) -> Team:
    return team(
        metrics=list(TARGETS),
        targets=TARGETS,
        digest={"day": "mon", "time": "09:00", "period_days": period_days},
    )


def build(db) -> None:
    created = "2026-10-01 09:00"
    item(db, "PAY-1", created, [("2026-10-05 09:00", "In Progress")])
    item(db, "PAY-2", created, [("2026-11-17 09:00", "In Progress"), ("2026-11-20 09:00", "Done")])
    item(db, "PAY-3", created, [("2026-11-17 09:00", "In Progress"), ("2026-11-24 12:00", "Done")])
    item(db, "PAY-4", created, [("2026-10-02 09:00", "Selected")])
    item(
        db,
        "PAY-5",
        created,
        [("2026-11-03 09:00", "In Progress"), ("2026-11-12 09:00", "In Review")],
        status="IN REVIEW",
    )
    item(db, "PAY-6", created, [("2026-11-18 09:00", "In Progress"), ("2026-11-19 09:00", "Done")])
    item(db, "PAY-7", created, [("2026-11-21 09:00", "In Progress")])
    item(db, "PAY-8", created, [("2026-11-03 09:00", "In Progress"), ("2026-11-06 09:00", "Done")])
    item(db, "PAY-9", created, [("2026-11-04 12:00", "In Progress"), ("2026-11-05 09:00", "Done")])
    sprint(
        db,
        "0",
        "2026-10-05 09:00",
        "2026-10-16 09:00",
        complete="2026-10-16 10:00",
        events=[("PAY-1", "2026-10-04 10:00", "add"), ("PAY-1", "2026-10-16 10:00", "remove")],
    )
    sprint(
        db,
        "1",
        "2026-11-02 09:00",
        "2026-11-13 09:00",
        complete="2026-11-13 10:00",
        events=[
            *[(f"PAY-{n}", "2026-11-01 10:00", "add") for n in (1, 5, 8)],
            ("PAY-9", "2026-11-04 10:00", "add"),
            *[(f"PAY-{n}", "2026-11-13 10:00", "remove") for n in (1, 5)],  # moved on at the close
        ],
    )
    sprint(
        db,
        "2",
        "2026-11-16 09:00",
        "2026-11-27 09:00",
        complete="2026-11-24 10:00",
        events=[
            *[(f"PAY-{n}", "2026-11-15 10:00", "add") for n in range(1, 6)],
            ("PAY-4", "2026-11-18 10:00", "remove"),
            ("PAY-6", "2026-11-17 10:00", "add"),
            ("PAY-7", "2026-11-20 10:00", "add"),
        ],
    )


def behind_of(period_days: int = 28) -> dict:
    """Each Scrum figure's value, target verdict and the work named behind it, in the digest of NOW."""
    db = new_db()
    build(db)
    digest = build_digest(db, scrum_team(period_days), NOW)
    return {f.metric.id: (f.result.value, f.target_status, f.behind) for f in digest.figures}


def entry(n: int, detail: str) -> dict:
    return {
        "key": f"PAY-{n}",
        "title": f"summary of PAY-{n}",
        "url": f"https://jira.example/browse/PAY-{n}",
        "detail": detail,
    }


def test_missed_sprint_completion_names_the_committed_items_left_undone_still_open_first():
    """28 days (28 Oct – 24 Nov): sprints 1 and 2, 2 of 8 committed items completed. Left undone:
    PAY-1 and PAY-5 in both sprints, PAY-4 (removed) and PAY-3 in sprint 2. PAY-3 is done now, so
    it comes last and is not among the three."""
    value, status, behind = behind_of()["sprint-completion"]
    assert (value, status) == (25.0, "missed")
    assert behind == {
        "heading": "Committed items left undone in the period's sprints",
        "items": [
            entry(
                1,
                "not done at the end of Sprint 2 (left undone in 2 of the period's sprints), now In Progress",
            ),
            entry(
                5, "not done at the end of Sprint 2 (left undone in 2 of the period's sprints), now In Review"
            ),
            entry(4, "removed from Sprint 2 on 18 Nov, now Selected"),
        ],
    }


def test_missed_carry_over_names_the_items_carried_over_most_often():
    """Carried over in the period: PAY-1 (also from sprint 0 before it: 3 times), PAY-5 (2), PAY-7
    and PAY-3 (once; PAY-7 is still open, PAY-3 is done). 6 of 10 items at the sprints' ends."""
    value, status, behind = behind_of()["sprint-carry-over"]
    assert (value, status) == (60.0, "missed")
    assert behind == {
        "heading": "Items carried over most often",
        "items": [
            entry(1, "carried over 3 times since 16 Oct, last from Sprint 2, now In Progress"),
            entry(5, "carried over 2 times since 16 Oct, last from Sprint 2, now In Review"),
            entry(7, "carried over from Sprint 2, now In Progress"),
        ],
    }


def test_missed_scope_change_names_the_items_added_mid_sprint_latest_first():
    """3 added (PAY-9, PAY-6, PAY-7) and 1 removed (PAY-4) against 8 committed: 50%."""
    value, status, behind = behind_of()["sprint-scope-change"]
    assert (value, status) == (50.0, "missed")
    assert behind == {
        "heading": "Items added mid-sprint",
        "items": [
            entry(7, "added to Sprint 2 on 20 Nov, now In Progress"),
            entry(6, "added to Sprint 2 on 17 Nov, now Done"),
            entry(9, "added to Sprint 1 on 4 Nov, now Done"),
        ],
    }


def test_one_sprint_in_the_period_names_its_removals_too():
    """7 days (18 – 24 Nov): sprint 2 only. Two additions leave room for the removal."""
    figures = behind_of(period_days=7)
    assert figures["sprint-scope-change"][2] == {
        "heading": "Items added or removed mid-sprint",
        "items": [
            entry(7, "added to Sprint 2 on 20 Nov, now In Progress"),
            entry(6, "added to Sprint 2 on 17 Nov, now Done"),
            entry(4, "removed from Sprint 2 on 18 Nov, now Selected"),
        ],
    }
    assert [i["detail"] for i in figures["sprint-completion"][2]["items"]] == [
        "not done at the end of Sprint 2, now In Progress",
        "removed from Sprint 2 on 18 Nov, now Selected",
        "not done at the end of Sprint 2, now In Review",
    ]


def test_a_figure_on_target_names_nothing():
    db = new_db()
    build(db)
    t = replace(scrum_team(), targets={"sprint-completion": 20.0})
    [figure, *_] = build_digest(db, t, NOW).figures
    assert (figure.metric.id, figure.target_status, figure.result.signal) == (
        "sprint-completion",
        "met",
        None,
    )
    assert figure.behind is None


# -- through Slack: the digest preview's Block Kit ---------------------------------------------------------
@pytest.fixture
def app(tmp_path):
    path = tmp_path / "app.db"
    db = open_db(path)
    build(db)
    # A sprint name and a title are tool text: both reach mrkdwn escaped.
    db.execute("update sprints set name = 'Sprint 2 <!here>' where id = '2'")
    db.execute("update work_items set summary = 'Pay <@U1> & refunds' where key = 'PAY-1'")
    t = scrum_team()
    save_team(db, t, "test")
    db.conn.close()
    with MockSlack(members={t.channel: ["U1"]}) as slack:
        yield slack_app(path, slack), slack, t


def test_the_digest_preview_lists_the_work_under_each_missed_sprint_figure(app):
    app, slack, t = app
    command(app, "digest", channel=t.channel, response_url=f"{slack.url}/response/1")
    [preview] = slack.responses()
    preview.pop("replace_original")
    preview.pop("response_type")
    assert_valid_message(preview)
    sections = [b["text"]["text"] for b in preview["blocks"] if b.get("type") == "section" and "text" in b]
    [completion] = [s for s in sections if s.startswith("*Sprint completion (say/do)*")]
    assert (
        "*Committed items left undone in the period's sprints*\n"
        "• <https://jira.example/browse/PAY-1|PAY-1> Pay &lt;@U1&gt; &amp; refunds — not done at the end of"
        " Sprint 2 &lt;!here&gt; (left undone in 2 of the period's sprints), now In Progress\n"
        "• <https://jira.example/browse/PAY-5|PAY-5> summary of PAY-5 — not done at the end of"
        " Sprint 2 &lt;!here&gt; (left undone in 2 of the period's sprints), now In Review\n"
        "• <https://jira.example/browse/PAY-4|PAY-4> summary of PAY-4 — removed from"
        " Sprint 2 &lt;!here&gt; on 18 Nov, now Selected"
    ) in completion
    [carry] = [s for s in sections if s.startswith("*Sprint carry-over*")]
    assert "*Items carried over most often*\n• <https://jira.example/browse/PAY-1|PAY-1>" in carry
    [scope] = [s for s in sections if s.startswith("*Sprint scope change*")]
    assert "*Items added mid-sprint*\n• <https://jira.example/browse/PAY-7|PAY-7>" in scope
    text = json.dumps(preview)
    assert "<!here>" not in text and "<@U1>" not in text
