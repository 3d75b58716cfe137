"""The store seam (rag/backend.py): the same contract tests for the local folder store and for Milvus
(Milvus Lite in-process, and once as a TCP server on 127.0.0.1), incremental updates, filters, the
pointer switch of a rebuild that fails, and a server that cannot be reached."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from rag import milvus_store  # noqa: E402
from rag.api import RAG  # noqa: E402
from rag.backend import IndexView, StoreConfig  # noqa: E402
from rag.errors import IndexNotFound, RagError, UsageError  # noqa: E402
from rag.lexical import tokenize  # noqa: E402
from rag.query import analyse  # noqa: E402
from rag.text import sentence_spans  # noqa: E402

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
HUE = "004_1400c37e89a2c6fc"
QUESTION = "Tỷ lệ hộ nghèo Huế 2023?"
QUESTIONS = [QUESTION, "ty le ho ngheo hue 2023", "Nghệ An giải quyết việc làm cho bao nhiêu lao động?",
             "Hòa Bình giảm nghèo năm 2024", "doanh nghiệp thành lập mới", "xuất khẩu lao động"]


def _store(kind: str, tmp: Path, name: str = "rag") -> StoreConfig:
    return StoreConfig() if kind == "local" else StoreConfig("milvus", str(tmp / "milvus.db"), None, name)


_BUILT: dict[str, tuple] = {}


def _seeds_index(kind: str, tmp_path_factory):
    """seeds/ indexed once per store for the module (read-only tests share it)."""
    if kind not in _BUILT:
        tmp = tmp_path_factory.mktemp(kind)
        # with each chunk's sentences' vectors (the default): both stores keep them, the rerank and the answerer read them
        _BUILT[kind] = RAG.build([SEEDS], tmp / "index", model="hashing", store=_store(kind, tmp))
    return _BUILT[kind]


@pytest.fixture(scope="module", params=["local", "milvus"])
def built(request, tmp_path_factory):
    return _seeds_index(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    return {kind: _seeds_index(kind, tmp_path_factory)[0] for kind in ("local", "milvus")}


# ---------------------------------------------------------------- the contract, for both stores


def test_view_counts_and_lookups(built):
    rag, report = built
    view = rag._retriever.snapshot
    assert isinstance(view, IndexView)
    assert view.kind == rag.store.kind
    assert report.documents == len(view.documents) == 5 == len(list(view.documents))
    assert len(view.chunks) == report.chunks == view.manifest["counts"]["chunks"] > 5
    assert view.has_dense and view.manifest["model"]["name"].startswith("hashing")
    doc = view.documents[HUE]
    assert "2,27%" in doc.text and doc.meta.province == "Thừa Thiên Huế"
    assert HUE in view.documents and "nope" not in view.documents
    with pytest.raises(KeyError):
        view.documents["nope"]


def test_lexical_candidates(built):
    view = built[0]._retriever.snapshot
    query = analyse(QUESTION)
    tokens = tokenize(query.normalized, query=True)
    ids, scores = view.lexical_candidates(tokens, query.folded, 10, also=[0])
    assert 0 < len(ids) <= 10 and 0 in scores
    values = [float(scores[i]) for i in ids]
    assert values == sorted(values, reverse=True) and values[-1] > 0
    view.prefetch(ids)
    assert HUE in {view.chunks[i].doc_id for i in ids[:5]}
    for i in ids:
        chunk = view.chunks[i]
        assert view.documents[chunk.doc_id].text[chunk.start:chunk.end] == chunk.text


def test_dense_candidates(built):
    rag = built[0]
    view = rag._retriever.snapshot
    scores, ids = view.dense_candidates(rag._retriever.embedder.embed_query(QUESTION), 5)
    assert len(ids) == 5 and list(scores) == sorted(scores, reverse=True)
    assert all(view.chunks[int(i)].doc_id for i in ids)


def test_idf_and_coverage(built):
    view = built[0]._retriever.snapshot
    idf = view.idf(["hộ", "nghèo", "khôngcótừnày"], "syl")
    assert idf["hộ"] > 0 and idf["nghèo"] > 0 and idf["khôngcótừnày"] == 0
    assert view.idf(["ngheo"], "fsyl")["ngheo"] == pytest.approx(idf["nghèo"], rel=0.5)
    ids, _ = view.lexical_candidates(tokenize("tỷ lệ hộ nghèo", query=True), False, 5)
    best, found = view.coverage(ids, {"tỷ": 1.0, "lệ": 1.0, "hộ": 2.0, "nghèo": 2.0}, {"hộ_nghèo", "tỷ_lệ"}, False)
    assert len(best) == len(found) == len(ids) and max(best) == 6.0 and max(found) == 2
    assert view.restorer().restore("ty le ho ngheo") == "tỷ lệ hộ nghèo"


def _chunks_and_sentence_blocks(rag) -> dict[str, tuple]:
    """chunk id -> (the chunk, its sentence_block), for every chunk of the index (Milvus: one sentence_blocks call)."""
    view = rag._retriever.snapshot
    if view.kind == "local":
        return {c.id: (c, view.sentence_block(i)) for i, c in enumerate(view.chunks)}
    rows = view.client.query(view.names["chunks"], filter="id >= 0", output_fields=["id"], limit=16_384)
    blocks = view.sentence_blocks([int(r["id"]) for r in rows])
    return {view.chunks[int(r["id"])].id: (view.chunks[int(r["id"])], blocks.get(int(r["id"]))) for r in rows}


def _check_sentence_vectors(rag) -> None:
    """Every chunk's block holds its sentences' vectors (rag.text.sentence_spans of its text, as the embedder
    gives them, rounded to float16), and Milvus holds no other sentence rows (none left by replaced or removed
    documents)."""
    view = rag._retriever.snapshot
    found = _chunks_and_sentence_blocks(rag)
    assert len(found) == len(view.chunks)
    for chunk, block in found.values():
        texts = [chunk.text[a:b] for a, b in sentence_spans(chunk.text)]
        assert block is not None and block.shape == (len(texts), view.manifest["model"]["dim"]), chunk.id
        expected = rag._retriever.embedder.embed_documents(texts).astype(np.float16).astype(np.float32)
        np.testing.assert_allclose(block.astype(np.float32), expected, atol=1e-3)
    if view.kind == "milvus":
        rows = view.client.query(view.names["sents"], filter="id >= 0", output_fields=["count(*)"])
        assert rows[0]["count(*)"] == sum(len(b) for _, b in found.values())


def test_sentence_vectors(built, monkeypatch):
    rag = built[0]
    view = rag._retriever.snapshot
    _check_sentence_vectors(rag)
    assert view.sentence_block(10**6) is None
    if view.kind == "local":
        assert view.sentences.dtype == np.float16  # (as on disk)
    else:
        assert view.manifest["sentences"] is True
        view._sentences.data.clear()
        calls = []
        query = view.client.query
        monkeypatch.setattr(view.client, "query", lambda *a, **kw: calls.append(kw.get("filter")) or query(*a, **kw))
        blocks = view.sentence_blocks(range(12))  # the rerank's candidates: one query
        assert len(calls) == 1 and sorted(blocks) == list(range(12))
        assert all(view.sentence_block(i) is blocks[i] for i in range(12)) and len(calls) == 1  # (then cached)


def test_sentence_vectors_match(both):
    """The two stores hold the same sentence vectors (cosine >= 0.999 per sentence) and the retriever reads
    the same question-sentence cosines from both."""
    local, milvus = (_chunks_and_sentence_blocks(both[k]) for k in ("local", "milvus"))
    assert local.keys() == milvus.keys()
    for cid, (_, a) in local.items():
        b = milvus[cid][1]
        assert a.shape == b.shape and a.dtype == b.dtype == np.float16, cid  # (float16 in both, as stored)
        a, b = a.astype(np.float32), b.astype(np.float32)
        cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
        assert (cos >= 0.999).all(), cid
    for question in QUESTIONS[:3]:
        query = analyse(question)
        sims = []
        for kind in ("local", "milvus"):
            hit = both[kind].search(question, 1)[0]
            spans = sentence_spans(hit.chunk.text)
            sims.append(both[kind]._retriever.sentence_similarities(query, hit.chunk, [hit.chunk.text[a:b] for a, b in spans]))
        assert None not in sims[0] and sims[0] == pytest.approx(sims[1], abs=1e-4), question


def test_answers(built):
    rag = built[0]
    for question in (QUESTION, "ty le ho ngheo hue 2023"):
        answer = rag.ask(question)
        assert answer.answer == "2,27%" and answer.citations[0].doc_id == HUE, question
    assert rag.store_info["kind"] == rag.store.kind


def test_filters(built):
    rag = built[0]
    for hit in rag.search("giảm nghèo", 10, province="hue"):
        doc = rag.documents[hit.chunk.doc_id]
        assert doc.meta.province == "Thừa Thiên Huế" or "Thừa Thiên Huế" in hit.chunk.places
    hits = rag.search("giảm nghèo", 10, year=2023)
    assert hits and all("2023" in h.chunk.text or 2023 in rag.documents[h.chunk.doc_id].meta.years for h in hits)


BOTH_SLOW_MILVUS = ["local", pytest.param("milvus", marks=pytest.mark.slow)]  # (Milvus writes: 8-20 s here)


@pytest.mark.parametrize("kind", BOTH_SLOW_MILVUS)
def test_incremental(kind, tmp_path, seeds_copy):
    if True:
        store = _store(kind, tmp_path / kind)
        files = sorted(seeds_copy.glob("*.txt"))
        rag, report = RAG.build(files[:4], tmp_path / kind / "index", model="hashing", store=store)
        assert len(report.added) == 4
        before = rag.chunk_count
        report = rag.add([files[4]])
        assert report.added == (files[4].stem,) and rag.chunk_count > before and len(rag.documents) == 5
        _check_sentence_vectors(rag)  # (an add keeps the index's sentence vectors)
        # unchanged by hash: nothing re-indexed; changed: replaced
        files[0].write_text(files[0].read_text("utf-8") + "\nThêm một câu mới về hợp tác xã Quảng Trị.", "utf-8")
        _, report = RAG.build(files, tmp_path / kind / "index", model="hashing", store=store)
        assert report.updated == (files[0].stem,) and len(report.unchanged) == 4, kind
        rag = RAG.open(tmp_path / kind / "index", store=store)
        assert any("hợp tác xã Quảng Trị" in h.chunk.text for h in rag.search("hợp tác xã Quảng Trị", 3))
        _check_sentence_vectors(rag)
        report = rag.remove(HUE)
        assert report.removed == (HUE,) and HUE not in rag.documents and len(rag.documents) == 4
        _check_sentence_vectors(rag)
        assert all(h.chunk.doc_id != HUE for h in rag.search(QUESTION, 10)), kind
        # the vocabulary follows: a word only the removed document had has no idf left
        assert rag._retriever.snapshot.idf(["2,27%"], "syl")["2,27%"] == 0.0


@pytest.mark.slow
def test_milvus_sentences_setting_is_kept(tmp_path, seeds_copy):
    """An index built without sentence vectors stays so when documents are added (as the local store);
    building it with them is a full rebuild that embeds every chunk's sentences."""
    store = _store("milvus", tmp_path)
    files = sorted(seeds_copy.glob("*.txt"))
    rag, _ = RAG.build(files[:2], tmp_path / "index", model="hashing", store=store, sentences=False)
    view = rag._retriever.snapshot
    assert view.manifest["sentences"] is False and view.sentence_block(0) is None
    assert not view.client.has_collection(view.names["sents"])
    rag.add([files[2]])
    view = rag._retriever.snapshot
    assert len(rag.documents) == 3 and view.manifest["sentences"] is False and view.sentence_blocks([0, 1]) == {}
    rag, _ = RAG.build(files[:3], tmp_path / "index", model="hashing", store=store)
    assert rag._retriever.snapshot.build != view.build and rag._retriever.snapshot.manifest["sentences"] is True
    _check_sentence_vectors(rag)


