"""Thousands of random and hostile `/vsm` texts: a short ephemeral answer each, nothing raised or written."""

import hashlib
import json
import random
import sqlite3

from fakes.slack import MockSlack
from slackkit import NOW, SECRET, ack_json, command

from bot.app import create_app, web_client
from bot.command_parse import parse
from bot.store import Store
from metrics.sample import sample_teams

HOSTILE = [
    "<!channel>",
    "<!here|here>",
    "<@U123>",
    "<#C123|general>",
    "<https://evil.example|click>",
    "&amp;&lt;&gt;",
    "'; drop table teams; --",
    "\x00\x01\x1b[31m",
    "%s%n%x",
    "{{ 7*7 }}",
    "{% raw %}",
    "../../etc/passwd",
    "*bold* _it_ ~s~ `code` ```block```",
    "ﷺ 𝕏 🤖 \u202e\u200b",
    "cycle-time 90d; rm -rf /",
    "forecast -1",
    "forecast 99999999999999999999",
    "forecast 1e3",
    "cycle-time 2026Q9",
    "cycle-time 0d",
    "metrics metrics",
    "help me please",
]
WORDS = [
    "cycle-time",
    "throughput",
    "forecast",
    "digest",
    "settings",
    "northstar",
    "help",
    "metrics",
    "90d",
    "chart",
]


def texts(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out = list(HOSTILE)
    alphabet = [chr(c) for c in range(32, 127)] + [
        "é",
        "ß",
        "字",
        "🙂",
        "\n",
        "\t",
        "<",
        ">",
        "&",
        "|",
        "!",
        "@",
    ]
    while len(out) < n:
        kind = rng.random()
        if kind < 0.4:
            out.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))))
        elif kind < 0.7:
            out.append(" ".join(rng.choice(WORDS + HOSTILE) for _ in range(rng.randint(2, 4))))
        elif kind < 0.8:
            out.append(rng.choice(WORDS) + " " + "x" * rng.randint(100, 5000))
        else:
            out.append(rng.choice(HOSTILE) + rng.choice(WORDS))
    return out


def content(path) -> str:
    """The database's logical content, less the flows a computation stores (metrics.store.flows: a
    cache derived from the other tables, which a metric command may fill)."""
    conn = sqlite3.connect(path)
    try:
        lines = (line for line in conn.iterdump() if not line.startswith('INSERT INTO "flows"'))
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()
    finally:
        conn.close()


def test_parse_never_raises_and_always_explains():
    for text in texts(5000):
        cmd = parse(text)
        assert cmd.name in (
            "help",
            "metrics",
            "digest",
            "settings",
            "northstar",
            "forecast",
            "metric",
            "error",
        )
        if cmd.name == "error":
            assert cmd.error and len(cmd.error) < 200


def test_fuzzed_commands_get_short_ephemeral_replies_and_write_nothing(sample_db, tmp_path):
    db_path = tmp_path / "fuzz.db"
    db_path.write_bytes(sample_db.read_bytes())
    channel = sample_teams()[0].channel
    before = content(db_path)
    with MockSlack(members={channel: ["U1"]}) as slack:
        app = create_app(
            Store(db_path),
            web_client("xoxb-test", slack.base_url),
            signing_secret=SECRET,
            process_before_response=True,
            clock=lambda: NOW,
        )
        for text in texts(2000):
            resp = command(app, text, channel=channel, response_url=f"{slack.url}/response/f")
            assert resp.status == 200, text
            body = ack_json(resp)
            if body:
                assert body.get("response_type") == "ephemeral", text
                assert 0 < len(body["text"]) < 4000
                dumped = json.dumps(body)
                for raw in ("<!channel>", "<!here", "<@U123>", "<#C123"):
                    assert raw not in dumped, (text, raw)
        for reply in slack.responses():
            assert reply.get("response_type", "ephemeral") == "ephemeral"
            assert "text" in reply and len(reply["text"]) < 4000
        assert not [c for c in slack.calls if c.method == "chat.postMessage"]  # nothing posted to channels
    assert content(db_path) == before
