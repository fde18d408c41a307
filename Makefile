# The two set-up commands of the README:
#   make demo   creates .venv, installs earshot, runs the main job (`earshot demo`)
#   make test   the same set-up plus the test dependencies, then the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# One install for both commands: torch is pinned to 2.13.0 (the CPU wheel).
$(STAMP): pyproject.toml apt-packages.txt | $(BIN)/python
	scripts/install-system-packages.sh apt-packages.txt
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

demo: $(STAMP)
	$(BIN)/earshot demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/features.py
	$(BIN)/python bench/score.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache earshot-demo
