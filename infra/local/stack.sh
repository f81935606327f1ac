#!/usr/bin/env bash
# The local classroom stack (SPEC §7): moto (SQS + DynamoDB), the queues and tables provisioned
# from infra/template.yaml, Mosquitto with the classroom broker plugin + ACL + password file,
# the rules bridge and the local event-source runner. Everything on 127.0.0.1.
#
#   infra/local/stack.sh setup     install what is missing (Debian mosquitto, moto in .venv)
#   infra/local/stack.sh up        build, start, provision; writes $STACK_DIR/stack.env
#   infra/local/stack.sh down      stop everything this stack started (by pid file)
#   infra/local/stack.sh status    what runs, where it listens
#   infra/local/stack.sh credentials [clientId...]   sign-in lines `<clientId> <password>`
#   infra/local/stack.sh add-client clientId...      add classroom clients (no restart needed)
#   infra/local/stack.sh prune     remove test stacks (.run/e2e-<pid>) whose process is gone
#
# Identity: as AWS IoT Core binds a client ID to its certificate, the local broker binds it to a
# roster (infra/local/roster, or ROSTER=<file>): `up` gives every client ID listed there a fresh
# random password in $STACK_DIR/mosquitto/clients (0600); a client signs in with its client ID
# as the MQTT username and that password. Anonymous clients are refused.
#
# Environment: STACK_DIR (default .run), MQTT_PORT / WS_PORT / MOTO_PORT (default: free
# ephemeral ports), VISIBILITY_TIMEOUT (override the template's, for redrive tests only),
# LOCAL_FUNCTIONS (default: every function the runner was built with), LOCAL_WAIT_SECONDS,
# STACK_BUILD=0 (skip the cargo build when the binaries exist), STACK_OWNER_PID (tests: a watchdog runs `down` once that process is gone).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
STACK_DIR="${STACK_DIR:-.run}"
mkdir -p "$STACK_DIR"
STACK_DIR="$(cd "$STACK_DIR" && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
LOGS="$STACK_DIR/logs"
CLIENTS="$STACK_DIR/mosquitto/clients"
ROSTER="${ROSTER:-$ROOT/infra/local/roster}"
PIDS="$STACK_DIR/pids"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}/debug"

