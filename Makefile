# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Tests are isolated (a database per test, free ports, their own processes): two workers on the
# two cores this suite is sized for. PYTEST_ARGS= (empty) runs them in one process.
PYTEST_ARGS ?= -n 2

.PHONY: install browser test test-fast lint typecheck unit demo bench chaos clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Browser tests drive the system's Chromium (Debian package `chromium`); Playwright's own browser
# download does not work here. Installed when missing and we may (root), else a clear failure.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "browser tests need Chromium: apt-get install chromium (as root)" >&2; exit 1; \
	  fi; }

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy schemas core adapters simulators courier worker

test: lint typecheck browser
	$(BIN)/pytest $(PYTEST_ARGS)

unit: install
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

# The inner loop: everything but the slow end-to-end, chaos and browser tests, no lint.
test-fast: install
	$(BIN)/pytest $(PYTEST_ARGS) -m "not slow" tests/unit tests/integration

demo: install
	$(BIN)/courier demo

# Our figures beside their baselines (pgbench -N, an aiohttp hello-world, pgqueuer), measured in one
# run on PostgreSQL: COURIER_BENCH_PG_URL (default postgresql+asyncpg://postgres@127.0.0.1:5432/test)
# names a server whose user may create databases. About 2 minutes; BENCH_ARGS=--help for the knobs.
bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

# The whole system under faults: `courier work` processes (3) and `courier serve` on a database
# created for the run on COURIER_BENCH_PG_URL (as for bench) and dropped after, both simulators
# with faults and every variation, 30+ SIGKILLs, a database outage; exits 1 on any violated
# invariant. Several minutes (1,000 deliveries); CHAOS_ARGS=--help for the knobs.
chaos: install
	$(BIN)/python -m chaos $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
