"""Reliability replay: damaged index files, processes killed at chosen points, readers racing writers.

    .venv/bin/python eval/reliability.py [--workdir DIR] [--keep] [--json FILE]

Every case runs on a fresh copy of an index of seeds/ built with the test embedder `hashing:64`
(the dense path: vectors.npy and dense.faiss, without a real model). It prints one Markdown table
row per case (what was done, what happened, OK or FAIL) and exits 1 if any case failed.

- damaged: one byte flipped in each file of the live snapshot (and CURRENT), then a question, a
  `rag index ONE_FILE` (in-process `RAG.build`) and an upload (`Library.add_upload` on a library
  opened before the damage, as a running server is). A read must answer right or refuse with one
  sentence naming `rag index`; a write must end with every document kept (verified load, right
  answer) or be refused with the repair command, the index folder unchanged byte for byte.
- killed: `rag index` (seeds plus one new file) and uploads, re-uploads and removals in a child
  process that sends itself SIGKILL at a chosen point (injected by wrapping the function that runs
  there). Afterwards the index must load with the old documents or the new ones, answer right, and
  the next `rag index` must finish and leave one snapshot; for uploads, once a server starts again,
  uploads/ and the index must agree (file bytes = indexed hash), with no orphans.
- concurrent: threads asking an open index and opening it afresh while another process re-indexes
  (adds, removes); two `rag index` started together; HTTP asks while uploads and deletions run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag import store  # noqa: E402
from rag.api import RAG  # noqa: E402
from rag.errors import IndexCorrupt, RagError  # noqa: E402

MODEL = "hashing:64"
QUESTION, ANSWER = "Tỷ lệ hộ nghèo Huế 2023?", "2,27%"
EXTRA = "Giải quyết việc làm cho 5.000 lao động tỉnh Quảng Bình năm 2023.\n"
BEES = "Báo cáo nuôi ong Quảng Trị năm 2023.\nSố hộ nuôi ong ở Quảng Trị năm 2023 là {} hộ.\n"


class Replay:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.rows: list[dict] = []
        self.seeds = work / "seeds"
        shutil.copytree(ROOT / "seeds", self.seeds)
        self.extra = work / "extra.txt"
        self.extra.write_text(EXTRA, "utf-8")
        self.base = work / "base"
        with contextlib.redirect_stderr(io.StringIO()):
            RAG.build([self.seeds], self.base, model=MODEL)
        self.base_docs = {d.id: d.text for d in store.load(self.base).documents.values()}
        self.n = 0
        self.restore: tuple[Path, Path] | None = None  # a seed file moved away by a case, and where it goes back

    def copy(self) -> Path:
        self.n += 1
        dest = self.work / f"case{self.n:03d}"
        shutil.copytree(self.base, dest)
        return dest

    def row(self, group: str, case: str, outcome: str, ok: bool) -> None:
        self.rows.append({"group": group, "case": case, "outcome": outcome, "ok": ok})
        print(f"{'ok  ' if ok else 'FAIL'} {group}: {case}: {outcome}", file=sys.stderr, flush=True)

    def table(self) -> str:
        """The rows as Markdown; byte flips with the same outcome share one row."""
        merged: list[dict] = []
        for row in self.rows:
            flipped = row["case"].removeprefix("flip a byte: ")
            same = next((m for m in merged if m.get("files") is not None and m["outcome"] == row["outcome"]
                         and m["ok"] == row["ok"]), None) if flipped != row["case"] else None
            if same is not None:
                same["files"].append(flipped)
            else:
                merged.append({**row, "files": [flipped] if flipped != row["case"] else None})
        lines = ["| group | case | outcome | verdict |", "|---|---|---|---|"]
        for m in merged:
            case = m["case"] if m["files"] is None else f"flip one byte of {_names(m['files'])}"
            lines.append(f"| {m['group']} | {case} | {m['outcome']} | {'OK' if m['ok'] else 'FAIL'} |")
        return "\n".join(lines)

    # ------------------------------------------------------------ checks

    def whole(self, index_dir: Path, expected: set[str]) -> tuple[bool, str]:
        """The index loads (every checksum), holds exactly `expected` with the seeds' texts, answers right."""
        try:
            snap = store.load(index_dir)
            answer = RAG.open(index_dir).ask(QUESTION).answer
        except RagError as exc:
            return False, f"does not load: {exc}"
        texts_ok = all(snap.documents[d].text == t for d, t in self.base_docs.items() if d in snap.documents)
        ok = set(snap.documents) == expected and texts_ok and answer == ANSWER
        return ok, f"{len(snap.documents)} documents, answer {answer}"


