import sqlite3
import threading

import pytest

from metrics.errors import VsmError
from metrics.store import open_db
from metrics.store.schema import MIGRATIONS


def test_open_db_applies_schema_once_in_wal_mode(tmp_path):
    path = tmp_path / "v.db"
    db = open_db(path)
    assert db.execute("pragma journal_mode").fetchone()[0] == "wal"
    applied = [m.name for m in MIGRATIONS.applied(db)]
    assert applied and applied[0] == "m001_initial"
    db.conn.close()
    again = open_db(path)  # reopening applies nothing new and loses nothing
    assert [m.name for m in MIGRATIONS.applied(again)] == applied
    assert {"raw", "work_items", "transitions", "pull_requests", "deployments", "settings_log"} <= set(
        again.table_names()
    )


def test_read_commands_never_create_a_database(tmp_path):
    with pytest.raises(VsmError, match="no database"):
        open_db(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


def test_not_a_database_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(VsmError, match="cannot open the database"):
        open_db(bad)


def test_readers_see_committed_data_while_a_writer_holds_a_transaction(tmp_path):
    path = tmp_path / "c.db"
    writer = open_db(path)
    writer["incidents"].insert({"source": "pd", "id": "1", "service": "S", "created": 1.0})
    writer.conn.execute("BEGIN IMMEDIATE")
    writer.conn.execute("insert into incidents (source, id, service, created) values ('pd', '2', 'S', 2.0)")
    seen: list[int] = []

    def read():
        conn = sqlite3.connect(str(path), timeout=1)
        seen.append(conn.execute("select count(*) from incidents").fetchone()[0])
        conn.close()

    t = threading.Thread(target=read)
    t.start()
    t.join(timeout=10)
    assert seen == [1]  # the reader was not blocked and saw only committed rows
    writer.conn.commit()
    read()
    assert seen == [1, 2]


def test_team_window_queries_use_indexes(tmp_path):
    db = open_db(tmp_path / "i.db")
    plan = " ".join(
        str(r[-1])
        for r in db.execute(
            "explain query plan select * from work_items where project in ('A') and updated >= 0"
        ).fetchall()
    )
    assert "USING INDEX" in plan
    plan = " ".join(
        str(r[-1])
        for r in db.execute(
            "explain query plan select * from deployments where service in ('x') and finished >= 0"
        ).fetchall()
    )
    assert "USING INDEX" in plan


def test_status_codes_are_stable_per_source_and_survive_a_rollback(tmp_path):
    from metrics.store.statuses import status_code, status_table
    from metrics.store.tx import transaction

    db = open_db(tmp_path / "s.db")
    a = status_code(db, "jira", "3", "In Progress")
    assert status_code(db, "jira", "3", "In Progress") == a
    assert status_code(db, "jira", None, "In Progress") != a  # id and name together name a status
    assert status_code(db, "other", "3", "In Progress") == 1  # codes are per source
    assert status_code(db, "jira", None, None) is None
    with pytest.raises(RuntimeError), transaction(db):
        status_code(db, "jira", "9", "Rolled Back")
        raise RuntimeError("boom")
    # The rolled-back code is not handed out from a stale cache: it is created again, for real.
    code = status_code(db, "jira", "9", "Rolled Back")
    assert status_table(db, ["jira"])["jira"][code] == ("9", "Rolled Back")