@pytest.mark.parametrize("kind", BOTH_SLOW_MILVUS)
def test_documents_are_known_by_their_files(kind, tmp_path, monkeypatch, seeds_repo):
    """The rule of rag/indexer.py (plan_build, merge) in both stores: a document is known by its file's
    absolute path, sources read as given from where `rag index` ran, a document is dropped only when
    its file is gone from under the paths given, the same content from another file keeps its chunks."""
    repo, elsewhere, index = seeds_repo, tmp_path / "elsewhere", tmp_path / "index"
    elsewhere.mkdir()
    one = tmp_path / "home" / "one.txt"
    one.parent.mkdir()
    one.write_text("Giải quyết việc làm cho 5.000 lao động tỉnh Quảng Bình năm 2023.\n", "utf-8")
    store = _store(kind, tmp_path)
    monkeypatch.chdir(repo)
    _, report = RAG.build(["seeds"], index, model="hashing", store=store)
    assert len(report.added) == 5
    monkeypatch.chdir(elsewhere)
    rag, report = RAG.build([one], index, model="hashing", store=store)
    assert (report.added, report.removed, report.documents) == (("one",), (), 6)
    assert sorted(d.source for i, d in ((i, rag.documents[i]) for i in rag.documents) if i != "one") == \
        sorted(f"seeds/{p.name}" for p in SEEDS.glob("*.txt"))
    assert rag.documents["one"].source == str(one) and rag.documents["one"].path == str(one.resolve())
    _, report = RAG.build(["../repo/seeds"], index, model="hashing", store=store)
    assert len(report.unchanged) == 5 and not report.removed and report.documents == 6
    # a file deleted: kept while its path is not given, dropped when it is
    one.unlink()
    monkeypatch.chdir(repo)
    _, report = RAG.build(["seeds"], index, model="hashing", store=store)
    assert report.documents == 6 and not report.removed
    _, report = RAG.build([one], index, model="hashing", store=store)
    assert report.removed == ("one",) and report.documents == 5
    with pytest.raises(UsageError, match="does not exist"):
        RAG.build([tmp_path / "never"], index, model="hashing", store=store)
    # a file moved: the same content from another file, updated (new source and path), not removed
    (repo / "moved").mkdir()
    (repo / "seeds" / f"{HUE}.txt").rename(repo / "moved" / f"{HUE}.txt")
    rag, report = RAG.build(["seeds", "moved"], index, model="hashing", store=store)
    assert report.updated == (HUE,) and not report.removed and report.documents == 5
    rag = RAG.open(index, store=store)
    assert rag.documents[HUE].source == f"moved/{HUE}.txt"
    assert rag.documents[HUE].path == str((repo / "moved" / f"{HUE}.txt").resolve())
    assert rag.ask(QUESTION).answer == "2,27%"
    if kind == "milvus":
        milvus_store.close(store)


