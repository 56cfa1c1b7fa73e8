"""Experiments that ran their course: judged, and the verdict posted to the team's channel, once.

Every 15 minutes (``bot.schedule.scheduler``) the job concludes each experiment whose end has passed
(``experiments.due`` → ``conclude``, which stores a verdict once however often it is called), then
posts every verdict not yet in its channel. An experiment whose metric's sources have not synced up
to its end is left running and asked again at the next run, up to ``experiments.SYNC_WAIT`` (2 days)
after its end; then it concludes *not enough data for a verdict*, saying which source is behind. A verdict has one delivery key, ``team/experiment-verdict/
<id>``, whether it comes from this job or from a member's "Stop early" (``post_verdict`` is shared),
and both claim it exclusively (``deliver(exclusive=True)``): a stop racing the scheduled end, or a
click while the job posts, can never put two verdicts in the channel.

What the ledger says decides the rest. A post that failed (a channel that refused, Slack down) stays
unsettled and is tried again at the next run, after the delivery ledger's history check (a timeout may
hide a post that landed), for ``GRACE``; after that it is left as the ledger says (failed, with
Slack's error), and a verdict never attempted at all (a stop whose process died before posting) is
recorded skipped and logged: a verdict is never posted days late. A team with no channel (or no
longer a team) gets its experiment concluded and nothing posted, recorded skipped so it is not
looked at again.

Each experiment belongs to a workspace (``exp.workspace``): its team is looked up there, its key
carries it, and its verdict is posted with that workspace's bot client. Concluding is the
deployment's (``experiments.due`` is global); posting is per workspace, and a workspace with no client
(uninstalled: ``clients`` gives None) is passed over, nothing posted and nothing recorded, so its
verdicts are tried again at the next run while within ``GRACE`` (after that they are recorded
skipped by the run that sees them, as any other).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

import sqlite_utils
from slack_sdk import WebClient

from bot.render.experiment import verdict_message
from bot.schedule.delivery import ChannelPacer, Key, Outcome, deliver, record_skipped, settled
from metrics import experiments as ex
from metrics.errors import VsmError, error_line
from metrics.teams import Team, get_team
from metrics.workspace import SINGLE, Workspace, shown

log = logging.getLogger("vsm.scheduler")

KIND = "experiment-verdict"
GRACE = timedelta(days=2)  # a verdict that could not be posted is retried this long
LOOKBACK = GRACE + timedelta(days=1)  # how far back unposted verdicts are looked for (past GRACE: skipped)
AHEAD = timedelta(days=1)  # the range looked in ends past now (it is exclusive): see ``unposted``


def verdict_key(exp: ex.Experiment) -> Key:
    """The one delivery key of an experiment's verdict, for the job and for Stop early alike."""
    return Key(exp.team, KIND, str(exp.id), exp.workspace)


def _team(db: sqlite_utils.Database, exp: ex.Experiment) -> Team | None:
    """The experiment's team, in the experiment's workspace (the same name may be another's)."""
    try:
        return get_team(db, exp.team, ws=exp.workspace)
    except VsmError:
        return None


def post_verdict(
    db: sqlite_utils.Database, client: WebClient, exp: ex.Experiment, pacer: ChannelPacer | None = None
) -> Outcome:
    """Post a concluded experiment's verdict to its team's channel, at most once (an exclusive claim
    of ``verdict_key``). A team without a channel: recorded skipped, nothing posted."""
    key = verdict_key(exp)
    team = _team(db, exp)
    if team is None or not team.channel:
        note = "the team has no channel" if team else "the team no longer exists"
        record_skipped(db, key, "", note)
        return Outcome(key, "skipped", error=note)
    return deliver(db, client, key, verdict_message(exp, team), pacer=pacer, exclusive=True)


def unposted(db: sqlite_utils.Database, now: datetime, *, ws: Workspace = SINGLE) -> list[ex.Experiment]:
    """The workspace's concluded experiments whose verdict is not settled in the ledger (never
    attempted, failed, or a crashed attempt), concluded within ``GRACE``. Older ones are not tried
    again; one never attempted is recorded skipped (``record_skipped`` leaves a failed attempt's row as
    it is)."""
    at = now.timestamp()
    out = []
    # Past ``now``: this run stamps its own conclusions with ``now``, and the range's end is exclusive.
    since, until = at - LOOKBACK.total_seconds(), at + AHEAD.total_seconds()
    for exp in ex.concluded_between(db, since, until, ws=ws):
        key = verdict_key(exp)
        if settled(db, key) is not None:
            continue
        if (exp.concluded_at or 0) < at - GRACE.total_seconds():
            team = _team(db, exp)
            record_skipped(
                db,
                key,
                team.channel if team else "",
                f"not posted within {GRACE.days} days of its conclusion",
            )
            continue
        out.append(exp)
    return out


def run_verdicts(
    db: sqlite_utils.Database,
    clients: Callable[[Workspace], WebClient | None],
    now: datetime,
    pacer: ChannelPacer | None = None,
    *,
    workspaces: Iterable[Workspace] = (SINGLE,),
) -> list[Outcome]:
    """Conclude every experiment due by ``now`` (every workspace's), then post each verdict of
    ``workspaces`` not yet posted, once, with that workspace's client (``clients``; None: the
    workspace is no longer installed, passed over until the next run). One experiment that cannot be
    judged or posted, or one workspace, never holds up the others."""
    for exp in ex.due(db, now):
        try:
            done = ex.conclude(db, exp, now)
            if done.running:  # its data is not current to its end yet: asked again next run
                log.info("experiment #%s waits for its data: %s", exp.id, ex.waiting_for(db, done))
        except Exception as exc:  # noqa: BLE001 - logged in one line; tried again at the next run
            log.error("experiment #%s not concluded: %s", exp.id, error_line(exc))
    outcomes = []
    for ws in workspaces:
        outcomes.extend(_post_unposted(db, clients, now, pacer, ws))
    return outcomes


def _post_unposted(
    db: sqlite_utils.Database,
    clients: Callable[[Workspace], WebClient | None],
    now: datetime,
    pacer: ChannelPacer | None,
    ws: Workspace,
) -> list[Outcome]:
    """One workspace's verdicts not yet posted, each posted once with the workspace's client."""
    try:
        pending = unposted(db, now, ws=ws)
    except Exception as exc:  # noqa: BLE001 - one workspace's failure never holds up another's
        log.error("verdicts of %s not looked for: %s", shown(ws), error_line(exc))
        return []
    if not pending:
        return []
    try:
        client = clients(ws)
    except Exception as exc:  # noqa: BLE001 - e.g. a token renewal Slack refused: tried next run
        log.warning("verdicts of %s not posted: no client: %s", shown(ws), error_line(exc))
        return []
    if client is None:  # uninstalled since it was listed: its verdicts wait for the next run
        log.info("%d verdicts of %s not posted: not installed", len(pending), shown(ws))
        return []
    outcomes = []
    for exp in pending:
        try:
            outcome = post_verdict(db, client, exp, pacer)
        except Exception as exc:  # noqa: BLE001 - a rendering bug: logged, the others still go out
            log.error("verdict of experiment #%s not posted: %s", exp.id, error_line(exc))
            continue
        log.info("verdict %s: %s", outcome.key, outcome.state)
        outcomes.append(outcome)
    return outcomes
