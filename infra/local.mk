# Local emulation of the whole classroom (issue 5, §7). Included by the Makefile.
#   make up / down / stack-status   start, stop, show the local stack (state and logs in .run/)
#   make demo                       play the seeds' classroom end to end, pass/fail per scenario
#   make test-e2e                   end-to-end tests over a fresh stack on free loopback ports
#   make bench-e2e                  chat latency publish -> delivery, highest rate with 0 loss
#   make bench-connect              CONNECT -> CONNACK with a token over TLS vs plain (PLAIN_LISTENER=1)
# Needs Debian's mosquitto + mosquitto-clients and moto[server] in .venv: `make setup-local`
# installs what is missing (apt-get as root, pip into the venv).

LOCAL_STACK := infra/local/stack.sh
# One build for everything: the stack's binaries (rules-bridge, local-runner, local-api,
# signing-keys, the plugin's .so in target/debug), the CLI and the e2e drivers, built for the
# whole workspace so cargo resolves the same features as `cargo test --workspace` (make
# test-rust): after the tests, nothing here compiles again, and the other way round. A
# `cargo build -p ...` of a few crates would resolve other features and rebuild the SDK stack.
LOCAL_BUILD := cargo build -q --workspace --locked
# Where it puts the binaries (run directly: `cargo run -p e2e` would resolve e2e's features alone).
LOCAL_BIN := $${CARGO_TARGET_DIR:-target}/debug
# The end-to-end test files, run as `cargo test --workspace --test <file>` for the same reason.
E2E_TESTS := $(foreach t,$(wildcard tests/e2e/tests/*.rs),--test $(basename $(notdir $(t))))
# Alone, `make test-e2e` also runs the local stack's and the plugin's own tests and the e2e
# tests that need no stack; under `make test`, test-rust ran those already (the Makefile sets
# E2E_SELECT=--ignored and E2E_WITH_LOCAL= for it), so only the stack tests run here.
E2E_SELECT ?= --include-ignored
E2E_WITH_LOCAL ?= $(foreach t,$(wildcard infra/local/tests/*.rs infra/broker-plugin/tests/*.rs),--test $(basename $(notdir $(t))))

.PHONY: setup-local up down stack-status demo test-e2e bench-e2e bench-connect

# `deps` (the Makefile's: Debian packages + infra/requirements.txt into .venv) when the
# Makefile defines it; the script's own check-and-install otherwise.
setup-local: $(if $(wildcard infra/requirements.txt),deps)
	$(LOCAL_STACK) setup

up: setup-local
	$(LOCAL_STACK) up

down:
	$(LOCAL_STACK) down

stack-status:
	$(LOCAL_STACK) status

demo: setup-local
	$(LOCAL_BUILD)
	$(LOCAL_BIN)/demo

test-e2e: setup-local
	$(LOCAL_STACK) prune
	$(LOCAL_BUILD)
	$(if $(E2E_WITH_LOCAL),cargo test -q --workspace --locked $(E2E_WITH_LOCAL))
	cargo test --workspace --locked $(E2E_TESTS) -- $(E2E_SELECT) --test-threads 4

bench-e2e: setup-local
	$(LOCAL_BUILD)
	$(LOCAL_BIN)/bench-e2e

bench-connect: setup-local
	$(LOCAL_BUILD)
	$(LOCAL_BIN)/bench-connect
