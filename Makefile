# The two commands every checkout honours (README): `make demo` and `make test`.
# Both set everything up first (scripts/setup.sh: idempotent and cached).
SHELL := /bin/bash
PY := .venv/bin/python
# Images are built from a local Debian base (no registry reachable here); users get the public default.
export PEAKCHAOS_BASE_IMAGE ?= peakchaos/python-base:bookworm

.PHONY: setup test demo doctor lint typecheck prune bench clean

setup:
	@bash scripts/setup.sh

test: setup
	$(PY) -m pytest --durations=30

demo: setup
	@mkdir -p reports
	$(PY) -m pytest -p peakchaos tests/acceptance demo --peakchaos-stack compose/shop.yml --peakchaos-report reports -v -rA

doctor: setup
	.venv/bin/peakchaos doctor

typecheck:
	.venv/bin/mypy

prune:
	.venv/bin/peakchaos prune

bench: setup
	@bash scripts/setup.sh bench
	$(PY) benchmarks/load.py

clean: prune
	rm -rf .state reports
