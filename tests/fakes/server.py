"""A loopback HTTP server for connector tests: routes, a request log, and faults on demand.

Subclass-free use: ``FakeServer()`` then ``server.route("GET", "/rest/api/3/search/jql", handler)``;
a handler gets a ``Request`` and returns ``Reply`` (status, JSON body or raw bytes, headers).
Faults are queued per path: ``server.fail("/path", Fault(status=429, headers={"Retry-After": "1"}))``
answers the next request to that path with the fault instead of the handler. ``Fault(drop=True)``
sends the headers and half the body, then closes the connection (a connection dropped mid-page);
``Fault(body=b"{not json")`` sends malformed JSON. A slow source: ``Reply(delay=2)`` answers after two
seconds, ``Reply(trickle=0.05)`` sends its body one byte every 50 ms. ``FakeServer(tls=True)`` speaks
https with a self-signed certificate for 127.0.0.1 (made once with the ``openssl`` command); a client
trusts it through ``server.ca``.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self):
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    status: int = 200
    body: object = None  # JSON-encoded unless bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds of silence before the status line
    trickle: float = 0.0  # when set, the body goes out one byte at a time, this many seconds apart


@dataclass
class Fault:
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    drop: bool = False  # send half a body, then close the connection


Handler = Callable[[Request], Reply]


@functools.cache
def _certificate() -> tuple[str, str]:
    """A self-signed certificate and key for 127.0.0.1, made once per test run."""
    if not shutil.which("openssl"):
        raise RuntimeError("FakeServer(tls=True) needs the openssl command")
    folder = Path(tempfile.mkdtemp(prefix="vsm-fake-tls-"))
    atexit.register(shutil.rmtree, folder, True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


class FakeServer:
    def __init__(self, *, tls: bool = False) -> None:
        self.routes: list[tuple[str, str, Handler]] = []
        self.faults: dict[str, deque[Fault]] = defaultdict(deque)
        self.log: list[Request] = []
        self.armed: list[tuple[str, int, tuple[Fault, ...]]] = []  # (path, answers to go, faults)
        self.lock = threading.Lock()
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without this, each keep-alive request
            # waits for the client's delayed ACK (about 40 ms).
            disable_nagle_algorithm = True

            def log_message(self, *args) -> None:  # quiet
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                req = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                with fake.lock:
                    fake.log.append(req)
                    queue = fake.faults.get(parts.path)
                    fault = queue.popleft() if queue else None
                if fault is not None:
                    self._fault(fault)
                    return
                reply = fake.dispatch(req)
                fake._answered(parts.path)
                raw = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                try:
                    self._reply(reply, raw)
                except (BrokenPipeError, ConnectionResetError):  # it gave up on a slow answer
                    self.close_connection = True

            def _reply(self, reply: Reply, raw: bytes) -> None:
                if reply.delay:
                    time.sleep(reply.delay)
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json", **reply.headers}
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                if self.command == "HEAD" or reply.status == 304:
                    return
                if not reply.trickle:
                    self.wfile.write(raw)
                    return
                for i in range(len(raw)):  # each byte well within a read timeout, the whole far beyond
                    self.wfile.write(raw[i : i + 1])
                    time.sleep(reply.trickle)

            def _fault(self, fault: Fault) -> None:
                body = fault.body if fault.body is not None else json.dumps({"message": "fault"}).encode()
                if fault.drop:
                    body = json.dumps({"values": ["x" * 2000]}).encode()
                self.send_response(200 if fault.drop or fault.body is not None else fault.status)
                self.send_header("Content-Type", "application/json")
                for k, v in fault.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if fault.drop:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.ca: str | None = None  # the certificate a client trusts, when tls
        if tls:
            self.ca, key = _certificate()
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.ca, key)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{'https' if self.ca else 'http'}://127.0.0.1:{self.httpd.server_address[1]}"

    def route(self, method: str, path: str, handler: Handler) -> None:
        """``path`` may end with ``*`` to match a prefix; later routes win over earlier ones."""
        self.routes.insert(0, (method, path, handler))

    def fail(self, path: str, *faults: Fault) -> None:
        with self.lock:
            self.faults[path].extend(faults)

    def arm(self, path: str, after: int, *faults: Fault) -> None:
        """Queue ``faults`` on ``path`` once ``after`` more requests to it have been answered."""
        with self.lock:
            if after <= 0:
                self.faults[path].extend(faults)
            else:
                self.armed.append((path, after, faults))

    def _answered(self, path: str) -> None:
        with self.lock:
            still = []
            for p, left, faults in self.armed:
                if p != path:
                    still.append((p, left, faults))
                elif left <= 1:
                    self.faults[path].extend(faults)
                else:
                    still.append((p, left - 1, faults))
            self.armed = still

    def dispatch(self, req: Request) -> Reply:
        for method, path, handler in self.routes:
            if method == req.method and (
                req.path == path or (path.endswith("*") and req.path.startswith(path[:-1]))
            ):
                return handler(req)
        return Reply(404, {"message": f"no route for {req.method} {req.path}"})

    def requests_to(self, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.log if r.path == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FakeApi:
    """What every tool's fake shares: its loopback server, URL, armed faults and shutdown."""

    def __init__(self, server: FakeServer | None = None) -> None:
        self.server = server or FakeServer()

    @property
    def url(self) -> str:
        return self.server.url

    def close(self) -> None:
        self.server.close()

    def arm(self, path: str, after: int, *faults: Fault) -> None:
        """Queue ``faults`` on ``path`` once ``after`` more requests to it have been answered."""
        self.server.arm(path, after, *faults)
