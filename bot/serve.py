"""``vsm serve``: the Slack app in Socket Mode (default) or as an HTTP endpoint with signed requests."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from bot.app import create_app, web_client
from bot.store import Store
from metrics.config import Config
from metrics.errors import VsmError
from metrics.store import open_db
from metrics.teams import seed_from_config


def _need(env: Mapping[str, str], name: str, why: str) -> str:
    value = env.get(name)
    if not value:
        raise VsmError(f"environment variable {name} is not set ({why})")
    return value


def serve(cfg: Config, db_path: str, *, http: bool, port: int, env: Mapping[str, str] | None = None) -> None:
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
    app = create_app(
        Store(db_path),
        web_client(bot_token, env.get("SLACK_API_URL") or cfg.slack_api_url),
        signing_secret=secret,
        admins=list(cfg.org.get("admins", [])),
    )
    if http:
        app.start(port=port, path="/slack/events")
    else:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        SocketModeHandler(app, app_token).start()
