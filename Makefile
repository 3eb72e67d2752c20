# venvsmith — developer entry points. `make run` and `make test` are all a new machine needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REQS ?= bench/sets/run.txt

.PHONY: setup sandbox-tools registry-tools redis-tools run test protos lint lint-imports serve serve-resolver serve-builder bench clean

setup: $(STAMP) sandbox-tools registry-tools redis-tools

# bubblewrap, the build sandbox's preferred backend: installed with apt when missing and running as root; without
# it (no root, no apt) sdist builds use the Linux-namespaces backend (util-linux `unshare`).
sandbox-tools:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap >/dev/null 2>&1 \
	    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap >/dev/null 2>&1; } \
	    || echo "note: could not install bubblewrap; sdist builds use the namespaces sandbox"; \
	  else echo "note: bwrap not found; sdist builds use the namespaces sandbox (apt-get install bubblewrap for bwrap)"; fi; }

# The OCI artifact store's test tools (Debian packages): `docker-registry` (the CNCF distribution registry the tests
# start on 127.0.0.1), `skopeo` (pulls an environment image as standard tools do) and `htpasswd` (apache2-utils,
# the registry's basic auth). Installed with apt when missing and running as root; the tests that need them fail
# naming this target otherwise.
REGISTRY_TOOLS := docker-registry:docker-registry skopeo:skopeo htpasswd:apache2-utils
registry-tools:
	@missing=""; for pair in $(REGISTRY_TOOLS); do command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null 2>&1 \
	    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null 2>&1; } \
	    || echo "note: could not install$$missing; the OCI store tests will fail"; \
	  else echo "note: missing$$missing (apt-get install$$missing); the OCI store tests will fail"; fi; fi

# redis-server, which the tests of the shared cache (`serve --cache redis://...`) start on 127.0.0.1: installed with
# apt when missing and running as root; without it those tests are skipped, saying why.
redis-tools:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null 2>&1 \
	    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null 2>&1; } \
	    || echo "note: could not install redis-server; the shared-cache tests are skipped"; \
	  else echo "note: redis-server not found; the shared-cache tests are skipped (apt-get install redis-server)"; fi; }

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m compileall -q venvsmith resolver_service builder_service
	touch $(STAMP)

DEMO := build/demo-venv

# The main job on the embedded default: resolve a real requirement set against
# the index pip is configured for, print the pins, then build a ready venv of
# exactly those pins (a second run is served from the store) and use it.
# (`venvsmith env` without --format summary lists every wheel tag; without -q, venv shows each pin's progress.)
run: $(STAMP)
	$(VENV)/bin/venvsmith env --format summary
	$(VENV)/bin/venvsmith resolve -r $(REQS)
	$(VENV)/bin/venvsmith venv $(DEMO) -r $(REQS) -q --clear
	$(DEMO)/bin/python -c 'import requests, rich, httpx; print("demo venv works:", requests.__version__)'

test: $(STAMP) sandbox-tools registry-tools redis-tools
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -n 2 -q

# The layering contracts (pyproject.toml), also run by `make test`.
lint-imports: $(STAMP)
	$(VENV)/bin/lint-imports

protos: $(STAMP)
	$(PY) -m venvsmith.protogen

lint: $(STAMP)
	$(PY) -m ruff check .

serve: serve-builder

serve-resolver: $(STAMP)
	$(VENV)/bin/venvsmith serve resolver --port 50051

# The builder also serves ResolverService on the same port, and blobs over HTTP.
serve-builder: $(STAMP)
	$(VENV)/bin/venvsmith serve builder --port 50052 --http-port 8080

# Every bench (bench/run.py; one alone: python bench/run.py --bench NAME); the fleet bench starts docker-registry
# and redis-server on 127.0.0.1.
bench: $(STAMP) registry-tools redis-tools
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache
