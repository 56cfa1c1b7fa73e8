"""vsm-bot's data core: sources -> store -> workflow mapping -> metric catalogue.

Nothing in this package imports ``bot``: the Slack app and the command line sit on top of it.
"""

import sys


def _load_sqlite_utils() -> None:
    """Import sqlite-utils without the numpy and pandas it would import for itself.

    When they are installed, sqlite-utils imports both as it loads, only to map their scalar types to
    column types for ``insert``. The store never inserts a numpy or pandas value, and numpy alone
    cost 45 ms of every `vsm` command's start-up (measured: `import sqlite_utils` 97 ms, 66 ms
    without numpy), which is a third of a command's budget. A name set to None in ``sys.modules``
    raises ImportError when imported, which sqlite-utils takes for "not installed"; the names are
    released at once, so numpy still loads where a computation uses it. Once numpy is loaded,
    sqlite-utils gets it as usual.
    """
    hidden = [name for name in ("numpy", "pandas") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None
    try:
        import sqlite_utils  # noqa: F401
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


# Here, because every module of the store, the teams and the catalogue imports sqlite-utils.
if "sqlite_utils" not in sys.modules:
    _load_sqlite_utils()
