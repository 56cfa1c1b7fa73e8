PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint format bench bench-slack bench-fanout bench-sync clean

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

bench-fanout: $(VENV)/.installed
	$(BIN)/python bench/metrics_bench.py --repeat 1 >/dev/null
	$(BIN)/python bench/fanout_bench.py

bench-sync: $(VENV)/.installed
	$(BIN)/python bench/sync_bench.py

clean:
	rm -rf $(VENV) vsm-demo.db*
