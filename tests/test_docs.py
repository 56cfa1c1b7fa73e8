"""The project's own docs/ keep up with the code.

A user reads docs/ to learn what a metric means or what a `vsm.toml` key does, so a metric or a key
added without its documentation must fail here, not surprise a user later. The keys come from the
code itself: the parser (``metrics.config.parse_config``) names the keys it allows whenever it
refuses an unknown one, and the connectors and normalisers read their ``[[source]]`` keys by name.
Every documented key must also be one the parser accepts, so a renamed key cannot leave the docs
behind.
"""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from builders import ts
from slackkit import assert_valid_message
from test_workflow import flow_of

from bot.render.format import duration, one_decimal
from bot.render.usage import help_message
from metrics import stats
from metrics.catalogue import CATALOGUE
from metrics.config import parse_config
from metrics.errors import VsmError
from metrics.workflow import Workflow, active_seconds

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
UNKNOWN = "zz_no_such_key"  # close to no real key, so the parser lists them all instead of guessing

# How each part of vsm.toml is named in the headings of the docs' reference tables.
MARKERS = {
    "database": "`[database]`",
    "slack": "`[slack]`",
    "schedule": "`[schedule]`",
    "source": "`[[source]]`",
    "team": "`[[team]]`",
    "org": "`[org]`",
}
# A file whose only fault is one unknown key in the part: the parser's answer lists the part's keys.
PROBES = {
    "database": {"database": {UNKNOWN: 1}},
    "slack": {"slack": {UNKNOWN: 1}},
    "schedule": {"schedule": {UNKNOWN: 1}},
    "source": {"source": [{"name": "s", "kind": "jira", "url": "https://acme.atlassian.net", UNKNOWN: 1}]},
    "team": {"team": [{"name": "t", UNKNOWN: 1}]},
    "org": {"org": {UNKNOWN: 1}},
}


# -- what the code accepts -----------------------------------------------------------------------------
def allowed_by_parser(data: dict) -> set[str]:
    """The keys ``parse_config`` says are allowed when it refuses the unknown one in ``data``."""
    with pytest.raises(VsmError) as refused:
        parse_config(data)
    listed = re.search(r"allowed: ([^)]*)\)", str(refused.value))
    assert listed, f"the parser no longer lists what is allowed: {refused.value}"
    return {key.strip() for key in listed.group(1).split(",")}


def config_sections() -> set[str]:
    return allowed_by_parser({UNKNOWN: {}})


def keys_accepted() -> dict[str, set[str]]:
    """Every key of every part of vsm.toml the parser accepts, by part."""
    return {section: allowed_by_parser(data) for section, data in PROBES.items()}


