# The README's two commands: `make demo` (the simulated system end to end) and `make test` (the test suite).
# Both run `make setup` first, which is idempotent (a second run with nothing changed takes seconds).
SHELL := /bin/bash
VENV := .venv
MANIPLLM := $(VENV)/bin/manipllm
PYTEST_ARGS ?=
# e.g. make demo DEMO_ARGS="--episodes 4 --system-episodes 3" (flags: .venv/bin/manipllm demo --help)
DEMO_ARGS ?=

.PHONY: setup test demo doctor lint clean

setup:
	@bash scripts/setup.sh

test: setup
	$(MANIPLLM) doctor
	$(MANIPLLM) env -- $(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

demo: setup
	$(MANIPLLM) demo $(DEMO_ARGS)

doctor: setup
	$(MANIPLLM) doctor

clean:
	rm -rf build install log
