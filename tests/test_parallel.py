"""rag index --workers N (rag/parallel.py): the chunks embedded by N processes give the same vectors,
in the same order, into either store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag import store as local_store
from rag.api import RAG
from rag.embed import load_embedder
from rag.errors import UsageError
from rag.parallel import SLICE, ParallelEmbedder

SEEDS = Path(__file__).resolve().parents[1] / "seeds"


def test_same_vectors_in_the_same_order():
    inner = load_embedder("hashing")
    texts = [f"Tỷ lệ hộ nghèo năm {2000 + i} là {i},5%." for i in range(SLICE * 2 + 7)]
    with ParallelEmbedder(inner, "hashing", 2) as parallel:
        got = parallel.embed_documents(texts)
        assert parallel.embed_documents([]).shape == (0, inner.dim)
    assert got.dtype == np.float32 and np.array_equal(got, inner.embed_documents(texts))
    assert np.array_equal(parallel.embed_query("hộ nghèo"), inner.embed_query("hộ nghèo"))
    with pytest.raises(UsageError, match="--workers"):
        ParallelEmbedder(inner, "hashing", 1)


@pytest.mark.slow  # (two builds and a pool of processes that load the package)
def test_build_with_workers(tmp_path):
    one, _ = RAG.build([SEEDS], tmp_path / "one", model="hashing")
    two, report = RAG.build([SEEDS], tmp_path / "two", model="hashing", workers=2)
    assert report.documents == 5
    a, b = local_store.load(tmp_path / "one"), local_store.load(tmp_path / "two")
    assert np.array_equal(a.vectors, b.vectors)
    assert two.ask("Tỷ lệ hộ nghèo Huế 2023?").answer == "2,27%"


def test_cli_rejects_bad_workers(capsys):
    from rag.cli import main

    assert main(["index", str(SEEDS), "--workers", "0", "--model", "hashing"]) == 2
    assert "--workers" in capsys.readouterr().err
