"""Property tests (hypothesis): every stage takes arbitrary input and either does its job or says
why in one UsageError/ValueError, never another exception; every offset it promises holds."""

from __future__ import annotations

import os
import shutil
import tempfile
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from rag import loaders, metadata
from rag.chunker import ChunkConfig, chunk_document, split_sentences
from rag.clean import clean
from rag.errors import UsageError
from rag.ingest import load_document
from rag.lexical import FIELDS, SENTENCE_CUT, LexicalIndex, tokenize
from rag.query import analyse
from rag.text import bigrams, collapse_spaces, fold, normalize, normalize_query, syllables
from rag.types import Document, Section

SEEDS = Path(__file__).resolve().parents[1] / "seeds"

# RAG_PROPERTY_SCALE=10 for a longer hunt; no example database is written (nothing left in the checkout)
SCALE = float(os.environ.get("RAG_PROPERTY_SCALE", "1"))
_QUIET = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def budget(n: int) -> settings:
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, database=None, suppress_health_check=_QUIET)


FAST = budget(60)
SLOW = budget(25)

# ---------------------------------------------------------------- strategies

_VI_WORDS = (
    "Tỷ lệ hộ nghèo Thừa Thiên Huế năm 2023 là 2,27% giảm 1,29% so với Nghệ An xuất khẩu lao động 17.034 người "
    "13,5 tỷ đồng hoà khoẻ thuỷ Hoà Bình ủy ban nhân dân Sở LĐ-TB&XH TP.HCM ngày 8/1 31/7/2023 Bùi Minh Các tin khác "
    "Tin liên quan Chia sẻ In bài viết | [1] [2] tháng mười hai"
).split()
_PUNCT = list(".,;:!?%()[]-–—/\"'“”…") + ["\n", "\n\n", " ", "  ", "\t", "\r\n", "\u00a0", "\u200b", "\ufeff"]

_PIECE = st.one_of(
    st.sampled_from(_VI_WORDS),
    st.sampled_from(_PUNCT),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=3),  # a sprinkle of anything
    st.integers(0, 10**6).map(str),
)
vietnamese_text = st.lists(_PIECE, max_size=120).map(" ".join)
long_vietnamese_text = st.lists(st.sampled_from(_VI_WORDS), min_size=40, max_size=120).map(" ".join)
any_text = st.text(max_size=400)
text_like = st.one_of(vietnamese_text, any_text)


def _decomposed(text: str) -> str:
    return unicodedata.normalize("NFD", text)


# ---------------------------------------------------------------- loaders


def _read_or_refuse(tmp: Path, name: str, data: bytes):
    path = tmp / name
    path.write_bytes(data)
    try:
        text = loaders.read_text(path)
    except UsageError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None
    assert isinstance(text, str)
    try:
        doc = load_document(path)
    except UsageError as exc:  # an empty document
        assert "no text" in str(exc)
        return None
    assert doc.text.strip() and doc.id == Path(name).stem
    return doc


@FAST
@given(data=st.binary(max_size=3000), suffix=st.sampled_from([".txt", ".md", ".html", ".htm", ".markdown"]))
def test_arbitrary_bytes_are_read_or_refused(tmp_path, data, suffix):
    _read_or_refuse(tmp_path, "doc" + suffix, data)


@FAST
@given(
    data=st.binary(min_size=1, max_size=2000).map(lambda b: b + b"\x00" + b),
    suffix=st.sampled_from([".txt", ".md", ".html"]),
)
def test_binary_files_named_as_text_are_refused(tmp_path, data, suffix):
    assume(not data.startswith((b"\xff\xfe", b"\xfe\xff")))
    assume(b"\x00" in data[:8192])
    path = tmp_path / ("blob" + suffix)
    path.write_bytes(data)
    with pytest.raises(UsageError, match="blob"):
        loaders.read_text(path)


