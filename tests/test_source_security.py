"""The sources in a shared workspace (issue 10): credentials go to the configured origin only, no
secret survives into an error, and a slow source cannot hold a sync. Real connectors and the shared
HTTP layer over loopback servers; the server a credential must not reach records what it received."""

from __future__ import annotations

import base64
import re
import time

import pytest
from builders import assert_not_in_files, fast_policy, new_db, run_sync, ts
from fakes.gitlab import FakeGitLab
from fakes.server import FakeServer, Reply

from bot.cli import main
from metrics.sources.http import Http, Policy, SourceError, scrub
from metrics.sources.sync import sync_source
from metrics.store import open_db

GITLAB_TOKEN = "glpat-Zx9_sEcReT-42abcDEF"
JIRA_USER, JIRA_TOKEN = "bot@acme.com", "ATATT3xFfGF0-Jira-S3cret-Tok3n"
P, BASE = "acme/mobile", "/api/v4/projects/acme%2Fmobile"
NOW = ts("2026-02-10 00:00")


@pytest.fixture
def elsewhere():
    """Another origin: answers anything, so whatever reaches it shows in its log."""
    with FakeServer() as s:
        s.route("GET", "/*", lambda r: Reply(200, []))
        s.route("POST", "/*", lambda r: Reply(200, {}))
        yield s


def gitlab_source(url: str) -> dict:
    return {"name": "gitlab", "kind": "gitlab", "url": url, "token_env": "GITLAB_TOKEN", "projects": [P]}


def errors_stored(db) -> dict[str, str]:
    return dict(
        db.execute("select stream, last_error from sync_status where last_error is not null").fetchall()
    )


def origin(server: FakeServer) -> str:
    return server.url  # the fakes' URLs are scheme://127.0.0.1:port, an origin as the errors name it


# -- 4. credentials go to the configured origin only ---------------------------------------------------------
def test_a_redirect_to_another_origin_is_refused_and_carries_no_token(elsewhere):
    """A GitLab listing answered by a 302 to another host: requests would follow it with PRIVATE-TOKEN
    (it strips only Authorization on a host change)."""
    gl = FakeGitLab(GITLAB_TOKEN)
    try:
        gl.add_mr(P, "2026-01-05 09:00", merged="2026-01-05 12:00")
        moved = f"{elsewhere.url}{BASE}/merge_requests?page=1"
        gl.server.route("GET", f"{BASE}/merge_requests", lambda r: Reply(302, {}, {"Location": moved}))
        db = new_db()
        result = run_sync(db, gitlab_source(gl.url), "GITLAB_TOKEN", GITLAB_TOKEN, NOW)
    finally:
        gl.close()
    assert elsewhere.log == []
    [error] = result.errors
    assert error.startswith("merge_requests:")
    assert f"a redirect to {origin(elsewhere)} refused" in error and origin(gl.server) in error
    assert f"redirect to {origin(elsewhere)} refused" in errors_stored(db)["merge_requests"]
    assert GITLAB_TOKEN not in error


def test_a_next_link_to_another_origin_is_refused_and_carries_no_token(elsewhere):
    """GitLab builds its ``Link`` headers from its ``external_url``: set to another host, every next
    link leaves the origin the token was configured for."""

    class ExternalUrlElsewhere(FakeGitLab):
        @property
        def url(self) -> str:
            return elsewhere.url

    gl = ExternalUrlElsewhere(GITLAB_TOKEN)
    try:
        gl.next_header = False  # the Link header alone names the next page
        for i in range(150):
            gl.add_mr(P, NOW - (i + 2) * 3600)
        db = new_db()
        result = run_sync(db, gitlab_source(gl.server.url), "GITLAB_TOKEN", GITLAB_TOKEN, NOW)
        listed = [r.arg("page") for r in gl.server.requests_to(f"{BASE}/merge_requests")]
    finally:
        gl.close()
    assert listed == ["1"] and elsewhere.log == []
    [error] = result.errors
    assert f"a link to {origin(elsewhere)} refused" in error and origin(gl.server) in error
    assert f"a link to {origin(elsewhere)} refused" in errors_stored(db)["merge_requests"]


