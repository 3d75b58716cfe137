"""The Milvus store at scale, against the local store on the same documents and questions.

    nice .venv/bin/python eval/bench_milvus.py --sizes 10k,100k [--queries 200] [--json FILE]

For each size: the synthetic corpus of eval/bench.py (seeds/ sentences with other figures, years and
provinces; about one chunk per document), indexed once in a local index and once in Milvus, served
by the Milvus Lite 2.5.1 engine as a TCP server on 127.0.0.1 (milvus_lite.server.Server: the same
client and URI form as a cluster). Vectors come from the hashing embedder at 384 dimensions (the
size of multilingual-e5-small's): embedding 100k chunks with the real model would take hours on
2 cores, and what is measured here is the store. Questions: eval/gold.jsonl's, and the same without
diacritics.

Measured: build time of each store, Milvus insert throughput (rows of the chunk collection per
second of time spent in insert calls, and chunks per second of the whole build), the server's RSS
(now and peak) after the build and after the questions, disk, `ask` and `search` p50/p95 on each
store, and how often the top-5 documents agree. Prints one JSON object per size.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))

SIZES = {"1k": 1_000, "10k": 10_000, "100k": 100_000, "300k": 300_000, "1m": 1_000_000}


def proc_mb(pid: int) -> dict:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = round(int(line.split()[1]) / 1024, 1)
    return {"rss_mb": out.get("VmRSS"), "peak_rss_mb": out.get("VmHWM")}


def disk_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))], 2)


def documents(n: int):
    """The synthetic documents, cleaned as the loaders clean them; their metadata is read from the
    synthetic title (its province) and the years in the text, not by metadata.extract: the gazetteer
    scan costs more than the store at 100k documents, and what is measured here is the store."""
    import hashlib

    from bench import sentence_pool, synthetic_documents

    from rag.clean import clean
    from rag.gazetteer import PLACES
    from rag.text import years_in
    from rag.types import DocMeta, Document

    provinces = sorted((p.name for p in PLACES), key=len, reverse=True)
    pool = sentence_pool()
    for name, raw, _ in synthetic_documents(n, pool):
        text, sections = clean(raw)
        title = text.split("\n", 1)[0]
        province = next((p for p in provinces if title.endswith(p)), None)
        years = tuple(dict.fromkeys(years_in(text)))
        meta = DocMeta(title=title, years=years, year=years[0] if years else None, province=province,
                       province_confidence=1.0 if province else 0.0)
        yield Document(name, f"bench/{name}.txt", text, hashlib.sha256(raw.encode("utf-8")).hexdigest(), meta,
                       sections, f"/bench/{name}.txt")


def log(out: dict, stage: str) -> None:
    """What is measured so far, on stderr (a long run that is stopped still says where it got)."""
    print(f"[{time.strftime('%H:%M:%S')}] {stage}: {json.dumps(out, ensure_ascii=False)}", file=sys.stderr, flush=True)


def timed(fn, questions: list[str]) -> tuple[list[float], list]:
    times, out = [], []
    for q in questions:
        t0 = time.perf_counter()
        out.append(fn(q))
        times.append((time.perf_counter() - t0) * 1000)
    return times, out


def bench(n: int, args, work: Path) -> dict:
    from milvus_lite.server import Server

    from rag import indexer, milvus_store
    from rag.api import RAG, _config
    from rag.backend import StoreConfig, open_view
    from rag.embed import load_embedder
    from rag.retriever import Retriever
    from bench import bench_questions

    embedder = load_embedder(args.model)
    config = _config(embedder, 1000, 150, "auto")
    out: dict = {"chunks_target": n, "model": args.model, "embedder_note": "hashing vectors (not the real model)"}
    t0 = time.perf_counter()
    docs = list(documents(n))
    out["read_s"] = round(time.perf_counter() - t0, 1)
    log(out, "read")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (work / "milvus").mkdir(parents=True)
    server = Server(str(work / "milvus" / "bench.db"), address=f"127.0.0.1:{port}")
    assert server.start(), "the Milvus Lite server did not start"
    try:
        milvus_store.wait_for_port(port, 60, pause=0.3)
        pid = server._p.pid
        out["server_idle"] = proc_mb(pid)
        store = StoreConfig("milvus", f"http://127.0.0.1:{port}", None, "bench")

        insert, spent, rows = milvus_store._insert, [0.0], [0]

        last = [time.perf_counter()]

        def counted(client, coll, batch):
            t = time.perf_counter()
            insert(client, coll, batch)
            spent[0] += time.perf_counter() - t
            if coll.endswith("_chunks"):
                rows[0] += len(batch)
            if time.perf_counter() - last[0] > 60:  # progress, with the server's memory
                last[0] = time.perf_counter()
                log({"chunk_rows": rows[0], "insert_s": round(spent[0], 1),
                     "rows_per_insert_s": round(rows[0] / spent[0], 1) if spent[0] else None,
                     "build_s": round(time.perf_counter() - t0, 1), "server": proc_mb(pid),
                     "disk_mb": disk_mb(work / "milvus")}, "inserting")

        milvus_store._insert = counted
        t0 = time.perf_counter()
        try:
            report = milvus_store.update(store, config, embedder, add=docs)
        except Exception as exc:  # where Lite stops: say so, with what was done
            out["milvus_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            out["milvus_rows_before_error"] = rows[0]
            out["milvus_s_before_error"] = round(time.perf_counter() - t0, 1)
            return out
        finally:
            milvus_store._insert = insert
        out["milvus_build_s"] = round(time.perf_counter() - t0, 1)
        out["chunks"] = report.chunks
        out["milvus_insert_s"] = round(spent[0], 1)
        out["milvus_insert_rows_per_s"] = round(rows[0] / spent[0], 1) if spent[0] else None
        out["milvus_build_chunks_per_s"] = round(report.chunks / (time.perf_counter() - t0), 1)
        out["server_after_build"] = proc_mb(pid)
        out["milvus_disk_mb"] = disk_mb(work / "milvus")
        log(out, "milvus built")

        t0 = time.perf_counter()
        indexer.update(work / "local", config, embedder, add=docs)
        out["local_build_s"] = round(time.perf_counter() - t0, 1)
        out["local_disk_mb"] = disk_mb(work / "local")
        log(out, "local built")
        del docs

        questions = bench_questions(args.queries)
        t0 = time.perf_counter()
        milvus = RAG(work / "local", Retriever(open_view(store, work / "local"), embedder), None, store)
        out["milvus_open_s"] = round(time.perf_counter() - t0, 2)
        local = RAG(work / "local", Retriever(open_view(StoreConfig(), work / "local"), embedder), None, StoreConfig())
        res = {}
        for kind, rag in (("local", local), ("milvus", milvus)):
            timed(rag.ask, questions[:10])  # warm
            ask_ms, answers = timed(rag.ask, questions)
            search_ms, hits = timed(lambda q: rag.search(q, 5), questions)
            res[kind] = [[h.chunk.doc_id for h in hs] for hs in hits]
            out[kind] = {"ask_p50_ms": pct(ask_ms, 50), "ask_p95_ms": pct(ask_ms, 95),
                         "search_p50_ms": pct(search_ms, 50), "search_p95_ms": pct(search_ms, 95),
                         "answered": sum(1 for a in answers if a.answer)}
        out["top5_same_set"] = round(statistics.mean(set(a) == set(b) for a, b in zip(res["local"], res["milvus"])), 4)
        out["server_after_queries"] = proc_mb(pid)
        milvus_store.close(store)
    finally:
        server.stop()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10k")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--model", default="hashing:384", help="the embedder (default hashing:384: see above)")
    ap.add_argument("--json", type=Path, help="append each size's JSON line here too")
    ap.add_argument("--workdir", type=Path, help="(default: a temporary folder, removed at the end)")
    args = ap.parse_args()
    for label in args.sizes.split(","):
        n = SIZES[label]
        with tempfile.TemporaryDirectory(prefix="rag-bench-milvus-", dir=args.workdir) as tmp:
            t0 = time.perf_counter()
            result = {"size": label, **bench(n, args, Path(tmp)), "total_s": None}
            result["total_s"] = round(time.perf_counter() - t0, 1)
        line = json.dumps(result, ensure_ascii=False)
        print(line, flush=True)
        if args.json:
            with args.json.open("a", encoding="utf-8") as f:
                f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
