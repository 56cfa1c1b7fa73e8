"""The `vsm` command line, run as a user runs it: a real process, real files, exit codes, stderr."""

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

NOW = "2026-11-25T15:00:00Z"


def vsm(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k != "VSM_CONFIG"}
    e["VSM_NOW"] = NOW
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=300
    )


def digest_of(path: Path) -> str:
    """The database's logical content (a WAL checkpoint may rewrite the file without changing it)."""
    conn = sqlite3.connect(path)
    try:
        return hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`vsm demo` once: its output and its database."""
    cwd = tmp_path_factory.mktemp("demo")
    run = vsm("demo", cwd=cwd)
    assert run.returncode == 0, run.stderr
    return cwd, run


def test_demo_prints_three_digests_with_real_figures(demo):
    cwd, run = demo
    assert (cwd / "vsm-demo.db").exists()
    assert run.stdout.count("value-stream digest") == 3
    assert "no data" not in run.stdout.split("Team metrics")[1].split("══")[0]
    assert "vsm metric cycle-time --team" in run.stdout


def test_demo_is_deterministic(demo, tmp_path):
    cwd, run = demo
    again = vsm("demo", "--db", str(tmp_path / "again.db"), cwd=tmp_path)
    assert again.returncode == 0
    assert again.stdout.replace(str(tmp_path / "again.db"), "DB") == run.stdout.replace("vsm-demo.db", "DB")


def test_teams_and_catalogue(demo):
    cwd, _ = demo
    teams = json.loads(vsm("teams", "--json", "--db", "vsm-demo.db", cwd=cwd).stdout)
    assert len(teams) == 3 and len({t["timezone"] for t in teams}) == 3
    catalogue = json.loads(vsm("metrics", "--json", cwd=cwd).stdout)
    ids = {m["id"] for m in catalogue}
    assert {"cycle-time", "lead-time-for-changes", "sprint-completion", "pr-pickup-time", "forecast"} <= ids
    assert all(m["definition"] and m["unit"] and m["better"] for m in catalogue)


def test_metric_json_contract(demo):
    cwd, _ = demo
    team = json.loads(vsm("teams", "--json", "--db", "vsm-demo.db", cwd=cwd).stdout)[0]["name"]
    run = vsm(
        "metric", "cycle-time", "--team", team, "--period", "90d", "--json", "--db", "vsm-demo.db", cwd=cwd
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    for key in (
        "metric",
        "team",
        "since",
        "until",
        "value",
        "unit",
        "sample_size",
        "previous",
        "series",
        "items",
    ):
        assert key in out
    assert set(out["value"]) == {"p50", "p85"}
    assert out["sample_size"] == len(out["items"]) > 0
    first = out["items"][0]
    assert {"key", "start", "end", "hours"} <= set(first)
    assert out["since"].endswith("Z") and out["until"].endswith("Z")
    assert all(set(p) >= {"week", "value"} for p in out["series"])


def test_every_metric_computes_for_every_sample_team(demo):
    cwd, _ = demo
    teams = [t["name"] for t in json.loads(vsm("teams", "--json", "--db", "vsm-demo.db", cwd=cwd).stdout)]
    ids = [m["id"] for m in json.loads(vsm("metrics", "--json", cwd=cwd).stdout)]
    from datetime import datetime

    from metrics.catalogue import compute
    from metrics.store import open_db
    from metrics.teams import get_team
    from metrics.timeutil import parse_period

    db = open_db(cwd / "vsm-demo.db", create=False)
    now = datetime.fromisoformat(NOW.replace("Z", "+00:00"))
    for name in teams:
        team = get_team(db, name)
        for mid in ids:
            result = compute(db, team, mid, parse_period("90d", team.tz, now), now)
            json.dumps(result.to_json())  # everything is JSON-ready


def test_digest_json_is_a_valid_slack_message(demo):
    from slack_sdk.models.blocks import Block

    cwd, _ = demo
    team = json.loads(vsm("teams", "--json", "--db", "vsm-demo.db", cwd=cwd).stdout)[0]["name"]
    run = vsm("digest", "--team", team, "--json", "--db", "vsm-demo.db", cwd=cwd)
    assert run.returncode == 0, run.stderr
    payload = json.loads(run.stdout)
    assert payload["text"] and len(payload["text"]) < 4000
    assert 0 < len(payload["blocks"]) <= 50
    ids = [b["block_id"] for b in payload["blocks"] if "block_id" in b]
    assert len(ids) == len(set(ids))
    for block in payload["blocks"]:
        parsed = Block.parse(block)
        assert parsed is not None
        assert parsed.to_dict() == block


@pytest.mark.parametrize(
    "args,message",
    [
        (["metric", "no-such-metric", "--team", "payments"], "unknown metric 'no-such-metric'"),
        (["metric", "cycle-time", "--team", "nobody"], "unknown team 'nobody'"),
        (["metric", "cycle-time", "--team", "payments", "--period", "30x"], "malformed period '30x'"),
        (["metric", "cycle-time", "--team", "payments", "--since", "2026-01-01"], "go together"),
        (["digest", "--team", "nobody"], "unknown team"),
        (["metric", "cycle-time"], "--team"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_database_untouched(demo, args, message):
    cwd, _ = demo
    before = digest_of(cwd / "vsm-demo.db")
    run = vsm(*args, "--db", "vsm-demo.db", cwd=cwd) if args[0] != "frobnicate" else vsm(*args, cwd=cwd)
    assert run.returncode == 2
    assert message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert "Traceback" not in run.stderr
    assert digest_of(cwd / "vsm-demo.db") == before


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "not found"),
        ("[database\npath = 1", "invalid TOML"),
        ('[[team]]\nname = "x"\ntimezone = "Nowhere/Land"\n', "line 3"),
    ],
)
def test_bad_config_is_one_line_exit_2(demo, tmp_path, content, message):
    cwd, _ = demo
    cfg = tmp_path / "vsm.toml"
    if content is not None:
        cfg.write_text(content)
    before = digest_of(cwd / "vsm-demo.db")
    run = vsm("teams", "--config", str(cfg), "--db", "vsm-demo.db", cwd=cwd)
    assert run.returncode == 2
    assert message in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert digest_of(cwd / "vsm-demo.db") == before


def test_read_commands_do_not_create_a_database(tmp_path):
    run = vsm("teams", "--db", "nothing.db", cwd=tmp_path)
    assert run.returncode == 2 and "no database" in run.stderr
    assert not (tmp_path / "nothing.db").exists()


def test_config_teams_are_reported_by_read_commands_without_writing(demo, tmp_path):
    """Read commands never write: a team vsm.toml declares is a note naming the command that adds
    it (seeding itself is `vsm sync`'s and `vsm serve`'s), and a disagreement is reported as before."""
    cwd, _ = demo
    db = tmp_path / "copy.db"
    db.write_bytes((cwd / "vsm-demo.db").read_bytes())
    before = db.read_bytes()
    cfg = tmp_path / "vsm.toml"
    cfg.write_text('[[team]]\nname = "newteam"\nchannel = "C0NEWTEAM1"\ntimezone = "Europe/Paris"\n')
    run = vsm("teams", "--json", "--config", str(cfg), "--db", str(db), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "newteam" not in [t["name"] for t in json.loads(run.stdout)]
    assert "team newteam: declared in vsm.toml, not in the database yet" in run.stderr
    assert "`vsm sync` or `vsm serve` adds it" in run.stderr
    cfg.write_text('[[team]]\nname = "payments"\nchannel = "C0SAMPLEPAY"\ntimezone = "Asia/Tokyo"\n')
    run = vsm("teams", "--config", str(cfg), "--db", str(db), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "team payments: vsm.toml differs from the database on" in run.stderr
    assert "timezone" in run.stderr and "Europe/London" in run.stdout
    assert db.read_bytes() == before


def test_sync_without_sources_is_a_clear_error(tmp_path):
    run = vsm("sync", "--db", "x.db", cwd=tmp_path)
    assert run.returncode == 2 and "no [[source]]" in run.stderr
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize(
    "pinned,args,message",
    [
        (
            "9999-12-31T23:59:00Z",
            ["digest", "--team", "payments"],
            "VSM_NOW '9999-12-31T23:59:00Z' is out of range",
        ),
        ("9999-12-31T23:59:00Z", ["metric", "cycle-time", "--team", "payments"], "VSM_NOW '9999-12-31"),
        (
            "9999-06-30T00:00:00Z",
            ["metric", "cycle-time", "--team", "payments", "--period", "12w"],
            "VSM_NOW '9999-06-30T00:00:00Z' is out of range",
        ),
        (
            "0001-01-01T00:00:00Z",
            ["digest", "--team", "payments"],
            "VSM_NOW '0001-01-01T00:00:00Z' is out of range",
        ),
        ("0001-01-01T00:00:00Z", ["metric", "lead-time", "--team", "payments"], "VSM_NOW '0001-01-01"),
        ("yesterday", ["digest", "--team", "payments"], "VSM_NOW 'yesterday' is not an ISO 8601 time"),
    ],
)
def test_a_pinned_clock_out_of_range_is_one_line_exit_2(demo, pinned, args, message):
    cwd, _ = demo
    before = digest_of(cwd / "vsm-demo.db")
    run = vsm(*args, "--db", "vsm-demo.db", cwd=cwd, env={"VSM_NOW": pinned})
    assert run.returncode == 2, run.stderr
    assert message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    assert digest_of(cwd / "vsm-demo.db") == before


def damage(path: Path) -> None:
    """Overwrite every seventh page of the file's second half with noise, so the damage shows
    mid-query, as it does on a failing disk. Where a small table's pages fall depends on the file's
    layout, so the first of the seven offsets that leaves the teams readable is the one kept: the
    file opens and lists its teams, and a figure's query meets the damage."""
    import random

    whole = path.read_bytes()
    page = 4096
    pages = len(whole) // page
    for offset in range(7):
        noise = random.Random(7)
        damaged = bytearray(whole)
        for n in range(pages // 2 + offset, pages - 10, 7):
            damaged[n * page : (n + 1) * page] = noise.randbytes(page)
        path.write_bytes(bytes(damaged))
        try:
            check = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            check.execute("select settings from teams").fetchall()
            check.close()
            return
        except sqlite3.DatabaseError:
            check.close()
    raise AssertionError("every offset damaged the teams table")


@pytest.mark.parametrize(
    "args",
    [
        ["metric", "cycle-time", "--team", "payments", "--period", "90d"],
        ["digest", "--team", "payments", "--json"],
    ],
    ids=["metric", "digest"],
)
def test_a_damaged_database_is_one_line_naming_the_file_and_the_fix(demo, tmp_path, args):
    cwd, _ = demo
    db = tmp_path / "damaged.db"
    src = sqlite3.connect(cwd / "vsm-demo.db")
    dst = sqlite3.connect(db)
    src.backup(dst)
    src.close()
    dst.close()
    damage(db)
    opened = vsm("teams", "--db", str(db), cwd=tmp_path)
    assert opened.returncode == 0 and "payments" in opened.stdout  # the file opens: damage is mid-query
    run = vsm(*args, "--db", str(db), cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert f"the database {db} is damaged (database disk image is malformed)" in run.stderr
    assert "restore it from a backup" in run.stderr and "vsm sync" in run.stderr
