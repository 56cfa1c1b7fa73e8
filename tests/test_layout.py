"""The layout's rules (docs/layout.md), checked on the source rather than trusted.

``metrics`` decides what is said and ``bot`` how it reaches people: nothing in ``metrics/`` may import
``bot/``, or the metric core could no longer be run and tested without the Slack side. Imports are
read with ``ast`` from every module, function-level ones included (the lazy imports that keep start-up
fast would otherwise hide a dependency), and so are ``importlib.import_module("...")`` calls with a
literal name.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from metrics.kinds import SOURCE_KINDS, connector_class, normaliser

ROOT = Path(__file__).resolve().parent.parent
METRICS = ROOT / "metrics"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """``(line, imported module)`` for every import anywhere in ``source``, relative ones resolved
    against ``module``; ``from a import b`` counts as both ``a`` and ``a.b`` (b may be a module)."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*"]
        elif (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def is_under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def metrics_modules() -> list[Path]:
    return sorted(p for p in METRICS.rglob("*.py") if "__pycache__" not in p.parts)


def violations(package: str, *, allowed: str | None = None) -> list[str]:
    """Every place a module of ``metrics/`` (outside ``allowed``) imports ``package``."""
    out = []
    for path in metrics_modules():
        name = module_name(path)
        if allowed and is_under(name, allowed):
            continue
        for line, imported in imports_of(path.read_text(), name, path.name == "__init__.py"):
            if is_under(imported, package):
                out.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    return out


def test_the_import_reader_sees_every_form_of_import():
    """What the layout tests rely on: a dependency is found however it is written."""
    source = """
import bot.cli
from bot import format as fmt
def later():
    from bot.delivery import deliver
    import importlib
    importlib.import_module("bot.serve")
from ..bot import app
from . import kinds
"""
    found = {name for _, name in imports_of(source, "metrics.digest")}
    assert {"bot.cli", "bot", "bot.format", "bot.delivery", "bot.serve", "metrics.kinds"} <= found
    assert "bot.app" in found  # two dots up from metrics.digest is the top level
    assert imports_of("from .x import y", "bot", is_package=True) == [(1, "bot.x"), (1, "bot.x.y")]


def test_nothing_in_metrics_imports_bot():
    assert len(metrics_modules()) > 30  # the walk found the package
    assert violations("bot") == []


def test_the_metric_core_does_not_import_the_sample():
    """The sample history is a stand-in for the sources, beside the core: the core never needs it."""
    assert violations("metrics.sample", allowed="metrics.sample") == []


def test_the_digest_does_not_load_the_sync_engine():
    """A digest reads freshness from the store: importing it loads no connector, sync engine or HTTP
    client (a fresh interpreter, so nothing this test process imported counts)."""
    probe = (
        "import sys, metrics.digest\n"
        "print(sorted(m for m in sys.modules if m.startswith(('metrics.sources', 'requests', 'urllib3'))))"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert run.stdout.strip() == "[]"


@pytest.mark.parametrize("kind", SOURCE_KINDS)
def test_every_registered_kind_has_its_connector_and_normaliser(kind):
    """The registry's modules are imported on demand: a kind missing one would only show at the first
    sync of that kind, so each entry is loaded here."""
    from metrics import config

    assert kind in config.SOURCE_KINDS  # the config accepts what the registry holds
    assert connector_class(kind).kind == kind
    module = normaliser(kind)
    assert module is not None and set(module.ORDER) <= set(module.NORMALISERS)
