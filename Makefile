# Standby — the two commands of the README, plus the developer's extras.
#   make demo    set up .venv and run the scripted outage demo (no provider key needed)
#   make test    set up .venv and run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup demo serve test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/standby demo

test: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff format --check standby tests bench
	$(BIN)/ruff check standby tests bench
	$(BIN)/mypy standby

bench: setup
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
