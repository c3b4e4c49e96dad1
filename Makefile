# The two entry points of the README: `make demo` and `make test`. Each creates (or reuses) the
# project's virtual environment in .venv and installs the pinned dependencies into it.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.nnsynth-installed

.PHONY: venv demo test test-quick lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# End to end on the offline demo cohort: real-only vs synthetic arm, report in demo_output/report
demo: venv
	$(BIN)/nnsynth demo --output demo_output

# Full suite, slow end-to-end tests included (what CI runs)
test: venv
	$(BIN)/ruff check .
	$(BIN)/pytest

test-quick: venv
	$(BIN)/pytest -m "not slow"

lint: venv
	$(BIN)/ruff check .

clean:
	rm -rf demo_output .pytest_cache .ruff_cache
