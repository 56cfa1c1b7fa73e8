PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint format bench bench-slack bench-http bench-fanout bench-sync bench-cli bench-org bench-org-digest bench-jam clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/vsm demo

test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

format: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.installed
	$(BIN)/python bench/metrics_bench.py

bench-slack: $(VENV)/.installed
	$(BIN)/python bench/metrics_bench.py --repeat 1 >/dev/null
	$(BIN)/python bench/slack_bench.py

bench-http: $(VENV)/.installed
	$(BIN)/python bench/http_bench.py

bench-fanout: $(VENV)/.installed
	$(BIN)/python bench/metrics_bench.py --repeat 1 >/dev/null
	$(BIN)/python bench/fanout_bench.py

bench-sync: $(VENV)/.installed
	$(BIN)/python bench/sync_bench.py

bench-cli: $(VENV)/.installed
	$(BIN)/python bench/cli_bench.py

bench-org: $(VENV)/.installed
	$(BIN)/python bench/metrics_bench.py --repeat 1 >/dev/null
	$(BIN)/python bench/org_rollup_bench.py

bench-org-digest: $(VENV)/.installed
	$(BIN)/python bench/metrics_bench.py --repeat 1 >/dev/null
	$(BIN)/python bench/org_digest_bench.py

# jira-agile-metrics, for bench-jam only: a benchmark tool in a venv of its own, never a dependency of
# vsm-bot. Its 0.24 (2019) needs pandas 1.x and numpy < 1.24; these pins install and run on Python 3.11.
JAM_VENV := bench/.jam-venv
JAM_PINS := jira-agile-metrics==0.24 numpy==1.23.5 pandas==1.5.3 scipy==1.10.1 matplotlib==3.7.5 \
	seaborn==0.12.2 statsmodels==0.13.5 jira==3.5.2 flask==2.2.5 werkzeug==2.2.3

$(JAM_VENV)/bin/jira-agile-metrics:
	$(PY) -m venv $(JAM_VENV)
	$(JAM_VENV)/bin/python -m pip install -q $(JAM_PINS)

bench-jam: $(VENV)/.installed $(JAM_VENV)/bin/jira-agile-metrics
	$(BIN)/python bench/jam_compare.py

clean:
	rm -rf $(VENV) vsm-demo.db*
