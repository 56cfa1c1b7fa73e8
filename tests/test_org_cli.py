"""`vsm northstar` and `vsm experiments` on the sample database: INTERFACE.md's shapes, and the org
figure pooled from every team's. (Shared observations counting once is tests/test_org_rollup.py's:
the sample's teams share none.)"""

import json

from slackkit import NOW

from bot.cli import main


def run(capsys, monkeypatch, *args) -> tuple[int, str, str]:
    monkeypatch.setenv("VSM_NOW", NOW.isoformat())
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_northstar_json_has_interfaces_shape_and_pools_the_teams(sample_db, capsys, monkeypatch):
    code, out, _ = run(capsys, monkeypatch, "northstar", "--db", str(sample_db), "--json")
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"since", "until", "timezone", "metrics"}
    [freq] = [m for m in data["metrics"] if m["metric"] == "deployment-frequency"]
    assert set(freq["org"]) >= {"value", "previous", "sample_size", "series", "signal"}
    rows = freq["teams"]
    assert [r["team"] for r in rows] == sorted(r["team"] for r in rows)  # by name, never ranked
    assert set(rows[0]) >= {"team", "value", "sample_size", "target", "on_target"}
    # The sample's teams deploy different services: the org pools all of theirs, none left out.
    assert freq["org"]["sample_size"] == sum(r["sample_size"] for r in rows)


def test_northstar_text_names_the_window_and_every_team(sample_db, capsys, monkeypatch):
    code, out, _ = run(capsys, monkeypatch, "northstar", "--db", str(sample_db), "--period", "30d")
    assert code == 0
    assert out.startswith("North Star · ") and "all teams pooled, each observation once" in out
    assert "\n  Lead time for changes: p50 " in out and "\n  Deployment frequency: " in out
    for team in ("mobile", "payments", "platform"):
        assert f"    {team}: " in out


def test_bad_northstar_input_is_one_line_and_a_non_zero_exit(sample_db, capsys, monkeypatch):
    code, out, err = run(capsys, monkeypatch, "northstar", "--db", str(sample_db), "--since", "2026-11-01")
    assert code != 0 and out == "" and err.strip().count("\n") == 0 and "--until" in err


def test_experiments_lists_none_yet_as_an_empty_list(sample_db, capsys, monkeypatch):
    code, out, _ = run(
        capsys, monkeypatch, "experiments", "--team", "payments", "--db", str(sample_db), "--json"
    )
    assert code == 0 and json.loads(out) == []
    code, _, err = run(capsys, monkeypatch, "experiments", "--team", "nobody", "--db", str(sample_db))
    assert code != 0 and "nobody" in err
