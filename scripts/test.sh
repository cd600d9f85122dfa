#!/usr/bin/env bash
# Runs every voltbus test against real PostgreSQL, RabbitMQ and NATS (JetStream).
#
# For each service: if it answers, use it; if it is installed but down, start it; if it is missing,
# install it from Debian's packages and start it. Then wait until each answers and run the suite.
# Extra arguments go to `cargo nextest run` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m[test.sh]\033[0m %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Root runs package and service commands directly; anyone else needs sudo.
if [ "$(id -u)" -eq 0 ]; then SUDO=(); elif command -v sudo >/dev/null; then SUDO=(sudo); else SUDO=(); fi
as_root() { "${SUDO[@]}" "$@"; }

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || die "$* is missing and this is not a Debian system: install it by hand"
  if [ "$APT_UPDATED" -eq 0 ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  log "installing $* from Debian packages"
  # Without systemd (containers, CI) a package's own service start fails the install; this
  # script starts the services itself, so tell the packages not to (policy-rc.d exit 101).
  local policy=/usr/sbin/policy-rc.d placed=0
  if ! [ -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null && as_root chmod +x "$policy" && placed=1
  fi
  local status=0
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || status=$?
  if [ "$placed" -eq 1 ]; then as_root rm -f "$policy"; fi
  return $status
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_until() { # wait_until SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2; shift 2
  for _ in $(seq 1 "$((seconds * 2))"); do
    if "$@"; then return 0; fi
    sleep 0.5
  done
  die "$what did not come up within ${seconds}s"
}

# --- PostgreSQL -------------------------------------------------------------------------------
postgres_ready() { PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d test -tAc 'select 1' >/dev/null 2>&1; }
ensure_postgres() {
  if ! command -v pg_ctlcluster >/dev/null; then apt_install postgresql postgresql-client; fi
  if ! port_open 5432; then
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    [ -n "$version" ] || die "PostgreSQL is installed but has no cluster under /etc/postgresql"
    log "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
    wait_until 60 PostgreSQL port_open 5432
  fi
  if ! postgres_ready; then
    # A fresh install asks TCP clients for a password and has no `test` database: give both.
    log "preparing PostgreSQL: password for postgres, database test"
    as_root su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
    as_root su postgres -c "createdb test" 2>/dev/null || true
  fi
  wait_until 30 "PostgreSQL (database test)" postgres_ready
  log "PostgreSQL is up"
}

# --- RabbitMQ ---------------------------------------------------------------------------------
# Every test platform declares its groups' quorum queues (two hundred and more at once); with
# the 1,024 open files `su rabbitmq` leaves the broker, its file handle cache runs out and the
# broker stops answering (seen here: virtual hosts never created). So it is started with the
# hard limit as its soft one.
start_rabbitmq() {
  if [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] && id rabbitmq >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    su rabbitmq -s /bin/sh -c 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec /usr/lib/rabbitmq/bin/rabbitmq-server -detached'
  else
    as_root sh -c 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec rabbitmq-server -detached'
  fi
}

# Stops the running broker (politely, then not) and starts it again with the management plugin
# and the open-files limit above.
restart_rabbitmq() {
  grep -q rabbitmq_management /etc/rabbitmq/enabled_plugins 2>/dev/null \
    || echo '[rabbitmq_management].' | as_root tee /etc/rabbitmq/enabled_plugins >/dev/null
  timeout 30 "${SUDO[@]}" rabbitmqctl stop >/dev/null 2>&1 || as_root pkill -u rabbitmq beam.smp || true
  local _
  for _ in $(seq 1 40); do port_open 5672 || break; sleep 0.5; done
  as_root pkill -9 -u rabbitmq beam.smp 2>/dev/null || true
  start_rabbitmq
  wait_until 120 RabbitMQ port_open 5672
  timeout 120 "${SUDO[@]}" rabbitmqctl await_startup >/dev/null 2>&1 || true
}

# The soft open-files limit of the running broker (empty when it cannot be read).
rabbitmq_open_files() {
  local pid
  pid=$(pgrep -u rabbitmq beam.smp 2>/dev/null | head -n 1 || true)
  [ -n "$pid" ] && [ -r "/proc/$pid/limits" ] && awk '/Max open files/ {print $4}' "/proc/$pid/limits"
}

ensure_rabbitmq() {
  if ! command -v rabbitmq-server >/dev/null && ! [ -x /usr/sbin/rabbitmq-server ]; then apt_install rabbitmq-server; fi
  if ! port_open 5672; then
    log "starting RabbitMQ"
    start_rabbitmq
    wait_until 120 RabbitMQ port_open 5672
    timeout 120 "${SUDO[@]}" rabbitmqctl await_startup >/dev/null 2>&1 || true
  fi
  # A broker started by the machine's own service scripts has 1,024 open files (seen on a fresh
  # machine here): the suite would stall it, so it is restarted with the hard limit.
  # Only when the hard limit is higher, or every run would restart it for nothing.
  local files hard
  files=$(rabbitmq_open_files || true)
  hard=$(ulimit -Hn)
  if [ -n "$files" ] && [ "$files" -lt 4096 ] 2>/dev/null \
    && { [ "$hard" = unlimited ] || [ "$hard" -gt "$files" ]; }; then
    log "RabbitMQ runs with $files open files; restarting it with $hard"
    restart_rabbitmq
  fi
  # Subscriptions (an integration's own queue and broker user) and the tests' virtual hosts are
  # set up through the management API. Enabling the plugin on the running broker needs no
  # restart, but its command can hang on a busy broker (seen here): it is given a minute, and
  # the plugin file it wrote first then takes effect through a restart of the broker.
  if ! port_open 15672; then
    log "enabling RabbitMQ's management API"
    timeout 60 "${SUDO[@]}" rabbitmq-plugins enable rabbitmq_management >/dev/null 2>&1 || true
    local _
    for _ in $(seq 1 40); do port_open 15672 && break; sleep 0.5; done
    if ! port_open 15672; then
      log "the management plugin did not start on the running broker; restarting RabbitMQ with it"
      restart_rabbitmq
    fi
    wait_until 60 "RabbitMQ management API" port_open 15672
  fi
  files=$(rabbitmq_open_files || true)
  if [ -n "$files" ] && [ "$files" -lt 4096 ] 2>/dev/null; then
    log "warning: RabbitMQ still runs with $files open files; the suite may stall it"
  fi
  log "RabbitMQ is up (management API on 15672)"
}

# --- NATS with JetStream ----------------------------------------------------------------------
nats_has_jetstream() { # The server's INFO line says whether JetStream is on.
  local info
  info=$(timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$1"'; head -n 1 <&3' 2>/dev/null) || return 1
  [[ "$info" == *'"jetstream":true'* ]]
}
ensure_nats() {
  local bin
  bin=$(command -v nats-server || echo /usr/sbin/nats-server)
  if ! [ -x "$bin" ]; then apt_install nats-server; bin=$(command -v nats-server || echo /usr/sbin/nats-server); fi
  if ! port_open 4222; then
    log "starting NATS with JetStream"
    as_root mkdir -p /var/lib/nats-server
    as_root start-stop-daemon --start --oknodo --background --exec "$bin" -- \
      -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
    wait_until 30 NATS port_open 4222
  fi
  if ! nats_has_jetstream 4222; then
    # Someone else's server without JetStream: leave it alone and run our own beside it.
    log "NATS on 4222 has no JetStream; starting a private one on 14222"
    local dir
    dir=$(mktemp -d)
    "$bin" -a 127.0.0.1 -p 14222 -js -sd "$dir" -l "$dir/nats.log" &
    wait_until 30 "private NATS" port_open 14222
    export VOLTBUS_TEST_NATS=nats://127.0.0.1:14222
  fi
  log "NATS (JetStream) is up"
}

ensure_nextest() {
  command -v cargo >/dev/null || die "cargo is missing: install Rust (rustup) first"
  if ! cargo nextest --version >/dev/null 2>&1; then
    log "installing cargo-nextest from crates.io"
    cargo install cargo-nextest --locked
  fi
}

# schemathesis (pinned, from PyPI) tests the partner API against its OpenAPI document.
ensure_schemathesis() {
  if ! command -v python3 >/dev/null; then apt_install python3 python3-venv; fi
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then apt_install python3-venv; fi
  "$(dirname "$0")/schemathesis.sh" --install-only
  log "schemathesis is installed"
}

# The protocol peers (pinned, from PyPI: tests/peers/requirements.txt): OCPP charge points of the
# `ocpp` package and an MQTT unit of paho-mqtt.
ensure_peers() {
  "$(dirname "$0")/peers.sh" --install-only
  log "the protocol peers are installed"
}

# The webhook signature tests run the Levy Fleets seed's own Node.js verifier on our deliveries.
ensure_node() {
  if ! command -v node >/dev/null; then apt_install nodejs; fi
}

# The console's browser test drives Debian's Chromium with playwright-core (pinned in
# tests/console/package-lock.json); never a browser Playwright would download.
ensure_browser() {
  if ! [ -x /usr/bin/chromium ]; then apt_install chromium; fi
  if ! [ -d tests/console/node_modules/playwright-core ]; then
    log "installing playwright-core for the console's browser test"
    (cd tests/console && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# The AsyncAPI Initiative's parser (pinned in tests/asyncapi/package-lock.json) checks the
# AsyncAPI document.
ensure_asyncapi_parser() {
  if ! [ -d tests/asyncapi/node_modules/@asyncapi/parser ]; then
    log "installing @asyncapi/parser for the AsyncAPI document's test"
    (cd tests/asyncapi && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

ensure_postgres
ensure_rabbitmq
# Tests make a database each (vb_…) and leave it for inspection until the next run: hundreds of
# them keep PostgreSQL's autovacuum cycling through databases. Drop the previous run's.
for database in $(PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d test -tAc \
    "select datname from pg_database where datname like 'vb\_%'" 2>/dev/null || true); do
  PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" \
    >/dev/null 2>&1 || true
done
# Tests make a virtual host each (vb_…) and delete it; one left by an interrupted run would keep
# its quorum queues busy in RabbitMQ.
for vhost in $(as_root rabbitmqctl list_vhosts -q 2>/dev/null | grep '^vb_' || true); do
  as_root rabbitmqctl delete_vhost -q "$vhost" >/dev/null 2>&1 || true
done
ensure_nats
# The cluster suite's PostgreSQL failover goes through HAProxy (sqlx connects to one host).
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || apt_install haproxy
ensure_nextest
ensure_node
ensure_browser
ensure_asyncapi_parser
ensure_schemathesis
ensure_peers

# Virtual hosts (`vb_…`) that earlier runs' failed tests left behind hold dozens of quorum queues
# each; piled up, they slow the broker for everyone (a command's round trip doubled) and once
# wedged its vhost supervisor. One suite at a time owns the test broker, so clear them first.
clear_test_vhosts() {
  python3 - <<'PY' || log "could not clear leftover virtual hosts (management API unreachable?)"
import base64, json, urllib.request
auth = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}
def call(method, path):
    request = urllib.request.Request("http://127.0.0.1:15672" + path, method=method, headers=auth)
    with urllib.request.urlopen(request, timeout=60) as answer:
        return answer.read()
left = [v["name"] for v in json.loads(call("GET", "/api/vhosts")) if v["name"].startswith("vb_")]
for name in left:
    call("DELETE", "/api/vhosts/" + name)
print(f"[test.sh] cleared {len(left)} leftover test virtual hosts")
PY
}
clear_test_vhosts

profile=default
[ -n "${CI:-}" ] && profile=ci
log "doc tests"
cargo test --workspace --doc --quiet
log "test suite (nextest profile $profile)"
status=0
cargo nextest run --workspace --profile "$profile" "$@" || status=$?

# --- Fuzzing ----------------------------------------------------------------------------------
# The decoders of what comes from outside (messages, webhook signatures) get a bounded fuzzing
# run after the whole suite (not when arguments pick tests). cargo fuzz wants a nightly compiler
# for its instrumentation flags; RUSTC_BOOTSTRAP lets this machine's stable one take them.
# Without a sanitizer, a panic or an abort is what fails a target.
fuzz() {
  local seconds="${VOLTBUS_FUZZ_SECONDS:-30}" target
  if ! command -v cargo-fuzz >/dev/null; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --version 0.13.2 --locked --quiet
  fi
  for target in decode_envelope verify_signature; do
    log "fuzzing $target for $seconds s"
    mkdir -p "fuzz/corpus/$target"
    local seeds=()
    [ "$target" = decode_envelope ] && seeds=(schemas/tests/golden)
    local output="target/fuzz-$target.log"
    mkdir -p target
    if ! (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none "$target" "corpus/$target" "${seeds[@]/#/../}" \
      -- -max_total_time="$seconds" -print_final_stats=1) >"$output" 2>&1; then
      tail -n 40 "$output"
      return 1
    fi
    grep -E "^(Done|stat::number_of_executed_units)" "$output" || true
  done
}
if [ "$#" -eq 0 ] && [ "$status" -eq 0 ]; then
  fuzz || { log "a fuzz target failed (its crash input is under fuzz/artifacts/)"; status=1; }
fi
exit "$status"
