# ITFF: `make demo` runs the main job, `make test` runs every check CI runs (.ci/run calls it).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system-deps demo reports dashboard lab test sync-check nbtest lint pytest bench bench-smoke clean

install: $(STAMP)

# Reinstall only when the dependency list changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: install
	$(BIN)/itff-demo

# Evaluation reports (papermill) of the demo bundles: reports/*.html, reports/index.html, reports/summary.csv.
reports: install
	$(BIN)/itff-reports --symbols BTCUSDT --timeframes 1h --labels direction,level_up --models lstm,gbm,blend --workers 2

# The Voila dashboard on http://127.0.0.1:8050 (basic auth when ITFF_DASH_USERNAME and ITFF_DASH_PASSWORD are set).
dashboard: install
	$(BIN)/itff-dashboard --notebook dashboard/app.ipynb --port 8050

# JupyterLab on the notebooks, for researchers.
lab: install
	$(BIN)/jupyter lab nbs

# Debian packages the tests drive: chromium (the dashboard's browser test), redis-server (shared rate limits across
# workers), pandoc (renders the Quarto site's pages with --citeproc).
SYSTEM_PACKAGES := chromium redis-server pandoc
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

# The nbdev CI contract: cleaning and exporting the committed notebooks must change nothing.
sync-check: install
	$(BIN)/nbdev-clean
	$(BIN)/nbdev-clean --fname itff/templates
	$(BIN)/nbdev-clean --fname dashboard
	$(BIN)/nbdev-export
	@if [ -n "$$(git status --porcelain -- nbs itff dashboard)" ]; then \
	  echo "nbs/, itff/ or dashboard/ are not clean or not in sync: run nbdev-export and nbdev-clean, then commit:"; \
	  git status --short -- nbs itff dashboard; git --no-pager diff --stat -- nbs itff dashboard; exit 1; fi

nbtest: install
	$(BIN)/nbdev-test

lint: install
	$(BIN)/ruff check itff tests benchmarks
	$(BIN)/actionlint

pytest: install
	$(BIN)/python -m pytest tests --durations=25

test: system-deps sync-check nbtest lint pytest bench-smoke

# Speed and memory benchmarks (ratios measured in one run; JSON in benchmarks/results/). The API one drives wrk.
bench: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python benchmarks/windows.py
	$(BIN)/python benchmarks/predictor_latency.py
	$(BIN)/python benchmarks/api_latency.py --model lstm
	$(BIN)/python benchmarks/api_latency.py --model transformer
	$(BIN)/python benchmarks/api_batching.py
	$(BIN)/python benchmarks/cluster_speedup.py
	$(BIN)/python benchmarks/prediction_log.py
	$(BIN)/python benchmarks/paired_test_size.py
	$(BIN)/python benchmarks/calibration_alarm.py
	$(BIN)/python benchmarks/alarm_volatility_feed.py --bundle models/training/BTCUSDT_1h_level_up_lstm
	$(BIN)/python benchmarks/risk_control.py
	$(BIN)/python benchmarks/overfit_size.py

# Every benchmark in its --smoke mode (tiny sizes, seconds each, JSON in a temp folder), so that a benchmark that stops
# working fails `make test`. The API one drives wrk when it is installed, else httpx.
bench-smoke: install
	$(BIN)/python benchmarks/windows.py --smoke
	$(BIN)/python benchmarks/prediction_log.py --smoke
	$(BIN)/python benchmarks/predictor_latency.py --smoke
	$(BIN)/python benchmarks/api_latency.py --smoke
	$(BIN)/python benchmarks/api_batching.py --smoke
	$(BIN)/python benchmarks/cluster_speedup.py --smoke
	$(BIN)/python benchmarks/paired_test_size.py --smoke
	$(BIN)/python benchmarks/calibration_alarm.py --smoke
	$(BIN)/python benchmarks/alarm_volatility_feed.py --smoke
	$(BIN)/python benchmarks/risk_control.py --smoke
	$(BIN)/python benchmarks/overfit_size.py --smoke

clean:
	rm -rf $(VENV) .pytest_cache _docs