def _names(files: list[str]) -> str:
    """`chunks.jsonl`, `lexical/` (24 files), …: files under a folder counted, not listed."""
    folders: dict[str, int] = {}
    for f in files:
        top = f.split("/")[0] + "/" if "/" in f else f
        folders[top] = folders.get(top, 0) + 1
    parts = [f"`{name}` ({n} files)" if name.endswith("/") else f"`{name}`" for name, n in folders.items()]
    return ", ".join(parts) + (f" ({len(files)} cases)" if len(files) > 1 else "")


def state(index_dir: Path) -> dict[str, str]:
    """Every file of the index folder and its hash (the lock file aside)."""
    return {str(p.relative_to(index_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(index_dir.rglob("*")) if p.is_file() and p.name != ".lock"}


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def quiet(call):
    """Run `call` with stderr captured; (result or exception, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            return call(), err.getvalue()
        except RagError as exc:
            return exc, err.getvalue()


# ---------------------------------------------------------------- damaged files


def damaged(replay: Replay) -> None:
    from rag.server import Library

    live = store.live_snapshot(replay.base)
    targets = sorted(str(p.relative_to(live)) for p in live.rglob("*") if p.is_file()) + ["CURRENT"]
    extras = {
        "documents.jsonl flipped, a seed file gone": None,
        "live snapshot folder deleted": None,
        "CURRENT deleted": None,
    }
    for target in [*targets, *extras]:
        expected_all = set(replay.base_docs) | {"extra"}
        # a read
        index_dir = replay.copy()
        damage(index_dir, target, replay)
        result, _ = quiet(lambda: RAG.open(index_dir).ask(QUESTION).answer)
        if isinstance(result, RagError):
            read = "refused: " + ("one sentence naming `rag index`" if "rag index" in str(result) else str(result))
            read_ok = "rag index" in str(result)
        else:
            read, read_ok = f"answered {result}", result == ANSWER
        # `rag index ONE_FILE`, then an upload on a library opened before the damage
        outcomes, ok = [], read_ok
        for kind in ("index", "upload"):
            index_dir = replay.copy()
            library = Library(RAG.open(index_dir)) if kind == "upload" else None
            damage(index_dir, target, replay)
            before = state(index_dir)
            if kind == "index":
                result, err = quiet(lambda: RAG.build([replay.extra], index_dir, model=MODEL)[1])
            else:
                result, err = quiet(lambda: library.add_upload("extra.txt", EXTRA.encode()))
            if isinstance(result, RagError):
                unchanged = state(index_dir) == before
                names = "--rebuild" in str(result)
                outcomes.append(f"{kind}: refused{' naming `--rebuild`' if names else ''}, "
                                f"{'folder unchanged' if unchanged else 'FOLDER CHANGED'}")
                ok &= unchanged and names and isinstance(result, IndexCorrupt)
            else:
                whole, what = replay.whole(index_dir, expected_all)
                how = ("read back from documents.jsonl" if "read back from documents.jsonl" in err
                       else "read again from their files" if "from their files" in err
                       else "the damage did not matter" if not err else err.strip())
                outcomes.append(f"{kind}: {what}, all kept ({how})")
                ok &= whole
        replay.row("damaged", f"flip a byte: {target}" if target in targets else target,
                   f"ask: {read}; " + "; ".join(outcomes), ok)
        if replay.restore is not None:
            replay.restore[0].rename(replay.restore[1])
            replay.restore = None


def damage(index_dir: Path, target: str, replay: Replay) -> None:
    live = store.live_snapshot(index_dir)
    if target == "CURRENT":
        flip(index_dir / "CURRENT")
    elif target == "documents.jsonl flipped, a seed file gone":
        flip(live / "documents.jsonl")
        gone = replay.seeds / "002_e28979bfba23dcdb.txt"
        if replay.restore is None:
            gone.rename(replay.work / "002.keep")
            replay.restore = (replay.work / "002.keep", gone)
    elif target == "live snapshot folder deleted":
        shutil.rmtree(live)
    elif target == "CURRENT deleted":
        (index_dir / "CURRENT").unlink()
    else:
        flip(live / target)


# ---------------------------------------------------------------- killed


KILL = r"""
import os, signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from rag import indexer, store
point, args = sys.argv[2], sys.argv[3:]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def at(module, name, when=lambda *a, **k: True, after=False):
    real = getattr(module, name)
    def wrapped(*a, **k):
        if not after and when(*a, **k):
            die()
        out = real(*a, **k)
        if after and when(*a, **k):
            die()
        return out
    setattr(module, name, wrapped)

calls = {"n": 0}
def third(*a, **k):
    calls["n"] += 1
    return calls["n"] == 3

points = {
    "reading the files": lambda: at(indexer, "load_document", third),
    "chunking": lambda: at(indexer, "chunk_document"),
    "building the BM25 index (lock held)": lambda: at(indexer.LexicalIndex, "build"),
    "writing the new snapshot": lambda: at(store, "_write_jsonl", lambda path, *a: path.name == "chunks.jsonl"),
    "snapshot written, CURRENT not yet replaced": lambda: at(store, "_write_atomic", lambda path, *a: path.name == "CURRENT"),
    "CURRENT replaced, old snapshot not yet removed": lambda: at(store, "_remove_stale"),
    "before the index swap": lambda: at(store, "save"),
    "after the index swap": lambda: at(store, "save", after=True),
}
points[point]()
if args[0] == "index":
    from rag.cli import main
    sys.exit(main(args))
from rag.api import RAG
from rag.server import Library
index_dir, action, name, data = args
library = Library(RAG.open(index_dir))
if action == "remove":
    library.remove(name)
else:
    library.add_upload(name, data.encode())
"""

INDEX_POINTS = ("reading the files", "chunking", "building the BM25 index (lock held)", "writing the new snapshot",
                "snapshot written, CURRENT not yet replaced", "CURRENT replaced, old snapshot not yet removed")


def env() -> dict[str, str]:
    out = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    out.pop("RAG_EMBED_MODEL", None)
    out.pop("RAG_INDEX_DIR", None)
    return out


def killed(replay: Replay) -> None:
    from rag.server import Library

    for point in INDEX_POINTS:
        index_dir = replay.copy()
        proc = subprocess.run([sys.executable, "-c", KILL, str(ROOT), point, "index", str(replay.seeds),
                               str(replay.extra), "--index-dir", str(index_dir), "--model", MODEL, "--quiet"],
                              cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
        was_killed = proc.returncode == -signal.SIGKILL
        docs = set(store.load(index_dir).documents) if _loads(index_dir) else set()
        old, new = set(replay.base_docs), set(replay.base_docs) | {"extra"}
        whole, what = replay.whole(index_dir, docs if docs in (old, new) else old)
        state_name = "old" if docs == old else "new" if docs == new else "neither"
        after, err = quiet(lambda: RAG.build([replay.seeds, replay.extra], index_dir, model=MODEL)[1])
        snaps = [p.name for p in index_dir.iterdir() if p.is_dir() and p.name.startswith(("snap-", "tmp-snap-"))]
        next_ok, next_what = replay.whole(index_dir, new)
        ok = was_killed and whole and docs in (old, new) and next_ok and len(snaps) == 1
        replay.row("killed", f"`rag index` SIGKILL while {point}",
                   f"{'killed' if was_killed else f'exit {proc.returncode}'}; after: {state_name} index, {what}; "
                   f"next `rag index`: {next_what}, {len(snaps)} snapshot folder(s)", ok)

    uploads = [
        ("upload", "before the index swap", None), ("upload", "after the index swap", "321"),
        ("re-upload", "before the index swap", "321"), ("re-upload", "after the index swap", "345"),
        ("remove", "before the index swap", "321"), ("remove", "after the index swap", None),
    ]
    for action, point, expected in uploads:
        index_dir = replay.copy()
        if action != "upload":
            with contextlib.redirect_stderr(io.StringIO()):
                Library(RAG.open(index_dir)).add_upload("nuoi ong.txt", BEES.format("321").encode())
        data = BEES.format("345" if action == "re-upload" else "321")
        name = "nuoi ong" if action == "remove" else "nuoi ong.txt"
        proc = subprocess.run([sys.executable, "-c", KILL, str(ROOT), point, str(index_dir), action, name, data],
                              cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
        was_killed = proc.returncode == -signal.SIGKILL
        with contextlib.redirect_stderr(io.StringIO()):
            Library(RAG.open(index_dir))  # the server starts again
        agree, files = _uploads_agree(index_dir)
        want = {} if expected is None else {"nuoi ong.txt": BEES.format(expected)}
        got = {k: v.decode("utf-8") for k, v in files.items()}
        state_name = "none" if not got else "v1 (321 hộ)" if "321" in got.get("nuoi ong.txt", "") else "v2 (345 hộ)"
        whole, what = replay.whole(index_dir, set(replay.base_docs) | ({"nuoi ong"} if expected else set()))
        ok = was_killed and agree and got == want and whole
        replay.row("killed", f"{action} SIGKILL {point}",
                   f"{'killed' if was_killed else f'exit {proc.returncode}'}; after restart: uploads/ and index agree: "
                   f"{'yes' if agree else 'NO'}, file {state_name}, {what}", ok)


def _loads(index_dir: Path) -> bool:
    try:
        store.load(index_dir)
        return True
    except RagError:
        return False


def _uploads_agree(index_dir: Path) -> tuple[bool, dict[str, bytes]]:
    folder = (index_dir / "uploads").resolve()
    files = {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else {}
    indexed = {Path(d.path).name: d.sha256 for d in store.load(index_dir).documents.values()
               if Path(d.path).parent == folder}
    return {n: hashlib.sha256(b).hexdigest() for n, b in files.items()} == indexed, files


# ---------------------------------------------------------------- concurrent


def concurrent(replay: Replay) -> None:
    # readers in this process, a writer process adding and removing documents
    index_dir = replay.copy()
    more = replay.work / "more"
    more.mkdir(exist_ok=True)
    (more / "anchor.txt").write_text(EXTRA, "utf-8")  # stays: the folder is never empty
    for i in range(10):
        (more / f"more_{i}.txt").write_text(EXTRA.replace("5.000", f"{5000 + i}"), "utf-8")
    reader = RAG.open(index_dir)
    stop, counts, errors = threading.Event(), {"asked": 0, "opened": 0, "wrong": 0}, []

    def ask() -> None:
        while not stop.is_set():
            try:
                if reader.ask(QUESTION).answer != ANSWER:
                    counts["wrong"] += 1
                counts["asked"] += 1
            except Exception as exc:  # noqa: BLE001 - counted
                errors.append(repr(exc))
            time.sleep(0.005)

    def reopen() -> None:
        while not stop.is_set():
            try:
                if RAG.open(index_dir).ask(QUESTION).answer != ANSWER:
                    counts["wrong"] += 1
                counts["opened"] += 1
            except Exception as exc:  # noqa: BLE001 - counted
                errors.append(repr(exc))

    threads = [threading.Thread(target=f) for f in (ask, reopen)]
    for t in threads:
        t.start()
    writes = []
    for i in range(4):  # add the ten, then drop them by re-indexing the folder without them, twice
        for p in more.glob("more_*.txt" if i % 2 else "more_*.off"):
            p.rename(p.with_suffix(".off" if i % 2 else ".txt"))
        proc = subprocess.run([sys.executable, "-m", "rag", "index", str(more), "--index-dir", str(index_dir),
                               "--model", MODEL, "--quiet"], cwd=ROOT, env=env(), capture_output=True, text=True,
                              timeout=300)
        said = ("10 removed", "11 added" if i == 0 else "10 added")[i % 2 == 0]
        writes.append(proc.returncode == 0 and said in proc.stdout)
    stop.set()
    for t in threads:
        t.join()
    whole, what = replay.whole(index_dir, set(replay.base_docs) | {"anchor"})
    ok = all(writes) and not errors and counts["wrong"] == 0 and counts["asked"] > 0 and whole
    replay.row("concurrent", "2 reader threads (an open index; opened afresh each time) while `rag index` adds "
               "and removes 10 documents 4 times",
               f"{counts['asked']} + {counts['opened']} answers, {counts['wrong']} wrong, {len(errors)} errors; "
               f"{sum(writes)}/4 writes done; {what}", ok)

    # two writers at once
    index_dir = replay.copy()
    procs = [subprocess.Popen([sys.executable, "-m", "rag", "index", str(more), "--index-dir", str(index_dir),
                               "--model", MODEL, "--quiet"], cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p, *p.communicate(timeout=300)) for p in procs]
    done = sum(p.returncode == 0 for p, _, _ in results)
    refused = sum(p.returncode == 1 and "Another process is writing" in err for p, _, err in results)
    names = {p.stem for p in more.glob("*.txt")}
    whole, what = replay.whole(index_dir, set(replay.base_docs) | names)
    ok = done >= 1 and done + refused == 2 and whole
    replay.row("concurrent", "two `rag index` started together",
               f"{done} done, {refused} refused by the lock (one sentence); {what}", ok)

    # the HTTP API: asks while uploads and deletions run
    import httpx

    from rag.server import BackgroundServer, create_app

    index_dir = replay.copy()
    rag = RAG.open(index_dir)
    answers, bad = [], []
    with BackgroundServer(create_app(rag=rag, token="", ui=False)) as url, httpx.Client(base_url=url, timeout=60) as c:
        stop.clear()

        def asker() -> None:
            while not stop.is_set():
                r = c.post("/api/ask", json={"question": QUESTION})
                (answers if r.status_code == 200 and r.json().get("answer") == ANSWER else bad).append(r.status_code)

        askers = [threading.Thread(target=asker) for _ in range(6)]
        for t in askers:
            t.start()
        statuses = []
        for i in range(3):
            statuses.append(c.post("/api/documents", files={"file": (f"ong {i}.txt", BEES.format(300 + i).encode(),
                                                                     "text/plain")}).status_code)
        for i in range(3):
            statuses.append(c.delete(f"/api/documents/ong {i}").status_code)
        stop.set()
        for t in askers:
            t.join()
    agree, files = _uploads_agree(index_dir)
    whole, what = replay.whole(index_dir, set(replay.base_docs))
    ok = statuses == [201] * 3 + [200] * 3 and not bad and answers and agree and not files and whole
    replay.row("concurrent", "6 HTTP clients asking while 3 uploads and 3 deletions run",
               f"{len(answers)} right answers, {len(bad)} wrong or failed; uploads/deletes {statuses}; "
               f"uploads/ empty and agreeing: {agree and not files}; {what}", ok)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None, help="where the copies go (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="rag-reliability-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        replay = Replay(work)
        for group in (damaged, killed, concurrent):
            group(replay)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    failed = [r for r in replay.rows if not r["ok"]]
    print(replay.table())
    print(f"\n{len(replay.rows)} cases, {len(failed)} failed, {time.perf_counter() - t0:.0f} s.")
    if args.json:
        args.json.write_text(json.dumps(replay.rows, ensure_ascii=False, indent=1) + "\n", "utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
