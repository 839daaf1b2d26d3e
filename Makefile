# ebpf-receiver — the two set-up commands are `make run` and `make test`.
# Both install what is missing (apt packages, a venv), build the BPF object, then run.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?=
PYTEST_ARGS ?=

.PHONY: run test deps deps-test venv bpf bench check clean wheel docs-check

run: deps venv bpf
	$(VENV)/bin/ebpf-receiver run $(if $(CONFIG),--config $(CONFIG))

test: deps-test venv bpf
	$(PY) -m pytest $(PYTEST_ARGS)

check: deps venv bpf
	$(VENV)/bin/ebpf-receiver check

bench: deps-test venv bpf
	$(PY) -m bench $(BENCH_ARGS)

deps:
	@scripts/install-deps.sh run

deps-test:
	@scripts/install-deps.sh test

# The venv is rebuilt only when pyproject.toml changes.
venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

bpf:
	@$(MAKE) -s -C bpf

wheel: bpf
	$(PYTHON) -m pip wheel --no-deps -w dist .

clean:
	$(MAKE) -C bpf clean
	rm -rf dist build *.egg-info
