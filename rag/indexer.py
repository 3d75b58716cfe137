"""Build and update the index incrementally: only new or changed documents are chunked and embedded."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import progress as _progress_events
from . import store
from .chunker import chunk_document
from .dense import DenseIndex
from .embed import Embedder
from .errors import IndexCorrupt, IndexNotFound, RagError, UsageError
from .ingest import document_file, load_document
from .lexical import LexicalIndex
from .loaders import iter_files
from .store import IndexConfig, Snapshot
from .text import sentence_spans
from .types import Chunk, Document


@dataclass(frozen=True)
class BuildReport:
    added: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]
    removed: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]  # (path, reason)
    documents: int
    chunks: int
    mode: str
    path: Path

    def summary(self) -> str:
        parts = [f"{self.documents} documents, {self.chunks} chunks ({self.mode} mode)"]
        for label, items in (("added", self.added), ("updated", self.updated), ("unchanged", self.unchanged), ("removed", self.removed)):
            if items:
                parts.append(f"{len(items)} {label}")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        return "Indexed " + ", ".join(parts) + "."


def read_documents(paths: Iterable[str | Path], progress: bool = False) -> tuple[list[Document], list[tuple[str, str]]]:
    """Load every supported file under `paths`; unreadable ones are reported, not fatal."""
    unique: dict[str, Path] = {}
    for path in iter_files(paths):  # a file given twice (or with its folder) is read once
        unique.setdefault(os.path.abspath(path), path)
    files = list(unique.values())
    docs: list[Document] = []
    skipped: list[tuple[str, str]] = []
    seen: set[str] = set()
    for path in _progress(files, "Reading", progress):
        try:
            doc = load_document(path, progress=progress)
        except UsageError as exc:
            skipped.append((str(path), str(exc)))
            continue
        if doc.id in seen:  # same stem in two folders: an id unique and stable, from the file's path
            suffix = hashlib.sha256(doc.path.encode("utf-8")).hexdigest()[:8]
            doc = replace(doc, id=f"{doc.id}-{suffix}")
        seen.add(doc.id)
        docs.append(doc)
    return docs, skipped


def build(
    paths: Iterable[str | Path],
    index_dir: Path,
    config: IndexConfig,
    embedder: Embedder | None,
    *,
    progress: bool = False,
    rebuild: bool = False,
) -> BuildReport:
    """Index the files under `paths` into `index_dir`.

    A document is dropped only when its file is gone from under `paths` (a path that no longer
    exists drops the documents indexed from under it); the others are kept, wherever their files
    are and whatever the current directory. Files are told apart by their absolute paths.
    `rebuild`: the index holds the files under `paths` and nothing else, whatever it held before
    (the repair of an index whose documents cannot be read).
    """
    plan = plan_build(paths, progress)
    return update(index_dir, config, embedder, add=plan.docs, keep=plan.keep, skipped=plan.skipped, progress=progress,
                  rebuild=rebuild, gone=plan.gone)


@dataclass(frozen=True)
class BuildPlan:
    """What `rag index PATHS` asks of a store (the local folder or Milvus: the same rule for both)."""

    docs: list[Document]  # the files read under the paths
    skipped: list[tuple[str, str]]
    gone: list[Path]  # given paths that no longer exist
    roots: list[Path]  # the given paths, resolved

    def keep(self, doc: Document) -> bool:
        """An old document stays unless its file is gone from under the given paths."""
        file = document_file(doc)  # None: unknown (an old index, seen from another directory): kept
        return file is None or file.exists() or not any(file.is_relative_to(root) for root in self.roots)


def plan_build(paths: Iterable[str | Path], progress: bool = False) -> BuildPlan:
    paths = [Path(p) for p in paths]
    gone = [p for p in paths if not p.exists()]
    docs, skipped = read_documents([p for p in paths if p.exists()], progress)
    if not docs and not skipped and not gone:
        raise UsageError("Nothing to index: the given paths hold no supported documents (the index is unchanged).")
    if not docs and skipped and not gone:
        raise UsageError(f"No document could be read; first problem: {skipped[0][1]}")
    return BuildPlan(docs, skipped, gone, [p.resolve() for p in paths])


@dataclass
class Merge:
    """The documents of a write: the old ones kept, the new ones, and what happened to each id."""

    documents: dict[str, Document]
    reused: set[str]  # documents whose chunks (and vectors) the old index holds
    added: list[str]
    updated: list[str]
    unchanged: list[str]
    removed: list[str]


def check_gone(gone: Iterable[Path], old_docs: dict[str, Document]) -> None:
    """Each path that no longer exists must have held an indexed document, else UsageError."""
    for path in gone:
        root = path.resolve()
        if not any((f := document_file(d)) is not None and f.is_relative_to(root) for d in old_docs.values()):
            raise UsageError(f"{path} does not exist.")


def same_content(prev: Document, doc: Document) -> bool:
    """The same content, read the same way: its chunks are kept (a file read anew by a newer reader,
    with pages or tables as rows, is indexed again)."""
    return prev.sha256 == doc.sha256 and prev.text == doc.text and prev.pages == doc.pages


def merge(old_docs: dict[str, Document], add: list[Document], keep, remove: Iterable[str], same=same_content) -> Merge:
    """The old documents that `keep` accepts, minus `remove`, plus `add`. A document is known by its
    id; the same content (`same`) keeps its chunks, and from another file it is `updated` (new source
    and path), from the same file `unchanged`."""
    remove = set(remove)
    new_ids = {d.id for d in add}
    documents: dict[str, Document] = {}
    reused: set[str] = set()
    for doc in old_docs.values():
        if doc.id not in new_ids and doc.id not in remove and keep(doc):
            if not doc.path and (file := document_file(doc)) is not None:
                doc = replace(doc, path=str(file))  # an index of the older format learns where its files are
            documents[doc.id] = doc
            reused.add(doc.id)
    added, updated, unchanged = [], [], []
    for doc in add:
        prev = old_docs.get(doc.id)
        if prev is not None and same(prev, doc):  # the same content: its chunks are kept
            same_file = (prev.path or str(document_file(prev))) == doc.path
            documents[doc.id] = replace(prev, path=doc.path) if same_file else replace(prev, source=doc.source, path=doc.path)
            reused.add(doc.id)
            (unchanged if same_file else updated).append(doc.id)
        else:
            documents[doc.id] = doc
            (updated if prev is not None else added).append(doc.id)
    return Merge(documents, reused, added, updated, unchanged, sorted(set(old_docs) - set(documents)))


def update(
    index_dir: Path,
    config: IndexConfig,
    embedder: Embedder | None,
    *,
    add: list[Document],
    keep=lambda doc: True,
    remove: Iterable[str] = (),
    skipped: list[tuple[str, str]] | None = None,
    progress: bool = False,
    rebuild: bool = False,
    gone: Iterable[Path] = (),
) -> BuildReport:
    """Write a new snapshot: the old documents that `keep` accepts, minus `remove`, plus `add`
    (`rebuild`: `add` alone). A live snapshot that cannot be read is rebuilt from its documents,
    else the write is refused: a write never drops a document it was not asked to drop.
    `gone`: paths that no longer exist; each must have held an indexed document, else UsageError."""
    with store.write_lock(index_dir):
        old = None if rebuild else _load_reusable(index_dir, config, embedder)
        old_docs = old.documents if old is not None else {}
        check_gone(gone, old_docs)
        m = merge(old_docs, add, keep, remove)
        documents, reused, added, updated, unchanged, removed = (
            m.documents, m.reused, m.added, m.updated, m.unchanged, m.removed)
        snapshot = _assemble(documents, old, reused, config, embedder, progress)
        path = store.save(snapshot, index_dir, config, embedder.dim if snapshot.dense is not None else None)
        return BuildReport(
            tuple(added), tuple(updated), tuple(unchanged), tuple(removed), tuple(skipped or ()),
            len(documents), len(snapshot.chunks), "dense" if snapshot.dense is not None else "lexical", path,
        )


class Reusable(NamedTuple):
    """What a write builds on: the live index's documents and, where they can serve, its chunks and vectors."""

    documents: dict[str, Document]
    chunks: list[Chunk]
    vectors: np.ndarray | None
    sentences: list[np.ndarray] | None = None  # per chunk: its sentences' vectors (when the index holds them)


