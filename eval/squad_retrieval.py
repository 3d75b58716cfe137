"""Retrieval on a SQuAD-format file: every passage is indexed as one .txt document.

    python eval/squad_retrieval.py ../shared/benchdata/uit-viquad-1.0/dev_ViQuAD.json

Prints Recall@1/5/10 and MRR@10 over documents (the first hit of each document counts), for the
questions as written and with every diacritic stripped.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.api import RAG  # noqa: E402
from rag.text import fold  # noqa: E402


def load_squad(path: Path) -> tuple[dict[str, str], list[dict]]:
    """Passages keyed by a stable id, and questions with the id of their passage."""
    data = json.loads(path.read_text("utf-8"))["data"]
    passages: dict[str, str] = {}
    questions: list[dict] = []
    for a, article in enumerate(data):
        for p, para in enumerate(article["paragraphs"]):
            pid = f"p{a:03d}_{p:03d}"
            passages[pid] = para["context"]
            for qa in para["qas"]:
                questions.append({"id": qa["id"], "question": qa["question"], "doc": pid,
                                  "answers": [x["text"] for x in qa.get("answers", [])]})
    return passages, questions


def write_corpus(passages: dict[str, str], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for pid, text in passages.items():
        (folder / f"{pid}.txt").write_text(text, "utf-8")


def doc_ranking(hits) -> list[str]:
    return list(dict.fromkeys(h.chunk.doc_id for h in hits))


def score(rag: RAG, questions: list[dict], strip: bool = False, k: int = 10) -> dict:
    r = {1: 0, 5: 0, 10: 0}
    raw5 = 0
    mrr = 0.0
    for q in questions:
        text = fold(q["question"]) if strip else q["question"]
        hits = rag.search(text, k)
        docs = doc_ranking(hits)
        raw5 += q["doc"] in [h.chunk.doc_id for h in hits[:5]]
        if q["doc"] in docs:
            rank = docs.index(q["doc"]) + 1
            mrr += 1 / rank
            for cut in r:
                r[cut] += rank <= cut
    n = len(questions)
    return {"recall@1": r[1] / n, "recall@5": r[5] / n, "recall@10": r[10] / n, "mrr@10": mrr / n,
            "recall@5_hits": raw5 / n, "questions": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("squad", type=Path)
    ap.add_argument("--model", default="none")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--chunk-size", type=int, default=1000)
    args = ap.parse_args()
    passages, questions = load_squad(args.squad)
    if args.limit:
        questions = questions[: args.limit]
    with tempfile.TemporaryDirectory() as tmp:
        write_corpus(passages, Path(tmp) / "corpus")
        t = time.perf_counter()
        rag, report = RAG.build([Path(tmp) / "corpus"], Path(tmp) / "index", model=args.model, chunk_size=args.chunk_size)
        print(f"{report.summary()} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        for strip in (False, True):
            t = time.perf_counter()
            res = score(rag, questions, strip)
            res["ms_per_query"] = 1000 * (time.perf_counter() - t) / len(questions)
            print(json.dumps({"stripped": strip, **{k: round(v, 4) for k, v in res.items()}}))


if __name__ == "__main__":
    main()
