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
    rebuild: bool = False,
) -> BuildReport:
    """Index the files under `paths` into `index_dir`.

    Documents already indexed from elsewhere are kept while their file exists; documents under
    `paths` whose file is gone are dropped. `rebuild`: the index holds the files under `paths` and
    nothing else, whatever it held before (the repair of an index whose documents cannot be read).
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

    return update(index_dir, config, embedder, add=docs, keep=keep_old, skipped=skipped, progress=progress,
                  rebuild=rebuild)


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
) -> BuildReport:
    """Write a new snapshot: the old documents that `keep` accepts, minus `remove`, plus `add`
    (`rebuild`: `add` alone). A live snapshot that cannot be read is rebuilt from its documents,
    else the write is refused: a write never drops a document it was not asked to drop."""
    with store.write_lock(index_dir):
        old = None if rebuild else _load_reusable(index_dir, config, embedder)
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


class Reusable(NamedTuple):
    """What a write builds on: the live index's documents and, where they can serve, its chunks and vectors."""

    documents: dict[str, Document]
    chunks: list[Chunk]
    vectors: np.ndarray | None


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
    vectors = old.vectors
    same_model = embedder is not None and (manifest.get("model") or {}).get("name") == embedder.name
    if not same_model or vectors is None or vectors.shape[1] != embedder.dim:  # (a hand-edited manifest)
        vectors = None
    return Reusable(old.documents, old.chunks, vectors)


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
            doc = load_document(Path(info["source"]), source=info["source"])
        except (OSError, UsageError, KeyError, TypeError):
            return None
        if doc.sha256 != info.get("sha256"):
            return None
        documents[doc_id] = replace(doc, id=doc_id)
    return documents


def _source_folders(manifest: dict | None) -> str:
    """The folders the manifest's documents came from, for a command line; "PATH …" when unknown."""
    import shlex

    sources = [info.get("source") for info in (manifest or {}).get("documents", {}).values() if isinstance(info, dict)]
    folders = sorted({str(Path(s).parent) for s in sources if isinstance(s, str) and s})
    return " ".join(shlex.quote(f) for f in folders) or "PATH …"


def _assemble(
    documents: dict[str, Document], old: Reusable | None, config: IndexConfig, embedder: Embedder | None, progress: bool
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
