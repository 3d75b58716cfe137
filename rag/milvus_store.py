"""The index in Milvus: Milvus Lite in-process (a file path), or a Milvus server or cluster (http://host:port).

An index named N (default "rag") is a build of four collections, N_<build>_*:

- ``chunks``: one row per chunk (int64 id, its document, offsets, text, header, linked text, section,
  places), its body's sentences as syllables (for the coverage rerank), and four token fields that
  Milvus turns into BM25 sparse vectors with the whitespace analyzer: syllables, bigrams, and their
  diacritics-folded forms, the same tokens rag/lexical.py indexes with bm25s;
- ``dense``: the chunk vectors (same ids; a collection of its own because Milvus allows four vector
  fields per collection and the BM25 fields take them all), searched exactly (FLAT, inner product);
- ``docs``: documents (cleaned text in parts of at most 16,000 characters, metadata, sections, hash),
  and the manifest row (model name, build, dimension, chunking, counts, format version);
- ``vocab``: the document frequency of every syllable, bigram and folded syllable, for the idf of the
  coverage rerank, the answerer's weights and the diacritics restorer.

The collection ``rag_pointers`` holds one row per index name: the live build. A full rebuild writes a
new build and then rewrites the pointer, so readers see the old build until the new one is complete
(Milvus Lite has no aliases); the old build is dropped after the switch, and what a failed build left
is dropped by the next one. Adding, replacing and removing documents is done in place, by content
hash, like the local store: a reader may meanwhile miss a document being replaced.

Retrieval: each BM25 field gives its top candidates from the engine; the product's weighted sum of
the fields is rebuilt client-side, and a field's score for a candidate it did not return (and for the
chunks only the dense search found) comes from a search filtered to those ids.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from . import __version__
from .backend import StoreConfig
from .errors import IndexCorrupt, IndexNotFound, RagError, UsageError
from .lexical import EMPTY, FIELDS, SENTENCE_CUT, LexicalConfig
from .retriever import Restorer
from .text import bigrams, fold, syllables
from .types import Chunk, DocMeta, Document, Section

FORMAT_NAME = "rag-vi-milvus"
FORMAT_VERSION = 1
POINTERS = "rag_pointers"
DOC_PART = 16_000  # characters of a document's text per row (VARCHAR holds 65,535 bytes; 3 bytes a character at most)
MAX_BYTES = 65_535
BATCH = 512  # rows per insert
FIELD_FETCH = 2  # each BM25 field returns FIELD_FETCH x the candidates wanted, before the weighted sum
CONNECT_TIMEOUT = 4.0  # seconds; "never a hang"
VOCAB_FIELDS = ("syl", "bi", "fsyl")  # document frequencies kept for these fields
CACHE = 20_000  # chunks (and documents / 4) kept per opened index


# ---------------------------------------------------------------- connecting

_clients: dict[tuple[str, str], object] = {}
_clients_lock = threading.Lock()


def _import():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # milvus_lite imports pkg_resources
        try:
            import pymilvus
        except ImportError as exc:  # pragma: no cover - the `milvus` extra
            raise UsageError("The milvus store needs pymilvus and milvus-lite: pip install 'rag-vi[milvus]'.") from exc
    return pymilvus


def connect(cfg: StoreConfig):
    """A MilvusClient for the store (one per URI and token in a process). A server that cannot be
    reached is one sentence of error within CONNECT_TIMEOUT seconds, never a hang."""
    key = (cfg.uri, cfg.token or "")
    with _clients_lock:
        client = _clients.get(key)
        if client is not None:
            return client
        pymilvus = _import()
        if cfg.is_lite:
            path = Path(cfg.uri).expanduser()
            if path.is_dir():
                raise UsageError(f"--milvus-uri {cfg.uri} is a folder; give a file such as {path / 'milvus.db'}.")
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # milvus_lite imports pkg_resources
                    client = pymilvus.MilvusClient(str(path.resolve()), timeout=30)
            except Exception as exc:
                raise RagError(
                    f"Milvus Lite could not open {cfg.uri} ({_reason(exc)}); another process may hold it open."
                ) from None
        else:
            _reachable(cfg.uri)
            try:
                client = pymilvus.MilvusClient(uri=cfg.uri, token=cfg.token or "", timeout=CONNECT_TIMEOUT)
            except Exception as exc:
                raise RagError(f"Cannot connect to the Milvus server at {cfg.uri} ({_reason(exc)}).") from None
        _clients[key] = client
        return client


def _reachable(uri: str) -> None:
    parsed = urlparse(uri)
    host = parsed.hostname or "localhost"
    port = parsed.port or (443 if parsed.scheme == "https" else 19530)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        raise RagError(
            f"Cannot reach the Milvus server at {uri} ({exc.strerror or exc}); check --milvus-uri and that the server runs."
        ) from None


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


def close_all() -> None:
    """Close the clients this process opened (tests; Milvus Lite frees its file)."""
    with _clients_lock:
        for client in _clients.values():
            try:
                client.close()
            except Exception:
                pass
        _clients.clear()


# ---------------------------------------------------------------- schema


def _names(prefix: str) -> dict[str, str]:
    return {part: f"{prefix}_{part}" for part in ("chunks", "dense", "docs", "vocab")}


def _dummy(schema, index) -> None:
    """Milvus wants a vector field in every collection: a 2-dimensional one, all zeros, in the tables."""
    from pymilvus import DataType

    schema.add_field("_v", DataType.FLOAT_VECTOR, dim=2)
    index.add_index(field_name="_v", index_type="FLAT", metric_type="L2")


def _create(client, name: str, build_schema) -> None:
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    index = client.prepare_index_params()
    build_schema(schema, index)
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")


def _chunks_schema(lexical: LexicalConfig):
    from pymilvus import DataType, Function, FunctionType

    def build(schema, index):
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("cid", DataType.VARCHAR, max_length=1024)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=512)
        schema.add_field("start", DataType.INT64)
        schema.add_field("end", DataType.INT64)
        schema.add_field("section", DataType.VARCHAR, max_length=64)
        for name in ("text", "header", "extra", "sents"):
            schema.add_field(name, DataType.VARCHAR, max_length=MAX_BYTES)
        schema.add_field("places", DataType.JSON)
        for f in FIELDS:
            schema.add_field(f"{f}_t", DataType.VARCHAR, max_length=MAX_BYTES, enable_analyzer=True,
                             analyzer_params={"tokenizer": "whitespace"})
            schema.add_field(f"{f}_v", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(Function(name=f"bm25_{f}", function_type=FunctionType.BM25,
                                         input_field_names=[f"{f}_t"], output_field_names=[f"{f}_v"]))
            index.add_index(field_name=f"{f}_v", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                            params={"bm25_k1": lexical.k1, "bm25_b": lexical.b})
        index.add_index(field_name="doc_id", index_type="INVERTED")

    return build


def _dense_schema(dim: int):
    from pymilvus import DataType

    def build(schema, index):
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
        index.add_index(field_name="vec", index_type="FLAT", metric_type="IP")

    return build


def _docs_schema(schema, index):
    from pymilvus import DataType

    schema.add_field("key", DataType.VARCHAR, max_length=600, is_primary=True)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=512)
    schema.add_field("part", DataType.INT64)
    schema.add_field("text", DataType.VARCHAR, max_length=MAX_BYTES)
    schema.add_field("record", DataType.JSON)
    _dummy(schema, index)
    index.add_index(field_name="doc_id", index_type="INVERTED")


def _vocab_schema(schema, index):
    from pymilvus import DataType

    schema.add_field("key", DataType.VARCHAR, max_length=1100, is_primary=True)
    schema.add_field("field", DataType.VARCHAR, max_length=8)
    schema.add_field("folded", DataType.VARCHAR, max_length=1024)
    schema.add_field("df", DataType.INT64)
    _dummy(schema, index)
    index.add_index(field_name="folded", index_type="INVERTED")


def _pointer_schema(schema, index):
    from pymilvus import DataType

    schema.add_field("name", DataType.VARCHAR, max_length=128, is_primary=True)
    schema.add_field("build", DataType.VARCHAR, max_length=256)
    _dummy(schema, index)


_UNQUOTABLE = re.compile(r"['\"\\]")  # Milvus 2.5's filter parser fails on these even inside a string


def _quotable(value: str) -> bool:
    return _UNQUOTABLE.search(value) is None


def _lit(values) -> str:
    """A list literal for a Milvus filter."""
    return json.dumps(list(values), ensure_ascii=False)


# ---------------------------------------------------------------- the pointer


def live_build(client, name: str) -> str | None:
    if not client.has_collection(POINTERS):
        return None
    rows = client.get(POINTERS, ids=[name], output_fields=["build"])
    return rows[0]["build"] if rows else None


def _set_live(client, name: str, build: str) -> None:
    if not client.has_collection(POINTERS):
        _create(client, POINTERS, _pointer_schema)
    client.upsert(POINTERS, [{"name": name, "build": build, "_v": [0.0, 0.0]}])  # one row: atomic


def _drop_build(client, build: str) -> None:
    for coll in _names(build).values():
        if client.has_collection(coll):
            client.drop_collection(coll)


def _drop_stale(client, name: str, keep: set[str]) -> None:
    """Builds of this index other than `keep`: old ones and those of failed builds."""
    pattern = re.compile(rf"^({re.escape(name)}_b\d{{14}}[0-9a-f]{{6}})_(chunks|dense|docs|vocab)$")
    for coll in client.list_collections():
        match = pattern.match(coll)
        if match and match.group(1) not in keep:
            client.drop_collection(coll)


# ---------------------------------------------------------------- rows


def chunk_tokens(chunk: Chunk) -> tuple[dict[str, list[str]], list[list[str]]]:
    """The four token fields of a chunk as rag/lexical.py indexes them, and its body's sentences."""
    head = syllables(chunk.header) if chunk.header else []
    sents = [toks for toks in (syllables(p) for p in SENTENCE_CUT.split(chunk.body)) if toks]
    seq = head + [t for s in sents for t in s]
    fseq = [fold(t) for t in seq]
    return {"syl": seq, "bi": bigrams(seq), "fsyl": fseq, "fbi": bigrams(fseq)}, sents


