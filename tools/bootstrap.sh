#!/usr/bin/env bash
# Installs what Fieldradio needs on a Debian machine, and only what is missing:
# system libraries through apt (with sudo when not root), then .venv with the
# project and its dev extras. A second run finds everything and does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

# libopus0: the voice codec (opuslib loads it); portaudio19-dev: pyaudio builds on it;
# gpsd + gpsd-clients: gpsfake replays NMEA logs in the radio's GPS tests;
# systemd (systemd-analyze), python3-seccomp, util-linux (unshare): the test that runs the
# relay inside its systemd unit's sandbox (tests/test_deploy_sandbox.py);
# coturn: the TURN relay private calls fall back to (the tests start their own on 127.0.0.1);
# nats-server + postgresql: the cluster's bus and shared store (the tests start their own).
SYSTEM_PACKAGES=(libopus0 portaudio19-dev gcc python3-dev python3-venv gpsd gpsd-clients
  systemd python3-seccomp util-linux coturn nats-server postgresql)

missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian enables coturn.service at install with a config that grants unauthenticated
# allocations on every interface: an open relay. Fieldradio starts its own, locked down.
if [ -d /run/systemd/system ] && systemctl is-enabled --quiet coturn 2>/dev/null; then
  echo "bootstrap: disabling Debian's coturn service (an open relay as installed)"
  $sudo systemctl disable --now coturn >/dev/null 2>&1 || true
fi

PYTHON=${PYTHON:-python3}
stamp=.venv/.installed
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing fieldradio and its dev extras into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
