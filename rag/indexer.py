"""Build and update the index incrementally: only new or changed documents are chunked and embedded."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import store
from .chunker import chunk_document
from .dense import DenseIndex
from .embed import Embedder
from .errors import IndexCorrupt, IndexNotFound, RagError, UsageError
from .ingest import load_document
from .lexical import LexicalIndex
from .loaders import iter_files
from .store import IndexConfig, Snapshot
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
            doc = load_document(path)
        except UsageError as exc:
            skipped.append((str(path), str(exc)))
            continue
        if doc.id in seen:  # same stem in two folders: an id unique and stable, from the path
            suffix = hashlib.sha256(doc.source.encode("utf-8")).hexdigest()[:8]
            doc = Document(f"{doc.id}-{suffix}", doc.source, doc.text, doc.sha256, doc.meta, doc.sections)
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
) -> BuildReport:
    """Index the files under `paths` into `index_dir`.

    Documents already indexed from elsewhere are kept while their file exists; documents under
    `paths` whose file is gone are dropped.
    """
    paths = [Path(p) for p in paths]
    docs, skipped = read_documents(paths, progress)
    if not docs and not skipped:
        raise UsageError("Nothing to index: the given paths hold no supported documents (the index is unchanged).")
    if not docs and skipped:
        raise UsageError(f"No document could be read; first problem: {skipped[0][1]}")

    def keep_old(doc: Document) -> bool:
        source = Path(doc.source)
        covered = any(source.resolve().is_relative_to(p.resolve()) for p in paths)
        return source.exists() and not covered

    return update(index_dir, config, embedder, add=docs, keep=keep_old, skipped=skipped, progress=progress)


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
) -> BuildReport:
    """Write a new snapshot: the old documents that `keep` accepts, minus `remove`, plus `add`."""
    with store.write_lock(index_dir):
        old = _load_reusable(index_dir, config, embedder)
        remove = set(remove)
        new_ids = {d.id for d in add}
        documents: dict[str, Document] = {}
        if old is not None:
            for doc in old.documents.values():
                if doc.id not in new_ids and doc.id not in remove and keep(doc):
                    documents[doc.id] = doc
        old_docs = old.documents if old is not None else {}
        added, updated, unchanged = [], [], []
        for doc in add:
            prev = old_docs.get(doc.id)
            if prev is not None and prev.sha256 == doc.sha256 and prev.source == doc.source:
                documents[doc.id] = prev
                unchanged.append(doc.id)
            else:
                documents[doc.id] = doc
                (updated if prev is not None else added).append(doc.id)
        removed = sorted(set(old_docs) - set(documents))
        snapshot = _assemble(documents, old, config, embedder, progress)
        path = store.save(snapshot, index_dir, config, embedder.dim if snapshot.dense is not None else None)
        return BuildReport(
            tuple(added), tuple(updated), tuple(unchanged), tuple(removed), tuple(skipped or ()),
            len(documents), len(snapshot.chunks), "dense" if snapshot.dense is not None else "lexical", path,
        )


def _load_reusable(index_dir: Path, config: IndexConfig, embedder: Embedder | None) -> Snapshot | None:
    """The live snapshot when its chunks (and vectors) can be reused by this build."""
    try:
        old = store.load(index_dir)
    except IndexNotFound:
        return None
    except IndexCorrupt as exc:
        print(f"{exc} Rebuilding it from the files.", file=sys.stderr)
        return None
    manifest = old.manifest
    if manifest["chunking"] != asdict(config.chunk):
        return _without_chunks(old)
    same_model = (
        embedder is not None and manifest["model"]["name"] == embedder.name and store.model_build(manifest) == embedder.build
    )
    if not same_model or old.vectors is None or old.vectors.shape[1] != embedder.dim:  # (a hand-edited manifest)
        old.vectors, old.dense = None, None
    return old


def _without_chunks(old: Snapshot) -> Snapshot:
    return Snapshot(old.documents, [], old.lexical, None, None, old.manifest, old.path)


def _assemble(
    documents: dict[str, Document], old: Snapshot | None, config: IndexConfig, embedder: Embedder | None, progress: bool
) -> Snapshot:
    """Chunks and vectors for all documents, reusing the old snapshot's where the document is unchanged."""
    old_chunks: dict[str, list[tuple[int, Chunk]]] = {}
    if old is not None:
        for i, chunk in enumerate(old.chunks):
            old_chunks.setdefault(chunk.doc_id, []).append((i, chunk))
    chunks: list[Chunk] = []
    vector_rows: list[np.ndarray | None] = []
    to_embed: list[int] = []
    for doc in _progress(list(documents.values()), "Chunking", progress):
        reused = old_chunks.get(doc.id) if old is not None and old.documents.get(doc.id) is doc else None
        if reused:
            for i, chunk in reused:
                chunks.append(chunk)
                vector_rows.append(old.vectors[i] if old.vectors is not None else None)
        else:
            for chunk in chunk_document(doc, config.chunk):
                chunks.append(chunk)
                vector_rows.append(None)
    if embedder is not None:
        to_embed = [i for i, v in enumerate(vector_rows) if v is None]
        if to_embed:
            fresh = embedder.embed_documents([chunks[i].index_text for i in to_embed], progress=progress)
            for i, vec in zip(to_embed, fresh):
                vector_rows[i] = vec
    lexical = LexicalIndex.build(((c.header, c.body) for c in chunks), config.lexical)  # (one text at a time in memory)
    vectors = dense = None
    if embedder is not None:
        vectors = np.stack(vector_rows).astype(np.float32) if chunks else np.zeros((0, embedder.dim), np.float32)
        dense = DenseIndex.build(vectors, config.faiss_kind)
    return Snapshot(documents, chunks, lexical, vectors, dense, {})


def _progress(items: list, label: str, enabled: bool):
    if not enabled or len(items) < 2:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=label, unit="doc", file=sys.stderr, leave=False)


__all__ = ["BuildReport", "RagError", "build", "update", "read_documents"]
