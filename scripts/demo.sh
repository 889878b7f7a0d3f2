#!/usr/bin/env bash
# Set everything up (Debian packages, .venv, Python packages), then run the main demo into ./demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
exec .venv/bin/python -m embodied demo --out demo "$@"
