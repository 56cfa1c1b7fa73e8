"""``/vsm help`` and ``/vsm metrics``: what the bot can answer, and every metric it knows."""

from __future__ import annotations

from bot.render.templates import render_json
from metrics.catalogue import CATALOGUE


def help_message(error: str | None = None) -> dict:
    return render_json("help.json.j2", error=error)


def catalogue_message() -> dict:
    families: dict[str, list] = {}
    for m in CATALOGUE.values():
        families.setdefault(m.family, []).append(m)
    return render_json("catalogue.json.j2", families=families)
