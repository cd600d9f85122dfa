#!/usr/bin/env bash
# Runs a pinned schemathesis (from PyPI) out of a private venv, installing it on first use.
#
#   scripts/schemathesis.sh --install-only      install (if needed) and exit 0
#   scripts/schemathesis.sh --validate FILE     check an OpenAPI document with openapi-spec-validator
#   scripts/schemathesis.sh run URL [OPTIONS]   any other arguments go to the schemathesis CLI
#
# The venv lives at ${VOLTBUS_TOOLS_DIR:-<repo>/target/tools}/schemathesis-venv. Installing is
# skipped when a marker file says the pinned version is already there, so repeat runs are instant.
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5
# The OpenAPI Initiative's reference validator for Python, installed beside it.
VALIDATOR_VERSION=0.9.0

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${VOLTBUS_TOOLS_DIR:-$REPO/target/tools}"
VENV="$TOOLS_DIR/schemathesis-venv"
MARKER="$VENV/.schemathesis-$SCHEMATHESIS_VERSION-validator-$VALIDATOR_VERSION.installed"

log() { printf '[schemathesis.sh] %s\n' "$*" >&2; }

install() {
  if [ -f "$MARKER" ] && [ -x "$VENV/bin/schemathesis" ]; then
    return 0
  fi
  command -v python3 >/dev/null || { log "error: python3 is missing"; exit 1; }
  log "installing schemathesis==$SCHEMATHESIS_VERSION into $VENV"
  mkdir -p "$TOOLS_DIR"
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  rm -f "$VENV"/.schemathesis-*.installed
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION" "openapi-spec-validator==$VALIDATOR_VERSION"
  touch "$MARKER"
}

install

if [ "$#" -eq 1 ] && [ "$1" = "--install-only" ]; then
  exit 0
fi

if [ "$#" -eq 2 ] && [ "$1" = "--validate" ]; then
  exec "$VENV/bin/openapi-spec-validator" "$2"
fi

# Hypothesis otherwise writes a .hypothesis/ folder into the current directory.
export HYPOTHESIS_STORAGE_DIRECTORY="${HYPOTHESIS_STORAGE_DIRECTORY:-$TOOLS_DIR/hypothesis}"
exec "$VENV/bin/schemathesis" "$@"
