"""The Jira connector over real HTTP against a loopback fake of Jira Cloud and Data Center.

Every test checks the stored raw payloads exactly against what the fake holds (``expected``: each
issue as an uncapped search naming the connector's fields would return it), and never sleeps: the
policy records the waits instead.
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

import pytest
from builders import assert_not_in_files, new_db, run_sync, ts
from fakes.jira import DATACENTER, SPRINT_FIELD, FakeJira
from fakes.server import Fault

from metrics.catalogue import compute
from metrics.normalise import ingest
from metrics.sample import sample_teams, simulate
from metrics.sources.jira import FIELDS, OVERLAP_MS, RECONCILE_EVERY, deployment, epoch_ms
from metrics.store import open_db
from metrics.store.raw import canonical, get_raw
from metrics.timeutil import Window, local_midnight, zone

TOKEN = "ATATT3xFfGF0-jira+S3cr3t-9QwZ"
USER = "bot@acme.com"
NOW = ts("2026-02-10 00:00")
DAY = 86400.0
HOUR = 3600.0
JQL = "project in (PAY, WEB)"
CLOUD_SEARCH = "/rest/api/3/search/jql"
DC_SEARCH = "/rest/api/2/search"
SERVER_INFO = "/rest/api/2/serverInfo"


@pytest.fixture
def jira():
    fake = FakeJira(TOKEN, page_cap=20, changelog_cap=5)
    yield fake
    fake.close()


@pytest.fixture
def dc():
    fake = FakeJira(TOKEN, deployment=DATACENTER, user=None, page_cap=20, changelog_cap=5)
    yield fake
    fake.close()


def source(fake: FakeJira, **kw) -> dict:
    cfg = {
        "name": "jira",
        "kind": "jira",
        "url": fake.url,
        "token_env": "JIRA_TOKEN",
        "jql": JQL,
        "history_days": 365,  # no ``deployment``: the connector asks the site (serverInfo)
    }
    if fake.user:
        cfg["user"] = fake.user
    cfg.update(kw)
    return {k: v for k, v in cfg.items() if v is not None}


def sync(db, fake, *, now: float = NOW, token: str = TOKEN, waits: list | None = None, **kw):
    return run_sync(db, source(fake, **kw), "JIRA_TOKEN", token, now, waits)


def expected(fake: FakeJira, *, now: float = NOW, days: int = 365, projects=("PAY", "WEB"), fields=FIELDS):
    """The raw issue payloads the store must hold: the fake's issues of the projects updated in history."""
    start_ms = epoch_ms(now - days * DAY)
    return {
        issue_id: canonical(fake.payload(issue["key"], list(fields)))
        for issue_id, issue in fake.issues.items()
        if issue["key"].split("-")[0] in projects and fake.updated_ms[issue_id] >= start_ms
    }


def stored(db) -> dict[str, str]:
    return dict(db.execute("select external_id, payload from raw where kind = 'issue'").fetchall())


def raw_snapshot(db) -> list[tuple]:
    return db.execute(
        "select kind, external_id, updated_at, fetched_at, payload from raw order by 1, 2"
    ).fetchall()


def items(db) -> dict[str, tuple]:
    return {r["key"]: (r["status"], r["deleted"]) for r in db.query("select * from work_items")}


def status(db, stream: str = "issues") -> dict:
    row = next(db.query("select * from sync_status where source = 'jira' and stream = ?", [stream]))
    return {**row, "state": json.loads(row["cursor"]) if row["cursor"] else {}}


def searches(fake: FakeJira, since: int = 0) -> list:
    return [r for r in fake.server.log[since:] if r.path == fake.search_path]


