"""Fit the retriever's fusion weights with the real model, cross-validated by article.

    python eval/fit_retrieval.py [SQUAD.json] [--index-cache DIR] [--folds 5] [--write]

Indexes every passage of a SQuAD-format file (UIT-ViQuAD dev by default) once with the default
embedding model (cached in DIR), runs the product's own `Retriever.search` for every question, as
written and stripped of diacritics, under each setting of a small grid, and reports:
- recall@1/5/10 of each setting on all questions (in-sample: for reading, not for claims);
- the cross-validated figures: for each of K folds grouped by article, the setting that is best on
  the other folds' questions (mean of R@1 and R@5), scored on the fold's own questions.
`--write` stores the setting best on all questions in rag/data/retrieval.json, which RetrievalConfig
reads. The weights for questions with and without diacritics are chosen separately.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.api import RAG  # noqa: E402
from rag.evaluation import load_squad  # noqa: E402
from rag.query import analyse  # noqa: E402
from rag.retriever import WEIGHTS_FILE, RetrievalConfig, Retriever  # noqa: E402
from rag.text import fold  # noqa: E402

DEFAULT_SQUAD = ROOT.parent / "shared" / "benchdata" / "uit-viquad-1.0" / "dev_ViQuAD.json"
GRID = {
    "dense_weight": [0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
    "sentence_coverage": [0.5, 1.0],
}


def open_index(squad: Path, cache: Path, model: str | None) -> tuple[RAG, list]:
    passages, items = load_squad(squad)
    if not (cache / "CURRENT").exists():
        corpus = cache.parent / f"{cache.name}-corpus"
        corpus.mkdir(parents=True, exist_ok=True)
        for pid, text in passages.items():
            (corpus / f"{pid}.txt").write_text(text, "utf-8")
        t0 = time.perf_counter()
        RAG.build([corpus], cache, model=model, progress=True)
        print(f"indexed {len(passages)} passages in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    rag = RAG.open(cache)
    if rag.mode != "dense":
        raise SystemExit("the index has no vectors: the embedding model could not be loaded")
    return rag, [i for i in items if i.answerable]


def ranks(retriever: Retriever, queries: list, k: int = 10) -> np.ndarray:
    """Rank (1-based, 0 = beyond k) of each question's passage among the documents retrieved."""
    out = np.zeros(len(queries), dtype=np.int32)
    for n, (query, doc) in enumerate(queries):
        seen: list[str] = []
        for hit in retriever.search(query, k):
            if hit.chunk.doc_id not in seen:
                seen.append(hit.chunk.doc_id)
        out[n] = seen.index(doc) + 1 if doc in seen else 0
    return out


def recall(r: np.ndarray, k: int) -> float:
    return float(np.mean((r >= 1) & (r <= k))) if len(r) else 0.0


def objective(r: np.ndarray) -> float:
    return (recall(r, 1) + recall(r, 5)) / 2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("squad", nargs="?", type=Path, default=DEFAULT_SQUAD)
    ap.add_argument("--index-cache", type=Path, default=ROOT / ".cache" / "viquad-dev-index")
    ap.add_argument("--model", default=None, help="embedding model (default: the product's default)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--limit", type=int, default=0, help="first N questions only (a quick look)")
    ap.add_argument("--grid", type=json.loads, default=None,
                    help='another grid, as JSON: {"dense_weight": [0.6], "sentence_coverage": [0.5], "sentence_dense": [0, 0.4]}')
    ap.add_argument("--write", action="store_true", help=f"store the best setting in {WEIGHTS_FILE}")
    args = ap.parse_args(argv)

    rag, items = open_index(args.squad, args.index_cache, args.model)
    if args.limit:
        items = items[: args.limit]
    base = Retriever(rag._retriever.snapshot, rag._retriever.embedder, RetrievalConfig())
    groups = np.array([i.doc.split("_")[0] for i in items])  # "p003_012" -> article p003
    sets = {"accented": [(analyse(i.question), i.doc) for i in items],
            "unaccented": [(analyse(fold(i.question)), i.doc) for i in items]}
    # the question vectors, once: every setting below shares them
    cache = args.index_cache.parent / f"{args.index_cache.name}-questions.json"
    stored = json.loads(cache.read_text("utf-8")) if cache.is_file() else {}
    vectors: dict[str, np.ndarray] = {}
    t0 = time.perf_counter()
    for queries in sets.values():
        for query, _ in queries:
            text = base.dense_text(query)
            if text not in vectors:
                vectors[text] = np.array(stored[text], np.float32) if text in stored else base._embed(text)
    cache.write_text(json.dumps({t: [round(float(x), 6) for x in v] for t, v in vectors.items()}), "utf-8")
    print(f"embedded {len(vectors)} questions in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    grid = args.grid or GRID
    names = list(grid)
    settings = [dict(zip(names, values)) for values in itertools.product(*grid.values())]
    results: dict[str, list[np.ndarray]] = {name: [] for name in sets}
    for setting in settings:
        known = {f.name for f in fields(RetrievalConfig)}  # a weight with an unaccented twin sets both
        both = {**setting, **{f"{k}_unaccented": v for k, v in setting.items() if f"{k}_unaccented" in known}}
        retriever = Retriever(base.snapshot, base.embedder, replace(RetrievalConfig(), **both))
        retriever._query_vector = vectors.__getitem__
        for name, queries in sets.items():
            r = ranks(retriever, queries)
            results[name].append(r)
            print(f"{name:10s} {setting}  R@1 {recall(r, 1):.4f}  R@5 {recall(r, 5):.4f}  R@10 {recall(r, 10):.4f}",
                  file=sys.stderr)

    report: dict = {"n_questions": len(items), "model": rag.model_info, "grid": grid, "cv": {}, "best": {}}
    articles = np.unique(groups)
    rng = np.random.default_rng(0)
    fold_of = dict(zip(articles, rng.permutation(len(articles)) % args.folds))
    folds = np.array([fold_of[g] for g in groups])
    for name in sets:
        table = np.stack(results[name])  # settings x questions
        cv = np.zeros(len(items), dtype=np.int32)
        chosen = []
        for f in range(args.folds):
            train, test = folds != f, folds == f
            best = int(np.argmax([objective(row[train]) for row in table]))
            chosen.append(settings[best])
            cv[test] = table[best][test]
        full = int(np.argmax([objective(row) for row in table]))
        report["cv"][name] = {"R@1": recall(cv, 1), "R@5": recall(cv, 5), "R@10": recall(cv, 10), "chosen": chosen}
        report["best"][name] = {**settings[full], "R@1 (in-sample)": recall(table[full], 1),
                                "R@5 (in-sample)": recall(table[full], 5)}
        plain = [n for n, s in enumerate(settings) if s.get("dense_weight") == 0.0 and s.get("sentence_coverage") == 1.0
                 and not s.get("sentence_dense")]
        if plain:
            report["cv"][name]["lexical R@1/R@5"] = [recall(table[plain[0]], 1), recall(table[plain[0]], 5)]
    print(json.dumps(report, ensure_ascii=False, indent=1))
    if args.write:
        weights = {"_comment": f"written by eval/fit_retrieval.py on {args.squad.name}, {len(items)} questions",
                   "accented": {k: report["best"]["accented"][k] for k in names},
                   "unaccented": {k: report["best"]["unaccented"][k] for k in names}}
        WEIGHTS_FILE.write_text(json.dumps(weights, indent=1) + "\n", "utf-8")
        print(f"wrote {WEIGHTS_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
