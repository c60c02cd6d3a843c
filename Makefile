# Two commands do all set-up on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test venv test-venv bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

venv: $(BIN)/python
	$(BIN)/pip install --quiet .

test-venv: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

demo: venv
	$(BIN)/pca-batch apply manifests/demo.yaml

test: test-venv
	$(BIN)/python -m ruff check pca_batch tests bench
	$(BIN)/python -m mypy pca_batch tests bench
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# Every bench runs and prints its figures; the target fails if any goal was missed.
bench: test-venv
	status=0; for b in bench/bench_*.py; do m=$$(basename $$b .py); echo "== bench.$$m"; $(BIN)/python -m bench.$$m || status=1; done; exit $$status

clean:
	rm -rf $(VENV) build dist *.egg-info