def history(fake: FakeJira, n: int = 60) -> None:
    """``n`` issues over the year in PAY, WEB and a foreign project, most moved through the workflow;
    every fifth one with a long history (more than the search's changelog cap), one with 150."""
    projects = ("PAY", "WEB", "OPS")
    for k in range(n):
        key = f"{projects[k % 3]}-{k + 1}"
        created = NOW - 350 * DAY + k * 5 * DAY
        fake.add(key, created)
        if k % 4 == 3:
            continue  # never touched: stays in Backlog
        fake.move_status(key, created + HOUR, "Selected for Development")
        fake.move_status(key, created + 2 * HOUR, "In Progress")
        if k % 5 == 0:
            for j in range(4):  # back and forth: long changelogs
                fake.move_status(key, created + (3 + 2 * j) * HOUR, "In Review")
                fake.move_status(key, created + (4 + 2 * j) * HOUR, "In Progress")
        if k % 2 == 0:
            fake.move_status(key, created + 20 * HOUR, "Done", resolution="Done")
    long = "PAY-31" if n > 30 else "PAY-1"
    at = NOW - DAY
    for j in range(75):
        fake.move_status(long, at + j * 60, "In Review")
        fake.move_status(long, at + j * 60 + 30, "In Progress")
    fake.add("PAY-999", NOW - 400 * DAY)  # before the history window


def changelog_fetches(fake: FakeJira, since: int = 0) -> list[str]:
    return [r.path for r in fake.server.log[since:] if r.path.endswith("/changelog")]


# -- first sync ---------------------------------------------------------------------------------------
def test_first_sync_stores_every_issue_with_its_whole_changelog(jira):
    history(jira)
    db = new_db()
    result = sync(db, jira)
    assert result.ok, result.errors
    want = expected(jira)
    assert stored(db) == want and len(want) == 40
    truncated = [i for i in want if len(jira.histories[i]) > 5]
    assert len(truncated) >= 5
    # Truncated changelogs were completed from /issue/{key}/changelog, paged, oldest first.
    long_id = jira.keys["PAY-31"]
    assert len(jira.histories[long_id]) > 150
    fetched = changelog_fetches(jira)
    assert sorted(set(fetched)) == sorted(
        f"/rest/api/3/issue/{jira.issues[i]['key']}/changelog" for i in truncated
    )
    starts = [r.arg("startAt") for r in jira.server.log if r.path == "/rest/api/3/issue/PAY-31/changelog"]
    assert starts == ["0", "100"]
    transitions = db.execute("select count(*) from transitions where key = 'PAY-31'").fetchone()[0]
    assert transitions == len(jira.histories[long_id])
    assert items(db)["PAY-1"] == ("Done", 0) and "OPS-3" not in items(db) and "PAY-999" not in items(db)


def test_search_uses_search_jql_with_epoch_ms_created_order_and_named_fields(jira):
    history(jira)
    db = new_db()
    assert sync(db, jira).ok
    crawl = [r for r in searches(jira) if r.arg("expand") == "changelog"]
    assert len(crawl) >= 2  # many pages (20 per page at most)
    since = epoch_ms(NOW - 365 * DAY)
    for r in crawl:
        jql = r.arg("jql")
        assert jql == f"({JQL}) AND updated >= {since} ORDER BY created ASC"
        assert re.search(r"updated >= \d{13} ", jql) and '"' not in jql and "/" not in jql  # no date literal
        assert r.arg("fields").split(",") == list(FIELDS) and r.arg("maxResults") == "100"
        assert r.headers["authorization"].startswith("Basic ")
    assert crawl[0].arg("nextPageToken") is None
    assert all(r.arg("nextPageToken") for r in crawl[1:])
    assert jira.server.requests_to("/rest/api/3/search") == [] and jira.server.requests_to(DC_SEARCH) == []
    state = status(db)["state"]
    assert state["cursor"] == max(jira.updated_ms[i] for i in expected(jira))
    assert state["jql"] == JQL and "since" not in state and "page_token" not in state


def test_the_configured_order_by_is_replaced_and_a_jql_is_required(jira):
    history(jira, 10)
    db = new_db()
    assert sync(db, jira, jql="project in (PAY, WEB) ORDER BY Rank ASC").ok
    assert searches(jira)[0].arg("jql").startswith(f"({JQL}) AND updated >= ")
    assert stored(db) == expected(jira)
    bad = sync(new_db(), jira, jql="ORDER BY created")
    assert not bad.ok and "jql is required" in bad.errors[0]


def test_removed_search_endpoints_answer_410_and_a_cloud_site_taken_for_data_center_says_so(jira):
    history(jira, 6)
    result = sync(new_db(), jira, deployment="datacenter")
    assert not result.ok
    assert "HTTP 410" in result.errors[0] and 'deployment = "cloud"' in result.errors[0]
    assert jira.server.requests_to(SERVER_INFO) == []  # the setting overrides: the site is not asked


