# `make demo` trains the bundled demo spec; `make test` runs the whole suite.
# Both create the environment (.venv) on first use, with every backend installed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test explore bench lint clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dls check specs/demo.dls
	$(BIN)/dls run specs/demo.dls --out runs/demo

test: $(STAMP)
	@command -v dot >/dev/null || { echo "make test needs Graphviz's dot program (dls graph): apt install graphviz, or brew install graphviz" >&2; exit 1; }
	$(BIN)/pytest -n 2 -q

# The property tests with fresh random examples, several hundred each (`make test` runs a fixed set):
# slow (an hour or more on 2 cores); run it before a release or after changing the strategies.
explore: $(STAMP)
	HYPOTHESIS_PROFILE=deep $(BIN)/pytest -n 2 -q tests/test_strategies.py tests/test_roundtrip.py \
		tests/test_equivalence.py tests/test_training_properties.py

bench: $(STAMP)
	$(BIN)/python bench/bench.py

lint: $(STAMP)
	$(BIN)/ruff check dlspec backends tests bench

clean:
	rm -rf $(VENV) runs build dist *.egg-info
