"""Schema versions. Add a new ``@MIGRATIONS()`` function for every change; never edit an applied one.

Layers, as in Apache DevLake: ``raw`` keeps each payload exactly as a tool returned it; the other tables
are tool-neutral rows derived from ``raw`` (see ``metrics.normalise``), so a fix to normalisation
re-derives history without refetching. Workflow mappings are *not* applied here: statuses are stored as
the tool names them and mapped to stages at computation time, so a team's new mapping applies at once.

All instants are UTC epoch seconds (REAL): the catalogue compares and subtracts them millions of times.
"""

from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("vsm")


def _clustered(db, name: str, columns: dict, pk: tuple[str, ...], defaults: dict | None = None) -> None:
    """A WITHOUT ROWID table: rows are stored in primary-key order, so one team's items (keys share
    the project prefix), an item's transitions or a repo's PRs sit together on disk. On a large
    database this turns thousands of scattered page reads per team query into a few sequential ones."""
    sql = db.create_table_sql(name, columns, pk=pk, defaults=defaults).strip().rstrip(";")
    db.execute(sql + " WITHOUT ROWID")


@MIGRATIONS()
def m001_initial(db):
    db["raw"].create(
        {
            "source": str,
            "kind": str,
            "external_id": str,
            "updated_at": str,
            "fetched_at": str,
            "payload": str,
        },
        pk=("source", "kind", "external_id"),
    )
    _clustered(
        db,
        "work_items",
        {
            "source": str,
            "key": str,
            "project": str,
            "type": str,
            "summary": str,
            "url": str,
            "status": str,
            "status_id": str,
            "resolution": str,
            "created": float,
            "resolved": float,
            "updated": float,
            "labels": str,
            "components": str,
            "sprints": str,
            "points": float,
            "deleted": int,
        },
        pk=("source", "key"),
        defaults={"deleted": 0},
    )
    # ``updated`` is the last status change (or creation): any item that can matter to a window
    # starting at S either changed status at or after S or is still open.
    db["work_items"].create_index(["project", "updated"])
    db["work_items"].create_index(["project", "status"])
    _clustered(
        db,
        "transitions",
        {
            "source": str,
            "key": str,
            "project": str,
            "seq": int,
            "at": float,
            "from_code": int,
            "to_code": int,
        },
        pk=("project", "source", "key", "seq"),
    )
    # Clustered by project: a team's whole history is one contiguous range. The normalisers replace
    # an item's transitions by (source, key).
    db["transitions"].create_index(["source", "key"])
    # A status as the tool names it (id and name), coded per source: transitions carry the small
    # integer, so reading a team's history builds no strings. See metrics.store.statuses.
    db["statuses"].create(
        {"source": str, "code": int, "status_id": str, "name": str},
        pk=("source", "code"),
        not_null={"status_id", "name"},
    )
    db["statuses"].create_index(["source", "status_id", "name"], unique=True)
    db.execute(
        """create view status_changes as
        select t.source, t.key, t.project, t.seq, t.at,
               nullif(f.status_id, '') as from_id, nullif(f.name, '') as from_status,
               nullif(s.status_id, '') as to_id, nullif(s.name, '') as to_status
        from transitions t
        left join statuses f on f.source = t.source and f.code = t.from_code
        left join statuses s on s.source = t.source and s.code = t.to_code"""
    )
    _clustered(
        db,
        "flags",
        {"source": str, "key": str, "start": float, "end": float},
        pk=("source", "key", "start"),
    )
    _clustered(
        db,
        "pull_requests",
        {
            "source": str,
            "repo": str,
            "number": int,
            "title": str,
            "url": str,
            "state": str,
            "draft": int,
            "created": float,
            "ready": float,
            "first_commit": float,
            "merged": float,
            "closed": float,
            "updated": float,
            "additions": int,
            "deletions": int,
            "labels": str,
            "merge_sha": str,
            "head_ref": str,
            "refs": str,
            "author": str,
            "author_bot": int,
        },
        pk=("source", "repo", "number"),
    )
    db["pull_requests"].create_index(["repo", "merged"])
    db["pull_requests"].create_index(["repo", "created"])
    _clustered(
        db,
        "reviews",
        {
            "source": str,
            "repo": str,
            "number": int,
            "id": str,
            "reviewer": str,
            "reviewer_bot": int,
            "state": str,
            "submitted": float,
        },
        pk=("source", "repo", "number", "id"),
    )
    db["deployments"].create(
        {
            "source": str,
            "id": str,
            "service": str,
            "environment": str,
            "production": int,
            "status": str,
            "started": float,
            "finished": float,
            "sha": str,
            "run": str,
            "url": str,
        },
        pk=("source", "id"),
    )
    db["deployments"].create_index(["service", "finished"])
    # The pull requests a deployment shipped for the first time (GitLab lists them; for GitHub the
    # connector derives them with the compare API).
    _clustered(
        db,
        "deployment_changes",
        {"source": str, "deployment_id": str, "repo": str, "number": int},
        pk=("source", "deployment_id", "repo", "number"),
    )
    db["deployment_changes"].create_index(["repo", "number"])
    db["incidents"].create(
        {
            "source": str,
            "id": str,
            "service": str,
            "title": str,
            "url": str,
            "created": float,
            "resolved": float,
            "severity": str,
            "status": str,
        },
        pk=("source", "id"),
    )
    db["incidents"].create_index(["service", "created"])
    db["incidents"].create_index(["service", "resolved"])
    db["sprints"].create(
        {
            "source": str,
            "id": str,
            "board": str,
            "name": str,
            "state": str,
            "start": float,
            "end": float,
            "complete": float,
        },
        pk=("source", "id"),
    )
    # Sprint membership changes, replayed to find what was committed at start, added and removed.
    _clustered(
        db,
        "sprint_events",
        {"source": str, "sprint_id": str, "key": str, "at": float, "change": str},
        pk=("source", "sprint_id", "key", "at", "change"),
    )
    db["sprint_events"].create_index(["key"])
    db["sync_status"].create(
        {
            "source": str,
            "stream": str,
            "cursor": str,
            "last_success": str,
            "last_error": str,
            "rows_changed": int,
            "updated": str,
        },
        pk=("source", "stream"),
    )
    db["teams"].create(
        {"name": str, "channel": str, "timezone": str, "settings": str, "created": str, "updated": str},
        pk="name",
    )
    db["teams"].create_index(["channel"])
    db["settings_log"].create(
        {"id": int, "team": str, "at": str, "who": str, "what": str, "change": str},
        pk="id",
    )
    db["settings_log"].create_index(["team", "at"])
    db["org"].create({"key": str, "value": str}, pk="key")


