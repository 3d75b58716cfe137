#!/usr/bin/env bash
# Set up a virtual environment in .venv with everything the product and its tests need.
# The CPU build of torch goes in first: otherwise pip pulls several GB of CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test]"
# The default index (index/) of the seed documents, so that `rag ask` answers right away; kept when present.
if [ ! -f index/CURRENT ]; then
  .venv/bin/rag index seeds --index-dir index --quiet
fi
echo "Set up .venv ($(.venv/bin/python --version)) and index/."
