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

# `make bench`: re-measures the figures of benchmarks/RESULTS.md (issue 16): the tiled engine against its bare
# forward per backend and against TorchGeo's loop at 2,048² and 10,000² (GPU rows where CUDA is present), then NAICS
# classification throughput. Long (10,000²: tens of minutes on 2 cores); BENCH_10K=0 skips that size.
BENCH_OUT ?= bench-output
BENCH_10K ?= 1
bench: $(STAMP)
	mkdir -p $(BENCH_OUT)
	$(BIN)/python benchmarks/bench_biomass_predict.py --size 2048 --repeats 2 --out $(BENCH_OUT)/biomass --json $(BENCH_OUT)/biomass-2048.json > $(BENCH_OUT)/biomass-2048.md
	cat $(BENCH_OUT)/biomass-2048.md
	if [ "$(BENCH_10K)" = 1 ]; then $(BIN)/python benchmarks/bench_biomass_predict.py --size 10000 --backends eager channels-last onnx onnx-int8 --skip-torchgeo --bare-max-batches 30 --out $(BENCH_OUT)/biomass --json $(BENCH_OUT)/biomass-10000.json > $(BENCH_OUT)/biomass-10000.md && cat $(BENCH_OUT)/biomass-10000.md; fi
	$(BIN)/python benchmarks/bench_emissions_throughput.py --json $(BENCH_OUT)/emissions-throughput.json --md $(BENCH_OUT)/emissions-throughput.md
	@echo "figures written to $(BENCH_OUT)/: biomass-2048.md, biomass-10000.md, emissions-throughput.md (+ .json); record them in benchmarks/RESULTS.md with the load average"

clean:
	rm -rf demo-output .pytest_cache site