log() { printf '[stack] %s\n' "$*" >&2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() { # host port seconds
  local deadline=$((SECONDS + $3))
  until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
    if ((SECONDS > deadline)); then return 1; fi
    sleep 0.1
  done
}

start() { # name command...
  local name=$1; shift
  nohup "$@" >"$LOGS/$name.log" 2>&1 &
  echo $! >"$PIDS/$name.pid"
}

# A process that exited but was not reaped yet (a zombie: its parent, the shell that started
# it, is gone) counts as stopped.
running() { kill -0 "$1" 2>/dev/null && [[ "$(ps -o stat= -p "$1" 2>/dev/null)" != Z* ]]; }

alive() { [[ -f "$PIDS/$1.pid" ]] && running "$(cat "$PIDS/$1.pid")"; }

# SPEC §3: <GroupID>@@@<DeviceID>; GroupID starts with GID_ or GID-. Checked here only so a
# typo fails loudly; the functions validate every ID they handle.
valid_client_id() { [[ "$1" =~ ^GID[_-][A-Za-z0-9_-]{1,60}@@@[A-Za-z0-9_-]{1,60}$ ]]; }

# Adds client IDs to the clients file with fresh passwords (existing ones are kept), then prints
# `<clientId> <password>` for each. Serialised with flock: tests add clients in parallel.
add_clients() {
  [[ -d "$(dirname "$CLIENTS")" ]] || { log "no stack in $STACK_DIR (run up first)"; return 1; }
  local id
  for id in "$@"; do valid_client_id "$id" || { log "not a client ID (SPEC §3 GID_x@@@y): $id"; return 1; }; done
  (
    flock 9
    umask 077
    touch "$CLIENTS"
    for id in "$@"; do
      grep -q "^$id " "$CLIENTS" || printf '%s %s\n' "$id" "$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')" >>"$CLIENTS"
    done
  ) 9>"$CLIENTS.lock"
  credentials "$@"
}

credentials() {
  [[ -f "$CLIENTS" ]] || { log "no clients file in $STACK_DIR (run up first)"; return 1; }
  if (($# == 0)); then grep -v '^#' "$CLIENTS"; return 0; fi
  local id line
  for id in "$@"; do
    line=$(grep -m1 "^$id " "$CLIENTS") || { log "$id is not in the roster: add-client $id"; return 1; }
    echo "$line"
  done
}

# The roster file: one client ID per line, `#` comments.
roster_ids() { grep -v '^[[:space:]]*\(#\|$\)' "$ROSTER" | tr -d '[:blank:]\r'; }

setup() {
  if ! command -v mosquitto >/dev/null || ! command -v mosquitto_passwd >/dev/null; then
    log "installing mosquitto (Debian)"
    apt-get update -qq && apt-get install -y -qq mosquitto mosquitto-clients >/dev/null
  fi
  if [[ ! -x "$PY" ]]; then python3 -m venv "$VENV"; fi
  if [[ ! -x "$VENV/bin/moto_server" ]] || ! "$PY" -c 'import boto3, yaml' 2>/dev/null; then
    log "installing moto[server], boto3, PyYAML into $VENV"
    "$VENV/bin/pip" install -q 'moto[server]' boto3 PyYAML
  fi
}

up() {
  if alive mosquitto || alive moto; then
    log "already up (STACK_DIR=$STACK_DIR); run down first"; status; return 0
  fi
  setup
  mkdir -p "$LOGS" "$PIDS" "$STACK_DIR/mosquitto"
  [[ -f "$ROSTER" ]] || { log "ROSTER=$ROSTER: no such file (one client ID per line)"; exit 1; }
  rm -f "$CLIENTS"
  mapfile -t ids < <(roster_ids)
  add_clients "${ids[@]}" >/dev/null
  if [[ "${STACK_BUILD:-1}" != 0 || ! -x "$TARGET/local-runner" || ! -x "$TARGET/rules-bridge" || ! -f "$TARGET/libclassroom_broker_plugin.so" ]]; then
    log "building the broker plugin and the local runner (debug)"
    cargo build -q -p broker-plugin -p local-stack
  fi
  local mqtt_port=${MQTT_PORT:-$(free_port)} ws_port=${WS_PORT:-$(free_port)} moto_port=${MOTO_PORT:-$(free_port)}

  # moto_server with DynamoDB requests one at a time (its threads break transactions).
  start moto "$PY" "$ROOT/infra/local/moto_server.py" -H 127.0.0.1 -p "$moto_port"
  wait_port 127.0.0.1 "$moto_port" 30 || { log "moto did not start: $LOGS/moto.log"; exit 1; }
  local vis=()
  [[ -n "${VISIBILITY_TIMEOUT:-}" ]] && vis=(--visibility-timeout "$VISIBILITY_TIMEOUT")
  "$PY" infra/local/provision.py --template infra/template.yaml \
    --endpoint "http://127.0.0.1:$moto_port" --out "$STACK_DIR/stack.env" "${vis[@]}" 2>"$LOGS/provision.log"

  # The backend identity: the only one that may publish under room/ and read $classroom/#.
  local pass
  pass=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  rm -f "$STACK_DIR/mosquitto/passwd"
  mosquitto_passwd -b -c "$STACK_DIR/mosquitto/passwd" backend "$pass" 2>/dev/null
  # Run as root, Mosquitto would drop to user `mosquitto`, which may not be able to reach the
  # ACL file, the plugin or .run/ (a clone under a 0700 directory, as CI's may be): keep root
  # then. It listens on loopback only.
  local user_line=""
  [[ $(id -u) == 0 ]] && user_line="user root"
  cat >"$STACK_DIR/mosquitto/mosquitto.conf" <<EOF
# Generated by infra/local/stack.sh. Loopback only.
$user_line
per_listener_settings false
# Classroom clients: username = client ID, password from the roster (checked by the plugin).
# The backend: password_file.
allow_anonymous false
password_file $STACK_DIR/mosquitto/passwd
acl_file $ROOT/infra/mosquitto/acl
plugin $TARGET/libclassroom_broker_plugin.so
plugin_opt_clients_file $CLIENTS
plugin_opt_backend_username backend
plugin_opt_uplink_parents roomSend
persistence true
persistence_location $STACK_DIR/mosquitto/
max_queued_messages 100000
max_inflight_messages 100
# stderr is unbuffered: the log file is current (stdout to a file is block-buffered)
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
listener $mqtt_port 127.0.0.1
# WebSocket for the browser pages. libwebsockets ignores the address unless the socket
# domain is pinned too (without socket_domain it listens on *:port, checked with ss).
listener $ws_port 127.0.0.1
protocol websockets
socket_domain ipv4
EOF
  start mosquitto mosquitto -c "$STACK_DIR/mosquitto/mosquitto.conf"
  wait_port 127.0.0.1 "$mqtt_port" 10 || { log "mosquitto did not start: $LOGS/mosquitto.log"; exit 1; }
  wait_port 127.0.0.1 "$ws_port" 10 || { log "mosquitto websockets did not start"; exit 1; }

  cat >>"$STACK_DIR/stack.env" <<EOF
AWS_ENDPOINT_URL=http://127.0.0.1:$moto_port
AWS_REGION=us-east-1
AWS_DEFAULT_REGION=us-east-1
AWS_ACCESS_KEY_ID=test
AWS_SECRET_ACCESS_KEY=test
MOTO_PORT=$moto_port
MQTT_HOST=127.0.0.1
MQTT_PORT=$mqtt_port
MQTT_WS_PORT=$ws_port
MQTT_WS_URL=ws://127.0.0.1:$ws_port
MQTT_URL=mqtt://127.0.0.1:$mqtt_port
MQTT_USERNAME=backend
MQTT_PASSWORD=$pass
MQTT_CLIENTS_FILE=$CLIENTS
LOCAL_WAIT_SECONDS=${LOCAL_WAIT_SECONDS:-2}
EOF
  [[ -n "${LOCAL_FUNCTIONS:-}" ]] && echo "LOCAL_FUNCTIONS=$LOCAL_FUNCTIONS" >>"$STACK_DIR/stack.env"
  [[ -n "${VISIBILITY_TIMEOUT:-}" ]] && echo "VISIBILITY_TIMEOUT=$VISIBILITY_TIMEOUT" >>"$STACK_DIR/stack.env"
  chmod 600 "$STACK_DIR/stack.env"

  (set -a; . "$STACK_DIR/stack.env"; set +a; RUST_LOG="${RUST_LOG_LOCAL:-info}" start bridge "$TARGET/rules-bridge")
  (set -a; . "$STACK_DIR/stack.env"; set +a; RUST_LOG="${RUST_LOG_LOCAL:-info}" start runner "$TARGET/local-runner")
  if [[ -n "${STACK_OWNER_PID:-}" ]]; then
    # Tests: tear the stack down when the process that started it is gone, however it ended.
    STACK_DIR="$STACK_DIR" nohup bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2" down' \
      watchdog "$STACK_OWNER_PID" "$ROOT/infra/local/stack.sh" >"$LOGS/watchdog.log" 2>&1 &
    echo $! >"$PIDS/watchdog.pid"
  fi
  sleep 1
  for p in bridge runner; do
    alive "$p" || { log "$p exited at start:"; tail -5 "$LOGS/$p.log" >&2; down; exit 1; }
  done
  status
}

down() {
  local any=0
  if alive watchdog && [[ "$(cat "$PIDS/watchdog.pid")" != "$$" ]]; then
    kill "$(cat "$PIDS/watchdog.pid")" 2>/dev/null || true
  fi
  rm -f "$PIDS/watchdog.pid"
  for p in runner bridge mosquitto moto; do
    if alive "$p"; then
      any=1
      local pid; pid=$(cat "$PIDS/$p.pid")
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do running "$pid" || break; sleep 0.1; done
      running "$pid" && { log "$p ($pid) ignored SIGTERM; killing"; kill -KILL "$pid" 2>/dev/null || true; }
      log "stopped $p ($pid)"
    fi
    rm -f "$PIDS/$p.pid"
  done
  ((any)) || log "nothing running in $STACK_DIR"
}

status() {
  [[ -f "$STACK_DIR/stack.env" ]] || { log "no stack in $STACK_DIR"; return 0; }
  local e="$STACK_DIR/stack.env"
  get() { grep "^$1=" "$e" | head -1 | cut -d= -f2-; }
  cat <<EOF
classroom stack in $STACK_DIR (env: $e)
  mqtt        mqtt://127.0.0.1:$(get MQTT_PORT)     $(alive mosquitto && echo up || echo DOWN)   log $LOGS/mosquitto.log
  websockets  ws://127.0.0.1:$(get MQTT_WS_PORT)       (same broker)
  moto        http://127.0.0.1:$(get MOTO_PORT)     $(alive moto && echo up || echo DOWN)   log $LOGS/moto.log
  bridge      \$classroom/{uplink,presence} -> SQS   $(alive bridge && echo up || echo DOWN)   log $LOGS/bridge.log
  runner      functions <- queues                 $(alive runner && echo up || echo DOWN)   log $LOGS/runner.log
  backend     user backend, password in $e
  clients     $(grep -vc '^#' "$CLIENTS" 2>/dev/null || echo 0) classroom clients: username = client ID, passwords in $CLIENTS
              ($0 credentials [clientId]; add one with: $0 add-client GID_student@@@042)
try:  set -a; . $e; set +a; pw() { $0 credentials "\$1" | cut -d' ' -f2; }
      mosquitto_sub -p \$MQTT_PORT -i GID_student@@@009 -u GID_student@@@009 -P "\$(pw GID_student@@@009)" -t 'room/#' -v
      mosquitto_pub -p \$MQTT_PORT -i GID_student@@@001 -u GID_student@@@001 -P "\$(pw GID_student@@@001)" -t roomSend/message -q 1 -m '{"roomId":"1","msg":"hi"}'
EOF
}

prune() { # test stacks (.run/e2e-<pid>) whose test process is gone, and their logs
  local d pid
  for d in "$ROOT"/.run/e2e-*; do
    [[ -d "$d" ]] || continue
    pid=${d##*/e2e-}
    pid=${pid%%-*}
    kill -0 "$pid" 2>/dev/null || rm -rf "$d"
  done
}

case "${1:-}" in
  setup) setup ;;
  up) up ;;
  down) down ;;
  status) status ;;
  prune) prune ;;
  credentials) shift; credentials "$@" ;;
  add-client) shift; (($#)) || { echo "usage: $0 add-client clientId..." >&2; exit 2; }; add_clients "$@" ;;
  *) echo "usage: $0 setup|up|down|status|credentials [id...]|add-client id...|prune" >&2; exit 2 ;;
esac
