"""Does a sentence-level dense feature lift R@1 on ViQuAD dev? (issue 12, step 2: an experiment)

    python eval/sentence_maxsim.py [--index-cache DIR] [--work DIR] [--engine torch]

On the index eval/fit_retrieval.py caches (UIT-ViQuAD dev passages, the default model), every chunk's
sentences (the chunker's own splitter) are embedded as passages (once, cached in --work). For each
question, as written and stripped of diacritics, the product's `Retriever.search` (the shipped weights)
gives its top 30 hits; each hit then gets a feature from the question vector (fit_retrieval's cache)
and its sentences' vectors, min-max scaled over the 30, added with weight w to the hit's score:

- `max`: the best sentence cosine;
- `lse`: a soft maximum, τ·log Σ exp(cos/τ) (τ = 0.05);
- `chunk`: the question–chunk cosine itself (a control: is it the sentence level that helps?).

Reported: recall@1/5 of each (feature, w) on all questions, and cross-validated by article exactly as
fit_retrieval.py (5 folds, same assignment): w chosen on four folds, scored on the fifth.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fit_retrieval import DEFAULT_SQUAD, objective, open_index, recall  # noqa: E402

from rag.chunker import split_sentences  # noqa: E402
from rag.query import analyse  # noqa: E402
from rag.retriever import Retriever  # noqa: E402
from rag.text import fold  # noqa: E402

WEIGHTS = [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 1.5]
FEATURES = ("max", "lse", "chunk")
TAU = 0.05
DEPTH = 30


def sentence_vectors(rag, work: Path, engine: str) -> tuple[np.ndarray, np.ndarray]:
    """(vectors of every chunk's sentences, offsets: chunk i's rows are offsets[i]:offsets[i+1])."""
    cache = work / "sentences.npz"
    chunks = rag._retriever.snapshot.chunks
    if cache.is_file():
        data = np.load(cache)
        if len(data["offsets"]) == len(chunks) + 1:
            return data["vectors"], data["offsets"]
    texts, offsets = [], [0]
    for c in chunks:
        spans = split_sentences(c.text) or [(0, len(c.text))]
        texts += [c.text[a:b] for a, b in spans]
        offsets.append(len(texts))
    from rag.embed import BundledE5Embedder

    model = BundledE5Embedder(engine=engine, query_engine=engine)
    t = time.perf_counter()
    vectors = model.embed_documents(texts, progress=True)
    print(f"embedded {len(texts)} sentences of {len(chunks)} chunks in {time.perf_counter() - t:.0f} s "
          f"({engine})", file=sys.stderr)
    np.savez(cache, vectors=vectors, offsets=np.array(offsets))
    return vectors, np.array(offsets)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index-cache", type=Path, default=ROOT / ".cache" / "viquad-dev-index")
    ap.add_argument("--work", type=Path, default=Path("/tmp/rag-sentence-maxsim"))
    ap.add_argument("--engine", default="torch")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)

    rag, items = open_index(DEFAULT_SQUAD, args.index_cache, None)
    base: Retriever = rag._retriever
    snapshot = base.snapshot
    chunk_vecs = snapshot.vectors
    row = {c.id: i for i, c in enumerate(snapshot.chunks)}
    svecs, offsets = sentence_vectors(rag, args.work, args.engine)
    qcache = args.index_cache.parent / f"{args.index_cache.name}-questions.json"
    stored = json.loads(qcache.read_text("utf-8"))
    qvec = {t: np.array(v, np.float32) for t, v in stored.items()}
    base._query_vector = lambda text: qvec[text] if text in qvec else base._embed(text)

    groups = np.array([i.doc.split("_")[0] for i in items])
    articles = np.unique(groups)
    fold_of = dict(zip(articles, np.random.default_rng(0).permutation(len(articles)) % args.folds))
    folds = np.array([fold_of[g] for g in groups])
    report: dict = {"n_questions": len(items), "depth": DEPTH, "tau": TAU, "weights": WEIGHTS, "sets": {}}
    for name, make in (("accented", lambda q: q), ("unaccented", fold)):
        t = time.perf_counter()
        runs = []  # per question: (doc ids of the hits, base scores, features {name: array})
        for item in items:
            query = analyse(make(item.question))
            hits = base.search(query, DEPTH)
            q = base._query_vector(base.dense_text(query))
            feats = {f: np.zeros(len(hits)) for f in FEATURES}
            for j, h in enumerate(hits):
                r = row[h.chunk.id]
                sims = svecs[offsets[r] : offsets[r + 1]] @ q
                feats["max"][j] = sims.max()
                feats["lse"][j] = TAU * np.log(np.exp((sims - sims.max()) / TAU).sum()) + sims.max()
                feats["chunk"][j] = float(chunk_vecs[r] @ q)
            runs.append(([h.chunk.doc_id for h in hits], np.array([h.score for h in hits]), feats))
        print(f"{name}: searched {len(items)} questions in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        table: dict[str, np.ndarray] = {}
        for feat in FEATURES:
            rows = []
            for w in WEIGHTS:
                ranks = np.zeros(len(items), np.int32)
                for n, ((docs, scores, feats), item) in enumerate(zip(runs, items)):
                    f = feats[feat]
                    span = f.max() - f.min() if len(f) else 0.0
                    total = scores + (w * (f - f.min()) / span if span > 0 else 0.0)
                    seen: list[str] = []
                    for j in np.argsort(-total, kind="stable"):
                        if docs[j] not in seen:
                            seen.append(docs[j])
                    ranks[n] = seen.index(item.doc) + 1 if item.doc in seen else 0
                rows.append(ranks)
                print(f"{name:10s} {feat:5s} w={w:<4}  R@1 {recall(ranks, 1):.4f}  R@5 {recall(ranks, 5):.4f}",
                      file=sys.stderr)
            table[feat] = np.stack(rows)
        out: dict = {"base R@1/R@5": [recall(table["max"][0], 1), recall(table["max"][0], 5)]}
        for feat in FEATURES:
            cv = np.zeros(len(items), np.int32)
            chosen = []
            for f in range(args.folds):
                train, test = folds != f, folds == f
                best = int(np.argmax([objective(r[train]) for r in table[feat]]))
                chosen.append(WEIGHTS[best])
                cv[test] = table[feat][best][test]
            full = int(np.argmax([objective(r) for r in table[feat]]))
            out[feat] = {"cv R@1": recall(cv, 1), "cv R@5": recall(cv, 5), "cv R@10": recall(cv, 10), "chosen": chosen,
                         "best w (in-sample)": WEIGHTS[full], "in-sample R@1/R@5": [recall(table[feat][full], 1),
                                                                                   recall(table[feat][full], 5)]}
        report["sets"][name] = out
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
