"""The one HTTP layer every connector shares: timeouts, retries, rate limits, conditional requests.

Connection errors and 500/502/504 bursts are retried by urllib3's ``Retry`` (exponential backoff with
jitter). What urllib3 cannot do is handled here, in one loop:

- 429, 503, GitHub's rate-limit 403 (and a 200 the caller's ``limited`` recognises: GraphQL's spent
  points): wait ``Retry-After`` seconds, else until ``X-RateLimit-Reset`` when
  ``X-RateLimit-Remaining`` is 0, else back off; a wait longer than ``max_wait`` fails fast as
  ``RateLimited`` (the source shows "data as of ...") instead of hanging the sync;
- a body cut off mid-page, or malformed JSON: the request is tried again;
- ``ETag`` / ``If-None-Match``: a 304 comes back as ``None`` (nothing changed, and on GitHub it does
  not count against the rate limit);
- the token goes only to the configured origin: redirects are followed here, never by requests (which
  keeps custom credential headers such as GitLab's ``PRIVATE-TOKEN`` across hosts), and every URL sent
  to, a next link or a redirect's target, passes ``Http.url``, which refuses another origin;
- each exchange has a total deadline (``Policy.deadline``), from sending to the last byte of the body:
  a read timeout bounds only the silence between two reads, so a source trickling a byte a second
  would otherwise hold one request, and the sync, as long as it likes.

Errors name the URL path and status, never headers; a source's own error message is kept whole, as it
may echo a credential: ``scrub`` removes it before anything is stored or shown (the sync engine does).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

USER_AGENT = "vsm-bot/0.1 (+https://github.com/vsm-bot/vsm-bot)"
MAX_REDIRECTS = 5
CHUNK = 64 * 1024  # the most one socket read of a body returns
DEFAULT_PORTS = {"http": 80, "https": 443}


class SourceError(Exception):
    """A source failed. The message names no header value, but it may quote the source's own error
    message, which may echo a credential: ``scrub`` it before it is stored or shown.
    ``status`` is the HTTP status when the source answered with an error, so connectors can tell
    "gone" (404/410) from a real failure without reading the message."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status

    @property
    def gone(self) -> bool:
        return self.status in (404, 410)


class AuthError(SourceError):
    """401/403 without rate-limit signs: the token is wrong, expired or lacks a permission."""


class RateLimited(SourceError):
    """The source asked us to wait longer than we will."""


class TimedOut(SourceError):
    """No answer within the read timeout, every try, or no whole answer within the deadline: a query
    too heavy for the source, perhaps, or a source too slow to wait for."""


@dataclass
class Policy:
    """How hard to try. Tests shrink the waits; production keeps the defaults."""

    attempts: int = 5  # tries for one request, all causes together
    backoff: float = 1.0  # first backoff in seconds, doubled each time, with jitter
    backoff_max: float = 60.0
    max_wait: float = 900.0  # the longest rate-limit wait we accept before failing the stream
    timeout: tuple[float, float] = (10.0, 60.0)  # connect, read (the longest silence between reads)
    # One exchange, from sending to the body's last byte (its same-origin redirects included). Longer
    # than the read timeout, which keeps its own meaning; a response still arriving past it is given up
    # at once, not tried again: a source that trickles once trickles again.
    deadline: float = 120.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.time, repr=False)


@dataclass
class Page:
    """A decoded response: its JSON, headers, and the URL of the next page if the API gives one."""

    data: object
    headers: requests.structures.CaseInsensitiveDict
    url: str

    def link(self, rel: str = "next") -> str | None:
        """A ``Link`` header target (GitHub, GitLab), followed as given: never built by hand."""
        for part in self.headers.get("Link", "").split(","):
            section = part.split(";")
            if len(section) < 2:
                continue
            target = section[0].strip().strip("<>")
            if any(p.strip().replace('"', "") == f"rel={rel}" for p in section[1:]):
                return target
        return None


