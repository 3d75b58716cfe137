"""`rag index --workers N`: the time to embed the same chunk texts in this process and in N processes.

    nice .venv/bin/python eval/bench_workers.py [--model intfloat/multilingual-e5-small] [--texts 128] [--workers 2]

Texts: the chunks of seeds/ (repeated up to --texts). Prints one JSON object: seconds for the
texts in-process (the model's own threads over every core), and with the process pool (its start,
each worker loading the model, then a second run with the workers warm), and the chunks per second.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="intfloat/multilingual-e5-small")
    ap.add_argument("--texts", type=int, default=128)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    from rag.chunker import chunk_document
    from rag.embed import load_embedder
    from rag.indexer import read_documents
    from rag.parallel import ParallelEmbedder
    from rag.chunker import ChunkConfig

    docs, _ = read_documents([ROOT / "seeds"])
    texts = [c.index_text for d in docs for c in chunk_document(d, ChunkConfig())]
    texts = (texts * (args.texts // len(texts) + 1))[: args.texts]
    inner = load_embedder(args.model)
    inner.embed_documents(texts[:8])  # (the model loaded)
    out = {"model": args.model, "texts": len(texts), "workers": args.workers}
    t0 = time.perf_counter()
    base = inner.embed_documents(texts)
    out["in_process_s"] = round(time.perf_counter() - t0, 2)
    with ParallelEmbedder(inner, args.model, args.workers) as parallel:
        t0 = time.perf_counter()
        first = parallel.embed_documents(texts)
        out["pool_first_s"] = round(time.perf_counter() - t0, 2)  # with the workers' start and model loads
        t0 = time.perf_counter()
        parallel.embed_documents(texts)
        out["pool_warm_s"] = round(time.perf_counter() - t0, 2)
    out["max_abs_diff"] = float(abs(first - base).max())
    out["chunks_per_s"] = {"in_process": round(len(texts) / out["in_process_s"], 2),
                           "pool_warm": round(len(texts) / out["pool_warm_s"], 2)}
    out["speedup_warm"] = round(out["in_process_s"] / out["pool_warm_s"], 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
