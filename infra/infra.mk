# Infrastructure targets (issue 4), included from the Makefile with `include infra/infra.mk`.
#
#   make validate     cfn-lint infra/template.yaml (offline, ~2 s)
#   make test-infra   the template's invariant tests (infra/tests, pytest)
#   make sam-validate `sam validate --lint` (installs aws-sam-cli, ~30 s the first time)
#   make build        cargo lambda build --release of every function the template declares
#   make deploy       sam build + sam deploy (needs AWS credentials; see infra/DEPLOY.md)
#
# The venv itself ($(VENV)/bin/python) is made by the Makefile's `venv` target.

VENV ?= .venv
PY ?= $(VENV)/bin/python
PIP ?= $(VENV)/bin/pip

INFRA_TEMPLATE := infra/template.yaml
# The binaries the template builds (Metadata.BuildProperties.Binary), so `make build` builds
# exactly what gets deployed.
INFRA_BINARIES := $(shell sed -n 's/^ *Binary: *//p' $(INFRA_TEMPLATE))
# arm64 (the template's default) or x86_64; must match the Architecture parameter at deploy.
ARCH ?= arm64
# sam's build and cache directories (under target/, which git ignores).
SAM_DIR ?= target/sam
SAMCONFIG ?= infra/samconfig.toml
# Extra `sam deploy` parameter overrides, e.g. PARAMS="MqttEndpoint=mqtts://...:8883 Architecture=x86_64".
PARAMS ?=
# Versions checked with this template (cfn-lint/pytest/pyyaml are pinned in infra/requirements.txt).
CARGO_LAMBDA_VERSION ?= 1.9.2
SAM_CLI_VERSION ?= 1.170.0
# cargo-lambda finds zig through the first python3 on PATH: the venv's bin goes first.
INFRA_PATH = PATH="$(CURDIR)/$(VENV)/bin:$$PATH"

.PHONY: validate sam-validate test-infra build deploy

# The pinned versions of infra/requirements.txt (installed by the Makefile's deps stamp).
$(VENV)/bin/cfn-lint: $(DEPS_STAMP)

$(VENV)/bin/cargo-lambda: | $(VENV)/bin/python
	$(PIP) install -q cargo-lambda==$(CARGO_LAMBDA_VERSION)

$(VENV)/bin/sam: | $(VENV)/bin/python
	$(PIP) install -q aws-sam-cli==$(SAM_CLI_VERSION)

validate: $(VENV)/bin/cfn-lint
	$(VENV)/bin/cfn-lint $(INFRA_TEMPLATE)

sam-validate: $(VENV)/bin/sam
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} SAM_CLI_TELEMETRY=0 \
	  $(VENV)/bin/sam validate --lint --template-file $(INFRA_TEMPLATE)

test-infra: $(VENV)/bin/cfn-lint
	$(PY) -m pytest -q -p no:cacheprovider infra/tests

build: $(VENV)/bin/cargo-lambda
	@arch="$(ARCH)"; \
	case "$$arch" in arm64|x86_64) ;; *) echo "build: ARCH must be arm64 or x86_64, not '$$arch'" >&2; exit 2;; esac; \
	if [ "$$arch" = arm64 ] && ! rustup target list --installed | grep -q '^aarch64-unknown-linux-gnu$$'; then \
	  echo "build: adding the Rust target aarch64-unknown-linux-gnu (one try)"; \
	  timeout 300 rustup target add aarch64-unknown-linux-gnu || true; \
	  if ! rustup target list --installed | grep -q '^aarch64-unknown-linux-gnu$$'; then \
	    echo "build: *** the aarch64 Rust target cannot be installed here: building x86_64 INSTEAD ***"; \
	    echo "build: *** deploy these artifacts with Architecture=x86_64, or build arm64 elsewhere ***"; \
	    arch=x86_64; \
	  fi; \
	fi; \
	if [ "$$arch" = arm64 ]; then flag=--arm64; else flag=--x86-64; fi; \
	echo "build: cargo lambda build --release $$flag for: $(INFRA_BINARIES)"; \
	$(INFRA_PATH) cargo lambda build --release $$flag $(addprefix --bin ,$(INFRA_BINARIES)) && \
	  echo "build: $$arch artifacts in $${CARGO_TARGET_DIR:-target}/lambda/<function>/bootstrap"

# sam build runs cargo lambda itself (rust-cargolambda is a SAM beta feature). The first
# deploy is guided and saves its answers to $(SAMCONFIG); later ones reuse them.
deploy: $(VENV)/bin/sam $(VENV)/bin/cargo-lambda
	$(INFRA_PATH) SAM_CLI_TELEMETRY=0 sam build --beta-features \
	  --template-file $(INFRA_TEMPLATE) --build-dir $(SAM_DIR)/build --cache-dir $(SAM_DIR)/cache \
	  --parameter-overrides Architecture=$(ARCH)
	$(INFRA_PATH) SAM_CLI_TELEMETRY=0 sam deploy \
	  --template-file $(SAM_DIR)/build/template.yaml --config-file $(CURDIR)/$(SAMCONFIG) \
	  $(if $(wildcard $(SAMCONFIG)),,--guided) --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
	  $(if $(PARAMS),--parameter-overrides $(PARAMS))
