"""The index in Milvus: Milvus Lite in-process (a file path), or a Milvus server or cluster (http://host:port).

An index named N (default "rag") is a build of four or five collections, N_<build>_*:

- ``chunks``: one row per chunk (int64 id, its document, offsets, text, header, linked text, section,
  places), its body's sentences as syllables (for the coverage rerank), and four token fields that
  Milvus turns into BM25 sparse vectors with the whitespace analyzer: syllables, bigrams, and their
  diacritics-folded forms, the same tokens rag/lexical.py indexes with bm25s;
- ``dense``: the chunk vectors (same ids; a collection of its own because Milvus allows four vector
  fields per collection and the BM25 fields take them all), searched exactly (FLAT, inner product);
- ``sents``: the vectors of each chunk's sentences (rag.text.sentence_spans of its text), one row per
  sentence (chunk id, sentence number, vector), when the build embeds them (IndexConfig.sentences, as
  the local store's sentences.npy): the rerank's and the answerer's question–sentence cosine;
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
from concurrent.futures import Future, ThreadPoolExecutor
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from . import __version__
from .backend import StoreConfig
from .errors import IndexCorrupt, IndexNotFound, RagError, UsageError
from .lexical import EMPTY, FIELDS, SENTENCE_CUT, LexicalConfig
from .retriever import Restorer
from .text import bigrams, fold, sentence_spans, syllables
from .types import Chunk, DocMeta, Document, Section

FORMAT_NAME = "rag-vi-milvus"
FORMAT_VERSION = 2  # 2: chunks carry their document's province and years (filters in the engine)
POINTERS = "rag_pointers"
DOC_PART = 16_000  # characters of a document's text per row (VARCHAR holds 65,535 bytes; 3 bytes a character at most)
MAX_BYTES = 65_535
BATCH = 512  # rows per insert
GROUP = 2048  # chunks embedded and inserted at a time
FIELD_FETCH = 2  # each BM25 field returns FIELD_FETCH x the candidates wanted, before the weighted sum
CONNECT_TIMEOUT = 4.0  # seconds; "never a hang"
VOCAB_FIELDS = ("syl", "bi", "fsyl")  # document frequencies kept for these fields
CACHE = 20_000  # chunks (and documents / 4) kept per opened index
SENT_SLOTS = 1 << 16  # a sentence's row id: chunk id * SENT_SLOTS + its number in the chunk
MAX_SENTENCES = 16_384  # per chunk (what one query returns)


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


def wait_for_port(port: int, timeout: float, host: str = "127.0.0.1", pause: float = 0.2) -> None:
    """Return once something accepts connections on host:port (a Milvus Lite server starting); OSError after `timeout` s."""
    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(pause)


def close(cfg: StoreConfig) -> None:
    """Close this process's client of the store (Milvus Lite frees its file)."""
    with _clients_lock:
        client = _clients.pop((cfg.uri, cfg.token or ""), None)
    if client is not None:
        try:
            client.close()
        except Exception:
            pass


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


PARTS = ("chunks", "dense", "sents", "docs", "vocab")


def _names(prefix: str) -> dict[str, str]:
    return {part: f"{prefix}_{part}" for part in PARTS}


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
        _filter_fields(schema)
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


def _filter_fields(schema) -> None:
    from pymilvus import DataType

    schema.add_field("places", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=MAX_LIST, max_length=128)
    schema.add_field("province", DataType.VARCHAR, max_length=128)  # its document's
    schema.add_field("years", DataType.ARRAY, element_type=DataType.INT64, max_capacity=MAX_LIST)  # its document's


def _dense_schema(dim: int):
    from pymilvus import DataType

    def build(schema, index):
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=512)
        _filter_fields(schema)
        schema.add_field("digits", DataType.VARCHAR, max_length=MAX_BYTES)  # the text's digit runs
        index.add_index(field_name="vec", index_type="FLAT", metric_type="IP")

    return build


