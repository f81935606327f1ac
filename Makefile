# classroom-rules: the interface. `make help` lists the targets.
#
# The two set-up commands of the README:
#   make demo   the local classroom end to end (installs what it needs, starts, plays, stops)
#   make test   every test (installs what it needs: Debian packages, the Python venv)

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Debian packages the tests and the local stack need.
APT_PACKAGES := mosquitto mosquitto-clients
DEPS_STAMP := $(VENV)/.deps-stamp

.PHONY: help deps apt venv test test-rust lint fmt bench bench-mapping bench-inflow bench-presence bench-moderation bench-signin bench-authorizer-cold bench-cold deps-lint fixture-moto invoke watch

help:
	@echo "make demo        the local classroom end to end (set-up, stack, scenarios, teardown)"
	@echo "make test        every test: Rust unit/snapshot/integration (real moto + Mosquitto),"
	@echo "                 template lint (cfn-lint, sam validate --lint) + invariants, end-to-end, browser"
	@echo "make lint        cargo fmt --check + clippy -D warnings + no unused dependency (cargo-machete),"
	@echo "                 and the list of crates the functions link in two or more versions"
	@echo "make bench       criterion benches, the inflow throughput run, DynamoDB calls per lifecycle event,"
	@echo "                 token verification (make bench-signin), cold starts (make bench-cold)"
	@echo "make bench-cold  every function's release bootstrap against a mock Runtime API: size, init, RSS"
	@echo "make up / down   start / stop the local stack (make stack-status: ports and logs)"
	@echo "make test-e2e    end-to-end and security tests on a fresh local stack"
	@echo "make bench-e2e   chat latency through the local stack, highest rate with 0 loss"
	@echo "make bench-restart  1,000 downlink notices through two broker restarts, before/after the backoff"
	@echo "make fuzz        every parser of untrusted input under AFL++ (FUZZ_SECONDS per target, 60)"
	@echo "make chaos       kill -9 / SIGSTOP the stack's parts mid-stream: sent, delivered, lost, recovery"
	@echo "make web         serve the teacher and student pages (after make up) and print the URLs"
	@echo "make test-web    the browser test (headless Debian chromium, three contexts)"
	@echo "make build       cargo lambda build --release of every function (ARCH=arm64|x86_64)"
	@echo "make validate    cfn-lint on infra/template.yaml"
	@echo "make deploy      sam build + sam deploy (needs an AWS account; see infra/DEPLOY.md)"
	@echo "make watch       cargo lambda watch on 127.0.0.1:9000 (the stack's environment under make up,"
	@echo "                 else the fixture environment of make fixture-moto)"
	@echo "make invoke FN=outflow FIXTURE=chat-from-student   invoke a function under watch"
	@echo "make fixture-moto  what make invoke needs without make up: moto with the template's queues and"
	@echo "                 tables and the fixture keys, a Mosquitto for the inflow (runs until Ctrl-C)"

# --- set-up: Debian packages and the project venv -------------------------------------------
apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(PY):
	python3 -m venv $(VENV)

venv: $(PY)

$(DEPS_STAMP): infra/requirements.txt | $(PY)
	$(PIP) install -q --disable-pip-version-check -r infra/requirements.txt
	touch $@

deps: apt $(DEPS_STAMP)

# --- tests -----------------------------------------------------------------------------------
# Unit, snapshot (insta, strict: no pending or unreferenced snapshots) and integration tests
# against a real moto and a real Mosquitto the harness starts on free loopback ports.
#
# The snapshot gate is `cargo insta test --check --unreferenced=reject`, which runs the same
# `cargo test --workspace` once (not a second time): a changed snapshot, a new one never
# reviewed, or a .snap file no test uses any more fails. cargo-insta is installed once, locked,
# into the project's cargo root (.venv/cargo), like the other cargo tools of the Makefile.
CARGO_INSTA_VERSION ?= 1.49.0
CARGO_INSTA := $(VENV)/cargo/bin/cargo-insta
$(CARGO_INSTA):
	cargo install --locked --quiet --root $(VENV)/cargo cargo-insta@$(CARGO_INSTA_VERSION)

