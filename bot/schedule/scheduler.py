"""Each team's digest and nudges, when the team chose, in the team's own time zone (APScheduler 3).

One scheduler per deployment: ``vsm serve`` starts exactly one, in its own process. Two processes
sharing a database would both fire; the delivery ledger would still stop a second copy of a message,
but run one ``vsm serve`` per database (the README says so).

Jobs live in memory (no pickled job store): the database holds what matters, the teams' schedules and
the delivery ledger. So a restart re-plans every team from the database, and ``catch_up`` looks back
for the digest each team should have had: within ``grace`` it is sent late with a note, older ones
are recorded as skipped and logged.

Every trigger carries the team's ``ZoneInfo`` and weekday names (``mon``), never numbers: a cron "1"
is Tuesday in APScheduler 3. A settings change re-plans that team's jobs at once (``plan_team``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from slack_sdk import WebClient

from bot.render import nudge as nudge_view
from bot.render.digest import message as digest_message
from bot.schedule.delivery import ChannelPacer, Key, Outcome, deliver, record_skipped, settled
from bot.schedule.verdicts import run_verdicts
from bot.store import Store
from metrics.digest import build_digest, digest_window
from metrics.nudges import find_nudges, record_nudged
from metrics.teams import DAYS, Team, get_team, list_teams

log = logging.getLogger("vsm.scheduler")

DEFAULT_GRACE = timedelta(hours=6)
LATE_AFTER = timedelta(minutes=10)  # a digest sent later than this says so
VERDICT_MINUTES = 15  # how often ended experiments are looked for: a verdict is at most this late


def _at(team: Team) -> tuple[str, int, int]:
    """The team's digest day (``mon``), hour and minute."""
    hour, minute = (int(x) for x in str(team.digest.get("time", "09:00")).split(":"))
    return str(team.digest.get("day", "mon")).lower()[:3], hour, minute


def digest_trigger(team: Team) -> CronTrigger:
    day, hour, minute = _at(team)
    return CronTrigger(day_of_week=day, hour=hour, minute=minute, timezone=team.tz)


def nudge_trigger(team: Team) -> CronTrigger:
    """Working days other than the digest day, at the digest time: between digests, not on top."""
    day, hour, minute = _at(team)
    days = ",".join(d for d in DAYS[:5] if d != day)
    return CronTrigger(day_of_week=days, hour=hour, minute=minute, timezone=team.tz)


def digest_key(team: Team, fired: datetime) -> Key:
    """A digest's delivery key: its team and the local date it was due."""
    return scheduled_key(team, fired.astimezone(team.tz).date())


def scheduled_key(team: Team, day: date) -> Key:
    """The key of the team's scheduled digest due on the local date ``day``."""
    return Key(team.name, "digest", day.isoformat())


MANUAL = "digest-posted"


def manual_key(team: Team, day: date) -> Key:
    """The key of the digest a member posted by hand (**Post to channel**) in the digest cycle that
    began on ``day`` (a scheduled digest day): one such post per cycle."""
    return Key(team.name, MANUAL, day.isoformat())


def last_fire(
    trigger: CronTrigger, now: datetime, lookback: timedelta = timedelta(days=8)
) -> datetime | None:
    """The trigger's latest fire time at or before ``now`` (APScheduler only looks forward)."""
    t = trigger.get_next_fire_time(None, now - lookback)
    last = None
    while t is not None and t <= now:
        last = t
        t = trigger.get_next_fire_time(t, t + timedelta(seconds=1))
    return last


