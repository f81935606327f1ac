# The browser classroom (issue 6, web/). Included by the Makefile.
#   make web        serve the teacher/student pages and the local school login on loopback for
#                   the stack of `make up` (WEB_PORT=8380 by default; 0 = any free port;
#                   WEB_TOKEN_LIFETIME=600 s per token) and print the URLs. Passwords: the
#                   school directory, `infra/local/stack.sh directory`
#   make test-web   the unit tests (core.js, the page server's school login against a fake
#                   issuer), then the browser test: headless Chromium (Debian's) driven by
#                   playwright-core, a teacher and students signing in with tokens against a
#                   fresh stack on free loopback ports; screenshots in web/test-artifacts/
#   make web-deps   npm ci in web/ (from the committed lockfile) when the lockfile changed
# Needs Node >= 20 and npm; `test-web` installs Debian's chromium when it is missing.

WEB_DIR := web
WEB_STAMP := $(WEB_DIR)/node_modules/.ci-stamp
WEB_PORT ?= 8380
WEB_STACK_DIR ?= .run
CHROMIUM ?= /usr/bin/chromium

.PHONY: web web-deps test-web chromium

$(WEB_STAMP): $(WEB_DIR)/package.json $(WEB_DIR)/package-lock.json
	@command -v npm >/dev/null && node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' \
	  || { echo "web: needs Node.js >= 20 and npm (playwright-core's minimum; Debian 12's nodejs is 18: use NodeSource or nvm)"; exit 1; }
	cd $(WEB_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

web-deps: $(WEB_STAMP)

# Debian's chromium: no browser can be downloaded by a test tool here (`npx playwright install`).
chromium:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  echo "web: installing chromium (Debian)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi

web: web-deps
	@pid=$(WEB_STACK_DIR)/pids/mosquitto.pid; \
	if [ ! -f $(WEB_STACK_DIR)/stack.env ] || [ ! -f $$pid ] || ! kill -0 "$$(cat $$pid)" 2>/dev/null; then \
	  echo "web: no local stack is running in $(WEB_STACK_DIR): run \`make up\` first (then \`make web\` again)"; exit 1; \
	fi
	@grep -q '^TOKEN_API_URL=' $(WEB_STACK_DIR)/stack.env || { echo "web: the stack in $(WEB_STACK_DIR) has no token issuer (started before token sign-in): \`make down up\` first"; exit 1; }
	STACK_ENV=$(WEB_STACK_DIR)/stack.env WEB_PORT=$(WEB_PORT) node $(WEB_DIR)/serve.mjs

# Its own stack (.run/web-<pid>, free ports, torn down at the end): never the one of `make up`.
# STACK_BUILD=1: stack.sh builds what `make up` builds (a no-op when up to date).
test-web: $(if $(wildcard infra/local.mk),setup-local) chromium web-deps
	node $(WEB_DIR)/test/core.test.mjs
	node $(WEB_DIR)/test/serve.test.mjs
	STACK_BUILD=$${STACK_BUILD:-1} CHROMIUM=$(CHROMIUM) node $(WEB_DIR)/test/classroom.test.mjs
