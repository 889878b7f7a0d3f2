#!/usr/bin/env bash
# Set everything up (Debian packages, .venv, Python packages), then run the fast test suite.
# Extra arguments go to pytest (e.g. `scripts/test.sh -m slow` for the learning checks).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
exec .venv/bin/python -m pytest "$@"
