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

Workspaces (issue 14): every job is one workspace's (``metrics.workspace``), its id names it
(``digest:T1:payments``; single-workspace mode keeps ``digest:payments``) and so does every key it
delivers under (``T1:payments/digest/<date>``: ``Key``). In single-workspace mode (``SLACK_BOT_TOKEN``)
the scheduler serves SINGLE with its one client, as it always did. With many installations it is given
``workspaces`` (those installed now) and ``clients`` (a workspace's bot client, None once it is
uninstalled): ``plan_workspace`` plans a workspace's teams and org digest when it is installed,
``unplan_workspace`` removes them all at once when it is uninstalled, and a job that fires for a
workspace with no client sends nothing and records nothing (logged), so the workspace's teams and
ledger are as they were if it installs again. A settings save that finishes after its workspace was
uninstalled plans nothing (``plan_team``/``plan_org`` ask ``workspaces`` under the planning lock
``unplan_workspace`` takes too).

A dead token (issue 14): when Slack answers a digest, nudge or verdict of an installed workspace with
``account_inactive``, ``invalid_auth``, ``token_revoked`` or ``not_authed`` (``delivery.DEAD_TOKEN``),
the workspace uninstalled while ``vsm serve`` was down and its event never arrived. The scheduler then
tells ``on_dead_token(ws, token)`` once (``vsm serve``: the uninstall event's own path, its installation
removed and its jobs stopped) instead of failing at every run. In single-workspace mode, where the token
is the operator's ``SLACK_BOT_TOKEN``, it only logs, loudly, and deletes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from slack_sdk import WebClient

from bot.render import nudge as nudge_view
from bot.render import org_digest as org_digest_view
from bot.render.digest import message as digest_message
from bot.schedule.delivery import (
    ChannelPacer,
    Key,
    Outcome,
    dead_token,
    deliver,
    record_skipped,
    settled,
)
from bot.schedule.verdicts import run_verdicts
from bot.store import Store
from metrics.digest import build_digest, digest_window
from metrics.errors import VsmError, error_line
from metrics.nudges import find_nudges, last_weekday, record_nudged
from metrics.org import org_timezone, org_window
from metrics.org_digest import build_org_digest
from metrics.teams import DAYS, ORG_DIGEST, ORG_LOG, Team, get_org, get_team, list_teams, org_settings
from metrics.timeutil import zone
from metrics.workspace import SINGLE, Workspace, shown

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


def digest_key(team: Team, fired: datetime, *, ws: Workspace = SINGLE) -> Key:
    """A digest's delivery key: its workspace, its team and the local date it was due."""
    return scheduled_key(team, fired.astimezone(team.tz).date(), ws=ws)


def scheduled_key(team: Team, day: date, *, ws: Workspace = SINGLE) -> Key:
    """The key of the team's scheduled digest due on the local date ``day``."""
    return Key(team.name, "digest", day.isoformat(), ws)


MANUAL = "digest-posted"


def manual_key(team: Team, day: date, *, ws: Workspace = SINGLE) -> Key:
    """The key of the digest a member posted by hand (**Post to channel**) in the digest cycle that
    began on ``day`` (a scheduled digest day): one such post per cycle."""
    return Key(team.name, MANUAL, day.isoformat(), ws)


# -- the organisation's digest -------------------------------------------------------------------------
ORG = ORG_LOG  # the org's name in the ledger, as in the settings log: never a team's (see above)
ORG_KIND, ORG_POSTED_KIND = "org-digest", "org-digest-posted"  # the ledger kinds
ORG_JOB = "org-digest"  # single-workspace mode's org digest job (``org_job``)


def job_id(kind: str, ws: Workspace, name: str | None = None) -> str:
    """A job's id: its kind (``digest``, ``nudges``, ``org-digest``), its workspace unless SINGLE, and
    its team. Unambiguous: a team name holds no ``:``."""
    return ":".join(part for part in (kind, ws, name) if part)


def org_job(ws: Workspace = SINGLE) -> str:
    """The id of the workspace's org digest job (``ORG_JOB`` in single-workspace mode)."""
    return job_id(ORG_JOB, ws)


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


