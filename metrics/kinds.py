"""The source kinds vsm can sync: one registry read by the config, the sync engine and the normalisers.

A kind names two modules: its connector (``metrics/sources/<kind>.py``, whose ``CONNECTOR`` fetches)
and its normaliser (``metrics/normalise/<kind>.py``, whose ``NORMALISERS`` turn payloads into rows).
They are named here as module paths and imported only when asked for: the config checks a kind on
every command, and `vsm metrics` must not pay for loading the connectors and their HTTP client
(tests/test_startup.py). Adding a source is one entry here plus its two modules (docs/sources.md).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from metrics.sources.base import Connector


@dataclass(frozen=True)
class SourceKind:
    """Where one kind's code lives (module paths, imported on demand)."""

    name: str
    connector: str
    normaliser: str


def _kind(name: str) -> SourceKind:
    return SourceKind(name, f"metrics.sources.{name}", f"metrics.normalise.{name}")


# In the order the config's error messages list them.
REGISTRY: dict[str, SourceKind] = {k.name: k for k in map(_kind, ("jira", "github", "gitlab", "pagerduty"))}
SOURCE_KINDS: tuple[str, ...] = tuple(REGISTRY)


def connector_class(kind: str) -> type[Connector]:
    """The kind's ``CONNECTOR``; KeyError for a kind the registry does not know."""
    return importlib.import_module(REGISTRY[kind].connector).CONNECTOR


def normaliser(kind: str) -> ModuleType | None:
    """The kind's normaliser module (``NORMALISERS``, ``ORDER``), or None for an unknown kind."""
    entry = REGISTRY.get(kind)
    return importlib.import_module(entry.normaliser) if entry else None