# -- Cloud or Data Center: the site says (serverInfo), once per sync ------------------------------------
def remembered(db) -> dict | None:
    return get_raw(db, "jira", "server_info", "server_info")


def test_a_cloud_site_on_its_own_domain_is_found_by_server_info_once_per_sync(jira):
    _sprints(jira)
    history(jira, 12)
    db = new_db()
    result = sync(db, jira, boards=["1", "2"])  # two streams, one question
    assert result.ok, result.errors
    assert len(jira.server.requests_to(SERVER_INFO)) == 1
    assert searches(jira) and jira.server.requests_to(DC_SEARCH) == []
    assert stored(db) == expected(jira, fields=[*FIELDS, SPRINT_FIELD]) and len(sprint_rows(db)) == 60
    assert remembered(db) == {"baseUrl": jira.url, "deploymentType": "Cloud", "version": "1001.0.0-SNAPSHOT"}
    # Asked again at the next sync (a site can migrate); the same answer writes nothing.
    before = raw_snapshot(db)
    assert sync(db, jira, now=NOW + HOUR, boards=["1", "2"]).ok
    assert len(jira.server.requests_to(SERVER_INFO)) == 2 and raw_snapshot(db) == before


@pytest.mark.parametrize("kind", ["Server", "DataCenter"])
def test_a_data_center_site_is_found_by_server_info(kind):
    fake = FakeJira(TOKEN, deployment=DATACENTER, user=None, page_cap=20, deployment_type=kind)
    try:
        history(fake, 12)
        db = new_db()
        assert sync(db, fake).ok
        assert fake.server.requests_to(SERVER_INFO) and fake.server.requests_to(DC_SEARCH)
        assert not [r for r in fake.server.log if r.path.startswith("/rest/api/3/")]
        assert stored(db) == expected(fake) and remembered(db)["deploymentType"] == kind
        fake.deployment_type = "DataCenter" if kind == "Server" else "Server"  # the site changed
        assert sync(db, fake, now=NOW + HOUR).ok
        assert remembered(db)["deploymentType"] == fake.deployment_type
    finally:
        fake.close()


def test_the_answer_decides_over_the_host_name_and_the_setting_over_both():
    dc_answer = {"deploymentType": "DataCenter"}
    assert deployment({"url": "https://jira.acme.atlassian.net"}, dc_answer) == "datacenter"
    assert deployment({"url": "https://jira.acme.com"}, {"deploymentType": "Cloud"}) == "cloud"
    assert deployment({"url": "https://jira.acme.com", "deployment": "cloud"}, dc_answer) == "cloud"
    assert deployment({"url": "https://acme.atlassian.net"}, {"message": "not jira"}) == "cloud"
    assert deployment({"url": "https://jira.acme.com"}) == "datacenter"


def test_an_explicit_deployment_is_used_without_asking(jira):
    history(jira, 12)
    db = new_db()
    assert sync(db, jira, deployment="cloud").ok
    assert jira.server.requests_to(SERVER_INFO) == [] and remembered(db) is None
    assert stored(db) == expected(jira)
    bad = sync(new_db(), jira, deployment="server")
    assert not bad.ok and "deployment must be" in bad.errors[0]


@pytest.mark.parametrize("fault", [Fault(404), Fault(401), Fault(body=b"<html>Sign in</html>")])
def test_server_info_unreadable_falls_back_to_the_host_rule_and_says_so(jira, fault):
    history(jira, 12)
    jira.server.fail(SERVER_INFO, *[fault] * 5)
    result = sync(new_db(), jira)  # Cloud on 127.0.0.1: the host rule takes it for Data Center
    assert not result.ok and "HTTP 410" in result.errors[0]
    message = result.errors[0]
    assert "could not ask the site" in message and "Jira Data Center by its host name" in message
    assert 'deployment = "cloud"' in message and TOKEN not in message


def test_server_info_unreadable_on_data_center_still_syncs(dc):
    history(dc, 12)
    dc.server.fail(SERVER_INFO, Fault(401))
    db = new_db()
    assert sync(db, dc).ok
    assert stored(db) == expected(dc) and remembered(db) is None


