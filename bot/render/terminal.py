"""Text a terminal prints as text: nothing from a tool may drive the terminal itself.

A work item's title, a PR's URL or a status name comes from Jira, GitHub or GitLab as whoever wrote it
typed it. Printed raw, an ESC sequence in a title can recolour, clear or retitle the terminal, move
the cursor to overwrite the figures above it, or (on some terminals) write to the clipboard; a
carriage return or a newline can forge a line of the digest; a bidirectional override can show a
link other than the one it is. So every string on its way to a terminal loses its control
characters (C0, DEL, C1: ``unicodedata`` category ``Cc``) and the bidirectional embedding, override
and isolate marks; a line break or a tab inside one value becomes a space.
"""

from __future__ import annotations

import unicodedata

_SPACES = {"\n": " ", "\r": " ", "\t": " ", "\v": " ", "\f": " "}
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def safe(text: str) -> str:
    """``text`` with every character that would act on the terminal removed (line breaks and tabs
    become spaces, so words stay apart)."""
    if text.isprintable():  # the usual case: nothing to do
        return text
    out = []
    for ch in text:
        if ch in _SPACES:
            out.append(" ")
        elif ch in _BIDI or unicodedata.category(ch) == "Cc":
            continue
        else:
            out.append(ch)
    return "".join(out)


def safe_all(value: object) -> object:
    """``safe`` applied to every string inside ``value`` (a template's context: dicts, lists, tuples),
    so one call covers whatever the template prints."""
    if isinstance(value, str):
        return safe(value)
    if isinstance(value, dict):
        return {k: safe_all(v) for k, v in value.items()}
    if isinstance(value, list) or type(value) is tuple:
        return type(value)(safe_all(v) for v in value)
    return value


def json_text(text: str) -> str:
    """JSON (``json.dumps``'s output) for a terminal: ``json.dumps`` escapes the C0 controls inside
    strings (a raw line break in its output is its own layout) but prints DEL, C1 controls and bidi
    marks as they are; here they are written as ``\\uXXXX`` escapes, which decode to the very same
    string, so ``--json`` output stays exact and still cannot act on the terminal."""
    if text.isascii() and "\x7f" not in text:
        return text
    return "".join(f"\\u{ord(ch):04x}" if ch in _BIDI or "\x7f" <= ch <= "\x9f" else ch for ch in text)
