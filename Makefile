# MCP Guardian — every set-up step lives here, so a fresh clone needs only `make test` / `make run`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
NODE_DIR := tests/node

.PHONY: install system-deps run test lint bench eval clean

install: system-deps $(VENV)/.installed $(NODE_DIR)/node_modules/.installed

# Debian packages the tests run for real: Node.js (npm reference peers), redis-server (shared rate limits).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-deps:
	@command -v node >/dev/null && command -v redis-server >/dev/null || { \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends \
	    $$(command -v node >/dev/null || echo nodejs npm) $$(command -v redis-server >/dev/null || echo redis-server); }

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# Real peers for the tests: the npm reference server, the MCP Inspector CLI, the TS SDK.
$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: $(VENV)/.installed
	$(BIN)/guardian serve --host 127.0.0.1 --port $${PORT:-8080} -- $(PY) examples/demo_server.py

test: install
	$(BIN)/ruff check guardian tests examples bench
	$(BIN)/mypy
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check guardian tests examples bench
	$(BIN)/mypy

# Gateway vs direct in the same run: the relay, the security profiles, and each access-control piece.
bench: install
	$(PY) bench/relay_latency.py
	$(PY) bench/profile_latency.py
	$(PY) bench/auth_latency.py
	$(PY) bench/bench_policy.py
	$(PY) bench/bench_ratelimit.py
	$(PY) bench/bench_pins.py
	$(PY) bench/bench_schema.py
	$(PY) bench/bench_metrics.py

# Detector accuracy on the labelled corpora in ../shared/corpus (precision/recall on the untuned split).
eval: install
	$(PY) bench/eval_secrets.py
	$(PY) bench/eval_pii.py
	$(PY) bench/eval_arguments.py
	$(PY) bench/eval_injection.py
	$(PY) bench/eval_poisoning.py
	$(PY) bench/eval_e2e.py

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules .pytest_cache .mypy_cache .ruff_cache
