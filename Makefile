# ITFF: `make demo` runs the main job, `make test` runs every check CI runs (.ci/run calls it).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test sync-check nbtest lint pytest bench clean

install: $(STAMP)

# Reinstall only when the dependency list changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: install
	$(BIN)/itff-demo

# The nbdev CI contract: cleaning and exporting the committed notebooks must change nothing.
sync-check: install
	$(BIN)/nbdev-clean
	$(BIN)/nbdev-export
	@if [ -n "$$(git status --porcelain -- nbs itff)" ]; then \
	  echo "nbs/ and itff/ are not clean or not in sync: run nbdev-export and nbdev-clean, then commit:"; \
	  git status --short -- nbs itff; git --no-pager diff --stat -- nbs itff; exit 1; fi

nbtest: install
	$(BIN)/nbdev-test

lint: install
	$(BIN)/ruff check itff tests benchmarks

pytest: install
	$(BIN)/python -m pytest tests

test: sync-check nbtest lint pytest

# Speed and memory benchmarks (ratios measured in one run; JSON in benchmarks/results/). The API one drives wrk.
bench: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python benchmarks/windows.py
	$(BIN)/python benchmarks/predictor_latency.py
	$(BIN)/python benchmarks/api_latency.py --model-type lstm
	$(BIN)/python benchmarks/api_latency.py --model-type transformer

clean:
	rm -rf $(VENV) .pytest_cache _docs