def _clip(text: str) -> str:
    data = text.encode("utf-8")
    if len(data) <= MAX_BYTES:
        return text
    return data[:MAX_BYTES].decode("utf-8", errors="ignore").rsplit(" ", 1)[0]


def _chunk_row(cid: int, chunk: Chunk, toks: dict[str, list[str]], sents: list[list[str]]) -> dict:
    for name, value in (("text", chunk.text), ("header", chunk.header), ("extra", chunk.extra)):
        if len(value.encode("utf-8")) > MAX_BYTES:
            raise UsageError(f"A chunk of {chunk.doc_id} has a {name} over {MAX_BYTES} bytes; index it with a smaller --chunk-size.")
    row = {
        "id": cid, "cid": chunk.id, "doc_id": chunk.doc_id, "start": chunk.start, "end": chunk.end,
        "section": chunk.section, "text": chunk.text, "header": chunk.header, "extra": chunk.extra,
        "sents": _clip("\n".join(" ".join(s) for s in sents)), "places": list(chunk.places),
    }
    for f in FIELDS:
        row[f"{f}_t"] = _clip(" ".join(toks[f])) if toks[f] else EMPTY
    return row


def _doc_rows(doc: Document) -> list[dict]:
    record = {"id": doc.id, "source": doc.source, "sha256": doc.sha256, "meta": dict(vars(doc.meta)),
              "sections": [dict(vars(s)) for s in doc.sections], "pages": list(doc.pages),
              "ocr_pages": list(doc.ocr_pages)}
    parts = [doc.text[i : i + DOC_PART] for i in range(0, len(doc.text), DOC_PART)] or [""]
    return [{"key": f"{doc.id}:{n}", "doc_id": doc.id, "part": n, "text": part,
             "record": record if n == 0 else {}, "_v": [0.0, 0.0]} for n, part in enumerate(parts)]


