# `make run`: set up (venv + pinned install) and run the main job. `make test`: set up and run every check.
# Each target alone does all the set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgeclf-installed
SOURCES := $(wildcard train/*.py export/*.py runtime/*.py cli/*.py)
PYTEST_ARGS ?= -n 2

.PHONY: setup run test lint bench clean

$(STAMP): pyproject.toml constraints.txt $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# strict editable mode: a real file tree mypy can read (the default mode is an import hook)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[train,dev]' --config-settings editable_mode=strict
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/edgeclf run --quiet

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy -p edgeclf.runtime

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/edgeclf bench artifacts/circles

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
