"""Run the product: the chat at http://127.0.0.1:7860/ and the HTTP API under /api (docs at /docs).

    python app.py [--host 127.0.0.1] [--port 7860] [--index-dir index] [--seeds seeds]

Builds the index from seeds/ into index/ first when there is none (once). Environment:
RAG_HOST, RAG_PORT, RAG_INDEX_DIR, RAG_EMBED_MODEL, RAG_API_TOKEN (protects /api and the chat),
RAG_LLM_URL and RAG_LLM_MODEL (an LLM writes the answers; see the README).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("RAG_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("RAG_PORT", "7860")))
    parser.add_argument("--index-dir", type=Path, default=None, help="default: index/ or $RAG_INDEX_DIR")
    seeds = Path("seeds") if Path("seeds").is_dir() else ROOT / "seeds"  # relative: citations read "seeds/…"
    parser.add_argument("--seeds", type=Path, default=seeds, help="indexed when there is no index yet")
    args = parser.parse_args(argv)
    return _run(["serve", "--host", args.host, "--port", str(args.port), "--seeds", str(args.seeds),
                 *(["--index-dir", str(args.index_dir)] if args.index_dir else [])])


def _run(argv: list[str]) -> int:
    from rag.cli import main as rag_main  # one error path: plain sentences, exit codes of the CLI

    return rag_main(argv)


if __name__ == "__main__":
    sys.exit(main())
