# Local emulation of the whole classroom (issue 5, SPEC §7). Included by the Makefile.
#   make up / down / stack-status   start, stop, show the local stack (state and logs in .run/)
#   make demo                       play the seeds' classroom end to end, pass/fail per scenario
#   make test-e2e                   end-to-end tests over a fresh stack on free loopback ports
#   make bench-e2e                  chat latency publish -> delivery, highest rate with 0 loss
#   make bench-connect              CONNECT -> CONNACK with a token vs the backend's password
# Needs Debian's mosquitto + mosquitto-clients and moto[server] in .venv: `make setup-local`
# installs what is missing (apt-get as root, pip into the venv).

LOCAL_STACK := infra/local/stack.sh
LOCAL_CRATES := -p broker-plugin -p local-stack -p e2e $(if $(wildcard functions/classroom-cli/Cargo.toml),-p classroom-cli)

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
	cargo build -q $(LOCAL_CRATES)
	cargo run -q -p e2e --bin demo

test-e2e: setup-local
	$(LOCAL_STACK) prune
	cargo build -q $(LOCAL_CRATES)
	cargo test -q -p local-stack -p broker-plugin
	cargo test -p e2e -- --include-ignored --test-threads 4

bench-e2e: setup-local
	cargo build -q $(LOCAL_CRATES)
	cargo run -q -p e2e --bin bench-e2e

bench-connect: setup-local
	cargo build -q $(LOCAL_CRATES)
	cargo run -q -p e2e --bin bench-connect
