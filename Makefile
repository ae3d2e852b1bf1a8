# Two commands do all set-up: `make run` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test bench install clean

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

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/grace bench

clean:
	rm -rf $(VENV) .pytest_cache .demo
