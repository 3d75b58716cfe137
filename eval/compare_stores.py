"""The local store and Milvus on the same SQuAD-format corpus: do they retrieve the same documents?

    python eval/compare_stores.py ../shared/benchdata/uit-viquad-1.0/dev_ViQuAD.json [--limit 400] [--model hashing]
    python eval/compare_stores.py DEV.json --limit 200 --model intfloat/multilingual-e5-small \
        --vectors-from .cache/viquad-dev-index --question-vectors .cache/viquad-dev-index-questions.json --without-sentences

Every passage is one document, indexed once in a local index and once in Milvus Lite (or --milvus-uri)
with the same embedder (each chunk embedded once, the vectors shared by both builds). Milvus is
searched with each --milvus-workers setting (concurrent calls per search; its round trips counted). For a seeded
sample of questions, as written and with diacritics stripped: the share of questions whose top-5
documents are the same set in both stores (and the same list), recall@1 and @5 of each store, search
latency p50/p95, and the build times. Prints one JSON object.

Both stores keep each chunk's sentences' vectors (the rerank's sentence feature); --without-sentences also
builds a Milvus index without them (its R@1 and the latency it saves). --vectors-from (a local index of
the same corpus, built with the same model and chunking: eval/fit_retrieval.py's cache) and
--question-vectors (text -> vector, its questions' cache) supply the vectors they hold instead of the
model; what they lack is embedded ("embedded_passages"/"embedded_questions" count it).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag import indexer, milvus_store  # noqa: E402
from rag.api import RAG, _config  # noqa: E402
from rag.backend import StoreConfig, open_view  # noqa: E402
from rag.embed import load_embedder  # noqa: E402
from rag.evaluation import load_squad  # noqa: E402
from rag.retriever import Retriever  # noqa: E402
from rag.text import fold  # noqa: E402


class SharedEmbedder:
    """An embedder whose document vectors are computed once for both builds."""

    def __init__(self, inner) -> None:
        self.inner, self.cache, self.questions = inner, {}, {}
        self.name, self.build, self.precision, self.dim = inner.name, inner.build, inner.precision, inner.dim
        self.embedded = Counter()

    def embed_documents(self, texts, progress=False):
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if todo:
            self.embedded["passages"] += len(todo)
            for t, v in zip(todo, self.inner.embed_documents(todo, progress=progress)):
                self.cache[t] = np.asarray(v, dtype=np.float32)
        return np.stack([self.cache[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def embed_query(self, text):
        if text in self.questions:
            return self.questions[text]
        self.embedded["questions"] += 1
        return self.inner.embed_query(text)

    def preload(self, index_dir: Path | None, questions: Path | None) -> None:
        """Vectors a local index of the same corpus holds (its chunks' and their sentences'), and question vectors."""
        if index_dir is not None:
            from rag import store
            from rag.text import sentence_spans

            snap = store.load(index_dir)
            model = snap.manifest["model"]
            if (model["name"], store.model_build(snap.manifest), model["dim"]) != (self.name, self.build, self.dim):
                sys.exit(f"{index_dir} holds vectors of {model['name']} ({store.model_build(snap.manifest)}), not of {self.name} ({self.build}).")
            for i, chunk in enumerate(snap.chunks):
                self.cache[chunk.index_text] = np.asarray(snap.vectors[i], np.float32)
                block = snap.sentence_block(i)
                if block is not None:
                    for (a, b), v in zip(sentence_spans(chunk.text), block):
                        self.cache.setdefault(chunk.text[a:b], np.asarray(v, np.float32))
        if questions is not None:
            self.questions = {t: np.asarray(v, np.float32) for t, v in json.loads(questions.read_text("utf-8")).items()}

    def __getattr__(self, name):
        return getattr(self.inner, name)


def run(rag: RAG, questions: list[str], k: int = 5) -> tuple[list[list[str]], list[float]]:
    docs, times = [], []
    for q in questions:
        t0 = time.perf_counter()
        hits = rag.search(q, k)
        times.append((time.perf_counter() - t0) * 1000)
        docs.append([h.chunk.doc_id for h in hits])
    return docs, times


def sentence_latency(retriever: Retriever, items) -> dict:
    """What the sentence feature adds to a Milvus search: each question searched with it (its candidates'
    sentence vectors fetched cold, the cache emptied before each search) and without it (weight 0), on the
    same view, in alternating order (the machine's load drifts alike over both)."""
    view = retriever.snapshot
    plain = Retriever(view, retriever.embedder, replace(retriever.config, sentence_dense=0.0, sentence_dense_unaccented=0.0))
    plain._query_vector, plain._restored = retriever._query_vector, retriever._restored  # (the same warm caches)
    out = {}
    for label, questions in (("accented", [i.question for i in items]), ("unaccented", [fold(i.question) for i in items])):
        times = {"with": [], "without": []}
        for n, q in enumerate(questions):
            order = (("with", retriever), ("without", plain)) if n % 2 == 0 else (("without", plain), ("with", retriever))
            for name, r in order:
                view._sentences.data.clear()
                t0 = time.perf_counter()
                r.search(q, 5)
                times[name].append((time.perf_counter() - t0) * 1000)
        diff = np.array(times["with"]) - np.array(times["without"])
        out[label] = {**{f"{name}_p{p}_ms": round(float(np.percentile(t, p)), 2) for name, t in times.items() for p in (50, 95)},
                      "added_p50_ms": round(float(np.percentile(diff, 50)), 2),
                      "added_p95_ms": round(float(np.percentile(diff, 95)), 2)}
    return out


def _count_calls(client, calls: Counter) -> None:
    """Count the client's round trips (search, get, query) into `calls`."""
    for name in ("search", "get", "query"):
        method = getattr(client, name)
        if getattr(method, "_counted", False):
            continue

        def counted(*a, _m=method, _n=name, **kw):
            calls[_n] += 1
            return _m(*a, **kw)

        counted._counted = True
        setattr(client, name, counted)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("squad", type=Path)
    ap.add_argument("--limit", type=int, default=400, help="questions sampled (seeded)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="hashing", help="embedding model ('none': BM25 only; default hashing, fast)")
    ap.add_argument("--milvus-uri", default=None, help="default: a Milvus Lite file in the temporary folder")
    ap.add_argument("--milvus-workers", default="8",
                    help="concurrent calls per Milvus search, comma-separated to compare (0: one after the other)")
    ap.add_argument("--vectors-from", type=Path, default=None, help="a local index of the same corpus whose vectors to reuse")
    ap.add_argument("--question-vectors", type=Path, default=None, help="JSON {question text: vector} to reuse")
    ap.add_argument("--without-sentences", action="store_true", help="also a Milvus index without sentence vectors")
    args = ap.parse_args()

    passages, items = load_squad(args.squad)
    items = [i for i in items if i.answerable]
    random.Random(args.seed).shuffle(items)
    items = items[: args.limit]
    out: dict = {"n_passages": len(passages), "n_questions": len(items), "model": args.model}
    with tempfile.TemporaryDirectory(prefix="rag-compare-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        for pid, text in passages.items():
            (corpus / f"{pid}.txt").write_text(text, "utf-8")
        inner = load_embedder(args.model)
        embedder = SharedEmbedder(inner) if inner is not None else None
        if embedder is not None:
            embedder.preload(args.vectors_from, args.question_vectors)
        config = _config(embedder, 1000, 150, "auto")
        t0 = time.perf_counter()
        report = indexer.build([corpus], Path(tmp) / "index", config, embedder)
        out["local_build_s"] = round(time.perf_counter() - t0, 2)
        store = StoreConfig("milvus", args.milvus_uri or str(Path(tmp) / "milvus.db"), None, "compare")
        t0 = time.perf_counter()
        milvus_store.build([corpus], store, config, embedder)  # (vectors from the cache)
        out["milvus_build_s"] = round(time.perf_counter() - t0, 2)
        out["chunks"] = report.chunks
        if args.without_sentences:
            plain = StoreConfig("milvus", store.uri, None, "compare_plain")
            milvus_store.build([corpus], plain, replace(config, sentences=False), embedder)
        rags = {"local": RAG(Path(tmp) / "index", Retriever(open_view(StoreConfig(), Path(tmp) / "index"), embedder), None,
                             StoreConfig())}
        calls = Counter()
        for workers in [int(w) for w in args.milvus_workers.split(",")]:
            view = open_view(store, Path(tmp) / "index")
            view.set_workers(workers)
            _count_calls(view.client, calls)
            rags["milvus" if workers == 8 else f"milvus_w{workers}"] = RAG(Path(tmp) / "index", Retriever(view, embedder), None, store)
        if args.without_sentences:
            view = open_view(plain, Path(tmp) / "index")
            _count_calls(view.client, calls)
            rags["milvus_without_sentences"] = RAG(Path(tmp) / "index", Retriever(view, embedder), None, plain)
        for label, questions in (("accented", [i.question for i in items]), ("unaccented", [fold(i.question) for i in items])):
            gold = [i.doc for i in items]
            res = {}
            for kind, rag in rags.items():
                run(rag, questions[:20])  # warm caches and connections
                before = sum(calls.values())
                docs, times = run(rag, questions)
                if kind.startswith("milvus"):
                    out[f"{label}_{kind}_calls_per_search"] = round((sum(calls.values()) - before) / len(questions), 2)
                res[kind] = (docs, times)
                out[f"{label}_{kind}"] = {
                    "R@1": round(float(np.mean([d[:1] == [g] for d, g in zip(docs, gold)])), 4),
                    "R@5": round(float(np.mean([g in d[:5] for d, g in zip(docs, gold)])), 4),
                    "search_p50_ms": round(float(np.percentile(times, 50)), 2),
                    "search_p95_ms": round(float(np.percentile(times, 95)), 2),
                }
            a, b = res["local"][0], res[next(k for k in res if k.startswith("milvus"))][0]
            out[f"{label}_agreement"] = {
                "top5_same_set": round(float(np.mean([set(x[:5]) == set(y[:5]) for x, y in zip(a, b)])), 4),
                "top5_same_list": round(float(np.mean([x[:5] == y[:5] for x, y in zip(a, b)])), 4),
                "top1_same": round(float(np.mean([x[:1] == y[:1] for x, y in zip(a, b)])), 4),
                "R@1_difference": round(out[f"{label}_{next(k for k in res if k.startswith('milvus'))}"]["R@1"]
                                        - out[f"{label}_local"]["R@1"], 4),
            }
        if args.without_sentences:
            out["sentence_feature_latency"] = sentence_latency(rags["milvus"]._retriever, items)
        milvus_store.close_all()
        if embedder is not None:
            out["embedded_passages"], out["embedded_questions"] = embedder.embedded["passages"], embedder.embedded["questions"]
    print(json.dumps(out, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
