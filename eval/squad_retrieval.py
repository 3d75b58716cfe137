"""Retrieval and answers on a SQuAD-format file: a thin wrapper over `rag eval --squad`.

    python eval/squad_retrieval.py ../shared/benchdata/uit-viquad-1.0/dev_ViQuAD.json [--limit N] [--model none]

Every passage is indexed as one .txt document in a temporary index; recall@1/5/10, MRR@10 and
nDCG@10 over documents, EM/F1, for the questions as written and with every diacritic stripped.
Superseded by `rag eval --squad FILE`; other arguments (--json, --baselines, --report DIR) pass through.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.cli import main  # noqa: E402


def translate(argv: list[str]) -> list[str]:
    if not argv or argv[0].startswith("-"):
        raise SystemExit(__doc__)
    squad, rest = argv[0], argv[1:]
    if "--model" not in rest:
        rest = ["--model", "none", *rest]  # as before: BM25 only unless a model is named
    return ["eval", "--squad", squad, *rest]


if __name__ == "__main__":
    sys.exit(main(translate(sys.argv[1:])))
