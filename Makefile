# The two set-up commands of the README:
#   make demo   creates .venv, installs earshot, runs the main job (`earshot demo`)
#   make test   the same set-up plus the test dependencies, then the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench clean edge-test lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# One install for both commands, from the lock file (exact versions and hashes of the whole
# development environment; torch is the 2.13.0 CPU wheel), then earshot itself without deps.
$(STAMP): pyproject.toml requirements-dev.lock apt-packages.txt | $(BIN)/python
	scripts/install-system-packages.sh apt-packages.txt
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

# Refresh requirements-dev.lock from pyproject.toml's dev extra (uv in a throw-away venv; the
# torch CPU wheel is found through pip's find-links, /opt/wheels by default).
LOCK_FIND_LINKS ?= /opt/wheels
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q uv
	.venv-lock/bin/uv pip compile -q pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
	    --python-platform x86_64-manylinux_2_28 --find-links $(LOCK_FIND_LINKS) \
	    --custom-compile-command "make lock" -o requirements-dev.lock
	rm -rf .venv-lock

demo: $(STAMP)
	$(BIN)/earshot demo

test: $(STAMP)
	$(BIN)/python -m pytest -q
	$(MAKE) edge-test

# The edge install: only the core dependencies (no torch) in .venv-edge; it must score a model
# trained by the main venv and give the same verdicts (scripts/edge_check.py).
EDGE := .venv-edge
$(EDGE)/.installed: pyproject.toml | $(STAMP)
	rm -rf $(EDGE)
	$(PYTHON) -m venv $(EDGE)
	$(BIN)/python scripts/edge_check.py --core-deps > $(EDGE)/core-requirements.txt
	$(EDGE)/bin/python -m pip install -q -r $(EDGE)/core-requirements.txt
	$(EDGE)/bin/python -m pip install -q --no-deps -e .
	touch $@

edge-test: $(STAMP) $(EDGE)/.installed
	rm -rf $(EDGE)/check
	$(BIN)/python scripts/edge_check.py --make $(EDGE)/check
	$(EDGE)/bin/python scripts/edge_check.py --check $(EDGE)/check

bench: $(STAMP)
	$(BIN)/python bench/features.py
	$(BIN)/python bench/score.py

clean:
	rm -rf $(VENV) .venv-edge build dist src/*.egg-info .pytest_cache earshot-demo
