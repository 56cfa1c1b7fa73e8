"""manifest.yml in the wheel, and nothing else from the top of the checkout.

The data-only package ``bot.app_manifest`` was mapped to the top of the checkout, so setuptools took
every top-level ``*.py`` in as one of its modules (a ``setup_helper.py`` left there shipped as
``bot/app_manifest/setup_helper.py``). It now has a folder of its own, whose manifest.yml is a
symbolic link to the top-level one: one manifest, its content copied into the wheel. Built as
tests/test_wheel.py builds (pip, no isolation, no network), from a copy of the sources taken as git
checks them out (the link kept a link), with a stray module and a stray file at the top.
"""

from __future__ import annotations

import os
import shutil
import sys
import zipfile
from pathlib import Path

from test_wheel import ROOT, SOURCES, _run

PACKAGED = Path("bot/app_manifest/manifest.yml")


def test_the_packaged_manifest_is_the_top_level_one():
    link = ROOT / PACKAGED
    assert link.is_symlink() and os.readlink(link) == "../../manifest.yml"
    assert link.read_bytes() == (ROOT / "manifest.yml").read_bytes()


def test_the_wheel_takes_the_manifest_and_no_top_level_module(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(path, src / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    assert (src / PACKAGED).is_symlink()
    (src / "setup_helper.py").write_text("raise SystemExit('not part of vsm-bot')\n")
    (src / "notes.txt").write_text("not part of vsm-bot\n")
    out = tmp_path / "dist"
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out)]
    done = _run([*build, str(src)], cwd=src)
    assert done.returncode == 0, done.stderr
    (wheel,) = out.glob("vsm_bot-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        assert [n for n in names if n.startswith("bot/app_manifest/")] == [PACKAGED.as_posix()]
        assert z.read(PACKAGED.as_posix()) == (ROOT / "manifest.yml").read_bytes()  # the content, not a link
    assert not [n for n in names if Path(n).name in ("setup_helper.py", "notes.txt")]
