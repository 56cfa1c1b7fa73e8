"""`vsm serve --http`: a real process serving Slack's HTTP endpoint, with signature checks."""

import os
import socket
import subprocess
import sys
import time
from urllib.parse import urlencode

import pytest
import requests
from fakes.slack import MockSlack
from slackkit import SECRET, signed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_vsm(*args, env, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


@pytest.fixture
def served(tmp_path):
    with MockSlack() as slack:
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SLACK_")},
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.base_url,
        }
        proc = run_vsm(
            "serve", "--http", "--port", str(port), "--db", str(tmp_path / "s.db"), env=env, cwd=tmp_path
        )
        url = f"http://127.0.0.1:{port}/slack/events"
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.post(url, data=b"", timeout=1)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "vsm serve did not start"
                time.sleep(0.05)  # polling for the server to listen, with a deadline
        yield url
        proc.terminate()
        proc.wait(timeout=10)


def post(url, body, headers):
    return requests.post(url, data=body, headers={k: v[0] for k, v in headers.items()}, timeout=10)


def test_signed_command_is_answered_and_bad_signatures_refused(served):
    body = urlencode(
        {"command": "/vsm", "text": "help", "user_id": "U1", "channel_id": "C1", "team_id": "T1"}
    )
    form = "application/x-www-form-urlencoded"
    ok = post(served, body, signed(body, content_type=form))
    assert ok.status_code == 200 and "vsm-bot" in ok.text
    assert post(served, body, signed(body, content_type=form, secret="wrong")).status_code == 401
    stale = signed(body, content_type=form, ts=int(time.time()) - 600)
    assert post(served, body, stale).status_code == 401
    tampered = signed(body, content_type=form)
    assert post(served, body.replace("help", "metrics"), tampered).status_code == 401


def test_missing_tokens_name_the_variable(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    proc = run_vsm("serve", "--db", str(tmp_path / "x.db"), env=env, cwd=tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "SLACK_BOT_TOKEN" in err
    env["SLACK_BOT_TOKEN"] = "xoxb-1"
    proc = run_vsm("serve", "--db", str(tmp_path / "x.db"), env=env, cwd=tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "SLACK_APP_TOKEN" in err
    proc = run_vsm("serve", "--http", "--db", str(tmp_path / "x.db"), env=env, cwd=tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "SLACK_SIGNING_SECRET" in err
    assert not (tmp_path / "x.db").exists()  # bad input changed nothing
