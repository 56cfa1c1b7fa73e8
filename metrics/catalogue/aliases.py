"""The names people type for metrics and families, mapped to the catalogue's stable ids.

A lead types ``/vsm cycle time``, ``/vsm CT`` or ``/vsm Cycle_Time``, not ``cycle-time``; an id is a
config and storage key, not a word anyone remembers. Every name is compared in one *folded* form
(Unicode-compatibility normalised, case-folded, letters and digits only), so spaces, hyphens,
underscores and none at all are the same. Each metric answers to its id, its catalogue name and the
short names below; each family to its id, its title and a few common words. What is not found gets
the closest ids (``suggest``), so a typo costs one more try, not a trip to the docs.
"""

from __future__ import annotations

import difflib
import unicodedata

from metrics.catalogue import CATALOGUE

# How a family is written wherever people read it: "DORA" is an acronym, never "Dora".
FAMILY_TITLES: dict[str, str] = {
    "flow": "Flow",
    "dora": "DORA",
    "scrum": "Scrum",
    "pull_requests": "Pull requests",
}

# Common short names and other names teams use; a metric's id and name need no entry.
METRIC_ALIASES: dict[str, tuple[str, ...]] = {
    "cycle-time": ("ct",),
    "lead-time": ("lt",),
    "throughput": ("tp", "tput"),
    "wip": ("work in progress",),
    "aging-wip": ("aging", "ageing", "ageing wip", "age"),
    "flow-efficiency": ("efficiency", "fe"),
    "time-to-value": ("ttv",),
    "deployment-frequency": ("df", "deploy frequency", "deployments", "deploys"),
    "lead-time-for-changes": ("ltfc", "lt4c", "change lead time"),
    "change-failure-rate": ("cfr", "failure rate"),
    "time-to-restore": (
        "mttr",
        "ttr",
        "mttrestore",
        "restore time",
        "recovery time",
        "failed deployment recovery time",
        "fdrt",
    ),
    "rework-rate": ("rework",),
    "sprint-completion": ("say do", "completion"),
    "sprint-scope-change": ("scope change",),
    "sprint-carry-over": ("carry over", "carryover"),
    "pr-pickup-time": ("pickup", "pickup time"),
    "pr-review-time": ("review time",),
    "pr-size": ("size",),
    "merged-without-review": ("unreviewed", "mwr"),
}

FAMILY_ALIASES: dict[str, tuple[str, ...]] = {
    "flow": ("kanban",),
    "dora": ("four keys", "4 keys", "accelerate"),
    "scrum": ("sprint", "sprints"),
    "pull_requests": ("pr", "prs", "pull request"),
}

CLOSE = 0.75  # difflib's similarity ratio from which a name is offered as "did you mean"
MARGIN = 0.1  # how far behind the closest name another may be and still be offered
MAX_WORDS = 5  # the longest name a person types: "failed deployment recovery time"


def fold(text: str) -> str:
    """The one form every name is compared in: ``Cycle_Time``, ``cycle time``, ``cycletime`` alike."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in text if ch.isalnum())


def _table() -> tuple[dict[str, str], dict[str, str]]:
    metrics: dict[str, str] = {}
    for m in CATALOGUE.values():
        for name in (m.id, m.name, *METRIC_ALIASES.get(m.id, ())):
            metrics.setdefault(fold(name), m.id)
    families: dict[str, str] = {}
    for fid, title in FAMILY_TITLES.items():
        for name in (fid, title, *FAMILY_ALIASES.get(fid, ())):
            families.setdefault(fold(name), fid)
            families.setdefault(fold(name) + "metrics", fid)  # "DORA metrics"
    return metrics, families


METRICS_BY_NAME, FAMILIES_BY_NAME = _table()


def metric_id(name: str) -> str | None:
    """The id of the metric ``name`` means, or None."""
    return METRICS_BY_NAME.get(fold(name))


def family_id(name: str) -> str | None:
    """The family ``name`` means (``dora``, ``Four keys``), or None. A metric's name wins: callers
    try ``metric_id`` first."""
    return FAMILIES_BY_NAME.get(fold(name))


def leading_name(words: list[str]) -> tuple[str, str, int] | None:
    """The longest run of leading ``words`` that names a metric or a family, as ``("metric", id,
    words used)`` or ``("family", id, words used)``, so what follows ("90d chart") is read apart."""
    for n in range(min(len(words), MAX_WORDS), 0, -1):
        joined = " ".join(words[:n])
        found = metric_id(joined)
        if found is not None:
            return "metric", found, n
        found = family_id(joined)
        if found is not None:
            return "family", found, n
    return None


def suggest(words: list[str], extra: tuple[str, ...] = (), limit: int = 3) -> list[str]:
    """The metric ids, families and ``extra`` words (e.g. the commands) closest to what was typed,
    best first.

    Each leading run of up to ``MAX_WORDS`` words is compared, folded, with every name; a name
    suggests the id it stands for, so ``cyletime`` suggests ``cycle-time``, and the start of a name
    (three letters or more) suggests it too: ``cycle`` is half of ``cycle-time``."""
    names = dict(METRICS_BY_NAME)
    for name, fid in FAMILIES_BY_NAME.items():
        names.setdefault(name, fid.replace("_", "-"))  # as typed: `pull-requests`
    for word in extra:
        names.setdefault(fold(word), word)
    scored: dict[str, float] = {}
    for n in range(1, min(len(words), MAX_WORDS) + 1):
        typed = fold(" ".join(words[:n]))[:60]
        if not typed:
            continue
        close = {
            name: difflib.SequenceMatcher(None, typed, name).ratio()
            for name in difflib.get_close_matches(typed, names, n=10, cutoff=CLOSE)
        }
        if len(typed) >= 3:
            close |= {name: max(close.get(name, 0.0), CLOSE) for name in names if name.startswith(typed)}
        for name, ratio in close.items():
            target = names[name]
            scored[target] = max(scored.get(target, 0.0), ratio)
    best = max(scored.values(), default=0.0)
    near = [t for t in scored if scored[t] >= best - MARGIN]  # a clear winner stands alone
    return sorted(near, key=lambda t: (-scored[t], t))[:limit]
