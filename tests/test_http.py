"""The shared HTTP layer against a real loopback server: retries, rate limits, ETags, safe errors."""

import time

import pytest
from fakes.server import FakeServer, Fault, Reply

from metrics.sources.http import AuthError, Http, Policy, RateLimited, SourceError, TimedOut


@pytest.fixture
def server():
    with FakeServer() as s:
        s.route("GET", "/items", lambda r: Reply(200, {"page": r.arg("page", "1")}, {"ETag": '"v1"'}))
        yield s


def client(server, waits=None, **kw) -> Http:
    waits = waits if waits is not None else []
    policy = Policy(backoff=0.001, backoff_max=0.01, sleep=waits.append, **kw)
    return Http(server.url, {"Authorization": "Bearer s3cret"}, policy=policy)


def test_429_waits_for_retry_after_then_succeeds(server):
    waits = []
    server.fail("/items", Fault(429, {"Retry-After": "7"}), Fault(429, {"Retry-After": "3"}))
    page = client(server, waits).get("/items")
    assert page.data == {"page": "1"}
    assert waits == [7.0, 3.0]
    assert len(server.requests_to("/items")) == 3


def test_rate_limit_403_waits_until_reset(server):
    waits = []
    http = client(server, waits, clock=lambda: 1000.0)
    server.fail("/items", Fault(403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1042"}))
    assert http.get("/items").data == {"page": "1"}
    assert waits == [42.0]


def test_wait_past_the_cap_fails_fast_as_rate_limited(server):
    waits = []
    server.fail("/items", Fault(429, {"Retry-After": "3600"}))
    with pytest.raises(RateLimited, match="rate limited"):
        client(server, waits, max_wait=60).get("/items")
    assert waits == []  # did not hang


def test_plain_403_is_a_permission_error_and_401_names_no_secret(server):
    server.fail("/items", Fault(403, body=None))
    with pytest.raises(AuthError, match="permission denied"):
        client(server).get("/items")
    server.fail("/items", Fault(401))
    with pytest.raises(AuthError) as exc:
        client(server).get("/items")
    assert "s3cret" not in str(exc.value)


def test_5xx_burst_is_absorbed(server):
    server.fail("/items", Fault(500), Fault(502), Fault(503), Fault(504))
    assert client(server).get("/items").data == {"page": "1"}
    assert len(server.requests_to("/items")) == 5


def test_5xx_forever_is_a_clear_error(server):
    server.fail("/items", *[Fault(500)] * 20)
    with pytest.raises(SourceError, match="HTTP 500"):
        client(server).get("/items")


def test_connection_dropped_mid_body_and_malformed_json_are_retried(server):
    server.fail("/items", Fault(drop=True), Fault(body=b'{"page": '))
    assert client(server).get("/items").data == {"page": "1"}
    server.fail("/items", *[Fault(body=b"<html>oops</html>")] * 10)
    with pytest.raises(SourceError, match="not valid JSON"):
        client(server).get("/items")


def test_conditional_get_returns_none_on_304(server):
    def etagged(r):
        if r.headers.get("if-none-match") == '"v1"':
            return Reply(304, b"", {"ETag": '"v1"'})
        return Reply(200, {"n": 1}, {"ETag": '"v1"'})

    server.route("GET", "/cond", etagged)
    http = client(server)
    assert http.get("/cond", conditional=True).data == {"n": 1}
    assert http.get("/cond", conditional=True) is None
    assert http.not_modified == 1
    assert server.requests_to("/cond")[1].headers["if-none-match"] == '"v1"'


def test_link_pagination_follows_next_as_given(server):
    def pages(r):
        n = int(r.arg("page", "1"))
        headers = {"Link": f'<{server.url}/paged?page={n + 1}&cursor=abc>; rel="next"'} if n < 3 else {}
        return Reply(200, [n], headers)

    server.route("GET", "/paged", pages)
    assert [p.data for p in client(server).paginate_links("/paged")] == [[1], [2], [3]]
    assert server.requests_to("/paged")[2].query["cursor"] == ["abc"]


def test_user_agent_and_auth_header_are_sent(server):
    client(server).get("/items")
    h = server.requests_to("/items")[0].headers
    assert h["user-agent"].startswith("vsm-bot/")
    assert h["authorization"] == "Bearer s3cret"


def test_a_same_origin_redirect_is_followed_with_the_credentials(server):
    """GitHub answers a renamed repository's old path with a 301 to its new one; a GraphQL POST
    redirected with 307 or 308 is sent again with its body."""
    server.route("GET", "/old", lambda r: Reply(301, {}, {"Location": "/items?page=9"}))
    server.route("POST", "/graphql-old", lambda r: Reply(307, {}, {"Location": f"{server.url}/graphql"}))
    server.route("POST", "/graphql", lambda r: Reply(200, {"data": r.json()}))
    http = client(server)
    page = http.get("/old")
    assert page.data == {"page": "9"} and page.url == f"{server.url}/items?page=9"
    assert server.requests_to("/items")[0].headers["authorization"] == "Bearer s3cret"
    assert http.post("/graphql-old", {"query": "{ viewer { login } }"}).data == {
        "data": {"query": "{ viewer { login } }"}
    }
    assert http.requests_made == 4


def test_a_trickling_answer_is_given_up_at_the_deadline_and_not_tried_again(server):
    """A byte every 20 ms keeps every read well inside the read timeout; 400 bytes would take 8 s."""
    body = {"values": ["x" * 380]}
    server.route("GET", "/slow", lambda r: Reply(200, body, trickle=0.02))
    server.route("POST", "/slow", lambda r: Reply(200, body, trickle=0.02))
    http = client(server, timeout=(1.0, 1.0), deadline=0.4)
    for call in (lambda: http.get("/slow"), lambda: http.post("/slow", {"query": "{}"})):
        began = time.monotonic()
        with pytest.raises(TimedOut, match="within the 0.4 s deadline"):
            call()
        assert time.monotonic() - began < 1.5
    assert [r.method for r in server.requests_to("/slow")] == ["GET", "POST"]


def test_a_source_silent_past_the_deadline_is_given_up_before_the_read_timeout(server):
    server.route("GET", "/silent", lambda r: Reply(200, {"n": 1}, delay=1.5))
    http = client(server, timeout=(1.0, 5.0), deadline=0.3)
    began = time.monotonic()
    with pytest.raises(TimedOut, match="deadline"):
        http.get("/silent")
    assert time.monotonic() - began < 1.0
    assert len(server.requests_to("/silent")) == 1
    assert http.get("/items").data == {"page": "1"}  # the client is still usable


def test_a_token_with_a_line_break_is_a_clear_error_naming_no_secret(server):
    """A token read from a file keeps its final newline; requests refuses such a header (a ValueError,
    not to be taken for malformed JSON and tried again)."""
    policy = Policy(backoff=0.001, sleep=[].append)
    http = Http(server.url, {"Authorization": "Bearer s3cret\n"}, policy=policy)
    with pytest.raises(SourceError, match="header value is invalid") as exc:
        http.get("/items")
    assert "s3cret" not in str(exc.value) and server.requests_to("/items") == []
