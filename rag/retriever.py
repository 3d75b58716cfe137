"""Hybrid retrieval: BM25 fields ∪ dense, fused by calibrated scores, reranked by coverage, place and year, filtered."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import gazetteer
from .embed import Embedder
from .query import analyse
from .lexical import tokenize
from .store import Snapshot
from .text import bigrams, fold, syllables, years_in
from .types import Chunk, Hit, Query

_SENTENCE_RE = re.compile(r"(?<=[.!?;:])\s+|\n+")
_TYPE_CUES = {
    "percent": re.compile(r"\d%|phần trăm"),
    "money": re.compile(r"\d[\d.,]*\s*(?:tỷ|triệu|nghìn|ngàn)?\s*(?:đồng|USD)", re.I),
    "count": re.compile(r"\d[\d.,]*\s*(?:người|lao động|hộ|lượt|đối tượng|suất|cá nhân|tập thể)"),
    "date": re.compile(r"\b\d{1,2}/\d{1,2}\b|ngày \d"),
}


@dataclass(frozen=True)
class RetrievalConfig:
    candidates: int = 100  # per path, before fusion
    dense_weight: float = 0.3  # share of the (min-max calibrated) dense similarity in the fused score
    place_bonus: float = 0.25  # chunk or its document is about the asked place
    place_penalty: float = 0.5  # its document is about another place and the chunk does not name the asked one
    year_bonus: float = 0.12  # chunk mentions the asked year
    year_penalty: float = 0.15  # chunk mentions years, none of them the asked one
    type_bonus: float = 0.04  # chunk holds a value of the expected type
    rerank_depth: int = 40  # candidates rescored with the coverage features
    sentence_coverage: float = 1.0  # weight of the idf share of query words found in the chunk's best sentence
    bigram_coverage: float = 0.5  # weight of the share of query bigrams found in the chunk


class Retriever:
    def __init__(self, snapshot: Snapshot, embedder: Embedder | None, config: RetrievalConfig = RetrievalConfig()) -> None:
        self.snapshot = snapshot
        self.embedder = embedder if snapshot.dense is not None else None
        self.config = config
        self._chunk_places = lru_cache(maxsize=200_000)(self._places_of)

    @property
    def mode(self) -> str:
        return "dense" if self.embedder is not None else "lexical"

    def search(self, question: str | Query, k: int = 10, *, province: str | None = None, year: int | None = None) -> list[Hit]:
        query = analyse(question) if isinstance(question, str) else question
        chunks = self.snapshot.chunks
        if not chunks:
            return []
        cfg = self.config
        lex = self.snapshot.lexical.scores(query.normalized, folded=query.folded)
        n_cand = max(cfg.candidates, k * 3)
        cand = _top(lex, n_cand)
        cand = cand[lex[cand] > 0]
        fused: dict[int, float] = {}
        lex_max = float(lex[cand].max()) if len(cand) else 0.0
        dense_scores: dict[int, float] = {}
        if self.embedder is not None and self.snapshot.dense is not None:
            qvec = self.embedder.embed_query(query.normalized)
            scores, ids = self.snapshot.dense.search(qvec, n_cand)
            dense_scores = {int(i): float(s) for i, s in zip(ids, scores)}
        if lex_max > 0:
            fused = {int(i): (1 - cfg.dense_weight * bool(dense_scores)) * float(lex[i]) / lex_max for i in cand}
        if dense_scores:  # min-max calibrated dense similarity, mixed in with weight dense_weight
            lo, hi = min(dense_scores.values()), max(dense_scores.values())
            for i, sim in dense_scores.items():
                norm = (sim - lo) / (hi - lo) if hi > lo else 1.0
                fused[i] = fused.get(i, (1 - cfg.dense_weight) * float(lex[i]) / lex_max if lex_max > 0 else 0.0)
                fused[i] += cfg.dense_weight * norm
        coverage = self._coverage(query, sorted(fused, key=fused.get, reverse=True)[: cfg.rerank_depth])
        hits = []
        for i, base in fused.items():
            chunk = chunks[i]
            if not self._passes(chunk, province, year):
                continue
            bonus = self._bonus(chunk, query) + coverage.get(i, 0.0)
            signals = (("lexical", round(float(lex[i]), 4)), ("fused", round(base, 4)), ("bonus", round(bonus, 4)))
            if i in dense_scores:
                signals += (("dense", round(dense_scores[i], 4)),)
            hits.append((base + bonus, i, signals))
        hits.sort(key=lambda h: (-h[0], h[1]))
        docs = self.snapshot.documents
        return [
            Hit(chunk=chunks[i], score=round(score, 4), rank=r + 1, source=docs[chunks[i].doc_id].source, signals=sig)
            for r, (score, i, sig) in enumerate(hits[:k])
        ]

    # -- features

    def _coverage(self, query: Query, candidates: list[int]) -> dict[int, float]:
        """Weighted share of the question's words in each candidate's best sentence, and of its bigrams.

        Answers sit in one sentence that repeats most of the question's rarer words; BM25 over the
        whole chunk does not see that.
        """
        field_syl, field_bi = ("fsyl", "fbi") if query.folded else ("syl", "bi")
        tokens = tokenize(query.normalized, query=True)
        # the place and the year are scored by their own features (a passage rarely repeats them)
        skip = {str(y) for y in query.years}
        if query.place:
            surfaces = [m.surface for m in gazetteer.find_places(query.text, folded=query.folded or None)]
            for name in [query.place, *surfaces]:
                skip.update(syllables(name))
                skip.update(fold(t) for t in syllables(name))
        words = {t for t in tokens[field_syl] if t not in skip}
        pairs = {t for t in tokens[field_bi] if not skip.intersection(t.split("_"))}
        idf = self.snapshot.lexical.idf(sorted(words), field_syl)
        total = sum(idf.values())
        if not total:
            return {}
        cfg = self.config
        out = {}
        for i in candidates:
            chunk = self.snapshot.chunks[i]
            text = f"{chunk.text}\n{chunk.extra}" if chunk.extra else chunk.text
            best = 0.0
            for sentence in _SENTENCE_RE.split(text):
                toks = syllables(sentence)
                present = set(toks if not query.folded else (fold(t) for t in toks))
                best = max(best, sum(w for t, w in idf.items() if t in present) / total)
            all_toks = syllables(text)
            if query.folded:
                all_toks = [fold(t) for t in all_toks]
            pair_share = len(pairs & set(bigrams(all_toks))) / len(pairs) if pairs else 0.0
            out[i] = cfg.sentence_coverage * best + cfg.bigram_coverage * pair_share
        return out

    def _places_of(self, chunk_id: str) -> frozenset[str]:
        chunk = self._chunk_by_id[chunk_id]
        return frozenset(m.place.name for m in gazetteer.find_places(chunk.text, folded=False))

    @property
    def _chunk_by_id(self) -> dict[str, Chunk]:
        if not hasattr(self, "_by_id"):
            self._by_id = {c.id: c for c in self.snapshot.chunks}
        return self._by_id

    def _doc_place(self, chunk: Chunk) -> str | None:
        meta = self.snapshot.documents[chunk.doc_id].meta
        # related news of a local site is often about elsewhere: trust only the chunk's own words there
        return meta.province if chunk.section != "related" else None

    def about_place(self, place: str, chunk: Chunk) -> bool:
        """The chunk names the place, or belongs to a document about it."""
        return place in self._chunk_places(chunk.id) or self._doc_place(chunk) == place

    def _bonus(self, chunk: Chunk, query: Query) -> float:
        cfg = self.config
        bonus = 0.0
        if query.place:
            if self.about_place(query.place, chunk):
                bonus += cfg.place_bonus
            elif self._doc_place(chunk) is not None or self._chunk_places(chunk.id):
                bonus -= cfg.place_penalty
        if query.years:
            chunk_years = set(years_in(chunk.text))
            if chunk_years & set(query.years):
                bonus += cfg.year_bonus
            elif chunk_years:  # speaks of other years only
                bonus -= cfg.year_penalty
        cue = _TYPE_CUES.get(query.expects or "")
        if cue is not None and cue.search(chunk.text):
            bonus += cfg.type_bonus
        return bonus

    def _passes(self, chunk: Chunk, province: str | None, year: int | None) -> bool:
        doc = self.snapshot.documents[chunk.doc_id]
        if province:
            wanted = (gazetteer.lookup(province) or gazetteer.Place(province, (), "")).name
            if doc.meta.province != wanted and wanted not in self._chunk_places(chunk.id):
                return False
        if year:
            in_chunk = str(year) in chunk.text
            if not in_chunk and year not in doc.meta.years:
                return False
        return True


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n largest scores, best first (stable for ties)."""
    n = min(n, len(scores))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
    return part[np.lexsort((part, -scores[part]))]
