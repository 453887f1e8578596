# `make run`: set up (venv + pinned install) and run the main job. `make test`: set up and run every check.
# Each target alone does all the set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgeclf-installed
PACKAGES := runtime artifact tables train export report bench scale serve cli
SOURCES := $(foreach p,$(PACKAGES),$(wildcard $(p)/*.py))
PYTEST_ARGS ?= -n 2 --durations=8

WEB_STAMP := web/node_modules/.edgeclf-installed

.PHONY: setup run test lint bench clean

$(STAMP): pyproject.toml constraints.txt $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# strict editable mode: a real file tree mypy can read (the default mode is an import hook)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[train,dev,scale,serve,executorch]' --config-settings editable_mode=strict
	# bytecode, as a wheel install has it: pip does not compile an editable tree, and with PYTHONDONTWRITEBYTECODE
	# set every start would compile edgeclf from source again (~40 ms of a one-row predict here); a stale .pyc is
	# never used (Python checks the source's mtime and size)
	$(BIN)/python -c "import compileall, sys, edgeclf; sys.exit(not all(compileall.compile_dir(p, quiet=1) for p in edgeclf.__path__))"
	touch $(STAMP)

# onnxruntime-web (browser page) and onnxruntime-node (examples/node/, the model card's Node snippet), pinned by
# web/package-lock.json; without npm their tests skip and say why. No install script runs: onnxruntime-node's
# only downloads CUDA/TensorRT provider libraries from outside (it fails offline; its CPU binding for every
# platform is in the package), protobufjs's only checks versions for its own CLI.
$(WEB_STAMP): web/package.json web/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  ONNXRUNTIME_NODE_INSTALL=skip npm ci --prefix web --ignore-scripts --no-audit --no-fund && touch $(WEB_STAMP); \
	else echo "npm not found: the browser and Node tests will skip (install Node.js 18+ to run them)"; fi

setup: $(STAMP) $(WEB_STAMP)

run: setup
	$(BIN)/edgeclf run --quiet --device cpu

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy $(foreach p,$(PACKAGES),-p edgeclf.$(p))
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/edgeclf bench artifacts/circles

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache web/node_modules
