"""The learned abstention: its probability on hand-made values, the shipped file, the fitter's determinism and
threshold rule, and the answerer's decision (a lexical index of the seeds)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rag.abstention import DENSE, FEATURES, WEIGHTS_FILE, Abstention
from rag.answer import AnswerConfig, Answerer

ROOT = Path(__file__).resolve().parents[1]


def _model(**weights) -> Abstention:
    n = len(FEATURES)
    return Abstention(FEATURES, (0.5,) * n, (0.25,) * n, tuple(weights.get(f, 0.0) for f in FEATURES), 0.0,
                      (0.5,) * n, 0.5, model="m")


def test_probability_standardises_fills_and_ignores_another_models_cosines():
    a = _model(support=2.0, sent_dense=1.0)
    assert a.probability({"support": 0.5}) == pytest.approx(0.5)  # everything at its mean
    assert a.probability({"support": 0.75}) == pytest.approx(1 / (1 + np.exp(-2.0)))
    high = {"support": 0.5, "sent_dense": 1.0}
    assert a.probability(high, "m") == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert a.probability(high, "other-model") == pytest.approx(0.5)  # its cosines mean nothing here: filled
    assert "sent_dense" in DENSE and set(DENSE) <= set(FEATURES)
    for z in (-1e4, 1e4):
        assert 0.0 <= _model(support=z).probability({"support": 1.0}) <= 1.0


@pytest.mark.parametrize("mode", ["dense", "lexical"])
def test_the_shipped_file_matches_the_code(mode):
    data = json.loads(WEIGHTS_FILE.read_text("utf-8"))[mode]
    assert data["features"] == list(FEATURES)
    for key in ("mean", "scale", "weights", "fill"):
        assert list(data[key]) == list(FEATURES)
    a = Abstention.load(mode)
    assert a is not None and 0.0 < a.threshold < 1.0
    # cross-validated, the model withholds at least as many document-removed questions as the rule it replaced
    assert data["cv"]["viquad"]["document_removed_withheld"][0] > data["rule_min_support"]["viquad"]["document_removed_withheld"][0]
    with pytest.raises(ValueError, match="fit_abstention"):
        Abstention.from_dict({**data, "features": list(FEATURES[:-1])})


def test_fitting_is_deterministic_and_the_threshold_keeps_its_rate():
    sys.path.insert(0, str(ROOT / "eval"))
    import fit_abstention as fa

    rng = np.random.default_rng(7)
    rows = []
    for i in range(400):
        evidence = {n: float(v) for n, v in zip(FEATURES, rng.random(len(FEATURES)))}
        answerable = i % 2 == 0
        evidence["support"] = evidence["support"] * 0.5 + (0.5 if answerable else 0.0)
        rows.append({"answerable": answerable, "picked": i % 9 != 0, "right": answerable and i % 4 == 0,
                     "evidence": evidence, "condition": "asked" if answerable else "without", "set": "s"})
    one, two = fa.fit(rows), fa.fit(rows)
    assert all(np.array_equal(one[k], two[k]) for k in ("mean", "scale", "weights", "fill"))
    assert one["weights"][FEATURES.index("support")] > 0.5  # it learns what the label depends on
    p = fa.probabilities(one, rows)
    assert (p[[not r["picked"] for r in rows]] == -1).all()
    t = fa.threshold_for(p, rows, 0.05)
    unanswerable = np.array([pi for pi, r in zip(p, rows) if not r["answerable"]])
    assert (unanswerable >= t).mean() <= 0.05 and (unanswerable >= t - 0.02).mean() > 0.0


@pytest.fixture(scope="module")
def lexical(tmp_path_factory):
    from rag.api import RAG

    index_dir = tmp_path_factory.mktemp("lexical-index")
    RAG.build([ROOT / "seeds"], index_dir, model="none")
    return RAG.open(index_dir)


def test_the_answerer_abstains_below_the_threshold_and_says_why(lexical):
    default = Answerer(lexical._retriever)
    answer = default.ask("Tỷ lệ hộ nghèo Huế 2023?")
    assert not answer.abstained and answer.answer == "2,27%"
    assert default.abstention.threshold <= answer.confidence <= 1.0
    strict = Answerer(lexical._retriever)
    strict.abstention = replace(strict.abstention, threshold=0.9999)
    withheld = strict.ask("Tỷ lệ hộ nghèo Huế 2023?")
    assert withheld.abstained and withheld.answer is None and not withheld.citations
    assert "độ tin cậy" in withheld.answer_text and "dưới ngưỡng 100%" in withheld.answer_text
    assert withheld.confidence == pytest.approx(answer.confidence)


def test_the_support_rule_is_one_setting_away(lexical):
    rule = Answerer(lexical._retriever, AnswerConfig(abstain_by="support"))
    assert rule.abstention is None
    assert rule.ask("Tỷ lệ hộ nghèo Huế 2023?").answer == "2,27%"
    low = Answerer(lexical._retriever, AnswerConfig(abstain_by="support", min_support=0.99))
    assert low.ask("Năm 2023 Huế có bao nhiêu lao động được giải quyết việc làm mới và bao nhiêu vàng?").abstained
    with pytest.raises(ValueError, match="abstain_by"):
        Answerer(lexical._retriever, AnswerConfig(abstain_by="never"))


@pytest.mark.parametrize("question", ["Giá vàng SJC hôm nay ở Hà Nội là bao nhiêu?",
                                      "Tỷ lệ hộ nghèo của tỉnh Cà Mau năm 2023?"])
def test_questions_the_seeds_cannot_answer_are_withheld(lexical, question):
    answer = Answerer(lexical._retriever).ask(question)
    assert answer.abstained and answer.answer is None and 0.0 <= answer.confidence <= 1.0


def test_unknown_share_counts_the_question_words_no_document_holds():
    from rag.answer import question_syllables, unknown_share
    from rag.query import analyse

    held = {"gia": 3, "hom": 1, "nay": 2, "ty": 5, "le": 5, "ho": 4, "ngheo": 4, "hue": 2, "2023": 3}
    df = lambda words: {w: held.get(w, 0) for w in words}  # noqa: E731
    assert unknown_share(analyse("Giá vàng SJC hôm nay?"), df) == pytest.approx(2 / 5)  # "vàng", "SJC"
    assert unknown_share(analyse("ty le ho ngheo hue 2023"), df) == 0.0
    assert "12" not in question_syllables(analyse("Tháng 12 năm 2023 Huế có bao nhiêu hộ nghèo?"))  # numbers: years only
    assert unknown_share(analyse("?"), df) == 0.0


def test_a_question_about_what_no_document_holds_is_withheld_with_a_low_confidence(lexical):
    for question in ("Giá vàng SJC hôm nay?", "gia vang sjc hom nay"):
        answer = Answerer(lexical._retriever).ask(question)
        assert answer.abstained and answer.confidence < Abstention.load("lexical").threshold, question


def test_the_abstention_names_the_words_no_document_holds(lexical):
    answer = Answerer(lexical._retriever).ask("Giá vàng SJC hôm nay?")
    assert answer.abstained and "không tài liệu nào có từ “vàng”, “SJC”" in answer.answer_text