FILTERED = [("giảm nghèo", "hue", None), ("tỷ lệ hộ nghèo", "Nghệ An", None), ("hộ nghèo", None, 2023),
            ("giải quyết việc làm", "Hòa Bình", 2024), ("vụ nổ lò hơi", "Đồng Nai", None), ("hộ nghèo", None, 2019),
            ("ty le ho ngheo", "Thừa Thiên Huế", 2023), ("hộ nghèo", "Cà Mau", None), ("hộ nghèo", None, 1995)]


@pytest.mark.parametrize("question, province, year", FILTERED)
def test_filtered_results_match(both, question, province, year):
    """The filter is applied by each store before it ranks (a chunk mask locally, a filter expression
    in Milvus); both give the same hits."""
    local = both["local"].search(question, 5, province=province, year=year)
    milvus = both["milvus"].search(question, 5, province=province, year=year)
    assert [h.chunk.id for h in local][:1] == [h.chunk.id for h in milvus][:1]
    assert len(local) == len(milvus)
    assert len({h.chunk.id for h in local} & {h.chunk.id for h in milvus}) >= min(4, len(local))
    if local:
        assert [h.score for h in local][:1] == pytest.approx([h.score for h in milvus][:1], abs=1e-3)


def test_filters_reach_the_engine(both, monkeypatch):
    view = both["milvus"]._retriever.snapshot
    seen = []
    search = view.client.search
    monkeypatch.setattr(view.client, "search", lambda *a, **kw: seen.append((kw.get("anns_field"), kw.get("filter"))) or search(*a, **kw))
    hits = both["milvus"].search("ho ngheo", 5, province="hue", year=2023)
    assert hits and all(h.chunk.doc_id == HUE for h in hits)
    assert {field for field, _ in seen} >= {"vec", "fsyl_v"}  # (an unaccented question: the folded fields)
    for _, expr in seen:
        assert 'province == "Thừa Thiên Huế"' in expr and '"%2023%"' in expr, expr
    assert milvus_store.filter_expression(None) == ""
    from rag.backend import Where

    assert milvus_store.filter_expression(Where('Quảng "Trị')) == "id < 0"  # (no place is named so)
    assert both["milvus"].search("hộ nghèo", 5, province='Quảng "Trị') == []


