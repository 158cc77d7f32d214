# ringstat — developer commands. `make help` lists them.
#
# The two commands of the README:
#   make demo   build, install into ./.venv and run the main job
#   make test   every test (what CI runs via .ci/run)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
# Separate target dirs: a loom build (different cfg) and the Python build (a
# feature on) would otherwise throw away each other's artefacts.
export CARGO_TERM_COLOR ?= never
LOOM_TARGET := target/loom
PY_TARGET := target/py
LOOM_MAX_PREEMPTIONS ?= 2
# Other CPython versions to test the abi3 wheel on, if pyenv has them.
PYENV_ROOT ?= $(HOME)/.pyenv
# The oldest, pyproject's `requires-python` (the abi3 floor), builds the wheel,
# which then runs on every later CPython.
PY_FLOOR := $(shell sed -n 's/^requires-python = ">=\([0-9.]*\)"$$/\1/p' pyproject.toml)
OLDEST_PYTHON := $(firstword $(wildcard $(PYENV_ROOT)/versions/$(PY_FLOOR).*/bin/python$(PY_FLOOR)))
NEWEST_PYTHON := $(lastword $(wildcard $(PYENV_ROOT)/versions/3.13.*/bin/python3.13))
EXTRA_PYTHONS := $(OLDEST_PYTHON) $(NEWEST_PYTHON)

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# requirements-dev.txt plus the extras, listed once in pyproject.toml.
$(VENV)/.installed: requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) .ci/extras.py test bench notebook demo docs web rabbitmq kafka | $(VPY) -m pip install --quiet -r requirements-dev.txt -r /dev/stdin
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## create ./.venv with the build, test and bench tools

.PHONY: develop
develop: venv ## build the extension (release) and install it into ./.venv
	CARGO_TARGET_DIR=$(PY_TARGET) $(VENV)/bin/maturin develop --release --quiet

.PHONY: demo
demo: develop ## the main job: build, install and run the demo
	$(VPY) -m ringstat demo

.PHONY: test
test: lint test-rust test-loom test-py test-py-versions bench-smoke docs ## every test (CI)
	@echo "make test: all green"

.PHONY: lint
lint: venv lint-sync cmake ## rustfmt, clippy -D warnings (with and without python; with serve), rustdoc, ruff
	cargo fmt --all -- --check
	@# With `serve`, `wire`, `rabbitmq` and `kafka` (a superset of the default
	@# build's code; the Python build has the first two on), and the default
	@# build's library alone.
	cargo clippy --all-targets --features serve,wire,rabbitmq,kafka -- -D warnings
	cargo clippy --lib -- -D warnings
	CARGO_TARGET_DIR=$(PY_TARGET) cargo clippy --features python,serve --lib -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet --features serve,wire,rabbitmq,kafka
	$(VENV)/bin/ruff check python tests benches/python benches/criterion_table.py examples docs/hooks
	$(VENV)/bin/ruff format --check python tests benches/python benches/criterion_table.py examples docs/hooks

# Only src/sync.rs names std's atomics, Arc and spin hints (comments aside),
# so a loom build swaps them all.
SYNC_ONLY := (std|core)::(sync::(\{[^}]*)?(atomic|Arc)\b|hint::spin_loop)
.PHONY: lint-sync
lint-sync: ## fail if a file in src/ other than sync.rs names std atomics, Arc or spin_loop
	@bad=$$(grep -rnE '$(SYNC_ONLY)' src --include='*.rs' \
	  | grep -vE '^src/sync\.rs:' | grep -vE '^[^:]+:[0-9]+:[[:space:]]*//' || true); \
	if [ -n "$$bad" ]; then echo "$$bad"; echo "lint-sync: import these from crate::sync"; exit 1; fi

# cargo-nextest gives every test a deadline (.config/nextest.toml), so a hang
# fails by name; without it, plain `cargo test` (the stress and property tests
# still carry their own watchdogs). Nextest skips doctests: `cargo test --doc`.
HAVE_NEXTEST = cargo nextest --version >/dev/null 2>&1
NO_NEXTEST_MSG = cargo-nextest not found: plain cargo test, without per-test deadlines