class Http:
    """One ``requests.Session`` per source: pooled connections, auth headers, a User-Agent."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str] | None = None,
        *,
        auth: tuple[str, str] | None = None,
        policy: Policy | None = None,
        etags: dict[str, str] | None = None,
    ):
        self.base_url = base_url.rstrip("/") + "/"
        self.origin = _origin(self.base_url)  # the only place the credentials are sent
        self.etags = etags if etags is not None else {}
        self.requests_made = 0
        self.not_modified = 0
        self.wait_seconds = 0.0  # time spent waiting on the source (the benchmark subtracts it)
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        self.session.headers.update(headers or {})
        if auth:
            self.session.auth = auth
        # Proxy and CA settings from the environment, read once: requests would re-read the whole
        # environment on every request (a third of a small request's CPU time).
        self.session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            self.session.verify = bundle
        self.session.trust_env = False
        self.policy = policy or Policy()

    @property
    def policy(self) -> Policy:
        return self._policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        """Setting a policy also rebuilds urllib3's retries from it (their backoff is the policy's)."""
        self._policy = policy
        # Read errors are not retried inside urllib3 (``read=False``): the loop in ``request`` retries
        # them, within its attempts, and urllib3 would retry a read cut short by the deadline.
        retry = Retry(
            total=policy.attempts,
            connect=policy.attempts,
            read=False,
            status=policy.attempts,
            status_forcelist={500, 502, 504},
            allowed_methods={"GET", "POST"},
            backoff_factor=policy.backoff,
            backoff_jitter=policy.backoff / 2,
            backoff_max=policy.backoff_max,
            respect_retry_after_header=False,  # 429/503 waits are ours: capped, and fail fast past the cap
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def url(self, path_or_url: str) -> str:
        """A path under the base, or a URL the source gave (a next link, one saved in a cursor) once
        checked: every URL this client sends to passes here or ``_same_origin`` (redirects), so the
        credentials go to the configured origin only. The origin includes the scheme, so a plain-http
        URL is followed only where the base itself is plain http, which ``check_transport`` allowed."""
        if "://" not in path_or_url:
            return urljoin(self.base_url, path_or_url.lstrip("/"))
        self._same_origin(path_or_url, "a link")
        return path_or_url

    def owns(self, url: str) -> bool:
        """Whether ``url`` is in the configured origin. A connector asks before following a link it
        saved in a cursor: one saved under another configured url (the source moved) would be
        refused for good, so the walk starts again instead."""
        return _origin(url) == self.origin

    def _same_origin(self, url: str, what: str) -> None:
        """Refuse, naming both origins (never the whole URL, whose query may be signed), a URL outside
        the configured origin."""
        origin = _origin(url)
        if origin != self.origin:
            raise SourceError(
                f"{what} to {origin} refused: the source's token is sent only to its own origin, {self.origin}"
            )

    def get(self, path_or_url: str, params: dict | None = None, *, conditional: bool = False) -> Page | None:
        """GET and decode JSON; ``None`` for a 304 when ``conditional`` and the ETag still matches."""
        return self.request("GET", path_or_url, params=params, conditional=conditional)

    def post(self, path_or_url: str, body: dict, *, limited: Callable[[object], bool] | None = None) -> Page:
        """POST JSON and decode JSON. ``limited`` tells a rate-limit answer sent as a 200 (GraphQL
        reports spent points in its body): it is waited out like a 429."""
        page = self.request("POST", path_or_url, json_body=body, limited=limited)
        assert page is not None
        return page

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: dict | None = None,
        json_body: dict | None = None,
        conditional: bool = False,
        limited: Callable[[object], bool] | None = None,
    ) -> Page | None:
        url = self.url(path_or_url)
        where = urlsplit(url).path or "/"
        key = url + ("?" + json.dumps(params, sort_keys=True) if params else "")
        headers = {}
        if conditional and key in self.etags:
            headers["If-None-Match"] = self.etags[key]
        failures = 0
        waited = 0.0
        while True:
            try:
                began = time.perf_counter()
                try:
                    resp = self._exchange(method, url, params, json_body, headers, f"{method} {where}")
                finally:
                    self.wait_seconds += time.perf_counter() - began
                status = resp.status_code
                if status == 304 and conditional:
                    self.not_modified += 1
                    return None
                if status in (403, 429, 503):
                    failures, waited = self._wait_out(resp, failures, waited, f"{method} {where}")
                    continue
                if status == 401:
                    raise AuthError(f"{method} {where}: authentication failed (401); check the token", 401)
                if status >= 400:
                    raise SourceError(f"{method} {where}: HTTP {status}{_reason(resp)}", status)
                data = resp.json()
                if limited is not None and limited(data):
                    failures, waited = self._wait_out(resp, failures, waited, f"{method} {where}")
                    continue
            except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError) as exc:
                failures += 1
                if failures >= self.policy.attempts:
                    raise SourceError(
                        f"{method} {where}: connection failed ({exc.__class__.__name__})"
                    ) from None
                self._backoff(failures)
                continue
            except requests.exceptions.Timeout:
                failures += 1
                if failures >= self.policy.attempts:
                    raise TimedOut(f"{method} {where}: timed out") from None
                self._backoff(failures)
                continue
            except requests.exceptions.InvalidHeader:  # a ValueError too, but ours: not worth a retry
                raise SourceError(
                    f"{method} {where}: a header value is invalid (a space or line break at the end of "
                    "the token?)"
                ) from None
            except ValueError:  # malformed JSON (requests' JSONDecodeError is a ValueError)
                failures += 1
                if failures >= self.policy.attempts:
                    raise SourceError(f"{method} {where}: the response is not valid JSON") from None
                self._backoff(failures)
                continue
            etag = resp.headers.get("ETag")
            if conditional and etag:
                self.etags[key] = etag
            return Page(data, resp.headers, resp.url)

    def _exchange(
        self, method: str, url: str, params: dict | None, json_body: dict | None, headers: dict, what: str
    ) -> requests.Response:
        """One request and its whole body within ``policy.deadline``, redirects followed here: requests
        would follow any, and past a host change it drops ``Authorization`` but not a custom credential
        header (``PRIVATE-TOKEN``). A redirect keeps the origin or is refused."""
        deadline = time.monotonic() + self.policy.deadline
        for _ in range(MAX_REDIRECTS + 1):
            self.requests_made += 1
            connect, read = self.policy.timeout
            left = self._left(deadline, what)
            try:
                resp = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    headers=headers,
                    timeout=(min(connect, left), min(read, left)),
                    stream=True,
                    allow_redirects=False,
                )
            except requests.exceptions.RequestException:
                self._left(deadline, what)  # the deadline, not the source, cut it short: not retried
                raise
            self._read_body(resp, deadline, what)
            if not resp.is_redirect:
                return resp
            url = urljoin(resp.url, resp.headers["Location"])
            self._same_origin(url, f"{what}: a redirect")
            if resp.status_code not in (307, 308):  # 301/302/303: the target is read with a GET
                method, json_body = "GET", None
            params = None  # the Location carries its own query
        raise SourceError(f"{what}: more than {MAX_REDIRECTS} redirects")

    def _read_body(self, resp: requests.Response, deadline: float, what: str) -> None:
        """The whole body into ``resp.content`` by the deadline, one socket read at a time, each allowed
        no longer than what is left: reading a fixed size would wait for a trickle to fill it."""
        raw, chunks = resp.raw, []
        sock = getattr(getattr(raw, "connection", None), "sock", None)
        try:
            while True:
                left = self._left(deadline, what)
                if sock is not None:
                    sock.settimeout(min(self.policy.timeout[1], left))
                chunk = raw.read1(CHUNK, decode_content=True)
                if not chunk:
                    break
                chunks.append(chunk)
        except urllib3.exceptions.ReadTimeoutError:
            resp.close()
            self._left(deadline, what)
            raise requests.exceptions.ReadTimeout() from None
        except (urllib3.exceptions.HTTPError, OSError):  # cut off mid-body, or undecodable
            resp.close()
            raise requests.exceptions.ChunkedEncodingError() from None
        except TimedOut:
            resp.close()  # closes the connection: nothing more is read from it
            raise
        resp._content = b"".join(chunks)  # what ``resp.content`` would have read, in one piece
        resp._content_consumed = True

    def _left(self, deadline: float, what: str) -> float:
        """Seconds left before ``deadline``; the error that ends the exchange once none are."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimedOut(f"{what}: no whole answer within the {self.policy.deadline:g} s deadline")
        return left

    def paginate_links(self, path_or_url: str, params: dict | None = None) -> Iterator[Page]:
        """Follow ``Link: rel="next"`` as given until it is absent."""
        page = self.get(path_or_url, params)
        while page is not None:
            yield page
            nxt = page.link("next")
            page = self.get(nxt) if nxt else None

    def _wait_out(
        self, resp: requests.Response, failures: int, waited: float, what: str
    ) -> tuple[int, float]:
        """Sleep as a rate-limited answer asks; the new (failures, waited), or the error that ends it."""
        status = resp.status_code
        wait = self._rate_limit_wait(resp, failures)
        if wait is None:
            raise AuthError(f"{what}: permission denied ({status})", status)
        said = "rate limited" if status == 200 else f"rate limited ({status})"
        if waited + wait > self.policy.max_wait:
            raise RateLimited(
                f"{what}: {said}; the source asks to wait "
                f"{wait:.0f} s, more than the {self.policy.max_wait:.0f} s we allow"
            )
        failures += 1
        if failures >= self.policy.attempts:
            raise RateLimited(f"{what}: still rate limited after {failures} tries")
        self.policy.sleep(wait)
        return failures, waited + wait

    def _rate_limit_wait(self, resp: requests.Response, failures: int) -> float | None:
        """Seconds to wait for a 429 / rate-limit 403 (docs/sources.md order), None for a plain 403."""
        h = resp.headers
        retry_after = h.get("Retry-After")
        if retry_after is not None:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                try:
                    return max(0.0, parsedate_to_datetime(retry_after).timestamp() - self.policy.clock())
                except (TypeError, ValueError):
                    pass
        reset = h.get("X-RateLimit-Reset")
        if h.get("X-RateLimit-Remaining") == "0" and reset:
            try:
                return max(0.0, float(reset) - self.policy.clock())
            except ValueError:  # Jira gives an ISO time
                try:
                    from metrics.timeutil import parse_instant

                    return max(0.0, (parse_instant(reset) or 0) - self.policy.clock())
                except ValueError:
                    pass
        if resp.status_code == 403 and not _looks_rate_limited(resp):
            return None
        # A secondary limit, or a 429/503 with no hint: at least a minute for GitHub's limits (a 403, or
        # a 200 whose body says so: GraphQL), else backoff.
        base = 60.0 if resp.status_code in (200, 403) else self.policy.backoff * (2**failures)
        return min(base, self.policy.backoff_max) + random.uniform(0, self.policy.backoff / 2)

    def _backoff(self, failures: int) -> None:
        wait = min(self.policy.backoff * (2 ** (failures - 1)), self.policy.backoff_max)
        self.policy.sleep(wait + random.uniform(0, self.policy.backoff / 2))


