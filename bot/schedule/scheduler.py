"""Each team's digest and nudges, when the team chose, in the team's own time zone, and the
organisation's digest in the org's (APScheduler 3).

One scheduler per deployment: ``vsm serve`` starts exactly one, in its own process. Two processes
sharing a database would both fire; the delivery ledger would still stop a second copy of a message,
but run one ``vsm serve`` per database (the README says so).

Jobs live in memory (no pickled job store): the database holds what matters, the teams' schedules and
the delivery ledger. So a restart re-plans every team from the database, and ``catch_up`` looks back
for the digest each team should have had: within ``grace`` it is sent late with a note, older ones
are recorded as skipped and logged.

Every trigger carries the team's ``ZoneInfo`` and weekday names (``mon``), never numbers: a cron "1"
is Tuesday in APScheduler 3. A settings change re-plans that team's jobs at once (``plan_team``).

The organisation's digest is one more job (``plan_org``): planned from ``[org] digest`` in ``[org]
timezone`` while ``[org] channel`` is set, removed when it is not, re-planned when an org admin
changes them (``Deps.on_org_saved``). It goes through the same ledger under its own keys, ``*org*/
org-digest/<local date>`` (and ``*org*/org-digest-posted/<cycle day>`` for Post to channel): a key
is ``team/kind/period``, and ``*org*``, the name the settings log already uses for the org, can never
be a team's name (a team name starts with a letter or digit and holds no ``*`` or ``/``), so no
team's digest, post or nudge can ever share a key, a row or a metadata tag with the org's.
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
from bot.render import org_digest as org_digest_view
from bot.render.digest import message as digest_message
from bot.schedule.delivery import ChannelPacer, Key, Outcome, deliver, record_skipped, settled
from bot.schedule.verdicts import run_verdicts
from bot.store import Store
from metrics.digest import build_digest, digest_window
from metrics.errors import VsmError, error_line
from metrics.nudges import find_nudges, last_weekday, record_nudged
from metrics.org import org_timezone, org_window
from metrics.org_digest import build_org_digest
from metrics.teams import DAYS, ORG_DIGEST, ORG_LOG, Team, get_org, get_team, list_teams, org_settings
from metrics.timeutil import zone
from metrics.workspace import SINGLE, Workspace

log = logging.getLogger("vsm.scheduler")

DEFAULT_GRACE = timedelta(hours=6)
LATE_AFTER = timedelta(minutes=10)  # a digest sent later than this says so
VERDICT_MINUTES = 15  # how often ended experiments are looked for: a verdict is at most this late


def _day_time(digest: dict, default_time: str) -> tuple[str, int, int]:
    """A digest setting's day (``mon``), hour and minute."""
    hour, minute = (int(x) for x in str(digest.get("time", default_time)).split(":"))
    return str(digest.get("day", "mon")).lower()[:3], hour, minute


def _at(team: Team) -> tuple[str, int, int]:
    """The team's digest day (``mon``), hour and minute."""
    return _day_time(team.digest, "09:00")


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


# -- the organisation's digest -------------------------------------------------------------------------
ORG = ORG_LOG  # the org's name in the ledger, as in the settings log: never a team's (see above)
ORG_KIND, ORG_POSTED_KIND = "org-digest", "org-digest-posted"  # the ledger kinds
ORG_JOB = "org-digest"


def org_digest_setting(org: dict) -> dict:
    """``[org] digest`` as it is in effect (``org_settings``: unset parts are the defaults, Mondays
    08:00 over 28 days); a malformed one reads as the defaults."""
    digest = org_settings(org)["digest"]
    return digest if isinstance(digest, dict) else dict(ORG_DIGEST)


def org_tz(org: dict):
    """The org's ``ZoneInfo`` (``[org] timezone``, default UTC); a bad name is a ``VsmError``."""
    return zone(org_timezone(org))


def org_trigger(org: dict) -> CronTrigger:
    """``[org] digest``'s day and time (default Mondays 08:00) in the org's time zone."""
    day, hour, minute = _day_time(org_digest_setting(org), ORG_DIGEST["time"])
    return CronTrigger(day_of_week=day, hour=hour, minute=minute, timezone=org_tz(org))


def org_key(day: date) -> Key:
    """The key of the org digest due on the org-local date ``day``."""
    return Key(ORG, ORG_KIND, day.isoformat())


def org_manual_key(day: date) -> Key:
    """The key of the org digest an org channel member posted by hand in the cycle that began on
    ``day`` (an org digest day): one such post per cycle."""
    return Key(ORG, ORG_POSTED_KIND, day.isoformat())


