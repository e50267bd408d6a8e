# Two commands on a fresh machine: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
REPO ?= .
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: install run test lint bench bench-context clean

$(BIN)/agentrt: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(BIN)/agentrt

install: $(BIN)/agentrt

run: install
	$(BIN)/agentrt run code-analysis --param repo=$(REPO)

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python -m bench

bench-context: install
	$(BIN)/python -m bench.context_selection $(BENCH_ARGS)

clean:
	-test -x $(BIN)/agentrt && AGENTRT_HOME=$(CURDIR)/.agentrt $(BIN)/agentrt server stop
	rm -rf .agentrt .pytest_cache build *.egg-info

# ==== deployments, the Prefect UI and scale-out (docs/deploy.md, docs/scaling.md) ====
# make server            Prefect server + UI on http://127.0.0.1:4200 (SQLite in .agentrt/server)
# make server DB=postgres  the same on the PostgreSQL of `make postgres`
# make deploy            the work pool and every deployment in prefect.yaml
# make worker            a process worker for the pool (runs scheduled and triggered flow runs)
#                        (both on `make server` if it runs, else on agentrt's local server)
# make postgres          a local PostgreSQL on 127.0.0.1:5433, data in .agentrt/postgres
AGENTRT_DIR := $(CURDIR)/.agentrt
SERVER_HOST ?= 127.0.0.1
SERVER_PORT ?= 4200
SERVER_API := http://$(SERVER_HOST):$(SERVER_PORT)/api
POOL ?= agentrt
PG_DIR := $(AGENTRT_DIR)/postgres
PG_PORT ?= 5433
PG_URL := postgresql+asyncpg://prefect@127.0.0.1:$(PG_PORT)/prefect
ifeq ($(DB),postgres)
SERVER_DB ?= $(PG_URL)
else
SERVER_DB ?= sqlite+aiosqlite:///$(AGENTRT_DIR)/server/prefect.db
endif

.PHONY: server deploy worker postgres postgres-stop

server: install
	mkdir -p $(AGENTRT_DIR)/server
	PREFECT_HOME=$(AGENTRT_DIR)/server \
	PREFECT_SERVER_DATABASE_CONNECTION_URL='$(SERVER_DB)' \
	PREFECT_UI_API_URL=$(SERVER_API) \
	PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE=$${PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE:-50} \
	PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL=$${PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL:-1} \
	$(BIN)/prefect server start --host $(SERVER_HOST) --port $(SERVER_PORT)

# Clients (deploy, worker) use PREFECT_API_URL if set, else the server above if it answers,
# else agentrt's local server (`agentrt server start`: started if needed, stops when idle).
LOCAL_API = $(shell $(BIN)/python -c "import urllib.request as u; \
  u.build_opener(u.ProxyHandler({})).open('$(SERVER_API)/health', timeout=2)" 2>/dev/null \
  && echo $(SERVER_API) || $(BIN)/agentrt server start --api-url)
deploy worker: export PREFECT_API_URL ?= $(LOCAL_API)
deploy worker: export PREFECT_HOME ?= $(AGENTRT_DIR)/prefect

deploy: install
	$(BIN)/prefect work-pool inspect $(POOL) >/dev/null 2>&1 \
	  || $(BIN)/prefect work-pool create $(POOL) --type process
	$(BIN)/prefect --no-prompt deploy --all

worker: install
	$(BIN)/prefect work-pool inspect $(POOL) >/dev/null 2>&1 \
	  || $(BIN)/prefect work-pool create $(POOL) --type process
	AGENTRT_CODE_DIR=$(CURDIR) $(BIN)/prefect worker start --pool $(POOL) $(WORKER_ARGS)

# PostgreSQL refuses to run as root: as root, the cluster belongs to the postgres user.
postgres:
	@set -e; \
	if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq postgresql; \
	  else echo "PostgreSQL is not installed: sudo apt-get install -y postgresql" >&2; exit 1; fi; \
	fi; \
	PGBIN=$$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1); \
	AS=""; mkdir -p $(PG_DIR); \
	if [ "$$(id -u)" = 0 ]; then chown postgres: $(PG_DIR); AS="runuser -u postgres --"; fi; \
	if [ ! -f $(PG_DIR)/PG_VERSION ]; then \
	  $$AS $$PGBIN/initdb -D $(PG_DIR) -U prefect --auth=trust --encoding=UTF8 >/dev/null; fi; \
	if ! $$AS $$PGBIN/pg_ctl -D $(PG_DIR) status >/dev/null 2>&1; then \
	  $$AS $$PGBIN/pg_ctl -D $(PG_DIR) -l $(PG_DIR)/postgres.log -w start \
	    -o "-p $(PG_PORT) -c listen_addresses=127.0.0.1 -k $(PG_DIR) -c max_connections=200"; fi; \
	$$AS $$PGBIN/psql -h 127.0.0.1 -p $(PG_PORT) -U prefect -d postgres -tAc \
	  "SELECT 1 FROM pg_database WHERE datname = 'prefect'" | grep -q 1 \
	  || $$AS $$PGBIN/createdb -h 127.0.0.1 -p $(PG_PORT) -U prefect prefect; \
	echo "PostgreSQL on 127.0.0.1:$(PG_PORT), database prefect: $(PG_URL)"; \
	echo "start the Prefect server on it with: make server DB=postgres"

postgres-stop:
	@PGBIN=$$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1); \
	AS=""; if [ "$$(id -u)" = 0 ]; then AS="runuser -u postgres --"; fi; \
	$$AS $$PGBIN/pg_ctl -D $(PG_DIR) -m fast -w stop
# ==== end of deployments block ====
