import pytest

from metrics.config import load_config, parse_target
from metrics.errors import VsmError

GOOD = """
[database]
path = "x.db"

[[source]]
name = "jira"
kind = "jira"
url = "https://acme.atlassian.net"
token_env = "JIRA_TOKEN"
jql = "project in (PAY)"

[[team]]
name = "payments"
channel = "C0123456789"
timezone = "Europe/London"
jira_projects = ["PAY"]
repos = ["acme/payments"]
waiting_stages = ["review"]
targets = { "lead-time" = "5d" }
digest = { day = "tue", time = "10:30" }

[team.workflow]
backlog = ["Backlog", "To Do"]
committed = ["Selected"]
in_progress = ["In Progress"]
review = ["In Review"]
done = ["Done", "Closed"]

[org]
north_star = []
"""


def write(tmp_path, text):
    p = tmp_path / "vsm.toml"
    p.write_text(text)
    return str(p)


def test_good_config(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.db_path == "x.db"
    assert cfg.sources[0]["history_days"] == 365  # the default
    team = cfg.teams[0]
    assert [(s["stage"], s["kind"]) for s in team.workflow] == [
        ("backlog", "backlog"),
        ("committed", "committed"),
        ("in_progress", "active"),
        ("review", "waiting"),
        ("done", "done"),
    ]
    assert team.targets == {"lead-time": 120.0}  # 5 days in hours
    assert team.digest == {"day": "tue", "time": "10:30", "period_days": 28}


def test_missing_default_file_is_fine_but_named_file_is_not(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VSM_CONFIG", raising=False)
    assert load_config(None).teams == []
    with pytest.raises(VsmError, match="not found"):
        load_config(str(tmp_path / "nope.toml"))
    monkeypatch.setenv("VSM_CONFIG", str(tmp_path / "gone.toml"))
    with pytest.raises(VsmError, match="gone.toml not found"):
        load_config(None)


def test_invalid_toml_names_the_line(tmp_path):
    with pytest.raises(VsmError, match=r"invalid TOML.*line 3"):
        load_config(write(tmp_path, '[database]\npath = "x.db"\nthis is not toml\n'))


@pytest.mark.parametrize(
    "old,new,message,marker",
    [
        ('timezone = "Europe/London"', 'timezone = "Mars/Base"', "time zone", "timezone ="),
        ('kind = "jira"', 'kind = "svn"', "kind 'svn'", 'kind = "svn"'),
        ('day = "tue"', 'day = "someday"', "day 'someday'", "digest ="),
        ('"lead-time" = "5d"', '"lead-time" = "soon"', "target lead-time", "targets ="),
        ('"lead-time" = "5d"', '"no-such-metric" = 3', "unknown metric 'no-such-metric'", "targets ="),
        ('channel = "C0123456789"', 'channel = "C0123456789"\nbogus = 1', "unknown key 'bogus'", "bogus ="),
        ('in_progress = ["In Progress"]', "in_progress = 3", "list of status", "[team.workflow]"),
        ("north_star = []", 'north_star = ["nope"]', "unknown metric 'nope'", "north_star ="),
        (
            'waiting_stages = ["review"]',
            'waiting_stages = ["review"]\nmetrics = ["throughput", "wip", "throughput"]',
            "throughput chosen twice",
            "metrics =",
        ),
    ],
)
def test_invalid_values_name_key_and_line(tmp_path, old, new, message, marker):
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    line = next(n for n, ln in enumerate(text.splitlines(), start=1) if ln.strip().startswith(marker))
    with pytest.raises(VsmError) as exc:
        load_config(write(tmp_path, text))
    assert message in str(exc.value)
    assert str(exc.value).split(": ")[0].endswith(f"vsm.toml, line {line}")


def test_secrets_are_refused_in_the_file(tmp_path):
    text = GOOD.replace('token_env = "JIRA_TOKEN"', 'token = "s3cret"')
    with pytest.raises(VsmError) as exc:
        load_config(write(tmp_path, text))
    assert "environment variable" in str(exc.value)
    assert "s3cret" not in str(exc.value)


def test_unreadable_file(tmp_path):
    p = tmp_path / "vsm.toml"
    p.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(VsmError, match="cannot read"):
        load_config(str(p))


def test_parse_target():
    assert parse_target("36h") == 36
    assert parse_target("2w") == 336
    assert parse_target(8) == 8.0
    assert parse_target("15%") == 15.0
    for bad in ("soon", -1, True):
        with pytest.raises(VsmError):
            parse_target(bad)
