"""FAISS over normalised vectors: exact for small corpora, HNSW or IVF-PQ when large."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FLAT_MAX = 50_000  # exact inner product up to this many vectors ("auto")
HNSW_MAX = 300_000  # HNSW up to this many, IVF-PQ beyond


def choose_kind(n: int, requested: str = "auto") -> str:
    if requested not in ("auto", "flat", "hnsw", "ivfpq"):
        raise ValueError(f"unknown FAISS index kind {requested!r} (use auto, flat, hnsw or ivfpq)")
    if requested != "auto":
        return requested
    return "flat" if n <= FLAT_MAX else ("hnsw" if n <= HNSW_MAX else "ivfpq")


class DenseIndex:
    """Inner-product search over L2-normalised vectors (cosine similarity)."""

    def __init__(self, index, kind: str) -> None:
        self.index = index
        self.kind = kind

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "auto") -> DenseIndex:
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        kind = choose_kind(n, kind)
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
            index.hnsw.efSearch = 64
        else:
            nlist = max(16, min(4096, int(4 * np.sqrt(n))))
            m = next(m for m in (48, 32, 24, 16, 12, 8, 4, 2, 1) if dim % m == 0)
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
            sample = vectors[np.random.default_rng(0).choice(n, min(n, 64 * nlist), replace=False)]
            index.train(sample)
            index.nprobe = 16
        index.add(vectors)
        return cls(index, kind)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the k nearest vectors; ids are -1 where fewer exist."""
        k = max(1, min(k, self.size)) if self.size else 1
        if self.size == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        scores, ids = self.index.search(np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), k)
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, kind: str) -> DenseIndex:
        import faiss

        index = faiss.read_index(str(path))
        if kind == "hnsw":
            index.hnsw.efSearch = 64
        elif kind == "ivfpq":
            index.nprobe = 16
        return cls(index, kind)
