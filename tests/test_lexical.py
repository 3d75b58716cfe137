"""BM25 over syllable, bigram and folded fields (bm25s)."""

from __future__ import annotations

import numpy as np
import pytest

from rag.lexical import FIELDS, LexicalConfig, LexicalIndex, tokenize

CORPUS = [
    # chunks 0 and 1 differ only by the province (and the figures), at about the same length
    "Tỷ lệ hộ nghèo tỉnh Thừa Thiên Huế năm 2023 là 2,27%, giảm 1,29%.",  # 0 Huế
    "Tỷ lệ hộ nghèo tỉnh Nghệ An năm 2023 là 3,5%, giảm 1,5%.",  # 1 Nghệ An
    "Xuất khẩu lao động Nghệ An năm 2023 đạt khoảng 24 ngàn người.",  # 2
    "Hoa huệ nở trắng vườn nhà, người dân hái hoa huệ bán ở chợ.",  # 3 huệ (folds to "hue")
    "Vụ nổ lò hơi tại Đồng Nai: khẩn trương cấp cứu người bị nạn.",  # 4
    "Phân bổ 13,5 tỷ đồng thực hiện Pháp lệnh ưu đãi người có công.",  # 5
    "",  # 6 an empty chunk must not break the index
]
HUE, NGHE_AN, XKLD, FLOWER, BOILER, MONEY, EMPTY = range(7)


@pytest.fixture(scope="module")
def index() -> LexicalIndex:
    return LexicalIndex.build(CORPUS)


def field_scores(index: LexicalIndex, query: str, field: str) -> np.ndarray:
    bm25 = index.fields[field]
    ids = bm25.get_tokens_ids(tokenize(query, query=True)[field])
    return bm25.get_scores_from_ids(ids) if ids else np.zeros(index.size, np.float32)


def test_tokenize_fields():
    toks = tokenize("Hộ nghèo Huế 2,27%")
    assert set(toks) == set(FIELDS)
    assert toks["syl"] == ["hộ", "nghèo", "huế", "2,27%"]
    assert toks["bi"] == ["hộ_nghèo", "nghèo_huế", "huế_2,27%"]
    assert toks["fsyl"] == ["ho", "ngheo", "hue", "2,27%"]
    assert toks["fbi"] == ["ho_ngheo", "ngheo_hue", "hue_2,27%"]


def test_build_sizes(index):
    assert index.size == len(CORPUS)
    assert set(index.fields) == set(FIELDS)


def test_unaccented_query_finds_the_hue_chunk(index):
    scores = index.scores("ty le ho ngheo hue")
    assert int(np.argmax(scores)) == HUE
    assert scores[HUE] > scores[NGHE_AN] > 0
    assert scores[BOILER] == 0 and scores[EMPTY] == 0


def test_accented_query_finds_the_hue_chunk(index):
    scores = index.scores("Tỷ lệ hộ nghèo Huế")
    assert int(np.argmax(scores)) == HUE
    assert scores[HUE] > scores[NGHE_AN] > 0


def test_accented_query_tells_hue_from_hoa_hue(index):
    # "Huế" (the city) and "huệ" (the flower) fold to the same "hue": only the accented fields tell them apart
    city, flower = index.scores("Huế"), index.scores("huệ")
    assert city[HUE] > city[FLOWER]
    assert flower[FLOWER] > flower[HUE]
    folded = index.scores("hue")
    assert folded[HUE] > 0 and folded[FLOWER] > 0


@pytest.mark.parametrize("query", ["Tỷ lệ hộ nghèo Huế", "xuất khẩu lao động Nghệ An", "huệ"])
def test_accented_query_is_the_weighted_sum_of_the_accented_fields(index, query):
    weights = index.config.accented
    assert {"syl", "bi"} <= {f for f, w in weights.items() if w}
    want = sum(w * field_scores(index, query, f) for f, w in weights.items())
    np.testing.assert_allclose(index.scores(query), want, rtol=1e-5, atol=1e-6)
    # auto-detection agrees with saying it explicitly
    np.testing.assert_allclose(index.scores(query), index.scores(query, folded=False), rtol=1e-6)