def _doc_from_rows(rows: list[dict]) -> Document:
    rows = sorted(rows, key=lambda r: r["part"])
    rec = rows[0]["record"]
    meta = rec["meta"]
    meta = DocMeta(**{**meta, "dates": tuple(meta["dates"]), "years": tuple(meta["years"])})
    sections = tuple(Section(**s) for s in rec["sections"])
    return Document(rec["id"], rec["source"], "".join(r["text"] for r in rows), rec["sha256"], meta, sections,
                    pages=tuple(rec.get("pages") or ()), ocr_pages=tuple(rec.get("ocr_pages") or ()))


def _insert(client, coll: str, rows: list[dict]) -> None:
    for i in range(0, len(rows), BATCH):
        client.insert(coll, rows[i : i + BATCH])


# ---------------------------------------------------------------- reading


class MilvusIndex:
    """An index in Milvus seen through the seam (rag/backend.py IndexView)."""

    kind = "milvus"

    def __init__(self, client, cfg: StoreConfig, build: str, manifest: dict) -> None:
        self.client, self.cfg, self.build, self.manifest = client, cfg, build, manifest
        self.names = _names(build)
        self.lexical_config = LexicalConfig(**manifest["lexical"])
        self.size = int(manifest["counts"]["chunks"])
        self.documents = _Documents(self)
        self.chunks = _Chunks(self)
        self.lexical = self  # what the answerer reads (`.lexical.idf`)
        self._df: dict[str, int] = {}  # "field token" -> document frequency, cached
        self.path = None

    @classmethod
    def open(cls, cfg: StoreConfig) -> MilvusIndex:
        client = connect(cfg)
        try:
            build = live_build(client, cfg.name)
            if build is None:
                raise IndexNotFound(
                    f"No index named {cfg.name!r} in Milvus at {cfg.uri}; build one with "
                    f"`rag index --store milvus --milvus-uri {cfg.uri}`."
                )
            manifest = read_manifest(client, build)
            for coll in _names(build).values():
                if client.has_collection(coll):
                    client.load_collection(coll)
        except RagError:
            raise
        except Exception as exc:
            raise IndexCorrupt(f"The Milvus index {cfg.name!r} at {cfg.uri} could not be read ({_reason(exc)}); rebuild it.") from None
        return cls(client, cfg, build, manifest)

    @property
    def has_dense(self) -> bool:
        return self.manifest.get("mode") == "dense"

    def describe(self) -> dict:
        return {**self.cfg.describe(), "build": self.build}

    # -- candidates

    def _field_search(self, field: str, text: str, limit: int, ids: list[int] | None = None) -> dict[int, float]:
        if limit <= 0:
            return {}
        found = self.client.search(
            self.names["chunks"], data=[text], anns_field=f"{field}_v", limit=min(limit, 16_384),
            search_params={"metric_type": "BM25"}, filter=f"id in {_lit(ids)}" if ids is not None else "",
            output_fields=[],
        )
        return {int(h["id"]): float(h["distance"]) for h in found[0]}

    def lexical_candidates(self, tokens, folded, n, also=()):
        weights = self.lexical_config.unaccented if folded else self.lexical_config.accented
        fetch = max(n * FIELD_FETCH, n)
        per_field: dict[str, dict[int, float]] = {}
        complete: dict[str, bool] = {}
        for field, weight in weights.items():
            if weight and tokens[field]:
                per_field[field] = self._field_search(field, " ".join(tokens[field]), fetch)
                complete[field] = len(per_field[field]) < fetch  # every chunk it matches was returned
        wanted = set().union(*per_field.values()) | {int(i) for i in also}
        for field, scores in per_field.items():
            missing = sorted(wanted - scores.keys())
            if missing and not complete[field]:
                scores.update(self._field_search(field, " ".join(tokens[field]), len(missing), missing))
        total: dict[int, float] = {}
        for i in wanted:
            s = np.float32(0)
            for field, scores in per_field.items():
                s += np.float32(scores.get(i, 0.0)) * np.float32(weights[field])
            total[i] = s
        ranked = sorted((i for i in total if total[i] > 0), key=lambda i: (-total[i], i))[:n]
        return ranked, total

    def dense_candidates(self, vector, n):
        found = self.client.search(
            self.names["dense"], data=[np.asarray(vector, dtype=np.float32).tolist()], anns_field="vec",
            limit=max(1, min(n, 16_384)), search_params={"metric_type": "IP"}, output_fields=[],
        )[0]
        return (np.array([h["distance"] for h in found], dtype=np.float32),
                np.array([h["id"] for h in found], dtype=np.int64))

    def prefetch(self, ids) -> None:
        self.chunks.fetch(ids)
        self.documents.fetch({self.chunks[i].doc_id for i in ids})

    # -- the rerank's data

    def doc_freqs(self, field: str, tokens: Iterable[str]) -> dict[str, int]:
        keys = [f"{field} {t}" for t in tokens]
        for k in keys:
            if not _quotable(k):
                self._df[k] = 0  # (a token with a quote: not counted, as if unseen)
        todo = [k for k in dict.fromkeys(keys) if k not in self._df]
        for i in range(0, len(todo), 1000):
            part = todo[i : i + 1000]
            for k in part:
                self._df[k] = 0
            for row in self.client.get(self.names["vocab"], ids=part, output_fields=["df"]):
                self._df[row["key"]] = int(row["df"])
        return {k.split(" ", 1)[1]: self._df[k] for k in keys}

    def idf(self, tokens, field="syl"):
        df = self.doc_freqs(field, tokens)
        return {t: float(np.log(1 + (self.size - d + 0.5) / (d + 0.5))) if d else 0.0 for t, d in df.items()}

    def coverage(self, rows, weights, pairs, folded):
        """LexicalIndex.coverage on the sentences stored with each chunk."""
        self.chunks.fetch(rows)
        keyed = [(a, b) for a, b in (p.split("_", 1) for p in pairs) if a in weights and b in weights]
        best, found = [], []
        for i in rows:
            sents = self.chunks.sentences(i)
            if folded:
                sents = [[fold(t) for t in s] for s in sents]
            top = 0.0
            for s in sents:
                present = set(s)
                total = 0.0
                for w, v in weights.items():
                    if w in present:
                        total += v
                top = max(top, total)
            flat = [t for s in sents for t in s]
            adjacent = set(zip(flat, flat[1:]))
            best.append(top)
            found.append(sum(1 for p in keyed if p in adjacent))
        return best, found

    def restorer(self):
        return _RemoteRestorer(self)

    def accent_forms(self, words: Iterable[str]) -> dict[str, list[tuple[int, str]]]:
        words = sorted({w for w in words if len(w.encode("utf-8")) < 1000 and _quotable(w)})
        if not words:
            return {}
        rows = self.client.query(self.names["vocab"], filter=f'field == "syl" and folded in {_lit(words)}',
                                 output_fields=["key", "folded", "df"], limit=16_384)
        forms: dict[str, list[tuple[int, str]]] = {}
        for row in rows:
            forms.setdefault(row["folded"], []).append((int(row["df"]), row["key"].split(" ", 1)[1]))
        return {k: sorted(v, reverse=True)[: Restorer.FORMS] for k, v in forms.items()}


