"""GitLab REST payloads -> ``pull_requests``, ``reviews``, ``deployments``, ``deployment_changes``.

The same tables as GitHub: a merge request is a pull request (``repo`` = project path, ``number`` =
iid), so every PR and DORA metric works on GitLab data unchanged.

Raw kinds, with their external ids:

- ``merge_request`` (``"group/project!iid"``, GitLab's own reference form): the list object;
- ``merge_request_commits``, ``merge_request_notes`` (lists), ``merge_request_approvals`` (object) and
  ``merge_request_diffs`` (per-file line counts, see ``summarise_diffs``), same id as their MR;
- ``deployment`` (``"group/project/deployments/<id>"``): the list object; it does not name its project;
- ``deployment_merge_requests`` (same id): the MRs GitLab links to that deployment;
- for projects that deploy from CI without GitLab environments (``deployment_signal = "pipelines"``):
  ``pipeline`` (``"group/project/pipelines/<id>"``, the single GET of a successful pipeline on the
  deploy branch: one production deployment, id ``pipeline-<id>``) and ``pipeline_compare`` (same id:
  ``repository/compare`` from the previous such pipeline's sha; the MRs whose merge commit it holds
  are what the pipeline shipped).

GitLab has no timed review objects, so reviews are derived: a reviewer's first comment (a non-system
note by anyone but the author) is a ``COMMENTED`` review, their first "approved this merge request"
system note an ``APPROVED`` one; "marked this merge request as ready" gives the ready time.

An MR's rows depend on its payload *and* its children's, which a connector may store in any order. So
every MR kind re-derives the MR from what ``raw`` holds (``derive_merge_request``); a child that
arrives before its MR derives nothing, and the MR derives everything when it lands. A rebuild then
only needs the parent kinds in ``ORDER``.
"""

from __future__ import annotations

import json
import re

from metrics.config import production_environments
from metrics.normalise.deploys import forget_changes, link_deployment, link_pull
from metrics.normalise.github import find_refs
from metrics.store.raw import get_raw, replace_children, upsert
from metrics.timeutil import parse_instant

MR_KINDS = (
    "merge_request",
    "merge_request_commits",
    "merge_request_notes",
    "merge_request_approvals",
    "merge_request_diffs",
)
DEPLOYMENT_KINDS = ("deployment", "deployment_merge_requests")

# Project and group access-token users (``project_42_bot_3f9c...``), and the common ``-bot`` names.
# GitLab's list objects carry no bot flag: dependency bots self-hosted under their plain names too.
BOT_NAME = re.compile(
    r"^(?:project|group)_\d+_bot(?:_[0-9a-f]+)?$|[-_]bot$|\[bot\]$|^(?:dependabot|renovate|snyk-bot|gitlab-bot)$",
    re.IGNORECASE,
)
BOT_TYPES = {
    "project_bot",
    "service_account",
    "support_bot",
    "alert_bot",
    "visual_review_bot",
    "automation_bot",
}
APPROVED = "approved this merge request"
READY = ("marked this merge request as ready", "unmarked as a work in progress")


# -- ids --------------------------------------------------------------------------------------------
def mr_id(project: str, iid: int | str) -> str:
    """``("acme/mobile", 12)`` -> ``"acme/mobile!12"``."""
    return f"{project}!{int(iid)}"


def split_mr_id(external_id: str) -> tuple[str, int]:
    project, _, iid = str(external_id).rpartition("!")
    if not project or not iid.isdigit():
        raise ValueError(
            f"a merge request payload needs the external id 'group/project!iid', not {external_id!r}"
        )
    return project, int(iid)


def deployment_id(project: str, deployment: int | str) -> str:
    """``("acme/mobile", 41)`` -> ``"acme/mobile/deployments/41"``: a deployment does not name its project."""
    return f"{project}/deployments/{int(deployment)}"


def _split_id(external_id: str, collection: str, what: str) -> tuple[str, str]:
    """``"group/project/<collection>/<id>"`` -> ``("group/project", "<id>")``."""
    project, _, number = str(external_id).rpartition(f"/{collection}/")
    if not project or not number.isdigit():
        raise ValueError(
            f"a {what} payload needs the external id 'group/project/{collection}/<id>', not {external_id!r}"
        )
    return project, number


def split_deployment_id(external_id: str) -> tuple[str, str]:
    return _split_id(external_id, "deployments", "deployment")


# -- pieces -----------------------------------------------------------------------------------------
def is_bot(user: dict | None) -> bool:
    """A bot or service user: flagged by the API where it says so, else known by its username."""
    if not user:
        return False
    if user.get("bot") is True or user.get("user_type") in BOT_TYPES:
        return True
    return bool(BOT_NAME.search(str(user.get("username") or "")))


