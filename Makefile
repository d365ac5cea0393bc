# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create .venv (python3 -m venv) and install the project (pip install -e .[dev]) when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.terracarbon-installed

.PHONY: demo test lint install clean bench docs

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/terracarbon demo --out demo-output

test: $(STAMP)
	sh scripts/install-browser.sh
	$(BIN)/pytest -q

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf demo-output .pytest_cache site
