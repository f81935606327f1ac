#!/usr/bin/env bash
# The local classroom stack (§7): moto (SQS + DynamoDB), the queues and tables provisioned
# from infra/template.yaml, Mosquitto with the classroom broker plugin + ACL + password file,
# the rules bridge and the local event-source runner. Everything on 127.0.0.1.
#
#   infra/local/stack.sh setup     install what is missing (Debian mosquitto, moto in .venv)
#   infra/local/stack.sh up        build, start, provision; writes $STACK_DIR/stack.env
#   infra/local/stack.sh down      stop everything this stack started (by pid file)
#   infra/local/stack.sh status    what runs, where it listens
#   infra/local/stack.sh token <clientId> [room...]   a fresh classroom token (rooms default to
#                                  the directory's); TOKEN_LIFETIME seconds (default 3600)
#   infra/local/stack.sh directory [clientId...]      the school directory: `<clientId> <password> <rooms>`
#   infra/local/stack.sh add-person <clientId> <room>[,<room>...]   add someone to the directory
#   infra/local/stack.sh rotate-keys   new current signing key; the old one still verifies
#   infra/local/stack.sh retire-key <kid>   remove an old signing key: its tokens stop working
#   infra/local/stack.sh prune     remove test stacks (.run/e2e-<pid>) whose process is gone
#
# Sign-in (§8): classroom clients sign in with a token (MQTT username = client ID, password
# = the token), issued by the local token API (the `token` function's own handler, served by
# `local-api`) and verified by the broker plugin with the same code as the AWS IoT custom
# authorizer. `up` makes a signing key set ($STACK_DIR/signin/keys.json, 0600; the same JSON is
# the Secrets Manager secret in moto that the issuer reads) and the school directory from the
# roster (infra/local/roster, or ROSTER=<file>: `<clientId> <room>[,<room>...]` per line), with a
# fresh random password per person in $STACK_DIR/school/directory (0600): the page server's
# "school login" checks it before asking the issuer for a token. Anonymous clients are refused.
#
# TLS: `up` makes a per-stack CA, a server certificate for 127.0.0.1 / localhost and the
# backend's client certificate (CN backend) with `stack-certs` ($STACK_DIR/tls, 0700, files
# 0600). Mosquitto listens only with TLS: the certificate listener (MQTT_CERT_PORT, as IoT Core's
# 8883: require_certificate, the certificate's CN is the username; the backend: inflow, rules
# bridge, tests), the token listener (MQTT_PORT: server certificate only, classroom clients
# sign in with a token) and WSS (MQTT_WS_URL, the browser pages). PLAIN_LISTENER=1 adds a plain
# listener (MQTT_PLAIN_PORT) with the same plugin and ACL, for the tests that write raw MQTT
# packets and the TLS-vs-plain figures. The inflow and the bridge read the backend's
# certificate from the Secrets Manager secret classroom-mqtt in moto ({"certPem","keyPem"}, the
# caPem-less JSON of infra/DEPLOY.md) and trust the stack's CA as a platform root through
# SSL_CERT_FILE ($STACK_DIR/tls/roots.pem: the system bundle plus the stack's CA).
#
# Environment: STACK_DIR (default .run), MQTT_PORT / MQTT_CERT_PORT / WS_PORT / MOTO_PORT /
# API_PORT (default: free ephemeral ports), PLAIN_LISTENER=1 (and MQTT_PLAIN_PORT), VISIBILITY_TIMEOUT (override the template's, for redrive tests only),
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
DIRECTORY="$STACK_DIR/school/directory"
KEYS="$STACK_DIR/signin/keys.json"
REVOCATIONS="$STACK_DIR/signin/revocations.json"
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

# §3: <GroupID>@@@<DeviceID>; GroupID starts with GID_ or GID-. Checked here only so a
# typo fails loudly; the functions validate every ID they handle.
valid_client_id() { [[ "$1" =~ ^GID[_-][A-Za-z0-9_-]{1,60}@@@[A-Za-z0-9_-]{1,60}$ ]]; }

# Adds people to the directory with fresh passwords (an existing entry is kept), then prints
# their lines. Serialised with flock: tests add people in parallel.
add_person() { # clientId rooms
  [[ -d "$(dirname "$DIRECTORY")" ]] || { log "no stack in $STACK_DIR (run up first)"; return 1; }
  valid_client_id "$1" || { log "not a client ID (§3 GID_x@@@y): $1"; return 1; }
  [[ "$2" =~ ^[A-Za-z0-9_-]{1,64}(,[A-Za-z0-9_-]{1,64})*$ ]] || { log "rooms must be room IDs separated by commas: $2"; return 1; }
  (
    flock 9
    umask 077
    touch "$DIRECTORY"
    grep -q "^$1 " "$DIRECTORY" || printf '%s %s %s\n' "$1" "$("$PY" -c 'import secrets; print(secrets.token_urlsafe(12))')" "$2" >>"$DIRECTORY"
  ) 9>"$DIRECTORY.lock"
  directory "$1"
}