def test_stores_agree(both):
    assert both["milvus"]._retriever.config.sentence_dense > 0  # (the sentence feature counts in both)
    for question in QUESTIONS:
        local = both["local"].search(question, 5)
        milvus = both["milvus"].search(question, 5)
        assert [h.chunk.id for h in local][:1] == [h.chunk.id for h in milvus][:1], question
        assert len({h.chunk.id for h in local} & {h.chunk.id for h in milvus}) >= 4, question
        assert local[0].score == pytest.approx(milvus[0].score, abs=1e-3), question


def test_stores_give_the_same_answers_and_confidence(both, monkeypatch):
    """The answerer reads the chunk cosine from the store's vectors (local) or the dense search's scores (Milvus):
    the same answer, citation and confidence from both."""
    from dataclasses import replace

    from rag import abstention

    fitted = abstention.Abstention.load("dense")
    # the hashing model's cosines count here as if the abstention had been fitted on them
    monkeypatch.setattr(abstention.Abstention, "load", classmethod(lambda cls, mode="dense": replace(fitted, model=None)))
    for question in QUESTIONS:
        local, milvus = (both[k].ask(question) for k in ("local", "milvus"))
        assert (local.answer, local.abstained) == (milvus.answer, milvus.abstained), question
        assert [c.doc_id for c in local.citations] == [c.doc_id for c in milvus.citations], question
        assert local.confidence == pytest.approx(milvus.confidence, abs=0.02), question