def _cp1258(text: str) -> bytes:
    """Windows-1258: precomposed base letters, tones as combining marks."""
    tones = {"\u0300", "\u0301", "\u0303", "\u0309", "\u0323"}
    out = []
    for ch in unicodedata.normalize("NFC", text):
        parts = unicodedata.normalize("NFD", ch)
        out.append(unicodedata.normalize("NFC", "".join(c for c in parts if c not in tones)) + "".join(c for c in parts if c in tones))
    return "".join(out).encode("cp1258", errors="replace")


ENCODINGS = {
    "utf-16": lambda s: s.encode("utf-16"),
    "utf-16-le": lambda s: s.encode("utf-16-le"),
    "utf-8-sig": lambda s: s.encode("utf-8-sig"),
    "utf-8-nfd": lambda s: _decomposed(s).encode("utf-8"),
    "cp1258": _cp1258,
    "latin-1": lambda s: s.encode("latin-1", errors="replace"),
}


@FAST
@given(text=vietnamese_text, encoding=st.sampled_from(sorted(ENCODINGS)), suffix=st.sampled_from([".txt", ".html"]))
def test_other_encodings_are_decoded_or_refused(tmp_path, text, encoding, suffix):
    doc = _read_or_refuse(tmp_path, "enc" + suffix, ENCODINGS[encoding](text))
    if doc is not None:
        assert unicodedata.is_normalized("NFC", doc.text)


@budget(10)
@given(text=long_vietnamese_text)
def test_utf8_with_and_without_bom_and_decomposed_read_the_same(tmp_path, text):
    docs = [_read_or_refuse(tmp_path, f"{name}.txt", ENCODINGS[name](text)) for name in ("utf-8-sig", "utf-8-nfd")]
    plain = _read_or_refuse(tmp_path, "plain.txt", text.encode("utf-8"))
    assert {d.text if d else None for d in docs} == {plain.text if plain else None}


# ---------------------------------------------------------------- cleaner, metadata, chunker


def check_sections(text: str, sections: tuple[Section, ...]) -> None:
    prev_end = 0
    for sec in sections:
        assert 0 <= prev_end <= sec.start < sec.end <= len(text), (sec, len(text))
        assert sec.kind in ("body", "related", "footnotes")
        assert text[sec.start : sec.end].strip()
        prev_end = sec.end
    # what lies between sections is only the blank lines that join paragraphs
    covered = [False] * len(text)
    for sec in sections:
        covered[sec.start : sec.end] = [True] * (sec.end - sec.start)
    assert all(c or text[i].isspace() for i, c in enumerate(covered))


@FAST
@example(raw="Các tin khác\n\nTin A\n\nTóm tắt A.\n|\n")
@example(raw="\ufeff\r\n[1] chú thích\r\nhoà\u0300")
@given(raw=text_like)
def test_clean_returns_nfc_text_and_valid_sections(raw):
    text, sections = clean(raw)
    assert isinstance(text, str) and "\r" not in text and "\ufeff" not in text
    assert unicodedata.is_normalized("NFC", text)
    assert text == text.strip() or not text
    check_sections(text, sections)
    assert bool(text.strip()) == bool(sections)


@FAST
@given(raw=text_like)
def test_normalize_keeps_the_nfc_length(raw):
    """Tone placement is length-preserving, so offsets computed on NFC text survive it."""
    assert len(normalize(raw)) == len(unicodedata.normalize("NFC", raw))


@FAST
@given(raw=text_like)
def test_metadata_never_fails(raw):
    text, sections = clean(raw)
    meta = metadata.extract(text, sections, fallback_title="fallback")
    assert isinstance(meta.title, str)
    assert meta.year is None or 1900 <= meta.year <= 2100
    assert all(len(d) == 10 for d in meta.dates)
    assert 0.0 <= meta.province_confidence <= 1.0


def _document(raw: str) -> Document:
    text, sections = clean(raw)
    assume(text.strip())
    return Document("d", "d.txt", text, "0" * 64, metadata.extract(text, sections, "d"), sections)