# The RabbitMQ tests (tests/broker_rabbitmq.rs) start a private node on
# 127.0.0.1 each; the one across languages also needs `make develop` (it
# skips here if .venv has no ringstat yet, and runs in test-py). The Kafka
# tests (tests/broker_kafka.rs) start a private tansu each.
.PHONY: test-rust
test-rust: broker-tools kafka-tools ## unit, proptest, stress (debug) + stress in release (lost wake-ups counted) + doctests
	export RINGSTAT_REQUIRE_RABBITMQ=1 RINGSTAT_REQUIRE_KAFKA=1; \
	if $(HAVE_NEXTEST); then \
	  cargo nextest run --features serve,wire,rabbitmq,kafka; \
	  cargo nextest run --release --features test-counters --test queue_stress --test queue_task_stress --test pipeline_task_stress --test unbounded --test stats_prop --test shm_queue; \
	else \
	  echo "$(NO_NEXTEST_MSG)"; \
	  cargo test --tests --features serve,wire,rabbitmq,kafka; \
	  cargo test --release --features test-counters --test queue_stress --test queue_task_stress --test pipeline_task_stress --test unbounded --test stats_prop --test shm_queue; \
	fi
	cargo test --doc --features serve,wire,rabbitmq,kafka

.PHONY: test-loom
test-loom: ## loom models (LOOM_MAX_PREEMPTIONS=2; raise it for deeper runs)
	export RUSTFLAGS="--cfg ringstat_loom" LOOM_MAX_PREEMPTIONS=$(LOOM_MAX_PREEMPTIONS) \
	  CARGO_TARGET_DIR=$(LOOM_TARGET); \
	if $(HAVE_NEXTEST); then \
	  cargo nextest run --profile loom --release --test 'loom_*'; \
	else \
	  echo "$(NO_NEXTEST_MSG)"; \
	  cargo test --release --test 'loom_*'; \
	fi

.PHONY: miri
miri: ## the queue's unit, proptest and stress tests under Miri (needs nightly + miri; not part of `test`)
	MIRIFLAGS="-Zmiri-disable-isolation" CARGO_TARGET_DIR=target/miri \
	  cargo +nightly miri test --test queue --test queue_proptest --test queue_stress --test unbounded