class Scheduler:
    """Plans, fires and catches up digests and nudges; optionally runs source syncs on an interval."""

    def __init__(
        self,
        store: Store,
        client: WebClient,
        *,
        clock: Callable[[], datetime] | None = None,
        grace: timedelta = DEFAULT_GRACE,
        pacer: ChannelPacer | None = None,
        sync: Callable[[], object] | None = None,
        sync_minutes: int = 60,
    ):
        self.store, self.client = store, client
        self.clock = clock or (lambda: datetime.now(UTC))
        self.grace = grace
        self.pacer = pacer or ChannelPacer()
        self.sync, self.sync_minutes = sync, sync_minutes
        self.aps = BackgroundScheduler(
            timezone=UTC,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(grace.total_seconds()),
            },
        )

    # -- planning --------------------------------------------------------------------------------
    def plan_team(self, team: Team) -> None:
        """(Re)place the team's jobs; called at start and after every settings change."""
        if not team.channel:
            self.unplan_team(team.name)
            return
        for kind, run, trigger in (
            ("digest", self.run_digest, digest_trigger(team)),
            ("nudges", self.run_nudges, nudge_trigger(team)),
        ):
            self.aps.add_job(
                run,
                trigger,
                args=[team.name],
                id=f"{kind}:{team.name}",
                name=f"{kind} for {team.name}",
                replace_existing=True,
            )

    def unplan_team(self, name: str) -> None:
        for job_id in (f"digest:{name}", f"nudges:{name}"):
            if self.aps.get_job(job_id) is not None:
                self.aps.remove_job(job_id)

    def plan_org(self) -> None:
        """(Re)place the org digest's job; called at start and after every org settings change.
        (Issue 13: the org digest job is being built.)"""

    def plan_all(self) -> None:
        for team in list_teams(self.store.db):
            self.plan_team(team)
        self.aps.add_job(
            self.run_verdicts,
            IntervalTrigger(minutes=VERDICT_MINUTES, timezone=UTC),
            id="verdicts",
            name="experiment verdicts",
            replace_existing=True,
        )
        if self.sync is not None:
            self.aps.add_job(
                self.sync,
                IntervalTrigger(minutes=self.sync_minutes, timezone=UTC),
                id="sync",
                name="source sync",
                replace_existing=True,
                next_run_time=self.clock(),
            )

    def next_digest(self, team_name: str) -> datetime | None:
        job = self.aps.get_job(f"digest:{team_name}")
        if job is None:
            return None
        return job.trigger.get_next_fire_time(None, self.clock())

    def start(self) -> None:
        """Plan every team, send what a downtime missed, then run the jobs in a background thread."""
        self.plan_all()
        self.catch_up()
        self.aps.start()

    def shutdown(self) -> None:
        if self.aps.running:
            self.aps.shutdown(wait=False)

    # -- firing ----------------------------------------------------------------------------------
    def run_digest(self, team_name: str, fired: datetime | None = None) -> Outcome:
        """Compose the team's digest now (fresh figures) for the fire time it belongs to, and
        deliver it once. ``fired`` defaults to the schedule's latest fire time."""
        db = self.store.db
        team = get_team(db, team_name)
        now = self.clock()
        fired = fired or last_fire(digest_trigger(team), now) or now
        key = digest_key(team, fired)
        done = settled(db, key)  # checked before composing: a sent digest costs no figures
        if done is not None:
            return done
        by_hand = settled(db, manual_key(team, date.fromisoformat(key.period)))
        if by_hand is not None and by_hand.state in ("sent", "recovered", "already-sent"):
            # Posted by hand earlier today: the same days, so the channel has this digest already.
            note = "posted by hand before its time (Post to channel)"
            record_skipped(db, key, team.channel, note)
            return Outcome(key, "skipped", error=note)
        began = time.perf_counter()
        digest = build_digest(db, team, now, window=digest_window(team, fired.astimezone(team.tz)))
        payload = digest_message(
            digest, now, channel=team.channel, late=fired if now - fired > LATE_AFTER else None
        )
        composed = round(1000 * (time.perf_counter() - began), 2)
        outcome = deliver(db, self.client, key, payload, pacer=self.pacer)
        outcome.compose_ms = composed
        log.info("digest %s: %s (composed in %.0f ms)", key, outcome.state, composed)
        return outcome

    def run_nudges(self, team_name: str) -> list[Outcome]:
        """Every nudge the team should get now, one message per kind, each delivered once."""
        db = self.store.db
        team = get_team(db, team_name)
        now = self.clock()
        outcomes = []
        for nudge in find_nudges(db, team, now):
            key = Key(team.name, f"nudge-{nudge.kind}", nudge.period)
            outcome = deliver(db, self.client, key, nudge_view.message(team, nudge), pacer=self.pacer)
            if outcome.state in ("sent", "recovered"):
                record_nudged(db, team, nudge, now.timestamp())
            outcomes.append(outcome)
        return outcomes

    def run_verdicts(self) -> list[Outcome]:
        """Experiments whose time is up: judged, and each verdict posted to its team's channel once."""
        return run_verdicts(self.store.db, self.client, self.clock(), pacer=self.pacer)

    def catch_up(self) -> list[Outcome]:
        """After downtime: each team's latest scheduled digest, if never delivered, goes out late
        when within the grace period; older ones are skipped and logged, never sent."""
        db = self.store.db
        now = self.clock()
        outcomes = []
        for team in list_teams(db):
            if not team.channel:
                continue
            fired = last_fire(digest_trigger(team), now)
            if fired is None:
                continue
            key = digest_key(team, fired)
            if settled(db, key) is not None:
                continue
            if now - fired <= self.grace:
                outcomes.append(self.run_digest(team.name, fired))
            else:
                late = f"missed at {fired.astimezone(team.tz):%a %d %b %H:%M %Z}; more than {self.grace} ago"
                record_skipped(db, key, team.channel, late)
                outcomes.append(Outcome(key, "skipped", error=late))
        return outcomes