def check_transport(base_url: str, allow_plain_http: bool = False) -> None:
    """Tokens travel in headers: refuse plain http, except to a loopback server (tests) or where the
    source's config says ``allow_plain_http = true`` (an intranet server without TLS)."""
    parts = urlsplit(base_url)
    if parts.scheme == "https" or allow_plain_http:
        return
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SourceError(
            f"refusing to send the token over plain http to {host or 'an unnamed host'} "
            "(use https, or set allow_plain_http = true on the source)"
        )


def _origin(url: str) -> str:
    """``scheme://host:port``, the port explicit (``https://h`` and ``https://h:443`` are one origin)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:  # not a port: an origin of its own, matching none
        port = "?"
    host = parts.hostname or ""
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def scrub(text: str, token: str | None, user: str | None = None) -> str:
    """``text`` without the token in any form a source may echo back: as is, ``user:token``, and the
    base64 of either (an echoed ``Authorization: Basic`` header), in any letter case (an echo may be
    lower-cased). Run it before text is cut: a cut could leave part of a secret no longer recognised."""
    if not token:
        return text
    plain = {token, f"{user}:{token}"} if user else {token}
    # Base64 matched without its "=" padding, then the padding if the echo kept it.
    encoded = {base64.b64encode(f.encode()).decode().rstrip("=") for f in plain}
    forms = [(f, re.escape(f)) for f in plain] + [(f, re.escape(f) + "=*") for f in encoded]
    pattern = "|".join(p for _, p in sorted(forms, key=lambda form: len(form[0]), reverse=True))
    return re.sub(pattern, "***", text, flags=re.IGNORECASE)


def _looks_rate_limited(resp: requests.Response) -> bool:
    if resp.headers.get("X-RateLimit-Remaining") == "0":
        return True
    try:
        text = resp.text.lower()
    except Exception:  # noqa: BLE001 - an undecodable body is simply not a rate-limit message
        return False
    return "rate limit" in text or "secondary rate" in text


def _reason(resp: requests.Response) -> str:
    """The reason from an error body (JSON message fields only). Not cut here: a source may echo the
    credentials, and the engine must see them whole to scrub them before it cuts the line."""
    try:
        body = resp.json()
    except ValueError:
        return ""
    msg = None
    if isinstance(body, dict):
        msg = body.get("message") or body.get("error") or body.get("errorMessages")
    if isinstance(msg, list):
        msg = "; ".join(str(m) for m in msg)
    return f": {msg}" if msg else ""