def _sents_schema(dim: int):
    from pymilvus import DataType

    def build(schema, index):
        schema.add_field("id", DataType.INT64, is_primary=True)  # chunk * SENT_SLOTS + n
        schema.add_field("chunk", DataType.INT64)
        schema.add_field("n", DataType.INT64)
        schema.add_field("vec", DataType.FLOAT16_VECTOR, dim=dim)  # (float16, as the local store keeps them)
        index.add_index(field_name="vec", index_type="FLAT", metric_type="IP")
        index.add_index(field_name="chunk", index_type="INVERTED")

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


MAX_LIST = 4096  # places a chunk names, years a document mentions (Milvus's largest array)
DIGITS = re.compile(r"\d+")
_UNQUOTABLE = re.compile(r"['\"\\]")  # Milvus 2.5's filter parser fails on these even inside a string


def _quotable(value: str) -> bool:
    return _UNQUOTABLE.search(value) is None


def _and(*exprs: str) -> str:
    parts = [e for e in exprs if e]
    return " and ".join(f"({e})" for e in parts) if len(parts) > 1 else "".join(parts)


def filter_expression(where, text: str = "text") -> str:
    """A backend.Where as a Milvus filter on the chunks collection ("" for none): the same test as
    Where.passes (the document's province or a place the chunk names; the year in the chunk's text or
    among its document's years). `text`: "digits" in the dense collection, whose rows hold the digit
    runs of the chunk's text (a year is in the text exactly when it is in one of its digit runs)."""
    if not where:
        return ""
    parts = []
    if where.province:
        if not _quotable(where.province):
            return "id < 0"  # (no place is named so: nothing passes)
        name = json.dumps(where.province, ensure_ascii=False)
        parts.append(f"province == {name} or array_contains(places, {name})")
    if where.year:
        year = int(where.year)
        parts.append(f'{text} like "%{year}%" or array_contains(years, {year})')
    return _and(*parts)


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
    pattern = re.compile(rf"^({re.escape(name)}_b\d{{14}}[0-9a-f]{{6}})_({'|'.join(PARTS)})$")
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


def _chunk_row(cid: int, chunk: Chunk, toks: dict[str, list[str]], sents: list[list[str]], doc: Document) -> dict:
    for name, value in (("text", chunk.text), ("header", chunk.header), ("extra", chunk.extra)):
        if len(value.encode("utf-8")) > MAX_BYTES:
            raise UsageError(f"A chunk of {chunk.doc_id} has a {name} over {MAX_BYTES} bytes; index it with a smaller --chunk-size.")
    row = {
        "id": cid, "cid": chunk.id, "doc_id": chunk.doc_id, "start": chunk.start, "end": chunk.end,
        "section": chunk.section, "text": chunk.text, "header": chunk.header, "extra": chunk.extra,
        "sents": _clip("\n".join(" ".join(s) for s in sents)), "places": list(chunk.places)[:MAX_LIST],
        "province": doc.meta.province or "", "years": [int(y) for y in doc.meta.years][:MAX_LIST],
    }
    for f in FIELDS:
        row[f"{f}_t"] = _clip(" ".join(toks[f])) if toks[f] else EMPTY
    return row


def _doc_rows(doc: Document, ids: tuple[int, int]) -> list[dict]:
    """`ids`: the range of its chunks' ids (they are given in order)."""
    record = {"id": doc.id, "source": doc.source, "path": doc.path, "sha256": doc.sha256, "ids": list(ids),
              "text_sha256": _text_sha(doc.text), "meta": dict(vars(doc.meta)),
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
                    path=rec.get("path", ""), pages=tuple(rec.get("pages") or ()),
                    ocr_pages=tuple(rec.get("ocr_pages") or ()))


def _insert(client, coll: str, rows: list[dict]) -> None:
    for i in range(0, len(rows), BATCH):
        client.insert(coll, rows[i : i + BATCH])


# ---------------------------------------------------------------- reading