# ---------------------------------------------------------------- Milvus only


@pytest.mark.slow
def test_failed_rebuild_leaves_the_old_build_live(tmp_path, monkeypatch):
    store = _store("milvus", tmp_path)
    rag, _ = RAG.build([SEEDS], tmp_path / "index", model="hashing", store=store)
    client = milvus_store.connect(store)
    old = milvus_store.live_build(client, store.name)
    chunks = rag.chunk_count

    def broken(client, names, docs, *args):
        client.insert(names["docs"], milvus_store._doc_rows(docs[0], (0, 0)))  # half written, then the crash
        raise RuntimeError("killed mid-build")

    monkeypatch.setattr(milvus_store, "_insert_documents", broken)
    with pytest.raises(RuntimeError):  # another chunk size: a full rebuild into a new build
        RAG.build([SEEDS], tmp_path / "index", model="hashing", store=store, chunk_size=500, chunk_overlap=50)
    assert milvus_store.live_build(client, store.name) == old
    reader = RAG.open(tmp_path / "index", store=store)
    assert reader.chunk_count == chunks and reader.ask(QUESTION).answer == "2,27%"
    leftovers = [c for c in client.list_collections() if c.startswith("rag_b") and not c.startswith(old)]
    assert leftovers  # what the failed build wrote, invisible to readers
    monkeypatch.undo()
    rag, _ = RAG.build([SEEDS], tmp_path / "index", model="hashing", store=store, chunk_size=500, chunk_overlap=50)
    new = milvus_store.live_build(client, store.name)
    assert new != old and rag.chunk_count > chunks
    assert all(c.startswith(new) or c == milvus_store.POINTERS for c in client.list_collections())


def test_no_index_yet(tmp_path):
    with pytest.raises(IndexNotFound, match="rag index --store milvus"):
        RAG.open(tmp_path / "index", store=_store("milvus", tmp_path, name="empty"))


def test_unreachable_server_fails_fast():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    with pytest.raises(RagError, match=r"^Cannot reach the Milvus server at http://127\.0\.0\.1:\d+ .*\.$") as info:
        RAG.open("index", store=StoreConfig("milvus", f"http://127.0.0.1:{port}"))
    assert time.perf_counter() - t0 < 5 and "\n" not in str(info.value)


def test_store_configuration(monkeypatch):
    monkeypatch.delenv("RAG_STORE", raising=False)
    assert StoreConfig.resolve().kind == "local"
    monkeypatch.setenv("RAG_STORE", "milvus")
    monkeypatch.setenv("RAG_MILVUS_URI", "http://db:19530")
    monkeypatch.setenv("RAG_MILVUS_TOKEN", "root:Milvus")
    cfg = StoreConfig.resolve()
    assert (cfg.kind, cfg.uri, cfg.token, cfg.is_lite) == ("milvus", "http://db:19530", "root:Milvus", False)
    assert StoreConfig.resolve("milvus", "/tmp/x/milvus.db").is_lite
    monkeypatch.delenv("RAG_MILVUS_URI")
    with pytest.raises(UsageError, match="--milvus-uri"):
        StoreConfig.resolve()
    with pytest.raises(UsageError):
        StoreConfig.resolve("elastic")