.PHONY: test-py
# The terminal UI is tested in a real terminal (tmux); install it where missing.
APT_GET = $(if $(filter 0,$(shell id -u)),apt-get,sudo apt-get)
.PHONY: tools
tools: ## system packages the tests use (tmux, prometheus), from apt where missing
	@command -v tmux >/dev/null || { $(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq tmux; }
	@# The scrape test starts its own Prometheus on loopback (the package's service is not used).
	@command -v prometheus >/dev/null || { $(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq --no-install-recommends prometheus; }

# cmake builds the librdkafka bundled with rdkafka: every cargo build with
# the `kafka` feature (lint and docs too) needs it.
.PHONY: cmake
cmake: ## cmake for the kafka feature's bundled librdkafka, from apt where missing
	@command -v cmake >/dev/null || { $(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq --no-install-recommends cmake; }

# RabbitMQ for the broker tests (tests/python/broker/conftest.py starts a
# private node on 127.0.0.1); Debian's package, installed where missing.
RABBITMQ_SERVER := /usr/lib/rabbitmq/bin/rabbitmq-server
.PHONY: broker-tools
broker-tools: cmake ## rabbitmq-server for the broker tests (and cmake), from apt where missing
	@test -x $(RABBITMQ_SERVER) || { $(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq rabbitmq-server; }

# tansu, a Kafka-protocol broker (crates.io, Apache-2.0; no Kafka broker is
# packaged for Debian), for the Kafka broker tests (tests/python/kafka_node.py
# starts it on 127.0.0.1 with SQLite storage in a private directory). Built
# once into build/ (ignored, kept by `make clean`): its SQLite engine only
# (`libsql`), the smallest feature set whose storage survives a restart.
TANSU := build/tansu/bin/tansu
TANSU_VERSION := 0.6.0
.PHONY: kafka-tools
kafka-tools: ## tansu (a Kafka-protocol broker) for the Kafka tests, built once into build/tansu
	@# A debug build: 2.4x less CPU to build than release (~10 CPU-minutes, once
	@# per fresh machine), and the tests take the same time with it.
	@test -x $(TANSU) || cargo install tansu --version $(TANSU_VERSION) --locked --debug \
	  --no-default-features --features libsql --root build/tansu

test-py: develop tools broker-tools kafka-tools ## pytest (broker tests against a real RabbitMQ and tansu), mypy stubtest, mypy
	@# The Rust Kafka example, for test_kafka.py's frames across languages (a
	@# debug build with test-rust's features: its dependencies are built already).
	cargo build --quiet --features serve,wire,rabbitmq,kafka --example broker_kafka
	RINGSTAT_REQUIRE_RABBITMQ=1 RINGSTAT_REQUIRE_KAFKA=1 \
	  RINGSTAT_RUST_KAFKA_EXAMPLE=target/debug/examples/broker_kafka $(VPY) -m pytest
	@# Frames across languages: a Python shipper into the Rust consumer and back
	@# (for Kafka, test_kafka.py above runs examples/broker_kafka.rs).
	RINGSTAT_REQUIRE_RABBITMQ=1 RINGSTAT_REQUIRE_PYTHON_BROKER=1 RINGSTAT_PYTHON=$(VPY) \
	  cargo test --features serve,wire,rabbitmq --test broker_rabbitmq cross_language
	$(VPY) -m mypy.stubtest ringstat._ringstat --mypy-config-file pyproject.toml
	$(VENV)/bin/mypy

.PHONY: test-py-versions
test-py-versions: kafka-tools ## the same abi3 wheel under the oldest and newest other CPythons (pyenv)
	@if [ -z "$(strip $(EXTRA_PYTHONS))" ]; then echo "no other CPython under $(PYENV_ROOT): skipped"; exit 0; fi
	rm -rf $(PY_TARGET)/wheels
	CARGO_TARGET_DIR=$(PY_TARGET)-oldest $(VENV)/bin/maturin build --release --quiet -o $(PY_TARGET)/wheels \
	  -i $(or $(OLDEST_PYTHON),$(VPY))
	for py in $(EXTRA_PYTHONS); do \
	  v=$$($$py -c 'import sys; print("%d%d" % sys.version_info[:2])'); \
	  echo "== CPython $$v"; \
	  $$py -m venv --clear $(VENV)-$$v; \
	  $(VENV)-$$v/bin/python -m pip install --quiet "$$(echo $(PY_TARGET)/wheels/*.whl)[test,web,kafka]"; \
	  RINGSTAT_REQUIRE_KAFKA=1 $(VENV)-$$v/bin/python -m pytest -q -p no:cacheprovider tests/python; \
	done

# The documentation site (mkdocs.yml, docs/): MkDocs with warnings as errors,
# the Python API from the stubs, rustdoc copied in as site/rustdoc/ (the same
# RUSTDOCFLAGS as `lint`, so its build is reused). The pages' Python blocks
# run in test-py (tests/python/test_docs.py). No --quiet: it hides the
# warnings, and then --strict has none to fail on.
DOCS_ENV := NO_MKDOCS_2_WARNING=1 RUSTDOCFLAGS="-D warnings"
.PHONY: docs
docs: venv cmake ## build the documentation site into site/ (warnings are errors)
	$(DOCS_ENV) cargo doc --no-deps --quiet --features serve,wire,rabbitmq,kafka
	$(DOCS_ENV) $(VENV)/bin/mkdocs build --strict

.PHONY: docs-serve
docs-serve: venv cmake ## serve the documentation site at http://127.0.0.1:8000, rebuilt on each edit
	$(DOCS_ENV) cargo doc --no-deps --quiet --features serve,wire,rabbitmq,kafka
	$(DOCS_ENV) $(VENV)/bin/mkdocs serve

.PHONY: bench-smoke
bench-smoke: develop broker-tools kafka-tools ## run every benchmark once, briefly (checks they work; no numbers)
	cargo bench --bench queue --bench stats -- --test
	cargo bench --bench queue_rounds -- --test
	$(VPY) benches/python/bench_queue.py --quick
	$(VPY) benches/python/bench_stats.py --quick
	$(VPY) benches/python/bench_shm_stats.py --quick
	$(VPY) benches/python/bench_pipeline.py --quick
	$(VPY) benches/python/bench_web.py --quick
	$(VPY) benches/python/bench_scrape.py --quick
	$(VPY) benches/python/bench_asyncio.py --quick
	$(VPY) benches/python/bench_shm.py --quick
	$(VPY) benches/python/bench_broker.py --quick
	$(VPY) benches/python/bench_before_after.py $(VPY) $(VPY) --rounds 1

.PHONY: bench
bench: develop broker-tools kafka-tools ## the benchmarks behind BENCHMARKS.md (run on a quiet machine)
	cargo bench --bench queue --bench stats
	$(VPY) benches/criterion_table.py
	AA=1 ROUNDS=21 cargo bench --bench queue_rounds
	$(VPY) benches/python/bench_queue.py
	$(VPY) benches/python/bench_stats.py
	$(VPY) benches/python/bench_shm_stats.py
	$(VPY) benches/python/bench_pipeline.py
	$(VPY) benches/python/bench_web.py
	$(VPY) benches/python/bench_scrape.py
	$(VPY) benches/python/bench_asyncio.py
	$(VPY) benches/python/bench_shm.py
	$(VPY) benches/python/bench_broker.py

.PHONY: clean
clean: ## remove build outputs and virtualenvs
	cargo clean
	rm -rf $(VENV) $(VENV)-* python/ringstat/*.so site