test-rust: deps $(CARGO_INSTA)
	@pending=$$(find functions shared infra tests -name '*.snap.new' -o -name '*.pending-snap' | head -20); \
	if [ -n "$$pending" ]; then \
	  echo "test-rust: unreviewed snapshots (review them with cargo insta review, or delete them):"; \
	  echo "$$pending"; exit 1; \
	fi
	@# cargo insta has no --locked (what follows -- goes to the test binaries): check the lock
	@# file first, so a Cargo.toml change without its Cargo.lock still fails here.
	cargo metadata --locked --format-version 1 >/dev/null
	INSTA_UPDATE=no PATH="$(CURDIR)/$(VENV)/cargo/bin:$$PATH" \
	  cargo insta test --workspace --check --unreferenced=reject

# test-rust has run every test that needs no local stack: test-e2e adds only the stack tests.
test: E2E_SELECT = --ignored
test: E2E_WITH_LOCAL =
test: deps validate sam-validate test-infra test-rust $(if $(wildcard infra/local.mk),test-e2e) $(if $(wildcard infra/web.mk),test-web)
	@echo "make test: all passed"

# cargo-machete (unused dependencies), installed once into a project-local root.
CARGO_MACHETE_VERSION ?= 0.9.2
CARGO_TOOLS := $(VENV)/cargo
$(CARGO_TOOLS)/bin/cargo-machete:
	cargo install --locked --quiet --root $(CARGO_TOOLS) cargo-machete@$(CARGO_MACHETE_VERSION)

deps-lint: $(CARGO_TOOLS)/bin/cargo-machete

# Lint also lists, per function the template deploys, the crates it links in 2+ versions.
lint: deps-lint
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO_TOOLS)/bin/cargo-machete
	@echo "lint: crates linked in two or more versions (cargo tree -d -e normal), per function:"
	@for f in $(INFRA_BINARIES); do \
	  echo "  $$f: $$(cargo tree --locked -q -d -e normal --depth 0 -p $$f | grep -v '^$$' | tr '\n' ' ')"; \
	done

fmt:
	cargo fmt --all

# --- benchmarks (figures printed, never asserted) ----------------------------------------------
bench-mapping:
	cargo bench -p outflow --bench mapping -- --noplot
	$(if $(wildcard shared/mapping/benches/classroom.rs),cargo bench -p mapping --bench classroom -- --noplot)

# Inflow throughput over TLS with a client certificate and over plain MQTT, to one Mosquitto in
# the same run, each against a raw rumqttc loop on the same transport, and the TLS/plain ratio.
bench-inflow: apt
	cargo bench -p inflow --bench throughput

# DynamoDB calls per lifecycle event (target <= 2): counted by the presence function against
# moto and printed by its handler test.
bench-presence: deps
	cargo test -q -p presence --test handler dynamodb_calls_per_event -- --nocapture 2>&1 | grep 'DynamoDB calls'

# DynamoDB requests per chat message (target <= 1: the mute and the enrollment in one
# BatchGetItem), counted on the SDK client's real requests by the moderation handler test.
bench-moderation: deps
	cargo test -q -p moderation --test handler dynamodb_calls_per_chat -- --nocapture 2>&1 | grep 'DynamoDB calls'

# Token verification against a bare HMAC-SHA256 of the same bytes, and the broker's per-message
# checks (what the plugin's ACL callback and the authorizer pay).
bench-signin:
	cargo bench -p signin --bench verify -- --noplot

# Cold starts (issue 12 targets: bootstrap <= 8 MB, init p50 <= 10 ms, RSS <= 30 MB): every
# function's release bootstrap from `make build` (for this machine's architecture: the
# bootstraps run here) against a mock Runtime API, moto and Mosquitto: size, process start ->
# first /next (init), -> first answer, warm answer, peak RSS after a 10-record batch. Printed,
# never asserted. BENCH_COLD_RUNS=10 starts per function; BENCH_FUNCTIONS narrows the list.
BENCH_ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x86_64)
BENCH_FUNCTIONS ?= $(INFRA_BINARIES)
bench-cold: deps
	$(MAKE) --no-print-directory build ARCH=$(BENCH_ARCH)
	cargo run -q --locked -p testkit --bin bench-cold -- --dir $${CARGO_TARGET_DIR:-target}/lambda $(BENCH_FUNCTIONS)