class MilvusIndex:
    """An index in Milvus seen through the seam (rag/backend.py IndexView)."""

    kind = "milvus"
    workers = 8  # concurrent calls per search (0: one after the other, as before; eval/compare_stores.py --milvus-workers)

    def __init__(self, client, cfg: StoreConfig, build: str, manifest: dict) -> None:
        self.client, self.cfg, self.build, self.manifest = client, cfg, build, manifest
        self.names = _names(build)
        self.lexical_config = LexicalConfig(**manifest["lexical"])
        self.size = int(manifest["counts"]["chunks"])
        self.documents = _Documents(self)
        self.chunks = _Chunks(self)
        self.lexical = self  # what the answerer reads (`.lexical.idf`)
        self._df: dict[str, int] = {}  # "field token" -> document frequency, cached
        self._doc_of: dict[int, str] = {}  # chunk id -> its document, from searches' outputs
        self._sentences = _LRU(CACHE) if manifest.get("sentences") else None  # chunk id -> its sentences' vectors
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="milvus") if self.workers else None
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

    def _field_search(self, field: str, text: str, limit: int, ids: list[int] | None = None, where: str = "") -> dict[int, float]:
        if limit <= 0:
            return {}
        expr = _and(f"id in {_lit(ids)}" if ids is not None else "", where)
        found = self.client.search(
            self.names["chunks"], data=[text], anns_field=f"{field}_v", limit=min(limit, 16_384),
            search_params={"metric_type": "BM25"}, filter=expr, output_fields=["doc_id"],
        )
        self._note_docs(found[0])
        return {int(h["id"]): float(h["distance"]) for h in found[0]}

    def set_workers(self, workers: int) -> None:
        """Concurrent calls per search (0: one after the other)."""
        self.workers = workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="milvus") if workers else None

    def _run(self, fn, *args, **kwargs) -> Future:
        """fn in the index's thread pool (independent round trips overlap), or now when workers == 0."""
        if self._pool is None:
            done: Future = Future()
            try:
                done.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # (re-raised by .result(), as from the pool)
                done.set_exception(exc)
            return done
        return self._pool.submit(fn, *args, **kwargs)

    def candidates(self, vector, tokens, folded, n, where=None):
        """backend.candidates in three rounds of concurrent calls: the dense search, each BM25 field's
        search and the question's document frequencies; then each field's scores of the candidates it
        did not return; then (prefetch, from the retriever) the chunks and their documents."""
        field_syl = "fsyl" if folded else "syl"
        dense = self._run(self._dense, vector, n, where) if vector is not None else None
        firsts = self._field_round(tokens, folded, n, where)
        self._run(self.doc_freqs, field_syl, tokens[field_syl])  # (cached for the coverage rerank)
        dense_scores = {}
        if dense is not None:
            scores, ids = dense.result()
            dense_scores = {int(i): float(x) for i, x in zip(ids, scores)}
        cand, lex = self._lexical_rank(tokens, folded, n, firsts, dense_scores)
        return dense_scores, cand, lex

    def lexical_candidates(self, tokens, folded, n, also=(), where=None):
        return self._lexical_rank(tokens, folded, n, self._field_round(tokens, folded, n, where), also)

    def _field_round(self, tokens, folded, n, where) -> dict[str, tuple[int, Future]]:
        weights = self.lexical_config.unaccented if folded else self.lexical_config.accented
        fetch = max(n * FIELD_FETCH, n)
        expr = filter_expression(where)
        return {field: (fetch, self._run(self._field_search, field, " ".join(tokens[field]), fetch, where=expr))
                for field, weight in weights.items() if weight and tokens[field]}

    def _lexical_rank(self, tokens, folded, n, firsts, also):
        """The exact weighted BM25 sum of every chunk a field returned (and of `also`): each field's
        score of a chunk it did not return comes from a search filtered to those chunks."""
        weights = self.lexical_config.unaccented if folded else self.lexical_config.accented
        per_field = {field: fut.result() for field, (_, fut) in firsts.items()}
        wanted = set().union(*per_field.values()) | {int(i) for i in also}
        fills = {}
        for field, scores in per_field.items():
            missing = sorted(wanted - scores.keys())
            if missing and len(scores) >= firsts[field][0]:  # (fewer returned: every chunk it matches)
                fills[field] = self._run(self._field_search, field, " ".join(tokens[field]), len(missing), missing)
        for field, fut in fills.items():
            per_field[field].update(fut.result())
        total: dict[int, float] = {}
        for i in wanted:
            s = np.float32(0)
            for field, scores in per_field.items():
                s += np.float32(scores.get(i, 0.0)) * np.float32(weights[field])
            total[i] = s
        ranked = sorted((i for i in total if total[i] > 0), key=lambda i: (-total[i], i))[:n]
        return ranked, total

    def dense_candidates(self, vector, n, where=None):
        return self._dense(vector, n, where)

    def _dense(self, vector, n, where=None):
        expr = filter_expression(where, text="digits")
        found = self.client.search(
            self.names["dense"], data=[np.asarray(vector, dtype=np.float32).tolist()], anns_field="vec",
            limit=max(1, min(n, 16_384)), search_params={"metric_type": "IP"}, output_fields=["doc_id"], filter=expr,
        )[0]
        self._note_docs(found)
        return (np.array([h["distance"] for h in found], dtype=np.float32),
                np.array([h["id"] for h in found], dtype=np.int64))

    def _note_docs(self, hits) -> None:
        """Remember each hit's document (returned with the search) so that prefetch fetches the chunks and
        their documents at the same time."""
        if len(self._doc_of) > 20 * CACHE:
            self._doc_of.clear()
        for h in hits:
            doc_id = (h.get("entity") or {}).get("doc_id")
            if doc_id:
                self._doc_of[int(h["id"])] = doc_id

    def prefetch(self, ids) -> None:
        ids = [int(i) for i in ids]
        known = {d for d in (self._doc_of.get(i) for i in ids) if d}
        docs = self._run(self.documents.fetch, known)
        self.chunks.fetch(ids)
        docs.result()
        self.documents.fetch({self.chunks[i].doc_id for i in ids} - known)

    # -- sentence vectors

    def sentence_block(self, i: int) -> np.ndarray | None:
        """The vectors of the sentences of chunk `i` (float16, one row per sentence of rag.text.sentence_spans
        of its text), or None when the index holds none or no chunk `i`."""
        return self.sentence_blocks([i]).get(int(i))

    def sentence_blocks(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        """sentence_block of each of `ids` (those it gives a block), in one query for the ones not cached."""
        if self._sentences is None:
            return {}
        ids = [int(i) for i in ids]
        out = {i: b for i, b in ((i, self._sentences.get(i)) for i in ids) if b is not None}
        todo = sorted(set(ids) - out.keys())
        if not todo:
            return out
        found: dict[int, list[tuple[int, bytes]]] = {}
        for k in range(0, len(todo), 200):
            part = todo[k : k + 200]
            rows = self.client.query(self.names["sents"], filter=f"chunk in {_lit(part)}",
                                     output_fields=["chunk", "n", "vec"], limit=16_384)
            if len(rows) >= 16_384:  # (more sentences than one query returns: one chunk at a time)
                rows = [r for i in part for r in self.client.query(self.names["sents"], filter=f"chunk == {i}",
                                                                   output_fields=["chunk", "n", "vec"], limit=MAX_SENTENCES)]
            for row in rows:
                vec = row["vec"]  # (a float16 vector comes back as its bytes, in a list)
                found.setdefault(int(row["chunk"]), []).append((int(row["n"]), vec[0] if isinstance(vec, list) else vec))
        # a chunk without sentences gets an empty block; an id that is no chunk, none
        empty = [i for i in todo if i not in found and self.chunks.cache.get(i) is None]
        chunks = {i for i in empty if self._has_chunk(i)}  # (rare: the chunker makes no chunk without a sentence)
        dim = int(self.manifest["model"]["dim"])
        for i in todo:
            if i in found:
                data = b"".join(v for _, v in sorted(found[i], key=lambda r: r[0]))
                block = np.frombuffer(data, dtype=np.float16).reshape(-1, dim)
            elif i in chunks or self.chunks.cache.get(i) is not None:
                block = np.zeros((0, dim), np.float16)
            else:
                continue
            block.flags.writeable = False  # (shared by the cache)
            self._sentences.put(i, block)
            out[i] = block
        return out

    def chunk_row(self, chunk: Chunk) -> int | None:
        """The id of `chunk` in this index (what sentence_block takes), or None when it holds no such chunk."""
        found = self.chunks.id_of(chunk.id)
        if found is None and _quotable(chunk.id):  # (not found by a search of this index: asked)
            expr = f"cid == {json.dumps(chunk.id, ensure_ascii=False)}"
            if self._count(expr):
                found = int(self.client.query(self.names["chunks"], filter=expr, output_fields=["id"], limit=1)[0]["id"])
        return found

    def _has_chunk(self, i: int) -> bool:
        return self._count(f"id == {int(i)}") > 0

    def _count(self, expr: str) -> int:
        """The chunks `expr` matches (a count first: pymilvus 2.5 fails to decode an empty get or query
        result of a collection with array fields)."""
        rows = self.client.query(self.names["chunks"], filter=expr, output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    # -- the rerank's data

    def doc_freqs(self, field: str, tokens: Iterable[str]) -> dict[str, int]:
        keys = [f"{field} {t}" for t in tokens]
        for k in keys:
            if not _quotable(k):
                self._df[k] = 0  # (a token with a quote: not counted, as if unseen)
        todo = [k for k in dict.fromkeys(keys) if k not in self._df]
        for i in range(0, len(todo), 1000):
            part = todo[i : i + 1000]
            found = dict.fromkeys(part, 0)
            for row in self.client.get(self.names["vocab"], ids=part, output_fields=["df"]):
                found[row["key"]] = int(row["df"])
            self._df.update(found)  # (complete, at once: a search's prefetch runs this on another thread)
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
        self.ids = _LRU(CACHE)  # chunk.id -> its id in the index

    def __len__(self) -> int:
        return self.index.size

    def id_of(self, cid: str) -> int | None:
        return self.ids.get(cid)

    def fetch(self, ids) -> None:
        todo = sorted({int(i) for i in ids if self.cache.get(int(i)) is None})
        for k in range(0, len(todo), 1000):
            for row in self.index.client.get(self.index.names["chunks"], ids=todo[k : k + 1000], output_fields=self.FIELDS):
                chunk = Chunk(id=row["cid"], doc_id=row["doc_id"], text=row["text"], start=int(row["start"]),
                              end=int(row["end"]), header=row["header"], extra=row["extra"], section=row["section"],
                              places=tuple(row["places"] or ()))
                sents = [s.split(" ") for s in row["sents"].split("\n") if s]
                self.cache.put(int(row["id"]), (chunk, sents))
                self.ids.put(chunk.id, int(row["id"]))

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
        ids = sorted(int(r["id"]) for r in _get(self.index.client, self.index.names["chunks"],
                                                list(range(int(self.index.manifest["next_id"]))), ["id"], 10_000))
        for k in range(0, len(ids), 1000):
            part = ids[k : k + 1000]
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


def read_manifest(client, build: str, check: bool = True) -> dict:
    """The build's manifest; IndexCorrupt when it has none or (`check`) another format version."""
    rows = client.get(_names(build)["docs"], ids=["__manifest__"], output_fields=["record"])
    if not rows:
        raise IndexCorrupt(f"The Milvus build {build} has no manifest; rebuild the index.")
    manifest = rows[0]["record"]
    if check and manifest.get("format") != FORMAT_NAME or manifest.get("format_version") != FORMAT_VERSION:
        raise IndexCorrupt(
            f"The Milvus index {build} has format {manifest.get('format')} v{manifest.get('format_version')}, this "
            f"program reads {FORMAT_NAME} v{FORMAT_VERSION}; rebuild it with `rag index --store milvus`."
        )
    return manifest


# ---------------------------------------------------------------- writing


def build(paths, cfg: StoreConfig, config, embedder, *, progress: bool = False, rebuild: bool = False):
    """indexer.build for Milvus, with the same rule (indexer.plan_build): documents are known by their
    files' absolute paths, and one is dropped only when its file is gone from under `paths`."""
    from .indexer import plan_build

    plan = plan_build(paths, progress)
    return update(cfg, config, embedder, add=plan.docs, keep=plan.keep, skipped=plan.skipped, progress=progress,
                  rebuild=rebuild, gone=plan.gone)


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
        "sentences": _with_sentences(config, dense),  # the sents collection holds each chunk's sentences' vectors
        "chunking": asdict(config.chunk), "lexical": asdict(config.lexical),
        "counts": counts, "next_id": next_id, "versions": versions,
    }


def _with_sentences(config, dense: bool) -> bool:
    return bool(dense and getattr(config, "sentences", False))


def _write_manifest(client, build: str, manifest: dict) -> None:
    client.upsert(_names(build)["docs"], [{"key": "__manifest__", "doc_id": "", "part": 0, "text": "",
                                            "record": manifest, "_v": [0.0, 0.0]}])


def update(cfg: StoreConfig, config, embedder, *, add: list[Document], keep=lambda doc: True, remove=(),
           skipped=None, progress: bool = False, rebuild: bool = False, gone: Iterable[Path] = ()):
    """indexer.update for Milvus: the old documents that `keep` accepts, minus `remove`, plus `add`
    (indexer.merge: the same rule as the local store), in place by content hash; a full rebuild into a
    new build when there is no index yet, `rebuild`, or its format, chunking, model or BM25 settings differ."""
    from .chunker import chunk_document
    from .indexer import BuildReport, check_gone, merge

    client = connect(cfg)
    live = live_build(client, cfg.name)
    old_manifest = None
    if live is not None:
        try:
            old_manifest = read_manifest(client, live, check=False)
        except IndexCorrupt:
            live = None  # no manifest: nothing of it can be trusted (a full rebuild of what is given)
    dense = embedder is not None
    same = old_manifest is not None and not rebuild and (
        old_manifest.get("format_version") == FORMAT_VERSION
        and old_manifest["chunking"] == asdict(config.chunk) and old_manifest["lexical"] == asdict(config.lexical)
        and old_manifest["mode"] == ("dense" if dense else "lexical")
        and bool(old_manifest.get("sentences")) == _with_sentences(config, dense)
        and (not dense or (old_manifest["model"]["name"] == embedder.name and old_manifest["model"]["build"] == embedder.build
                           and old_manifest["model"]["dim"] == embedder.dim))
    )
    names = _names(live) if live else None
    old_records = _doc_records(client, names["docs"]) if live and not rebuild else {}
    old_light = {i: _light(rec) for i, rec in old_records.items()}
    check_gone(gone, old_light)
    m = merge(old_light, list(add), keep, remove, same=_same_content(old_records))
    fresh = [d for i, d in m.documents.items() if i not in m.reused]  # to chunk, embed and insert
    relabel = [d for i, d in m.documents.items()  # kept chunks, a new source or path
               if i in m.reused and (d.source, d.path) != (old_light[i].source, old_light[i].path)]

    if same:  # in place
        drop = sorted(set(m.removed) | {d.id for d in fresh if d.id in old_records})
        next_id = int(old_manifest["next_id"])
        delta: Counter = Counter()
        n_dropped = 0
        if drop:
            rows = _chunk_rows_of(client, names["chunks"], [old_records[i] for i in drop], ["id", "syl_t", "bi_t", "fsyl_t"])
            for row in rows:
                for f in VOCAB_FIELDS:
                    text = row[f"{f}_t"]
                    for t in set(text.split(" ")) if text != EMPTY else ():
                        delta[f"{f} {t}"] -= 1
            ids = [int(r["id"]) for r in rows]
            n_dropped = len(ids)
            for k in range(0, len(ids), 1000):
                client.delete(names["chunks"], ids=ids[k : k + 1000])
                if dense:
                    client.delete(names["dense"], ids=ids[k : k + 1000])
                if _with_sentences(config, dense):
                    client.delete(names["sents"], filter=f"chunk in {_lit(ids[k : k + 1000])}")
            client.delete(names["docs"], filter=f"doc_id in {_lit(drop)}")
        next_id, n_new = _insert_documents(client, names, fresh, config, embedder, next_id, delta, progress, chunk_document)
        _apply_vocab(client, names["vocab"], delta)
        if relabel:
            _relabel(client, names["docs"], relabel)
        counts = {"documents": len(m.documents), "chunks": int(old_manifest["counts"]["chunks"]) + n_new - n_dropped}
        manifest = _manifest(config, embedder, dense, counts, next_id)
        manifest["created"] = old_manifest.get("created", manifest["created"])
        manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        _write_manifest(client, live, manifest)
    else:  # a full rebuild into a new build, then the pointer switch
        reused = [i for i in m.documents if i in m.reused]
        old_docs = _fetch_documents(client, names["docs"], reused) if reused else {}
        everything = []
        for i, doc in m.documents.items():
            if i in m.reused:
                if i not in old_docs:
                    raise IndexCorrupt(f"The Milvus index {cfg.name!r} lists document {i} but holds no text for it; "
                                       "rebuild it with `rag index --rebuild --store milvus PATHS`.")
                doc = replace(old_docs[i], source=doc.source, path=doc.path)
            everything.append(doc)
        build_name = f"{cfg.name}_b{time.strftime('%Y%m%d%H%M%S')}{uuid.uuid4().hex[:6]}"
        _drop_stale(client, cfg.name, keep={live} if live else set())  # what failed builds left
        new = _names(build_name)
        _create(client, new["chunks"], _chunks_schema(config.lexical))
        if dense:
            _create(client, new["dense"], _dense_schema(embedder.dim))
        if _with_sentences(config, dense):
            _create(client, new["sents"], _sents_schema(embedder.dim))
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
        tuple(m.added), tuple(m.updated), tuple(m.unchanged), tuple(m.removed), tuple(skipped or ()),
        int(manifest["counts"]["documents"]), int(manifest["counts"]["chunks"]), manifest["mode"],
        Path(cfg.uri),
    )


