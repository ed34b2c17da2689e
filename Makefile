# The two commands of the README's quick start, and what they need.
#   make demo   set up, then run the agent on config.example.yaml against the local servers
#   make test   set up, then run the whole test suite against real servers it starts itself
# Setting up installs Debian packages (apt-get, as root or with sudo) and a virtualenv in .venv.

VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Real servers and tools the tests start: PostgreSQL 15 with pg_stat_statements (contrib), Prometheus
# (promtool), Alertmanager, and postgres_exporter for the side-by-side benchmark; the three reference exporters
# for the side-by-side compatibility tests (tests/test_compat_community.py, tests/test_exporter_parity.py).
# MariaDB (mariadb-install-db, mariadbd and the mariadb client) for the MySQL/MariaDB collector tests.
# PgBouncer for the connection pooler collector tests.
# pgBadger for the slow log benchmark (bench/slowlog_real.py).
# postgresql-server-dev-15, cmake and libssl-dev to build the vendored TimescaleDB for its tests.
APT_PACKAGES := python3-venv postgresql-15 postgresql-contrib prometheus prometheus-alertmanager \
	prometheus-postgres-exporter prometheus-mysqld-exporter prometheus-redis-exporter procps mariadb-server \
	mariadb-client redis-server percona-toolkit pgbouncer \
	postgresql-15-hypopg pgbackrest pgbadger chromium chromium-driver postgresql-server-dev-15 cmake libssl-dev \
	mariadb-backup barman

.PHONY: setup demo test typecheck docs bench bench-fleet clean

setup: $(VENV)/.installed

.apt-installed: Makefile
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

$(VENV)/.installed: .apt-installed pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

demo: setup
	mkdir -p .state
	$(VENV)/bin/dbwatch run -c config.example.yaml

test: setup typecheck
	$(PY) -m pytest -q

# mypy sees the folders as the installed package does: a tree of links named dbwatch/<folder>.
typecheck: setup
	@rm -rf .typecheck && mkdir -p .typecheck/dbwatch && touch .typecheck/dbwatch/__init__.py
	@for d in model agent collectors rules exporters sqlshape; do ln -s "$(CURDIR)/$$d" .typecheck/dbwatch/$$d; done
	cd .typecheck && ../$(VENV)/bin/mypy --config-file ../pyproject.toml -p dbwatch

# docs/metrics.md is generated from the metric catalog (collectors/catalog_*.py, agent/catalog.py).
docs: setup
	$(PY) -m dbwatch.agent.metricsdoc docs/metrics.md

bench: setup
	$(PY) bench/pg_cycle.py
	$(PY) bench/rules_cycle.py
	$(PY) bench/slowlog.py
	$(PY) bench/slowlog_real.py

# One agent and a fleet (1,000 Redis + 400 PostgreSQL targets) beside redis_exporter and postgres_exporter: ~15 min.
bench-fleet: setup
	$(PY) bench/fleet.py

clean:
	rm -rf $(VENV) .apt-installed .state .pytest_cache .typecheck
