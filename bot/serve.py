"""``vsm serve``: the Slack app in Socket Mode (default) or as an HTTP endpoint with signed requests,
and the one scheduler of the deployment (digests, nudges, source syncs)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import timedelta
from functools import partial

from bot.app import create_app, web_client
from bot.scheduler import Scheduler
from bot.store import Store
from metrics.config import Config
from metrics.errors import VsmError
from metrics.sources.sync import sync_sources
from metrics.store import open_db
from metrics.teams import seed_from_config

log = logging.getLogger("vsm.serve")


def sync_job(sources: list[dict], db_path: str) -> None:
    """One scheduled sync of every source; failures are recorded per source and logged, never raised."""
    db = open_db(db_path)
    try:
        for result in sync_sources(db, sources):
            if result.ok:
                log.info("sync %s: %d changed", result.name, result.changed)
            else:
                log.warning("sync %s failed: %s", result.name, "; ".join(result.errors))
    finally:
        db.conn.close()


def _need(env: Mapping[str, str], name: str, why: str) -> str:
    value = env.get(name)
    if not value:
        raise VsmError(f"environment variable {name} is not set ({why})")
    return value


def serve(
    cfg: Config,
    db_path: str,
    *,
    http: bool,
    port: int,
    host: str = "127.0.0.1",
    env: Mapping[str, str] | None = None,
) -> None:
    env = os.environ if env is None else env
    bot_token = _need(env, "SLACK_BOT_TOKEN", "the bot token, xoxb-…")
    if http:
        secret = _need(env, "SLACK_SIGNING_SECRET", "HTTP mode verifies every request's signature")
    else:
        app_token = _need(env, "SLACK_APP_TOKEN", "Socket Mode's app-level token, xapp-…")
        secret = None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    db = open_db(db_path)  # the bot may start before the first sync: it creates the database
    for warning in seed_from_config(db, cfg.teams, cfg.org):
        logging.getLogger("vsm").warning(warning)
    db.conn.close()
    store = Store(db_path)
    client = web_client(bot_token, env.get("SLACK_API_URL") or cfg.slack_api_url)
    scheduler = Scheduler(
        store,
        client,
        grace=timedelta(hours=cfg.grace_hours),
        sync=partial(sync_job, cfg.sources, db_path) if cfg.sources else None,
        sync_minutes=int(cfg.sync_every_minutes),
    )
    app = create_app(
        store,
        client,
        signing_secret=secret,
        admins=list(cfg.org.get("admins", [])),
        on_team_saved=scheduler.plan_team,
    )
    scheduler.start()
    if http:
        app.start(port=port, path="/slack/events")
    else:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        SocketModeHandler(app, app_token).start()
