# Centralino: `make demo` and `make test` are the whole quick start (see README.md).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install prepare prompts demo serve test check lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/centralino demo

# Debian packages, PostgreSQL and Redis (scripts/prepare-machine.sh; quick when all is there).
prepare:
	scripts/prepare-machine.sh

# The product's own prompts, spoken by espeak-ng (centralino/prompts.py); up-to-date files
# are kept, so this is cheap after the first run. docker-compose.yml mounts build/sounds.
prompts: $(STAMP)
	$(BIN)/python -m centralino.prompts --out build/sounds

# prepare first: on a fresh machine it installs python3-venv, which $(STAMP) needs.
test: prepare
	$(MAKE) --no-print-directory install
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

check: lint test

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .demo-data build/sounds
