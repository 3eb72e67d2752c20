# venvsmith — developer entry points. `make run` and `make test` are all a new machine needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REQS ?= bench/sets/run.txt

.PHONY: setup run test protos check-protos lint serve serve-resolver bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The main job on the embedded default: resolve a real requirement set against
# the index pip is configured for, and print the pins.
run: $(STAMP)
	$(VENV)/bin/venvsmith env
	$(VENV)/bin/venvsmith resolve -r $(REQS)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -n 2 -q

protos: $(STAMP)
	$(PY) -m venvsmith.protogen

lint: $(STAMP)
	$(PY) -m ruff check .

serve: serve-resolver

serve-resolver: $(STAMP)
	$(VENV)/bin/venvsmith serve resolver --port 50051

bench: $(STAMP)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
