"""Chunking: exact slices, sections respected, numbers never cut from their units, footnotes linked."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import pytest

from rag.chunker import ChunkConfig, chunk_document, make_header, split_sentences
from rag.ingest import load_document
from rag.types import Document, DocMeta, Section

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
PREFIXES = ("000", "001", "002", "003", "004")
CONFIGS = [ChunkConfig(), ChunkConfig(400, 80), ChunkConfig(200, 40), ChunkConfig(120, 0)]
PHRASES = ("2,27%", "17.034 người", "13,5 tỷ đồng", "74.909 người", "19.595 người", "1,29%", "288 tỷ đồng")


@lru_cache(maxsize=None)
def seed(prefix: str) -> Document:
    (path,) = SEEDS.glob(f"{prefix}_*.txt")
    return load_document(path)


@lru_cache(maxsize=None)
def chunks_of(prefix: str, config: ChunkConfig = ChunkConfig()):
    return tuple(chunk_document(seed(prefix), config))


def doc_from(text: str, **meta) -> Document:
    return Document("t", "t.txt", text, "0" * 64, DocMeta(**meta), (Section(0, len(text)),))


def cut_occurrences(text: str, chunks, phrase: str) -> list[int]:
    """Offsets of occurrences of `phrase` that no single chunk holds whole."""
    return [
        m.start()
        for m in re.finditer(re.escape(phrase), text)
        if not any(c.start <= m.start() and m.end() <= c.end for c in chunks)
    ]


# ---------------------------------------------------------------- invariants on the seeds


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.size}-{c.overlap}")
@pytest.mark.parametrize("prefix", PREFIXES)
def test_chunk_text_is_the_documents_slice(prefix, config):
    doc = seed(prefix)
    chunks = chunks_of(prefix, config)
    assert chunks
    for c in chunks:
        assert c.text == doc.text[c.start : c.end]
        assert c.text and c.text == c.text.strip()
        assert c.id == f"{doc.id}:{c.start}-{c.end}"
        assert c.doc_id == doc.id
    assert len({c.id for c in chunks}) == len(chunks)
    starts = [c.start for c in chunks]
    assert starts == sorted(starts)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.size}-{c.overlap}")
@pytest.mark.parametrize("prefix", PREFIXES)
def test_chunks_never_cross_sections_and_cover_them(prefix, config):
    doc = seed(prefix)
    chunks = chunks_of(prefix, config)
    for c in chunks:
        (sec,) = [s for s in doc.sections if s.start <= c.start and c.end <= s.end]
        assert c.section == ("footnote" if sec.kind == "footnotes" else sec.kind)
    # nothing of a section is lost: every non-space character lies in some chunk
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    missing = [i for s in doc.sections for i in range(s.start, s.end) if not doc.text[i].isspace() and i not in covered]
    assert not missing, doc.text[missing[0] : missing[0] + 40]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.size}-{c.overlap}")
@pytest.mark.parametrize("prefix", PREFIXES)
def test_numbers_and_units_are_never_split(prefix, config):
    doc = seed(prefix)
    chunks = chunks_of(prefix, config)
    for phrase in PHRASES:
        assert cut_occurrences(doc.text, chunks, phrase) == [], phrase


def test_multi_word_units_in_long_seed_sentences_are_not_split():
    config = ChunkConfig(120, 0)
    cut = {
        (prefix, phrase): offsets
        for prefix in PREFIXES
        for phrase in ("24 ngàn người", "45 ngàn người", "918 lao động", "13,5 tỷ đồng", "288 tỷ đồng")
        if (offsets := cut_occurrences(seed(prefix).text, chunks_of(prefix, config), phrase))
    }
    assert not cut, cut


def test_the_key_figures_exist_in_the_seeds():
    assert "2,27%" in seed("004").text and "17.034 người" in seed("004").text
    assert "13,5 tỷ đồng" in seed("000").text


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.size}-{c.overlap}")
@pytest.mark.parametrize("prefix", PREFIXES)
def test_chunk_size_is_respected_unless_one_sentence_is_longer(prefix, config):
    doc = seed(prefix)
    sentences = [sp for s in doc.sections if s.kind != "footnotes" for sp in split_sentences(doc.text, s.start, s.end)]
    for c in chunks_of(prefix, config):
        if len(c.text) <= config.size:
            continue
        if c.section == "footnote":  # a footnote is one line, kept whole
            continue
        inner = [s for s, _ in sentences if c.start < s < c.end]
        assert not inner, f"{c.id} ({len(c.text)} > {config.size}) holds several sentences"


@pytest.mark.parametrize("prefix", PREFIXES)
def test_overlap_is_bounded(prefix):
    config = ChunkConfig(300, 60)
    chunks = [c for c in chunks_of(prefix, config) if c.section == "body"]
    for a, b in zip(chunks, chunks[1:]):
        if b.start < a.end:  # overlapping neighbours repeat whole trailing sentences only
            assert a.end - b.start <= config.overlap
            assert b.text.startswith(doc_text := seed(prefix).text[b.start : a.end]) and doc_text.strip()


def test_zero_overlap_means_disjoint_chunks():
    for prefix in PREFIXES:
        chunks = chunks_of(prefix, ChunkConfig(200, 0))
        for a, b in zip(chunks, chunks[1:]):
            assert a.end <= b.start


def test_default_chunks_fit_the_default_size():
    for prefix in PREFIXES:
        for c in chunks_of(prefix):
            if c.section != "footnote":
                assert len(c.text) <= ChunkConfig().size


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(("size", "overlap"), [(49, 0), (0, 0), (-5, 0), (100, -1), (100, 100), (100, 150), (50, 50)])
def test_chunk_config_rejects_bad_values(size, overlap):
    with pytest.raises(ValueError):
        ChunkConfig(size=size, overlap=overlap)


@pytest.mark.parametrize(("size", "overlap"), [(50, 0), (50, 49), (700, 120), (10_000, 0)])
def test_chunk_config_accepts_good_values(size, overlap):
    assert ChunkConfig(size=size, overlap=overlap).size == size


# ---------------------------------------------------------------- long sentences


def _long_unpunctuated_sentence() -> str:
    filler = "hỗ trợ kinh phí cho các đối tượng chính sách trên địa bàn tỉnh với tổng số tiền là".split()
    phrases = ["13,5 tỷ đồng", "17.034 người", "2,27%", "24 ngàn người", "45 ngàn lao động", "6.137 lượt lao động", "288 tỷ đồng"]
    parts = []
    for j in range(60):
        parts.append(" ".join(filler[: (j * 7) % len(filler) + 1]))
        parts.append(phrases[j % len(phrases)])
    return " ".join(parts)


LONG = _long_unpunctuated_sentence()
NUMBER_THEN_UNIT = re.compile(r"\d[\d.,]*%?\s+(?:tỷ|ngàn|người|lượt|lao)\b")


@pytest.mark.parametrize("size", [50, 60, 80, 100, 150, 200, 333, 700])
def test_long_sentence_is_split_and_number_keeps_its_first_unit_word(size):
    assert "." not in LONG.replace("17.034", "").replace("6.137", "") and len(LONG) > 3000
    doc = doc_from(LONG)
    chunks = chunk_document(doc, ChunkConfig(size=size, overlap=min(20, size - 1)))
    assert len(chunks) >= len(LONG) // size
    for c in chunks:
        assert c.text == LONG[c.start : c.end]
        assert len(c.text) <= size
    for m in NUMBER_THEN_UNIT.finditer(LONG):
        assert any(c.start <= m.start() and m.end() <= c.end for c in chunks), m.group(0)
    for phrase in ("2,27%", "17.034 người"):
        assert cut_occurrences(LONG, chunks, phrase) == []


def test_long_sentence_never_cuts_inside_a_multi_word_unit():
    doc = doc_from(LONG)
    cut = {}
    for size in (50, 60, 80, 100, 150, 200, 333, 700):
        chunks = chunk_document(doc, ChunkConfig(size=size, overlap=min(20, size - 1)))
        for phrase in ("13,5 tỷ đồng", "24 ngàn người", "288 tỷ đồng", "45 ngàn lao động", "6.137 lượt lao động"):
            if offsets := cut_occurrences(LONG, chunks, phrase):
                cut.setdefault(size, []).append((phrase, offsets))
    assert not cut, cut


def test_long_word_without_spaces_is_kept_whole():
    blob = "x" * 500
    doc = doc_from(f"Mở đầu {blob} kết thúc")
    chunks = chunk_document(doc, ChunkConfig(size=100, overlap=0))
    assert any(blob in c.text for c in chunks)
    for c in chunks:
        assert c.text == doc.text[c.start : c.end]


def test_sentence_spans_are_exact():
    text = "Tỷ lệ hộ nghèo 2,27%. Giảm 1,29% so với năm 2022!\nDòng hai có TP. Huế và 17.034 người."
    spans = split_sentences(text)
    assert spans
    for s, e in spans:
        assert text[s:e] == text[s:e].strip() and text[s:e]
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    assert "".join(text[s:e] for s, e in spans).replace(" ", "") == text.replace("\n", "").replace(" ", "")


# ---------------------------------------------------------------- footnotes and header


def test_footnote_links_on_seed_002():
    doc = seed("002")
    chunks = chunks_of("002")
    body_with_1 = [c for c in chunks if c.section == "body" and "[1]" in c.text]
    assert body_with_1
    for c in body_with_1:
        assert "74.909" in c.extra
        assert c.extra.startswith("[1] Đào tạo nghề cho 74.909 người")
    body_with_2 = [c for c in chunks if c.section == "body" and "[2]" in c.text]
    assert body_with_2 and all("Nhật bản: 233 lao động" in c.extra for c in body_with_2)
    (note1,) = [c for c in chunks if c.section == "footnote" and c.text.startswith("[1] Đào tạo nghề")]
    assert "tuyển sinh đào tạo nghề[1]" in note1.extra
    assert "69,5%" in note1.extra  # the whole citing sentence
    assert "[2]" not in note1.extra
    (note2,) = [c for c in chunks if c.section == "footnote" and c.text.startswith("[2]")]
    assert "357 lao động đã xuất khẩu lao động[2]" in note2.extra
    # body chunks without a marker carry nothing extra
    assert all(c.extra == "" for c in chunks if c.section == "body" and "[" not in c.text)
    # index_text = header + text + extra
    assert note1.index_text == f"{note1.header}\n{note1.text}\n{note1.extra}"
    assert doc.text.count("[1]") == 2


def test_documents_without_footnotes_have_no_extra():
    for prefix in ("000", "001", "003", "004"):
        assert all(c.extra == "" for c in chunks_of(prefix))


def test_header_holds_title_province_and_date():
    doc = seed("004")
    header = make_header(doc)
    assert doc.meta.title in header
    assert "Thừa Thiên Huế" in header
    assert "2024-01-08" in header
    assert all(c.header == header for c in chunks_of("004"))
    assert "An Giang" in chunks_of("002")[0].header
    assert make_header(doc_from("x")) == ""
    assert make_header(doc_from("x", title="T", year=2023)) == "T · 2023"


def test_chunk_ids_are_stable_across_runs():
    path = next(SEEDS.glob("004_*.txt"))
    first = [(c.id, c.text, c.header, c.extra) for c in chunk_document(load_document(path))]
    second = [(c.id, c.text, c.header, c.extra) for c in chunk_document(load_document(path))]
    assert first == second
    path2 = next(SEEDS.glob("002_*.txt"))
    assert [c.id for c in chunk_document(load_document(path2))] == [c.id for c in chunk_document(load_document(path2))]


def test_document_without_sections_is_chunked_whole():
    text = "Câu một về hộ nghèo. Câu hai có 2,27%."
    doc = Document("n", "n.txt", text, "0" * 64, DocMeta(), ())
    chunks = chunk_document(doc)
    assert [c.text for c in chunks] == [text]