@pytest.mark.parametrize("other", ["port", "host name"])
def test_a_next_link_to_another_port_or_host_name_gets_no_authorization(elsewhere, other):
    """GitHub's ``Authorization`` likewise: a session sends its headers to any URL it is given. The
    same server under another name (``localhost`` for ``127.0.0.1``) is another origin too."""
    with FakeServer() as api:
        port = api.httpd.server_address[1]
        target = elsewhere.url if other == "port" else f"http://localhost:{port}"
        api.route(
            "GET", "/repos/a/b/pulls", lambda r: Reply(200, [1], {"Link": f'<{target}/p?page=2>; rel="next"'})
        )
        http = Http(api.url, {"Authorization": "Bearer ghp_s3cret"}, policy=fast_policy())
        pages = http.paginate_links("/repos/a/b/pulls")
        assert next(pages).data == [1]
        with pytest.raises(SourceError, match=f"a link to {re.escape(target)} refused") as exc:
            next(pages)
        assert len(api.log) == 1 and elsewhere.log == []
    assert "ghp_s3cret" not in str(exc.value)


def test_a_plain_http_next_link_from_an_https_source_is_refused(elsewhere):
    """The plain-http rule holds for every URL followed: from an https base, an ``http://`` link is
    another origin, refused before the token travels in clear (even to a loopback address, which
    ``check_transport`` would allow as a base)."""
    with FakeServer(tls=True) as api:
        link = f'<{elsewhere.url}/items?page=2>; rel="next"'
        api.route("GET", "/items", lambda r: Reply(200, [1], {"Link": link}))
        http = Http(api.url, {"Authorization": "Token token=pd_s3cret"}, policy=fast_policy())
        http.session.verify = api.ca
        pages = http.paginate_links("/items")
        assert next(pages).data == [1]
        with pytest.raises(
            SourceError,
            match=f"a link to {re.escape(elsewhere.url)} refused.*only to its own origin, https://",
        ):
            next(pages)
    assert elsewhere.log == []


# -- 6. no secret in an error -----------------------------------------------------------------------------
def jira_echoing(server: FakeServer, echo) -> None:
    """A Jira site whose REST answers are 400s echoing the request's ``Authorization`` header as it
    arrived (a debugging proxy in front of it), in Jira's error body ``{"errorMessages", "errors"}``."""

    def answer(req):
        return Reply(400, {"errorMessages": echo(req.headers.get("authorization", "")), "errors": {}})

    server.route("GET", "/rest/*", answer)


def jira_config(tmp_path, url: str):
    config = tmp_path / "vsm.toml"
    config.write_text(
        f'[[source]]\nname = "jira"\nkind = "jira"\nurl = "{url}"\ndeployment = "cloud"\n'
        f'user = "{JIRA_USER}"\ntoken_env = "JIRA_TOKEN"\njql = "project = PAY"\n'
    )
    return config


def secret_forms() -> list[str]:
    """The token as sent and as it may be echoed: plain, ``user:token``, base64, in three cases."""
    b64 = base64.b64encode(f"{JIRA_USER}:{JIRA_TOKEN}".encode()).decode()
    forms = [JIRA_TOKEN, f"{JIRA_USER}:{JIRA_TOKEN}", b64, b64.rstrip("=")]
    return [f for form in forms for f in (form, form.lower(), form.upper())]


