"""The answer-span model (rag/spans.py): question kinds, features on hand-made sentences, the decoding, the shipped
weights, and training."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from rag import spans

ROOT = Path(__file__).resolve().parents[1]
SQUAD = ROOT.parent / "shared" / "benchdata" / "uit-viquad-1.0" / "dev_ViQuAD.json"


@pytest.mark.parametrize("question, kind, wh", [
    ("Vì sao Gandhi được thả trước khi chiến tranh chấm dứt?", "why", "Vì sao"),
    ("Trường được thành lập vào năm nào?", "when", "năm nào"),
    ("Ai là người sáng lập Đảng?", "who", "Ai"),
    ("Vua Karl XII nắm quyền quốc gia nào?", "which", "nào"),
    ("XNT, NDN là viết tắt của gì?", "what", "gì"),
    ("Có bao nhiêu lao động được đào tạo?", "quantity", "bao nhiêu"),
    ("vi sao gandhi duoc tha", "why", "vi sao"),  # typed without diacritics
    ("Hà Nội rộng lớn.", "other", ""),
])
def test_the_kind_of_a_question_and_where_its_wh_word_is(question, kind, wh):
    found, start, end = spans.kind_of(question)
    words = spans.Words.of(question)
    assert found == kind
    assert " ".join(words.raw[start:end]) == wh


def test_words_keep_their_offsets_and_fold():
    s = "Năm 1956, Trường Đại học (ĐH) ra đời."
    words = spans.Words.of(s)
    assert [s[a:b] for a, b in words.spans] == words.raw
    assert words.raw[:3] == ["Năm", "1956", ","] and words.folded[3] == "truong"


def test_features_mark_the_question_words_and_the_words_beside_the_wh_word():
    vocabulary = {"la": 0, "cua": 1, "vao": 2}
    question = "Trường được thành lập vào năm nào?"
    sentence = "Trường Bách khoa được thành lập vào năm 1956, ở Hà Nội."
    f, words = spans.features(question, sentence, vocabulary)
    n = len(words)
    assert f.start.shape == (n, len(spans.START)) and f.end.shape == (n, len(spans.END))
    assert f.inside.shape == (n + 1, len(spans.INSIDE))
    col = spans.START.index
    at = words.raw.index("năm")  # "năm nào" is the wh-phrase: "năm" is not one of the question's words
    assert f.start[words.raw.index("thành"), col("in_q")] == 1 and f.start[at, col("in_q")] == 0
    assert f.start[at, col("prev_in_q")] == 1 and f.start[at + 1, col("digit")] == 1
    # the three question words before "năm nào" ("thành lập vào") stand just before "năm 1956"
    assert f.start[at, col("align")] == pytest.approx(1.0) and f.start[at, col("align_next")] == 1
    assert f.start[words.raw.index("Hà"), col("align")] == 0
    assert not f.allowed[words.raw.index(",")] and f.allowed[at]
    # vocabulary ids: "vào" is in it, "năm" is not (the out-of-vocabulary id), before the first word a pad id
    assert f.start_words[at, 0] == 2 and f.start_words[at, 1] == len(vocabulary)
    assert f.start_words[0, 0] == len(vocabulary) + 1


def test_inside_features_count_the_question_words_in_a_span():
    f, words = spans.features("Ai viết Truyện Kiều?", "Nguyễn Du viết Truyện Kiều.", {})
    weights = _zero_weights(0)
    weights["inside"][:, spans.INSIDE.index("q_share")] = -5.0  # spans of the question's words are unlikely
    scores = spans.span_scores(f, weights)
    i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
    assert words.raw[i:j + 1] == ["Nguyễn"] or words.raw[i:j + 1] == ["Nguyễn", "Du"] or words.raw[i:j + 1] == ["Du"]
    assert np.isneginf(scores[4, 0])  # an end before its start
    assert np.isneginf(scores[0, len(words) - 1])  # ends on the full stop


def _zero_weights(vocabulary: int) -> dict[str, np.ndarray]:
    K = len(spans.KINDS)
    return {"start": np.zeros((K, len(spans.START))), "end": np.zeros((K, len(spans.END))),
            "start_words": np.zeros((K, vocabulary + 2, 2)), "end_words": np.zeros((K, vocabulary + 2, 2)),
            "length": np.zeros((K, len(spans.LENGTHS))), "inside": np.zeros((K, len(spans.INSIDE)))}


def test_decoding_takes_the_span_that_overlaps_the_likely_ones_most():
    scores = np.full((6, 6), -np.inf)
    scores[0, 5] = 0.0  # the whole sentence
    scores[2, 2] = 0.1  # one word, slightly likelier than any other span
    scores[2, 3] = 0.0
    scores[1, 3] = 0.0
    # the argmax is (2, 2); the expected F1 prefers (2, 3), which overlaps all four
    assert spans.decode(scores) == (2, 3)
    peaked = np.full((6, 6), -np.inf)
    peaked[4, 5], peaked[0, 5] = 10.0, 0.0
    assert spans.decode(peaked) == (4, 5)


def test_the_shipped_model_matches_the_code():
    data = json.loads(spans.MODEL_PATH.read_text("utf-8"))
    K, V = len(spans.KINDS), len(data["vocabulary"]) + 2
    w = data["weights"]
    assert np.shape(w["start"]) == (K, len(spans.START)) and np.shape(w["end"]) == (K, len(spans.END))
    assert np.shape(w["start_words"]) == (K, V, 2) and np.shape(w["end_words"]) == (K, V, 2)
    assert np.shape(w["length"]) == (K, len(spans.LENGTHS)) and np.shape(w["inside"]) == (K, len(spans.INSIDE))
    assert data["questions"] > 2000


@pytest.mark.parametrize("question, sentence, answer", [
    ("Vì sao Gandhi được thả trước khi chiến tranh chấm dứt?",
     "Gandhi được thả trước khi chiến tranh chấm dứt vì sức khoẻ sa sút và một ca mổ cần thiết.",
     "sức khoẻ sa sút và một ca mổ cần thiết"),
    ("Ai là tác giả của Truyện Kiều?", "Tác giả của Truyện Kiều là Nguyễn Du, một đại thi hào dân tộc.", "Nguyễn Du"),
])
def test_the_shipped_model_finds_the_answer_of_unseen_sentences(question, sentence, answer):
    a, b = spans.SpanModel.load().best(question, sentence)
    got = sentence[a:b].strip(" ,.")
    assert answer in got and len(got.split()) <= len(answer.split()) + 1  # "vì sức khoẻ…" will do


def test_a_sentence_without_words_has_no_span():
    assert spans.SpanModel.load().best("Ai?", "…") is None


def _train_spans():
    sys.path.insert(0, str(ROOT / "eval"))
    import train_spans

    return train_spans


def test_training_is_deterministic_and_learns_what_the_labels_follow():
    ts = _train_spans()
    rng = np.random.default_rng(5)
    names = ["Nguyễn Văn An", "Trần Thị Bình", "Lê Minh", "Phạm Hùng", "Võ Thị Sáu"]
    items = []
    for n in range(40):
        who = names[n % len(names)]
        verb = ["chủ trì", "phát biểu tại", "khai mạc"][n % 3]
        filler = " ".join(rng.choice(["sáng nay", "tại tỉnh", "năm nay", "hội nghị", "các đại biểu"], 2))
        sentence = f"Ông {who} đã {verb} hội nghị {filler}."
        words = spans.Words.of(sentence)
        first = words.raw.index(who.split()[0])
        items.append({"question": f"Ai đã {verb} hội nghị?", "sentence": sentence,
                      "gold": [(first, first + len(who.split()) - 1)], "answers": [who], "group": n % 4})
    vocabulary = ts.vocabulary_of(items)
    w1, used = ts.fit(items, vocabulary, iterations=40)
    w2, _ = ts.fit(items, vocabulary, iterations=40)
    assert used == 40 and all(np.array_equal(w1[k], w2[k]) for k in w1)
    model = spans.SpanModel(w1, vocabulary)
    s = "Bà Hoàng Thị Lan đã chủ trì hội nghị sáng nay."
    a, b = model.best("Ai đã chủ trì hội nghị?", s)
    assert s[a:b] == "Hoàng Thị Lan"
    assert ts.folds([3, 1, 3, 2], 2) == [0, 0, 0, 1]  # groups in order, dealt round the folds


@pytest.mark.slow
@pytest.mark.skipif(not SQUAD.is_file(), reason="UIT-ViQuAD dev is not in ../shared")
def test_retraining_reproduces_the_shipped_model():
    ts = _train_spans()
    model = ts.model_of(ts.examples(SQUAD))
    shipped = json.loads(spans.MODEL_PATH.read_text("utf-8"))
    assert model.words == shipped["vocabulary"]
    for name, value in model.weights.items():
        assert np.allclose(value, np.array(shipped["weights"][name]), atol=2e-3), name
