"""What `vsm` loads before it answers: a command imports what it uses, nothing heavy on the way.

Each test runs the installed console script in a fresh process with ``PYTHONPROFILEIMPORTTIME=1``
(Python's ``-X importtime``, which reports every module a process imports) and reads the module
names from its stderr. No timing is asserted: the names are what make a command slow or fast
(scipy.stats alone is half a second), and they do not depend on how busy the machine is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from builders import item, team

from metrics.store import open_db
from metrics.teams import save_team

NOW = "2026-11-25T15:00:00Z"
# Never on the way to a figure at the terminal: the Slack app, the scheduler, the HTTP client, the
# template engine, charts, and the numerical stack (loaded by the computations that need it).
HEAVY = (
    "scipy",
    "numpy",
    "pandas",
    "slack_bolt",
    "slack_sdk",
    "apscheduler",
    "requests",
    "urllib3",
    "jinja2",
    "matplotlib",
)


def vsm_command() -> list[str]:
    """The console script a user runs, beside this interpreter (the module when not installed)."""
    script = Path(sys.executable).with_name("vsm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]


def run_vsm(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """One `vsm` process reporting its imports on stderr (no config but what ``args`` name)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VSM_CONFIG", "VSM_TEST_NO_SUCH_TOKEN")}
    env |= {"VSM_NOW": NOW, "PYTHONPROFILEIMPORTTIME": "1"}
    return subprocess.run(
        [*vsm_command(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def modules_of(run: subprocess.CompletedProcess) -> set[str]:
    """The modules named by ``-X importtime``'s lines: ``import time: self | cumulative |   name``."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in run.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def imported(*args: str, cwd: Path) -> set[str]:
    """Every module one successful `vsm` process imported."""
    run = run_vsm(*args, cwd=cwd)
    assert run.returncode == 0, run.stderr[-2000:]
    return modules_of(run)


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


@pytest.fixture(scope="module")
def team_db(tmp_path_factory) -> Path:
    """One team with work done in the last weeks and in the months before: enough for a figure, its
    series and a two-sample test of the window against its baseline (10 or more a side)."""
    path = tmp_path_factory.mktemp("startup") / "vsm.db"
    db = open_db(path)
    save_team(db, team(), who="test")
    for n, day in enumerate(range(2, 24), start=1):
        done = f"2026-11-{day:02d} 16:00"
        item(
            db,
            f"PAY-{n}",
            f"2026-10-{day:02d} 09:00",
            [(f"2026-11-{day - 1:02d} 10:00", "In Progress"), (done, "Done")],
        )
    for n, day in enumerate(range(1, 28), start=100):  # slower work, a month or two before
        month = 8 + n % 2
        item(
            db,
            f"PAY-{n}",
            f"2026-{month - 1:02d}-{day:02d} 09:00",
            [
                (f"2026-{month:02d}-{day:02d} 10:00", "In Progress"),
                (f"2026-{month + 1:02d}-{day:02d} 16:00", "Done"),
            ],
        )
    db.conn.close()
    return path


def test_the_check_sees_what_a_command_imports(tmp_path):
    """The probe itself: the catalogue shows up in `vsm metrics`, the HTTP client in `vsm sync`."""
    assert "metrics.catalogue" in imported("metrics", cwd=tmp_path)
    config = tmp_path / "vsm.toml"
    config.write_text(
        f'[database]\npath = "{tmp_path / "sync.db"}"\n\n[[source]]\nname = "jira"\nkind = "jira"\n'
        'url = "https://acme.atlassian.net"\ntoken_env = "VSM_TEST_NO_SUCH_TOKEN"\njql = "project = PAY"\n'
    )
    sync = run_vsm("sync", "--config", str(config), cwd=tmp_path)
    assert "VSM_TEST_NO_SUCH_TOKEN is not set" in sync.stdout  # the source failed for want of its
    assert "requests" in modules_of(sync)  # token, after the sync engine loaded its HTTP client


def test_catalogue_listing_loads_nothing_heavy(tmp_path):
    assert heavy(imported("metrics", cwd=tmp_path)) == []
    assert heavy(imported("metrics", "--json", cwd=tmp_path)) == []


@pytest.mark.parametrize("metric", ["throughput", "cycle-time", "lead-time", "wip", "aging-wip"])
def test_a_flow_metric_loads_nothing_heavy(team_db, tmp_path, metric):
    """Cycle and lead time run a Mann–Whitney test on this team (written out in metrics.stats, not
    scipy's), WIP counts with bisect (not numpy)."""
    modules = imported(
        "metric", metric, "--team", "pay", "--period", "30d", "--db", str(team_db), cwd=tmp_path
    )
    assert "metrics.catalogue.flow" in modules
    assert heavy(modules) == []


def test_the_fixture_team_reaches_the_two_sample_test(team_db, monkeypatch, capsys):
    """The probe above means something only if cycle time's test ran: it needs 10 items a side."""
    import bot.cli
    from metrics.catalogue.base import Metric

    calls = []
    original = Metric.two_sample

    def spy(self, in_window, in_base, base):
        calls.append((len(in_window), len(in_base)))
        return original(self, in_window, in_base, base)

    monkeypatch.setattr(Metric, "two_sample", spy)
    monkeypatch.setenv("VSM_NOW", NOW)
    assert (
        bot.cli.main(["metric", "cycle-time", "--team", "pay", "--period", "30d", "--db", str(team_db)]) == 0
    )
    assert calls and min(calls[0]) >= 10, calls


def test_listing_teams_loads_neither_the_catalogue_nor_anything_heavy(team_db, tmp_path):
    modules = imported("teams", "--db", str(team_db), cwd=tmp_path)
    assert heavy(modules) == []
    assert "bot.render.format" not in modules


def test_sqlite_utils_loads_without_numpy_and_still_maps_numpy_once_loaded():
    """The store's import of sqlite-utils does not drag numpy in; numpy loads normally afterwards."""
    code = (
        "import sys, metrics.store\n"
        "assert 'sqlite_utils' in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules)\n"
        "import numpy\n"
        "print(numpy.int64(3) + 1)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "4"
