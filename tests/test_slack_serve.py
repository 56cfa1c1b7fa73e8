"""`vsm serve --http`: a real process serving Slack's HTTP endpoint, with signature checks."""

import contextlib
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


def serve_env(slack_url: str) -> dict[str, str]:
    """This process's environment with no Slack settings of its own, plus HTTP mode's: a bot token,
    the signing secret and the Web API at ``slack_url`` (a ``MockSlack``)."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("SLACK_")},
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack_url,
    }


def run_vsm(*args, env, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


class Served:
    """A running `vsm serve --http` process: its URL, port and log (stderr, in a file so a chatty
    server can never block on a full pipe)."""

    def __init__(self, proc: subprocess.Popen, host: str, port: int, log_path) -> None:
        self.proc, self.host, self.port, self.log_path = proc, host, port, log_path
        self.url = f"http://{host}:{port}/slack/events"

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for_log(self, text: str, deadline_s: float = 10) -> str:
        deadline = time.monotonic() + deadline_s
        while text not in self.log():
            assert time.monotonic() < deadline, f"{text!r} not in the log:\n{self.log()}"
            time.sleep(0.02)  # polling the log file, with a deadline
        return self.log()


@contextlib.contextmanager
def vsm_serve(tmp_path, slack_url: str, *extra: str, host: str = "127.0.0.1", env: dict | None = None):
    """`vsm serve --http` on ``tmp_path``'s database, with ``env`` (``serve_env(slack_url)`` by
    default: one workspace on a bot token)."""
    port = free_port()
    env = serve_env(slack_url) if env is None else env
    log_path = tmp_path / f"serve-{port}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--http", "--port", str(port), *extra]
            + ["--db", str(tmp_path / "s.db")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    served = Served(proc, host, port, log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection((host, port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, served.log()
                assert time.monotonic() < deadline, "vsm serve did not start"
                time.sleep(0.05)  # polling for the server to listen, with a deadline
        yield served
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def slack():
    with MockSlack() as mock:
        yield mock


@pytest.fixture
def served(tmp_path, slack):
    with vsm_serve(tmp_path, slack.base_url) as s:
        yield s


def post(url, body, headers, timeout: float = 10):
    return requests.post(url, data=body, headers={k: v[0] for k, v in headers.items()}, timeout=timeout)


def test_signed_command_is_answered_and_bad_signatures_refused(served):
    body = urlencode(
        {"command": "/vsm", "text": "help", "user_id": "U1", "channel_id": "C1", "team_id": "T1"}
    )
    form = "application/x-www-form-urlencoded"
    ok = post(served.url, body, signed(body, content_type=form))
    assert ok.status_code == 200 and "vsm-bot" in ok.text
    assert post(served.url, body, signed(body, content_type=form, secret="wrong")).status_code == 401
    stale = signed(body, content_type=form, ts=int(time.time()) - 600)
    assert post(served.url, body, stale).status_code == 401
    tampered = signed(body, content_type=form)
    assert post(served.url, body.replace("help", "metrics"), tampered).status_code == 401


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


def test_an_address_it_cannot_listen_on_is_one_line_before_any_work(served, tmp_path, slack):
    """A second `vsm serve` on a port in use, or a host that does not resolve, stops in one line
    with exit 2, before its scheduler starts (it would plan and catch up work on the database)."""
    env = serve_env(slack.base_url)
    for where in (["--port", str(served.port)], ["--host", "nosuchhost.invalid"]):
        db = tmp_path / "second.db"
        proc = run_vsm("serve", "--http", *where, "--db", str(db), env=env, cwd=tmp_path)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, err
        lines = [line for line in err.splitlines() if line.startswith("vsm:")]
        assert len(lines) == 1 and "cannot listen on" in lines[0], err
        assert "Traceback" not in err


FORM = "application/x-www-form-urlencoded"
HELP = urlencode({"command": "/vsm", "text": "help", "user_id": "U1", "channel_id": "C1", "team_id": "T1"})


def raw(host: str, port: int, data: bytes) -> socket.socket:
    """A connection that has sent ``data`` and nothing more."""
    s = socket.create_connection((host, port), timeout=10)
    if data:
        s.sendall(data)
    return s


def test_idle_and_half_sent_connections_do_not_stall_signed_commands(served):
    # Bolt's development server (App.start) handled one connection at a time: the first of these
    # held it, and every signed command after it timed out.
    stalled = [raw(served.host, served.port, b"") for _ in range(5)]
    stalled.append(raw(served.host, served.port, b"POST /slack/ev"))  # a half-sent request line
    short_body = (
        f"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: {FORM}\r\nContent-Length: 500\r\n\r\n"
    )
    stalled.append(raw(served.host, served.port, short_body.encode() + b"command=/vsm"))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                ok = post(served.url, HELP, signed(HELP, content_type=FORM), timeout=3)
                break
            except requests.Timeout:
                assert time.monotonic() < deadline, "no signed command was acknowledged in 30 s"
        assert ok.status_code == 200 and "vsm-bot" in ok.text
    finally:
        for s in stalled:
            s.close()


def status_line(sock: socket.socket) -> str:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode()


def test_oversized_body_and_headers_are_refused(served):
    head = (
        f"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: {FORM}\r\nContent-Length: {2 << 20}\r\n\r\n"
    )
    with raw(served.host, served.port, head.encode() + b"command=/vsm") as s:
        assert status_line(s).split()[1] == "413"
    head = f"POST /slack/events HTTP/1.1\r\nHost: x\r\nX-Pad: {'p' * (20 << 10)}\r\n\r\n"
    with raw(served.host, served.port, head.encode()) as s:
        assert status_line(s).split()[1] == "431"
    big = "command=/vsm&text=" + "x" * (1 << 20)
    with contextlib.suppress(requests.ConnectionError):  # the server may close before reading it all
        assert post(served.url, big, signed(big, content_type=FORM)).status_code == 413
    assert post(served.url, HELP, signed(HELP, content_type=FORM)).status_code == 200  # still serving


def test_bad_timestamps_unsigned_requests_and_other_paths_are_refused_in_one_log_line(served):
    # The body carries what Slack's slash-command bodies carry: the legacy verification token.
    body = HELP + "&token=legacy-verification-tok"
    for stamp in ("abc", "²", "1e9", ""):
        headers = signed(body, content_type=FORM)
        headers["x-slack-request-timestamp"] = [stamp]
        assert post(served.url, body, headers).status_code == 401, stamp
    unstamped = signed(body, content_type=FORM)
    del unstamped["x-slack-request-timestamp"]
    assert post(served.url, body, unstamped).status_code == 401
    unsigned = {"content-type": [FORM], "x-slack-request-timestamp": [str(int(time.time()))]}
    assert post(served.url, body, unsigned).status_code == 401
    for forged in ("v0=\u00e9\u00e9", "v0=" + "g" * 64, "v1=" + "0" * 64):  # é: compare_digest raises on it
        headers = {**unsigned, "x-slack-signature": [forged.encode("utf-8").decode("latin-1")]}
        assert post(served.url, body, headers).status_code == 401, forged
    assert requests.get(served.url, timeout=10).status_code == 404
    assert requests.post(served.url.replace("/slack/events", "/admin"), timeout=10).status_code == 404
    log = served.wait_for_log("401 from 127.0.0.1: bad signature")
    log = served.wait_for_log("404 'GET'")
    assert log.count("X-Slack-Request-Timestamp missing or not a number") == 5
    assert "Traceback" not in log and "ValueError" not in log
    assert "legacy-verification-tok" not in log and SECRET not in log and "xoxb-test" not in log
    assert post(served.url, HELP, signed(HELP, content_type=FORM)).status_code == 200


def test_unsigned_bodies_bolt_cannot_parse_are_refused_before_parsing(served):
    """Bolt parses a body before checking its signature, and these shapes raise in that parsing:
    unsigned, they are refused at the front, unparsed; signed (only Slack could), a 400."""
    stamp = str(int(time.time()))
    forged = [
        (FORM, "payload=%5B1%2C2%5D"),
        ("application/json", '{"type": "event_callback", "team": 5, "authorizations": 5}'),
        (FORM, "payload=%7B%22type%22%3A%22block_actions%22%2C%22team%22%3A5%7D"),
    ]
    for content_type, body in forged:
        headers = {"content-type": [content_type], "x-slack-request-timestamp": [stamp]}
        headers["x-slack-signature"] = ["v0=" + "0" * 64]
        assert post(served.url, body, headers).status_code == 401, body
    content_type, body = forged[0]
    assert post(served.url, body, signed(body, content_type=content_type)).status_code in (200, 400)
    log = served.wait_for_log("401 from 127.0.0.1: bad signature")
    assert log.count("401 from 127.0.0.1: bad signature") >= len(forged)
    assert "Traceback" not in log and " 500 " not in log
    assert post(served.url, HELP, signed(HELP, content_type=FORM)).status_code == 200


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs all of 127.0.0.0/8 on loopback")
def test_listens_on_127_0_0_1_unless_told_otherwise(served, tmp_path, slack):
    # On Linux every 127.x.y.z address is local: a server on 0.0.0.0 answers on 127.0.0.2 too.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", served.port), timeout=5)
    with vsm_serve(tmp_path, slack.base_url, "--host", "127.0.0.2", host="127.0.0.2") as other:
        assert post(other.url, HELP, signed(HELP, content_type=FORM)).status_code == 200
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", other.port), timeout=5)
