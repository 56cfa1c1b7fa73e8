"""Shared fixtures."""

import pytest
from slackkit import NOW

from metrics.sample import SAMPLE_ORG, build_sample, sample_teams
from metrics.store import open_db
from metrics.teams import seed_from_config


@pytest.fixture(scope="session")
def sample_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("slack") / "sample.db"
    db = open_db(path)
    build_sample(db, end=NOW.date())
    seed_from_config(db, sample_teams(), SAMPLE_ORG)
    db.conn.close()
    return path