# The authorizer's alone (the harness prints each answer: `isAuthenticated true` for the
# fixture's sign-in).
bench-authorizer-cold:
	$(MAKE) --no-print-directory bench-cold BENCH_FUNCTIONS=authorizer

# Issue 14's flood (1,000 chats from one student, another chatting every 200 ms) on fresh
# local stacks: limits off (template ChatRateLimit=0, PUBLISH_PER_SECOND=0), moderation only, on:
# chats reaching the room, rate_limited notices, the other student's latency p50 / max.
.PHONY: bench-flood
bench-flood: setup-local
	$(LOCAL_BUILD)
	$(LOCAL_BIN)/bench-flood

# Issue 13's broker-restart scenario (1,000 downlink notices, Mosquitto restarted twice) on two
# fresh local stacks: visibility left at the queue's 210 s (before) and the settler's backoff
# (after): delivered, duplicates, time from the broker's return to the last delivery.
.PHONY: bench-restart
bench-restart: setup-local
	$(LOCAL_BUILD)
	$(LOCAL_BIN)/bench-restart

# Issue 13's chaos on one fresh local stack: runner and bridge kill -9 mid-stream, Mosquitto
# SIGSTOP 8 s, moto SIGSTOP 30 s: sent / delivered / duplicated / lost and time to recover.
.PHONY: chaos
chaos: setup-local
	$(LOCAL_BUILD)
	$(LOCAL_BIN)/chaos

# Every parser of untrusted input under AFL++ (cargo-afl), FUZZ_SECONDS (60) per target:
# inputs run, paths, crashes and hangs per target (tests/fuzz/README.md).
.PHONY: fuzz
fuzz: deps
	tests/fuzz/run.sh

bench: bench-mapping bench-inflow bench-presence bench-moderation bench-signin bench-cold

# --- cargo lambda, locally --------------------------------------------------------------------
WATCH_PORT ?= 9000
FN ?= outflow
FIXTURE ?= chat-from-student

# cargo-lambda finds zig through the first python3 on PATH: the venv goes first. Its logs go
# to target/ (writing them inside a crate would restart the build forever).
#
# The functions' environment under watch: the local stack's (.run/stack.env, passed with
# --env-file, which overrides the fixture values) while `make up` runs; otherwise each
# function's fixture-only environment, the [package.metadata.lambda.env] of its Cargo.toml,
# pointing at what `make fixture-moto` serves (moto on 127.0.0.1:5055, Mosquitto on :5056).
# cargo lambda's env-file parser refuses an unquoted value holding `=` (OUTFLOW_ROUTES is
# `roomSend=<queue URL>`), so watch reads a copy with such values quoted (.run/watch.env).
STACK_ENV := .run/stack.env
stack_up = [ -f $(STACK_ENV) ] && [ -f .run/pids/moto.pid ] && kill -0 "$$(cat .run/pids/moto.pid)" 2>/dev/null

watch: $(VENV)/bin/cargo-lambda
	@if $(stack_up); then \
	  echo "watch: the local stack's environment ($(STACK_ENV))"; \
	  sed -E 's/^([A-Za-z0-9_]+)=(.*=.*)$$/\1="\2"/' $(STACK_ENV) >.run/watch.env && chmod 600 .run/watch.env; \
	  env_file="--env-file .run/watch.env"; \
	else \
	  echo "watch: the fixture-only environment of each function's Cargo.toml (start make fixture-moto; make up switches to the stack's)"; env_file=""; \
	fi; \
	AWS_REGION=$${AWS_REGION:-us-east-1} PATH="$(CURDIR)/$(VENV)/bin:$$PATH" \
	  cargo lambda watch -A 127.0.0.1 -P $(WATCH_PORT) $$env_file

# What every function's fixture environment needs: the template's queues and tables in a moto
# on 127.0.0.1:5055, the authorizer's fixture key set and TokenTable, a Mosquitto on :5056 for
# the inflow (functions/authorizer/examples/fixture_moto.rs). Runs until Ctrl-C.
fixture-moto: deps
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo run -p authorizer --example fixture-moto

invoke: $(VENV)/bin/cargo-lambda
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda invoke $(FN) -A 127.0.0.1 -P $(WATCH_PORT) \
	  --data-file functions/$(FN)/tests/fixtures/$(FIXTURE).json

include infra/infra.mk
-include infra/local.mk
-include infra/web.mk