def org_cycle_day(org: dict, now: datetime) -> date:
    """The org digest day the current org digest cycle began on (today, on the digest day)."""
    today = now.astimezone(org_tz(org)).date()
    return last_weekday(today, _day_time(org_digest_setting(org), ORG_DIGEST["time"])[0])


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
    def plan_team(self, team: Team, ws: Workspace = SINGLE) -> None:
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

    def plan_org(self, ws: Workspace = SINGLE) -> None:
        """(Re)place the org digest's job; called at start and after every org settings change: a job
        while ``[org] channel`` is set, none when it is not (or when the org's zone is unknown, which
        ``set_org`` refuses, so only a hand-edited database can hold one: logged, not guessed)."""
        org = get_org(self.store.db)
        trigger = None
        if org.get("channel"):
            try:
                trigger = org_trigger(org)
            except (VsmError, ValueError) as exc:
                log.warning("org digest not planned: %s", exc)
        if trigger is None:
            if self.aps.get_job(ORG_JOB) is not None:
                self.aps.remove_job(ORG_JOB)
            return
        self.aps.add_job(
            self.run_org_digest, trigger, id=ORG_JOB, name="organisation digest", replace_existing=True
        )

    def plan_all(self) -> None:
        for team in list_teams(self.store.db):
            self.plan_team(team)
        self.plan_org()
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
        return self._next(f"digest:{team_name}")

    def next_org_digest(self) -> datetime | None:
        return self._next(ORG_JOB)

    def _next(self, job_id: str) -> datetime | None:
        job = self.aps.get_job(job_id)
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
        """Compose the team's digest now for the fire time it belongs to, and deliver it once.
        ``fired`` defaults to the schedule's latest fire time."""
        db = self.store.db
        team = get_team(db, team_name)
        now = self.clock()
        fired = fired or last_fire(digest_trigger(team), now) or now
        key = digest_key(team, fired)
        done = _done(db, key, manual_key(team, date.fromisoformat(key.period)), team.channel)
        if done is not None:
            return done
        late = fired if now - fired > LATE_AFTER else None
        window = digest_window(team, fired.astimezone(team.tz))
        return self._compose_and_deliver(
            "digest",
            key,
            lambda: digest_message(
                build_digest(db, team, now, window=window), now, channel=team.channel, late=late
            ),
        )

    def run_org_digest(self, fired: datetime | None = None) -> Outcome | None:
        """Compose the org digest now (from the figures stored after the last sync, where still
        current) over the period its fire time closes, and deliver it once to ``[org] channel``; None when the org has no channel (the job is being
        removed). ``fired`` defaults to the schedule's latest fire time."""
        db = self.store.db
        org = get_org(db)
        channel = org.get("channel")
        if not channel:
            return None
        now = self.clock()
        fired = fired or last_fire(org_trigger(org), now) or now
        local = fired.astimezone(org_tz(org))
        key = org_key(local.date())
        done = _done(db, key, org_manual_key(local.date()), channel)
        if done is not None:
            return done
        late = fired if now - fired > LATE_AFTER else None
        window = org_window(org, local)
        return self._compose_and_deliver(
            "org digest",
            key,
            lambda: org_digest_view.message(
                build_org_digest(db, now, window=window), now, channel=channel, late=late
            ),
        )

    def _compose_and_deliver(self, what: str, key: Key, compose: Callable[[], dict]) -> Outcome:
        """Compose a digest's message now (figures as they stand: stored ones where still current)
        and deliver it once under ``key``, logging how long composing took, sending apart."""
        began = time.perf_counter()
        payload = compose()
        composed = round(1000 * (time.perf_counter() - began), 2)
        outcome = deliver(self.store.db, self.client, key, payload, pacer=self.pacer)
        outcome.compose_ms = composed
        log.info("%s %s: %s (composed in %.0f ms)", what, key, outcome.state, composed)
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
        """After downtime: each team's latest scheduled digest, and the org's, if never delivered, goes
        out late when within the grace period; older ones are skipped and logged, never sent."""
        db = self.store.db
        now = self.clock()
        outcomes = []
        for team in list_teams(db):
            if not team.channel:
                continue
            fired = last_fire(digest_trigger(team), now)
            if fired is None:
                continue
            out = self._catch_up_one(
                digest_key(team, fired),
                team.channel,
                fired.astimezone(team.tz),
                now,
                lambda: self.run_digest(team.name, fired),  # noqa: B023 - called at once, in the loop
            )
            outcomes.append(out)
        try:
            outcomes.extend(self._catch_up_org(now))
        except Exception as exc:  # noqa: BLE001 - the org's digest never stops the teams' being served
            log.error("org digest catch-up failed: %s", error_line(exc))
        return [o for o in outcomes if o is not None]

    def _catch_up_org(self, now: datetime) -> list[Outcome | None]:
        """The org digest's catch-up, by the same rule as a team's."""
        org = get_org(self.store.db)
        channel = org.get("channel")
        if not channel:
            return []
        fired = last_fire(org_trigger(org), now)
        if fired is None:
            return []
        local = fired.astimezone(org_tz(org))
        return [
            self._catch_up_one(org_key(local.date()), channel, local, now, lambda: self.run_org_digest(fired))
        ]

    def _catch_up_one(
        self, key: Key, channel: str, fired: datetime, now: datetime, send: Callable[[], Outcome | None]
    ) -> Outcome | None:
        """One message due at ``fired`` (its local time): nothing to do when settled (None); sent
        late when within the grace period; else recorded skipped and logged, never sent."""
        if settled(self.store.db, key) is not None:
            return None
        if now - fired <= self.grace:
            return send()
        late = f"missed at {fired:%a %d %b %H:%M %Z}; more than {self.grace} ago"
        record_skipped(self.store.db, key, channel, late)
        return Outcome(key, "skipped", error=late)


def _done(db, key: Key, manual: Key, channel: str) -> Outcome | None:
    """A scheduled digest that needs no composing: already settled (sent or skipped), or taken by a
    Post to channel earlier in the day it was due (the same days: recorded skipped, logged)."""
    done = settled(db, key)  # checked before composing: a sent digest costs no figures
    if done is not None:
        return done
    by_hand = settled(db, manual)
    if by_hand is not None and by_hand.state in ("sent", "recovered", "already-sent"):
        # Posted by hand earlier today: the same days, so the channel has this digest already.
        note = "posted by hand before its time (Post to channel)"
        record_skipped(db, key, channel, note)
        return Outcome(key, "skipped", error=note)
    return None