@MIGRATIONS()
def m002_deployment_changes_by_deployment(db):
    # Digests look up what each deployment shipped; the primary key starts with the source.
    db["deployment_changes"].create_index(["deployment_id"])


@MIGRATIONS()
def m003_http_etags(db):
    # Conditional-request validators per source and URL, so a sync with no remote change is
    # answered by 304s (free against GitHub's rate limit) across runs.
    db["http_etags"].create({"source": str, "key": str, "etag": str}, pk=("source", "key"))


@MIGRATIONS()
def m004_deliveries(db):
    # The delivery ledger: one row per message the bot means to send, keyed (team, kind, period). A
    # row is written before sending ("sending") and after ("sent" with the message ts), so a restart
    # can tell "never sent" from "sent but not recorded" (found again by its metadata key).
    db["deliveries"].create(
        {
            "key": str,
            "team": str,
            "kind": str,
            "period": str,
            "channel": str,
            "state": str,  # sending | sent | failed | skipped
            "ts": str,
            "attempts": int,
            "error": str,
            "note": str,
            "started": str,
            "finished": str,
        },
        pk="key",
    )
    db["deliveries"].create_index(["team", "kind", "period"])
    # What each nudge named, and when: the same item is not nudged again within the team's interval.
    db["nudge_log"].create(
        {"team": str, "kind": str, "subject": str, "sent": float},
        pk=("team", "kind", "subject"),
    )