@pytest.mark.slow  # (another index build; the API tests above cover the same path)
def test_cli(tmp_path, capsys):
    import json

    from rag.cli import main

    uri = str(tmp_path / "m" / "milvus.db")
    assert main(["index", str(SEEDS), "--model", "hashing", "--quiet", "--store", "milvus", "--milvus-uri", uri]) == 0
    assert "Milvus" in capsys.readouterr().out
    assert main(["ask", "--json", "ty le ho ngheo hue 2023", "--store", "milvus", "--milvus-uri", uri]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["answer"] == "2,27%" and result["citations"][0]["doc_id"] == HUE
    assert list(result)[-1] == "store" and result["store"]["kind"] == "milvus"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lite_server(tmp_path_factory):
    """Milvus Lite 2.5.1 (the Milvus engine) as a TCP server on 127.0.0.1: its URI, as a cluster's."""
    from milvus_lite.server import Server

    port = _free_port()
    server = Server(str(tmp_path_factory.mktemp("served") / "served.db"), address=f"127.0.0.1:{port}")
    assert server.start()
    milvus_store.wait_for_port(port, 30)
    yield f"http://127.0.0.1:{port}"
    milvus_store.close(StoreConfig("milvus", f"http://127.0.0.1:{port}"))
    server.stop()


KILLED_WRITER = """
import sys, time
from rag import milvus_store
from rag.api import RAG
from rag.backend import StoreConfig

insert, calls = milvus_store._insert, []

def slow(client, coll, rows):  # the rebuild's inserts: the first ones done, then a pause to be killed in
    insert(client, coll, rows)
    calls.append(coll)
    if len(calls) == 2:
        print("INSERTING", flush=True)
        time.sleep(120)

milvus_store._insert = slow
RAG.build([sys.argv[1]], sys.argv[2], model="hashing", store=StoreConfig("milvus", sys.argv[3], None, "killed"),
          chunk_size=500, chunk_overlap=50)
print("FINISHED", flush=True)
"""


@pytest.mark.slow
def test_killed_rebuild_leaves_readers_on_the_old_build(tmp_path, lite_server):
    """A writer process SIGKILLed in the middle of a full rebuild's inserts: readers stay on the old
    build and answer; the next build drops what the killed one wrote."""
    import os
    import signal
    import subprocess
    import sys

    store = StoreConfig("milvus", lite_server, None, "killed")
    rag, _ = RAG.build([SEEDS], tmp_path / "index", model="hashing", store=store)
    client = milvus_store.connect(store)
    old = milvus_store.live_build(client, store.name)
    chunks = rag.chunk_count
    env = {**os.environ, "PYTHONPATH": str(SEEDS.parent)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(SEEDS), str(tmp_path / "index"), lite_server],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()  # (blocks until the writer is in its inserts, or ends)
        assert line.strip() == "INSERTING", proc.stderr.read()[-2000:]
        orphans = [c for c in client.list_collections() if c.startswith("killed_b") and not c.startswith(old)]
        assert orphans  # the new build is being written
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert milvus_store.live_build(client, store.name) == old
    answer = rag.ask(QUESTION)  # the reader opened before the crash
    assert answer.answer == "2,27%" and answer.citations[0].doc_id == HUE
    reader = RAG.open(tmp_path / "index", store=store)  # and one opened after
    assert reader.chunk_count == chunks and reader.ask("ty le ho ngheo hue 2023").answer == "2,27%"
    assert set(orphans) <= set(client.list_collections())
    rag, _ = RAG.build([SEEDS], tmp_path / "index", model="hashing", store=store, chunk_size=500, chunk_overlap=50)
    new = milvus_store.live_build(client, store.name)
    assert new not in (old, None) and rag.chunk_count > chunks
    assert [c for c in client.list_collections() if c.startswith("killed_")] == \
        [c for c in client.list_collections() if c.startswith(new)]
    assert rag.ask(QUESTION).answer == "2,27%"


def test_lite_tcp_server(tmp_path, lite_server):
    store = StoreConfig("milvus", lite_server, None, "tcp")
    rag, report = RAG.build([SEEDS], tmp_path / "index", model="hashing", store=store)
    assert report.documents == 5 and not store.is_lite
    answer = RAG.open(tmp_path / "index", store=store).ask(QUESTION)
    assert answer.answer == "2,27%" and answer.citations[0].doc_id == HUE