def _load_reusable(index_dir: Path, config: IndexConfig, embedder: Embedder | None) -> Reusable | None:
    """The live snapshot, with what this build can reuse; None when there is no index yet."""
    try:
        old = store.load(index_dir)
    except IndexNotFound:
        if not any(index_dir.glob("snap-*")):
            return None
        old = _salvage(index_dir, IndexNotFound(f"{index_dir / 'CURRENT'} is missing."))
    except IndexCorrupt as exc:
        old = _salvage(index_dir, exc)
    manifest = old.manifest
    if manifest.get("chunking") != asdict(config.chunk):
        return Reusable(old.documents, [], None)
    vectors, sentences = old.vectors, None
    same_model = (
        embedder is not None and (manifest.get("model") or {}).get("name") == embedder.name
        and store.model_build(manifest) == embedder.build
    )
    if not same_model or vectors is None or vectors.shape[1] != embedder.dim:  # (a hand-edited manifest)
        vectors = None
    elif getattr(old, "sentence_rows", None) is not None:
        rows = old.sentence_rows
        sentences = [old.sentences[rows[i]:rows[i + 1]] for i in range(len(old.chunks))]
    return Reusable(old.documents, old.chunks, vectors, sentences)


def _salvage(index_dir: Path, exc: RagError) -> store.Salvage:
    """The documents of a live snapshot that does not load: from its documents.jsonl when that is
    intact (chunks and vectors too when intact), else from their files when every one is there with
    the same content; else IndexCorrupt, naming the command that rebuilds."""
    found = store.salvage(index_dir)
    what = ", ".join(found.damaged) or str(exc).split(";")[0].rstrip(".")
    if found.documents is not None:
        print(f"The index in {index_dir} is damaged ({what}); its {len(found.documents)} documents are kept, "
              "read back from documents.jsonl and indexed again.", file=sys.stderr)
        return found
    documents = _documents_from_files(found.manifest) if found.manifest is not None else None
    if documents is None:
        raise IndexCorrupt(
            f"The index in {index_dir} is damaged ({what}) and the documents it holds cannot be read back, "
            f"so nothing was changed; rebuild it from your files with "
            f"`rag index {_source_folders(found.manifest)} --index-dir {index_dir} --rebuild`."
        )
    print(f"The index in {index_dir} is damaged ({what}); its {len(documents)} documents are kept, "
          "read again from their files and indexed again.", file=sys.stderr)
    return store.Salvage(documents, [], None, found.manifest, found.damaged)


