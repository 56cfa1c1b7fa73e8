"""What a user installs: the built wheel, in a fresh virtual environment, run from outside the checkout.

`make test` installs the project in editable mode, where every file of the checkout is reachable; a
wheel holds only what the packaging declares. This test builds the wheel from a copy of the sources,
installs it (without dependencies) into a new venv whose only other path is a folder holding the
distributions ``pip install vsm-bot`` would bring: the wheel's ``Requires-Dist``, followed through their
own requirements, linked from the test venv (no network; the dev extra, pytest and the editable install
stay out of sight, so a module importing an undeclared dependency fails here), and renders every
sample digest, as text and as Slack payloads, from a directory that holds nothing of the project.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "manifest.yml", "bot", "metrics", "templates")


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VSM_CONFIG", "VSM_NOW")}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the checkout's sources (the build leaves no files in the tree)."""
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    out = tmp_path_factory.mktemp("dist")
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out)]
    done = _run([*build, str(src)], cwd=src)
    assert done.returncode == 0, done.stderr
    (built,) = out.glob("vsm_bot-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding the wheel; returns its ``bin`` folder."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    done = _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        env_dir,
    )
    assert done.returncode == 0, done.stderr
    deps = tmp_path_factory.mktemp("deps")
    for dist in _runtime_closure(wheel):
        base = Path(dist.locate_file(""))
        for top in {f.parts[0] for f in dist.files or ()} - {"..", "__pycache__"}:
            if (base / top).exists() and not (deps / top).exists():
                (deps / top).symlink_to(base / top)
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env_dir)
    (Path(purelib.stdout.strip()) / "vsm_test_deps.pth").write_text(f"{deps}\n")
    return env_dir / "bin"


def _runtime_closure(wheel: Path) -> list[md.Distribution]:
    """The distributions installing the wheel brings: its ``Requires-Dist`` without extras, and theirs
    (with the extras asked for), as installed in the test venv."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        wanted = [(r, "") for r in Parser().parsestr(z.read(meta).decode()).get_all("Requires-Dist") or []]
    found: dict[str, md.Distribution] = {}
    done: set[tuple[str, str]] = set()
    while wanted:
        line, extra = wanted.pop()
        req = Requirement(line)
        if req.marker and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        for asked in {"", *req.extras}:
            if (name, asked) not in done:
                done.add((name, asked))
                found.setdefault(name, md.distribution(req.name))
                wanted += [(r, asked) for r in found[name].requires or ()]
    return list(found.values())


def test_the_wheel_holds_every_module_and_template(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for d in ("bot", "metrics") for p in (ROOT / d).rglob("*.py")}
    templates = {f"bot/templates/{p.name}" for p in (ROOT / "templates").glob("*.j2")}
    assert templates and modules
    assert sorted(modules - names) == []  # a new subpackage missing from pyproject's list shows here
    assert sorted(templates - names) == []
    assert "bot/app_manifest/manifest.yml" in names  # the install link's scopes (bot.installs)
    assert not [n for n in names if n.startswith("bot/app_manifest/") and n.endswith(".py")]


def test_the_installed_wheel_reads_the_install_link_scopes_from_its_own_manifest(installed, tmp_path):
    """An installable `vsm serve` (OAuth) asks Slack for the manifest's bot scopes: the wheel's copy,
    found where the package is installed, not beside a checkout."""
    from bot.installs import manifest_scopes

    read = _run(
        [
            str(installed / "python"),
            "-c",
            "from bot import installs; print(installs.manifest_path()); print(','.join(installs.manifest_scopes()))",
        ],
        tmp_path,
    )
    assert read.returncode == 0, read.stderr
    where, scopes = read.stdout.splitlines()
    assert where.startswith(str(installed.parent)) and where.endswith("bot/app_manifest/manifest.yml")
    assert scopes.split(",") == manifest_scopes(ROOT / "manifest.yml")


def test_the_installed_wheel_renders_every_sample_digest(installed, tmp_path):
    where = _run(
        [str(installed / "python"), "-c", "import bot, metrics; print(bot.__file__, metrics.__file__)"],
        tmp_path,
    )
    assert where.returncode == 0, where.stderr
    assert str(ROOT) not in where.stdout and str(installed.parent) in where.stdout

    db = tmp_path / "demo.db"
    demo = _run([str(installed / "vsm"), "demo", "--db", str(db)], tmp_path)
    assert demo.returncode == 0, demo.stderr
    teams = json.loads(_run([str(installed / "vsm"), "teams", "--json", "--db", str(db)], tmp_path).stdout)
    assert len(teams) >= 3
    for team in teams:
        assert f"{team['name']} · value-stream digest" in demo.stdout
        payload = _run(
            [str(installed / "vsm"), "digest", "--team", team["name"], "--json", "--db", str(db)], tmp_path
        )
        assert payload.returncode == 0, payload.stderr
        message = json.loads(payload.stdout)
        assert message["channel"] == team["channel"] and message["text"] and message["blocks"]


def test_the_installed_wheel_runs_the_org_roll_up_and_the_experiments(installed, tmp_path):
    """Issues 13-14 added ``metrics.org``, ``metrics.results``, ``metrics.experiments`` and their
    renderers: the installed wheel runs them too, not only the team digest."""
    db = tmp_path / "demo.db"
    assert _run([str(installed / "vsm"), "demo", "--db", str(db)], tmp_path).returncode == 0
    north = _run([str(installed / "vsm"), "northstar", "--db", str(db)], tmp_path)
    assert north.returncode == 0, north.stderr
    assert north.stdout.startswith("North Star · ") and "all teams pooled" in north.stdout
    found = []
    for team in json.loads(
        _run([str(installed / "vsm"), "teams", "--json", "--db", str(db)], tmp_path).stdout
    ):
        done = _run(
            [str(installed / "vsm"), "experiments", "--team", team["name"], "--db", str(db)], tmp_path
        )
        assert done.returncode == 0, done.stderr
        found += [line for line in done.stdout.splitlines() if line.startswith("#")]
    # The sample holds one experiment still running and one concluded (its verdict in place of the end).
    assert any("running until" in line for line in found) and any("running" not in line for line in found)
