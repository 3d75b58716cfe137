"""`rag index --workers N`: chunk texts embedded by N processes, each with its own copy of the model.

Embedding is the costly part of indexing. `ParallelEmbedder` wraps the index's embedder for one
build: `embed_documents` cuts the texts into slices and hands them to a pool of N worker processes
(started with "spawn", each loading the model once, each given cores/N threads); the vectors come
back in order, and the store (local folder or Milvus) writes them as usual. Questions are still
embedded in the main process. See docs/milvus.md for the design on a cluster.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from .errors import UsageError

SLICE = 64  # texts per task: small enough to balance the workers, large enough for the model's batches

_worker_embedder = None


def _init(model: str, threads: int) -> None:
    global _worker_embedder
    os.environ["RAG_EMBED_THREADS"] = str(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    from .embed import load_embedder

    _worker_embedder = load_embedder(model)


def _embed(texts: list[str]) -> np.ndarray:
    return np.asarray(_worker_embedder.embed_documents(texts), dtype=np.float32)


class ParallelEmbedder:
    """An embedder whose embed_documents runs in `workers` processes (the Embedder protocol otherwise
    delegates to `inner`, which embeds the questions)."""

    def __init__(self, inner, model: str, workers: int, threads: int | None = None) -> None:
        if workers < 2:
            raise UsageError("--workers must be 2 or more to embed in parallel (1: in this process).")
        self.inner, self.model, self.workers = inner, model, workers
        cores = len(os.sched_getaffinity(0))
        self.threads = threads or max(1, cores // workers)
        self.name, self.build, self.precision, self.dim = inner.name, inner.build, inner.precision, inner.dim
        self._pool: ProcessPoolExecutor | None = None

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing

            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init, initargs=(self.model, self.threads))
        return self._pool

    def embed_documents(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        slices = [texts[i : i + SLICE] for i in range(0, len(texts), SLICE)]
        parts = list(self._executor().map(_embed, slices))
        return np.concatenate(parts).astype(np.float32, copy=False)

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> ParallelEmbedder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