def count_lines(diff: str | None) -> tuple[int, int]:
    """Added and removed lines of one file's unified diff, counted inside hunks only: GitLab's diff
    text starts at the first ``@@`` (no ``---``/``+++`` header), and a removed line that reads
    ``-- x`` must still count."""
    additions = deletions = 0
    in_hunk = False
    for line in (diff or "").splitlines():
        if line.startswith("@@"):
            in_hunk = True
        elif not in_hunk:
            continue
        elif line.startswith("+"):
            additions += 1
        elif line.startswith("-"):
            deletions += 1
    return additions, deletions


def summarise_diffs(files: list[dict]) -> list[dict]:
    """Per-file line counts of ``/diffs`` (or ``/changes``) entries: the stored form of an MR's size.

    The diff text itself is not kept: it is the project's code, it can be megabytes per MR, and only
    its ``+``/``-`` line counts feed a metric. ``too_large``/``collapsed`` files come without text;
    they are kept (and count 0 lines) so the gap stays visible.
    """
    out = []
    for f in files:
        additions, deletions = count_lines(f.get("diff"))
        out.append(
            {
                "old_path": f.get("old_path"),
                "new_path": f.get("new_path"),
                "new_file": bool(f.get("new_file")),
                "renamed_file": bool(f.get("renamed_file")),
                "deleted_file": bool(f.get("deleted_file")),
                "too_large": bool(f.get("too_large") or f.get("collapsed")),
                "additions": additions,
                "deletions": deletions,
            }
        )
    return out


def first_commit(commits: list[dict]) -> float | None:
    """Earliest ``authored_date`` (kept by rebases, unlike ``committed_date``)."""
    dates = [parse_instant(c.get("authored_date")) for c in commits]
    return min((d for d in dates if d is not None), default=None)


def _note_text(body: str | None) -> str:
    """A system note's text without its markdown emphasis, lower case."""
    return re.sub(r"[*_`]", "", body or "").strip().lower()


def _notes_in_order(notes: list[dict]) -> list[dict]:
    return sorted(notes, key=lambda n: (parse_instant(n.get("created_at")) or 0.0, int(n.get("id") or 0)))


def ready_at(notes: list[dict]) -> float | None:
    """The first "marked this merge request as ready" (older GitLab: "unmarked as a Work In
    Progress") system note: an MR opened as draft can be reviewed from then on."""
    for n in _notes_in_order(notes):
        if n.get("system") and _note_text(n.get("body")) in READY:
            return parse_instant(n.get("created_at"))
    return None


def _same_user(a: dict, b: dict) -> bool:
    if a.get("id") is not None and b.get("id") is not None:
        return a["id"] == b["id"]
    return bool(a.get("username")) and a.get("username") == b.get("username")


def review_rows(
    notes: list[dict], approvals: dict | None, author: dict, source: str, repo: str, number: int
) -> list[dict]:
    """Per reviewer other than the author: their first comment (``COMMENTED``) and their first
    approval (``APPROVED``), from the notes; an approval listed by ``/approvals`` with an
    ``approved_at`` (recent GitLab) but no approval note counts too. Bots are kept and flagged:
    filtering is the catalogue's job. Only the first of each matters to a metric, so later comments
    are not stored."""
    comments: dict[str, dict] = {}
    approved: dict[str, dict] = {}
    for n in _notes_in_order(notes):
        user = n.get("author") or {}
        name = user.get("username")
        if not name or _same_user(user, author):
            continue
        if not n.get("system"):
            comments.setdefault(name, n)
        elif _note_text(n.get("body")) == APPROVED:
            approved.setdefault(name, n)
    rows = [
        _review(source, repo, number, str(n["id"]), n.get("author"), state, n.get("created_at"))
        for state, picked in (("COMMENTED", comments), ("APPROVED", approved))
        for n in picked.values()
    ]
    for a in (approvals or {}).get("approved_by") or []:
        user = a.get("user") or {}
        name = user.get("username")
        if name and name not in approved and a.get("approved_at") and not _same_user(user, author):
            rows.append(
                _review(
                    source,
                    repo,
                    number,
                    f"approval-{user.get('id') or name}",
                    user,
                    "APPROVED",
                    a["approved_at"],
                )
            )
    return rows


def _review(
    source: str, repo: str, number: int, rid: str, user: dict | None, state: str, at: str | None
) -> dict:
    return {
        "source": source,
        "repo": repo,
        "number": number,
        "id": rid,
        "reviewer": (user or {}).get("username"),
        "reviewer_bot": int(is_bot(user)),
        "state": state,
        "submitted": parse_instant(at),
    }


def _labels(mr: dict) -> list[str]:
    """Plain names, or ``name`` of each label object when listed ``with_labels_details``."""
    return [lb.get("name") if isinstance(lb, dict) else lb for lb in mr.get("labels") or []]


