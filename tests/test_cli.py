"""The `rag` command line, in-process (rag.cli.main) and as a real subprocess."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag.cli import main

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
RESULT_KEYS = {"id", "query", "hits"}
HIT_KEYS = {"rank", "doc_id", "chunk_id", "score", "text", "start", "end"}


@pytest.fixture(scope="module")
def lexical_index(tmp_path_factory) -> Path:
    """A BM25-only index of the seeds, built through the CLI."""
    index_dir = tmp_path_factory.mktemp("cli") / "index"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["index", str(SEEDS), "--index-dir", str(index_dir), "--model", "none", "--quiet"])
    assert code == 0, err.getvalue()
    return index_dir


def run_cli(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("RAG_EMBED_MODEL", None)
    env.pop("RAG_INDEX_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "rag", *args],
        input=stdin, capture_output=True, text=True, encoding="utf-8", cwd=cwd or ROOT, env=env, timeout=120,
    )


def assert_one_error_line(stderr: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error:"), stderr
    assert "Traceback" not in stderr


def check_search_json(stdout: str, query: str) -> dict:
    lines = stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert set(result) == RESULT_KEYS
    assert result["query"] == query and result["id"] is None
    assert result["hits"]
    for i, hit in enumerate(result["hits"], 1):
        assert set(hit) == HIT_KEYS
        assert hit["rank"] == i
        assert hit["chunk_id"] == f"{hit['doc_id']}:{hit['start']}-{hit['end']}"
        assert len(hit["text"]) == hit["end"] - hit["start"]
        assert isinstance(hit["score"], float)
    return result


def write_batch(path: Path) -> Path:
    path.write_text(
        json.dumps({"id": "q1", "query": "Tỷ lệ hộ nghèo Huế 2023?"}, ensure_ascii=False) + "\n"
        + "this line is not JSON\n"
        + json.dumps({"id": 3, "query": "XKLĐ Nghệ An 2023"}, ensure_ascii=False) + "\n",
        "utf-8",
    )
    return path


def check_batch(stdout: str) -> None:
    lines = stdout.strip().splitlines()
    assert len(lines) == 3, stdout
    first, bad, third = (json.loads(line) for line in lines)
    assert first["id"] == "q1" and set(first) == RESULT_KEYS and first["hits"]
    assert first["hits"][0]["doc_id"].startswith("004_")
    assert "error" in bad and "hits" not in bad and bad["id"] is None
    assert third["id"] == 3 and third["hits"][0]["doc_id"].startswith("003_")


# ---------------------------------------------------------------- in-process


def test_index_in_process(tmp_path, capsys):
    index_dir = tmp_path / "index"
    code = main(["index", str(SEEDS), "--index-dir", str(index_dir), "--model", "none", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "5 documents" in captured.out and "lexical mode" in captured.out and "5 added" in captured.out
    assert (index_dir / "CURRENT").is_file()
    assert main(["index", str(SEEDS), "--index-dir", str(index_dir), "--model", "none", "--quiet"]) == 0
    assert "5 unchanged" in capsys.readouterr().out


def test_search_json_in_process(lexical_index, capsys):
    query = "Tỷ lệ hộ nghèo Huế 2023?"
    code = main(["search", query, "--index-dir", str(lexical_index), "--json", "--k", "3"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = check_search_json(captured.out, query)
    assert len(result["hits"]) <= 3
    assert result["hits"][0]["doc_id"].startswith("004_")


def test_search_text_output_in_process(lexical_index, capsys):
    code = main(["search", "XKLĐ Nghệ An 2023", "--index-dir", str(lexical_index), "--k", "2"])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.lstrip().startswith("1. [")
    assert "003_" in captured.out
    assert "chế độ: lexical" in captured.err


def test_search_filters_in_process(lexical_index, capsys):
    code = main(["search", "hộ nghèo", "--index-dir", str(lexical_index), "--json", "--province", "Nghệ An", "--year", "2023"])
    captured = capsys.readouterr()
    assert code == 0
    result = json.loads(captured.out)
    assert result["hits"] and all(h["doc_id"].startswith("003_") for h in result["hits"])


def test_search_with_no_hits_in_process(lexical_index, capsys):
    code = main(["search", "hộ nghèo", "--index-dir", str(lexical_index), "--province", "Cà Mau"])
    assert code == 0
    assert "Không tìm thấy" in capsys.readouterr().out


def test_batch_in_process(lexical_index, tmp_path, capsys):
    batch = write_batch(tmp_path / "batch.jsonl")
    code = main(["search", "--batch", str(batch), "--index-dir", str(lexical_index), "--k", "2"])
    captured = capsys.readouterr()
    assert code == 2
    check_batch(captured.out)
    assert "1 batch line(s)" in captured.err


@pytest.mark.parametrize(
    "bad_line",
    ['{"id": 7}', '{"id": 8, "query": ""}', '{"id": 9, "query": 42}', "[1, 2]", '"just a string"'],
)
def test_batch_bad_lines_keep_their_id_when_they_have_one(lexical_index, tmp_path, capsys, bad_line):
    batch = tmp_path / "b.jsonl"
    batch.write_text(bad_line + "\n" + '{"query": "hộ nghèo"}\n', "utf-8")
    code = main(["search", "--batch", str(batch), "--index-dir", str(lexical_index)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 2 and len(lines) == 2
    bad, good = map(json.loads, lines)
    assert "error" in bad and "hits" in good
    if bad_line.startswith("{"):
        assert bad["id"] == json.loads(bad_line)["id"]


def test_batch_all_good_exits_zero(lexical_index, tmp_path, capsys):
    batch = tmp_path / "ok.jsonl"
    batch.write_text('{"query": "hộ nghèo"}\n\n{"query": "xuất khẩu lao động", "id": "x"}\n', "utf-8")
    assert main(["search", "--batch", str(batch), "--index-dir", str(lexical_index)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2


def test_batch_file_missing_is_exit_2(lexical_index, tmp_path, capsys):
    code = main(["search", "--batch", str(tmp_path / "nope.jsonl"), "--index-dir", str(lexical_index)])
    assert code == 2
    assert_one_error_line(capsys.readouterr().err)


def test_batch_file_not_utf8_is_exit_2(lexical_index, tmp_path, capsys):
    batch = tmp_path / "latin.jsonl"
    batch.write_bytes('{"query": "hộ nghèo"}\n'.encode("utf-16"))
    code = main(["search", "--batch", str(batch), "--index-dir", str(lexical_index)])
    assert_one_error_line(capsys.readouterr().err)
    assert code == 2


def test_missing_index_in_process(tmp_path, capsys):
    code = main(["search", "hộ nghèo", "--index-dir", str(tmp_path / "nowhere")])
    assert code == 1
    captured = capsys.readouterr()
    assert_one_error_line(captured.err)
    assert "rag index" in captured.err
    assert captured.out == ""


def test_corrupt_index_in_process(lexical_index, tmp_path, capsys):
    import shutil

    index_dir = tmp_path / "copy"
    shutil.copytree(lexical_index, index_dir)
    snap = index_dir / (index_dir / "CURRENT").read_text("utf-8").strip()
    (snap / "chunks.jsonl").write_text("damaged\n", "utf-8")
    code = main(["search", "hộ nghèo", "--index-dir", str(index_dir)])
    assert code == 1
    assert_one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "hộ nghèo", "--bogus"],
        ["index", "--no-such-flag"],
        ["frobnicate"],
        [],
        ["search", "hộ nghèo", "--k", "ten"],
        ["index", str(SEEDS), "--faiss", "annoy"],
    ],
)
def test_bad_usage_is_exit_2(argv, capsys):
    code = main(argv)
    assert code == 2
    assert_one_error_line(capsys.readouterr().err)


def test_empty_query_is_exit_2(lexical_index, capsys):
    for argv in (["search", "--index-dir", str(lexical_index)], ["search", "   ", "--index-dir", str(lexical_index)]):
        assert main(argv) == 2
        assert_one_error_line(capsys.readouterr().err)


def test_bad_k_is_exit_2(lexical_index, capsys):
    assert main(["search", "hộ nghèo", "--index-dir", str(lexical_index), "--k", "0"]) == 2
    assert_one_error_line(capsys.readouterr().err)


def test_nonexistent_path_to_index_is_exit_2(tmp_path, capsys):
    code = main(["index", str(tmp_path / "no-such-folder"), "--index-dir", str(tmp_path / "i"), "--model", "none", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert_one_error_line(err)
    assert "no-such-folder" in err


def test_bad_chunk_settings_are_exit_2(tmp_path, capsys):
    code = main(["index", str(SEEDS), "--index-dir", str(tmp_path / "i"), "--model", "none", "--quiet", "--chunk-size", "10"])
    assert code == 2
    assert_one_error_line(capsys.readouterr().err)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy: mean of an empty corpus
def test_index_of_a_folder_without_documents_is_exit_2(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["index", str(empty), "--index-dir", str(tmp_path / "i"), "--model", "none", "--quiet"])
    assert_one_error_line(capsys.readouterr().err)
    assert code == 2


@pytest.mark.parametrize("model", ["hashing:abc", "hashing:4"])
def test_bad_hashing_model_is_exit_2(tmp_path, capsys, model):
    code = main(["index", str(SEEDS), "--index-dir", str(tmp_path / "i"), "--model", model, "--quiet"])
    assert_one_error_line(capsys.readouterr().err)
    assert code == 2


def test_debug_shows_the_exception(tmp_path):
    from rag.errors import IndexNotFound

    with pytest.raises(IndexNotFound):
        main(["search", "hộ nghèo", "--index-dir", str(tmp_path / "nowhere"), "--debug"])


# ---------------------------------------------------------------- real subprocess


@pytest.fixture(scope="module")
def subprocess_index(tmp_path_factory) -> Path:
    index_dir = tmp_path_factory.mktemp("cli-sub") / "index"
    proc = run_cli("index", str(SEEDS), "--index-dir", str(index_dir), "--model", "none", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "5 documents" in proc.stdout and "Traceback" not in proc.stderr
    return index_dir


def test_subprocess_index(subprocess_index):
    assert (subprocess_index / "CURRENT").is_file()


def test_subprocess_search_json(subprocess_index, tmp_path):
    query = "Tỷ lệ hộ nghèo Huế 2023?"
    proc = run_cli("search", query, "--index-dir", str(subprocess_index), "--json", "--k", "3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = check_search_json(proc.stdout, query)
    assert result["hits"][0]["doc_id"].startswith("004_")


def test_subprocess_batch_from_file_and_stdin(subprocess_index, tmp_path):
    batch = write_batch(tmp_path / "batch.jsonl")
    proc = run_cli("search", "--batch", str(batch), "--index-dir", str(subprocess_index), "--k", "2")
    assert proc.returncode == 2
    check_batch(proc.stdout)
    assert "Traceback" not in proc.stderr
    proc = run_cli("search", "--batch", "-", "--index-dir", str(subprocess_index), "--k", "2", stdin=batch.read_text("utf-8"))
    assert proc.returncode == 2
    check_batch(proc.stdout)


def test_subprocess_missing_index(tmp_path):
    proc = run_cli("search", "hộ nghèo", "--index-dir", str(tmp_path / "nowhere"))
    assert proc.returncode == 1
    assert_one_error_line(proc.stderr)
    assert proc.stdout == ""


def test_subprocess_unknown_flag(tmp_path):
    proc = run_cli("search", "hộ nghèo", "--bogus", "--index-dir", str(tmp_path))
    assert proc.returncode == 2
    assert_one_error_line(proc.stderr)


def test_subprocess_nonexistent_path_to_index(tmp_path):
    proc = run_cli("index", str(tmp_path / "no-such-folder"), "--index-dir", str(tmp_path / "i"), "--model", "none", "--quiet")
    assert proc.returncode == 2
    assert_one_error_line(proc.stderr)


@pytest.mark.skipif(not (Path(sys.executable).parent / "rag").exists(), reason="no `rag` console script next to python")
def test_console_script(subprocess_index):
    script = Path(sys.executable).parent / "rag"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [str(script), "search", "hộ nghèo", "--index-dir", str(subprocess_index), "--json", "--k", "1"],
        capture_output=True, text=True, encoding="utf-8", env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)) == RESULT_KEYS


# ---------------------------------------------------------------- the current directory does not matter


def _one_file(tmp_path: Path) -> Path:
    one = tmp_path / "home" / "one.txt"
    one.parent.mkdir(parents=True)
    one.write_text("Giải quyết việc làm cho 5.000 lao động tỉnh Quảng Bình năm 2023.\n", "utf-8")
    return one


def test_indexing_from_another_directory_removes_nothing(tmp_path, seeds_repo):
    """`cd repo && rag index seeds`, then `cd elsewhere && rag index ~/one.txt`: 1 added, nothing removed;
    sources read as they were given from the repo ("seeds/…")."""
    repo, elsewhere, index_dir = seeds_repo, tmp_path / "elsewhere", tmp_path / "I"
    elsewhere.mkdir()
    first = run_cli("index", "seeds", "--index-dir", str(index_dir), "--model", "none", "--quiet", cwd=repo)
    assert first.returncode == 0 and "5 added" in first.stdout, first.stderr
    proc = run_cli("index", str(_one_file(tmp_path)), "--index-dir", str(index_dir), "--model", "none", "--quiet",
                   cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert "6 documents" in proc.stdout and "1 added" in proc.stdout and "removed" not in proc.stdout
    from rag import store

    docs = store.load(index_dir).documents
    assert sorted(d.source for d in docs.values() if d.id != "one") == sorted(f"seeds/{p.name}" for p in SEEDS.glob("*.txt"))
    assert docs["one"].source == str(tmp_path / "home" / "one.txt")
    again = run_cli("index", "../repo/seeds", "--index-dir", str(index_dir), "--model", "none", "--quiet", cwd=elsewhere)
    assert again.returncode == 0 and "5 unchanged" in again.stdout and "removed" not in again.stdout, again.stdout


def test_a_deleted_file_is_dropped_only_when_its_path_is_given(tmp_path, seeds_repo):
    repo, index_dir = seeds_repo, tmp_path / "I"
    one = _one_file(tmp_path)
    assert run_cli("index", "seeds", str(one), "--index-dir", str(index_dir), "--model", "none", "--quiet",
                   cwd=repo).returncode == 0
    one.unlink()
    proc = run_cli("index", "seeds", "--index-dir", str(index_dir), "--model", "none", "--quiet", cwd=repo)
    assert proc.returncode == 0 and "6 documents" in proc.stdout and "removed" not in proc.stdout, proc.stdout
    proc = run_cli("index", str(one), "--index-dir", str(index_dir), "--model", "none", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0 and "5 documents" in proc.stdout and "1 removed" in proc.stdout, proc.stderr


def test_an_index_written_before_paths_were_recorded_keeps_working(tmp_path, seeds_repo):
    """Sources relative to the directory of the first run and no recorded paths (the old format):
    a run from elsewhere keeps them; a run from the first directory records their paths."""
    import hashlib

    from rag import store

    repo, elsewhere, index_dir = seeds_repo, tmp_path / "elsewhere", tmp_path / "I"
    elsewhere.mkdir()
    assert run_cli("index", "seeds", "--index-dir", str(index_dir), "--model", "none", "--quiet", cwd=repo).returncode == 0
    snap = store.live_snapshot(index_dir)
    records = [json.loads(line) for line in (snap / "documents.jsonl").read_text("utf-8").splitlines()]
    (snap / "documents.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k != "path"},
                                                             ensure_ascii=False) + "\n" for r in records), "utf-8")
    manifest = json.loads((snap / "manifest.json").read_text("utf-8"))
    for info in manifest["documents"].values():
        info.pop("path", None)
    manifest["files"]["documents.jsonl"] = hashlib.sha256((snap / "documents.jsonl").read_bytes()).hexdigest()
    (snap / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), "utf-8")
    assert not any(d.path for d in store.load(index_dir).documents.values())

    proc = run_cli("index", str(_one_file(tmp_path)), "--index-dir", str(index_dir), "--model", "none", "--quiet",
                   cwd=elsewhere)
    assert proc.returncode == 0 and "6 documents" in proc.stdout and "removed" not in proc.stdout, proc.stdout
    proc = run_cli("index", "seeds", "--index-dir", str(index_dir), "--model", "none", "--quiet", cwd=repo)
    assert proc.returncode == 0 and "5 unchanged" in proc.stdout and "removed" not in proc.stdout, proc.stdout
    docs = store.load(index_dir).documents
    assert all(docs[p.stem].path == str((repo / "seeds" / p.name).resolve()) for p in SEEDS.glob("*.txt"))