def _light(rec: dict) -> Document:
    """A document's record without its text: what the keep/drop rule reads."""
    return Document(rec["id"], rec["source"], "", rec["sha256"], path=rec.get("path") or "",
                    pages=tuple(rec.get("pages") or ()))


def _text_sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _same_content(records: dict[str, dict]):
    """indexer.same_content on records that hold a hash of the text, not the text."""
    def same(prev: Document, doc: Document) -> bool:
        return (prev.sha256 == doc.sha256 and prev.pages == doc.pages
                and records[prev.id].get("text_sha256") == _text_sha(doc.text))

    return same


def _relabel(client, coll: str, docs: list[Document]) -> None:
    """New source and path in the records of documents whose content (and chunks) stay."""
    keys = [f"{d.id}:0" for d in docs]
    rows = {r["doc_id"]: r for r in client.get(coll, ids=keys, output_fields=["doc_id", "part", "text", "record"])}
    out = []
    for doc in docs:
        row = rows.get(doc.id)
        if row is not None:
            out.append({"key": f"{doc.id}:0", "doc_id": doc.id, "part": 0, "text": row["text"],
                        "record": {**row["record"], "source": doc.source, "path": doc.path}, "_v": [0.0, 0.0]})
    for k in range(0, len(out), 200):
        client.upsert(coll, out[k : k + 200])