def pull_row(
    mr: dict,
    project: str,
    source: str,
    commits: list[dict] | None = None,
    notes: list[dict] | None = None,
    diffs: list[dict] | None = None,
) -> dict:
    """The ``pull_requests`` row of an MR and whichever children are known.

    ``merge_sha`` (merged MRs only) is the merge commit, else the squash commit, else the head
    ``sha`` (a fast-forward merge lands the head itself). A merged MR counts as closed at its merge,
    as GitHub reports it. Without a diffs payload the line counts stay unknown (None), never 0.
    """
    author = mr.get("author") or {}
    merged = parse_instant(mr.get("merged_at"))
    state = {"opened": "open", "locked": "open"}.get(mr.get("state"), mr.get("state"))
    if merged is not None:
        state = "merged"
    row = {
        "source": source,
        "repo": project,
        "number": int(mr["iid"]),
        "title": mr.get("title"),
        "url": mr.get("web_url"),
        "state": state,
        "draft": int(bool(mr.get("draft") or mr.get("work_in_progress"))),
        "created": parse_instant(mr.get("created_at")),
        "ready": ready_at(notes) if notes is not None else None,
        "first_commit": first_commit(commits) if commits is not None else None,
        "merged": merged,
        "closed": parse_instant(mr.get("closed_at")) or merged,
        "updated": parse_instant(mr.get("updated_at")),
        "additions": sum(f["additions"] for f in diffs) if diffs is not None else None,
        "deletions": sum(f["deletions"] for f in diffs) if diffs is not None else None,
        "labels": json.dumps(_labels(mr)),
        "merge_sha": (mr.get("merge_commit_sha") or mr.get("squash_commit_sha") or mr.get("sha"))
        if merged is not None
        else None,
        "head_ref": mr.get("source_branch"),
        "refs": json.dumps(find_refs(mr.get("title"), mr.get("description"), mr.get("source_branch"))),
        "author": author.get("username"),
        "author_bot": int(is_bot(author)),
    }
    return row


def derive_merge_request(db, source: str, project: str, iid: int, mr: dict | None = None) -> None:
    """(Re)write an MR's row and reviews from its payload (given, else from ``raw``) and its stored
    children; nothing while the MR itself is not stored yet."""
    ext = mr_id(project, iid)
    mr = mr if mr is not None else get_raw(db, source, "merge_request", ext)
    if mr is None:
        return
    notes = get_raw(db, source, "merge_request_notes", ext)
    row = pull_row(
        mr,
        project,
        source,
        commits=get_raw(db, source, "merge_request_commits", ext),
        notes=notes,
        diffs=get_raw(db, source, "merge_request_diffs", ext),
    )
    upsert(db, "pull_requests", row, ("source", "repo", "number"))
    link_pull(db, source, project, iid, row["merge_sha"])
    reviews = review_rows(
        notes or [],
        get_raw(db, source, "merge_request_approvals", ext),
        mr.get("author") or {},
        source,
        project,
        iid,
    )
    replace_children(db, "reviews", {"source": source, "repo": project, "number": iid}, reviews)


def finished_at(payload: dict) -> str | None:
    """When a deployment finished: its own ``finished_at`` (recent GitLab), else its job's, else its
    last update once it is final (older GitLab exposes neither)."""
    job = payload.get("deployable") or {}
    if payload.get("finished_at"):
        return payload["finished_at"]
    if job.get("finished_at"):
        return job["finished_at"]
    if payload.get("status") in ("success", "failed", "canceled"):
        return payload.get("updated_at")
    return None


def deployment_row(payload: dict, source: str, project: str, production_environments: list[str]) -> dict:
    """A deployment; ``service`` is its project path, ``run`` its pipeline (a retried deploy job in
    the same pipeline is the same run), ``production`` whether its environment is one of the
    configured production environments (case-insensitively)."""
    job = payload.get("deployable") or {}
    pipeline = job.get("pipeline") or {}
    environment = (payload.get("environment") or {}).get("name") or ""
    production = {e.lower() for e in production_environments}
    return {
        "source": source,
        "id": str(payload["id"]),
        "service": project,
        "environment": environment,
        "production": int(environment.lower() in production),
        "status": payload.get("status"),
        "started": parse_instant(payload.get("created_at")),
        "finished": parse_instant(finished_at(payload)),
        "sha": payload.get("sha"),
        "run": str(pipeline["id"]) if pipeline.get("id") is not None else None,
        "url": job.get("web_url") or pipeline.get("web_url") or None,
    }


# -- normalisers ------------------------------------------------------------------------------------
def normalise_merge_request(
    db, source: str, payload: dict, options: dict, external_id: str | None = None
) -> None:
    project, iid = split_mr_id(external_id or "")
    derive_merge_request(db, source, project, iid, payload)


