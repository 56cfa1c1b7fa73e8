"""Issue 10 item 8, the CLI's part: a window past what can be computed (year 1, year 9999, decades) is
one line on stderr and exit 2, never a traceback, and the database is not touched."""

import pytest

from bot.cli import main

NOW = "2026-11-25T15:00:00Z"


@pytest.fixture
def db(sample_db, tmp_path, monkeypatch):
    path = tmp_path / "windows.db"
    path.write_bytes(sample_db.read_bytes())
    monkeypatch.chdir(tmp_path)  # no ./vsm.toml: the default config
    monkeypatch.delenv("VSM_CONFIG", raising=False)
    monkeypatch.setenv("VSM_NOW", NOW)
    return path


@pytest.mark.parametrize(
    "window,said",
    [
        (["--period", "9999Q4"], "period '9999Q4' is out of range: quarters from 1970 to 2199"),
        (["--period", "0000q1"], "period '0000q1' is out of range"),
        (["--period", "٣٠d"], "malformed period"),  # Arabic-Indic digits: ASCII only
        (["--since", "0001-01-01", "--until", "2026-01-01"], "is out of range: dates from 1970-01-01"),
        (["--since", "2026-01-01", "--until", "9999-12-31"], "to 2199-12-31"),
        (["--since", "1969-12-31", "--until", "1970-02-01"], "is out of range"),
        (["--since", "2000-01-01", "--until", "2026-01-01"], "is too long: at most 3660 days"),
    ],
)
def test_a_window_out_of_range_is_one_line_and_exit_2(db, capsys, window, said):
    before = db.read_bytes()
    code = main(["metric", "cycle-time", "--team", "payments", "--db", str(db), *window])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.startswith("vsm: ") and said in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert db.read_bytes() == before


def test_the_edges_of_the_range_are_computed(db, capsys):
    """The first and last allowed days are a window like any other (no data there, no error)."""
    for window in (["--since", "1970-01-01", "--until", "1970-02-01"], ["--period", "2199Q4"]):
        code = main(["metric", "cycle-time", "--team", "payments", "--db", str(db), *window])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert out.startswith("Cycle time · payments")


def test_a_clock_pinned_past_the_range_is_one_line(db, capsys, monkeypatch):
    monkeypatch.setenv("VSM_NOW", "9999-12-31T23:59:00Z")
    code = main(["metric", "cycle-time", "--team", "payments", "--db", str(db)])
    _, err = capsys.readouterr()
    assert code == 2 and "out of range" in err and len(err.strip().splitlines()) == 1
