# The two commands of the README: `make demo` (set up, run the main job) and `make test`.
.PHONY: setup demo test lint
PY := .venv/bin/python

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) scripts/demo.py

test: setup
	$(PY) -m pytest
	.venv/bin/ruff check .

lint: setup
	.venv/bin/ruff check .