@SLOW
@example(raw="Một câu. " * 40 + "\n\n[1] Chú thích một.\n\nCâu có chú thích [1] ở đây.", size=60, overlap=59)
@given(raw=text_like, size=st.integers(50, 400), overlap=st.integers(0, 399))
def test_chunks_are_exact_slices_inside_one_section(raw, size, overlap):
    assume(overlap < size)
    doc = _document(raw)
    chunks = chunk_document(doc, ChunkConfig(size, overlap))
    assert chunks, "a document with text has at least one chunk"
    assert len({c.id for c in chunks}) == len(chunks)
    for c in chunks:
        assert 0 <= c.start < c.end <= len(doc.text)
        assert c.text == doc.text[c.start : c.end] and c.text.strip()
        assert c.id == f"d:{c.start}-{c.end}"
        assert any(s.start <= c.start and c.end <= s.end for s in doc.sections), c
    # every sentence's text lies in some chunk
    for sec in doc.sections:
        if sec.kind == "footnotes":
            continue
        for s, e in split_sentences(doc.text, sec.start, sec.end):
            assert doc.text[s:e].strip()
            assert any(c.start <= s and e <= c.end for c in chunks) or e - s > size


# ---------------------------------------------------------------- query analysis and tokens


@FAST
@example(text="")
@example(text="\u200b")
@example(text="XKLĐ Nghệ An 2023")
@example(text="ty le ho ngheo hue 2023")
@given(text=st.one_of(any_text, vietnamese_text))
def test_analyse_returns_a_query_or_says_it_is_empty(text):
    try:
        q = analyse(text)
    except ValueError:
        assert not collapse_spaces(normalize_query(text))
        return
    assert q.text and q.normalized.startswith(q.text)
    assert all(1900 <= y <= 2099 for y in q.years)


def test_analyse_of_a_huge_question_is_fast_enough():
    q = analyse("Tỷ lệ hộ nghèo Huế 2023 " * 20_000)
    assert q.place == "Thừa Thiên Huế" and 2023 in q.years


@FAST
@given(text=text_like)
def test_tokens_of_every_field(text):
    fields = tokenize(text)
    assert len(fields["syl"]) == len(fields["fsyl"])
    assert len(fields["bi"]) == max(0, len(fields["syl"]) - 1) == len(fields["fbi"])
    assert all(t and " " not in t for toks in fields.values() for t in toks)


@budget(30)
@given(
    texts=st.lists(st.one_of(vietnamese_text, st.just(""), st.just("...")), min_size=1, max_size=12),
    query=text_like,
)
def test_lexical_index_matches_bm25s_scores(texts, query):
    """The 4-field index scores exactly as one bm25s index per field, built by bm25s itself."""
    import bm25s

    index = LexicalIndex.build(texts)
    assert index.size == len(texts)
    for name, bm25 in index.fields.items():
        ref = bm25s.BM25(k1=index.config.k1, b=index.config.b)
        ref.index([tokenize(t)[name] or ["∅"] for t in texts], show_progress=False)
        toks = tokenize(query, query=True)[name]
        ids, ref_ids = bm25.get_tokens_ids(toks), ref.get_tokens_ids(toks)
        mine = bm25.get_scores_from_ids(ids) if ids else np.zeros(len(texts))
        theirs = ref.get_scores_from_ids(ref_ids) if ref_ids else np.zeros(len(texts))
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- the answerer and the search


@pytest.fixture(scope="module")
def rag(seeds_index):
    from rag.api import RAG

    return RAG.open(seeds_index)


def _check_answer(rag, question: str) -> None:
    try:
        answer = rag.ask(question)
    except UsageError as exc:
        assert str(exc)
        return
    out = answer.to_json("q")
    assert list(out) == ["id", "question", "answer", "abstained", "answer_text", "citations", "mode", "timings_ms", "confidence",
                         "asked"]
    assert out["id"] == "q" and isinstance(out["answer_text"], str) and out["answer_text"]
    assert (out["answer"] is None) == out["abstained"]
    if not out["abstained"]:
        assert out["citations"] and isinstance(out["answer"], str)
    for n, c in enumerate(out["citations"], 1):
        assert c["n"] == n
        doc = rag.documents[c["doc_id"]]
        assert doc.text[c["start"] : c["end"]] == c["text"]
        assert c["chunk_id"].startswith(c["doc_id"] + ":")


