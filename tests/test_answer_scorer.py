"""The learned answer scorer: its features on hand-made questions and hits (no index), its weight
file, the training procedure's determinism, and the confidence in the JSON contract."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rag.answer import Answerer
from rag.answer_scorer import FEATURES, HAND, WEIGHTS_FILE, AnswerScorer
from rag.query import analyse
from rag.types import Chunk, Hit, Query

ROOT = Path(__file__).resolve().parents[1]


class _StubRetriever:
    """What the answerer reads of a retriever: the place test and the stored question–chunk cosines."""

    def __init__(self, cosines: dict[str, float | None], place_of: dict[str, str] | None = None,
                 sentences: dict[str, float] | None = None) -> None:
        self.cosines, self.place_of, self.sentences = cosines, place_of or {}, sentences or {}

    def similarities(self, query, chunks):
        return [self.cosines.get(c.id) for c in chunks]

    def sentence_similarities(self, query, chunk, sentences):
        return [self.sentences.get(t) for t in sentences]

    def about_place(self, place, chunk):
        return self.place_of.get(chunk.id) == place


def _hit(cid: str, text: str, score: float, rank: int) -> Hit:
    return Hit(Chunk(cid, "d", text, 0, len(text), header=""), score, rank, source="d.txt")


def _features(query: Query, hits: list[Hit], retriever=None, scorer=None) -> list:
    answerer = Answerer(retriever or _StubRetriever({"a": 0.8, "b": 0.5}), scorer=scorer or AnswerScorer.hand())
    idf = {"ty": 1.0, "le": 1.0, "ho": 2.0, "ngheo": 3.0, "2023": 1.0}
    return answerer._score_sentences(query, hits, idf, set(idf))


# (analyse reads what the answerer weighs: "năm 2023" is a time word; the place is set by hand, as if named)
QUERY = replace(analyse("Tỷ lệ hộ nghèo năm 2023?"), place="Thừa Thiên Huế")
HITS = [
    _hit("a", "Năm 2022 có nhiều mưa. Tỷ lệ hộ nghèo năm 2023 là 2,27%.", 10.0, 1),
    _hit("b", "Số hộ nghèo giảm mạnh trong giai đoạn 2016 - 2020.", 5.0, 2),
]


def test_features_of_hand_made_sentences():
    sents = _features(QUERY, HITS, _StubRetriever({"a": 0.8, "b": 0.5}, {"a": "Thừa Thiên Huế"}))
    assert [s.text for s in sents] == ["Năm 2022 có nhiều mưa.", "Tỷ lệ hộ nghèo năm 2023 là 2,27%.",
                                       "Số hộ nghèo giảm mạnh trong giai đoạn 2016 - 2020."]
    first, answer, other = (s.features for s in sents)
    assert set(answer) == set(FEATURES)
    assert answer["support_own"] == pytest.approx(1.0) and answer["pairs"] == pytest.approx(1.0)
    assert first["support_own"] == 0.0  # "năm" is not weighted; nothing else of the question is there
    assert other["support_own"] == pytest.approx(5 / 7.1)  # "hộ nghèo" of ty+le+ho+ngheo, 2023 a time word (0.1)
    assert answer["hit_score"] == 1.0 and other["hit_score"] == 0.5
    assert answer["hit_rank"] == 1.0 and other["hit_rank"] == 0.5
    assert answer["dense"] == 0.8 and other["dense"] == 0.5
    assert first["position"] == 1.0 and answer["position"] == 0.5 and other["position"] == 1.0
    assert answer["year_own"] == 1.0 and answer["year_other"] == 0.0
    assert first["year_other"] == 1.0  # dated 2022, 2023 asked
    assert other["year_other"] == 1.0  # a range that does not hold 2023
    assert answer["typed_found"] == 1.0 and answer["typed_missing"] == 0.0
    assert other["typed_found"] == 0.0 and other["typed_missing"] == 1.0
    assert answer["place"] == 1.0 and other["place"] == -1.0
    assert answer["target_mismatch"] == 0.0
    assert 0 < answer["length"] < 1


def test_the_hand_scorer_ranks_the_answer_first_and_a_lexical_index_gives_no_cosine():
    sents = _features(QUERY, HITS, _StubRetriever({}))
    assert all(s.features["dense"] is None for s in sents)
    best = max(sents, key=lambda s: s.score)
    assert best.text == "Tỷ lệ hộ nghèo năm 2023 là 2,27%."
    # the hand score is the old formula: support + pairs + 0.6·hit + 0.25 (year) - 0.3·len + 0.15 (typed) - 0.4 (place)
    f = best.features
    expected = f["support"] + f["pairs"] + 0.6 + 0.25 - 0.3 * f["length"] + 0.15 - 0.4
    assert best.score == pytest.approx(expected)


def test_sentence_cosines_are_features_and_move_the_hand_plus_cosine_ranking():
    cosines = {"Năm 2022 có nhiều mưa.": 0.70, "Tỷ lệ hộ nghèo năm 2023 là 2,27%.": 0.90,
               "Số hộ nghèo giảm mạnh trong giai đoạn 2016 - 2020.": 0.95}
    sents = _features(QUERY, HITS, _StubRetriever({"a": 0.8, "b": 0.5}, sentences=cosines))
    by_text = {s.text: s.features for s in sents}
    assert by_text["Năm 2022 có nhiều mưa."]["sent_dense"] == pytest.approx(0.70)
    assert by_text["Năm 2022 có nhiều mưa."]["sent_dense_gap"] == pytest.approx(-0.25)
    assert by_text["Số hộ nghèo giảm mạnh trong giai đoạn 2016 - 2020."]["sent_dense_gap"] == pytest.approx(0.0)
    f_answer, f_other = by_text["Tỷ lệ hộ nghèo năm 2023 là 2,27%."], by_text["Số hộ nghèo giảm mạnh trong giai đoạn 2016 - 2020."]
    plain = AnswerScorer.hand()
    assert plain.logit(f_answer) > plain.logit(f_other)
    # the fitted cosine weight adds weight × gap; a large enough one lets the closer sentence win
    heavy = AnswerScorer.hand(100.0)
    assert heavy.logit(f_answer) - plain.logit(f_answer) == pytest.approx(100.0 * -0.05)
    assert heavy.logit(f_other) > heavy.logit(f_answer)
    # a retriever without sentence vectors gives None (imputed), never an error
    sents = _features(QUERY, HITS, _StubRetriever({"a": 0.8, "b": 0.5}))
    assert all(s.features["sent_dense"] is None and s.features["sent_dense_gap"] is None for s in sents)


def test_the_default_ranking_adds_the_fitted_cosine_weights_for_open_and_typed_questions():
    from rag.answer import AnswerConfig

    scorer = AnswerScorer.load(WEIGHTS_FILE)
    data = json.loads(WEIGHTS_FILE.read_text("utf-8"))
    assert (scorer.hand_dense, scorer.hand_dense_typed) == (data["hand_dense"], data["hand_dense_typed"])
    assert scorer.ranking() == AnswerScorer.hand(scorer.hand_dense, scorer.hand_dense_typed) and scorer.hand_dense > 0
    retriever = _StubRetriever({})
    assert Answerer(retriever, scorer=scorer).ranker == scorer.ranking()  # the default: "hand+cosine"
    assert Answerer(retriever, AnswerConfig(rank_by="hand"), scorer=scorer).ranker == AnswerScorer.hand()
    assert Answerer(retriever, AnswerConfig(rank_by="learned"), scorer=scorer).ranker is scorer
    with pytest.raises(ValueError, match="rank_by"):
        Answerer(retriever, AnswerConfig(rank_by="best"), scorer=scorer)
    # the cosine's weight is `dense` for an open question and `typed` for a typed one
    ranking = AnswerScorer.hand(6.0, 1.0)
    base = {n: 0.0 for n in FEATURES}
    for typed, weight in ((0.0, 6.0), (1.0, 1.0)):
        f = base | {"typed_question": typed, "sent_dense_gap": -0.1, "sent_dense_gap*typed": -0.1 * typed}
        assert ranking.logit(f) - ranking.logit(f | {"sent_dense_gap": 0.0, "sent_dense_gap*typed": 0.0}) == pytest.approx(-0.1 * weight)


def test_target_feature():
    query = analyse("Mục tiêu tỷ lệ hộ nghèo năm 2023?")
    assert query.wants_target and query.years == (2023,) and query.expects == "percent"
    sents = _features(query, HITS)
    assert {s.features["target_mismatch"] for s in sents} == {1.0}  # a target asked, none of them is one


def test_scorer_fill_logit_and_probability():
    weights = tuple(float(i + 1) for i in range(len(FEATURES)))
    scorer = AnswerScorer(weights, -1.0, fill=tuple(0.5 for _ in FEATURES), learned=True)
    feats = {n: 0.0 for n in FEATURES} | {"dense": None, "support": 1.0}
    dense_w = weights[FEATURES.index("dense")]
    assert scorer.logit(feats) == pytest.approx(-1.0 + 1.0 * weights[0] + 0.5 * dense_w)
    for z in (-1000.0, -3.0, 0.0, 3.0, 1000.0):
        assert 0.0 <= AnswerScorer.probability(z) <= 1.0
    assert AnswerScorer.probability(0.0) == 0.5
    calibrated = AnswerScorer(weights, -1.0, learned=True, calibration=(0.5, 0.4, -1.0))
    assert calibrated.confidence(2.0, 1.9) == pytest.approx(AnswerScorer.probability(0.5 * 2 + 0.4 * 0.1 - 1))
    assert calibrated.confidence(2.0, None) == pytest.approx(AnswerScorer.probability(0.5 * 2 + 0.4 * 5 - 1))


def test_hand_weights_name_known_features():
    assert set(HAND) <= set(FEATURES)


def test_the_shipped_weight_file_matches_the_code():
    data = json.loads(WEIGHTS_FILE.read_text("utf-8"))
    assert tuple(data["features"]) == FEATURES
    assert list(data["weights"]) == list(FEATURES) and list(data["fill"]) == list(FEATURES)
    scorer = AnswerScorer.load(WEIGHTS_FILE)
    assert scorer.learned and 0.0 <= scorer.threshold < 1.0 and scorer.scale > 0
    with pytest.raises(ValueError, match="train_answerer"):
        AnswerScorer.from_dict({**data, "features": list(FEATURES[:-1])})


def test_training_on_a_fixed_sample_is_deterministic():
    sys.path.insert(0, str(ROOT / "eval"))
    import train_answerer as ta

    rng = np.random.default_rng(13)
    rows = [{n: float(v) for n, v in zip(FEATURES, rng.random(len(FEATURES)))} for _ in range(300)]
    for r in rows[::7]:
        r["dense"] = None
    fill = ta.fill_values(rows)
    X = ta.matrix(rows, fill)
    y = (X[:, FEATURES.index("support_own")] + 0.3 * rng.random(300) > 0.7).astype(int)
    w1, b1 = ta.fit(X, y)
    w2, b2 = ta.fit(ta.matrix(rows, ta.fill_values(rows)), y)
    assert np.array_equal(w1, w2) and b1 == b2
    assert w1[FEATURES.index("support_own")] > 1.0  # it learns the feature the label depends on
    scorer = ta.scorer_from(w1, b1, fill, ta.scale_of(X, w1, b1))
    assert scorer.logit(rows[0]) == pytest.approx(float(X[0] @ w1 + b1), abs=1e-4)
    assert ta.folds_of(["a", "a", "b", "c", "c", "c"], 2) == {"c": 0, "a": 1, "b": 1}
    right = np.array([True, True, False, True])
    assert ta.choose_threshold(np.array([0.9, 0.5, 0.1, 0.7]), right, 0.0) == 0.5


@pytest.fixture(scope="module")
def lexical_index(tmp_path_factory) -> Path:
    from rag.api import RAG

    index_dir = tmp_path_factory.mktemp("lexical-index")
    RAG.build([ROOT / "seeds"], index_dir, model="none")
    return index_dir


@pytest.mark.parametrize("question", ["Tỷ lệ hộ nghèo Huế 2023?", "Giá vàng SJC hôm nay ở Hà Nội là bao nhiêu?"])
def test_ask_json_ends_with_a_confidence_in_0_1(lexical_index, question):
    out = subprocess.run([sys.executable, "-m", "rag", "ask", question, "--json", "--index-dir", str(lexical_index)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    body = json.loads(out.stdout)
    assert list(body)[-4:] == ["timings_ms", "confidence", "asked", "store"]  # (the store object last: the Milvus work)
    assert isinstance(body["confidence"], float) and 0.0 <= body["confidence"] <= 1.0
    if body["abstained"]:
        assert body["answer"] is None
    else:
        assert body["answer"] == "2,27%"


def RAG_open(path):
    from rag.api import RAG

    return RAG.open(path)