@MIGRATIONS()
def m005_flows(db):
    # Replayed flows, a derived cache (see metrics.store.flows): one row per (workflow fingerprint,
    # item). A flow is a function of the team's mapping (the fingerprint), the item's creation and
    # current status, its transitions and the status codes; the triggers below delete an item's rows
    # whenever any of those rows is written, whoever writes it, so a stored flow is never stale.
    _clustered(
        db,
        "flows",
        {
            "workflow": str,
            "source": str,
            "key": str,
            "committed": float,
            "done": float,
            "dates": bytes,
            "timeline": bytes,
            "unmapped": str,
        },
        pk=("workflow", "source", "key"),
    )
    db["flows"].create_index(["source", "key"])
    forget = "delete from flows where source = {r}.source and key = {r}.key;"
    for name, event, rows in (
        ("transitions_insert", "after insert on transitions", ("new",)),
        ("transitions_update", "after update on transitions", ("old", "new")),
        ("transitions_delete", "after delete on transitions", ("old",)),
        ("work_items_insert", "after insert on work_items", ("new",)),
        (
            "work_items_update",
            "after update of source, key, project, created, status, status_id on work_items",
            ("old", "new"),
        ),
        ("work_items_delete", "after delete on work_items", ("old",)),
    ):
        body = " ".join(forget.format(r=r) for r in rows)
        db.execute(f"create trigger flows_forget_{name} {event} begin {body} end")
    # A status code's id or name is read by every replay of its source: any change to the codes
    # (a new one included, which a transition written earlier may already name) forgets the source.
    for name, event, rows in (
        ("statuses_insert", "after insert on statuses", ("new",)),
        ("statuses_update", "after update on statuses", ("old", "new")),
        ("statuses_delete", "after delete on statuses", ("old",)),
    ):
        body = " ".join(f"delete from flows where source = {r}.source;" for r in rows)
        db.execute(f"create trigger flows_forget_{name} {event} begin {body} end")


@MIGRATIONS()
def m006_deployments_by_run(db):
    # A deployment is a pipeline run's records (metrics.dataset): its records that finished before a
    # load's start are found by run, not by scanning the service's whole history.
    db["deployments"].create_index(["run"])


@MIGRATIONS()
def m007_deployment_commits(db):
    # The commits of each compare that decides what a deployment shipped (GitHub ``compare``, GitLab
    # ``pipeline_compare``), by deployment: a PR stored after the compare is linked by its merge commit
    # (metrics.normalise.deploys.link_pull), so a pulls stream that failed while the deployments
    # stream went on no longer loses those links for good. Filled from the stored compares, and the
    # links a failed sync had missed are made now.
    _clustered(
        db,
        "deployment_commits",
        {"source": str, "deployment_id": str, "repo": str, "sha": str},
        pk=("source", "deployment_id", "sha"),
    )
    db["deployment_commits"].create_index(["source", "repo", "sha"])
    db.execute(
        "insert or ignore into deployment_commits (source, deployment_id, repo, sha) "
        "select r.source, r.external_id, d.service, json_extract(c.value, '$.sha') "
        "from raw r join deployments d on d.source = r.source and d.id = r.external_id, "
        "json_each(r.payload, '$.commits') c "
        "where r.kind = 'compare' and json_extract(c.value, '$.sha') is not null"
    )
    db.execute(
        "insert or ignore into deployment_commits (source, deployment_id, repo, sha) "
        "select d.source, d.id, d.service, json_extract(c.value, '$.id') "
        "from deployments d join raw r on r.source = d.source and r.kind = 'pipeline_compare' "
        "and r.external_id = d.service || '/pipelines/' || substr(d.id, 10), "
        "json_each(r.payload, '$.commits') c "
        "where d.id like 'pipeline-%' and json_extract(c.value, '$.id') is not null"
    )
    db.execute(
        "insert or ignore into deployment_changes (source, deployment_id, repo, number) "
        "select k.source, k.deployment_id, k.repo, p.number from deployment_commits k "
        "join pull_requests p on p.source = k.source and p.repo = k.repo and p.merge_sha = k.sha"
    )


