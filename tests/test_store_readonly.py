"""Commands that only read never change a file (issue 10 item 11), run as a user runs them.

`vsm teams`, `vsm metric` and `vsm digest` open an existing vsm database read-only: a file that is not
one is refused in one line and left byte-for-byte as it was, a read-only file or folder is read, and
new database files are their owner's alone. Permissions are real: as root (who writes any file) the
command runs with the capabilities that bypass file permissions dropped, so 0444 means what it says.
"""

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import sqlite_utils
from slackkit import NOW

from metrics.errors import VsmError
from metrics.store import flows, is_readonly, open_db
from metrics.store.schema import MIGRATIONS

VSM_NOW = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
READ_COMMANDS = [
    ["teams"],
    ["metric", "cycle-time", "--team", "payments", "--period", "90d"],
    ["digest", "--team", "payments"],
]
_CAPS = "-dac_override,-dac_read_search"


def unprivileged() -> list[str]:
    """The prefix that runs a command without root's power over file permissions (none for others)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: root writes read-only files, nothing to test")
    return [setpriv, f"--inh-caps={_CAPS}", f"--bounding-set={_CAPS}"]


def vsm(
    *args: str, cwd: Path, prefix: list[str] | None = None, umask: int = -1
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "VSM_CONFIG"}
    env["VSM_NOW"] = VSM_NOW
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "bot.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        umask=umask,
    )


def snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file in ``folder``: content, modification time (ns) and mode."""
    return {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns, stat.S_IMODE(p.stat().st_mode))
        for p in sorted(folder.iterdir())
    }


def one_line_error(run: subprocess.CompletedProcess, *fragments: str) -> None:
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    for fragment in fragments:
        assert fragment in run.stderr


def foreign_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("create table notes (body text)")
    conn.execute("insert into notes values ('another application')")
    conn.commit()
    conn.close()


@pytest.fixture
def copy(sample_db, tmp_path) -> Path:
    """A private copy of the sample database, alone in its folder."""
    folder = tmp_path / "db"
    folder.mkdir()
    path = folder / "vsm.db"
    src = sqlite3.connect(sample_db)
    dst = sqlite3.connect(path)
    src.backup(dst)  # a consistent copy, whatever the session's other tests left in the WAL
    src.close()
    dst.close()
    return path


@pytest.fixture
def readonly(copy):
    """Make files and folders read-only, and give them back writable afterwards (for tmp_path's
    clean-up); checks the read-only state is real for the commands run under ``unprivileged()``."""
    made: list[Path] = []

    def make(*paths: Path) -> None:
        for p in paths:
            p.chmod(0o555 if p.is_dir() else 0o444)
            made.append(p)
        target = paths[0] if not paths[0].is_dir() else paths[0] / "probe"
        probe = subprocess.run(
            [*unprivileged(), sys.executable, "-c", f"open({str(target)!r}, 'ab')"], capture_output=True
        )
        assert probe.returncode != 0, "the read-only set-up is not read-only for the command"

    yield make
    for p in made:
        p.chmod(0o755 if p.is_dir() else 0o644)


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize(
    "kind,message",
    [
        ("empty", "is empty, not a vsm database"),
        ("foreign", "is a SQLite database of something else, not a vsm one"),
        ("text", "is not a SQLite database"),
    ],
)
def test_a_file_that_is_not_a_vsm_database_is_refused_and_left_as_it_was(tmp_path, command, kind, message):
    path = tmp_path / "other.db"
    if kind == "empty":
        path.touch()
    elif kind == "foreign":
        foreign_sqlite(path)
    else:
        path.write_text("name,team\nana,payments\n")
    before = snapshot(tmp_path)
    run = vsm(*command, "--db", str(path), cwd=tmp_path)
    one_line_error(run, str(path), message)
    assert snapshot(tmp_path) == before  # byte-for-byte, same mtime, and no -wal, -shm or journal


@pytest.mark.parametrize("kind", ["foreign", "text"])
def test_demo_does_not_replace_a_file_that_is_not_a_vsm_database(tmp_path, kind):
    """`vsm demo` deletes the database it rebuilds: a mistyped --db must not cost another file."""
    path = tmp_path / "notes.db"
    foreign_sqlite(path) if kind == "foreign" else path.write_text("minutes of the meeting\n")
    before = snapshot(tmp_path)
    run = vsm("demo", "--db", str(path), cwd=tmp_path)
    one_line_error(run, str(path), "not a vsm one", "`vsm demo` replaces only a vsm database")
    assert snapshot(tmp_path) == before


