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


# -- unanswerable questions made by moving an answerable one's year or province (eval/fit_abstention.py)

SEED_YEARS = set(range(2019, 2026))  # the years the seed reports write
SEED_PLACES = {"An Giang", "Hòa Bình", "Nghệ An", "Thừa Thiên Huế", "Đồng Nai"}  # the provinces they name


def _fitter():
    sys.path.insert(0, str(ROOT / "eval"))
    import fit_abstention

    return fit_abstention


def test_the_year_moves_to_one_no_document_writes_where_it_was_typed():
    fa = _fitter()
    # +3 gives 2026 (free): the first shift that lands outside the years taken
    assert fa.shift_year("Tỷ lệ hộ nghèo Huế năm 2023?", SEED_YEARS) == "Tỷ lệ hộ nghèo Huế năm 2026?"
    assert fa.shift_year("ty le ho ngheo hue 2023", SEED_YEARS | {2026}) == "ty le ho ngheo hue 2027"  # +3, -3 taken
    # every year of the question moves by the same shift, and each must land outside: 2025 is taken, so +4
    assert (fa.shift_year("Năm 2023 tỷ lệ hộ nghèo giảm bao nhiêu so với năm 2022?", SEED_YEARS)
            == "Năm 2027 tỷ lệ hộ nghèo giảm bao nhiêu so với năm 2026?")
    assert fa.shift_year("Năm 1844, Paris được ngăn cách bằng gì?", {1847}) == "Năm 1841, Paris được ngăn cách bằng gì?"
    # no year asked: a document number's year, a count, no number at all; or no shift lands outside
    for question in ("Nghị định 38/2022 quy định gì?", "Có 1.200 lao động đi Nhật?", "Giám đốc Sở là ai?"):
        assert fa.shift_year(question, SEED_YEARS) is None, question
    assert fa.shift_year("Năm 2023?", set(range(2010, 2040))) is None


def test_the_province_is_replaced_by_one_no_document_names_as_it_was_typed():
    from rag import gazetteer
    from rag.query import analyse
    from rag.text import has_diacritics

    fa = _fitter()
    names = {p.name for p in gazetteer.PLACES}
    accented = fa.shift_place("Tỷ lệ hộ nghèo Thừa Thiên Huế năm 2023?", SEED_PLACES)
    place = accented.removeprefix("Tỷ lệ hộ nghèo ").removesuffix(" năm 2023?")
    assert place in names and place not in SEED_PLACES and analyse(accented).place == place
    folded = fa.shift_place("ty le ho ngheo hue 2023", SEED_PLACES)  # typed without diacritics: the folded name
    place = folded.removeprefix("ty le ho ngheo ").removesuffix(" 2023")
    assert not has_diacritics(folded) and place == place.lower() and analyse(folded).place not in SEED_PLACES | {None}
    english = fa.shift_place("What was the poverty rate in Hue in 2023?", SEED_PLACES)
    place = english.removeprefix("What was the poverty rate in ").removesuffix(" in 2023?")
    assert not has_diacritics(place) and place.istitle() and analyse(english).place not in SEED_PLACES | {None}
    mixed = fa.shift_place("Tỷ lệ hộ nghèo ở hue năm 2023?", SEED_PLACES)  # accented question, unaccented place
    place = mixed.removeprefix("Tỷ lệ hộ nghèo ở ").removesuffix(" năm 2023?")
    assert not has_diacritics(place) and place == place.lower() and analyse(mixed).place not in SEED_PLACES | {None}
    hanoi = fa.shift_place("Giá thuê nhà ở Hà Nội năm 2023?", SEED_PLACES)  # a city becomes another city
    assert gazetteer.lookup(hanoi.removeprefix("Giá thuê nhà ở ").removesuffix(" năm 2023?")).kind == "city"
    assert fa.shift_place("Tỷ lệ hộ nghèo Thừa Thiên Huế năm 2023?", SEED_PLACES) == accented  # deterministic
    # no place, two places (a comparison), a district only: not shifted
    for question in ("Vụ nổ lò hơi xảy ra tại công ty nào?", "Năm 2023 Nghệ An hay Thừa Thiên Huế có nhiều lao động hơn?",
                     "Tỷ lệ hộ nghèo ở Cửa Lò năm 2023?"):
        assert fa.shift_place(question, SEED_PLACES) is None, question


def test_shifted_items_are_unanswerable_and_keep_their_source_document():
    from rag.evaluation import GoldItem

    fa = _fitter()
    texts = ["Tỷ lệ hộ nghèo tỉnh Thừa Thiên Huế năm 2023 còn 2,27%; giai đoạn 2021 - 2025 giảm mạnh.",
             "Nghệ An đưa 16.000 lao động đi làm việc ở nước ngoài năm 2022."]
    assert fa.mentioned_years(texts) == {2021, 2022, 2023, 2024, 2025}  # 2022–2024 inside the range too
    assert fa.mentioned_places(texts) == {"Thừa Thiên Huế", "Nghệ An"}
    items = [GoldItem("a", "Tỷ lệ hộ nghèo Huế 2023?", ("2,27%",), "d1"),
             GoldItem("b", "Giám đốc Sở là ai?", ("X",), "d1"),  # neither a year nor a place
             GoldItem("c", "Tỷ lệ hộ nghèo Hà Giang 2023?", (), None, answerable=False)]
    made = fa.shifted_items(items, texts, places=True)
    assert [(m.id, m.tags) for m in made] == [("a~year", ("shifted_year",)), ("a~place", ("shifted_place",))]
    assert made[0].question == "Tỷ lệ hộ nghèo Huế 2026?"
    assert all(not m.answerable and m.answers == () and m.doc == "d1" for m in made)
    assert [m.id for m in fa.shifted_items(items, texts, places=False)] == ["a~year"]


def test_questions_shifted_off_the_seeds_are_withheld(lexical):
    """The place and year rules withhold them before the learned model sees them (so fitting on them changes little)."""
    from rag.evaluation import load_gold

    fa = _fitter()
    texts = [doc.text for doc in lexical._retriever.snapshot.documents.values()]
    assert fa.mentioned_places(texts) == SEED_PLACES and max(fa.mentioned_years(texts) & set(range(2000, 2100))) == 2025
    items = [i for i in load_gold(ROOT / "eval" / "gold.jsonl") if i.id in {"g001", "g002", "g004", "g006", "g010"}]
    made = fa.shifted_items(items, texts, places=True)
    assert {m.tags[0] for m in made} == {"shifted_year", "shifted_place"} and len(made) >= 8
    answerer = Answerer(lexical._retriever)
    for m in made:
        assert answerer.ask(m.question).abstained, m.question
