#!/usr/bin/env bash
# Runs a Python protocol peer of the tests (a charge point of the `ocpp` package, an MQTT vehicle
# of paho-mqtt) out of a private venv with the pinned versions of tests/peers/requirements.txt,
# installing them on first use.
#
#   scripts/peers.sh --install-only     install (if needed) and exit 0
#   scripts/peers.sh SCRIPT [ARGS...]   run tests/peers/SCRIPT with the venv's python
#
# The venv lives at ${VOLTBUS_TOOLS_DIR:-<repo>/target/tools}/peers-venv; a marker holding the
# requirements' hash skips the install when nothing changed.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${VOLTBUS_TOOLS_DIR:-$REPO/target/tools}"
VENV="$TOOLS_DIR/peers-venv"
REQUIREMENTS="$REPO/tests/peers/requirements.txt"
MARKER="$VENV/.installed-$(sha256sum "$REQUIREMENTS" | cut -c1-16)"

log() { printf '[peers.sh] %s\n' "$*" >&2; }

install() {
  if [ -f "$MARKER" ] && [ -x "$VENV/bin/python" ]; then
    return 0
  fi
  command -v python3 >/dev/null || { log "error: python3 is missing"; exit 1; }
  mkdir -p "$TOOLS_DIR"
  # Two test processes may both find it missing: one installs, the other waits.
  exec 9>"$TOOLS_DIR/peers.lock"
  flock 9
  if [ -f "$MARKER" ] && [ -x "$VENV/bin/python" ]; then
    return 0
  fi
  log "installing the protocol peers into $VENV"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  rm -f "$VENV"/.installed-*
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  touch "$MARKER"
}

install

if [ "$#" -eq 1 ] && [ "$1" = "--install-only" ]; then
  exit 0
fi

script="$1"
shift
exec "$VENV/bin/python" -u "$REPO/tests/peers/$script" "$@"
