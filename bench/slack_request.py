"""A ``/vsm`` slash command as Slack sends it, signed: what the benchmarks that drive the Slack app
send (slack_bench.py through Bolt's ``app.dispatch``, http_bench.py over HTTP to ``vsm serve --http``)."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

SECRET = "bench-signing-secret"


def signed_command(text: str, channel: str, response_url: str) -> tuple[str, dict[str, str]]:
    """The form body of ``/vsm <text>`` typed by U1 in ``channel``, and the headers that sign it now."""
    body = urlencode(
        {
            "command": "/vsm",
            "text": text,
            "team_id": "T1",
            "user_id": "U1",
            "channel_id": channel,
            "response_url": response_url,
            "trigger_id": "t",
        }
    )
    stamp = str(int(time.time()))
    return body, {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=body),
    }