def test_server_info_unreadable_later_uses_the_answer_the_site_gave_before(jira):
    history(jira, 12)
    db = new_db()
    assert sync(db, jira).ok
    jira.server.fail(SERVER_INFO, Fault(404))
    jira.move_status("PAY-1", NOW + HOUR, "In Review")
    n = len(jira.server.log)
    assert sync(db, jira, now=NOW + DAY).ok
    assert searches(jira, n) and jira.server.requests_to(DC_SEARCH) == []
    assert stored(db) == expected(jira, now=NOW + DAY)
    jira.token = "rotated"  # a failing sync names the remembered answer as the guess
    jira.server.fail(SERVER_INFO, Fault(404))
    bad = sync(db, jira, now=NOW + 2 * DAY)
    assert not bad.ok and "401" in bad.errors[0]
    assert "took it for Jira Cloud as the site said at an earlier sync" in bad.errors[0]


# -- incremental --------------------------------------------------------------------------------------
def test_second_sync_with_no_remote_change_writes_nothing(jira):
    history(jira)
    db = new_db()
    assert sync(db, jira).ok
    before = raw_snapshot(db), items(db)
    cursor = status(db)["state"]["cursor"]
    n = len(jira.server.log)
    result = sync(db, jira, now=NOW + HOUR)
    assert result.ok and result.changed == 0
    assert (raw_snapshot(db), items(db)) == before
    assert status(db)["rows_changed"] == 0
    again = searches(jira, n)
    assert [r.arg("jql") for r in again] == [
        f"({JQL}) AND updated >= {cursor - OVERLAP_MS} ORDER BY created ASC"
    ]
    # PAY-31 (truncated, updated last) came back in the overlap: its stored history was reused.
    assert result.seen == 1 and changelog_fetches(jira, n) == []


def test_a_changed_issue_has_its_whole_changelog_refetched(jira):
    history(jira)
    db = new_db()
    assert sync(db, jira).ok
    n = len(jira.server.log)
    jira.move_status("PAY-31", NOW + 2 * HOUR, "Done", resolution="Done")  # truncated parent changes
    jira.move_status("WEB-2", NOW + 3 * HOUR, "Done", resolution="Done")  # short one
    jira.add("WEB-61", NOW + 4 * HOUR)
    result = sync(db, jira, now=NOW + DAY)
    assert result.ok, result.errors
    assert stored(db) == expected(jira, now=NOW + DAY)
    assert sorted(set(changelog_fetches(jira, n))) == ["/rest/api/3/issue/PAY-31/changelog"]
    assert items(db)["PAY-31"] == ("Done", 0) and items(db)["WEB-61"] == ("Backlog", 0)
    n_trans = db.execute("select count(*) from transitions where key = 'PAY-31'").fetchone()[0]
    assert n_trans == len(jira.histories[jira.keys["PAY-31"]])
    assert status(db)["rows_changed"] == 3


def test_an_issue_edited_mid_crawl_on_a_page_already_read_is_caught_by_the_next_sync(jira):
    history(jira)
    db = new_db()
    edits = []

    def edit_during_crawl(req):
        if req.arg("nextPageToken") and not edits:  # the second page: page one is already read
            edits.append(jira.move_status("PAY-1", NOW + 60, "In Review"))
            edits.append(jira.move_status("WEB-59", NOW + 600, "In Review"))  # on a later page

    jira.before_search = edit_during_crawl
    assert sync(db, jira).ok
    assert edits and json.loads(stored(db)[jira.keys["PAY-1"]])["fields"]["status"]["name"] == "Done"
    assert status(db)["state"]["cursor"] == epoch_ms(NOW)  # capped at the crawl's start
    jira.before_search = None
    assert sync(db, jira, now=NOW + HOUR).ok
    assert stored(db) == expected(jira, now=NOW + HOUR)
    assert items(db)["PAY-1"] == ("In Review", 0)