def _documents_from_files(manifest: dict) -> dict[str, Document] | None:
    """Every document the manifest lists, read from its file; None unless all are there, unchanged."""
    documents = {}
    for doc_id, info in manifest["documents"].items():
        try:
            doc = load_document(Path(info.get("path") or info["source"]), source=info["source"])
        except (OSError, UsageError, KeyError, TypeError):
            return None
        if doc.sha256 != info.get("sha256"):
            return None
        documents[doc_id] = replace(doc, id=doc_id)
    return documents


def _source_folders(manifest: dict | None) -> str:
    """The folders the manifest's documents came from, for a command line; "PATH …" when unknown."""
    import shlex

    sources = [info.get("path") or info.get("source")
               for info in (manifest or {}).get("documents", {}).values() if isinstance(info, dict)]
    folders = sorted({str(Path(s).parent) for s in sources if isinstance(s, str) and s})
    return " ".join(shlex.quote(f) for f in folders) or "PATH …"


def _assemble(
    documents: dict[str, Document], old: Reusable | None, reused: set[str], config: IndexConfig,
    embedder: Embedder | None, progress: bool,
) -> Snapshot:
    """Chunks and vectors for all documents, reusing the old snapshot's for the `reused` ones."""
    old_chunks: dict[str, list[tuple[int, Chunk]]] = {}
    if old is not None:
        for i, chunk in enumerate(old.chunks):
            old_chunks.setdefault(chunk.doc_id, []).append((i, chunk))
    chunks: list[Chunk] = []
    vector_rows: list[np.ndarray | None] = []
    sentence_rows: list[np.ndarray | None] = []
    to_embed: list[int] = []
    _progress_events.report("chunking", 0, len(documents) - len(reused))
    for doc in _progress(list(documents.values()), "Chunking", progress):
        kept = old_chunks.get(doc.id) if doc.id in reused else None
        if kept:
            for i, chunk in kept:
                chunks.append(chunk)
                vector_rows.append(old.vectors[i] if old.vectors is not None else None)
                sentence_rows.append(old.sentences[i] if old.vectors is not None and old.sentences else None)
        else:
            for chunk in chunk_document(doc, config.chunk):
                chunks.append(chunk)
                vector_rows.append(None)
                sentence_rows.append(None)
    if embedder is not None:
        to_embed = [i for i, v in enumerate(vector_rows) if v is None]
        # each chunk's sentences are embedded too (in the same batches): the answerer's question–sentence cosine
        split = [i for i, v in enumerate(sentence_rows) if v is None] if config.sentences else []
        texts = [chunks[i].index_text for i in to_embed]
        pieces = [[chunks[i].text[a:b] for a, b in sentence_spans(chunks[i].text)] for i in split]
        if texts or split:
            fresh = _embed(embedder, texts + [t for p in pieces for t in p], progress)
            for i, vec in zip(to_embed, fresh):
                vector_rows[i] = vec
            at = len(texts)
            for i, p in zip(split, pieces):
                sentence_rows[i] = np.asarray(fresh[at:at + len(p)], dtype=np.float16).reshape(len(p), embedder.dim)
                at += len(p)
    _progress_events.report("saving", 0, 0)
    lexical = LexicalIndex.build(((c.header, c.body) for c in chunks), config.lexical)  # (one text at a time in memory)
    vectors = dense = None
    if embedder is not None:
        vectors = np.stack(vector_rows).astype(np.float32) if chunks else np.zeros((0, embedder.dim), np.float32)
        dense = DenseIndex.build(vectors, config.faiss_kind)
    sentences = rows = None
    if embedder is not None and config.sentences:
        sizes = [len(block) for block in sentence_rows]
        rows = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        sentences = (np.concatenate(sentence_rows).astype(np.float16) if sum(sizes)
                     else np.zeros((0, embedder.dim), np.float16))
    return Snapshot(documents, chunks, lexical, vectors, dense, {}, None, sentences, rows)


def _embed(embedder: Embedder, texts: list[str], progress: bool) -> np.ndarray:
    """The texts' vectors; in batches, each reported, when someone listens to the progress (rag.progress)."""
    if not _progress_events.active():
        return embedder.embed_documents(texts, progress=progress)
    step, parts = _progress_events.EMBED_BATCH, []
    _progress_events.report("embedding", 0, len(texts))
    for lo in range(0, len(texts), step):
        parts.append(embedder.embed_documents(texts[lo:lo + step], progress=False))
        _progress_events.report("embedding", min(lo + step, len(texts)), len(texts))
    return np.concatenate(parts)


def _progress(items: list, label: str, enabled: bool):
    if not enabled or len(items) < 2:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=label, unit="doc", file=sys.stderr, leave=False)


__all__ = ["BuildReport", "RagError", "build", "update", "read_documents"]
