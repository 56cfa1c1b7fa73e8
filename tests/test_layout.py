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


BOT = ROOT / "bot"
SURFACES = ("commands", "actions", "events", "views")


def test_every_listener_is_a_module_level_function_of_its_surface(tmp_path):
    """Listeners are plain functions in ``bot/listeners/<surface>/``, not closures inside a
    ``register``: each can be imported, read and tested alone (issue 11)."""
    from slack_sdk import WebClient

    from bot.app import create_app
    from bot.store import Store

    app = create_app(Store(tmp_path / "vsm.db"), WebClient(token="xoxb-layout"))
    listeners = [listener.ack_function for listener in app._listeners]
    assert len(listeners) >= 11
    for fn in listeners:
        surface = fn.__module__.split(".")[2] if fn.__module__.startswith("bot.listeners.") else None
        assert surface in SURFACES, fn.__module__
        assert "<locals>" not in fn.__qualname__, f"{fn.__module__}.{fn.__qualname__} is a closure"


def test_action_and_callback_ids_are_named_once():
    """No template or module writes an action id or a callback id as a literal: each is a name in
    ``bot/ids.py``, every one of which some package's ``register(app)`` listens for."""
    from bot import ids

    literal = []
    for path in [*(ROOT / "templates").glob("*.j2"), *BOT.rglob("*.py")]:
        text = path.read_text()
        for key in ('"action_id": "', '"callback_id": "', "action_id=", "callback_id="):
            at = text.find(key)
            while at != -1:
                value = text[at + len(key) : at + len(key) + 12]
                # "v": the one element of an input block, read back by its block id
                if not value.startswith(("{{ ids.", 'v"', "ids.")):
                    literal.append(f"{path.relative_to(ROOT)}: {text[at : at + 40]!r}")
                at = text.find(key, at + 1)
    assert literal == []
    registered = set()
    for init in (BOT / "listeners").glob("*/__init__.py"):
        for node in ast.walk(ast.parse(init.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "ids"
            ):
                registered.add(node.attr)
    assert registered == set(ids.for_templates())