def test_a_changed_jql_starts_over_and_checks_deletions_at_once(jira):
    history(jira)
    db = new_db()
    assert sync(db, jira).ok
    n = len(jira.server.log)
    result = sync(db, jira, now=NOW + HOUR, jql="project = PAY")
    assert result.ok, result.errors
    first = searches(jira, n)[0].arg("jql")
    assert first == f"(project = PAY) AND updated >= {epoch_ms(NOW + HOUR - 365 * DAY)} ORDER BY created ASC"
    listing = [r for r in searches(jira, n) if r.arg("fields") == "id"]
    assert listing and all(r.arg("expand") is None for r in listing)
    web = {k for k in items(db) if k.startswith("WEB-")}
    assert web and all(items(db)[k][1] == 1 for k in web)  # only the old query selected them
    assert all(d == 0 for k, (_, d) in items(db).items() if k.startswith("PAY-"))
    assert status(db)["state"]["jql"] == "project = PAY"
    # Back to both projects: the WEB issues are read again and come back.
    assert sync(db, jira, now=NOW + 2 * HOUR).ok
    assert all(d == 0 for _, d in items(db).values())
    assert stored(db) == expected(jira, now=NOW + 2 * HOUR)


# -- deletions ------------------------------------------------------------------------------------------
def test_deletions_are_tombstoned_by_the_periodic_id_listing(jira):
    history(jira)
    db = new_db()
    assert sync(db, jira).ok
    assert status(db)["state"]["reconciled"] == NOW
    jira.delete("WEB-8")
    jira.move("PAY-13", "WEB-113", NOW + HOUR)
    hidden = jira.add("PAY-70", NOW - 30 * DAY)  # indexed late: older than the cursor, never searched
    n = len(jira.server.log)
    assert sync(db, jira, now=NOW + DAY).ok  # no listing yet: the last one is a day old
    assert [r for r in searches(jira, n) if r.arg("fields") == "id"] == []
    assert items(db)["WEB-8"] == ("Backlog", 0)
    assert items(db)["PAY-13"][1] == 1 and items(db)["WEB-113"][1] == 0  # a move shows at once
    later = NOW + DAY + RECONCILE_EVERY
    n = len(jira.server.log)
    assert sync(db, jira, now=later).ok
    listing = [r for r in searches(jira, n) if r.arg("fields") == "id"]
    assert len(listing) == 1 and listing[0].arg("jql") == (
        f"({JQL}) AND updated >= {epoch_ms(later - 365 * DAY)} ORDER BY created ASC"
    )
    assert items(db)["WEB-8"][1] == 1
    assert items(db)["PAY-70"] == ("Backlog", 0)  # listed but never stored: fetched
    assert stored(db)[hidden["id"]] == expected(jira, now=later)[hidden["id"]]
    live = {k for k, (_, d) in items(db).items() if d == 0}
    assert live == {jira.issues[i]["key"] for i in expected(jira, now=later)}
    assert status(db)["state"]["reconciled"] == later
    # Nothing changed since: the next sync writes nothing, and the tombstone stays.
    before = raw_snapshot(db)
    assert sync(db, jira, now=later + HOUR).ok and raw_snapshot(db) == before
    assert items(db)["WEB-8"][1] == 1


# -- faults: the stored data is exactly right after each --------------------------------------------------
def test_429_with_retry_after_is_waited_out(jira):
    history(jira)
    jira.arm(CLOUD_SEARCH, 1, Fault(429, {"Retry-After": "7"}), Fault(429, {"Retry-After": "3"}))
    jira.arm("/rest/api/3/issue/PAY-31/changelog", 1, Fault(429, {"Retry-After": "2"}))
    db, waits = new_db(), []
    result = sync(db, jira, waits=waits)
    assert result.ok, result.errors
    assert waits == [7.0, 3.0, 2.0]
    assert stored(db) == expected(jira)


def test_a_burst_of_5xx_is_absorbed(jira):
    history(jira)
    jira.arm(CLOUD_SEARCH, 1, Fault(500), Fault(502), Fault(503), Fault(504))
    db = new_db()
    assert sync(db, jira).ok
    assert stored(db) == expected(jira)


def test_a_connection_dropped_mid_page_is_retried(jira):
    history(jira)
    jira.arm(CLOUD_SEARCH, 1, Fault(drop=True))
    jira.arm("/rest/api/3/issue/PAY-31/changelog", 1, Fault(drop=True))
    db = new_db()
    assert sync(db, jira).ok
    assert stored(db) == expected(jira)


def test_malformed_json_is_retried(jira):
    history(jira)
    jira.arm(CLOUD_SEARCH, 1, Fault(body=b'{"issues": [{"id": "10'))
    db = new_db()
    assert sync(db, jira).ok
    assert stored(db) == expected(jira)


