"""Question understanding: what `analyse` reads from a question for the answerer (unit, measure, verb,
target, title and organ, time words, numbers, English, comparison), the defaults of a Query built by
hand, and eval/same_answers.py's comparison of saved answers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rag import compare
from rag.query import analyse, organ_of
from rag.types import Comparison, Query

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))
import same_answers  # noqa: E402


def test_the_folded_question_and_its_words():
    q = analyse("Tỷ lệ hộ nghèo của Huế năm 2023 còn 9,2%?")
    assert q.folded_text == "ty le ho ngheo cua hue nam 2023 con 9,2%?"
    assert q.folded_words[:4] == ("ty", "le", "ho", "ngheo")
    assert q.numbers == {"9,2"}  # the year is no number the question states
    assert q.time_words == {"nam", "2023"}
    assert analyse("hộ nghèo cuối năm 2022").time_words == {"cuoi", "nam", "2022"}


@pytest.mark.parametrize(
    ("question", "unit", "measure", "verb"),
    [
        ("Năm 2023 tạo được bao nhiêu vị trí việc làm?", "vi tri viec lam", (), ""),
        ("Tỷ lệ hộ nghèo Huế 2023 giảm bao nhiêu?", "", ("ho", "ngheo"), "giam"),
        ("Tỷ lệ hộ nghèo Huế còn bao nhiêu?", "", ("ho", "ngheo"), "con"),
        ("Nghệ An đưa bao nhiêu người đi làm việc ở nước ngoài?", "nguoi di lam viec", (), ""),
        ("ty le lao dong qua dao tao Nghe An 2023", "", ("lao", "dong", "qua", "dao"), ""),
    ],
)
def test_unit_measure_and_verb(question, unit, measure, verb):
    q = analyse(question)
    assert (q.unit, q.measure, q.verb) == (unit, measure, verb)


def test_the_measure_leaves_out_the_place_named_in_it():
    assert analyse("Tỷ lệ hộ nghèo Hòa Bình").measure == ("ho", "ngheo")
    assert analyse("ty le ho ngheo hoa binh").measure == ("ho", "ngheo")


def test_target_or_result():
    assert analyse("Mục tiêu giảm tỷ lệ hộ nghèo năm 2024 là bao nhiêu?").wants_target
    assert analyse("ke hoach giai quyet viec lam 2024").wants_target  # folded words too
    assert not analyse("Tỷ lệ hộ nghèo năm 2023 là bao nhiêu?").wants_target


def test_title_organ_and_name():
    q = analyse("Ai là Chủ tịch HĐND tỉnh Nghệ An?")
    assert (q.title, q.organ, q.wants_name) == ("chu tich", "hdnd", True)
    q = analyse("Giám đốc Sở tên là gì?")
    assert (q.title, q.organ, q.wants_name) == ("giam doc", None, True)
    q = analyse("Tên của công ty là gì?")
    assert (q.title, q.wants_name) == ("", True)
    assert organ_of("pho chu tich uy ban nhan dan tinh") == "ubnd"
    assert organ_of("pho chu tich") is None


def test_a_document_date_and_english():
    assert analyse("Quyết định được ban hành ngày nào?").asks_document
    assert not analyse("Hội nghị diễn ra ngày nào?").asks_document
    assert analyse("What was the poverty rate of Hue in 2023?").english
    assert not analyse("Tỷ lệ hộ nghèo Huế 2023 là bao nhiêu?").english


def test_a_comparison_of_places():
    c = analyse("Năm 2023, tỉnh nào giảm tỷ lệ hộ nghèo nhiều hơn: Hòa Bình hay Thừa Thiên Huế?").comparison
    # (the adjective of a two-word comparative stays in the base: only "nhiều hơn" and "hơn" are frame words)
    assert c == Comparison(more=True, word="nhiều hơn", which=True, base="Năm 2023, giảm tỷ lệ hộ nghèo nhiều")
    c = analyse("So sánh số lao động qua đào tạo ít nhất giữa Nghệ An và Hòa Bình").comparison
    assert (c.more, c.word, c.which) == (False, "ít nhất", False)
    assert analyse("Hòa Bình hay Nghệ An có nhiều hộ nghèo hơn?").comparison.which  # "… hay …" asks the place
    assert analyse("Tỷ lệ hộ nghèo cao hơn ở Nghệ An?").comparison is None  # one place: nothing to compare
    assert analyse("Hòa Bình và Nghệ An có bao nhiêu hộ nghèo?").comparison is None  # no comparative


def test_a_query_built_by_hand_keeps_the_old_defaults():
    q = Query("Tỷ lệ hộ nghèo?", "Tỷ lệ hộ nghèo?", False)
    assert (q.folded_text, q.folded_words, q.numbers, q.english, q.time_words, q.unit, q.measure, q.verb) == \
        ("", (), frozenset(), False, frozenset(), "", (), "")
    assert not (q.wants_target or q.wants_name or q.asks_document) and q.title == "" and q.organ is None
    assert not compare.is_comparison(q)
    with pytest.raises(ValueError, match="not a question comparing places"):
        compare.answer(None, q, 6, None, {})


def test_same_answers_reports_every_difference_and_tolerates_rounding():
    record = {"answer": "2,27%", "abstained": False, "answer_text": "… [1].", "citations": [], "confidence": 0.5}
    before = {"seeds": {"q1": record, "q2": record}}
    assert same_answers.differences(before, {"seeds": {"q1": record | {"confidence": 0.5 + 1e-12}}}) == []
    diff = same_answers.differences(before, {"seeds": {"q1": record | {"confidence": 0.5 + 1e-6},
                                                       "q2": record | {"answer": None}, "q3": record}})
    assert [line.split(":")[0] for line in diff] == ["seeds q1", "seeds q2", "seeds q3"]
    assert "confidence differ" in diff[0] and "answer differ" in diff[1] and "not in the saved" in diff[2]


@pytest.mark.parametrize("question", ["Vì sao tỷ lệ hộ nghèo Hòa Bình giảm?", "vi sao ty le ho ngheo giam",
                                      "Số lao động đi làm việc ở nước ngoài thay đổi như thế nào?"])
def test_a_question_asking_why_or_how_expects_no_typed_value(question):
    assert analyse(question).expects is None  # the span model answers it, not a percentage or a count


@pytest.mark.parametrize("question, expects", [
    ("XKLĐ Nghệ An 2023", "count"),  # no wh-word: the words of a count
    ("so sinh vien trinh do cao dang an giang dao tao nghe tu dau nhiem ky", "count"),  # "từ đầu", not "đâu"
    ("Khó khăn lớn nhất của ngành lao động Quảng Ngãi là gì?", None),  # "là gì" asks for what, not how many
])
def test_count_words_ask_for_a_count_only_without_a_wh_word(question, expects):
    assert analyse(question).expects == expects