@MIGRATIONS()
def m008_experiments(db):
    # Improvement experiments (metrics.experiments): a team's stated change, the determinant metric it
    # should move and for how long, then the verdict by docs/metrics.md "Improvement experiments".
    # Who started or stopped one is in settings_log (an audit), never here beside a figure. The
    # CHECKs are the last guard behind metrics.experiments' own checks: a forged or buggy write of a
    # state, verdict or length the rule does not know fails here instead of reaching a digest.
    db.execute(
        """create table experiments (
            id integer primary key,
            team text not null,
            metric text not null,
            change text not null check (length(change) between 1 and 300),
            weeks integer not null check (weeks between 2 and 12),
            timezone text not null,          -- the team's zone at the start: the windows' local days
            started real not null,           -- UTC epoch seconds
            ends real not null check (ends > started),
            state text not null default 'running'
                check (state in ('running', 'concluded', 'stopped')),
            verdict text check (verdict is null or verdict in
                ('improved', 'worse', 'no real change', 'not enough data for a verdict')),
            detail text,                     -- the test and its numbers, in one line
            measured_until real,             -- the end of the window judged: ends, or when stopped
            result text,                     -- JSON: the metric before and during, the test
            north_star text,                 -- JSON: the North Star on the same two windows (context)
            concluded_at real,
            check ((state = 'running') = (verdict is null))
        )"""
    )
    # At most one running experiment per team and metric (two at once could not be told apart in the
    # metric); a team may run experiments on different metrics side by side.
    db.execute(
        "create unique index experiments_one_running on experiments (team, metric) where state = 'running'"
    )
    db["experiments"].create_index(["team", "started"])
    db["experiments"].create_index(["state", "ends"])  # the scheduler's `due`
    # metrics.normalise.deploys.link_deployment finds a repo's PRs whose merge commit a compare holds
    # (``merge_sha in (...)``): with the primary key (source, repo, number) it read every PR of the
    # repository for each deployment normalised; this index probes each commit instead (EXPLAIN QUERY
    # PLAN: a covering index search on all three columns). m007's join uses the same three columns.
    db["pull_requests"].create_index(["source", "repo", "merge_sha"])


@MIGRATIONS()
def m009_results(db):
    # Computed figures, stored (metrics.results): one row per (window, team or org, metric), with the
    # stamp of everything it was computed from; a row whose stamp differs from today's is never read.
    _clustered(
        db,
        "results",
        {
            "since": float,  # the window, UTC epoch seconds, and its time zone
            "until": float,
            "tz": str,
            "scope": str,  # a team's name, or "" for the organisation's pooled figure
            "metric": str,
            "stamp": str,
            "payload": str,  # JSON
            "computed": float,
        },
        pk=("since", "until", "tz", "scope", "metric"),
    )
    db["results"].create_index(["computed"])
    # The data version: a counter every write to a figure's inputs bumps, by triggers, so in the same
    # transaction as the write and whoever writes (a sync, a normaliser's rebuild, a test's builder).
    # A stored figure's stamp holds the version it was computed at: after any write it no longer
    # matches. The flows table is not an input: it is a cache of a replay the triggers of m005 keep
    # equal to the rows it was replayed from.
    db.execute("create table data_version (id integer primary key check (id = 1), n integer not null)")
    db.execute("insert into data_version (id, n) values (1, 0)")
    # The tables a figure is computed from: any row written to one of them may change a figure
    # ("sync_status": the "not synced yet" reasons read it).
    inputs = (
        "work_items",
        "transitions",
        "flags",
        "statuses",
        "sprints",
        "sprint_events",
        "pull_requests",
        "reviews",
        "deployments",
        "deployment_commits",
        "deployment_changes",
        "incidents",
        "sync_status",
    )
    bump = "update data_version set n = n + 1 where id = 1;"
    for table in inputs:
        for event in ("insert", "update", "delete"):
            db.execute(
                f"create trigger data_version_{table}_{event} after {event} on {table} begin {bump} end"
            )


@MIGRATIONS()
def m010_sync_status_bumps_only_what_figures_read(db):
    # m009 bumped the data version on every write to sync_status, so a sync's own bookkeeping
    # (cursors, ``updated``, ``rows_changed``, ``last_error``, ``last_success`` moving on) threw every
    # stored figure away even when no data changed. Figures read sync_status in one place only:
    # ``metrics.catalogue.base.not_synced`` asks whether any source has every stream synced at least
    # once (``freshness``: the oldest ``coalesce(last_success, '')`` of its streams is not empty). So
    # the version is bumped when a row is added or removed, or an update moves a row to another
    # (source, stream) or its ``last_success`` between empty and set; an upsert that does nothing
    # fires no insert trigger.
    for event in ("insert", "update", "delete"):
        db.execute(f"drop trigger if exists data_version_sync_status_{event}")
    bump = "update data_version set n = n + 1 where id = 1;"
    for event in ("insert", "delete"):
        db.execute(
            f"create trigger data_version_sync_status_{event} after {event} on sync_status begin {bump} end"
        )
    db.execute(
        "create trigger data_version_sync_status_update after update on sync_status "
        "when old.source is not new.source or old.stream is not new.stream "
        "or (coalesce(old.last_success, '') = '') <> (coalesce(new.last_success, '') = '') "
        f"begin {bump} end"
    )


