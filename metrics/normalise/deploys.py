"""``deployment_changes`` from compares: the join of two streams, shared by GitHub and GitLab.

A deployment's changes join its compare (the deployments stream: GitHub's ``compare``, GitLab's
``pipeline_compare``) with the PRs' merge commits (the pulls stream), and the two streams are synced,
and may fail, apart: a compare stored while some of its PRs are not yet (a pulls stream that failed
part-way, a PR listed after the deployment) must not be linked once and never again. So the join is
redone from whichever side changes: a compare keeps its commits in ``deployment_commits`` and links the
PRs stored now (``link_deployment``); a PR, when its row is written, links itself to every stored
compare holding its merge commit (``link_pull``). Whatever the order of arrival, the links are those of
a clean database. Every function here writes: call it inside a transaction.
"""

from __future__ import annotations

from metrics.store.raw import replace_children


def link_deployment(db, source: str, deployment_id: str, repo: str | None, shas: list[str]) -> None:
    """Keep a compare's commits and replace its deployment's changes with the stored PRs of ``repo``
    merged by one of them."""
    where = {"source": source, "deployment_id": deployment_id}
    replace_children(
        db,
        "deployment_commits",
        where,
        [{**where, "repo": repo, "sha": sha} for sha in dict.fromkeys(shas)],
    )
    db.execute(
        "delete from deployment_changes where source = ? and deployment_id = ?", [source, deployment_id]
    )
    # The repo's PRs by primary key, each probed against the commits just kept.
    db.execute(
        "insert or ignore into deployment_changes (source, deployment_id, repo, number) "
        "select source, ?, repo, number from pull_requests where source = ? and repo = ? "
        "and merge_sha in (select sha from deployment_commits where source = ? and deployment_id = ?)",
        [deployment_id, source, repo, source, deployment_id],
    )


def link_pull(db, source: str, repo: str, number: int, merge_sha: str | None) -> None:
    """A PR's row was just written: link it to the stored compares that hold its merge commit, and
    unlink it from those that do not (a merge commit that changed, a PR no longer merged). Links that
    no compare made (GitLab's own deployment MR lists) are left alone."""
    db.execute(
        "delete from deployment_changes where source = ? and repo = ? and number = ? "
        "and exists (select 1 from deployment_commits k where k.source = deployment_changes.source "
        "and k.deployment_id = deployment_changes.deployment_id) "
        "and not exists (select 1 from deployment_commits k where k.source = deployment_changes.source "
        "and k.deployment_id = deployment_changes.deployment_id and k.sha = ?)",
        [source, repo, number, merge_sha],
    )
    if merge_sha:
        db.execute(
            "insert or ignore into deployment_changes (source, deployment_id, repo, number) "
            "select source, deployment_id, repo, ? from deployment_commits "
            "where source = ? and repo = ? and sha = ?",
            [number, source, repo, merge_sha],
        )


def forget_changes(db, source: str, deployment_id: str) -> None:
    """A deployment gone: what it shipped, and the commits a later PR would be linked by."""
    for table in ("deployment_changes", "deployment_commits"):
        db.execute(f"delete from {table} where source = ? and deployment_id = ?", [source, deployment_id])
