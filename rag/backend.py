"""The seam between retrieval and the index that holds the chunks: what the retriever, the answerer
and the writers need from a store, and the local folder store behind it.

Two stores implement `IndexView` (reading) and `write` (adding, replacing, removing documents):

- ``local``: the snapshot folder of rag/store.py, BM25 from bm25s over the whole corpus, FAISS;
- ``milvus``: rag/milvus_store.py, the same chunks in Milvus (Lite in-process, a server or a
  cluster), BM25 and dense candidates found by the engine.

Retrieval above the seam (fusion, the coverage/place/year rerank, the answerer) does not know which
one runs: it asks for candidates and per-chunk data by chunk id. A chunk id is an int; the local
store's ids are positions in its chunk list, Milvus's are primary keys given in the same order.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .errors import UsageError
from .types import Chunk, Document

STORES = ("local", "milvus")


@dataclass(frozen=True)
class Where:
    """A search's filter, applied by the store before it ranks: a chunk passes when it (or its document)
    is about `province` (its document's province, or a place its text names) and it names `year` (in
    its text, or among its document's years)."""

    province: str | None = None  # a canonical gazetteer name ("Thừa Thiên Huế")
    year: int | None = None

    def __bool__(self) -> bool:
        return bool(self.province) or bool(self.year)

    def passes(self, chunk: Chunk, doc: Document) -> bool:
        if self.province and doc.meta.province != self.province and self.province not in chunk.places:
            return False
        if self.year and str(self.year) not in chunk.text and self.year not in doc.meta.years:
            return False
        return True


@runtime_checkable
class IndexView(Protocol):
    """What retrieval reads from an index. Every method is safe to call from several threads.

    Optional (the retriever looks for them with getattr): `sentence_block(i)`, the vectors of chunk i's
    sentences, or None; `sentence_blocks(ids)`, those of many chunks at once ({id: block}); `chunk_row(chunk)`,
    the id of a Chunk in the index (the local store's is its position in `chunks`)."""

    kind: str  # "local" | "milvus"
    manifest: dict  # model {name, build, precision, dim, ...}, chunking, lexical, counts, ...
    documents: Mapping[str, Document]
    chunks: Sequence[Chunk]  # chunks[i] for every id the candidate methods return; len() = chunk count

    @property
    def has_dense(self) -> bool: ...

    def lexical_candidates(
        self, tokens: dict[str, list[str]], folded: bool, n: int, also: Iterable[int] = (), where: Where | None = None
    ) -> tuple[list[int], dict[int, float]]:
        """The n chunks of highest positive weighted BM25 score (best first, ties by id) among those
        `where` passes, and the scores of those and of the chunks `also` names (0 where nothing matches)."""
        ...

    def dense_candidates(self, vector: np.ndarray, n: int, where: Where | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, ids) of the n nearest chunk vectors among those `where` passes, best first."""
        ...

    def candidates(
        self, vector: np.ndarray | None, tokens: dict[str, list[str]], folded: bool, n: int, where: Where | None = None
    ) -> tuple[dict[int, float], list[int], dict[int, float]]:
        """Both paths at once: ({id: similarity} of dense_candidates (empty without `vector`), then
        lexical_candidates with also = those ids). A store may run the calls concurrently."""
        ...

    def prefetch(self, ids: Iterable[int]) -> None:
        """A hint: these chunks (and their documents) are about to be read."""
        ...

    def idf(self, tokens: list[str], field: str = "syl") -> dict[str, float]: ...

    def coverage(self, rows: list[int], weights: dict[str, float], pairs: set[str], folded: bool) -> tuple[list[float], list[int]]:
        """As LexicalIndex.coverage: per row, the best sentence's weight sum and the bigrams found."""
        ...

    def restorer(self):
        """An object whose `restore(text)` gives an unaccented text its likeliest accents (retriever.Restorer)."""
        ...

    def describe(self) -> dict:
        """{"kind": ..., "location": ...} for /api/health and `rag ask --json`."""
        ...


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class StoreConfig:
    kind: str = "local"
    uri: str | None = None  # milvus: a file path (Milvus Lite, in-process) or http(s)://host:port
    token: str | None = None  # milvus: "user:password" or an API key
    name: str = "rag"  # milvus: the index's name (prefix of its collections)

    @classmethod
    def resolve(cls, kind: str | None = None, uri: str | None = None, token: str | None = None,
                name: str | None = None) -> StoreConfig:
        """Explicit values over $RAG_STORE, $RAG_MILVUS_URI, $RAG_MILVUS_TOKEN, $RAG_MILVUS_NAME."""
        env = os.environ
        kind = (kind or env.get("RAG_STORE") or "").strip().lower() or ("milvus" if uri else "local")
        if kind not in STORES:
            raise UsageError(f"Unknown store {kind!r}: use local or milvus.")
        if kind == "local":
            return cls()
        uri = (uri or env.get("RAG_MILVUS_URI") or "").strip()
        if not uri:
            raise UsageError("The milvus store needs --milvus-uri (a file path for Milvus Lite, or http://host:19530).")
        token = token if token is not None else (env.get("RAG_MILVUS_TOKEN") or None)
        name = (name or env.get("RAG_MILVUS_NAME") or "rag").strip()
        if not name.replace("_", "").isalnum() or not name[0].isalpha() or len(name) > 100:
            raise UsageError(f"The Milvus index name {name!r} must be letters, digits and '_', starting with a letter.")
        return cls("milvus", uri, token, name)

    @property
    def is_lite(self) -> bool:
        return self.kind == "milvus" and not self.uri.startswith(("http://", "https://", "tcp://", "grpc://"))

    def describe(self, index_dir: Path | None = None) -> dict:
        if self.kind == "local":
            return {"kind": "local", "location": str(index_dir) if index_dir is not None else None}
        return {"kind": "milvus", "location": self.uri, "lite": self.is_lite, "name": self.name}


# ---------------------------------------------------------------- the local folder store


class LocalIndex:
    """A loaded snapshot (rag/store.py) seen through the seam: the search path of before, unchanged.

    Its other attributes (lexical, dense, vectors, path) are the snapshot's.
    """

    kind = "local"

    MASKS = 16  # filters whose chunk masks are kept

    def __init__(self, snapshot) -> None:
        self._snapshot = snapshot
        self._restorer = None
        self._masks: dict[Where, np.ndarray] = {}
        self._masks_lock = threading.Lock()

    def __getattr__(self, name):  # documents, chunks, manifest, lexical, dense, vectors, path
        return getattr(self._snapshot, name)

    @property
    def snapshot(self):
        return self._snapshot

    @property
    def has_dense(self) -> bool:
        return self._snapshot.dense is not None

    def mask(self, where: Where) -> np.ndarray:
        """Which chunks pass `where` (a boolean per chunk), computed once per filter."""
        with self._masks_lock:
            found = self._masks.get(where)
        if found is not None:
            return found
        docs = self._snapshot.documents
        mask = np.fromiter((where.passes(c, docs[c.doc_id]) for c in self._snapshot.chunks), dtype=bool,
                           count=len(self._snapshot.chunks))
        mask.flags.writeable = False
        with self._masks_lock:
            if len(self._masks) >= self.MASKS:
                self._masks.pop(next(iter(self._masks)))
            self._masks[where] = mask
        return mask

    def candidates(self, vector, tokens, folded, n, where=None):
        return sequential_candidates(self, vector, tokens, folded, n, where)

    def lexical_candidates(self, tokens, folded, n, also=(), where=None):
        from .retriever import _top_positive

        lex = self._snapshot.lexical.scores("", folded=folded, tokens=tokens)
        if where:
            lex = np.where(self.mask(where), lex, lex.dtype.type(0))
        cand = _top_positive(lex, n)
        scores = {int(i): lex[i] for i in cand}
        for i in also:
            scores.setdefault(int(i), lex[i])
        return [int(i) for i in cand], scores

    def dense_candidates(self, vector, n, where=None):
        if not where:
            return self._snapshot.dense.search(vector, n)
        rows = np.flatnonzero(self.mask(where))
        if not len(rows):
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        vectors = self._snapshot.vectors
        if vectors is None:  # (no stored vectors: every neighbour, then the filter)
            scores, ids = self._snapshot.dense.search(vector, self._snapshot.dense.size)
            keep = np.isin(ids, rows)
            return scores[keep][:n], ids[keep][:n]
        # exact inner products over the chunks that pass (as Milvus's filtered FLAT search)
        sims = vectors[rows] @ np.asarray(vector, dtype=np.float32).reshape(-1)
        top = np.argsort(-sims, kind="stable")[:n]
        return sims[top].astype(np.float32), rows[top].astype(np.int64)

    def prefetch(self, ids) -> None:
        pass

    def idf(self, tokens, field="syl"):
        return self._snapshot.lexical.idf(tokens, field)

    def coverage(self, rows, weights, pairs, folded):
        return self._snapshot.lexical.coverage(rows, weights, pairs, folded)

    def restorer(self):
        if self._restorer is None:
            from .retriever import Restorer

            self._restorer = Restorer(self._snapshot.lexical)
        return self._restorer

    def describe(self) -> dict:
        path = self._snapshot.path
        return {"kind": "local", "location": str(path.parent) if path is not None else None}


def sequential_candidates(view, vector, tokens, folded, n, where=None):
    """IndexView.candidates from its two methods, one after the other."""
    dense: dict[int, float] = {}
    if vector is not None:
        scores, ids = view.dense_candidates(vector, n, where=where)
        dense = {int(i): float(s) for i, s in zip(ids, scores)}
    cand, lex = view.lexical_candidates(tokens, folded, n, also=dense, where=where)
    return dense, cand, lex


def as_view(index) -> IndexView:
    """A store.Snapshot wrapped as a LocalIndex; an IndexView as it is."""
    from .store import Snapshot

    return LocalIndex(index) if isinstance(index, Snapshot) else index


# ---------------------------------------------------------------- opening and writing


def open_view(store: StoreConfig, index_dir: Path) -> IndexView:
    if store.kind == "milvus":
        from .milvus_store import MilvusIndex

        return MilvusIndex.open(store)
    from . import store as local

    return LocalIndex(local.load(index_dir))


def write(store: StoreConfig, index_dir: Path, config, embedder, **kwargs):
    """indexer.update for the chosen store: add, keep, remove documents (a BuildReport)."""
    if store.kind == "milvus":
        from . import milvus_store

        return milvus_store.update(store, config, embedder, **kwargs)
    from . import indexer

    return indexer.update(index_dir, config, embedder, **kwargs)
