"""The `rag` command and the Python API on odd input (issue 14): batch files with bad bytes, lone
surrogates or a BOM, bad `--k`, damaged manifests, misleading messages."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from rag.cli import main

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    """A BM25-only index of the seeds (read-only)."""
    index_dir = tmp_path_factory.mktemp("cli-input") / "index"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["index", str(SEEDS), "--index-dir", str(index_dir), "--model", "none", "--quiet"]) == 0
    return index_dir


def run(capsys, *argv: str) -> tuple[int, list[str], str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "unexpected" not in lines[0], err
    return lines[0]


# ---------------------------------------------------------------- batch lines (#8)


def test_a_non_utf8_batch_line_is_one_error_line_and_the_others_are_answered(index_dir, tmp_path, capsys):
    lines = [json.dumps({"id": i, "query": "hộ nghèo Huế"}, ensure_ascii=False).encode() for i in range(300)]
    lines[200] = b'{"id": 200, "query": "h\xf4 ngh\xe8o"}'  # Latin-1, not UTF-8
    batch = tmp_path / "mixed.jsonl"
    batch.write_bytes(b"\n".join(lines) + b"\n")
    code, out, err = run(capsys, "search", "--batch", str(batch), "--index-dir", str(index_dir), "--k", "1")
    assert code == 2
    results = [json.loads(line) for line in out]
    assert len(results) == 300
    assert [r["id"] for r in results if "hits" in r] == [i for i in range(300) if i != 200]
    assert "line 201" in results[200]["error"] and "UTF-8" in results[200]["error"]
    assert "1 batch line(s)" in err


@pytest.mark.parametrize("command, key", [("ask", "question"), ("search", "query")])
def test_a_lone_surrogate_in_a_batch_line_is_one_error_line(index_dir, tmp_path, capsys, command, key):
    batch = tmp_path / "surrogate.jsonl"
    batch.write_text(
        json.dumps({"id": "a", key: "hộ nghèo Huế"}, ensure_ascii=False) + "\n"
        + '{"id": "b", "%s": "h\\ud800"}\n' % key
        + '{"id": "c\\udc80", "%s": "hộ nghèo Huế"}\n' % key
        + json.dumps({"id": "d", key: "hộ nghèo Huế"}, ensure_ascii=False) + "\n", "utf-8")
    code, out, err = run(capsys, command, "--batch", str(batch), "--index-dir", str(index_dir), "--json")
    assert code == 2, err
    results = [json.loads(line) for line in out]
    assert [r.get("id") for r in results] == ["a", "b", None, "d"]
    assert "error" not in results[0] and "error" not in results[3]
    assert "Unicode" in results[1]["error"] and "Unicode" in results[2]["error"]
    assert "unexpected" not in err and "2 batch line(s)" in err


def test_a_utf8_bom_does_not_spoil_the_first_line(index_dir, tmp_path, capsys):
    batch = tmp_path / "bom.jsonl"
    batch.write_bytes(b"\xef\xbb\xbf" + '{"id": 1, "query": "hộ nghèo Huế"}\n{"id": 2, "query": "XKLĐ"}\n'.encode())
    code, out, err = run(capsys, "search", "--batch", str(batch), "--index-dir", str(index_dir))
    assert code == 0, out
    assert [json.loads(line)["id"] for line in out] == [1, 2]
    assert all("hits" in json.loads(line) for line in out)


# ---------------------------------------------------------------- a document's odd figure is not an empty question (#13)


COMPARISON = "Tỉnh nào có số người đi làm việc ở nước ngoài năm 2023 nhiều hơn, Hòa Bình hay Nghệ An?"


@pytest.fixture(scope="module")
def list_of_numbers_index(tmp_path_factory) -> Path:
    """Two documents; one gives its figure as "1,2,3 người" (a list, not a number)."""
    root = tmp_path_factory.mktemp("figures")
    (root / "docs").mkdir()
    (root / "docs" / "hoabinh.txt").write_text(
        "Báo cáo lao động tỉnh Hòa Bình năm 2023.\n"
        "Năm 2023, số người đi làm việc ở nước ngoài của tỉnh Hòa Bình là 1,2,3 người.\n", "utf-8")
    (root / "docs" / "nghean.txt").write_text(
        "Báo cáo lao động tỉnh Nghệ An năm 2023.\n"
        "Năm 2023, số người đi làm việc ở nước ngoài của tỉnh Nghệ An là 120 người.\n", "utf-8")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["index", str(root / "docs"), "--index-dir", str(root / "index"), "--model", "none", "--quiet"]) == 0
    return root / "index"


def test_a_comparison_over_a_list_of_numbers_is_answered_not_called_empty(list_of_numbers_index, capsys):
    code, out, err = run(capsys, "ask", COMPARISON, "--index-dir", str(list_of_numbers_index), "--json")
    assert code == 0, err
    result = json.loads(out[0])
    assert result["abstained"] is True and "Hòa Bình" in result["answer_text"]  # no figure for it: says which


@pytest.mark.parametrize("span, expected", [
    ("1,2,3 người", None), ("1.2.3", None), ("2,27%", 2.27), ("17.034 người", 17034.0),
    ("khoảng 24 ngàn người", 24000.0), ("1.234,5 tỷ đồng", 1234.5e9), ("12", 12.0),
])
def test_value_reads_vietnamese_numbers_and_refuses_lists(span, expected):
    from rag.extract import value

    assert value(span) == expected


def test_only_an_empty_question_is_called_empty(index_dir, monkeypatch):
    from rag.api import RAG
    from rag.errors import UsageError

    rag = RAG.open(index_dir)
    with pytest.raises(UsageError) as caught:
        rag.ask("\u200b\u200b")
    assert "empty" in str(caught.value) and "(the question is empty)" not in str(caught.value)

    def broken(*args, **kwargs):
        raise ValueError("a bug deep inside")

    monkeypatch.setattr("rag.answer.Answerer.ask", broken)
    with pytest.raises(ValueError, match="a bug deep inside"):  # not "The question is empty"
        rag.ask("hộ nghèo Huế")


# ---------------------------------------------------------------- --k, damaged manifests (#12)


@pytest.mark.parametrize("command", ["ask", "search"])
@pytest.mark.parametrize("k", ["0", "-1"])
def test_k_below_one_is_bad_usage_for_ask_and_search_alike(index_dir, capsys, command, k):
    code, out, err = run(capsys, command, "hộ nghèo Huế", "--index-dir", str(index_dir), "--k", k)
    assert code == 2 and out == []
    assert "argument --k: must be at least 1" in one_error_line(err)


def test_k_below_one_is_refused_by_the_python_api(index_dir):
    from rag.api import RAG
    from rag.errors import UsageError

    rag = RAG.open(index_dir)
    for k in (0, -1):
        with pytest.raises(UsageError, match="k must be"):
            rag.ask("hộ nghèo Huế", k=k)


def _damage_manifest(index_dir: Path, tmp_path: Path, change) -> Path:
    import shutil

    copy = tmp_path / "damaged"
    shutil.copytree(index_dir, copy)
    manifest = copy / (copy / "CURRENT").read_text("utf-8").strip() / "manifest.json"
    data = json.loads(manifest.read_text("utf-8"))
    change(data)
    manifest.write_text(json.dumps(data), "utf-8")
    return copy


MANIFEST_DAMAGE = {
    "model-null": lambda m: m.update(model=None),
    "model-missing": lambda m: m.pop("model"),
    "model-name-number": lambda m: m["model"].update(name=3),
    "files-string": lambda m: m.update(files="x"),
    "files-list": lambda m: m.update(files=["x"]),
    "mode-missing": lambda m: m.pop("mode"),
    "chunking-string": lambda m: m.update(chunking="x"),
    "chunking-keys": lambda m: m.update(chunking={"size": 1000}),
    "faiss-number": lambda m: m["model"].update(faiss=1),
}


@pytest.mark.parametrize("damage", MANIFEST_DAMAGE)
def test_a_manifest_of_the_wrong_shape_says_what_to_run(index_dir, tmp_path, capsys, damage):
    damaged = _damage_manifest(index_dir, tmp_path, MANIFEST_DAMAGE[damage])
    code, out, err = run(capsys, "ask", "hộ nghèo Huế", "--index-dir", str(damaged))
    assert code == 1 and out == []
    assert f"rag index --index-dir {damaged}" in one_error_line(err)


# ---------------------------------------------------------------- messages that say what is wrong (#14)


def test_a_format_version_of_the_wrong_type_is_shown_as_it_is(index_dir, tmp_path, capsys):
    damaged = _damage_manifest(index_dir, tmp_path, lambda m: m.update(format_version="2"))
    code, out, err = run(capsys, "search", "hộ nghèo", "--index-dir", str(damaged))
    line = one_error_line(err)
    assert code == 1 and "'2'" in line and "version 2, this program reads version 2" not in line


@pytest.mark.parametrize("argv", [["ask", "hộ nghèo"], ["search", "hộ nghèo"], ["index", str(SEEDS), "--model", "none", "--quiet"]])
def test_an_index_dir_that_is_a_file_is_called_a_file(capsys, argv):
    code, out, err = run(capsys, *argv, "--index-dir", str(ROOT / "README.md"))
    line = one_error_line(err)
    assert code in (1, 2) and "is a file, not an index folder" in line
    assert f"--index-dir {ROOT / 'README.md'}`" not in line  # no advice to build an index into a file