def test_an_expired_token_fails_the_stream_and_keeps_stored_data(jira):
    history(jira)
    db = new_db()
    assert sync(db, jira).ok
    before, success = raw_snapshot(db), status(db)["last_success"]
    jira.move_status("PAY-1", NOW + HOUR, "In Review")
    result = sync(db, jira, now=NOW + DAY, token="ATATT-expired-0000")
    assert not result.ok
    assert "authentication failed (401)" in result.errors[0] and "expired-0000" not in result.errors[0]
    assert raw_snapshot(db) == before
    st = status(db)
    assert st["last_success"] == success and "401" in st["last_error"]


def test_the_token_is_never_stored_nor_shown(jira, tmp_path):
    history(jira, 12)
    db = open_db(tmp_path / "x.db")
    assert sync(db, jira).ok
    jira.token = "rotated"
    bad = sync(db, jira, now=NOW + DAY)
    jira.outage = lambda r: True
    down = sync(db, jira, now=NOW + 2 * DAY, token="rotated")
    errors = bad.errors + down.errors
    assert len(errors) == 2 and all(TOKEN not in e and "rotated" not in e for e in errors)
    db.conn.close()
    assert_not_in_files(tmp_path, TOKEN)


def test_plain_http_to_a_remote_host_is_refused_before_any_request(jira):
    result = sync(new_db(), jira, url="http://jira.acme.example")
    assert not result.ok and "refusing" in result.errors[0] and TOKEN not in result.errors[0]


# -- resumption --------------------------------------------------------------------------------------------
def _fail_page(fake: FakeJira, page: int) -> list[int]:
    """An outage from the ``page``-th crawl request of the search on (1-based)."""
    count = [0]

    def outage(req):
        if req.path == fake.search_path and req.arg("expand") == "changelog":
            count[0] += 1
            return count[0] >= page
        return False

    fake.outage = outage
    return count


def test_an_interrupted_sync_resumes_at_the_page_where_it_stopped(jira):
    history(jira)
    _fail_page(jira, 2)
    db = new_db()
    first = sync(db, jira)
    assert not first.ok and "HTTP 500" in first.errors[0]
    state = status(db)["state"]
    assert state["page_token"] and state["since"] == epoch_ms(NOW - 365 * DAY) and state["cursor"] is None
    before = set(stored(db))
    assert len(before) == 20 and first.seen == 20  # the first page of 20
    jira.outage = None
    n = len(jira.server.log)
    resumed = sync(db, jira)
    assert resumed.ok, resumed.errors
    crawl = [r for r in searches(jira, n) if r.arg("expand") == "changelog"]
    assert crawl[0].arg("nextPageToken") == state["page_token"] and len(crawl) == 1
    assert resumed.seen == 20 and resumed.changed == 20  # the rest: nothing read twice, nothing lost
    assert stored(db) == expected(jira) and not before & {i["id"] for r in crawl for i in []}
    assert status(db)["state"]["cursor"] == max(jira.updated_ms[i] for i in expected(jira))


def test_a_resumed_sync_with_an_expired_page_token_reads_the_same_window_again(jira):
    history(jira, 90)
    _fail_page(jira, 2)
    db = new_db()
    assert not sync(db, jira).ok
    saved = status(db)["state"]
    jira.outage = None
    jira.expire_tokens()
    jira.move_status("PAY-88", NOW + HOUR, "Done", resolution="Done")
    n = len(jira.server.log)
    result = sync(db, jira, now=NOW + DAY)
    assert result.ok, result.errors
    crawl = [r for r in searches(jira, n) if r.arg("expand") == "changelog"]
    assert crawl[0].arg("nextPageToken") == saved["page_token"] and crawl[1].arg("nextPageToken") is None
    assert all(f"updated >= {saved['since']} " in r.arg("jql") for r in crawl)
    assert stored(db) == expected(jira, now=NOW + DAY)
    assert status(db)["state"]["cursor"] == epoch_ms(NOW)  # the crawl started then