class _RemoteRestorer(Restorer):
    """The diacritics restorer on a vocabulary kept in Milvus: a question's words' forms and their pairs
    are fetched (two queries), then the same choice as the local Restorer."""

    def __init__(self, index: MilvusIndex) -> None:
        self.index = index

    def _lookup(self, words):
        forms = self.index.accent_forms(words)
        keys = {f"{x}_{y}" for a, b in zip(words, words[1:]) for _, x in forms.get(a, ()) for _, y in forms.get(b, ())}
        counts = self.index.doc_freqs("bi", keys) if keys else {}
        return forms, lambda pair: counts.get(pair, 0)


class _LRU:
    def __init__(self, size: int) -> None:
        self.size, self.data, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self.lock:
            value = self.data.get(key)
            if value is not None:
                self.data.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self.lock:
            self.data[key] = value
            self.data.move_to_end(key)
            while len(self.data) > self.size:
                self.data.popitem(last=False)


class _Chunks(Sequence):
    """chunks[id] for the retriever and the answerer, fetched from Milvus on demand and cached."""

    FIELDS = ["cid", "doc_id", "start", "end", "section", "text", "header", "extra", "places", "sents"]

    def __init__(self, index: MilvusIndex) -> None:
        self.index = index
        self.cache = _LRU(CACHE)

    def __len__(self) -> int:
        return self.index.size

    def fetch(self, ids) -> None:
        todo = sorted({int(i) for i in ids if self.cache.get(int(i)) is None})
        for k in range(0, len(todo), 1000):
            for row in self.index.client.get(self.index.names["chunks"], ids=todo[k : k + 1000], output_fields=self.FIELDS):
                chunk = Chunk(id=row["cid"], doc_id=row["doc_id"], text=row["text"], start=int(row["start"]),
                              end=int(row["end"]), header=row["header"], extra=row["extra"], section=row["section"],
                              places=tuple(row["places"] or ()))
                sents = [s.split(" ") for s in row["sents"].split("\n") if s]
                self.cache.put(int(row["id"]), (chunk, sents))

    def _entry(self, i: int):
        entry = self.cache.get(int(i))
        if entry is None:
            self.fetch([i])
            entry = self.cache.get(int(i))
            if entry is None:
                raise IndexError(i)
        return entry

    def __getitem__(self, i):
        if isinstance(i, slice):
            raise TypeError("the chunks of a Milvus index are read by id")
        return self._entry(i)[0]

    def sentences(self, i: int) -> list[list[str]]:
        return self._entry(i)[1]

    def __iter__(self):
        """Every chunk, in id order (reads the whole collection: for tools, not for queries)."""
        it = self.index.client.query_iterator(self.index.names["chunks"], batch_size=1000, filter="id >= 0",
                                              output_fields=["id"])
        ids = []
        while True:
            batch = it.next()
            if not batch:
                it.close()
                break
            ids.extend(int(r["id"]) for r in batch)
        for k in range(0, len(ids), 1000):
            part = sorted(ids)[k : k + 1000]
            self.fetch(part)
            for i in part:
                yield self[i]