@pytest.mark.parametrize("question", ["\u200b", " \u200b\u2000 "])
def test_an_invisible_question_is_a_usage_error(rag, question):
    with pytest.raises(UsageError):
        rag.ask(question)


@SLOW
@example(question="Tỷ lệ hộ nghèo Huế 2023?")
@example(question="?")
@example(question="2023")
@example(question="ai")
@given(question=st.one_of(any_text, vietnamese_text))
def test_ask_returns_the_contract_or_a_usage_error(rag, question):
    _check_answer(rag, question)


@budget(15)
@given(query=st.one_of(any_text, vietnamese_text), k=st.integers(1, 50))
def test_search_returns_ranked_exact_hits_or_a_usage_error(rag, query, k):
    try:
        hits = rag.search(query, k)
    except UsageError:
        return
    assert len(hits) <= k
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))
    for h in hits:
        assert rag.documents[h.chunk.doc_id].text[h.chunk.start : h.chunk.end] == h.chunk.text


def test_a_huge_question_is_answered_or_refused(rag):
    _check_answer(rag, "Tỷ lệ hộ nghèo Huế 2023? " * 5_000)


# ---------------------------------------------------------------- duplicate documents


@budget(5)
@given(copies=st.integers(1, 3), same_stem=st.booleans(), pick=st.sampled_from(sorted(p.name for p in SEEDS.glob("*.txt"))))
def test_duplicate_documents_are_indexed_with_unique_ids(copies, same_stem, pick):
    """The same text under other names, or the same name in other folders: every copy is indexed under
    its own id, chunks never collide, and a question about it is still answered from one of the copies."""
    from rag.api import RAG

    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        shutil.copytree(SEEDS, docs)
        for i in range(copies):
            target = docs / f"dup{i}" / pick if same_stem else docs / f"copy{i}_{pick}"
            target.parent.mkdir(exist_ok=True)
            shutil.copy(SEEDS / pick, target)
        rag, report = RAG.build([docs], Path(tmp) / "index", model="none")
        assert report.documents == 5 + copies
        assert len(set(rag.documents)) == 5 + copies
        snap = rag._retriever.snapshot
        assert len({c.id for c in snap.chunks}) == len(snap.chunks)
        # ids are stable: nothing changes; a folder given twice, or with one of its files, is read once
        rag2, again = RAG.build([docs, docs, docs / pick], Path(tmp) / "index", model="none")
        assert len(again.unchanged) == 5 + copies and not again.added and again.documents == 5 + copies
        answer = rag2.ask("Tỷ lệ hộ nghèo Huế 2023?")
        assert answer.answer == "2,27%"


@FAST
@given(raw=text_like)
def test_the_cleaners_fast_normalisation_equals_text_normalize(raw):
    from rag.clean import _normalize

    assert _normalize(raw) == normalize(raw)


def test_lexical_index_when_token_keys_are_too_large_to_pack():
    """The bigram keys are a·|V| + b; when key·N would overflow int64 they are made dense first."""
    import bm25s

    from rag.lexical import LexicalConfig, _bm25_from_ids, _bm25s

    docs = [["a", "b", "a"], [], ["c"], ["b", "c", "c", "d"], []]
    huge = {"a": 2**62, "b": 2**62 + 5, "c": 2**62 + 9, "d": 2**62 + 11}
    names = {v: k for k, v in huge.items()}
    keys = np.array([huge[t] for d in docs for t in d], dtype=np.int64)
    bm25 = _bm25_from_ids(_bm25s(), keys, np.array([len(d) for d in docs]), lambda ks: [names[k] for k in ks.tolist()], LexicalConfig())
    ref = bm25s.BM25(k1=LexicalConfig().k1, b=LexicalConfig().b)
    ref.index([d or ["∅"] for d in docs], show_progress=False)
    for query in (["a"], ["b", "c"], ["d", "a", "a"]):
        np.testing.assert_allclose(
            bm25.get_scores_from_ids(bm25.get_tokens_ids(query)), ref.get_scores_from_ids(ref.get_tokens_ids(query)), rtol=1e-6
        )