# -- Data Center ------------------------------------------------------------------------------------------
def test_data_center_end_to_end(dc):
    history(dc)
    dc.add_sprint(3, 41, "DC Sprint 1", "closed", NOW - 30 * DAY, NOW - 16 * DAY, NOW - 16 * DAY)
    dc.set_sprints("PAY-58", NOW - 20 * DAY, [41])
    db = new_db()
    fields = [*FIELDS, SPRINT_FIELD]
    result = sync(db, dc, sprint_field=SPRINT_FIELD)
    assert result.ok, result.errors
    assert stored(db) == expected(dc, fields=fields) and len(stored(db)) == 40
    first = searches(dc)[0]
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    crawl = [r for r in searches(dc) if r.arg("expand") == "changelog"]
    assert [r.arg("startAt") for r in crawl] == ["0", "20"]  # 40 issues, 20 a page, up to total
    assert not [r for r in dc.server.log if r.path.startswith("/rest/api/3/")]
    full = sorted({r.path for r in dc.server.log if r.path.startswith("/rest/api/2/issue/")})
    truncated = sorted(
        f"/rest/api/2/issue/{dc.issues[i]['key']}" for i in stored(db) if len(dc.histories[i]) > 5
    )
    assert full == truncated and all(
        r.arg("expand") == "changelog" for r in dc.server.log if r.path.startswith("/rest/api/2/issue/")
    )
    assert db.execute("select sprint_id, change from sprint_events where key = 'PAY-58'").fetchall() == [
        ("41", "add")
    ]
    # Incremental, then a deletion found by the id listing.
    before, before_payloads = raw_snapshot(db), stored(db)
    assert sync(db, dc, now=NOW + HOUR, sprint_field=SPRINT_FIELD).changed == 0 and raw_snapshot(db) == before
    gone = dc.keys["PAY-4"]
    dc.delete("PAY-4")
    later = NOW + RECONCILE_EVERY + DAY
    assert sync(db, dc, now=later, sprint_field=SPRINT_FIELD).ok
    assert items(db)["PAY-4"][1] == 1
    assert stored(db) == {**expected(dc, now=later, fields=fields), gone: before_payloads[gone]}
    live = {k for k, (_, d) in items(db).items() if d == 0}
    assert live == {dc.issues[i]["key"] for i in expected(dc, now=later)}


def test_data_center_resumes_by_start_at(dc):
    history(dc)
    _fail_page(dc, 2)
    db = new_db()
    assert not sync(db, dc).ok
    assert status(db)["state"]["start_at"] == 20
    dc.outage = None
    n = len(dc.server.log)
    assert sync(db, dc).ok
    assert searches(dc, n)[0].arg("startAt") == "20"
    assert stored(db) == expected(dc)


# -- sprints ----------------------------------------------------------------------------------------------
def _sprints(fake: FakeJira) -> None:
    for k in range(60):  # board 1: 58 closed, 1 active, 1 future (60 > one page of 50)
        start = NOW - (60 - k) * 14 * DAY / 4
        state = "closed" if k < 58 else ("active" if k == 58 else "future")
        fake.add_sprint(
            1,
            100 + k,
            f"PAY Sprint {k + 1}",
            state,
            start if state != "future" else None,
            start + 14 * DAY if state != "future" else None,
            start + 14 * DAY if state == "closed" else None,
        )
    fake.add_sprint(2, 500, "WEB Sprint 1", "active", NOW - 3 * DAY, NOW + 11 * DAY)


def sprint_rows(db) -> dict[str, tuple]:
    return {r["id"]: (r["board"], r["name"], r["state"]) for r in db.query("select * from sprints")}


def test_sprints_stream_every_board_and_the_sprint_field_is_found(jira):
    _sprints(jira)
    history(jira, 12)
    jira.set_sprints("PAY-1", NOW - 2 * DAY, [157, 158])
    db = new_db()
    result = sync(db, jira, boards=["1", "2"])
    assert result.ok, result.errors
    want = {
        str(s["id"]): (str(s["originBoardId"]), s["name"], s["state"])
        for board in jira.boards.values()
        for s in board
        if s["state"] != "future"
    }
    assert sprint_rows(db) == want and len(want) == 60
    pages = [(r.path, r.arg("startAt"), r.arg("state")) for r in jira.server.log if "/agile/" in r.path]
    assert pages == [
        ("/rest/agile/1.0/board/1/sprint", "0", "active,closed"),
        ("/rest/agile/1.0/board/1/sprint", "50", "active,closed"),
        ("/rest/agile/1.0/board/2/sprint", "0", "active,closed"),
    ]
    assert jira.server.requests_to("/rest/api/3/field")
    assert searches(jira)[0].arg("fields").split(",") == [*FIELDS, SPRINT_FIELD]
    assert stored(db) == expected(jira, fields=[*FIELDS, SPRINT_FIELD])
    events = db.execute(
        "select sprint_id, change from sprint_events where key = 'PAY-1' order by 1"
    ).fetchall()
    assert events == [("157", "add"), ("158", "add")]
    before = raw_snapshot(db)
    again = sync(db, jira, now=NOW + HOUR, boards=["1", "2"])
    assert again.ok and again.changed == 0 and raw_snapshot(db) == before
    assert status(db, "sprints")["rows_changed"] == 0


