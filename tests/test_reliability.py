"""Reliability seen from outside: the `rag` command killed, racing, or given a damaged index.

Each test drives the real command line in subprocesses (`python -m rag`), except the one that
checks that an open `RAG` keeps answering while another thread re-indexes.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rag import store

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
QUESTION = "Tỷ lệ hộ nghèo Huế 2023?"
ANSWER, ANSWER_DOC = "2,27%", "004_1400c37e89a2c6fc"
MODEL = "hashing:64"  # the test embedder: the dense path (vectors.npy, dense.faiss) without a real model
FILLERS = 120  # documents that make a build last long enough to be killed in the middle


def env() -> dict[str, str]:
    out = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    out.pop("RAG_EMBED_MODEL", None)
    out.pop("RAG_INDEX_DIR", None)
    return out


def rag_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "rag", *args]


def rag(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        rag_cmd(*args), capture_output=True, text=True, encoding="utf-8", cwd=ROOT, env=env(), timeout=timeout
    )


def index(paths: list[Path], index_dir: Path, model: str = MODEL) -> subprocess.CompletedProcess:
    return rag("index", *map(str, paths), "--index-dir", str(index_dir), "--model", model, "--quiet")


def ask_json(index_dir: Path, question: str = QUESTION, *extra: str) -> subprocess.CompletedProcess:
    return rag("ask", question, "--index-dir", str(index_dir), "--json", *extra)


def assert_canonical_answer(index_dir: Path) -> None:
    proc = ask_json(index_dir)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["answer"] == ANSWER and not result["abstained"]
    assert result["citations"][0]["doc_id"] == ANSWER_DOC


def assert_one_sentence_error(proc: subprocess.CompletedProcess, *, says: str = "rag index") -> None:
    assert proc.returncode in (1, 2), (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: ") and "Traceback" not in proc.stderr
    assert says in lines[0], lines[0]
    assert proc.stdout == ""


def dirs(index_dir: Path, prefix: str) -> list[str]:
    return sorted(p.name for p in index_dir.iterdir() if p.is_dir() and p.name.startswith(prefix))


def write_fillers(folder: Path, n: int, seed: int = 0) -> None:
    """`n` documents of shuffled lines of two seeds that neither name Huế nor its poverty rate."""
    lines = [
        line
        for name in ("001_5b329be121ff4886.txt", "003_9347b5653608e64b.txt")
        for line in (SEEDS / name).read_text("utf-8").splitlines()
        if len(line) > 40
    ]
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"filler_{i:05d}.txt").write_text("\n\n".join(rng.sample(lines, 8)), "utf-8")


@pytest.fixture(scope="module")
def seeds_index(tmp_path_factory) -> Path:
    """An index of the seeds built by the CLI with the test embedder (copy it before damaging it)."""
    index_dir = tmp_path_factory.mktemp("rel") / "index"
    proc = index([SEEDS], index_dir)
    assert proc.returncode == 0, proc.stderr
    return index_dir


@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory) -> Path:
    """The seeds and FILLERS more documents (about 600 chunks): a build of a few seconds."""
    folder = tmp_path_factory.mktemp("big") / "docs"
    shutil.copytree(SEEDS, folder)
    write_fillers(folder, FILLERS)
    return folder


@pytest.fixture
def index_copy(seeds_index, tmp_path) -> Path:
    dest = tmp_path / "index"
    shutil.copytree(seeds_index, dest)
    return dest


def _holds_flock(path: Path) -> bool:
    """Whether some process holds a flock on `path` (read from /proc/locks, without taking it)."""
    ino = os.stat(path).st_ino
    with open("/proc/locks") as locks:
        return any(" FLOCK " in line and line.split()[5].endswith(f":{ino}") for line in locks)


def _wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the build ended (exit {proc.returncode}) before {what}: too fast to be killed")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


def _wait_until(condition, proc: subprocess.Popen, timeout: float = 240) -> bool:
    """True once `condition` holds while `proc` runs; False if `proc` ended first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            return False
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out")
        time.sleep(0.002)
    return True