def _chunk_rows_of(client, coll: str, records: list[dict], fields: list[str]) -> list[dict]:
    """The chunk rows of these documents (their records name their chunks' id ranges)."""
    ids = [i for rec in records for i in range(*rec["ids"])]
    return _get(client, coll, ids, fields)


def _get(client, coll: str, ids: list, fields: list[str], batch: int = 1000) -> list[dict]:
    out = []
    for k in range(0, len(ids), batch):
        out.extend(client.get(coll, ids=ids[k : k + batch], output_fields=fields))
    return out


def _rows_of_docs(client, coll: str, doc_ids: list[str], fields: list[str]) -> list[dict]:
    """The rows of the docs collection for these documents (their text's parts)."""
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


def _insert_documents(client, names, docs, config, embedder, next_id, delta, progress, chunk_document,
                      embed=None) -> tuple[int, int]:
    """Chunk, embed and insert `docs` (ids from `next_id` on, in order), GROUP chunks at a time;
    vocabulary counts into `delta`. A document's row goes in after all its chunks. `embed`: what
    embeds a group's texts (default: embedder.embed_documents; rag index --workers passes a pool's).
    When the build keeps sentence vectors (config.sentences), each chunk's sentences are embedded in
    the same call as the chunks (as rag/indexer.py does) and inserted with their chunk's id."""
    from .indexer import _progress

    if embedder is not None and embed is None:
        embed = embedder.embed_documents
    with_sentences = _with_sentences(config, embedder is not None)
    chunk_rows, doc_rows, texts = [], [], []
    total = 0

    def flush():
        if embedder is not None and chunk_rows:
            pieces = [[r["text"][a:b] for a, b in sentence_spans(r["text"])] for r in chunk_rows] if with_sentences else []
            vectors = np.asarray(embed(texts + [t for p in pieces for t in p]), dtype=np.float32)
            _insert(client, names["dense"], [
                {"id": r["id"], "vec": v.tolist(), "doc_id": r["doc_id"], "places": r["places"], "province": r["province"], "years": r["years"],
                 "digits": _clip(" ".join(DIGITS.findall(r["text"])))} for r, v in zip(chunk_rows, vectors)])
            if with_sentences:
                _insert(client, names["sents"], list(_sentence_rows(chunk_rows, pieces, vectors[len(texts):])))
        _insert(client, names["chunks"], chunk_rows)
        _insert(client, names["docs"], doc_rows)
        chunk_rows.clear(), doc_rows.clear(), texts.clear()

    for doc in _progress(list(docs), "Indexing", progress):
        if not _quotable(doc.id):
            raise UsageError(f"The Milvus store cannot hold a document id with quotes or backslashes ({doc.id!r}); rename the file.")
        first = next_id
        for chunk in chunk_document(doc, config.chunk):
            toks, sents = chunk_tokens(chunk)
            chunk_rows.append(_chunk_row(next_id, chunk, toks, sents, doc))
            texts.append(chunk.index_text)
            for f in VOCAB_FIELDS:
                for t in set(toks[f]):
                    delta[f"{f} {t}"] += 1
            next_id += 1
        total += next_id - first
        doc_rows.extend(_doc_rows(doc, (first, next_id)))
        if len(chunk_rows) >= GROUP:
            flush()
    flush()
    return next_id, total


def _sentence_rows(chunk_rows: list[dict], pieces: list[list[str]], vectors: np.ndarray):
    """The sents rows of these chunks: `vectors` holds their sentences' vectors, chunk after chunk; stored
    as float16, as the local store keeps them (both stores then rank with the same numbers)."""
    vectors = vectors.astype(np.float16)
    at = 0
    for row, sents in zip(chunk_rows, pieces):
        if len(sents) > MAX_SENTENCES:
            raise UsageError(f"A chunk of {row['doc_id']} has {len(sents)} sentences; index it with a smaller --chunk-size.")
        for n in range(len(sents)):
            yield {"id": row["id"] * SENT_SLOTS + n, "chunk": row["id"], "n": n, "vec": vectors[at + n]}
        at += len(sents)


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