def test_an_interrupted_sprint_listing_resumes_at_its_board_and_page(jira):
    _sprints(jira)
    jira.outage = lambda r: r.path == "/rest/agile/1.0/board/1/sprint" and r.arg("startAt") == "50"
    db = new_db()
    result = sync(db, jira, boards=["1", "2"])
    assert not result.ok and result.errors[0].startswith("sprints:")
    assert status(db, "sprints")["state"] == {"board": "1", "start_at": 50}
    assert len(sprint_rows(db)) == 50
    assert status(db)["last_success"]  # the issues stream synced all the same
    jira.outage = None
    n = len(jira.server.log)
    assert sync(db, jira, boards=["1", "2"]).ok
    pages = [(r.path, r.arg("startAt")) for r in jira.server.log[n:] if "/agile/" in r.path]
    assert pages[0] == ("/rest/agile/1.0/board/1/sprint", "50")
    assert len(sprint_rows(db)) == 60 and status(db, "sprints")["state"] == {}


# -- metrics from synced data equal metrics from the same payloads ingested directly --------------------------
SAMPLE_END = date(2026, 2, 2)
JIRA_METRICS = (
    "cycle-time",
    "lead-time",
    "throughput",
    "flow-efficiency",
    "wip",
    "aging-wip",
    "flow-distribution",
    "net-flow",
    "sprint-completion",
    "sprint-scope-change",
    "sprint-carry-over",
)


def test_metrics_from_synced_sample_history_equal_those_from_direct_ingestion():
    fake = FakeJira(TOKEN, page_cap=50, changelog_cap=8)
    try:
        wire = simulate(SAMPLE_END)
        payloads = wire.issue_payloads()
        for p in payloads:
            fake.load(p)
        for s in wire.sprints:
            fake.boards.setdefault(str(s["board"]), []).append(wire.sprint_payload(s))
        now = float(wire.cutoff)
        cfg = dict(
            jql="project in (PAY, MOB, PLAT)", history_days=182, sprint_field=SPRINT_FIELD, boards=["1", "2"]
        )
        synced = new_db()
        result = sync(synced, fake, now=now, **cfg)
        assert result.ok, result.errors
        # Direct: the same payloads, as a 26-week reading of the API would return them.
        direct = new_db()
        options = source(fake, **cfg)
        start = now - 182 * DAY
        kept = [p for p in payloads if fake.updated_ms[p["id"]] >= epoch_ms(start)]
        for s in wire.sprints:
            payload = wire.sprint_payload(s)
            if payload["state"] in ("active", "closed"):
                ingest(direct, "jira", "sprint", str(s["id"]), None, payload, options)
        for p in kept:
            ingest(direct, "jira", "issue", p["id"], p["fields"]["updated"], p, options)
        assert stored(synced) == {p["id"]: canonical(p) for p in kept}  # byte for byte, changelogs whole
        assert changelog_fetches(fake)  # some came truncated
        z = zone("UTC")
        window = Window(local_midnight(SAMPLE_END - timedelta(days=84), z), local_midnight(SAMPLE_END, z))
        for team in sample_teams():
            for metric in JIRA_METRICS:
                got = compute(synced, team, metric, window, now).to_json()
                assert got == compute(direct, team, metric, window, now).to_json(), (team.name, metric)
        cycle = compute(synced, sample_teams()[0], "cycle-time", window, now).to_json()
        assert cycle["sample_size"] > 20
    finally:
        fake.close()
