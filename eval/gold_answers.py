"""Answer accuracy and abstention on a gold file: a thin wrapper over `rag eval --gold`.

    python eval/gold_answers.py [--gold eval/gold.jsonl] [--index-dir index] [--failures] [--json] ...

Superseded by `rag eval --gold FILE` (see rag/evaluation.py for the metric definitions); any other
argument is passed through (--baselines, --report DIR, --docs DIR, --json).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.cli import main  # noqa: E402


def translate(argv: list[str]) -> list[str]:
    args = [a for a in argv if a != "--failures"]  # the failures are always listed now
    if "--gold" not in args:
        args = ["--gold", str(Path(__file__).with_name("gold.jsonl")), *args]
    return ["eval", *args]


if __name__ == "__main__":
    sys.exit(main(translate(sys.argv[1:])))
