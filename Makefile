# The two commands a newcomer needs: `make demo` and `make test`.
# Both set up a virtual environment in .venv on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test reliability benchmark setup clean

$(BIN)/glpibot: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

setup: $(BIN)/glpibot

demo: setup
	$(BIN)/python -m glpibot.testing.demo

test: setup
	$(BIN)/python -m pytest -q

reliability: setup
	$(BIN)/python -m pytest -q -m reliability

benchmark: setup
	$(BIN)/python benchmarks/poll_pass.py

clean:
	rm -rf $(VENV) build *.egg-info
