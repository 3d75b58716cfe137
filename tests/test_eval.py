"""`rag eval`: metric definitions on hand-computable cases, the JSON contract, the report, bad input."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rag import evaluation as ev
from rag.cli import main

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "eval" / "gold.jsonl"
TOP_KEYS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "answer_accuracy", "citation_accuracy",
            "abstention_accuracy", "false_abstention_rate", "exact_match", "f1", "per_type", "latency_p50_ms",
            "latency_p95_ms", "failures")
RATES = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "answer_accuracy", "citation_accuracy",
         "abstention_accuracy", "false_abstention_rate", "exact_match", "f1")
REPORT_FILES = ("report.md", "results.json", "recall_at_k.png", "accuracy_by_type.png", "latency_ms.png")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- normalisation, EM, F1


@pytest.mark.parametrize("pred, gold, em", [
    ("2,27%", "2,27%", 1.0),
    ("2,27 %", "2,27%", 1.0),  # the percent sign is a token of its own
    ("Tỷ lệ: 2,27%.", "tỷ lệ 2,27%", 1.0),  # case and punctuation outside numbers
    ("2.27%", "2,27%", 0.0),  # separators inside numbers are kept
    ("17.034 người", "17.034 người", 1.0),
    ("17034 người", "17.034 người", 0.0),
    ("Hoà Bình", "Hòa Bình", 1.0),  # old and modern tone placement
    (unicodedata.normalize("NFD", "Thừa Thiên Huế"), "Thừa Thiên Huế", 1.0),  # decomposed input
    ("“Nguyễn Thanh Bình”", "Nguyễn Thanh Bình", 1.0),
    ("ngày 31/7/2023", "31/7/2023", 0.0),
    (None, "2,27%", 0.0),  # an abstention predicts ""
])
def test_exact_match(pred, gold, em):
    assert ev.exact_match(pred, [gold]) == em


def test_normalize_answer_keeps_numbers_and_percent():
    assert ev.normalize_answer("  Tỷ lệ: 2,27%, giảm 1,29%. ") == "tỷ lệ 2,27 % giảm 1,29 %"
    assert ev.normalize_answer("31/7/2023; 17.034 người (hoà)") == "31/7/2023 17.034 người hòa"
    assert ev.normalize_answer("a,b. 3, 4") == "a b 3 4"  # commas not between digits go


def test_f1_by_hand():
    assert ev.f1("17.034 người", ["17.034 người"]) == 1.0
    # 2 shared tokens; precision 2/4, recall 2/2 -> 2 * 0.5 * 1 / 1.5
    assert ev.f1("17.034 người lao động", ["17.034 người"]) == pytest.approx(2 / 3)
    assert ev.f1("17.034", ["17.034 người", "khoảng 17.034"]) == pytest.approx(2 / 3)  # best gold wins
    assert ev.f1("2.27%", ["2,27%"]) == pytest.approx(0.5)  # only "%" is shared
    assert ev.f1(None, ["2,27%"]) == 0.0
    assert ev.f1("", []) == 1.0 and ev.exact_match("", []) == 1.0  # nothing expected, nothing said


def test_contains_answer_needs_whole_tokens():
    assert ev.contains_answer("Tỷ lệ hộ nghèo còn 2,27%.", ["2,27%"])
    assert not ev.contains_answer("Tỷ lệ hộ nghèo còn 12,27%.", ["2,27%"])
    assert not ev.contains_answer("17.034", ["17.034 người"])
    assert ev.contains_answer("ông Nguyễn Thanh Bình phát biểu", ["xxx", "Nguyễn Thanh Bình"])


# ---------------------------------------------------------------- retrieval metrics


def item(qid, doc, answers=("x",), answerable=True, type="count", tags=()):
    return ev.GoldItem(qid, f"question {qid}", tuple(answers), doc if answerable else None, type, answerable, tags)


def test_retrieval_metrics_by_hand():
    items = [item("q1", "A"), item("q2", "B"), item("q3", None, answerable=False)]
    rankings = [["A", "B"], ["A", "C", "B"], ["A"]]  # q1 at rank 1, q2 at rank 3, q3 not counted
    m = ev.retrieval_metrics(items, rankings, curve=True)
    assert m["recall@1"] == 0.5
    assert m["recall@5"] == m["recall@10"] == 1.0
    assert m["mrr@10"] == pytest.approx((1 + 1 / 3) / 2, abs=1e-4)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4)) / 2, abs=1e-4)
    assert m["recall_curve"] == [0.5, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]


def test_retrieval_metrics_with_a_miss_and_an_empty_ranking():
    m = ev.retrieval_metrics([item("q1", "A"), item("q2", "B")], [["C", "D"], []])
    assert m == {"recall@1": 0.0, "recall@5": 0.0, "recall@10": 0.0, "mrr@10": 0.0, "ndcg@10": 0.0}
    assert ev.retrieval_metrics([item("q3", None, answerable=False)], [["A"]])["recall@1"] is None


# ---------------------------------------------------------------- a whole gold run on a scripted pipeline


@dataclass
class _Cite:
    doc_id: str


@dataclass
class _Answer:
    answer: str | None
    abstained: bool
    answer_text: str
    citations: list = field(default_factory=list)


@dataclass
class _Chunk:
    doc_id: str


@dataclass
class _Hit:
    chunk: _Chunk


class ScriptedRAG:
    """Answers and rankings fixed per question: every metric can be computed by hand."""

    mode, model, index_dir, documents = "lexical", None, Path("nowhere"), {}

    def __init__(self, script: dict[str, tuple[str | None, list[str], list[str]]]) -> None:
        self.script = script  # question -> (answer or None for an abstention, cited docs, ranked docs)

    def ask(self, question):
        answer, cited, _ = self.script[question]
        if answer is None:
            return _Answer(None, True, "Không tìm thấy thông tin.")
        return _Answer(answer, False, f"Kết quả là {answer} [1].", [_Cite(d) for d in cited])

    def search(self, question, k):
        return [_Hit(_Chunk(d)) for d in self.script[question][2]][:k]


GOLD_ROWS = [
    {"id": "g1", "question": "Tỷ lệ hộ nghèo Huế 2023?", "answers": ["2,27%"], "doc": "A", "type": "percent"},
    {"id": "g2", "question": "Hòa Bình giải quyết việc làm cho bao nhiêu người?", "answers": ["17.034 người"],
     "doc": "B", "type": "count", "tags": ["paraphrase"]},
    {"id": "g3", "question": "ty le ho ngheo hue 2023", "answers": ["2,27%"], "doc": "A", "type": "percent",
     "tags": ["no_diacritics"]},
    {"id": "g4", "question": "Giá vàng SJC hôm nay?", "answers": [], "doc": None, "type": "unanswerable",
     "answerable": False},
    {"id": "g5", "question": "Dân số sao Hỏa?", "answers": [], "doc": None, "type": "unanswerable",
     "answerable": False},
]
SCRIPT = {
    "Tỷ lệ hộ nghèo Huế 2023?": ("2,27 %", ["A"], ["A", "B"]),  # right, cites A, rank 1
    "Hòa Bình giải quyết việc làm cho bao nhiêu người?": ("17.034", ["B"], ["A", "B"]),  # partial, rank 2
    "ty le ho ngheo hue 2023": (None, [], ["B", "A"]),  # false abstention, rank 2
    "Giá vàng SJC hôm nay?": (None, [], ["A"]),  # right abstention
    "Dân số sao Hỏa?": ("5%", ["B"], ["B"]),  # answers what nobody knows
}


def write_gold(path: Path, rows=GOLD_ROWS) -> Path:
    lines = [json.dumps({"evidence": None, "answerable": True, **row}, ensure_ascii=False) for row in rows]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def test_gold_metrics_by_hand(tmp_path):
    items = ev.load_gold(write_gold(tmp_path / "gold.jsonl"))
    r = ev.evaluate_gold(ScriptedRAG(SCRIPT), items, ev.EvalOptions(progress=False))
    assert (r["n_questions"], r["n_answerable"], r["n_unanswerable"]) == (5, 3, 2)
    assert r["answer_accuracy"] == pytest.approx(1 / 3, abs=1e-4)  # g1 only
    assert r["citation_accuracy"] == pytest.approx(2 / 3, abs=1e-4)  # g1, g2 (g3 abstained)
    assert r["citation_accuracy_answered"] == 1.0
    assert r["false_abstention_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert r["abstention_accuracy"] == 0.5
    assert r["exact_match"] == pytest.approx(1 / 3, abs=1e-4)
    assert r["f1"] == pytest.approx((1 + 2 / 3 + 0) / 3, abs=1e-4)
    assert r["recall@1"] == pytest.approx(1 / 3, abs=1e-4) and r["recall@5"] == 1.0
    assert r["mrr@10"] == pytest.approx((1 + 0.5 + 0.5) / 3, abs=1e-4)
    assert r["per_type"]["percent"]["count"] == 2 and r["per_type"]["percent"]["answer_accuracy"] == 0.5
    assert r["per_type"]["unanswerable"]["abstention_accuracy"] == 0.5
    assert r["per_tag"]["no_diacritics"]["false_abstention_rate"] == 1.0
    fails = {f["id"]: f for f in r["failures"]}
    assert set(fails) == {"g2", "g3", "g5"}
    assert fails["g2"]["reason"] == "wrong answer" and fails["g2"]["doc_rank"] == 2
    assert fails["g2"]["expected"] == ["17.034 người"] and fails["g2"]["got"] == "17.034"
    assert fails["g3"]["abstained"] and fails["g3"]["cited_docs"] == []
    assert fails["g5"]["reason"] == "answered an unanswerable question"


# ---------------------------------------------------------------- bad gold files


@pytest.mark.parametrize("bad_line, message", [
    ("{not json", "Line 2 of .* is not valid JSON"),
    ('{"id": "x", "question": "Q?"}', "Line 2 of .* lacks the keys answers, doc, evidence, type, answerable"),
    ('["a list"]', "Line 2 of .* is not a JSON object"),
    ('{"id": "x", "question": "Q?", "answers": [], "doc": null, "evidence": null, "type": "count", '
     '"answerable": true}', "Line 2 of .* needs a \"doc\" id and at least one answer"),
    ('{"id": "g1", "question": "Q?", "answers": ["1"], "doc": "A", "evidence": null, "type": "count", '
     '"answerable": true}', "Line 2 of .* repeats the id 'g1'"),
])
def test_bad_gold_file_exits_2_with_the_line_number(tmp_path, capsys, bad_line, message):
    gold = write_gold(tmp_path / "gold.jsonl", GOLD_ROWS[:1])
    gold.write_text(gold.read_text("utf-8") + bad_line + "\n", "utf-8")
    code, out, err = run_cli(capsys, "eval", "--gold", str(gold), "--quiet")
    assert code == 2 and out == ""
    assert re.search(message, err), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_missing_gold_file_and_missing_documents_exit_2(tmp_path, capsys, monkeypatch):
    code, _, err = run_cli(capsys, "eval", "--gold", str(tmp_path / "nope.jsonl"))
    assert code == 2 and "Cannot read" in err
    gold = write_gold(tmp_path / "gold.jsonl")
    monkeypatch.setattr(ev, "SEEDS_DIRS", ())  # nowhere to find documents A and B
    code, _, err = run_cli(capsys, "eval", "--gold", str(gold), "--index-dir", str(tmp_path / "noindex"))
    assert code == 2 and "--docs" in err


# ---------------------------------------------------------------- the real pipeline on the seeds


@pytest.fixture(scope="module")
def seeds_lexical_index(tmp_path_factory) -> Path:
    from rag.api import RAG

    index_dir = tmp_path_factory.mktemp("eval-seeds-index")
    RAG.build([ROOT / "seeds"], index_dir, model="none")
    return index_dir


@pytest.fixture(scope="module")
def gold_run(seeds_lexical_index, tmp_path_factory) -> tuple[dict, Path]:
    report = tmp_path_factory.mktemp("report")
    code = main(["eval", "--gold", str(GOLD), "--index-dir", str(seeds_lexical_index), "--json", "--quiet",
                 "--report", str(report)])
    assert code == 0
    return json.loads((report / "results.json").read_text("utf-8")), report


def test_gold_on_the_seeds_keys_and_ranges(gold_run):
    result, _ = gold_run
    assert all(key in result for key in TOP_KEYS)
    assert result["mode"] == "lexical" and result["n_questions"] == 151
    for key in RATES:
        assert 0.0 <= result[key] <= 1.0, key
    assert result["recall@1"] <= result["recall@5"] <= result["recall@10"]
    assert result["recall@5"] >= 0.9  # five documents: the right one is nearly always among them
    assert 0 < result["latency_p50_ms"] <= result["latency_p95_ms"]
    assert sum(m["count"] for m in result["per_type"].values()) == 151
    assert {"count", "percent", "unanswerable"} <= set(result["per_type"])
    for f in result["failures"]:
        assert {"id", "question", "expected", "doc", "got", "cited_docs", "abstained"} <= set(f)


def _simple_norm(text: str) -> list[str]:
    """An independent, simpler normaliser: numbers with their separators, "%", words."""
    return re.findall(r"\d+(?:[.,/]\d+)*|%|[^\W\d_]+", unicodedata.normalize("NFC", text or "").lower())


def test_answer_accuracy_rescored_independently(gold_run):
    result, _ = gold_run
    rows = [json.loads(line) for line in GOLD.read_text("utf-8").splitlines() if line.strip()]
    preds = {p["id"]: p for p in result["predictions"]}
    answerable = [r for r in rows if r["answerable"]]
    right = set()
    for row in answerable:
        p = preds[row["id"]]
        toks = _simple_norm(p["answer"])
        hit = any(toks[i:i + len(g)] == g for g in map(_simple_norm, row["answers"]) for i in range(len(toks)))
        if not p["abstained"] and hit and row["doc"] in p["cited_docs"]:
            right.add(row["id"])
    assert result["answer_accuracy"] == pytest.approx(len(right) / len(answerable), abs=1e-4)
    failed = {f["id"] for f in result["failures"]}
    assert {r["id"] for r in answerable} - right == failed & {r["id"] for r in answerable}
    unanswerable = [r for r in rows if not r["answerable"]]
    kept_quiet = sum(preds[r["id"]]["abstained"] for r in unanswerable)
    assert result["abstention_accuracy"] == pytest.approx(kept_quiet / len(unanswerable), abs=1e-4)


def test_report_files(gold_run):
    result, report = gold_run
    for name in REPORT_FILES:
        assert (report / name).stat().st_size > 0, name
    md = (report / "report.md").read_text("utf-8")
    assert "## Summary" in md and "## Failures" in md and "answer_accuracy" in md
    assert (report / "recall_at_k.png").read_bytes()[:4] == b"\x89PNG"


def test_gold_with_docs_builds_a_temporary_index(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "A.txt").write_text("Báo cáo Thừa Thiên Huế năm 2023.\n\nTỷ lệ hộ nghèo năm 2023 là 2,27%, giảm 1,29%.",
                                "utf-8")
    (docs / "B.txt").write_text("Báo cáo tỉnh Hòa Bình năm 2023.\n\nNăm 2023, Hòa Bình giải quyết việc làm cho "
                                "17.034 người.", "utf-8")
    gold = write_gold(tmp_path / "gold.jsonl", GOLD_ROWS[:2])
    code, out, _ = run_cli(capsys, "eval", "--gold", str(gold), "--docs", str(docs), "--model", "none", "--quiet")
    assert code == 0
    assert "## Summary" in out and "| recall@1 |" in out  # the table for people


# ---------------------------------------------------------------- SQuAD files


def write_squad(path: Path) -> Path:
    paragraphs = [
        {"context": "Năm 2023, tỷ lệ hộ nghèo của tỉnh Thừa Thiên Huế giảm xuống còn 2,27%, thấp hơn năm trước.",
         "qas": [{"id": "s1", "question": "Tỷ lệ hộ nghèo của Thừa Thiên Huế năm 2023 là bao nhiêu?",
                  "answers": [{"text": "2,27%", "answer_start": 63}]},
                 {"id": "s4", "question": "Dân số sao Hỏa là bao nhiêu?", "answers": [], "is_impossible": True}]},
        {"context": "Vịnh Hạ Long nằm ở tỉnh Quảng Ninh, được UNESCO công nhận là di sản thiên nhiên thế giới.",
         "qas": [{"id": "s2", "question": "Vịnh Hạ Long nằm ở tỉnh nào?",
                  "answers": [{"text": "Quảng Ninh", "answer_start": 24}]}]},
        {"context": "Sông Mê Kông chảy qua sáu quốc gia trước khi đổ ra Biển Đông.",
         "qas": [{"id": "s3", "question": "Sông Mê Kông chảy qua bao nhiêu quốc gia?",
                  "answers": [{"text": "sáu quốc gia", "answer_start": 20}]}]},
    ]
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]},
                               ensure_ascii=False), "utf-8")
    return path


def test_squad_keys_ranges_and_report(tmp_path, capsys):
    squad = write_squad(tmp_path / "tiny.json")
    report = tmp_path / "report"
    code, out, _ = run_cli(capsys, "eval", "--squad", str(squad), "--json", "--quiet", "--model", "none",
                           "--report", str(report))
    assert code == 0
    result = json.loads(out)
    assert result == json.loads((report / "results.json").read_text("utf-8"))
    assert (result["n_questions"], result["n_answerable"], result["n_passages"]) == (4, 3, 3)
    for key in (*RATES[:5], "exact_match", "f1", "answer_text_contains", "latency_p50_ms", "latency_p95_ms"):
        assert key in result and key in result["unaccented"], key
    for key in (*RATES[:5], "exact_match", "f1", "answer_text_contains"):
        assert 0.0 <= result[key] <= 1.0 and 0.0 <= result["unaccented"][key] <= 1.0
    assert result["recall@10"] == 1.0  # three passages, each question names its own
    assert result["recall@1"] >= 2 / 3
    for name in REPORT_FILES:
        assert (report / name).exists(), name


def test_bad_squad_file_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [{"title": "t"}]}', "utf-8")
    code, _, err = run_cli(capsys, "eval", "--squad", str(bad), "--quiet")
    assert code == 2 and "not a SQuAD file" in err
    bad.write_text("{oops", "utf-8")
    code, _, err = run_cli(capsys, "eval", "--squad", str(bad), "--quiet")
    assert code == 2 and "not valid JSON" in err


# ---------------------------------------------------------------- baselines


def test_bm25_baseline_ranks_documents_by_their_best_chunk():
    from rag.baselines import BM25Baseline, plain_tokens

    assert plain_tokens("Tỷ lệ HỘ nghèo: 2,27%") == ["tỷ", "lệ", "hộ", "nghèo", "2", "27"]
    chunks = [("A", "tỷ lệ hộ nghèo giảm"), ("A", "hộ nghèo Huế"), ("B", "giải quyết việc làm"), ("C", "vịnh Hạ Long")]
    ranked = BM25Baseline(chunks).rank(["hộ nghèo Huế", "việc làm", "không có gì"], k=10)
    assert ranked == [["A"], ["B"], []]  # unique documents, only chunks that match


def test_baselines_beside_the_product_when_langchain_cannot_run(tmp_path, monkeypatch):
    from rag import baselines

    def unavailable(*args, **kwargs):
        raise ImportError("no model here")

    monkeypatch.setattr(baselines, "LangChainBaseline", unavailable)
    items = ev.load_gold(write_gold(tmp_path / "gold.jsonl"))
    rag = ScriptedRAG(SCRIPT)
    rag.documents = {"A": _Doc("Tỷ lệ hộ nghèo Huế 2023 là 2,27%."), "B": _Doc("Hòa Bình giải quyết việc làm.")}
    r = ev.evaluate_gold(rag, items, ev.EvalOptions(progress=False, baselines=True))
    assert "ImportError" in r["baselines"]["langchain"]["error"]
    bm25 = r["baselines"]["bm25s"]
    assert bm25["recall@1"] == 1.0 and len(bm25["recall_curve"]) == 10  # g1, g3 -> A; g2 -> B
    md = ev.render_markdown({**r, "source": "x"})
    assert "| bm25s |" in md and "langchain: not run" in md


@dataclass
class _Doc:
    text: str


@pytest.mark.slow
def test_gold_with_all_baselines_on_the_seeds(seeds_lexical_index, tmp_path, capsys):
    code, out, _ = run_cli(capsys, "eval", "--gold", str(GOLD), "--index-dir", str(seeds_lexical_index), "--json",
                           "--quiet", "--baselines", "--report", str(tmp_path / "r"))
    assert code == 0
    result = json.loads(out)
    for name in ("bm25s", "langchain"):
        assert "error" not in result["baselines"][name], result["baselines"][name]
        assert 0.0 <= result["baselines"][name]["recall@1"] <= result["baselines"][name]["recall@10"] <= 1.0


VIQUAD_DEV = Path("/work/shared/benchdata/uit-viquad-1.0/dev_ViQuAD.json")


@pytest.mark.slow
@pytest.mark.skipif(not VIQUAD_DEV.exists(), reason="UIT-ViQuAD dev is not on this machine")
def test_viquad_dev_retrieval(capsys):
    code, out, _ = run_cli(capsys, "eval", "--squad", str(VIQUAD_DEV), "--json", "--quiet", "--model", "none")
    assert code == 0
    result = json.loads(out)
    assert result["n_questions"] == 2285
    assert result["recall@5"] >= 0.85 and result["unaccented"]["recall@5"] >= 0.8
