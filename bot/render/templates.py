"""Jinja2 rendering for Slack payloads and terminal text, with Slack's escaping rules built in.

Slack templates (``*.json.j2``) produce JSON. Every ``{{ ... }}`` is escaped twice by default: for mrkdwn
(``&``, ``<``, ``>`` and nothing else, per docs/slack.md) and for a JSON string. Text we built ourselves
(a link with a configured URL, a ``<@U…>`` mention) is marked ``Trusted`` and skips the mrkdwn step;
``plain`` text is cut to a length and skips it too, since ``plain_text`` is never parsed for mentions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, TypeVar

from bot import ids

if TYPE_CHECKING:  # Jinja2 is imported when a template is first rendered, not by every importer
    import jinja2

# Found through the import system, not as a path beside this file: in the source tree the templates
# sit at the top (``templates/``), in an installed wheel inside the package (``bot/templates``).
TEMPLATES = str(files("bot.templates"))
T = TypeVar("T")


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


SECTION_TEXT = 3000  # Slack's limit on a text object's text
MESSAGE_TEXT = 3900  # a message's top-level text: Slack truncates longer ones
LINE_MAX = 600  # one entry of a packed list (a long reason, a long name): a list stays a list


def within_limits(payload: dict) -> dict:
    """``payload`` (a message) with its top-level text and every mrkdwn text of its blocks cut to
    Slack's limits, each cut at a safe place (``cut_mrkdwn``): a very long reason or name never makes
    Slack refuse the whole message."""
    payload["text"] = cut(payload["text"], MESSAGE_TEXT)
    for block in payload["blocks"]:
        for text in [block.get("text") or {}, *block.get("elements", [])]:
            if text.get("type") == "mrkdwn":
                text["text"] = cut_mrkdwn(text["text"], SECTION_TEXT)
    return payload


def pack(
    items: Sequence[T],
    line: Callable[[T], str],
    max_blocks: int,
    more: Callable[[int], str],
    limit: int = SECTION_TEXT,
) -> list[Trusted]:
    """``items``' lines (``line(item)``: escaped mrkdwn, each cut to ``LINE_MAX``), in order, joined
    into at most ``max_blocks`` texts of at most ``limit`` characters. When they do not all fit, the
    last text ends with ``more(n)`` for the ``n`` items left out, so a reader is told how many and
    where to find them. Lines are made only for the items that fit: a 1,000-team org's rows are
    counted, not all drawn."""
    chunks: list[list[str]] = []
    size = used = 0
    for item in items:
        text = cut_mrkdwn(line(item), LINE_MAX)
        if chunks and size + 1 + len(text) <= limit:
            chunks[-1].append(text)
            size += 1 + len(text)
        elif len(chunks) < max(1, max_blocks):
            chunks.append([text])
            size = len(text)
        else:
            break
        used += 1
    if used < len(items):  # room for the count of what is left out, dropping lines to make it
        last = chunks[-1]
        while last and len("\n".join([*last, more(len(items) - used)])) > limit:
            last.pop()
            used -= 1
        last.append(more(len(items) - used))
    return [Trusted("\n".join(c)) for c in chunks]


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