def normalise_mr_child(db, source: str, payload, options: dict, external_id: str | None = None) -> None:
    """Commits, notes, approvals or diffs: re-derive their MR (a no-op until the MR is stored)."""
    project, iid = split_mr_id(external_id or "")
    derive_merge_request(db, source, project, iid)


def normalise_deployment(
    db, source: str, payload: dict, options: dict, external_id: str | None = None
) -> None:
    project, _ = split_deployment_id(external_id or "")
    row = deployment_row(payload, source, project, production_environments(options))
    upsert(db, "deployments", row, ("source", "id"))


def normalise_deployment_mrs(
    db, source: str, payload: list, options: dict, external_id: str | None = None
) -> None:
    """The MRs GitLab links to a deployment (those merged since the previous deployment of the
    environment): its ``deployment_changes``, in the deployment's project."""
    project, did = split_deployment_id(external_id or "")
    replace_children(
        db,
        "deployment_changes",
        {"source": source, "deployment_id": did},
        [
            {"source": source, "deployment_id": did, "repo": project, "number": n}
            for n in sorted({int(mr["iid"]) for mr in payload if mr.get("iid") is not None})
        ],
    )


def pipeline_id(project: str, pipeline: int | str) -> str:
    """``("acme/mobile", 7)`` -> ``"acme/mobile/pipelines/7"``."""
    return f"{project}/pipelines/{int(pipeline)}"


def _split_pipeline_id(external_id: str) -> tuple[str, str]:
    return _split_id(external_id, "pipelines", "pipeline")


def normalise_pipeline(db, source: str, payload: dict, options: dict, external_id: str | None = None) -> None:
    """A successful pipeline on the deploy branch as a production deployment of its project."""
    project, pid = _split_pipeline_id(external_id or "")
    environments = production_environments(options)
    row = {
        "source": source,
        "id": f"pipeline-{pid}",
        "service": project,
        "environment": environments[0],
        "production": 1,
        "status": payload.get("status"),
        "started": parse_instant(payload.get("started_at") or payload.get("created_at")),
        "finished": parse_instant(payload.get("finished_at") or payload.get("updated_at")),
        "sha": payload.get("sha"),
        "run": str(pid),
        "url": payload.get("web_url"),
    }
    upsert(db, "deployments", row, ("source", "id"))


def normalise_pipeline_compare(
    db, source: str, payload: dict, options: dict, external_id: str | None = None
) -> None:
    """The MRs a pipeline shipped: merged MRs of the project whose merge (or squash, or fast-forward
    head) commit is among the compare's commits. Joined both ways (``deploys.link_deployment`` here,
    ``link_pull`` when an MR is written), so an MR stored after the compare is linked too."""
    project, pid = _split_pipeline_id(external_id or "")
    shas = [c.get("id") for c in payload.get("commits") or [] if c.get("id")]
    link_deployment(db, source, f"pipeline-{pid}", project, shas)


# -- deletions --------------------------------------------------------------------------------------
def forget_merge_request(db, source: str, project: str, iid: int) -> None:
    """An MR deleted in GitLab: its raw payloads, its row and its reviews go (call in a transaction).
    ``deployment_changes`` naming it stay: they come from a deployment's own payload, and the
    catalogue already treats a shipped MR it cannot find as unknown."""
    ext = mr_id(project, iid)
    db.execute(
        f"delete from raw where source = ? and external_id = ? and kind in ({', '.join('?' * len(MR_KINDS))})",
        [source, ext, *MR_KINDS],
    )
    for table in ("pull_requests", "reviews"):
        db.execute(
            f"delete from {table} where source = ? and repo = ? and number = ?", [source, project, iid]
        )


def forget_deployment(db, source: str, project: str, did: str) -> None:
    """A deployment deleted in GitLab: raw payloads, its row and its changes go (call in a transaction)."""
    db.execute(
        "delete from raw where source = ? and external_id = ? and kind in (?, ?)",
        [source, deployment_id(project, did), *DEPLOYMENT_KINDS],
    )
    db.execute("delete from deployments where source = ? and id = ?", [source, str(did)])
    forget_changes(db, source, str(did))


NORMALISERS = {
    "merge_request": normalise_merge_request,
    "merge_request_commits": normalise_mr_child,
    "merge_request_notes": normalise_mr_child,
    "merge_request_approvals": normalise_mr_child,
    "merge_request_diffs": normalise_mr_child,
    "deployment": normalise_deployment,
    "deployment_merge_requests": normalise_deployment_mrs,
    "pipeline": normalise_pipeline,
    "pipeline_compare": normalise_pipeline_compare,
}
# A rebuild normalises these kinds in this order; an MR derives its children's rows itself.
ORDER = ["merge_request", "deployment", "deployment_merge_requests", "pipeline", "pipeline_compare"]