def test_writers_refuse_another_applications_database(tmp_path):
    path = tmp_path / "app.db"
    foreign_sqlite(path)
    before = snapshot(tmp_path)
    with pytest.raises(VsmError, match="of something else, not a vsm one"):
        open_db(path)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_read_only_database_reads_like_a_writable_one(copy, readonly, tmp_path, command, what):
    """A 0444 copy, or a 0444 copy in a 0555 folder (where SQLite cannot create the -shm index a WAL
    database needs): the same output as from a writable copy, and nothing left beside the file."""
    writable = tmp_path / "writable.db"
    shutil.copyfile(copy, writable)
    expected = vsm(*command, "--json", "--db", str(writable), cwd=tmp_path)
    assert expected.returncode == 0, expected.stderr
    readonly(copy, copy.parent) if what == "folder" else readonly(copy)
    before = snapshot(copy.parent)
    run = vsm(*command, "--json", "--db", str(copy), cwd=tmp_path, prefix=unprivileged())
    assert run.returncode == 0, run.stderr
    assert run.stdout == expected.stdout
    assert json.loads(run.stdout)
    assert snapshot(copy.parent) == before


def test_a_read_only_reader_sees_what_a_running_writer_committed(copy, readonly, tmp_path):
    """With a writer's -wal beside the file (`vsm serve` running), the reader shares its index: the
    committed change still in the WAL is read, not the stale main file."""
    writer = open_db(copy)
    writer.execute("PRAGMA wal_autocheckpoint = 0")  # the change stays in the WAL
    with writer.conn:
        writer.execute(
            "update teams set timezone = 'Asia/Tokyo', settings = json_set(settings, '$.timezone', "
            "'Asia/Tokyo') where name = 'payments'"
        )
    try:
        readonly(copy)
        run = vsm("teams", "--json", "--db", str(copy), cwd=tmp_path, prefix=unprivileged())
        assert run.returncode == 0, run.stderr
        assert {t["name"]: t["timezone"] for t in json.loads(run.stdout)}["payments"] == "Asia/Tokyo"
    finally:
        writer.conn.close()


def old_vsm_database(path: Path) -> None:
    """A vsm database as an older vsm left it: every migration but the last."""
    db = sqlite_utils.Database(path)
    MIGRATIONS.apply(db, stop_before=MIGRATIONS.pending(db)[-1].name)
    db.conn.close()


def test_an_older_schema_is_upgraded_when_writable(tmp_path):
    path = tmp_path / "old.db"
    old_vsm_database(path)
    run = vsm("teams", "--db", str(path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    db = sqlite_utils.Database(path)
    assert MIGRATIONS.pending(db) == []


def test_an_older_schema_read_only_is_a_clear_error_and_untouched(tmp_path, readonly):
    folder = tmp_path / "old"
    folder.mkdir()
    path = folder / "old.db"
    old_vsm_database(path)
    readonly(path)
    before = snapshot(folder)
    run = vsm("teams", "--db", str(path), cwd=tmp_path, prefix=unprivileged())
    one_line_error(run, str(path), "written by an older vsm", "read-only here")
    assert snapshot(folder) == before


def test_the_flows_cache_is_not_written_through_a_read_only_connection(copy):
    from metrics.catalogue import compute
    from metrics.teams import get_team
    from metrics.timeutil import parse_period

    with open_db(copy).conn as conn:
        conn.execute("delete from flows")
    db = open_db(copy, readonly=True)
    assert is_readonly(db)
    team = get_team(db, "payments")
    window = parse_period("90d", team.tz, NOW)
    result = compute(db, team, "cycle-time", window, NOW)
    assert result.sample_size > 0

    def unread():
        raise AssertionError("flows.store read the flows of a read-only connection")
        yield

    with db.atomic():  # not even tried: the flows are not encoded, no write is attempted
        assert flows.store(db, team.flow, unread()) is False
    db.conn.close()
    counted = sqlite3.connect(copy)
    assert counted.execute("select count(*) from flows").fetchone()[0] == 0
    counted.close()
    writable = open_db(copy)  # the same computation through a writable connection stores them
    assert not is_readonly(writable)
    assert compute(writable, team, "cycle-time", window, NOW).to_json() == result.to_json()
    assert writable.execute("select count(*) from flows").fetchone()[0] > 0
    writable.conn.close()


def test_new_database_files_are_their_owners_only(tmp_path):
    """`vsm demo` (as `vsm sync` and `vsm serve`, through open_db) under the usual umask 022."""
    run = vsm("demo", "--db", "demo.db", cwd=tmp_path, umask=0o022)
    assert run.returncode == 0, run.stderr
    assert stat.S_IMODE((tmp_path / "demo.db").stat().st_mode) == 0o600
    old = os.umask(0o022)
    try:
        db = open_db(tmp_path / "live.db")  # kept open: its -wal and -shm exist
    finally:
        os.umask(old)
    with db.conn:
        db.execute("insert into org (key, value) values ('north_star', '[]')")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.glob("live.db*")}
    db.conn.close()
    assert modes == {"live.db": 0o600, "live.db-wal": 0o600, "live.db-shm": 0o600}