@MIGRATIONS()
def m011_slack_installations(db):
    # Installing vsm-bot in many workspaces (issue 14, bot/installs.py): slack_sdk's InstallationStore
    # and OAuthStateStore on these two tables. One row per app (client id) and workspace (enterprise
    # id, team id; "" for none): a renewed token replaces the old one in place, and an uninstall
    # deletes the row. No user tokens: vsm-bot asks for bot scopes only.
    db["installations"].create(
        {
            "client_id": str,
            "enterprise_id": str,
            "team_id": str,
            "app_id": str,
            "enterprise_name": str,
            "enterprise_url": str,
            "team_name": str,
            "bot_token": str,
            "bot_id": str,
            "bot_user_id": str,
            "bot_scopes": str,
            "bot_refresh_token": str,
            "bot_token_expires_at": int,  # epoch seconds; null for a token that does not rotate
            "user_id": str,  # the installer
            "is_enterprise_install": int,
            "token_type": str,
            "installed_at": float,
        },
        pk=("client_id", "enterprise_id", "team_id"),
        not_null={"client_id", "enterprise_id", "team_id", "bot_token"},
    )
    # One-time OAuth states: issued with the install page, deleted by the redirect that uses them.
    db["oauth_states"].create({"state": str, "expires": float}, pk="state", not_null={"expires"})


@MIGRATIONS()
def m012_sync_status_kind(db):
    # Each source's kind (jira, github, gitlab, pagerduty) beside its streams: what the org digest's
    # stale rule and the experiments' freshness read to tie a source to a team's scope. It was told
    # from stream names, which GitHub and GitLab share ("deployments") and GitHub and PagerDuty too
    # ("incidents"). Rows written before this have none until their source syncs again. An update of
    # ``kind`` alone bumps no data version (m010's trigger watches other columns).
    db["sync_status"].add_column("kind", str)


@MIGRATIONS()
def m013_workspaces(db):
    # Every row a workspace owns names it (issue 14, metrics.workspace): "" is single-workspace mode
    # (SLACK_BOT_TOKEN), where every row written before this stays. Source data is not a workspace's.
    owned = {"workspace": str}
    # A team is named within its workspace, and its channel is one of that workspace's.
    db["teams"].add_column("workspace", str, not_null_default="")
    db["teams"].transform(pk=("workspace", "name"))
    db["teams"].create_index(["workspace", "channel"])
    db.execute("drop index if exists idx_teams_channel")
    db["org"].add_column("workspace", str, not_null_default="")
    db["org"].transform(pk=("workspace", "key"))
    db["settings_log"].add_column("workspace", str, not_null_default="")
    db["settings_log"].create_index(["workspace", "team", "at"])
    db.execute("drop index if exists idx_settings_log_team_at")
    # A delivery's key names its workspace (bot.schedule.delivery.Key), so the primary key holds.
    db["deliveries"].add_column("workspace", str, not_null_default="")
    db["nudge_log"].add_column("workspace", str, not_null_default="")
    db["nudge_log"].transform(pk=("workspace", "team", "kind", "subject"))
    # experiments keeps its CHECKs and partial index: a column added, the indexes per workspace.
    db["experiments"].add_column("workspace", str, not_null_default="")
    db.execute("drop index experiments_one_running")
    db.execute(
        "create unique index experiments_one_running on experiments (workspace, team, metric) "
        "where state = 'running'"
    )
    db["experiments"].create_index(["workspace", "team", "started"])
    db.execute("drop index if exists idx_experiments_team_started")
    # Stored figures are a cache (metrics.results): rebuilt empty with the workspace in the key, and
    # computed again by their next reader.
    db["results"].drop()
    _clustered(
        db,
        "results",
        {
            **owned,
            "since": float,
            "until": float,
            "tz": str,
            "scope": str,
            "metric": str,
            "stamp": str,
            "payload": str,
            "computed": float,
        },
        pk=("workspace", "since", "until", "tz", "scope", "metric"),
    )
    db["results"].create_index(["computed"])