# ---------------------------------------------------------------- dense search


@budget(10)
@given(n=st.sampled_from([1, 7, 255, 256, 999, 1000, 1500]), k=st.integers(1, 30), seed=st.integers(0, 2**16))
def test_ivfpq_with_its_vectors_returns_exact_scores_best_first(n, k, seed):
    """IVF-PQ re-scores its candidates with the stored vectors: the scores are the exact inner
    products, sorted, ids unique; it never returns more than it holds. Asked on too few vectors to
    train it (FAISS failed below 256), an exact index is built instead."""
    from rag.dense import IVFPQ_MIN, DenseIndex

    rng = np.random.default_rng(seed)
    data = rng.standard_normal((n, 16)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    built = DenseIndex.build(data, "ivfpq")
    assert built.kind == ("ivfpq" if n >= IVFPQ_MIN else "flat")
    index = DenseIndex(built.index, built.kind, vectors=data)
    query = data[0] + 0.1 * rng.standard_normal(16).astype(np.float32)
    scores, ids = index.search(query, k)
    assert len(ids) == min(k, len(data)) and len(set(ids.tolist())) == len(ids)
    np.testing.assert_allclose(scores, data[ids] @ query, rtol=1e-5, atol=1e-5)
    assert all(a >= b for a, b in zip(scores, scores[1:]))


def test_a_query_of_another_dimension_is_an_index_error_not_a_faiss_assertion(tmp_path):
    from rag.dense import DenseIndex
    from rag.errors import IndexCorrupt

    data = np.eye(8, dtype=np.float32)
    index = DenseIndex.build(data, "flat")
    with pytest.raises(IndexCorrupt, match="rag index"):
        index.search(np.ones(16, dtype=np.float32), 3)


def _plain_coverage(header_body: list[tuple[str, str]], rows, weights, pairs, folded):
    """LexicalIndex.coverage as first written: every body re-tokenised, sentence by sentence."""
    best, found = [], []
    for r in rows:
        body = header_body[r][1]
        sentences = [syllables(s) for s in SENTENCE_CUT.split(body)]
        if folded:
            sentences = [[fold(t) for t in s] for s in sentences]
        best.append(max((sum(w for t, w in weights.items() if t in set(s)) for s in sentences), default=0.0))
        every = [t for s in sentences for t in s]
        found.append(len(pairs & set(bigrams(every))))
    return best, found


@budget(30)
@given(
    chunks=st.lists(st.tuples(st.one_of(st.just(""), vietnamese_text), st.one_of(vietnamese_text, st.just(""), st.just("a. b\n\nc"))),
                    min_size=1, max_size=8),
    query=text_like,
    folded=st.booleans(),
)
def test_coverage_equals_the_plain_computation(chunks, query, folded):
    """Stored token ids and sentences give what re-tokenising each body gives, bit for bit; the
    header is indexed but is no sentence of the body."""
    index = LexicalIndex.build(chunks)
    whole = LexicalIndex.build(["\n".join(p for p in c if p) for c in chunks])
    assert all(np.array_equal(index.fields[f].scores["data"], whole.fields[f].scores["data"]) for f in FIELDS)
    toks = tokenize(query + " " + " ".join(b for _, b in chunks)[:80], query=True)
    words = toks["fsyl" if folded else "syl"]
    weights = {w: 1.0 / (1 + n) for n, w in enumerate(sorted(set(words)))}
    pairs = set(toks["fbi" if folded else "bi"])
    rows = list(range(len(chunks)))[::-1]
    assert index.coverage(rows, weights, pairs, folded) == _plain_coverage(chunks, rows, weights, pairs, folded)
