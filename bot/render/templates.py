"""Jinja2 rendering for Slack payloads and terminal text, with Slack's escaping rules built in.

Slack templates (``*.json.j2``) produce JSON. Every ``{{ ... }}`` is escaped twice by default: for mrkdwn
(``&``, ``<``, ``>`` and nothing else, per docs/slack.md) and for a JSON string. Text we built ourselves
(a link with a configured URL, a ``<@U…>`` mention) is marked ``Trusted`` and skips the mrkdwn step;
``plain`` text is cut to a length and skips it too, since ``plain_text`` is never parsed for mentions.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING

from bot import ids

if TYPE_CHECKING:  # Jinja2 is imported when a template is first rendered, not by every importer
    import jinja2

# Found through the import system, not as a path beside this file: in the source tree the templates
# sit at the top (``templates/``), in an installed wheel inside the package (``bot/templates``).
TEMPLATES = str(files("bot.templates"))


class Trusted(str):
    """Text that is already valid mrkdwn (built by us from escaped parts)."""


class RawJson(str):
    """A fragment of JSON the template already produced (a macro's output): emitted as-is."""


def escape_mrkdwn(text: object) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: object, limit: int) -> str:
    s = str(text)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def cut_mrkdwn(text: str, limit: int) -> str:
    """``cut`` for escaped mrkdwn: never ends inside an entity (``&amp;``) or a link (``<url|label>``),
    which Slack would show as a broken fragment."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    for opener, closer in (("<", ">"), ("&", ";")):
        at = head.rfind(opener)
        if at > head.rfind(closer):
            head = head[:at]
    return head + "…"


def link(url: str | None, label: object) -> Trusted:
    """``<url|label>`` with both parts escaped; just the label when there is no URL."""
    if not url:
        return Trusted(escape_mrkdwn(label))
    return Trusted(f"<{escape_mrkdwn(url)}|{escape_mrkdwn(label)}>")


def _json_finalize(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, RawJson):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value if isinstance(value, Trusted) else escape_mrkdwn(value)
    return json.dumps(str(text), ensure_ascii=False)[1:-1]


def _plain(value: object, limit: int = 3000) -> Trusted:
    return Trusted(cut(value, limit))


def _tojson(value: object) -> Trusted:
    """A whole JSON value (for button values and the like), not escaped for mrkdwn."""
    return Trusted(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


@cache
def slack_env() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=False,
        finalize=_json_finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["plain"] = _plain
    env.filters["trusted"] = Trusted
    env.filters["value_json"] = _tojson
    env.filters["raw_json"] = RawJson
    env.globals["ids"] = ids.for_templates()
    return env


@cache
def text_env() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_json(template: str, **context) -> dict:
    """Render a Slack template to a payload (a dict); a template bug fails loudly here, not in Slack."""
    text = slack_env().get_template(template).render(**context)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:  # pragma: no cover - a template bug
        raise RuntimeError(f"template {template} produced invalid JSON: {exc}\n{text}") from exc


def render_text(template: str, **context) -> str:
    return text_env().get_template(template).render(**context)
