#!/usr/bin/env bash
# Idempotent setup: Debian packages for headless rendering, a virtual env in .venv,
# the CPU build of torch (pinned, installed first), then this project with its extras.
# Usage: scripts/setup.sh [extra,...]   (default extras: dev)
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-dev}"
PY="${PYTHON:-python3.11}"

# 1. Debian packages for headless OpenGL (EGL, with OSMesa as the fallback); with the dev
#    extra also chromium, in which the tests open the comparison report headless.
DEB_PKGS=(libegl1 libopengl0 libgl1-mesa-dri libosmesa6)
case ",$EXTRAS," in *,dev,*) DEB_PKGS+=(chromium) ;; esac
missing=()
for p in "${DEB_PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "[setup] installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# 2. The virtual env.
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $PY"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python

# 3. Python packages: torch first (CPU build, pinned), then the project.
stamp=.venv/.installed-$(cat pyproject.toml scripts/setup.sh | sha1sum | cut -c1-12)-${EXTRAS//,/_}
if [ ! -f "$stamp" ]; then
  echo "[setup] installing Python packages (torch==2.13.0 CPU first, then .[${EXTRAS}]); log: .venv/install.log"
  log=.venv/install.log
  if ! { "$VPY" -m pip install -q --upgrade pip &&
         "$VPY" -m pip install -q "torch==2.13.0" &&
         "$VPY" -m pip install -q -e ".[${EXTRAS}]"; } >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "[setup] pip install failed; the full log is in $log" >&2
    exit 1
  fi
  rm -f .venv/.installed-*
  touch "$stamp"
fi
echo "[setup] ready: $("$VPY" -c 'import sys; print(sys.version.split()[0])') in .venv"
