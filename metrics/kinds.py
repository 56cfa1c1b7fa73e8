"""The source kinds vsm can sync: one registry read by the config, the sync engine and the normalisers.

A kind names two modules: its connector (``metrics/sources/<kind>.py``, whose ``CONNECTOR`` fetches)
and its normaliser (``metrics/normalise/<kind>.py``, whose ``NORMALISERS`` turn payloads into rows).
They are imported only when asked for: the config checks a kind on every command, and `vsm metrics`
must not pay for loading the connectors and their HTTP client (tests/test_startup.py). Adding a source
is one entry here plus its two modules (docs/sources.md).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from metrics.sources.base import Connector

# In the order the config's error messages list them.
SOURCE_KINDS: tuple[str, ...] = ("jira", "github", "gitlab", "pagerduty")


def connector_class(kind: str) -> type[Connector]:
    """The kind's ``CONNECTOR``; KeyError for a kind the registry does not know."""
    if kind not in SOURCE_KINDS:
        raise KeyError(kind)
    return importlib.import_module(f"metrics.sources.{kind}").CONNECTOR


def normaliser(kind: str) -> ModuleType | None:
    """The kind's normaliser module (``NORMALISERS``, ``ORDER``), or None for an unknown kind."""
    return importlib.import_module(f"metrics.normalise.{kind}") if kind in SOURCE_KINDS else None
