"""How fast `/vsm <metric>` is acknowledged and answered on the 1M-item benchmark database.

One command: ``python bench/slack_bench.py`` (after ``make bench`` has built ``bench/bench.db``).
Signed slash commands go through the Bolt app exactly as Slack sends them (``app.dispatch`` with
``process_before_response`` off, so the listener runs after the ack as in production); the Web API
and the response URL are a loopback mock Slack server. Two figures per request:

- acknowledgement: from dispatch to the HTTP answer Slack would get (target: p99 well under 3 s);
- final reply: from dispatch to the moment the mock receives the answer on the response URL
  (target: median <= 300 ms).

The bench database is only read. Exit 0 whatever the figures; the last line is ALL PASS or FAIL.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from fakes.slack import MockSlack  # noqa: E402
from slack_bolt.request import BoltRequest  # noqa: E402

from bench.slack_request import SECRET, signed_command  # noqa: E402
from bot.app import create_app, web_client  # noqa: E402
from bot.store import Store  # noqa: E402
from metrics.runtime import settle  # noqa: E402

ACK_TARGET_S = 3.0
REPLY_TARGET_MS = 300.0
METRICS = [
    "cycle-time",
    "throughput",
    "lead-time-for-changes",
    "pr-pickup-time",
    "wip",
    "deployment-frequency",
]


def signed_request(text: str, channel: str, response_url: str) -> BoltRequest:
    body, headers = signed_command(text, channel, response_url)
    return BoltRequest(body=body, headers=headers)


def pct(values: list[float], p: float) -> float:
    from metrics.stats import percentile

    return percentile(values, p)


def run(db_path: Path, repeat: int, channel: str) -> dict:
    with MockSlack() as slack:
        app = create_app(Store(db_path), web_client("xoxb-bench", slack.base_url), signing_secret=SECRET)
        settle()
        acks, replies = [], []
        n = 0
        for _round in range(repeat + 1):
            for metric in METRICS:
                n += 1
                path = f"/response/{n}"
                began = time.perf_counter()
                resp = app.dispatch(signed_request(f"{metric} 90d", channel, slack.url + path))
                acked = time.perf_counter()
                assert resp.status == 200, resp.body
                deadline = acked + 30
                while not slack.requests_to(path):  # poll the mock for the final reply, with a deadline
                    if time.perf_counter() > deadline:
                        raise RuntimeError(f"no reply to {metric} within 30 s")
                    time.sleep(0.0005)
                done = time.perf_counter()
                if _round:  # the first round warms the page cache
                    acks.append(acked - began)
                    replies.append(done - began)
    return {
        "requests": len(acks),
        "ack_p50_ms": round(1000 * statistics.median(acks), 2),
        "ack_p99_ms": round(1000 * pct(acks, 0.99), 2),
        "reply_p50_ms": round(1000 * statistics.median(replies), 1),
        "reply_p95_ms": round(1000 * pct(replies, 0.95), 1),
        "reply_max_ms": round(1000 * max(replies), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=str(ROOT / "bench" / "bench.db"))
    parser.add_argument("--repeat", type=int, default=10, help="rounds over the metrics (after a warm-up)")
    parser.add_argument("--channel", default="CB00000001", help="the channel of the team asked (team-001)")
    args = parser.parse_args(argv)
    if not Path(args.db).exists():
        print(f"slack_bench: {args.db} does not exist: run `make bench` first to build it", file=sys.stderr)
        return 2
    r = run(Path(args.db), args.repeat, args.channel)
    print(f"/vsm <metric> 90d on {args.db}: {r['requests']} requests over {len(METRICS)} metrics")
    print(f"  acknowledgement  p50 {r['ack_p50_ms']} ms   p99 {r['ack_p99_ms']} ms   (target p99 < 3000 ms)")
    print(
        f"  final reply      p50 {r['reply_p50_ms']} ms   p95 {r['reply_p95_ms']} ms   max {r['reply_max_ms']} ms"
        f"   (target median <= {REPLY_TARGET_MS:.0f} ms)"
    )
    misses = []
    if r["ack_p99_ms"] >= 1000 * ACK_TARGET_S:
        misses.append("acknowledgement p99")
    if r["reply_p50_ms"] > REPLY_TARGET_MS:
        misses.append("final reply median")
    print("ALL PASS" if not misses else "FAIL: " + ", ".join(misses))
    return 0


if __name__ == "__main__":
    sys.exit(main())
