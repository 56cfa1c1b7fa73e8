"""``/vsm help`` and ``/vsm metrics``: what the bot can answer, and every metric it knows.

Both group the metrics by family, titled as people write them ("DORA", never "Dora"), one section
per family so each stays within Slack's 3,000 characters a section.
"""

from __future__ import annotations

from bot.render.templates import render_json
from metrics.catalogue import CATALOGUE
from metrics.catalogue.aliases import FAMILY_TITLES
from metrics.catalogue.base import Metric


def families(only: str | None = None) -> list[dict]:
    """The catalogue by family, in the families' usual order: ``{"id", "title", "metrics"}`` each;
    ``only`` keeps one family (an unknown one keeps them all rather than answering with nothing)."""
    grouped: dict[str, list[Metric]] = {f: [] for f in FAMILY_TITLES}
    for m in CATALOGUE.values():
        grouped.setdefault(m.family, []).append(m)
    out = [
        {"id": f, "title": FAMILY_TITLES.get(f, f.replace("_", " ").capitalize()), "metrics": ms}
        for f, ms in grouped.items()
        if ms
    ]
    chosen = [f for f in out if f["id"] == only]
    return chosen or out


def help_message(error: str | None = None) -> dict:
    """``/vsm help``, and the answer to input the bot did not understand (``error`` first)."""
    return render_json("help.json.j2", error=error, families=families())


def catalogue_message(family: str | None = None) -> dict:
    """``/vsm metrics``: every metric with its unit, direction and definition; ``family`` (``/vsm
    dora``) lists that family's alone."""
    shown = families(family)
    return render_json("catalogue.json.j2", families=shown, one=len(shown) == 1)