# ---------------------------------------------------------------- a build killed halfway


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs /proc/locks (Linux)")
@pytest.mark.parametrize("moment", ["building", "writing"])
def test_a_build_killed_halfway_leaves_the_previous_index_answering(seeds_index, tmp_path, big_corpus, moment):
    """SIGKILL while the new snapshot is computed (lock held), or while its folder is written."""
    index_copy = tmp_path / "index"
    if moment == "building":
        condition = lambda: _holds_flock(index_copy / ".lock")  # noqa: E731 - now computing
    else:
        condition = lambda: dirs(index_copy, "tmp-snap-")  # noqa: E731
    for _attempt in range(3):  # on a busy machine the poller may miss the moment: start again
        shutil.rmtree(index_copy, ignore_errors=True)
        shutil.copytree(seeds_index, index_copy)
        before = (index_copy / "CURRENT").read_text("utf-8")
        proc = subprocess.Popen(
            rag_cmd("index", str(big_corpus), "--index-dir", str(index_copy), "--model", MODEL, "--quiet"),
            cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            caught = _wait_until(condition, proc)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        swapped = (index_copy / "CURRENT").read_text("utf-8") != before  # it had finished after all
        if caught and proc.returncode == -signal.SIGKILL and not swapped:
            break
    else:
        raise AssertionError(f"three builds ended before they could be killed while {moment}")

    # the old index is untouched, loadable and answering
    assert (index_copy / "CURRENT").read_text("utf-8") == before
    if moment == "writing":  # the half-written snapshot is left behind (or, renamed, not made live)
        assert dirs(index_copy, "tmp-snap-") or len(dirs(index_copy, "snap-")) == 2
    assert_canonical_answer(index_copy)
    assert len(store.load(index_copy).documents) == 5

    # the next build is not blocked by the dead process's lock and cleans its leftovers
    proc2 = index([big_corpus], index_copy)
    assert proc2.returncode == 0, proc2.stderr
    assert f"{5 + FILLERS} documents" in proc2.stdout
    assert not dirs(index_copy, "tmp-snap-") and len(dirs(index_copy, "snap-")) == 1
    assert not [p for p in index_copy.iterdir() if p.name.startswith(".CURRENT.")]
    assert_canonical_answer(index_copy)


def test_a_pointer_swap_that_never_happened_is_cleaned_up(index_copy, big_corpus):
    """A build dead between renaming its snapshot and replacing CURRENT: a finished but unused
    snapshot folder and a temporary pointer file are left; the old index is used, the next build cleans."""
    live = store.live_snapshot(index_copy)
    orphan = index_copy / "snap-20000101T000000-dead00"
    shutil.copytree(live, orphan)
    (orphan / "chunks.jsonl").write_text("half\n", "utf-8")
    (index_copy / ".CURRENT.abc123.tmp").write_text(orphan.name, "utf-8")
    assert store.load(index_copy).path == live
    assert_canonical_answer(index_copy)
    proc = index([SEEDS], index_copy)
    assert proc.returncode == 0, proc.stderr
    assert not orphan.exists() and not (index_copy / ".CURRENT.abc123.tmp").exists()
    assert_canonical_answer(index_copy)


# ---------------------------------------------------------------- damaged or foreign indexes


def _flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in (len(data) // 3, len(data) // 2):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edit_manifest(snap: Path, change) -> None:
    manifest = json.loads((snap / "manifest.json").read_text("utf-8"))
    change(manifest)
    (snap / "manifest.json").write_text(json.dumps(manifest), "utf-8")


DAMAGE = {
    "flipped bytes in chunks.jsonl": lambda snap: _flip_bytes(snap / "chunks.jsonl"),
    "truncated dense.faiss": lambda snap: _truncate(snap / "dense.faiss"),
    "truncated vectors.npy": lambda snap: _truncate(snap / "vectors.npy"),
    "lexical arrays removed": lambda snap: shutil.rmtree(snap / "lexical"),
    "another format version": lambda snap: _edit_manifest(snap, lambda m: m.update(format_version=m["format_version"] + 1)),
    "another program's manifest": lambda snap: _edit_manifest(snap, lambda m: m.update(format="other-index")),
    "manifest names a model of another size": lambda snap: _edit_manifest(snap, lambda m: m["model"].update(name="hashing")),
    "manifest with the wrong dimension": lambda snap: _edit_manifest(snap, lambda m: m["model"].update(dim=32)),
    "manifest that is not JSON": lambda snap: (snap / "manifest.json").write_text("{", "utf-8"),
    "CURRENT names a missing snapshot": lambda snap: (snap.parent / "CURRENT").write_text("snap-gone\n", "utf-8"),
}


@pytest.mark.parametrize(
    "damage,command",
    [(d, "ask") for d in DAMAGE] + [(d, "search") for d in ("truncated dense.faiss", "manifest names a model of another size")],
)
def test_a_damaged_index_is_refused_with_one_sentence(index_copy, damage, command):
    DAMAGE[damage](store.live_snapshot(index_copy))
    proc = rag(command, QUESTION, "--index-dir", str(index_copy), "--json")
    assert_one_sentence_error(proc)


def test_asking_with_another_model_than_the_index_was_built_with(index_copy):
    proc = ask_json(index_copy, QUESTION, "--model", "other")
    assert_one_sentence_error(proc, says=f"rag index --model other --index-dir {index_copy}")
    assert MODEL in proc.stderr


def test_a_damaged_index_is_rebuilt_by_the_next_index_run(index_copy):
    _flip_bytes(store.live_snapshot(index_copy) / "chunks.jsonl")
    proc = index([SEEDS], index_copy)
    assert proc.returncode == 0, proc.stderr
    assert "documents.jsonl" in proc.stderr and "5 unchanged" in proc.stdout
    assert_canonical_answer(index_copy)


def test_indexing_one_file_into_a_damaged_index_keeps_the_others(index_copy, tmp_path):
    """The audit's case: one flipped byte in lexical/tokens.npy, then `rag index ONE_FILE`."""
    data = bytearray((store.live_snapshot(index_copy) / "lexical" / "tokens.npy").read_bytes())
    data[len(data) // 2] ^= 0x01
    (store.live_snapshot(index_copy) / "lexical" / "tokens.npy").write_bytes(bytes(data))
    one = tmp_path / "one.txt"
    one.write_text("Giải quyết việc làm cho 5.000 lao động tỉnh Quảng Bình năm 2023.\n", "utf-8")
    proc = index([one], index_copy)
    assert proc.returncode == 0, proc.stderr
    assert "6 documents" in proc.stdout and "1 added" in proc.stdout and "removed" not in proc.stdout
    assert len(store.load(index_copy).documents) == 6
    assert_canonical_answer(index_copy)


def test_indexing_into_an_index_whose_documents_are_lost_is_refused(index_copy, tmp_path):
    (store.live_snapshot(index_copy) / "manifest.json").write_text("{", "utf-8")
    current = (index_copy / "CURRENT").read_text("utf-8")
    one = tmp_path / "one.txt"
    one.write_text("Giải quyết việc làm cho 5.000 lao động tỉnh Quảng Bình năm 2023.\n", "utf-8")
    proc = index([one], index_copy)
    assert_one_sentence_error(proc, says="--rebuild")
    assert (index_copy / "CURRENT").read_text("utf-8") == current
    proc = rag("index", str(SEEDS), "--index-dir", str(index_copy), "--model", MODEL, "--quiet", "--rebuild")
    assert proc.returncode == 0, proc.stderr
    assert_canonical_answer(index_copy)


# ---------------------------------------------------------------- two builds at once


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs /proc/locks (Linux)")
def test_a_second_build_during_a_build_is_refused_with_a_clear_message(index_copy, big_corpus):
    """The second `rag index` fails at once with one sentence; the first one finishes its work."""
    first = subprocess.Popen(
        rag_cmd("index", str(big_corpus), "--index-dir", str(index_copy), "--model", MODEL, "--quiet"),
        cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
    )
    try:
        _wait_for(lambda: _holds_flock(index_copy / ".lock"), first, "the lock was taken")
        first.send_signal(signal.SIGSTOP)  # frozen while it holds the lock: the second one must meet it
        second = index([SEEDS / f"{ANSWER_DOC}.txt"], index_copy)
    finally:
        first.send_signal(signal.SIGCONT)
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert_one_sentence_error(second, says="Another process is writing the index")
    assert second.returncode == 1
    snap = store.load(index_copy)  # the first build's result, whole
    assert len(snap.documents) == 5 + FILLERS
    assert len(snap.chunks) == snap.lexical.size == snap.dense.size == len(snap.vectors)
    assert_canonical_answer(index_copy)


def test_two_builds_started_together_leave_a_whole_index(index_copy, big_corpus):
    """Whatever the timing, each build either succeeds or is refused by the lock; the result is whole."""
    procs = [
        subprocess.Popen(
            rag_cmd("index", str(big_corpus), "--index-dir", str(index_copy), "--model", MODEL, "--quiet"),
            cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
        )
        for _ in range(2)
    ]
    results = [(p, *p.communicate(timeout=300)) for p in procs]
    assert any(p.returncode == 0 for p, _, _ in results)
    for p, out, err in results:
        if p.returncode != 0:
            assert p.returncode == 1 and "Another process is writing the index" in err and "Traceback" not in err
    snap = store.load(index_copy)
    assert len(snap.documents) == 5 + FILLERS
    assert not dirs(index_copy, "tmp-snap-") and len(dirs(index_copy, "snap-")) == 1
    assert_canonical_answer(index_copy)


# ---------------------------------------------------------------- reading while writing


def test_questions_are_answered_from_the_old_index_while_a_reindex_runs(tmp_path):
    """Threads keep asking an open RAG and opening the index afresh while another thread rebuilds it
    again and again: every answer is right, no open fails (a reader racing a snapshot swap retries)."""
    from rag.api import RAG

    BUILDS = 4
    docs = tmp_path / "docs"
    shutil.copytree(SEEDS, docs)
    extra = tmp_path / "extra"
    write_fillers(extra, 10)
    index_dir = tmp_path / "index"
    writer, _ = RAG.build([docs], index_dir, model=MODEL)
    reader = RAG.open(index_dir)
    stop = threading.Event()
    errors: list[BaseException] = []
    counts = {"asked": 0, "opened": 0, "builds": 0}

    def rebuild() -> None:
        try:
            for i in range(BUILDS):
                if i % 2 == 0:
                    writer.add([extra])
                else:
                    for doc_id in [d for d in writer.documents if d.startswith("filler_")]:
                        writer.remove(doc_id)
                counts["builds"] += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            stop.set()

    def ask_old() -> None:
        try:
            while not stop.is_set():
                answer = reader.ask(QUESTION)
                assert answer.answer == ANSWER and answer.citations[0].doc_id == ANSWER_DOC
                counts["asked"] += 1
                time.sleep(0.005)  # leave the writer some of the GIL
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
            stop.set()

    def open_fresh() -> None:
        try:
            while not stop.is_set():
                assert RAG.open(index_dir).search("hộ nghèo Huế", 3)
                counts["opened"] += 1
                time.sleep(0.005)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=f) for f in (rebuild, ask_old, open_fresh)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert counts["builds"] == BUILDS and counts["asked"] > 0 and counts["opened"] > 0, counts
    assert reader.ask(QUESTION).answer == ANSWER
    assert RAG.open(index_dir).ask(QUESTION).answer == ANSWER


# ---------------------------------------------------------------- incremental through the CLI


def _contents(index_dir: Path):
    snap = store.load(index_dir)
    rows = sorted((c.id, c.text, c.header, c.extra, c.section) for c in snap.chunks)
    order = sorted(range(len(snap.chunks)), key=lambda i: snap.chunks[i].id)
    docs = {d.id: (d.source, d.text, d.sha256, d.meta, d.sections) for d in snap.documents.values()}
    return snap, rows, snap.vectors[order], docs


def test_incremental_cli_runs_equal_a_rebuild(tmp_path):
    """add, change and remove files between `rag index` runs: the index equals one built from scratch,
    and so do the answers and the rankings."""
    docs = tmp_path / "docs"
    shutil.copytree(SEEDS, docs)
    incremental, scratch = tmp_path / "inc", tmp_path / "scratch"
    assert index([docs], incremental).returncode == 0
    ids = {p.name[:3]: p for p in docs.glob("*.txt")}
    ids["001"].unlink()  # removed
    changed = ids["002"]
    changed.write_text(changed.read_text("utf-8") + "\n\nTổng kinh phí hỗ trợ là 42 tỷ đồng.\n", "utf-8")
    write_fillers(docs, 2, seed=7)  # added
    proc = index([docs], incremental)
    assert proc.returncode == 0, proc.stderr
    assert "2 added" in proc.stdout and "1 updated" in proc.stdout and "1 removed" in proc.stdout
    assert "3 unchanged" in proc.stdout
    assert index([docs], scratch).returncode == 0

    snap_i, rows_i, vec_i, docs_i = _contents(incremental)
    snap_s, rows_s, vec_s, docs_s = _contents(scratch)
    assert rows_i == rows_s and docs_i == docs_s
    np.testing.assert_array_equal(vec_i, vec_s)
    from rag.api import RAG

    inc, scr = RAG.open(incremental), RAG.open(scratch)
    for query in (QUESTION, "ty le ho ngheo hue", "42 tỷ đồng", "xuất khẩu lao động Nghệ An"):
        assert [(h.chunk.id, h.score) for h in inc.search(query, 5)] == [(h.chunk.id, h.score) for h in scr.search(query, 5)]
        a, b = inc.ask(query).to_json(), scr.ask(query).to_json()
        a.pop("timings_ms"), b.pop("timings_ms")
        assert a == b
    assert_canonical_answer(incremental)


# ---------------------------------------------------------------- an upload killed halfway


KILLED_WRITE = """
import os, sys
from pathlib import Path
from rag import store
from rag.api import RAG
from rag.server import Library

index_dir, action, name, data_file, when = sys.argv[1:6]
real_save = store.save

def save(*args, **kwargs):  # SIGKILL, as seen from the disk: the process stops dead
    if when == "before-swap":
        os._exit(137)
    path = real_save(*args, **kwargs)
    if when == "after-swap":
        os._exit(137)
    return path

library = Library(RAG.open(index_dir))
store.save = save
if action == "remove":
    library.remove(name)
else:
    library.add_upload(name, Path(data_file).read_bytes())
"""

V1 = "Báo cáo nuôi ong Quảng Trị năm 2023.\nSố hộ nuôi ong ở Quảng Trị năm 2023 là 321 hộ.\n"
V2 = "Báo cáo nuôi ong Quảng Trị năm 2023.\nSố hộ nuôi ong ở Quảng Trị năm 2023 là 345 hộ.\n"


def _uploads_agree_with_the_index(index_dir: Path) -> dict[str, bytes]:
    """Every file in uploads/ is an indexed document with the same bytes, and the other way round."""
    from rag.loaders import sha256

    uploads = (index_dir / "uploads").resolve()
    files = {p.name: p.read_bytes() for p in uploads.iterdir()} if uploads.exists() else {}
    indexed = {Path(d.path).name: d.sha256 for d in store.load(index_dir).documents.values()
               if Path(d.path).parent == uploads}
    assert {name: sha256(data) for name, data in files.items()} == indexed, (sorted(files), indexed)
    return files


@pytest.mark.parametrize("action,when,expected", [
    ("upload", "before-swap", None),
    ("upload", "after-swap", V1),
    ("re-upload", "before-swap", V1),
    ("re-upload", "after-swap", V2),
    ("remove", "before-swap", V1),
    ("remove", "after-swap", None),
], ids=lambda value: value if value in ("upload", "re-upload", "remove", "before-swap", "after-swap") else
    {None: "gone", V1: "v1", V2: "v2"}[value])
def test_an_upload_or_removal_killed_halfway_leaves_file_and_index_together(tmp_path, action, when, expected):
    """SIGKILL during an upload, a re-upload or a removal, before or after the new snapshot goes live:
    once the server starts again, uploads/ and the index agree (the old state or the new, never a mix),
    with no orphans."""
    from rag.api import RAG
    from rag.server import Library

    shutil.copytree(SEEDS, tmp_path / "seeds")
    index_dir = tmp_path / "index"
    RAG.build([tmp_path / "seeds"], index_dir, model="none")
    if action != "upload":
        Library(RAG.open(index_dir)).add_upload("nuoi ong.txt", V1.encode())
    data = tmp_path / "data.txt"
    data.write_text(V2 if action == "re-upload" else V1, "utf-8")
    name = "nuoi ong" if action == "remove" else "nuoi ong.txt"
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(index_dir), action, name, str(data), when],
                          cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 137, proc.stderr

    Library(RAG.open(index_dir))  # the server starts again
    files = _uploads_agree_with_the_index(index_dir)
    assert files == ({} if expected is None else {"nuoi ong.txt": expected.encode()})
    assert len(store.load(index_dir).documents) == 5 + (expected is not None)


# ---------------------------------------------------------------- the whole replay (eval/reliability.py)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_reliability_replay_passes_every_case(tmp_path):
    """eval/reliability.py: every byte-flip, kill and race case ends in a clear refusal or a whole index
    (about 5 minutes on 2 cores)."""
    rows_file = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "eval" / "reliability.py"), "--workdir", str(tmp_path / "work"),
         "--json", str(rows_file)],
        capture_output=True, text=True, encoding="utf-8", cwd=ROOT, env=env(), timeout=1700,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    rows = json.loads(rows_file.read_text("utf-8"))
    assert {r["group"] for r in rows} == {"damaged", "killed", "concurrent"}
    assert len(rows) >= 45 and all(r["ok"] for r in rows), [r for r in rows if not r["ok"]]
    assert proc.stdout.startswith("| group | case | outcome | verdict |")
    assert not (tmp_path / "work").exists(), "the copies are removed unless --keep"