def _name(node: ast.AST) -> str | None:
    """The variable a table is read from: ``source``, ``self.ctx.source`` -> ``source``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def source_keys_read() -> set[str]:
    """The ``[[source]]`` keys connectors (``self.ctx.source``, ``source``) and normalisers
    (``options``) read by name: ``x.get("key"…)`` or ``x["key"]``."""
    keys = set()
    paths = [ROOT / "metrics" / "config.py"]  # its production_environments(source), shared by both tools
    for folder in ("sources", "normalise"):
        paths += sorted((ROOT / "metrics" / folder).glob("*.py"))
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
                table, key = (
                    (_name(node.func.value), node.args[0]) if node.func.attr == "get" else (None, None)
                )
            elif isinstance(node, ast.Subscript):
                table, key = _name(node.value), node.slice
            else:
                continue
            if (
                table in ("source", "options")
                and isinstance(key, ast.Constant)
                and isinstance(key.value, str)
            ):
                keys.add(key.value)
    return keys


# -- what the docs say ---------------------------------------------------------------------------------
def keys_documented() -> dict[str, set[str]]:
    """Per part of vsm.toml, the keys that start a row of a table under a heading naming that part
    (``### `[[source]]` keys every kind takes``), in docs/sources.md and docs/slack.md."""
    out: dict[str, set[str]] = {section: set() for section in MARKERS}
    for page in ("sources.md", "slack.md"):
        current: list[str] = []
        for line in (DOCS / page).read_text(encoding="utf-8").splitlines():
            if line.startswith("#"):
                current = [s for s, marker in MARKERS.items() if marker in line]
                continue
            row = re.match(r"^\|\s*`([a-z_]+)`\s*\|", line)
            if row:
                for section in current:
                    out[section].add(row.group(1))
    return out


def metric_sections() -> list[str]:
    """The metric ids that head a section of docs/metrics.md (``### `cycle-time`: Cycle time``)."""
    text = (DOCS / "metrics.md").read_text(encoding="utf-8")
    return re.findall(r"^#{2,4} `([a-z0-9-]+)`", text, flags=re.MULTILINE)


# -- the tests -----------------------------------------------------------------------------------------
def test_every_catalogue_metric_has_a_section_in_metrics_md():
    documented = metric_sections()
    missing = [m for m in CATALOGUE if m not in documented]
    assert not missing, f"docs/metrics.md has no section for {missing}"


def test_metrics_md_documents_no_metric_the_catalogue_lacks():
    documented = metric_sections()
    assert sorted(set(documented) - set(CATALOGUE)) == []
    assert len(documented) == len(set(documented)), "a metric has two sections"


def test_every_config_section_has_its_reference_table():
    assert config_sections() == set(MARKERS), "a new vsm.toml section needs a MARKERS entry and its docs"
    documented = keys_documented()
    assert [s for s in MARKERS if not documented[s]] == []


def test_every_config_key_the_parser_accepts_is_documented():
    accepted, documented = keys_accepted(), keys_documented()
    missing = {s: sorted(accepted[s] - documented[s]) for s in MARKERS if accepted[s] - documented[s]}
    assert not missing, f"keys vsm.toml accepts but docs/sources.md or docs/slack.md lack: {missing}"


def test_every_source_key_a_connector_reads_is_documented():
    missing = sorted(source_keys_read() - keys_documented()["source"])
    assert not missing, f"[[source]] keys read by a connector but not in docs/sources.md: {missing}"


def test_every_documented_config_key_is_accepted():
    accepted, documented = keys_accepted(), keys_documented()
    stale = {s: sorted(documented[s] - accepted[s]) for s in MARKERS if documented[s] - accepted[s]}
    assert not stale, f"documented keys vsm.toml refuses (renamed? removed?): {stale}"


def test_the_key_lists_hold_what_they_must():
    """The probes and the scan themselves: a format change must not make them quietly empty."""
    accepted = keys_accepted()
    assert accepted["database"] == {"path"}
    assert accepted["slack"] == {"api_url"}
    assert {"sync_every_minutes", "grace_hours"} <= accepted["schedule"]
    assert {"name", "kind", "url", "token_env", "history_days", "jql", "repos"} <= accepted["source"]
    assert {"channel", "metrics", "workflow", "waiting_stages", "stale_pr_hours"} <= accepted["team"]
    assert {"north_star", "admins"} <= accepted["org"]
    assert not {"token", "bot_token", "signing_secret"} & (accepted["slack"] | accepted["source"])
    read = source_keys_read()
    assert {"name", "kind", "token_env", "history_days", "deploy_workflow", "points_field"} <= read
    assert {"production_environments", "allow_plain_http"} <= read


WORKED = Workflow.from_config(
    {
        "backlog": ["To Do"],
        "committed": ["Selected"],
        "in_progress": ["In Progress"],
        "review": {"statuses": ["In Review"], "waiting": True},
        "done": ["Done"],
    }
)


def test_the_worked_examples_of_metrics_md_are_what_the_code_computes():
    """The numbers a reader checks by hand are the ones vsm-bot gives, through the real code."""
    text = (DOCS / "metrics.md").read_text(encoding="utf-8")
    # Stage dates: a move back to the backlog clears the first attempt; committed is skipped.
    pay7 = flow_of(
        "2026-03-02T09:00",
        "To Do",
        [
            ("2026-03-03T10:00", "Selected"),
            ("2026-03-04T09:00", "In Progress"),
            ("2026-03-05T11:00", "To Do"),
            ("2026-03-06T09:30", "In Progress"),
            ("2026-03-09T14:00", "In Review"),
            ("2026-03-10T16:30", "Done"),
        ],
        WORKED,
    )
    cycle, lead = (pay7.done - pay7.committed) / 3600, (pay7.done - ts("2026-03-02T09:00")) / 3600
    assert (cycle, lead) == (103.0, 199.5)
    assert f"= {cycle:g} h, shown `{duration(cycle)}`" in text
    assert f"= {lead:g} h, shown `{duration(lead)}`" in text
    # Percentiles: linear interpolation, both between two values.
    hours = [6, 20, 26, 40, 52, 75, 98, 130]
    p50, p85 = stats.percentile(hours, 0.5), stats.percentile(hours, 0.85)
    assert f"**{p50:g} h**, shown `{duration(p50)}`" in text
    assert f"**{p85:.2f} h**, shown `{duration(p85)}`" in text
    # Flow efficiency: Blocked is mapped to no stage, so its 20 h wait.
    plat12 = flow_of(
        "2026-03-06T09:00",
        "To Do",
        [
            ("2026-03-09T09:00", "Selected"),
            ("2026-03-09T13:00", "In Progress"),
            ("2026-03-10T13:00", "Blocked"),
            ("2026-03-11T09:00", "In Progress"),
            ("2026-03-11T17:00", "In Review"),
            ("2026-03-12T11:00", "Done"),
        ],
        WORKED,
    )
    active, cycle = active_seconds(WORKED, plat12) / 3600, (plat12.done - plat12.committed) / 3600
    assert (active, cycle) == (32.0, 74.0)
    assert f"efficiency {active:g} ÷ {cycle:g} = **{one_decimal(100 * active / cycle)}%**" in text
    # XmR: the limits of the 12-week baseline, and which weeks break a rule.
    baseline = [8, 10, 9, 11, 7, 10, 12, 9, 8, 10, 11, 9]
    lim = stats.xmr_limits(baseline)
    assert f"{one_decimal(lim.lower)} to {one_decimal(lim.upper)} items a week" in text
    assert f"mR̄ = 23 ÷ 11 = {lim.mr_bar:.2f}" in text
    assert stats.xmr_signal(baseline, [16]) == "above the upper process limit"
    assert (stats.xmr_signal(baseline, [13, 11, 13, 14]) or "").startswith("3 of 4")
    assert stats.xmr_signal(baseline, [14]) is None


def test_vsm_metrics_points_to_the_docs():
    env = {k: v for k, v in os.environ.items() if k != "VSM_CONFIG"}
    run = subprocess.run(
        [sys.executable, "-m", "bot.cli", "metrics"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    last = run.stdout.rstrip("\n").splitlines()[-1]
    assert "docs/metrics.md" in last
    assert (DOCS / "metrics.md").is_file()


def _mrkdwn(block: dict) -> list[str]:
    if "text" in block:
        return [block["text"]["text"]]
    return [e["text"] for e in block.get("elements", []) if e.get("type") == "mrkdwn"]


def test_slack_help_points_to_the_docs():
    for payload in (help_message(), help_message("I don't know `x`")):
        assert_valid_message(payload)
        text = "\n".join(t for b in payload["blocks"] for t in _mrkdwn(b))
        assert "`docs/metrics.md` in the vsm-bot repository" in text
        # Slack users get no command-line hints: `/vsm …` yes, `vsm metric …` no.
        assert not re.search(r"(?<![/\w-])vsm (demo|teams|metrics?|digest|sync|serve)\b", text)


# -- docs/slack.md and docs/layout.md against the code ---------------------------------------------------
def _flat(page: str) -> str:
    """A page's text with every run of whitespace one space: a phrase may wrap anywhere."""
    return " ".join((DOCS / page).read_text(encoding="utf-8").split())


def slack_command_rows() -> list[str]:
    """The first cells of docs/slack.md's command table: ``/vsm digest``, ``/vsm <metric> [period]``..."""
    text = (DOCS / "slack.md").read_text(encoding="utf-8")
    table = text[text.index("## Commands") : text.index("## Modals")]
    return re.findall(r"^\|\s*(`/vsm[^|]*)\|", table, flags=re.MULTILINE)


def test_every_vsm_subcommand_is_in_the_command_table_of_slack_md():
    """A word `/vsm` answers (``parse.SIMPLE``, and ``forecast``) without a row in the table is a
    command nobody can find; the help reply and the manifest's usage hint name each one too."""
    from bot.listeners.commands.parse import SIMPLE

    rows = slack_command_rows()
    assert len(rows) >= 8, f"the command table was not found: {rows}"
    heads = {w for cell in rows for w in re.findall(r"`/vsm (\w+)", cell)}
    words = set(SIMPLE) | {"forecast"}
    assert sorted(words - heads) == [], "subcommands missing from docs/slack.md's command table"
    hint = re.search(r'usage_hint: "([^"]*)"', (ROOT / "manifest.yml").read_text(encoding="utf-8"))
    assert hint, "manifest.yml has no usage_hint"
    listed = {part.split()[0] for part in hint.group(1).split("|") if part.strip()}
    assert sorted(words - listed) == [], "subcommands missing from manifest.yml's usage hint"


# The packages whose every module the table of docs/layout.md names (one module a job: a new one
# without its line is a part nobody can find). Per-tool folders (sources, normalise) are named as a
# rule instead ("one module per tool").
LAYOUT_PACKAGES = (
    "metrics",
    "metrics/catalogue",
    "metrics/sample",
    "bot",
    "bot/render",
    "bot/schedule",
    "bot/listeners/commands",
    "bot/listeners/actions",
    "bot/listeners/events",
    "bot/listeners/views",
)


def layout_rows() -> list[tuple[str, str]]:
    """(first cell, the rest) of each row of docs/layout.md's "Where things are" table."""
    text = (DOCS / "layout.md").read_text(encoding="utf-8")
    table = text[text.index("## Where things are") : text.index("## Conventions")]
    rows = []
    for line in table.splitlines():
        cells = line.split("|")
        if len(cells) >= 4 and "`" in cells[1]:
            rows.append((cells[1], "|".join(cells[2:])))
    return rows


def test_layout_md_names_every_module():
    rows = layout_rows()
    assert len(rows) >= 30, f"the table of docs/layout.md was not found: {len(rows)} rows"
    missing = []
    for package in LAYOUT_PACKAGES:
        for path in sorted((ROOT / package).glob("*.py")):
            if path.name == "__init__.py":
                continue
            whole, stem = f"`{package}/{path.name}`", path.stem
            named = any(whole in first for first, _ in rows) or any(
                f"`{package}/`" in first and re.search(rf"`{stem}(\.py)?`", rest) for first, rest in rows
            )
            if not named:
                missing.append(f"{package}/{path.name}")
    assert missing == [], f"modules docs/layout.md does not name: {missing}"


def test_the_numbers_slack_md_quotes_are_the_codes():
    """Limits and schedules a reader relies on, quoted from the constants that make them."""
    from bot.render import digest as digest_view
    from bot.render import home
    from bot.schedule import scheduler, verdicts
    from metrics import experiments as ex
    from metrics.teams import ORG_DIGEST, ORG_LOG

    text = _flat("slack.md")
    day = {"mon": "Mondays"}[ORG_DIGEST["day"]]
    phrases = [
        f"At most {home.MAX_TEAMS} teams are drawn",
        f"its chosen metrics (the first {home.SINGLE_FIGURES})",
        f"(the first {digest_view.RUNNING_SHOWN}; more are counted)",
        f"(default {day} {ORG_DIGEST['time']})",
        f"covers the `period_days` (default {ORG_DIGEST['period_days']})",
        f"`{ORG_LOG}/{scheduler.ORG_KIND}/<local date>`",
        f"`{ORG_LOG}/{scheduler.ORG_POSTED_KIND}/<cycle day>`",
        f"`<team>/{verdicts.KIND}/<id>`",
        f"a job that runs every {scheduler.VERDICT_MINUTES} minutes",
        f"tried again every {scheduler.VERDICT_MINUTES} minutes for {verdicts.GRACE.days} days",
        f"1 to {ex.MAX_CHANGE} characters",
        f"{ex.MIN_WEEKS} to {ex.MAX_WEEKS} weeks",
        f"need at least {stats.MIN_SIDE} weeks",
    ]
    assert [p for p in phrases if p not in text] == []


def test_the_numbers_the_readme_quotes_are_the_codes():
    """README's promises about issues 12-13 (Explain, experiments, stale data), quoted from the
    constants that keep them: a changed limit fails here until the README says the new one."""
    from bot.render.explain import EXPLAIN_LIMIT
    from bot.schedule.scheduler import VERDICT_MINUTES
    from metrics import experiments as ex
    from metrics.org_digest import STALE_AFTER

    text = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    phrases = [
        f"(up to {EXPLAIN_LIMIT}, then how many more)",
        f"(up to {ex.MAX_CHANGE} characters)",
        f"for how long ({ex.MIN_WEEKS}–{ex.MAX_WEEKS} weeks;",
        f"week by week and need at least {stats.MIN_SIDE})",
        f"α = {stats.ALPHA}, at least {stats.MIN_SIDE} observations a side",
        f"(up to {ex.SYNC_WAIT.days} days after the end, checked every {VERDICT_MINUTES} minutes)",
        f"not synced for more than {STALE_AFTER.total_seconds() / 3600:.0f} hours",
    ]
    assert [p for p in phrases if p not in text] == []