@pytest.mark.parametrize("query", ["ty le ho ngheo hue", "xkld nghe an"])
def test_unaccented_query_is_the_weighted_sum_of_the_folded_fields(index, query):
    weights = index.config.unaccented
    assert set(weights) <= {"fsyl", "fbi"}
    want = sum(w * field_scores(index, query, f) for f, w in weights.items())
    np.testing.assert_allclose(index.scores(query), want, rtol=1e-5, atol=1e-6)


def test_forcing_folded_scores_an_accented_query_on_the_folded_fields(index):
    forced = index.scores("Huế", folded=True)
    np.testing.assert_allclose(forced, index.scores("hue"), rtol=1e-6)
    assert forced[FLOWER] > 0


def test_bigrams_reward_word_order(index):
    scores = index.scores("hộ nghèo")
    assert scores[HUE] > 0 and scores[NGHE_AN] > 0
    # "nghèo hộ" has the same syllables but not the bigram
    assert index.scores("nghèo hộ")[HUE] < scores[HUE]


def test_numbers_are_tokens(index):
    scores = index.scores("2,27%")
    assert int(np.argmax(scores)) == HUE and scores[NGHE_AN] == 0
    assert int(np.argmax(index.scores("13,5 tỷ đồng"))) == MONEY


@pytest.mark.parametrize("query", ["", "   ", "?!.,", "∅", "zzzz qqqq"])
def test_empty_or_unknown_query_scores_zero(index, query):
    scores = index.scores(query)
    assert scores.shape == (index.size,)
    assert not scores.any()


def test_question_words_are_dropped_from_queries_only():
    q = tokenize("bao nhiêu hộ nghèo", query=True)
    assert "bao" not in q["syl"] and "nhiêu" not in q["syl"]
    assert "hộ" in q["syl"] and "nghèo" in q["syl"]
    assert "bao" in tokenize("bao nhiêu hộ nghèo")["syl"]
    # a question made only of question words keeps them rather than becoming empty
    assert tokenize("bao nhiêu", query=True)["syl"]


def test_scores_are_non_negative_and_float32(index):
    scores = index.scores("Nghệ An năm 2023")
    assert scores.dtype == np.float32 and (scores >= 0).all()


@pytest.mark.parametrize("mmap", [False, True])
def test_save_load_round_trip(tmp_path, index, mmap):
    index.save(tmp_path / "lex")
    loaded = LexicalIndex.load(tmp_path / "lex", mmap=mmap)
    assert loaded.size == index.size
    assert loaded.config == index.config
    for query in ("ty le ho ngheo hue", "Tỷ lệ hộ nghèo Huế", "huệ", "xuất khẩu lao động Nghệ An 2023", "", "2,27%"):
        np.testing.assert_array_equal(loaded.scores(query), index.scores(query))


def test_custom_config_round_trips(tmp_path):
    config = LexicalConfig(k1=1.5, b=0.5, accented={"syl": 2.0, "bi": 0.1}, unaccented={"fsyl": 1.0})
    index = LexicalIndex.build(CORPUS, config)
    index.save(tmp_path / "lex")
    loaded = LexicalIndex.load(tmp_path / "lex")
    assert loaded.config == config
    np.testing.assert_array_equal(loaded.scores("hộ nghèo Huế"), index.scores("hộ nghèo Huế"))


def test_idf_is_higher_for_rarer_tokens(index):
    idf = index.idf(["nghèo", "huế", "không-có"], "syl")
    assert idf["huế"] > idf["nghèo"] > 0
    assert idf["không-có"] == 0.0


def test_single_document_corpus():
    index = LexicalIndex.build(["Tỷ lệ hộ nghèo 2,27%"])
    assert index.size == 1
    assert index.scores("hộ nghèo").shape == (1,)
    assert index.scores("hộ nghèo")[0] > 0
