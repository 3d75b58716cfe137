#!/usr/bin/env bash
# Set up (idempotent) and run the default test suite. Extra arguments go to pytest (e.g. --runslow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The browser tests drive Debian's Chromium (tests/test_browser.py); install it once if missing.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing chromium for the browser tests (apt-get)…"
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver; } \
    >/dev/null 2>&1 || echo "Could not install chromium; the browser tests will be skipped (they fail when CI=true)."
fi
exec .venv/bin/python -m pytest -q "$@"
