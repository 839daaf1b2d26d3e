# ebpf-receiver — the two set-up commands are `make run` and `make test`.
# Both install what is missing (apt packages, a venv), build the BPF object, then run.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?=
PYTEST_ARGS ?=
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
CONTAINER_ENGINE ?= docker
IMAGE ?= ebpf-receiver:$(VERSION)

.PHONY: run test deps deps-test venv venv-bench venv-fuzz bpf bench reliability fuzz check clean wheel docs docs-check image

run: deps venv bpf
	$(VENV)/bin/ebpf-receiver run $(if $(CONFIG),--config $(CONFIG))

test: deps-test venv bpf
	$(PY) -m pytest $(PYTEST_ARGS)

check: deps venv bpf
	$(VENV)/bin/ebpf-receiver check

bench: deps-test venv-bench bpf
	$(PY) -m bench $(BENCH_ARGS)

# Coverage-guided fuzzing (atheris) of every parser, the record decoder, the config loader and
# the encoders; crashes are minimised into tests/fixtures/<proto>/fuzz/ (replayed by `make test`).
# FUZZ_RUNS inputs per target (default 1,000,000), at most FUZZ_SECONDS each; FUZZ_TARGETS=a,b.
FUZZ_RUNS ?= 1000000
FUZZ_SECONDS ?= 3600
FUZZ_TARGETS ?=
fuzz: deps-test venv-fuzz bpf
	FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_SECONDS=$(FUZZ_SECONDS) $(if $(FUZZ_TARGETS),FUZZ_TARGETS=$(FUZZ_TARGETS)) \
		$(PY) -m tests.fuzz

# The fault matrix (bench/reliability/): the real agent, nginx and PostgreSQL/Redis traffic, rotel
# and a fault-injecting OTLP server; writes its table into docs/reliability.md.  As root; about 12 minutes, QUICK=1 about 5.
QUICK ?=
RELIABILITY_ARGS ?=
reliability: deps-test venv bpf
	$(PY) -m bench.reliability --write-doc $(if $(QUICK),--quick) $(RELIABILITY_ARGS)

deps:
	@scripts/install-deps.sh run

deps-test:
	@scripts/install-deps.sh test

# The venv is rebuilt only when pyproject.toml (or a bundled plug-in's) changes, or the source of a
# compiled module (setup.py: pip builds receiver/*/_*.c in place).  Protocol
# plug-ins that ship in this repository (plugins/*) are installed editable next to the agent.
PLUGINS := plugins/nats
venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml setup.py $(wildcard receiver/*/_*.c) $(addsuffix /pyproject.toml,$(PLUGINS))
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]' $(addprefix -e ,$(PLUGINS))
	@touch $@

# The bench extra on top of the test venv, reinstalled when pyproject.toml changes.
venv-bench: $(VENV)/.installed-bench
$(VENV)/.installed-bench: $(VENV)/.installed
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,bench]'
	@touch $@

# The fuzz extra (atheris) on top of the test venv.
venv-fuzz: $(VENV)/.installed-fuzz
$(VENV)/.installed-fuzz: $(VENV)/.installed
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,fuzz]'
	@touch $@

bpf:
	@$(MAKE) -s -C bpf

wheel: bpf
	$(PYTHON) -m pip wheel --no-deps -w dist .

# docs/configuration.md is generated from the configuration schema; docs/images/zpages-*.png are
# screenshots of the zPages over real services (root: the agent loads its BPF programs).
docs: deps-test venv bpf
	$(PY) scripts/gen_config_docs.py
	$(PY) scripts/zpages_screenshots.py --out docs/images

# Fails when docs/configuration.md is stale, or when a command, config snippet, Containerfile or
# manifest shown in docs/ and deploy/ no longer matches the code (tests/unit/docs).
docs-check: venv bpf
	$(PY) scripts/gen_config_docs.py --check
	$(PY) -m pytest -q -p no:cacheprovider tests/unit/docs

# The container image (Containerfile: its builder stage runs `make deps`, `make bpf` and `make wheel`).
image:
	$(CONTAINER_ENGINE) build -f Containerfile -t $(IMAGE) --build-arg VERSION=$(VERSION) \
		--build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) .

clean:
	$(MAKE) -C bpf clean
	rm -rf dist build *.egg-info
