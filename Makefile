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

.PHONY: help deps apt venv test test-rust lint fmt bench bench-mapping bench-inflow bench-presence bench-moderation bench-signin bench-authorizer-cold fixture-moto invoke watch

help:
	@echo "make demo        the local classroom end to end (set-up, stack, scenarios, teardown)"
	@echo "make test        every test: Rust unit/snapshot/integration (real moto + Mosquitto),"
	@echo "                 template lint (cfn-lint, sam validate --lint) + invariants, end-to-end, browser"
	@echo "make lint        cargo fmt --check + clippy -D warnings"
	@echo "make bench       criterion benches, the inflow throughput run, DynamoDB calls per lifecycle event,"
	@echo "                 token verification (make bench-signin)"
	@echo "make up / down   start / stop the local stack (make stack-status: ports and logs)"
	@echo "make test-e2e    end-to-end and security tests on a fresh local stack"
	@echo "make bench-e2e   chat latency through the local stack, highest rate with 0 loss"
	@echo "make web         serve the teacher and student pages (after make up) and print the URLs"
	@echo "make test-web    the browser test (headless Debian chromium, three contexts)"
	@echo "make build       cargo lambda build --release of every function (ARCH=arm64|x86_64)"
	@echo "make validate    cfn-lint on infra/template.yaml"
	@echo "make deploy      sam build + sam deploy (needs an AWS account; see infra/DEPLOY.md)"
	@echo "make watch       cargo lambda watch on 127.0.0.1:9000"
	@echo "make invoke FN=outflow FIXTURE=chat-from-student   invoke a function under watch"
	@echo "make fixture-moto  the moto that make invoke FN=authorizer FIXTURE=mqtt-over-wss needs"

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
test-rust: deps
	INSTA_UPDATE=no cargo test --workspace --locked

test: deps validate sam-validate test-infra test-rust $(if $(wildcard infra/local.mk),test-e2e) $(if $(wildcard infra/web.mk),test-web)
	@echo "make test: all passed"

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

fmt:
	cargo fmt --all

# --- benchmarks (figures printed, never asserted) ----------------------------------------------
bench-mapping:
	cargo bench -p outflow --bench mapping -- --noplot
	$(if $(wildcard shared/mapping/benches/classroom.rs),cargo bench -p mapping --bench classroom -- --noplot)

bench-inflow: deps
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

# The authorizer's cold start: its release bootstrap against a mock Runtime API and moto
# (process start -> first /next -> first answer, peak RSS; printed, never asserted).
bench-authorizer-cold: deps
	cargo test -p authorizer --release --test cold_start -- --ignored --nocapture

bench: bench-mapping bench-inflow bench-presence bench-moderation bench-signin bench-authorizer-cold

# --- cargo lambda, locally --------------------------------------------------------------------
WATCH_PORT ?= 9000
FN ?= outflow
FIXTURE ?= chat-from-student

# cargo-lambda finds zig through the first python3 on PATH: the venv goes first. Its logs go
# to target/ (writing them inside a crate would restart the build forever).
watch: $(VENV)/bin/cargo-lambda
	AWS_REGION=$${AWS_REGION:-us-east-1} PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda watch -A 127.0.0.1 -P $(WATCH_PORT)

# `make invoke FN=authorizer` needs its fixture environment: moto on 127.0.0.1:5055 with the
# fixture key set and TokenTable (functions/authorizer/Cargo.toml [package.metadata.lambda.env]).
fixture-moto: deps
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo run -p authorizer --example fixture-moto

invoke: $(VENV)/bin/cargo-lambda
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda invoke $(FN) -A 127.0.0.1 -P $(WATCH_PORT) \
	  --data-file functions/$(FN)/tests/fixtures/$(FIXTURE).json

include infra/infra.mk
-include infra/local.mk
-include infra/web.mk
