"""The wire-format writer: the simulated history as each tool's API returns it (Jira search/jql
issues with changelogs and Agile sprints; GitHub pulls, reviews, commits, timelines, deployments and
compares; PagerDuty incidents), and the raw rows a sync would store from it."""

from __future__ import annotations

from datetime import UTC, datetime

from metrics.sample.base import DeploySpec, IncidentSpec, PullSpec, WorkItem
from metrics.sample.delivery import DeliverySimulation
from metrics.sample.profiles import (
    CATEGORIES,
    COMPONENTS,
    DAY,
    FLAG_FIELD,
    GITHUB_API,
    ISSUE_TYPES,
    JIRA_URL,
    JIRA_ZONE,
    RESOLUTIONS,
    SPRINT_FIELD,
    STATUSES,
    WEEKS,
)
from metrics.timeutil import WEEK


def jira_time(ts: float) -> str:
    dt = datetime.fromtimestamp(ts, JIRA_ZONE)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{int(round(ts * 1000)) % 1000:03d}{dt:%z}"


def agile_time(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def gh_time(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Wire:
    """The simulated history as each tool's API would return it."""

    def __init__(self, cutoff: int, items: list[WorkItem], sprints: list[dict], delivery: DeliverySimulation):
        self.cutoff = cutoff
        self.start = cutoff - WEEKS * WEEK
        self.items = items
        self.sprints = sprints
        self.pulls = delivery.pulls
        self.deploys = delivery.deploys
        self.incidents = delivery.incidents

    def issue_payloads(self) -> list[dict]:
        """Every item as a search/jql issue with its full changelog (newest first, as Jira sends it)."""
        sprint_by_id = {s["id"]: s for s in self.sprints}
        histories: list[tuple[int, int, WorkItem, list[dict]]] = []
        finals = {}
        for item in self.items:
            p = item.profile
            state = {
                "status": p.backlog,
                "resolution": None,
                "resolved": None,
                "sprints": list(item.initial_sprints),
            }
            flagged = False
            for at, order, kind, value in sorted(item.events):
                if at >= self.cutoff or at < item.created:
                    continue
                changes = []
                if kind == "status":
                    name, resolution = value
                    if name == state["status"]:
                        continue
                    changes.append(_status_change(state["status"], name))
                    state["status"] = name
                    if resolution != state["resolution"]:
                        changes.append(_resolution_change(state["resolution"], resolution))
                        state["resolution"] = resolution
                        state["resolved"] = at if resolution else None
                elif kind in ("sprint+", "sprint-"):
                    before = list(state["sprints"])
                    after = before + [value] if kind == "sprint+" else [s for s in before if s != value]
                    if after == before or (kind == "sprint+" and value in before):
                        continue
                    changes.append(_sprint_change(before, after, sprint_by_id))
                    state["sprints"] = after
                elif kind == "flag":
                    if value == flagged:
                        continue
                    changes.append(_flag_change(value))
                    flagged = value
                histories.append((at, order, item, changes))
            finals[item.key] = state
        histories.sort(key=lambda h: (h[0], h[1]))
        per_item: dict[str, list[dict]] = {}
        for n, (at, _order, item, changes) in enumerate(histories):
            per_item.setdefault(item.key, []).append(
                {
                    "id": str(200000 + n),
                    "author": {
                        "accountId": f"5b10ac8d82e05b22cc7d{item.profile.project_id}",
                        "displayName": "Jira user",
                        "active": True,
                    },
                    "created": jira_time(at),
                    "items": changes,
                }
            )
        out = []
        for item in self.items:
            state = finals[item.key]
            hist = per_item.get(item.key, [])
            updated = max([item.created] + [_parse(h["created"]) for h in hist])
            out.append(self.issue_payload(item, state, list(reversed(hist)), updated, sprint_by_id))
        return out

    def issue_payload(
        self, item: WorkItem, state: dict, histories: list[dict], updated: int, sprints: dict
    ) -> dict:
        p = item.profile
        type_id = next(t[1] for t in ISSUE_TYPES if t[0] == item.type)
        status_id, category = STATUSES[state["status"]]
        resolution = state["resolution"]
        return {
            "expand": "operations,versionedRepresentations,editmeta,changelog,renderedFields",
            "id": item.id,
            "self": f"{JIRA_URL}/rest/api/3/issue/{item.id}",
            "key": item.key,
            "fields": {
                "summary": item.summary,
                "status": {
                    "self": f"{JIRA_URL}/rest/api/3/status/{status_id}",
                    "description": "",
                    "name": state["status"],
                    "id": status_id,
                    "statusCategory": CATEGORIES[category],
                },
                "issuetype": {"id": type_id, "name": item.type, "subtask": False, "hierarchyLevel": 0},
                "created": jira_time(item.created),
                "updated": jira_time(updated),
                "resolution": None
                if resolution is None
                else {
                    "self": f"{JIRA_URL}/rest/api/3/resolution/{RESOLUTIONS[resolution]}",
                    "id": RESOLUTIONS[resolution],
                    "name": resolution,
                    "description": "",
                },
                "resolutiondate": jira_time(state["resolved"]) if state["resolved"] else None,
                "labels": item.labels,
                "components": [
                    {
                        "self": f"{JIRA_URL}/rest/api/3/component/{10200 + COMPONENTS.index(c)}",
                        "id": str(10200 + COMPONENTS.index(c)),
                        "name": c,
                    }
                    for c in item.components
                ],
                "project": {
                    "self": f"{JIRA_URL}/rest/api/3/project/{p.project_id}",
                    "id": p.project_id,
                    "key": p.project,
                    "name": p.team.title(),
                    "projectTypeKey": "software",
                    "simplified": False,
                },
                SPRINT_FIELD: [self.sprint_field_value(sprints[s]) for s in state["sprints"]] or None,
            },
            "changelog": {
                "startAt": 0,
                "maxResults": len(histories),
                "total": len(histories),
                "histories": histories,
            },
        }

    def sprint_state(self, s: dict) -> str:
        if s["complete"] is not None:
            return "closed"
        return "active" if s["start"] is not None and s["start"] < self.cutoff else "future"

    def sprint_field_value(self, s: dict) -> dict:
        value = {
            "id": s["id"],
            "name": s["name"],
            "state": self.sprint_state(s),
            "boardId": s["board"],
            "goal": s["goal"],
        }
        if s["start"] is not None:
            value |= {"startDate": agile_time(s["start"]), "endDate": agile_time(s["end"])}
        if s["complete"] is not None:
            value["completeDate"] = agile_time(s["complete"])
        return value

    def sprint_payload(self, s: dict) -> dict:
        payload = {
            "id": s["id"],
            "self": f"{JIRA_URL}/rest/agile/1.0/sprint/{s['id']}",
            "state": self.sprint_state(s),
            "name": s["name"],
            "originBoardId": s["board"],
            "goal": s["goal"],
        }
        if s["start"] is not None:
            payload |= {
                "startDate": agile_time(s["start"]),
                "endDate": agile_time(s["end"]),
                "createdDate": agile_time(s["start"] - 3 * DAY),
            }
        if s["complete"] is not None:
            payload["completeDate"] = agile_time(s["complete"])
        return payload

    def pull_payloads(self, pr: PullSpec) -> dict[str, dict | list]:
        """The four raw payloads of one PR: pull (list object + single GET), reviews, commits, timeline."""
        repo, n = pr.repo, pr.number
        api = f"{GITHUB_API}/repos/{repo}"
        html = f"https://github.com/{repo}"
        times = [pr.created, pr.merged or 0, pr.closed or 0, pr.draft_until or 0] + [
            r[0] or 0 for r in pr.reviews
        ]
        updated = max(t for t in times if t < self.cutoff)
        draft = pr.opened_as_draft and (pr.draft_until is None or pr.draft_until >= self.cutoff)
        user = {"login": pr.author, "id": _user_id(pr.author), "type": pr.author_type, "site_admin": False}
        pull = {
            "url": f"{api}/pulls/{n}",
            "id": pr.id,
            "node_id": f"PR_kwDO{pr.id}",
            "html_url": f"{html}/pull/{n}",
            "number": n,
            "state": "closed" if pr.closed else "open",
            "locked": False,
            "title": pr.title,
            "user": user,
            "body": pr.body or None,
            "labels": [
                {"id": _user_id(name), "name": name, "color": "ededed", "default": False}
                for name in pr.labels
            ],
            "created_at": gh_time(pr.created),
            "updated_at": gh_time(updated),
            "closed_at": gh_time(pr.closed),
            "merged_at": gh_time(pr.merged),
            "merge_commit_sha": pr.merge_sha,  # GitHub fills it with a test merge while open
            "draft": draft,
            "head": {"label": f"acme:{pr.head_ref}", "ref": pr.head_ref, "sha": pr.head_sha},
            "base": {
                "label": "acme:main",
                "ref": "main",
                "sha": pr.commit_shas[0] if pr.commit_shas else pr.head_sha,
                "repo": {
                    "id": _user_id(repo),
                    "name": repo.split("/")[1],
                    "full_name": repo,
                    "html_url": html,
                    "private": True,
                },
            },
            "author_association": "CONTRIBUTOR" if pr.author_type == "Bot" else "MEMBER",
            "merged": pr.merged is not None,
            "additions": pr.additions,
            "deletions": pr.deletions,
            "changed_files": max(1, (pr.additions + pr.deletions) // 40),
            "commits": pr.commit_count,
        }
        reviews = []
        for i, (at, login, kind, state) in enumerate(pr.reviews):
            review = {
                "id": pr.id * 10 + i,
                "node_id": f"PRR_kwDO{pr.id * 10 + i}",
                "user": {"login": login, "id": _user_id(login), "type": kind, "site_admin": False},
                "body": "",
                "state": state,
                "html_url": f"{html}/pull/{n}#pullrequestreview-{pr.id * 10 + i}",
                "pull_request_url": f"{api}/pulls/{n}",
                "author_association": "MEMBER" if kind == "User" else "NONE",
                "commit_id": pr.head_sha,
            }
            if at is not None:
                review["submitted_at"] = gh_time(at)
            reviews.append(review)
        span = max(60, (pr.draft_until or pr.created) - (pr.first_commit or pr.created))
        commits = []
        for i, sha in enumerate(pr.commit_shas):
            authored = (pr.first_commit or pr.created) + (span * i) // max(1, len(pr.commit_shas))
            commits.append(
                {
                    "sha": sha,
                    "node_id": f"C_{sha[:12]}",
                    "commit": {
                        "author": {
                            "name": pr.author,
                            "email": f"{pr.author}@users.noreply.github.com",
                            "date": gh_time(authored),
                        },
                        "committer": {
                            "name": "GitHub",
                            "email": "noreply@github.com",
                            "date": gh_time(max(authored, pr.created - 60)),
                        },
                        "message": pr.title if i == 0 else "address review comments",
                    },
                    "url": f"{api}/commits/{sha}",
                    "html_url": f"{html}/commit/{sha}",
                    "parents": [{"sha": pr.commit_shas[i - 1] if i else pr.head_sha}],
                }
            )
        timeline = []
        if pr.opened_as_draft and pr.draft_until is not None and pr.draft_until < self.cutoff:
            timeline.append(_event(pr, 0, "ready_for_review", pr.draft_until))
        if pr.merged:
            timeline += [_event(pr, 1, "merged", pr.merged), _event(pr, 2, "closed", pr.merged)]
        elif pr.closed:
            timeline.append(_event(pr, 2, "closed", pr.closed))
        return {"pull": pull, "pull_reviews": reviews, "pull_commits": commits, "pull_timeline": timeline}

    def deployment_payload(self, dep: DeploySpec, run_url: str) -> dict:
        api = f"{GITHUB_API}/repos/{dep.repo}"
        statuses = []
        for i, (at, state) in enumerate(sorted(dep.statuses)):
            if at >= self.cutoff:
                continue
            statuses.append(
                {
                    "url": f"{api}/deployments/{dep.id}/statuses/{dep.id * 10 + i}",
                    "id": dep.id * 10 + i,
                    "state": state,
                    "description": "",
                    "environment": dep.environment,
                    "target_url": run_url,
                    "log_url": run_url,
                    "created_at": gh_time(at),
                    "updated_at": gh_time(at),
                    "deployment_url": f"{api}/deployments/{dep.id}",
                    "repository_url": api,
                }
            )
        statuses.reverse()  # the API lists the newest first
        return {
            "url": f"{api}/deployments/{dep.id}",
            "id": dep.id,
            "node_id": f"DE_kwDO{dep.id}",
            "sha": dep.sha,
            "ref": "main",
            "task": "deploy",
            "payload": {"run_id": dep.run},
            "original_environment": dep.environment,
            "environment": dep.environment,
            "description": None,
            "creator": {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"},
            "created_at": gh_time(dep.created),
            "updated_at": statuses[0]["created_at"] if statuses else gh_time(dep.created),
            "statuses_url": f"{api}/deployments/{dep.id}/statuses",
            "repository_url": api,
            "transient_environment": False,
            "production_environment": dep.environment == "production",
            "statuses": statuses,
        }

    def compare_payload(self, dep: DeploySpec) -> dict:
        api = f"{GITHUB_API}/repos/{dep.repo}"
        commits = []
        for pr in dep.compare_prs:
            for sha in pr.commit_shas:
                commits.append({"sha": sha, "commit": {"message": pr.title}, "url": f"{api}/commits/{sha}"})
            commits.append(
                {
                    "sha": pr.merge_sha,
                    "commit": {"message": f"Merge pull request #{pr.number}"},
                    "url": f"{api}/commits/{pr.merge_sha}",
                }
            )
        return {
            "url": f"{api}/compare/{dep.compare_base}...{dep.sha}",
            "html_url": f"https://github.com/{dep.repo}/compare/{dep.compare_base}...{dep.sha}",
            "base_commit": {"sha": dep.compare_base},
            "merge_base_commit": {"sha": dep.compare_base},
            "status": "ahead" if commits else "identical",
            "ahead_by": len(commits),
            "behind_by": 0,
            "total_commits": len(commits),
            "commits": commits,
            "files": [],
        }

    def incident_payload(self, inc: IncidentSpec) -> dict:
        status = (
            "resolved" if inc.resolved is not None else ("acknowledged" if inc.number % 2 else "triggered")
        )
        last_change = inc.resolved if inc.resolved is not None else inc.created
        return {
            "id": inc.id,
            "type": "incident",
            "summary": f"[#{inc.number}] {inc.title}",
            "self": f"https://api.pagerduty.com/incidents/{inc.id}",
            "html_url": f"https://acme.pagerduty.com/incidents/{inc.id}",
            "incident_number": inc.number,
            "title": inc.title,
            "created_at": gh_time(inc.created),
            "updated_at": gh_time(last_change),
            "status": status,
            "incident_key": f"{_user_id(inc.id):032x}",
            "service": {
                "id": inc.service,
                "type": "service_reference",
                "summary": f"service {inc.service}",
                "self": f"https://api.pagerduty.com/services/{inc.service}",
                "html_url": f"https://acme.pagerduty.com/service-directory/{inc.service}",
            },
            "assignments": [],
            "last_status_change_at": gh_time(last_change),
            "resolved_at": gh_time(inc.resolved),
            "urgency": inc.urgency,
            "priority": None,
        }

    def raw_rows(self) -> list[tuple[str, str, str, str | None, dict | list]]:
        """(source, kind, external id, updated_at, payload) of what a sync reading the last 26 weeks
        would store: issues and PRs updated, deployments and incidents created since the start (the
        Agile API lists a board's sprints whatever their age)."""
        rows: list[tuple[str, str, str, str | None, dict | list]] = []
        for s in self.sprints:
            rows.append(("jira", "sprint", str(s["id"]), None, self.sprint_payload(s)))
        for issue in self.issue_payloads():
            if _parse(issue["fields"]["updated"]) >= self.start:
                rows.append(("jira", "issue", issue["id"], issue["fields"]["updated"], issue))
        for pr in sorted(self.pulls, key=lambda pr: (pr.repo, pr.number)):
            if pr.created >= self.cutoff:
                continue
            payloads = self.pull_payloads(pr)
            if _parse(payloads["pull"]["updated_at"]) < self.start:
                continue
            key = f"{pr.repo}#{pr.number}"
            updated = payloads["pull"]["updated_at"]
            for kind, payload in payloads.items():
                rows.append(("github", kind, key, updated, payload))
        for dep in sorted(self.deploys, key=lambda d: d.id):
            if dep.created < self.start:
                continue
            run_url = f"https://github.com/{dep.repo}/actions/runs/{dep.run}"
            payload = self.deployment_payload(dep, run_url)
            rows.append(("github", "deployment", str(dep.id), payload["updated_at"], payload))
            if dep.compare_base is not None:
                rows.append(
                    ("github", "compare", str(dep.id), payload["updated_at"], self.compare_payload(dep))
                )
        for inc in sorted(self.incidents, key=lambda i: i.number):
            if inc.created < self.start:
                continue
            payload = self.incident_payload(inc)
            rows.append(("pagerduty", "incident", inc.id, payload["updated_at"], payload))
        return rows


def _parse(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def _user_id(login: str) -> int:
    """A stable numeric id from a name (``hash`` is salted per process; this is not)."""
    return sum((i + 1) * ord(c) for i, c in enumerate(login)) * 7919 % 10**8


def _event(pr: PullSpec, index: int, event: str, at: int) -> dict:
    return {
        "id": pr.id * 10 + index,
        "node_id": f"E_{pr.id}_{event}",
        "url": f"{GITHUB_API}/repos/{pr.repo}/issues/events/{pr.id * 10 + index}",
        "actor": {"login": pr.author, "id": _user_id(pr.author), "type": pr.author_type},
        "event": event,
        "commit_id": pr.merge_sha if event == "merged" else None,
        "created_at": gh_time(at),
    }


def _status_change(old: str, new: str) -> dict:
    return {
        "field": "status",
        "fieldtype": "jira",
        "fieldId": "status",
        "from": STATUSES[old][0],
        "fromString": old,
        "to": STATUSES[new][0],
        "toString": new,
    }


def _resolution_change(old: str | None, new: str | None) -> dict:
    return {
        "field": "resolution",
        "fieldtype": "jira",
        "fieldId": "resolution",
        "from": RESOLUTIONS.get(old) if old else None,
        "fromString": old,
        "to": RESOLUTIONS.get(new) if new else None,
        "toString": new,
    }


def _sprint_change(before: list[int], after: list[int], sprints: dict) -> dict:
    return {
        "field": "Sprint",
        "fieldtype": "custom",
        "fieldId": SPRINT_FIELD,
        "from": ", ".join(str(s) for s in before),
        "fromString": ", ".join(sprints[s]["name"] for s in before),
        "to": ", ".join(str(s) for s in after),
        "toString": ", ".join(sprints[s]["name"] for s in after),
    }


def _flag_change(on: bool) -> dict:
    return {
        "field": "Flagged",
        "fieldtype": "custom",
        "fieldId": FLAG_FIELD,
        "from": None if on else "[10019]",
        "fromString": None if on else "Impediment",
        "to": "[10019]" if on else None,
        "toString": "Impediment" if on else None,
    }