def org_key(day: date, *, ws: Workspace = SINGLE) -> Key:
    """The key of the workspace's org digest due on the org-local date ``day``."""
    return Key(ORG, ORG_KIND, day.isoformat(), ws)


def org_manual_key(day: date, *, ws: Workspace = SINGLE) -> Key:
    """The key of the org digest an org channel member posted by hand in the cycle that began on
    ``day`` (an org digest day): one such post per cycle."""
    return Key(ORG, ORG_POSTED_KIND, day.isoformat(), ws)


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
    """Plans, fires and catches up digests and nudges, each workspace's with its own client;
    optionally runs source syncs on an interval."""

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
        clients: Callable[[Workspace], WebClient | None] | None = None,
        workspaces: Callable[[], list[Workspace]] | None = None,
        on_dead_token: Callable[[Workspace, str | None], object] | None = None,
    ):
        """``client`` serves single-workspace mode. With many installations, ``workspaces`` lists
        those installed now and ``clients`` gives one's bot client (None once it is uninstalled);
        without them the scheduler serves SINGLE alone, with ``client``. ``on_dead_token(ws, token)``
        is told, once, that Slack refused ``ws``'s bot ``token`` as dead (see the module's
        docstring); without it, or for SINGLE, that is only logged."""
        self.store, self.client = store, client
        self.clients = clients or self._single_client
        self.workspaces = workspaces or (lambda: [SINGLE])
        self._listed = workspaces is not None  # only installed workspaces are planned
        self.on_dead_token = on_dead_token
        self._dead: set[tuple[Workspace, str | None]] = set()  # (workspace, token) already told
        self._dead_lock = threading.Lock()
        # Planning a workspace's jobs and removing them all are one at a time: a settings save cannot
        # re-add jobs between an uninstall's check and its removal.
        self._planning = threading.RLock()
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

    def _single_client(self, ws: Workspace) -> WebClient | None:
        """Single-workspace mode's clients: the one client, for SINGLE only."""
        return self.client if ws == SINGLE else None

    def _client(self, ws: Workspace, what: object) -> WebClient | None:
        """The workspace's bot client; None (logged) when it is no longer installed, or its client
        cannot be had (a token renewal failed): then nothing is sent and nothing recorded, so its
        ledger is as it was if it installs again."""
        try:
            client = self.clients(ws)
        except Exception as exc:  # noqa: BLE001 - e.g. a token renewal Slack refused: as not installed
            log.warning("%s not sent: no client for %s: %s", what, shown(ws), error_line(exc))
            return None
        if client is None:
            log.info("%s not sent: %s is not installed", what, shown(ws))
        return client

    def _token_dead(self, ws: Workspace, client: WebClient, outcomes: list[Outcome]) -> bool:
        """Whether Slack refused ``client``'s token as dead in any of ``outcomes``; if so, and for the
        first time, said in one line (no token) and, for an installed workspace, ``on_dead_token`` is
        told (its installation removed, its jobs stopped: the uninstall event's path)."""
        error = next((o.error for o in outcomes if o.state == "failed" and dead_token(o.error)), None)
        if error is None:
            return False
        code = error.rsplit(": ", 1)[-1]
        token = getattr(client, "token", None)
        if ws == SINGLE or self.on_dead_token is None:
            log.error(
                "Slack refuses %s's bot token (%s): every digest, nudge and verdict fails until "
                "SLACK_BOT_TOKEN is replaced with a working one (was the app uninstalled?); nothing deleted",
                shown(ws),
                code,
            )
            return True
        with self._dead_lock:
            if (ws, token) in self._dead:
                return True
            self._dead.add((ws, token))
        log.warning("Slack refused the bot token of %s (%s): is the app uninstalled there?", shown(ws), code)
        try:
            acted = self.on_dead_token(ws, token)
        except Exception as exc:  # noqa: BLE001 - the next failure with this token is not told again
            log.error("%s: the dead token was not removed: %s", shown(ws), error_line(exc))
            return True
        if acted is False:  # not confirmed dead (Slack's passing trouble): the next failure asks again
            with self._dead_lock:
                self._dead.discard((ws, token))
        return True

    def _installed(self, ws: Workspace, what: str) -> bool:
        """Whether ``ws`` is one the scheduler serves (always, without ``workspaces``); if not, logged:
        a settings save finishing after its workspace was uninstalled plans nothing."""
        if not self._listed or ws in self.workspaces():
            return True
        log.info("%s not planned: %s is not installed", what, shown(ws))
        return False

    # -- planning --------------------------------------------------------------------------------
    def plan_team(self, team: Team, ws: Workspace = SINGLE) -> None:
        """(Re)place the team's jobs; called at start and after every settings change
        (``Deps.on_team_saved``, with the workspace the change was made in): none for a workspace
        not installed (uninstalled while the change was being saved)."""
        with self._planning:
            if self._installed(ws, f"digest and nudges of {team.name}"):
                self._plan_team(team, ws)

    def _plan_team(self, team: Team, ws: Workspace) -> None:
        if not team.channel:
            self.unplan_team(team.name, ws=ws)
            return
        for kind, run, trigger in (
            ("digest", self.run_digest, digest_trigger(team)),
            ("nudges", self.run_nudges, nudge_trigger(team)),
        ):
            self.aps.add_job(
                run,
                trigger,
                args=[team.name],
                kwargs={"ws": ws},
                id=job_id(kind, ws, team.name),
                name=f"{kind} for {team.name}" + (f" in {shown(ws)}" if ws else ""),
                replace_existing=True,
            )

    def unplan_team(self, name: str, *, ws: Workspace = SINGLE) -> None:
        for kind in ("digest", "nudges"):
            self._remove(job_id(kind, ws, name))

    def _remove(self, job: str) -> None:
        if self.aps.get_job(job) is not None:
            self.aps.remove_job(job)

    def plan_org(self, ws: Workspace = SINGLE) -> None:
        """(Re)place the workspace's org digest job; called at start and after every org settings
        change (``Deps.on_org_saved``): a job while ``[org] channel`` is set, none when it is not (or
        when the org's zone is unknown, which ``set_org`` refuses, so only a hand-edited database can
        hold one: logged, not guessed), none for a workspace not installed."""
        with self._planning:
            if self._installed(ws, "organisation digest"):
                self._plan_org(ws)

    def _plan_org(self, ws: Workspace) -> None:
        org = get_org(self.store.db, ws=ws)
        trigger = None
        if org.get("channel"):
            try:
                trigger = org_trigger(org)
            except (VsmError, ValueError) as exc:
                log.warning("org digest not planned: %s (%s)", exc, shown(ws))
        if trigger is None:
            self._remove(org_job(ws))
            return
        self.aps.add_job(
            self.run_org_digest,
            trigger,
            kwargs={"ws": ws},
            id=org_job(ws),
            name="organisation digest" + (f" of {shown(ws)}" if ws else ""),
            replace_existing=True,
        )

    def plan_workspace(self, ws: Workspace) -> None:
        """Plan every team of the workspace and its org digest, and drop any job of it that the
        database no longer calls for: at start, and when the workspace is installed (again: the
        teams it had come back with their schedules); nothing for a workspace not installed."""
        with self._planning:
            if self._installed(ws, "digests and nudges"):
                self._plan_workspace(ws)

    def _plan_workspace(self, ws: Workspace) -> None:
        with self._dead_lock:  # installed again: a token of it found dead later is told again
            self._dead = {dead for dead in self._dead if dead[0] != ws}
        teams = list_teams(self.store.db, ws=ws)
        for team in teams:
            self._plan_team(team, ws)
        self._plan_org(ws)
        wanted = {job_id(k, ws, t.name) for t in teams for k in ("digest", "nudges")} | {org_job(ws)}
        for job in list(self._jobs_of(ws)):
            if job.id not in wanted:
                self._remove(job.id)

    def unplan_workspace(self, ws: Workspace) -> None:
        """Remove every job of the workspace at once (``Deps.on_uninstalled``: the app was uninstalled
        there or its tokens revoked); its teams, settings and ledger stay in the database."""
        with self._planning:
            jobs = list(self._jobs_of(ws))
            for job in jobs:
                self._remove(job.id)
        log.info("%s: %d jobs removed", shown(ws), len(jobs))

    def _jobs_of(self, ws: Workspace) -> Iterator[Job]:
        """The workspace's jobs (the verdict and sync jobs are the deployment's: no workspace)."""
        return (job for job in self.aps.get_jobs() if "ws" in job.kwargs and job.kwargs["ws"] == ws)

    def plan_all(self) -> None:
        """Every installed workspace's jobs (listed once, under the planning lock), then the
        deployment's: the verdicts and the sync."""
        with self._planning:
            for ws in self.workspaces():
                try:
                    self._plan_workspace(ws)
                except Exception as exc:  # noqa: BLE001 - one workspace's bad row never stops another's
                    log.error("%s not planned: %s", shown(ws), error_line(exc))
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

    def next_digest(self, team_name: str, *, ws: Workspace = SINGLE) -> datetime | None:
        return self._next(job_id("digest", ws, team_name))

    def next_org_digest(self, *, ws: Workspace = SINGLE) -> datetime | None:
        return self._next(org_job(ws))

    def _next(self, job: str) -> datetime | None:
        planned = self.aps.get_job(job)
        if planned is None:
            return None
        return planned.trigger.get_next_fire_time(None, self.clock())

    def start(self) -> None:
        """Plan every team, send what a downtime missed, then run the jobs in a background thread."""
        self.plan_all()
        self.catch_up()
        self.aps.start()

    def shutdown(self) -> None:
        if self.aps.running:
            self.aps.shutdown(wait=False)

    # -- firing ----------------------------------------------------------------------------------
    def run_digest(
        self, team_name: str, fired: datetime | None = None, *, ws: Workspace = SINGLE
    ) -> Outcome | None:
        """Compose the team's digest now for the fire time it belongs to, and deliver it once.
        ``fired`` defaults to the schedule's latest fire time. None: the workspace is not installed
        (nothing sent, nothing recorded)."""
        db = self.store.db
        team = get_team(db, team_name, ws=ws)
        now = self.clock()
        fired = fired or last_fire(digest_trigger(team), now) or now
        key = digest_key(team, fired, ws=ws)
        window = digest_window(team, fired.astimezone(team.tz))
        return self._deliver_due(
            "digest",
            key,
            manual_key(team, date.fromisoformat(key.period), ws=ws),
            team.channel,
            fired,
            lambda late: digest_message(
                build_digest(db, team, now, window=window, ws=ws), now, channel=team.channel, late=late
            ),
        )

    def run_org_digest(self, fired: datetime | None = None, *, ws: Workspace = SINGLE) -> Outcome | None:
        """Compose the workspace's org digest now (from the figures stored after the last sync, where
        still current) over the period its fire time closes, and deliver it once to ``[org]
        channel``; None when the org has no channel (the job is being removed) or the workspace is
        not installed. ``fired`` defaults to the schedule's latest fire time."""
        db = self.store.db
        org = get_org(db, ws=ws)
        channel = org.get("channel")
        if not channel:
            return None
        now = self.clock()
        fired = fired or last_fire(org_trigger(org), now) or now
        local = fired.astimezone(org_tz(org))
        window = org_window(org, local)
        return self._deliver_due(
            "org digest",
            org_key(local.date(), ws=ws),
            org_manual_key(local.date(), ws=ws),
            channel,
            fired,
            lambda late: org_digest_view.message(
                build_org_digest(db, now, window=window, ws=ws), now, channel=channel, late=late
            ),
        )

    def _deliver_due(
        self,
        what: str,
        key: Key,
        manual: Key,
        channel: str,
        fired: datetime,
        compose: Callable[[datetime | None], dict],
    ) -> Outcome | None:
        """A digest (a team's or the org's) due at ``fired``: nothing composed when it is settled or was
        posted by hand that day (``_done``), or when its workspace has no client (None); else its
        message composed now (figures as they stand: stored ones where still current; ``compose``
        is given the fire time when it is late, for the note) and delivered once under ``key``,
        logging how long composing took, sending apart."""
        db = self.store.db
        done = _done(db, key, manual, channel)
        if done is not None:
            return done
        client = self._client(key.workspace, key)
        if client is None:
            return None
        now = self.clock()
        late = fired if now - fired > LATE_AFTER else None
        began = time.perf_counter()
        payload = compose(late)
        composed = round(1000 * (time.perf_counter() - began), 2)
        outcome = deliver(self.store.db, client, key, payload, pacer=self.pacer)
        outcome.compose_ms = composed
        log.info("%s %s: %s (composed in %.0f ms)", what, key, outcome.state, composed)
        self._token_dead(key.workspace, client, [outcome])
        return outcome

    def run_nudges(self, team_name: str, *, ws: Workspace = SINGLE) -> list[Outcome]:
        """Every nudge the team should get now, one message per kind, each delivered once; none
        while the workspace is not installed (nothing recorded: the same nudges are found again)."""
        db = self.store.db
        team = get_team(db, team_name, ws=ws)
        now = self.clock()
        nudges = find_nudges(db, team, now, ws=ws)
        if not nudges:
            return []
        client = self._client(ws, f"nudges for {team.name}")
        if client is None:
            return []
        outcomes = []
        for nudge in nudges:
            key = Key(team.name, f"nudge-{nudge.kind}", nudge.period, ws)
            outcome = deliver(db, client, key, nudge_view.message(team, nudge), pacer=self.pacer)
            if outcome.state in ("sent", "recovered"):
                record_nudged(db, team, nudge, now.timestamp(), ws=ws)
            outcomes.append(outcome)
            if self._token_dead(ws, client, [outcome]):
                break  # the other nudges would fail the same way
        return outcomes

    def run_verdicts(self) -> list[Outcome]:
        """Experiments whose time is up (every workspace's): judged, and each verdict posted to its
        team's channel once, with its workspace's client (see ``bot.schedule.verdicts``)."""
        used: dict[Workspace, WebClient | None] = {}  # each workspace's client, to see whose token died

        def client(ws: Workspace) -> WebClient | None:
            used[ws] = self.clients(ws)
            return used[ws]

        outcomes = run_verdicts(
            self.store.db, client, self.clock(), pacer=self.pacer, workspaces=self.workspaces()
        )
        for ws, each in used.items():
            if each is not None:
                self._token_dead(ws, each, [o for o in outcomes if o.key.workspace == ws])
        return outcomes

    def catch_up(self) -> list[Outcome]:
        """After downtime: each installed workspace's teams' latest scheduled digest, and its org's, if
        never delivered, goes out late when within the grace period; older ones are skipped and
        logged, never sent."""
        outcomes: list[Outcome | None] = []
        for ws in self.workspaces():
            try:
                outcomes.extend(self._catch_up_workspace(ws))
            except Exception as exc:  # noqa: BLE001 - one workspace never stops another being served
                log.error("catch-up of %s failed: %s", shown(ws), error_line(exc))
        return [o for o in outcomes if o is not None]

    def _catch_up_workspace(self, ws: Workspace) -> list[Outcome | None]:
        db = self.store.db
        now = self.clock()
        outcomes = []
        for team in list_teams(db, ws=ws):
            if not team.channel:
                continue
            fired = last_fire(digest_trigger(team), now)
            if fired is None:
                continue
            out = self._catch_up_one(
                digest_key(team, fired, ws=ws),
                team.channel,
                fired.astimezone(team.tz),
                now,
                lambda: self.run_digest(team.name, fired, ws=ws),  # noqa: B023 - called at once, in the loop
            )
            outcomes.append(out)
        try:
            outcomes.extend(self._catch_up_org(now, ws))
        except Exception as exc:  # noqa: BLE001 - the org's digest never stops the teams' being served
            log.error("org digest catch-up failed: %s (%s)", error_line(exc), shown(ws))
        return outcomes

    def _catch_up_org(self, now: datetime, ws: Workspace) -> list[Outcome | None]:
        """The org digest's catch-up, by the same rule as a team's."""
        org = get_org(self.store.db, ws=ws)
        channel = org.get("channel")
        if not channel:
            return []
        fired = last_fire(org_trigger(org), now)
        if fired is None:
            return []
        local = fired.astimezone(org_tz(org))
        return [
            self._catch_up_one(
                org_key(local.date(), ws=ws), channel, local, now, lambda: self.run_org_digest(fired, ws=ws)
            )
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
