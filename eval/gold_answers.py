"""Answer accuracy and abstention on a gold file (eval/gold.jsonl format), through the real pipeline.

    python eval/gold_answers.py [--gold eval/gold.jsonl] [--index-dir index] [--failures]

answer_accuracy: answerable questions whose `answer` contains a gold answer (NFC, lowercase,
modern tone placement, spaces collapsed) and that cite the gold document.
abstention_accuracy: unanswerable questions abstained on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.api import RAG  # noqa: E402
from rag.text import normalize_query  # noqa: E402


def norm(text: str) -> str:
    return " ".join(normalize_query(text).lower().split())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--gold", type=Path, default=Path("eval/gold.jsonl"))
    ap.add_argument("--index-dir", type=Path, default=Path("index"))
    ap.add_argument("--failures", action="store_true", help="list the questions that failed")
    args = ap.parse_args()
    rag = RAG.open(args.index_dir)
    rows = [json.loads(line) for line in args.gold.read_text("utf-8").splitlines() if line.strip()]
    correct = abstained = answerable = unanswerable = 0
    failures = []
    t = time.perf_counter()
    for row in rows:
        a = rag.ask(row["question"])
        if row["answerable"]:
            answerable += 1
            good = (not a.abstained and a.answer is not None
                    and any(norm(g) in norm(a.answer) for g in row["answers"])
                    and any(c.doc_id == row["doc"] for c in a.citations))
            correct += good
            if not good:
                failures.append({"id": row["id"], "question": row["question"], "gold": row["answers"], "answer": a.answer})
        else:
            unanswerable += 1
            abstained += a.abstained
            if not a.abstained:
                failures.append({"id": row["id"], "question": row["question"], "gold": None, "answer": a.answer})
    elapsed = time.perf_counter() - t
    print(json.dumps({
        "questions": len(rows),
        "answer_accuracy": round(correct / max(answerable, 1), 4),
        "abstention_accuracy": round(abstained / max(unanswerable, 1), 4),
        "ms_per_question": round(1000 * elapsed / max(len(rows), 1), 2),
        "mode": rag.mode,
    }, ensure_ascii=False))
    if args.failures:
        for f in failures:
            print(json.dumps(f, ensure_ascii=False))


if __name__ == "__main__":
    main()
