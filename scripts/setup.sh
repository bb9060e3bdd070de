#!/usr/bin/env bash
# Sets up a fresh machine: Debian packages the project drives (Chromium, Xvfb, …), a virtual
# environment in .venv, and pixelpilot installed into it with the extras named on the command line.
#   scripts/setup.sh            # what the demo needs
#   scripts/setup.sh test       # what the tests need too
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-demo}"
apt_pkgs=(chromium chromium-headless-shell)
extras="browser"
if [ "$mode" = test ]; then
  apt_pkgs+=(xvfb openbox xterm x11-utils python3-tk scrot xdotool xclip bubblewrap adb)
  # The desktop's accessibility tree: a session bus, AT-SPI's bus and registry, GTK 3's bridge, and
  # two GTK programs the tests drive (tests/test_desktop_a11y.py).
  apt_pkgs+=(dbus-daemon at-spi2-core libatk-adaptor galculator mousepad)
  extras="browser,desktop,android,ray,dev,export,replay,tools,local,ocr,miniwob,server,train"
fi

missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
fi
stamp=".venv/.pixelpilot-$mode-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing pixelpilot[$extras] into .venv"
  # (this machine's pip config names local mirrors that may be absent: hide those warnings only)
  .venv/bin/pip install -q --disable-pip-version-check -e ".[$extras]" 2>&1 | { grep -v "^WARNING: Location" || true; }
  touch "$stamp"
fi