class _Documents(Mapping):
    """documents[doc_id], fetched on demand and cached; iteration lists every document id."""

    def __init__(self, index: MilvusIndex) -> None:
        self.index = index
        self.cache = _LRU(max(CACHE // 4, 64))

    def fetch(self, ids) -> None:
        todo = sorted({i for i in ids if self.cache.get(i) is None})
        for k in range(0, len(todo), 200):
            part = todo[k : k + 200]
            rows = self.index.client.query(self.index.names["docs"], filter=f"doc_id in {_lit(part)}",
                                           output_fields=["doc_id", "part", "text", "record"], limit=16_384)
            grouped: dict[str, list[dict]] = {}
            for row in rows:
                grouped.setdefault(row["doc_id"], []).append(row)
            for doc_id, doc_rows in grouped.items():
                self.cache.put(doc_id, _doc_from_rows(doc_rows))

    def __getitem__(self, doc_id: str) -> Document:
        doc = self.cache.get(doc_id)
        if doc is None:
            self.fetch([doc_id])
            doc = self.cache.get(doc_id)
            if doc is None:
                raise KeyError(doc_id)
        return doc

    def __iter__(self):
        return iter(list(_doc_records(self.index.client, self.index.names["docs"])))

    def __len__(self) -> int:
        return int(self.index.manifest["counts"]["documents"])

    def __contains__(self, doc_id) -> bool:
        if not isinstance(doc_id, str) or not doc_id:
            return False
        if self.cache.get(doc_id) is not None:
            return True
        return bool(self.index.client.get(self.index.names["docs"], ids=[f"{doc_id}:0"], output_fields=["doc_id"]))


def _doc_records(client, coll: str) -> dict[str, dict]:
    """doc_id -> record (source, sha256, meta, sections) of every document, in insertion order."""
    it = client.query_iterator(coll, batch_size=1000, filter='part == 0 and doc_id != ""', output_fields=["doc_id", "record"])
    out = {}
    while True:
        batch = it.next()
        if not batch:
            it.close()
            break
        for row in batch:
            out[row["doc_id"]] = row["record"]
    return out


def read_manifest(client, build: str) -> dict:
    rows = client.get(_names(build)["docs"], ids=["__manifest__"], output_fields=["record"])
    if not rows:
        raise IndexCorrupt(f"The Milvus build {build} has no manifest; rebuild the index.")
    manifest = rows[0]["record"]
    if manifest.get("format") != FORMAT_NAME or manifest.get("format_version") != FORMAT_VERSION:
        raise IndexCorrupt(
            f"The Milvus index {build} has format {manifest.get('format')} v{manifest.get('format_version')}, this "
            f"program reads {FORMAT_NAME} v{FORMAT_VERSION}; rebuild it with `rag index --store milvus`."
        )
    return manifest


# ---------------------------------------------------------------- writing


def build(paths, cfg: StoreConfig, config, embedder, *, progress: bool = False):
    """indexer.build for Milvus: the files under `paths`; documents indexed from elsewhere are kept
    while their file exists, those under `paths` whose file is gone are dropped."""
    from .indexer import read_documents

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

    return update(cfg, config, embedder, add=docs, keep=keep_old, skipped=skipped, progress=progress)


def _manifest(config, embedder, dense: bool, counts: dict, next_id: int) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for pkg in ("pymilvus", "milvus-lite"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "package_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": {
            "name": config.model if dense else None, "build": config.build if dense else None,
            "precision": config.precision if dense else None, "dim": embedder.dim if dense else None,
            "normalized": True, "faiss": None, "milvus_index": "FLAT" if dense else None,
        },
        "mode": "dense" if dense else "lexical",
        "chunking": asdict(config.chunk), "lexical": asdict(config.lexical),
        "counts": counts, "next_id": next_id, "versions": versions,
    }


def _write_manifest(client, build: str, manifest: dict) -> None:
    client.upsert(_names(build)["docs"], [{"key": "__manifest__", "doc_id": "", "part": 0, "text": "",
                                            "record": manifest, "_v": [0.0, 0.0]}])


def update(cfg: StoreConfig, config, embedder, *, add: list[Document], keep=lambda doc: True, remove=(),
           skipped=None, progress: bool = False):
    """Add, replace (by content hash) and remove documents; a full rebuild into a new build when
    there is no index yet or its chunking, model or BM25 settings differ."""
    from .chunker import chunk_document
    from .indexer import BuildReport

    client = connect(cfg)
    try:
        live = live_build(client, cfg.name)
        old_manifest = read_manifest(client, live) if live else None
    except IndexCorrupt:
        live, old_manifest = None, None
    dense = embedder is not None
    same = old_manifest is not None and (
        old_manifest["chunking"] == asdict(config.chunk) and old_manifest["lexical"] == asdict(config.lexical)
        and old_manifest["mode"] == ("dense" if dense else "lexical")
        and (not dense or (old_manifest["model"]["name"] == embedder.name and old_manifest["model"]["build"] == embedder.build
                           and old_manifest["model"]["dim"] == embedder.dim))
    )
    names = _names(live) if live else None
    old_records = _doc_records(client, names["docs"]) if live else {}
    remove = set(remove)
    new_ids = {d.id for d in add}
    kept = [i for i, rec in old_records.items()
            if i not in new_ids and i not in remove and keep(_light(rec))]
    added, updated, unchanged, fresh = [], [], [], []
    for doc in add:
        rec = old_records.get(doc.id)
        if rec is not None and rec["sha256"] == doc.sha256 and rec["source"] == doc.source:
            unchanged.append(doc.id)
        else:
            (updated if rec is not None else added).append(doc.id)
            fresh.append(doc)
    final_ids = set(kept) | new_ids
    removed = sorted(set(old_records) - final_ids)

    if same:  # in place
        gone = sorted(set(removed) | set(updated))
        next_id = int(old_manifest["next_id"])
        delta: Counter = Counter()
        if gone:
            rows = _rows_of_docs(client, names["chunks"], gone, ["id", "syl_t", "bi_t", "fsyl_t"])
            for row in rows:
                for f in VOCAB_FIELDS:
                    text = row[f"{f}_t"]
                    for t in set(text.split(" ")) if text != EMPTY else ():
                        delta[f"{f} {t}"] -= 1
            ids = [int(r["id"]) for r in rows]
            for k in range(0, len(ids), 1000):
                client.delete(names["chunks"], ids=ids[k : k + 1000])
                if dense:
                    client.delete(names["dense"], ids=ids[k : k + 1000])
            client.delete(names["docs"], filter=f"doc_id in {_lit(gone)}")
        next_id, n_new = _insert_documents(client, names, fresh, config, embedder, next_id, delta, progress, chunk_document)
        _apply_vocab(client, names["vocab"], delta)
        counts = {"documents": len(final_ids), "chunks": int(old_manifest["counts"]["chunks"]) + n_new - (len(ids) if gone else 0)}
        manifest = _manifest(config, embedder, dense, counts, next_id)
        manifest["created"] = old_manifest.get("created", manifest["created"])
        manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        _write_manifest(client, live, manifest)
        build_name = live
    else:  # a full rebuild into a new build, then the pointer switch
        everything, old_docs = [], {}
        if kept or unchanged:
            old_docs = _fetch_documents(client, names["docs"], kept + unchanged)
            everything = [old_docs[i] for i in kept if i in old_docs]
        by_id = {d.id: d for d in add}
        everything += [by_id[i] if i not in unchanged else old_docs.get(i, by_id[i]) for i in by_id]
        build_name = f"{cfg.name}_b{time.strftime('%Y%m%d%H%M%S')}{uuid.uuid4().hex[:6]}"
        _drop_stale(client, cfg.name, keep={live} if live else set())  # what failed builds left
        new = _names(build_name)
        _create(client, new["chunks"], _chunks_schema(config.lexical))
        if dense:
            _create(client, new["dense"], _dense_schema(embedder.dim))
        _create(client, new["docs"], _docs_schema)
        _create(client, new["vocab"], _vocab_schema)
        delta = Counter()
        next_id, n_new = _insert_documents(client, new, everything, config, embedder, 0, delta, progress, chunk_document)
        _apply_vocab(client, new["vocab"], delta, fresh=True)
        manifest = _manifest(config, embedder, dense, {"documents": len(everything), "chunks": n_new}, next_id)
        _write_manifest(client, build_name, manifest)
        _set_live(client, cfg.name, build_name)  # readers switch here
        if live:
            _drop_build(client, live)
    return BuildReport(
        tuple(added), tuple(updated), tuple(unchanged), tuple(removed), tuple(skipped or ()),
        int(manifest["counts"]["documents"]), int(manifest["counts"]["chunks"]), manifest["mode"],
        Path(cfg.uri),
    )


def _light(rec: dict) -> Document:
    return Document(rec["id"], rec["source"], "", rec["sha256"])


def _rows_of_docs(client, coll: str, doc_ids: list[str], fields: list[str]) -> list[dict]:
    out = []
    for k in range(0, len(doc_ids), 100):
        it = client.query_iterator(coll, batch_size=1000, filter=f"doc_id in {_lit(doc_ids[k : k + 100])}", output_fields=fields)
        while True:
            batch = it.next()
            if not batch:
                it.close()
                break
            out.extend(batch)
    return out


def _fetch_documents(client, coll: str, doc_ids: list[str]) -> dict[str, Document]:
    rows = _rows_of_docs(client, coll, doc_ids, ["doc_id", "part", "text", "record"])
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["doc_id"], []).append(row)
    return {i: _doc_from_rows(r) for i, r in grouped.items()}


def _insert_documents(client, names, docs, config, embedder, next_id, delta, progress, chunk_document) -> tuple[int, int]:
    """Chunk, embed and insert `docs` (ids from `next_id` on, in order); vocabulary counts into `delta`."""
    chunk_rows, doc_rows, chunks = [], [], []
    for doc in docs:
        if not _quotable(doc.id):
            raise UsageError(f"The Milvus store cannot hold a document id with quotes or backslashes ({doc.id!r}); rename the file.")
        doc_rows.extend(_doc_rows(doc))
        for chunk in chunk_document(doc, config.chunk):
            toks, sents = chunk_tokens(chunk)
            chunk_rows.append(_chunk_row(next_id, chunk, toks, sents))
            chunks.append(chunk)
            for f in VOCAB_FIELDS:
                for t in set(toks[f]):
                    delta[f"{f} {t}"] += 1
            next_id += 1
    if embedder is not None and chunks:
        vectors = np.asarray(embedder.embed_documents([c.index_text for c in chunks], progress=progress), dtype=np.float32)
        _insert(client, names["dense"], [{"id": r["id"], "vec": v.tolist()} for r, v in zip(chunk_rows, vectors)])
    _insert(client, names["chunks"], chunk_rows)
    _insert(client, names["docs"], doc_rows)
    return next_id, len(chunk_rows)


def _apply_vocab(client, coll: str, delta: Counter, fresh: bool = False) -> None:
    keys = [k for k, v in delta.items() if v and len(k.encode("utf-8")) < 1100 and _quotable(k)]
    current: dict[str, int] = {}
    if not fresh:
        for k in range(0, len(keys), 1000):
            for row in client.get(coll, ids=keys[k : k + 1000], output_fields=["df"]):
                current[row["key"]] = int(row["df"])
    rows, dead = [], []
    for key in keys:
        df = current.get(key, 0) + delta[key]
        if df > 0:
            field, token = key.split(" ", 1)
            rows.append({"key": key, "field": field, "folded": fold(token) if field == "syl" else "", "df": df,
                         "_v": [0.0, 0.0]})
        elif key in current:
            dead.append(key)
    for k in range(0, len(rows), 2048):
        (client.insert if fresh else client.upsert)(coll, rows[k : k + 2048])
    for k in range(0, len(dead), 1000):
        client.delete(coll, ids=dead[k : k + 1000])
