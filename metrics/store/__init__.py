"""The store: raw payloads exactly as fetched, and normalised rows rebuilt from them.

``open_db`` is the one way in: it turns on WAL (one writer, many readers), applies pending schema
migrations and returns a ``sqlite_utils.Database``. ``open_db(path, readonly=True)`` is the way in for
commands that only read: it never creates, converts or writes the file (see its docstring).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import sqlite_utils

from metrics.errors import VsmError
from metrics.store.schema import MIGRATIONS

# The first 16 bytes of every SQLite database file (https://sqlite.org/fileformat.html#magic_header_string).
_MAGIC = b"SQLite format 3\x00"
# Error codes that mean the file's pages are not what SQLite wrote: no retry or other query helps.
_DAMAGED = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


class NotVsmDatabase(VsmError):
    """The file exists but is not a vsm database (empty, not SQLite, another application's): nothing
    vsm does may change it."""


def is_damaged(exc: sqlite3.Error) -> bool:
    """True when ``exc`` says the database file itself is damaged (as opposed to locked, read-only...)."""
    return getattr(exc, "sqlite_errorcode", None) in _DAMAGED or "malformed" in str(exc)


def damaged(path: str | Path, exc: sqlite3.Error) -> VsmError:
    """The one line a user gets for a damaged database, wherever it is found (opening, or mid-query,
    caught at the command boundary): the file, what SQLite said, and what to do about it."""
    return VsmError(
        f"the database {path} is damaged ({exc}): restore it from a backup, or move it aside and "
        "rebuild it (`vsm sync` refetches every source; `vsm demo` rebuilds the sample)"
    )


def _create_private(p: Path) -> None:
    """Create ``p`` empty, readable and writable by its owner only, before SQLite opens it.

    The database holds every team's work items, PR titles and incidents: other local users have no
    business reading it. SQLite gives the ``-wal`` and ``-shm`` files it creates later the database
    file's own permissions, so they are 0600 too. An existing file is left as its owner set it.
    """
    try:
        os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass  # created in between by another process: open it as it is
    except OSError as exc:
        raise VsmError(f"cannot create the database {p}: {exc.strerror}") from exc


def _vsm_state(db: sqlite_utils.Database) -> tuple[bool, int]:
    """(the file holds the vsm schema, its number of pending migrations). Reads only."""
    if not MIGRATIONS.applied(db):
        return False, 0
    return True, len(MIGRATIONS.pending(db))


def open_db(path: str | Path, *, create: bool = True, readonly: bool = False) -> sqlite_utils.Database:
    """Open (or create) the database at ``path`` with the current schema.

    A file that holds tables but not the vsm schema (another application's database) is refused
    rather than given vsm's tables. With ``readonly`` see ``_open_readonly``.
    """
    p = Path(path)
    if readonly:
        return _open_readonly(p)
    if not create and not p.exists():
        raise VsmError(f"no database at {p} (run `vsm demo` or `vsm sync` first)")
    if p.parent and not p.parent.exists():
        raise VsmError(f"cannot create the database {p}: folder {p.parent} does not exist")
    if not p.exists():
        _create_private(p)
    try:
        conn = sqlite3.connect(str(p), timeout=30, check_same_thread=False)
        # No sqlite-utils plugins: the store needs none, and looking for them scans every installed
        # package's metadata, 9 ms of every command.
        db = sqlite_utils.Database(conn, execute_plugins=False)
        db.execute("PRAGMA busy_timeout = 30000")
        is_vsm, _ = _vsm_state(db)
        if not is_vsm and db.execute("select count(*) from sqlite_master").fetchone()[0]:
            conn.close()
            raise NotVsmDatabase(
                f"{p} is a SQLite database of something else, not a vsm one: choose another --db"
            )
        db.enable_wal()
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        MIGRATIONS.apply(db)
    except sqlite3.DatabaseError as exc:
        if is_damaged(exc) and _has_magic(p):
            raise damaged(p, exc) from exc
        raise VsmError(f"cannot open the database {p}: {exc}") from exc
    return db


def _has_magic(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            return f.read(len(_MAGIC)) == _MAGIC
    except OSError:
        return False


def _writable(p: Path) -> bool:
    """Whether this process may write ``p`` and create files beside it (SQLite's -wal, -shm)."""
    return os.access(p, os.W_OK) and os.access(p.resolve().parent, os.W_OK | os.X_OK)


def _readonly_uri(p: Path) -> str:
    """The URI a read-only connection opens ``p`` with.

    ``mode=ro`` reads a WAL database alongside a running writer (``vsm serve``, ``vsm sync``) through
    the shared ``-shm`` index, which SQLite creates when it is missing. Where this process cannot
    write the file or its folder and no writer has left a ``-wal`` or ``-shm`` file, that fails (the
    folder) or leaves a read-only ``-shm`` behind (the file) that later stops the owner's own writes
    with "attempt to write a readonly database". Then the file is opened ``immutable``: no side files
    at all. That is sound because, with no ``-wal``, no connection has the database open in WAL mode,
    and this process could not have written it anyway; the one risk left, another user starting to
    write during the command, is the price of reading a file one may not write.
    """
    uri = p.resolve().as_uri() + "?mode=ro"
    side_files = Path(f"{p}-wal").exists() or Path(f"{p}-shm").exists()
    if not side_files and not _writable(p):
        uri += "&immutable=1"
    return uri


def _open_readonly(p: Path) -> sqlite_utils.Database:
    """Open an existing vsm database for reading only: what every command that only reads uses.

    The file is never created or converted: a missing file, an empty one, a text file or another
    application's SQLite database is a one-line ``VsmError`` and stays byte-for-byte as it was. The
    connection is read-only twice over (``mode=ro`` and ``query_only``), which is also how the flows
    cache knows to compute in memory instead of storing (``metrics.store.flows.store``).

    A vsm database with an older schema than this code is migrated first when this process may write
    it, else refused with a one-line error. Migrating: the code's queries name tables and columns the
    migrations add, so reading without them fails part-way or gives wrong answers, and these are the
    very migrations the next writer (`vsm sync`, `vsm serve`) applies at its first open, each in its
    own transaction; refusing would leave a user who upgraded vsm unable to read the file until a
    writer runs, and the demo database has no writer but `vsm demo`, which rebuilds it. A migration
    changes how the file stores the data, never what it says. Read-only, a migration cannot run, and
    reading the old schema would fail part-way: the error names the fix instead.
    """
    if not p.exists():
        raise VsmError(f"no database at {p} (run `vsm demo` or `vsm sync` first)")
    if not p.is_file():
        raise NotVsmDatabase(f"{p} is not a file, so not a vsm database")
    if p.stat().st_size == 0:
        raise NotVsmDatabase(f"{p} is empty, not a vsm database (run `vsm demo` or `vsm sync` to build one)")
    if not _has_magic(p):
        raise NotVsmDatabase(f"{p} is not a SQLite database, so not a vsm one")
    try:
        db = _connect_readonly(p)
        is_vsm, pending = _vsm_state(db)
        if not is_vsm:
            db.conn.close()
            raise NotVsmDatabase(f"{p} is a SQLite database of something else, not a vsm one")
        if pending:
            db.conn.close()
            if not _writable(p):
                raise VsmError(
                    f"the database {p} was written by an older vsm and is read-only here: run any "
                    "writing command (`vsm sync`) on it once with write access to upgrade it"
                )
            try:
                open_db(p, create=False).conn.close()
            except VsmError as exc:
                raise VsmError(f"cannot upgrade the database {p} to this vsm's schema: {exc}") from exc
            db = _connect_readonly(p)
    except sqlite3.DatabaseError as exc:
        if is_damaged(exc):
            raise damaged(p, exc) from exc
        raise VsmError(f"cannot read the database {p}: {exc}") from exc
    return db


def _connect_readonly(p: Path) -> sqlite_utils.Database:
    conn = sqlite3.connect(_readonly_uri(p), uri=True, timeout=30, check_same_thread=False)
    db = sqlite_utils.Database(conn, execute_plugins=False)
    db.execute("PRAGMA busy_timeout = 30000")
    db.execute("PRAGMA query_only = ON")
    return db


def is_readonly(db: sqlite_utils.Database) -> bool:
    """True for a connection from ``open_db(..., readonly=True)``: nothing may be stored through it."""
    return bool(db.execute("PRAGMA query_only").fetchone()[0])


def memory_db() -> sqlite_utils.Database:
    """A fresh in-memory database with the schema (tests, previews)."""
    db = sqlite_utils.Database(memory=True, execute_plugins=False)
    MIGRATIONS.apply(db)
    return db
