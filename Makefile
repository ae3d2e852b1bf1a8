# Two commands do all set-up: `make run` and `make test` (which lints first: `make lint`).
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test test-public-path lint bench install clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

# The example system runs from a working copy (.demo/, its own git repo) so that
# faults, snapshots and upgrade branches never touch this repository.
run: $(STAMP)
	$(VENV)/bin/grace demo init .demo
	$(VENV)/bin/grace up -c .demo/grace.yaml

# ruff and mypy read their settings from pyproject.toml; both must report zero errors.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

# The e2e suite on nats-py's public JetStream API instead of Grace's fast path
# (what `nats.fast_path: false` gives an operator); .ci/run runs it after `make test`.
test-public-path: $(STAMP)
	GRACE_FAST_PATH=0 $(PY) -m pytest tests/e2e $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/grace bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .demo
