"""The public Python API.

    >>> from rag import RAG
    >>> rag = RAG.open("index/")                      # doctest: +SKIP
    >>> rag.search("Tỷ lệ hộ nghèo Huế 2023?")[0].chunk.doc_id   # doctest: +SKIP
    '004_1400c37e89a2c6fc'
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from . import backend, followup, indexer, store
from .answer import Answer, Answerer, with_filters
from .backend import StoreConfig
from .chunker import ChunkConfig
from .embed import DEFAULT_MODEL, Embedder, ModelUnavailable, describe, load_embedder, warn
from .errors import RagError, UsageError
from .indexer import BuildReport
from .query import EmptyQuestion
from .retriever import RetrievalConfig, Retriever
from .store import IndexConfig
from .text import lone_surrogate
from .followup import Turn
from .types import Document, Hit

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.language_models import BaseChatModel

    from .generate import LLM, LLMConfig

    LLMOption = LLMConfig | BaseChatModel | LLM | bool | None

DEFAULT_INDEX_DIR = "index"
MAX_K = 1000  # passages a search returns or an answer reads, at most


def default_model() -> str:
    return os.environ.get("RAG_EMBED_MODEL", DEFAULT_MODEL)


def default_index_dir() -> Path:
    return Path(os.environ.get("RAG_INDEX_DIR", DEFAULT_INDEX_DIR))


class RAG:
    """An opened index: search it, ask it (extractive, or an LLM when one is configured), add and remove documents."""

    def __init__(self, index_dir: Path, retriever: Retriever, llm: LLM | None = None,
                 store: StoreConfig | None = None) -> None:
        self.index_dir = index_dir
        self.store = store or StoreConfig()  # where the index lives: the local folder or Milvus
        self._retriever = retriever
        self._llm = llm  # writes the answers when set; `open` and `build` read $RAG_LLM_URL
        self._lock = threading.Lock()  # serialises writers; readers use the retriever they picked up

    # -- opening and building

    @classmethod
    def open(cls, index_dir: str | Path | None = None, *, model: str | None = None, llm: LLMOption = None,
             store: StoreConfig | None = None) -> RAG:
        """Open the index in `index_dir`; `model` must match the one it was built with, if given.

        `llm` writes the answers: an `LLMConfig`, any LangChain chat model, None (the one
        $RAG_LLM_URL names, if any) or False (extractive answers only).
        """
        llm = _llm(llm)
        index_dir = Path(index_dir) if index_dir else default_index_dir()
        store = store or StoreConfig.resolve()  # (the local folder unless $RAG_STORE says milvus)
        view = backend.open_view(store, index_dir)
        location = index_dir if store.kind == "local" else store.uri
        return cls(index_dir, Retriever(view, _query_embedder(view.manifest, model, location)), llm, store)

    @classmethod
    def build(
        cls,
        paths: Iterable[str | Path],
        index_dir: str | Path | None = None,
        *,
        model: str | None = None,
        chunk_size: int = ChunkConfig.size,
        chunk_overlap: int = ChunkConfig.overlap,
        faiss_kind: str = "auto",
        progress: bool = False,
        llm: LLMOption = None,
        rebuild: bool = False,
        store: StoreConfig | None = None,
        workers: int = 1,
        sentences: bool = True,
    ) -> tuple[RAG, BuildReport]:
        """Index the files under `paths` (incrementally) and open the result (`llm` as in `open`).

        `sentences`: in dense mode, also embed each chunk's sentences (the answerer compares the question
        with each sentence; indexing takes about twice as long).

        `rebuild`: the index then holds these files and nothing else, whatever it held (the repair of
        an index whose documents cannot be read back). `workers` > 1: the chunks are embedded by that
        many processes (rag/parallel.py)."""
        llm = _llm(llm)
        index_dir = Path(index_dir) if index_dir else default_index_dir()
        embedder = load_embedder(model if model is not None else default_model())
        config = _config(embedder, chunk_size, chunk_overlap, faiss_kind, sentences)
        store = store or StoreConfig.resolve()
        writer = embedder
        if workers > 1 and embedder is not None:
            from .parallel import ParallelEmbedder

            writer = ParallelEmbedder(embedder, model if model is not None else default_model(), workers)
        try:
            if store.kind == "milvus":
                from . import milvus_store

                report = milvus_store.build(paths, store, config, writer, progress=progress, rebuild=rebuild)
            else:
                report = indexer.build(paths, index_dir, config, writer, progress=progress, rebuild=rebuild)
        finally:
            if writer is not embedder:
                writer.close()
        return cls(index_dir, Retriever(backend.open_view(store, index_dir), embedder), llm, store), report

    # -- reading

    @property
    def mode(self) -> str:
        """"dense" when the embedding model is in use, else "lexical"."""
        return self._retriever.mode

    @property
    def model(self) -> str | None:
        return self._retriever.snapshot.manifest["model"]["name"]

    @property
    def model_info(self) -> dict | None:
        """The model answering questions: {"name", "build", "precision", "dim"}, or None (BM25 alone)."""
        return describe(self._retriever.embedder)

    @property
    def store_info(self) -> dict:
        """Where the index lives: {"kind": "local", "location": folder} or {"kind": "milvus", "location": URI, ...}."""
        return self._retriever.snapshot.describe()

    @property
    def llm(self) -> dict | None:
        """The LLM that writes the answers ({"provider", "model", "url"}), or None: extractive only."""
        return self._llm.describe() if self._llm else None

    @property
    def documents(self):
        return self._retriever.snapshot.documents

    @property
    def chunk_count(self) -> int:
        return len(self._retriever.snapshot.chunks)

    def search(self, query: str, k: int = 10, *, province: str | None = None, year: int | None = None) -> list[Hit]:
        _check_text(query, "query")
        _check_k(k)
        try:
            return self._retriever.search(query, k, province=province, year=year)
        except EmptyQuestion as exc:
            raise UsageError(f"The query is empty ({exc}).") from exc

    def ask(self, question: str, *, k: int | None = None, province: str | None = None, year: int | None = None,
            history: Sequence[Mapping | Turn] | None = None) -> Answer:
        """The short answer with its citation, or an abstention; written by the LLM when one is set
        (`mode` "generative"), else, or when its answer fails the checks, extractive.

        `history`: the conversation's earlier turns, oldest first (`{"question", "answer", "doc_id"?}`);
        a follow-up ("Còn năm 2022 thì sao?") is completed from them, and `Answer.asked` says how."""
        _check_text(question, "question")
        if k is not None:
            _check_k(k)
        turns = check_history(history)
        try:
            resolution = followup.resolve(question, turns, document=self._document_place)
            asked = resolution.asked
            if self._llm is not None:
                from .generate import GenerativeAnswerer

                answer = GenerativeAnswerer(self._retriever, self._llm).ask(asked, k=k, province=province, year=year)
            else:
                answer = Answerer(self._retriever).ask(asked, k=k, province=province, year=year)
        except EmptyQuestion as exc:  # only the question's analysis: other ValueErrors are bugs, not bad input
            raise UsageError(f"The question is empty ({exc}).") from exc
        answer = with_filters(answer, province, year)
        return replace(answer, question=resolution.question, asked=answer.question)

    def _document_place(self, doc_id: str) -> tuple[str | None, int | None]:
        doc = self.documents.get(doc_id)
        return (doc.meta.province, doc.meta.year) if doc is not None else (None, None)

    # -- writing

    def add(self, paths: Iterable[str | Path], *, progress: bool = False) -> BuildReport:
        """Index more files; unchanged ones are skipped. Searches keep using the old index until done."""
        docs, skipped = indexer.read_documents(paths, progress)
        if not docs:
            reason = skipped[0][1] if skipped else "no supported document was given."
            raise UsageError(f"Nothing was added: {reason}")
        return self.add_documents(docs, skipped=skipped)

    def add_documents(self, docs: Iterable[Document], *, skipped: Iterable[tuple[str, str]] = ()) -> BuildReport:
        """Index documents already read (`rag.ingest.load_document`): nothing is parsed while the index is
        being written."""
        docs, skipped = list(docs), list(skipped)
        if not docs:
            raise UsageError("Nothing was added: no document was given.")
        return self._write(lambda config, emb: backend.write(self.store, self.index_dir, config, emb, add=docs, skipped=skipped))

    def remove(self, doc_id: str) -> BuildReport:
        if doc_id not in self.documents:
            raise UsageError(f"No document with id {doc_id!r} in the index.")
        return self._write(lambda config, emb: backend.write(self.store, self.index_dir, config, emb, add=[], remove=[doc_id]))

    def _write(self, run) -> BuildReport:
        with self._lock:
            old = self._retriever
            manifest = old.snapshot.manifest
            chunking = ChunkConfig(**manifest["chunking"])
            config = _config(old.embedder, chunking.size, chunking.overlap, manifest["model"].get("faiss") or "auto",
                             manifest.get("sentences", "sentences.npy" in manifest.get("files", {})))  # as built (Milvus: "sentences")
            report = run(config, old.embedder)
            self._retriever = Retriever(backend.open_view(self.store, self.index_dir), old.embedder, old.config)
            return report


def _check_text(text: str, what: str) -> None:
    """UsageError unless `text` is a non-empty string that UTF-8 can hold."""
    if not isinstance(text, str) or not text.strip():
        raise UsageError(f"The {what} is empty.")
    bad = lone_surrogate(text)
    if bad:
        raise UsageError(f"The {what} is not valid Unicode text (it holds a lone surrogate, {bad}).")


def check_history(history) -> list[Turn]:
    """The earlier turns, or UsageError: a list of at most followup.MAX_TURNS objects whose "question"
    (required), "answer" and "doc_id" are strings of at most followup.MAX_FIELD_CHARS characters."""
    if history is None:
        return []
    if isinstance(history, (str, bytes, Mapping)) or not isinstance(history, Sequence):
        raise UsageError("history must be a list of earlier turns ({\"question\": …, \"answer\": …}), oldest first.")
    if len(history) > followup.MAX_TURNS:
        raise UsageError(f"history holds {len(history)} turns; at most {followup.MAX_TURNS} (send the latest ones).")
    turns = []
    for n, item in enumerate(history):
        if isinstance(item, Turn):
            item = {"question": item.question, "answer": item.answer, "doc_id": item.doc_id}
        if not isinstance(item, Mapping):
            raise UsageError(f"history[{n}] must be an object with a \"question\" and an \"answer\".")
        unknown = set(item) - {"question", "answer", "doc_id"}
        if unknown:
            raise UsageError(f"history[{n}] has an unknown field {sorted(unknown)[0]!r} "
                             "(allowed: question, answer, doc_id).")
        if "question" not in item:
            raise UsageError(f"history[{n}] has no \"question\".")
        for key in ("question", "answer", "doc_id"):
            value = item.get(key)
            if value is None and key != "question":
                continue
            if not isinstance(value, str):
                raise UsageError(f"history[{n}].{key} must be a string.")
            if len(value) > followup.MAX_FIELD_CHARS:
                raise UsageError(f"history[{n}].{key} is too long ({len(value)} characters; "
                                 f"at most {followup.MAX_FIELD_CHARS}).")
            if lone_surrogate(value):
                raise UsageError(f"history[{n}].{key} is not valid Unicode text (it holds a lone surrogate).")
        turns.append(Turn(item["question"], item.get("answer") or "", item.get("doc_id")))
    return turns


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise UsageError(f"k must be between 1 and {MAX_K}, got {k!r}.")


def _llm(llm: LLMOption) -> LLM | None:
    if llm is False or (llm is None and not os.environ.get("RAG_LLM_URL", "").strip()):
        return None  # no import of the LLM machinery unless one is wanted
    from .generate import resolve_llm

    return resolve_llm(llm)


def _config(embedder: Embedder | None, size: int, overlap: int, faiss_kind: str, sentences: bool = True) -> IndexConfig:
    try:
        chunk = ChunkConfig(size=size, overlap=overlap)
    except ValueError as exc:
        raise UsageError(f"Bad chunking settings: {exc}.") from exc
    if embedder is None:
        return IndexConfig(model=None, chunk=chunk, faiss_kind=faiss_kind)
    return IndexConfig(embedder.name, embedder.build, embedder.precision, chunk=chunk, faiss_kind=faiss_kind,
                       sentences=sentences)


def _query_embedder(manifest: dict, model: str | None, index_dir: Path) -> Embedder | None:
    built_with = manifest["model"]["name"]
    if model and built_with and model != built_with:
        raise RagError(
            f"The index in {index_dir} was built with {built_with}, not {model}; "
            f"rebuild it with `rag index --model {model} --index-dir {index_dir}`."
        )
    if not built_with:
        return None
    build = store.model_build(manifest)
    try:
        return load_embedder(built_with, build)
    except ModelUnavailable as exc:
        # question vectors of another build are not comparable with the index's: search with BM25 alone
        warn(
            f"Dense retrieval is off: the index's vectors were made by {built_with} ({build}), which cannot be "
            f"loaded here ({exc}); searching with BM25 only. Rebuild it with the model this machine has: "
            f"`rag index --index-dir {index_dir}`."
        )
        return None


def search_json(query: str, hits: list[Hit], qid=None) -> dict:
    """The object `rag search --json` prints and `POST /api/search` returns."""
    return {
        "id": qid,
        "query": query,
        "hits": [
            {"rank": h.rank, "doc_id": h.chunk.doc_id, "chunk_id": h.chunk.id, "score": h.score,
             "text": h.chunk.text, "start": h.chunk.start, "end": h.chunk.end}
            for h in hits
        ],
    }


__all__ = ["RAG", "RetrievalConfig", "default_index_dir", "default_model", "search_json"]