directory() {
  [[ -f "$DIRECTORY" ]] || { log "no directory in $STACK_DIR (run up first)"; return 1; }
  if (($# == 0)); then grep -v '^#' "$DIRECTORY"; return 0; fi
  local id line
  for id in "$@"; do
    line=$(grep -m1 "^$id " "$DIRECTORY") || { log "$id is not in the directory: add-person $id <rooms>"; return 1; }
    echo "$line"
  done
}

env_get() { grep "^$1=" "$STACK_DIR/stack.env" | head -1 | cut -d= -f2-; }

# A fresh classroom token from the local issuer, printed alone (for `$(stack.sh token ...)`).
token() { # clientId [room...]
  [[ -f "$STACK_DIR/stack.env" ]] || { log "no stack in $STACK_DIR (run up first)"; return 1; }
  local id=$1; shift
  local rooms=("$@")
  if ((${#rooms[@]} == 0)); then
    local line; line=$(directory "$id") || return 1
    IFS=, read -r -a rooms <<<"$(cut -d' ' -f3 <<<"$line")"
  fi
  "$PY" - "$(env_get TOKEN_API_URL)" "$id" "${TOKEN_LIFETIME:-3600}" "${rooms[@]}" <<'PYEOF'
import json, sys, urllib.request, urllib.error
url, client, lifetime, rooms = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
body = json.dumps({"clientId": client, "rooms": rooms, "expiresIn": lifetime}).encode()
req = urllib.request.Request(url + "/tokens/classroom", data=body, headers={"content-type": "application/json"})
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        print(json.load(r)["token"])
except urllib.error.HTTPError as e:
    sys.exit(f"[stack] token for {client} refused: {e.code} {e.read().decode(errors='replace')}")
except OSError as e:
    sys.exit(f"[stack] the token API at {url} did not answer: {e}")
PYEOF
}

# The signing key set: one JSON for the broker plugin's file and the issuer's secret in moto,
# managed by `signing-keys` (signin::KeySet's own rules): `new`, `rotate`, `retire KID`.
keys() { # new|rotate|retire [kid]
  local op=$1; shift
  "$TARGET/signing-keys" "$op" "$KEYS" "$@"
}

# Writes a file into a secret (moto), creating it the first time.
put_secret() { # endpoint name file
  "$PY" - "$1" "$2" "$3" <<'PYEOF'
import boto3, sys
sm = boto3.client("secretsmanager", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
name, text = sys.argv[2], open(sys.argv[3]).read()
try:
    sm.put_secret_value(SecretId=name, SecretString=text)
except sm.exceptions.ResourceNotFoundException:
    sm.create_secret(Name=name, SecretString=text)
PYEOF
}

# The issuer's signing key set.
put_keys_secret() { put_secret "$1" classroom-signing-keys "$KEYS"; }

# The inflow's (and the bridge's) MQTT secret: exactly the JSON infra/DEPLOY.md has users write
# for AWS IoT Core, the backend's client certificate without caPem.
put_mqtt_secret() { # endpoint
  local json="$STACK_DIR/tls/mqtt-secret.json"
  (umask 077; "$PY" -c 'import json, sys; print(json.dumps({"certPem": open(sys.argv[1]).read(), "keyPem": open(sys.argv[2]).read()}))' \
    "$STACK_DIR/tls/backend.pem" "$STACK_DIR/tls/backend.key" >"$json")
  put_secret "$1" classroom-mqtt "$json"
}

rotate_keys() { keys rotate && put_keys_secret "$(env_get AWS_ENDPOINT_URL)"; }
retire_key() { keys retire "$1" && put_keys_secret "$(env_get AWS_ENDPOINT_URL)"; }

# The roster file: `<clientId> <room>[,<room>...]` per line, `#` comments.
roster_lines() { grep -v '^[[:space:]]*\(#\|$\)' "$ROSTER" | tr -d '\r'; }

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
  mkdir -p "$LOGS" "$PIDS" "$STACK_DIR/mosquitto" "$STACK_DIR/school" "$STACK_DIR/signin"
  chmod 700 "$STACK_DIR/school" "$STACK_DIR/signin"
  [[ -f "$ROSTER" ]] || { log "ROSTER=$ROSTER: no such file (\`<clientId> <room>[,<room>...]\` per line)"; exit 1; }
  rm -f "$DIRECTORY"
  local id rooms
  while read -r id rooms; do add_person "$id" "${rooms:-1}" >/dev/null; done < <(roster_lines)
  umask 077; echo '{}' >"$REVOCATIONS"; umask 022
  if [[ "${STACK_BUILD:-1}" != 0 || ! -x "$TARGET/local-runner" || ! -x "$TARGET/rules-bridge" || ! -x "$TARGET/local-api" || ! -x "$TARGET/signing-keys" || ! -x "$TARGET/stack-certs" || ! -f "$TARGET/libclassroom_broker_plugin.so" ]]; then
    log "building the broker plugin and the local runner (debug)"
    cargo build -q --workspace --locked
  fi
  keys new
  local tls="$STACK_DIR/tls"
  "$TARGET/stack-certs" "$tls" >/dev/null
  # The platform roots of the stack's processes: the system bundle (public HTTPS still works for
  # a shell that sources stack.env) plus the stack's CA.
  (umask 077; { cat /etc/ssl/certs/ca-certificates.crt 2>/dev/null || true; cat "$tls/ca.pem"; } >"$tls/roots.pem")
  local mqtt_port=${MQTT_PORT:-$(free_port)} cert_port=${MQTT_CERT_PORT:-$(free_port)} ws_port=${WS_PORT:-$(free_port)} moto_port=${MOTO_PORT:-$(free_port)} api_port=${API_PORT:-$(free_port)}
  local plain_port=""
  [[ "${PLAIN_LISTENER:-0}" == 1 ]] && plain_port=${MQTT_PLAIN_PORT:-$(free_port)}

  # moto_server with DynamoDB requests one at a time (its threads break transactions).
  start moto "$PY" "$ROOT/infra/local/moto_server.py" -H 127.0.0.1 -p "$moto_port"
  wait_port 127.0.0.1 "$moto_port" 30 || { log "moto did not start: $LOGS/moto.log"; exit 1; }
  local vis=()
  [[ -n "${VISIBILITY_TIMEOUT:-}" ]] && vis=(--visibility-timeout "$VISIBILITY_TIMEOUT")
  "$PY" infra/local/provision.py --template infra/template.yaml \
    --endpoint "http://127.0.0.1:$moto_port" --out "$STACK_DIR/stack.env" "${vis[@]}" 2>"$LOGS/provision.log"
  put_keys_secret "http://127.0.0.1:$moto_port"
  put_mqtt_secret "http://127.0.0.1:$moto_port"
  # Run as root, Mosquitto would drop to user `mosquitto`, which may not be able to reach the
  # ACL file, the plugin or .run/ (a clone under a 0700 directory, as CI's may be): keep root
  # then. It listens on loopback only.
  local user_line=""
  [[ $(id -u) == 0 ]] && user_line="user root"
  cat >"$STACK_DIR/mosquitto/mosquitto.conf" <<EOF
# Generated by infra/local/stack.sh. Loopback only.
$user_line
per_listener_settings false
# Classroom clients: username = client ID, password = a token (verified and enforced by the
# plugin: signature, key, expiry, revocation, client ID; its read/write filters on every
# subscribe, publish and delivery). The backend: its client certificate (CN backend) on the
# certificate listener, and acl_file. No password file: a password sign-in as backend is refused.
allow_anonymous false
acl_file $ROOT/infra/mosquitto/acl
plugin $TARGET/libclassroom_broker_plugin.so
plugin_opt_keys_file $KEYS
plugin_opt_revocations_file $REVOCATIONS
plugin_opt_backend_username backend
plugin_opt_uplink_parents roomSend
# The live classroom sessions, so a restart (SIGTERM or kill -9) publishes their disconnected events.
plugin_opt_sessions_file $STACK_DIR/mosquitto/live-sessions.json
# AWS IoT Core's per-connection publish limit (100/s); PUBLISH_PER_SECOND=0 turns it off (benches).
plugin_opt_publish_per_second ${PUBLISH_PER_SECOND:-100}
persistence true
persistence_location $STACK_DIR/mosquitto/
max_queued_messages 100000
max_inflight_messages 100
# AWS IoT Core's payload limit (128 KB), for every listener (a global option in 2.x): a larger
# publish is not forwarded (nor recorded by the plugin; a QoS 1 one is still PUBACKed). The rules
# bridge's largest incoming packet (bridge::MAX_INCOMING_PACKET) stays above the record of a
# publish at this limit (its payload base64-encoded), or the bridge could never take it.
message_size_limit 131072
# Small TLS records (handshake, CONNACK) would otherwise wait for delayed ACKs (40 ms each).
set_tcp_nodelay true
# stderr is unbuffered: the log file is current (stdout to a file is block-buffered)
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
# The certificate listener, as AWS IoT Core's 8883: a client certificate from the stack's CA
# or no connection, and its CN is the username (the backend).
listener $cert_port 127.0.0.1
cafile $tls/ca.pem
certfile $tls/server.pem
keyfile $tls/server.key
require_certificate true
use_identity_as_username true
# The token listener: TLS with the server certificate; classroom clients sign in with a token.
listener $mqtt_port 127.0.0.1
cafile $tls/ca.pem
certfile $tls/server.pem
keyfile $tls/server.key
# WSS for the browser pages. libwebsockets ignores the address unless the socket domain is
# pinned too (without socket_domain it listens on *:port, checked with ss).
listener $ws_port 127.0.0.1
protocol websockets
socket_domain ipv4
cafile $tls/ca.pem
certfile $tls/server.pem
keyfile $tls/server.key
EOF
  if [[ -n "$plain_port" ]]; then
    printf '# PLAIN_LISTENER=1: plain MQTT (raw-packet tests, TLS-vs-plain figures)\nlistener %s 127.0.0.1\n' "$plain_port" \
      >>"$STACK_DIR/mosquitto/mosquitto.conf"
  fi
  start mosquitto mosquitto -c "$STACK_DIR/mosquitto/mosquitto.conf"
  wait_port 127.0.0.1 "$mqtt_port" 10 || { log "mosquitto did not start: $LOGS/mosquitto.log"; exit 1; }
  wait_port 127.0.0.1 "$cert_port" 10 || { log "mosquitto's certificate listener did not start: $LOGS/mosquitto.log"; exit 1; }
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
MQTT_CERT_PORT=$cert_port
MQTT_WS_PORT=$ws_port
MQTT_WS_URL=wss://127.0.0.1:$ws_port
MQTT_URL=mqtts://127.0.0.1:$cert_port
MQTT_SECRET_ID=classroom-mqtt
MQTT_CA_FILE=$tls/ca.pem
MQTT_CERT_FILE=$tls/backend.pem
MQTT_KEY_FILE=$tls/backend.key
SSL_CERT_FILE=$tls/roots.pem
SCHOOL_DIRECTORY=$DIRECTORY
SIGNING_KEYS_FILE=$KEYS
SIGNING_KEYS_SECRET_ID=classroom-signing-keys
SIGNING_KEYS_REFRESH_SECS=1
TOKEN_MIN_LIFETIME_SECS=1
IOT_ARN_PREFIX=arn:aws:iot:us-east-1:000000000000
LOCAL_API_PORT=$api_port
LOCAL_REVOCATIONS_FILE=$REVOCATIONS
TOKEN_API_URL=http://127.0.0.1:$api_port
PRESENCE_API_URL=http://127.0.0.1:$api_port
LOCAL_WAIT_SECONDS=${LOCAL_WAIT_SECONDS:-2}
EOF
  [[ -n "$plain_port" ]] && echo "MQTT_PLAIN_PORT=$plain_port" >>"$STACK_DIR/stack.env"
  [[ -n "${LOCAL_FUNCTIONS:-}" ]] && echo "LOCAL_FUNCTIONS=$LOCAL_FUNCTIONS" >>"$STACK_DIR/stack.env"
  [[ -n "${VISIBILITY_TIMEOUT:-}" ]] && echo "VISIBILITY_TIMEOUT=$VISIBILITY_TIMEOUT" >>"$STACK_DIR/stack.env"
  chmod 600 "$STACK_DIR/stack.env"

  # The bridge reads UPLINK_QUEUE_URL, PRESENCE_QUEUE_URL and RULE_ERROR_QUEUE_URL (its error
  # action) from stack.env, as provision.py wrote them.
  (set -a; . "$STACK_DIR/stack.env"; set +a; RUST_LOG="${RUST_LOG_LOCAL:-info}" start bridge "$TARGET/rules-bridge")
  (set -a; . "$STACK_DIR/stack.env"; set +a; RUST_LOG="${RUST_LOG_LOCAL:-info}" start runner "$TARGET/local-runner")
  (set -a; . "$STACK_DIR/stack.env"; set +a; RUST_LOG="${RUST_LOG_LOCAL:-info}" start api "$TARGET/local-api")
  wait_port 127.0.0.1 "$api_port" 20 || { log "local-api did not start: $LOGS/api.log"; tail -5 "$LOGS/api.log" >&2; down; exit 1; }
  if [[ -n "${STACK_OWNER_PID:-}" ]]; then
    # Tests: tear the stack down when the process that started it is gone, however it ended.
    STACK_DIR="$STACK_DIR" nohup bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2" down' \
      watchdog "$STACK_OWNER_PID" "$ROOT/infra/local/stack.sh" >"$LOGS/watchdog.log" 2>&1 &
    echo $! >"$PIDS/watchdog.pid"
  fi
  sleep 1
  for p in bridge runner api; do
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
  for p in api runner bridge mosquitto moto; do
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
  mqtts       mqtts://127.0.0.1:$(get MQTT_PORT)    $(alive mosquitto && echo up || echo DOWN)   log $LOGS/mosquitto.log   (token listener: classroom clients)
  certificate mqtts://127.0.0.1:$(get MQTT_CERT_PORT)    (same broker; client certificate required: the backend, CN backend)
  websockets  wss://127.0.0.1:$(get MQTT_WS_PORT)      (same broker; the browser pages)
  plain       $( [[ -n "$(get MQTT_PLAIN_PORT)" ]] && echo "mqtt://127.0.0.1:$(get MQTT_PLAIN_PORT)     (same broker; PLAIN_LISTENER=1)" || echo "none (PLAIN_LISTENER=1 make up adds one)")
  tls         CA $(get MQTT_CA_FILE); backend certificate $(get MQTT_CERT_FILE) (key beside it)
  moto        http://127.0.0.1:$(get MOTO_PORT)     $(alive moto && echo up || echo DOWN)   log $LOGS/moto.log
  bridge      \$classroom/{uplink,presence} -> SQS   $(alive bridge && echo up || echo DOWN)   log $LOGS/bridge.log
  runner      functions <- queues                 $(alive runner && echo up || echo DOWN)   log $LOGS/runner.log
  backend     client certificate CN backend; its secret classroom-mqtt in moto
  api         http://127.0.0.1:$(get LOCAL_API_PORT)   $(alive api && echo up || echo DOWN)   log $LOGS/api.log
              tokens:   POST $(get TOKEN_API_URL)/tokens/classroom {"clientId","rooms":[..],"expiresIn"}
              presence: GET  $(get PRESENCE_API_URL)/presence/<clientId>
  directory   $(grep -vc '^#' "$DIRECTORY" 2>/dev/null || echo 0) people with passwords and rooms in $DIRECTORY
              ($0 directory [clientId]; add one with: $0 add-person GID_student@@@042 1)
  sign-in     username = client ID, password = a token: $0 token <clientId> [room...]
try:  set -a; . $e; set +a
      mosquitto_sub --cafile \$MQTT_CA_FILE -h 127.0.0.1 -p \$MQTT_PORT -i GID_student@@@009 -u GID_student@@@009 -P "\$($0 token GID_student@@@009)" -t 'room/message/1' -v
      mosquitto_pub --cafile \$MQTT_CA_FILE -h 127.0.0.1 -p \$MQTT_PORT -i GID_student@@@001 -u GID_student@@@001 -P "\$($0 token GID_student@@@001)" -t roomSend/message -q 1 -m '{"roomId":"1","msg":"hi"}'
      mosquitto_sub --cafile \$MQTT_CA_FILE --cert \$MQTT_CERT_FILE --key \$MQTT_KEY_FILE -h 127.0.0.1 -p \$MQTT_CERT_PORT -i backend-cli -t 'room/#' -v
      curl -s -X POST \$TOKEN_API_URL/tokens/classroom -H 'content-type: application/json' -d '{"clientId":"GID_student@@@001","rooms":["1"],"expiresIn":600}'
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
  directory) shift; directory "$@" ;;
  add-person) shift; (($# == 2)) || { echo "usage: $0 add-person clientId room[,room...]" >&2; exit 2; }; add_person "$@" ;;
  token) shift; (($#)) || { echo "usage: $0 token clientId [room...]" >&2; exit 2; }; token "$@" ;;
  rotate-keys) rotate_keys ;;
  retire-key) shift; (($# == 1)) || { echo "usage: $0 retire-key kid" >&2; exit 2; }; retire_key "$1" ;;
  *) echo "usage: $0 setup|up|down|status|token id [room...]|directory [id...]|add-person id rooms|rotate-keys|retire-key kid|prune" >&2; exit 2 ;;
esac