def test_a_jira_400_echoing_the_basic_header_leaves_no_secret_in_the_store_or_the_output(
    tmp_path, monkeypatch, capsys
):
    def echo(header: str) -> list[str]:
        decoded = base64.b64decode(header.split()[-1]).decode()
        return [
            f"Bad request, headers: Authorization: {header}",
            header.lower(),
            header.upper(),
            decoded.lower(),
        ]

    with FakeServer() as site:
        jira_echoing(site, echo)
        monkeypatch.setenv("JIRA_TOKEN", JIRA_TOKEN)
        code = main(
            ["sync", "--config", str(jira_config(tmp_path, site.url)), "--db", str(tmp_path / "v.db")]
        )
        out, err = capsys.readouterr()
        [received] = {r.headers["authorization"] for r in site.log}
    assert received == "Basic " + base64.b64encode(f"{JIRA_USER}:{JIRA_TOKEN}".encode()).decode()
    assert (
        code == 1 and "HTTP 400: Bad request, headers: Authorization: Basic ***; basic ***; BASIC ***" in out
    )
    assert all(form.lower() not in (out + err).lower() for form in secret_forms())
    db = open_db(tmp_path / "v.db", create=False)
    assert "Authorization: Basic ***" in errors_stored(db)["issues"]
    db.conn.close()
    assert_not_in_files(tmp_path, *secret_forms())


def test_a_secret_across_the_cut_of_a_long_error_is_scrubbed_whole():
    """Errors are cut to 500 characters after scrubbing: cut first, a token lying across the cut would
    keep its first characters, no longer recognisable as the token."""
    with FakeServer() as site:
        jira_echoing(site, lambda header: [JIRA_TOKEN * 40])
        db = new_db()
        source = {
            "name": "jira",
            "kind": "jira",
            "url": site.url,
            "deployment": "cloud",
            "jql": "project = PAY",
        }
        result = run_sync(
            db, {**source, "user": JIRA_USER, "token_env": "JIRA_TOKEN"}, "JIRA_TOKEN", JIRA_TOKEN, NOW
        )
    stored = errors_stored(db)["issues"]
    pieces = {JIRA_TOKEN[i : i + 6] for i in range(len(JIRA_TOKEN) - 5)}
    assert "HTTP 400: ******" in stored
    assert not any(piece in text for piece in pieces for text in (stored, *result.errors))


def test_scrub_finds_every_form_of_the_token_in_any_case():
    token_b64 = base64.b64encode(JIRA_TOKEN.encode()).decode()
    pair_b64 = base64.b64encode(f"{JIRA_USER}:{JIRA_TOKEN}".encode()).decode()
    text = (
        f"a {JIRA_TOKEN.lower()} b {pair_b64.rstrip('=').upper()} c {token_b64} d {JIRA_USER}:{JIRA_TOKEN} e"
    )
    assert scrub(text, JIRA_TOKEN, JIRA_USER) == "a *** b *** c *** d *** e"
    assert scrub(text, None) == text  # no token, nothing to hide


# -- 7. a slow source cannot hold a sync --------------------------------------------------------------------
def test_a_trickling_source_fails_its_stream_at_the_deadline_instead_of_holding_the_sync():
    """PagerDuty's incident list sent a byte every 20 ms: each read is quick, the whole would take 8 s."""
    body = {"incidents": [], "limit": 100, "offset": 0, "more": False, "padding": "x" * 330}
    with FakeServer() as pd:
        pd.route("GET", "/incidents", lambda r: Reply(200, body, trickle=0.02))
        db = new_db()
        source = {"name": "pagerduty", "kind": "pagerduty", "url": pd.url, "token_env": "PD_TOKEN"}
        policy = Policy(backoff=0.001, sleep=[].append, timeout=(1.0, 1.0), deadline=0.4)
        began = time.monotonic()
        result = sync_source(db, source, env={"PD_TOKEN": "pd-key"}, now=NOW, policy=policy)
        took = time.monotonic() - began
    assert took < 2.0
    [error] = result.errors
    assert error == "incidents: GET /incidents: no whole answer within the 0.4 s deadline"
    assert errors_stored(db)["incidents"].endswith("no whole answer within the 0.4 s deadline")
