"""Write transactions: the one way every writer groups its writes.

``BEGIN IMMEDIATE`` takes SQLite's write lock before the first read. A deferred ``BEGIN`` that reads
first (``save_raw`` compares before it writes; sqlite-utils reads a table's schema before an upsert)
holds a read snapshot, and in WAL mode a snapshot that must become a writer is never given the busy
timeout: if another connection wrote in between (a command storing replayed flows, say) the write
fails at once with "database is locked". Taking the lock first makes a writer wait its turn instead.
Readers that may write opportunistically (``metrics.store.flows``) keep the deferred form on purpose.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlite_utils

from metrics.store.statuses import forget_codes


@contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[None]:
    """Commit on success, roll back on error; nested, a savepoint inside the open transaction.

    Not ``with db.conn:``: sqlite-utils' ``execute`` commits every write made outside an explicit
    ``BEGIN``, so that block would neither group writes nor roll them back.
    """
    try:
        if db.conn.in_transaction:
            with db.atomic():  # a savepoint
                yield
        else:
            db.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                db.rollback()
                raise
            try:
                db.conn.execute("COMMIT")
            except BaseException:
                db.rollback()
                raise
    except BaseException:
        forget_codes(db)  # codes handed out inside the rolled-back transaction no longer exist
        raise
