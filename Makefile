# models-service: every command a developer or CI needs.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
PYTHON  := $(BIN)/python
STAMP   := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test lint typecheck containers manifests check migrate bench soak up lock clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.lock
	test -x $(PYTHON) || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet --require-hashes -r requirements-dev.lock
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the locked dependencies

run: $(STAMP) ## run api + worker locally (embedded PostgreSQL/Redis when none answer)
	$(PYTHON) -m service dev

test: $(STAMP) ## run the test suite against real PostgreSQL and Redis
	$(PYTHON) -m pytest

lint: $(STAMP) ## ruff
	$(BIN)/ruff check service tests bench
	$(BIN)/ruff format --check service tests bench

typecheck: $(STAMP) ## mypy --strict
	$(BIN)/mypy

containers: $(STAMP) ## lint Dockerfile and docker-compose.yml offline
	$(BIN)/hadolint --no-color --failure-threshold warning Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

manifests: $(STAMP) ## render deploy/kubernetes with kubectl and validate every object offline
	$(PYTHON) -m tests.deploy.validate

check: lint typecheck containers manifests test ## everything CI runs

migrate: $(STAMP) ## apply pending migrations to the configured database
	$(PYTHON) -m service migrate

bench: $(STAMP) ## run the benchmarks (not part of the tests)
	$(PYTHON) -m bench

SOAK_MINUTES ?= 10
soak: $(STAMP) ## chaos soak: mixed load + injected faults, then the invariants (SOAK_MINUTES=2)
	$(PYTHON) -m bench.soak --minutes $(SOAK_MINUTES)

up: ## docker compose up --build (needs Docker and MODELS_HMAC_KEY)
	docker compose up --build

lock: ## re-resolve the lock files from pyproject.toml
	$(PYTHON) -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes \
		--no-header -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes \
		--no-header --extra dev --extra test -o requirements-dev.lock

clean: ## remove the virtualenv, caches and local data
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache .hypothesis
