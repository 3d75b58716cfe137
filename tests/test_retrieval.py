"""Retrieval over the seeds (hashing embedder): the canonical questions, query analysis, filters."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag import gazetteer
from rag.api import RAG
from rag.errors import UsageError
from rag.query import analyse, expand

SEEDS = Path(__file__).resolve().parents[1] / "seeds"

HUE = "004_1400c37e89a2c6fc"
NGHE_AN = "003_9347b5653608e64b"
AN_GIANG = "002_e28979bfba23dcdb"
HOA_BINH = "000_524045bc19e57ccc"


@pytest.fixture(scope="module")
def rag(seeds_index) -> RAG:
    return RAG.open(seeds_index)


def test_index_is_the_hashing_dense_one(rag):
    assert rag.mode == "dense"
    assert rag.model == "hashing"
    assert len(rag.documents) == 5 and rag.chunk_count > 10


# ---------------------------------------------------------------- canonical questions


HUE_QUESTIONS = ["Tỷ lệ hộ nghèo Huế 2023?", "ty le ho ngheo hue 2023", "hộ nghèo TT-Huế năm 2023"]


@pytest.mark.parametrize("question", HUE_QUESTIONS)
def test_poverty_rate_hue_2023_top_document(rag, question):
    hits = rag.search(question, 5)
    assert hits[0].chunk.doc_id == HUE, [(h.chunk.doc_id, h.score) for h in hits]
    assert any("Tỷ lệ hộ nghèo 2,27%" in h.chunk.text for h in hits[:3])


@pytest.mark.parametrize("question", HUE_QUESTIONS)
def test_poverty_rate_hue_2023_top_chunk_holds_the_figure(rag, question):
    hits = rag.search(question, 5)
    assert hits[0].chunk.doc_id == HUE
    assert "Tỷ lệ hộ nghèo 2,27%" in hits[0].chunk.text, [h.chunk.id for h in hits]


def test_labour_export_nghe_an_2023_top_document(rag):
    hits = rag.search("XKLĐ Nghệ An 2023", 5)
    assert hits[0].chunk.doc_id == NGHE_AN, [(h.chunk.doc_id, h.score) for h in hits]
    assert any("24 ngàn" in h.chunk.text for h in hits)


@pytest.mark.parametrize("question", ["XKLĐ Nghệ An 2023", "xkld nghe an 2023"])
def test_labour_export_nghe_an_2023_top_chunk_holds_the_figure(rag, question):
    hits = rag.search(question, 5)
    assert hits[0].chunk.doc_id == NGHE_AN
    assert "24 ngàn" in hits[0].chunk.text, [h.chunk.id for h in hits]


PLACE_BUG = pytest.mark.xfail(
    reason="KNOWN: Nghệ An's document mentions vocational training only in passing, so the other provinces' "
    "training passages outscore it even after the place penalty (retriever.RetrievalConfig.place_penalty)",
    strict=True,
)


@pytest.mark.parametrize(
    ("question", "doc_id"),
    [
        ("giải quyết việc làm Nghệ An 2023", NGHE_AN),
        ("tỷ lệ hộ nghèo Hòa Bình 2023", HOA_BINH),
        ("Quỹ Đền ơn đáp nghĩa An Giang", AN_GIANG),
        ("xuất khẩu lao động Nghệ An 2023", NGHE_AN),  # the document says "đi làm việc ở nước ngoài"
        ("xuất khẩu lao động nghe an", NGHE_AN),
        pytest.param("đào tạo nghề Nghệ An", NGHE_AN, marks=PLACE_BUG),
    ],
)
def test_a_named_province_with_a_document_on_the_topic_wins(rag, question, doc_id):
    hits = rag.search(question, 5)
    assert hits[0].chunk.doc_id == doc_id, [h.chunk.doc_id for h in hits]


@pytest.mark.parametrize(
    ("question", "doc_id", "needle"),
    [
        ("Phân bổ bao nhiêu tiền thực hiện Pháp lệnh ưu đãi người có công năm 2024?", HOA_BINH, "13,5 tỷ đồng"),
        ("Vụ nổ lò hơi tại Đồng Nai", HOA_BINH, "Vụ nổ lò hơi tại Đồng Nai"),
        ("Đào tạo nghề cho bao nhiêu người An Giang", AN_GIANG, "74.909"),
    ],
)
def test_other_questions_find_their_passage(rag, question, doc_id, needle):
    hits = rag.search(question, 5)
    assert hits[0].chunk.doc_id == doc_id
    assert any(needle in h.chunk.text for h in hits[:3])


def test_hits_are_well_formed(rag):
    hits = rag.search("Tỷ lệ hộ nghèo Huế 2023?", 10)
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    ids = [h.chunk.id for h in hits]
    assert len(set(ids)) == len(ids)
    for h in hits:
        doc = rag.documents[h.chunk.doc_id]
        assert h.chunk.text == doc.text[h.chunk.start : h.chunk.end]
        assert h.source == doc.source
        signals = dict(h.signals)
        assert "lexical" in signals and "fused" in signals


def test_search_is_deterministic(rag):
    first = [(h.chunk.id, h.score) for h in rag.search("xuất khẩu lao động 2023", 10)]
    again = [(h.chunk.id, h.score) for h in RAG.open(rag.index_dir).search("xuất khẩu lao động 2023", 10)]
    assert first == again


@pytest.mark.parametrize("k", [1, 3, 7, 1000])
def test_search_returns_at_most_k(rag, k):
    hits = rag.search("hộ nghèo", k)
    assert 1 <= len(hits) <= min(k, rag.chunk_count)
    assert rag.search("hộ nghèo", 1)[0].chunk.id == rag.search("hộ nghèo", k)[0].chunk.id


@pytest.mark.parametrize("k", [0, -1, 1001])
def test_bad_k_is_a_usage_error(rag, k):
    with pytest.raises(UsageError):
        rag.search("hộ nghèo", k)


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query_is_a_usage_error(rag, query):
    with pytest.raises(UsageError):
        rag.search(query)


def test_non_string_query_is_a_usage_error(rag):
    with pytest.raises(UsageError):
        rag.search(None)  # type: ignore[arg-type]


def test_query_with_nothing_in_common_returns_dense_hits_only(rag):
    hits = rag.search("zzzz qqqq xxxx", 5)
    assert len(hits) == 5  # a dense index always has nearest neighbours…
    assert all(dict(h.signals)["lexical"] == 0.0 for h in hits)  # …but no word of it is in any document


def test_query_with_nothing_in_common_finds_nothing_in_a_lexical_index(tmp_path):
    built, _ = RAG.build([SEEDS], tmp_path / "lexical", model="none")
    assert built.search("zzzz qqqq xxxx", 5) == []


# ---------------------------------------------------------------- query analysis


@pytest.mark.parametrize(
    ("question", "years", "place", "expects", "folded"),
    [
        ("Tỷ lệ hộ nghèo Huế 2023?", (2023,), "Thừa Thiên Huế", "percent", False),
        ("ty le ho ngheo hue 2023", (2023,), "Thừa Thiên Huế", "percent", True),
        ("hộ nghèo TT-Huế năm 2023", (2023,), "Thừa Thiên Huế", None, False),
        ("XKLĐ Nghệ An 2023", (2023,), "Nghệ An", "count", False),
        ("xkld nghe an 2023", (2023,), "Nghệ An", "count", True),
        ("Phân bổ bao nhiêu tiền cho người có công năm 2024?", (2024,), None, "money", False),
        ("Ai là Phó Chủ tịch UBND tỉnh Nghệ An?", (), "Nghệ An", "person", False),
        ("Hội nghị tổng kết diễn ra ngày nào?", (), None, "date", False),
        ("Vụ nổ lò hơi xảy ra ở đâu?", (), None, "place", False),
        ("Số hộ nghèo An Giang năm 2022 và 2021", (2022, 2021), "An Giang", "count", False),
        ("poverty rate Hue 2023", (2023,), "Thừa Thiên Huế", "percent", True),
    ],
)
def test_query_analysis(question, years, place, expects, folded):
    q = analyse(question)
    assert q.years == years
    assert q.place == place
    assert q.expects == expects
    assert q.folded is folded
    assert q.text == q.text.strip()


def test_query_analysis_normalises_and_expands():
    q = analyse("  XKLĐ   Nghệ An  2023 ")
    assert q.text == "XKLĐ Nghệ An 2023"
    assert "xuất khẩu lao động" in q.normalized
    assert analyse("hộ nghèo TT-Huế").normalized.endswith("Thừa Thiên Huế")
    assert "Thừa ủy quyền" in analyse("Thừa uỷ quyền là gì").text
    assert "xuất khẩu lao động" in analyse("xkld nghe an").normalized
    # an expansion already in the question is not repeated
    assert expand("xuất khẩu lao động XKLĐ").count("xuất khẩu lao động") == 1


def test_query_analysis_of_decomposed_input():
    import unicodedata

    q = analyse(unicodedata.normalize("NFD", "Tỷ lệ hộ nghèo Huế 2023?"))
    assert q.text == "Tỷ lệ hộ nghèo Huế 2023?"
    assert q.place == "Thừa Thiên Huế"


def test_dates_are_not_years():
    assert analyse("Hội nghị ngày 31/7/2023 ở An Giang").years == ()
    assert analyse("giải quyết việc làm cho 17.034 người").years == ()


@pytest.mark.parametrize("question", ["", "   ", "\u00a0"])
def test_empty_question_is_rejected_by_analyse(question):
    with pytest.raises(ValueError):
        analyse(question)


# ---------------------------------------------------------------- filters


def _doc_or_chunk_about(rag, hit, province: str) -> bool:
    wanted = gazetteer.lookup(province).name
    doc = rag.documents[hit.chunk.doc_id]
    named = {m.place.name for m in gazetteer.find_places(hit.chunk.text, folded=False)}
    return doc.meta.province == wanted or wanted in named


@pytest.mark.parametrize("province", ["Nghệ An", "nghe an", "Huế", "TT-Huế", "An Giang"])
def test_province_filter(rag, province):
    hits = rag.search("tỷ lệ hộ nghèo", 20, province=province)
    assert hits
    for h in hits:
        assert _doc_or_chunk_about(rag, h, province), h.chunk.id


def test_province_filter_can_exclude_everything(rag):
    assert rag.search("tỷ lệ hộ nghèo", 10, province="Cà Mau") == []


def test_province_filter_keeps_related_news_that_name_the_province(rag):
    hits = rag.search("vụ nổ lò hơi", 5, province="Đồng Nai")
    assert hits and hits[0].chunk.doc_id == HOA_BINH and hits[0].chunk.section == "related"


@pytest.mark.parametrize("year", [2019, 2020, 2023, 2024])
def test_year_filter(rag, year):
    hits = rag.search("hộ nghèo", 20, year=year)
    assert hits
    for h in hits:
        assert str(year) in h.chunk.text or year in rag.documents[h.chunk.doc_id].meta.years


def test_year_filter_can_exclude_everything(rag):
    assert rag.search("hộ nghèo", 10, year=1995) == []


def test_year_2019_prefers_the_2019_report(rag):
    hits = rag.search("tỷ lệ hộ nghèo giảm", 5, year=2019)
    assert hits[0].chunk.doc_id == "001_5b329be121ff4886"


def test_province_and_year_together(rag):
    hits = rag.search("hộ nghèo", 10, province="Thừa Thiên Huế", year=2023)
    assert hits and {h.chunk.doc_id for h in hits} == {HUE}


def test_the_best_sentence_cosine_is_a_reranking_feature(rag):
    """Each candidate gets weight × its best question–sentence cosine, min-max scaled over the candidates;
    no weight, or an index without sentence vectors, adds nothing."""
    from dataclasses import replace

    import numpy as np

    from rag.retriever import Retriever

    base = rag._retriever
    snap = base.snapshot
    assert snap.sentences is not None
    retriever = Retriever(snap, base.embedder, replace(base.config, sentence_dense=0.7, sentence_dense_unaccented=0.7))
    query = analyse("Tỷ lệ hộ nghèo Huế 2023")
    candidates = list(range(min(12, len(snap.chunks))))
    part = retriever._sentence_part(query, candidates)
    qvec = retriever._query_vector(retriever.dense_text(query))
    best = {i: max(float(v @ qvec) for v in snap.sentence_block(i).astype(np.float32))
            for i in candidates}
    top, low = max(best, key=best.get), min(best, key=best.get)
    assert part[top] == pytest.approx(0.7) and part[low] == pytest.approx(0.0)
    assert all(0.0 <= v <= 0.7 for v in part.values()) and set(part) == set(candidates)
    assert Retriever(snap, base.embedder, replace(base.config, sentence_dense=0.0))._sentence_part(query, candidates) == {}

    class NoSentences:  # the same index without sentence vectors (one built with sentences=False, a Milvus one)
        sentences = sentence_rows = None

        def sentence_block(self, i):
            return None

        def __getattr__(self, name):
            return getattr(snap, name)

    assert Retriever(NoSentences(), base.embedder, retriever.config)._sentence_part(query, candidates) == {}
