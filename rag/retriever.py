"""Hybrid retrieval: BM25 fields ∪ dense, fused by calibrated scores, reranked by coverage, place and year, filtered."""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import gazetteer
from .embed import Embedder
from .query import analyse
from .lexical import tokenize
from .backend import IndexView, Where, as_view
from .text import fold, syllables, years_in
from .types import Chunk, Hit, Query

WEIGHTS_FILE = Path(__file__).parent / "data" / "retrieval.json"  # written by eval/fit_retrieval.py


@dataclass(frozen=True)
class RetrievalConfig:
    candidates: int = 100  # per path, before fusion
    dense_weight: float = 0.3  # share of the (min-max calibrated) dense similarity in the fused score
    dense_weight_unaccented: float = 0.3  # the same for questions typed without diacritics
    restore_diacritics: bool = True  # an unaccented question is embedded with its likeliest accents
    place_bonus: float = 0.25  # chunk or its document is about the asked place
    place_penalty: float = 0.5  # its document is about another place and the chunk does not name the asked one
    year_bonus: float = 0.12  # chunk mentions the asked year
    year_penalty: float = 0.15  # chunk mentions years, none of them the asked one
    rerank_depth: int = 30  # candidates rescored with the coverage features (20-40 give the same eval numbers)
    sentence_coverage: float = 1.0  # weight of the idf share of query words found in the chunk's best sentence
    sentence_coverage_unaccented: float = 1.0
    bigram_coverage: float = 0.5  # weight of the share of query bigrams found in the chunk
    # weight of the question's best sentence cosine in each of the rerank_depth best candidates (min-max scaled over
    # them), when the index stores its sentences' vectors
    sentence_dense: float = 0.0
    sentence_dense_unaccented: float = 0.0

    @classmethod
    def learned(cls, path: Path = WEIGHTS_FILE) -> RetrievalConfig:
        """The defaults with the weights fitted by eval/fit_retrieval.py ({"accented": {...}, "unaccented": {...}})."""
        return _learned(path)


@lru_cache(maxsize=4)
def _learned(path: Path) -> RetrievalConfig:
    if not path.is_file():
        return RetrievalConfig()
    data = json.loads(path.read_text("utf-8"))
    known = {f.name for f in fields(RetrievalConfig)}
    values = {k: v for k, v in data.get("accented", {}).items() if k in known}
    values.update({f"{k}_unaccented": v for k, v in data.get("unaccented", {}).items() if f"{k}_unaccented" in known})
    return replace(RetrievalConfig(), **values)


class Retriever:
    def __init__(self, snapshot, embedder: Embedder | None, config: RetrievalConfig | None = None) -> None:
        # the index, through the store seam (rag/backend.py): a local snapshot or Milvus
        self.snapshot: IndexView = as_view(snapshot)
        self.embedder = embedder if self.snapshot.has_dense else None
        self.config = config if config is not None else RetrievalConfig.learned()
        self._restorer: Restorer | None = None
        self._rows: dict[str, int] | None = None  # chunk id -> row of the stored vectors
        # Per-chunk facts, computed the first time a chunk is a candidate. The caches belong to this
        # retriever, and a retriever to one snapshot (a rebuilt index gets a new Retriever), so an entry
        # never outlives the chunk it describes.
        self._chunk_years = lru_cache(maxsize=200_000)(self._years_of)  # by chunk index
        self._query_vector = lru_cache(maxsize=1_024)(self._embed)  # a question asked again skips the model
        # an unaccented question's accents, restored once (the search, the sentence feature and the answerer
        # each ask; with Milvus each restoring is two round trips)
        self._restored = lru_cache(maxsize=1_024)(self._restore)

    @property
    def mode(self) -> str:
        return "dense" if self.embedder is not None else "lexical"

    def search(self, question: str | Query, k: int = 10, *, province: str | None = None, year: int | None = None) -> list[Hit]:
        query = analyse(question) if isinstance(question, str) else question
        chunks = self.snapshot.chunks
        if not chunks:
            return []
        cfg = self.config
        tokens = tokenize(query.normalized, query=True)
        n_cand = max(cfg.candidates, k * 3)
        fused: dict[int, float] = {}
        weight = cfg.dense_weight_unaccented if query.folded else cfg.dense_weight
        wanted = (gazetteer.lookup(province) or gazetteer.Place(province, (), "")).name if province else None
        where = Where(wanted, year or None)  # applied by the store, before it ranks
        qvec = self._query_vector(self.dense_text(query)) if self.embedder is not None and weight > 0 else None
        # the dense top n_cand, the lexical top n_cand, and the BM25 scores of the chunks only the dense search found
        dense_scores, cand, lex = self.snapshot.candidates(qvec, tokens, query.folded, n_cand, where=where or None)
        lex_max = max(float(lex[i]) for i in cand) if cand else 0.0
        if lex_max > 0:
            fused = {int(i): (1 - weight * bool(dense_scores)) * float(lex[i]) / lex_max for i in cand}
        if dense_scores:  # min-max calibrated dense similarity, mixed in with weight `weight`
            lo, hi = min(dense_scores.values()), max(dense_scores.values())
            for i, sim in dense_scores.items():
                norm = (sim - lo) / (hi - lo) if hi > lo else 1.0
                fused[i] = fused.get(i, (1 - weight) * float(lex[i]) / lex_max if lex_max > 0 else 0.0)
                fused[i] += weight * norm
        self.snapshot.prefetch(fused)
        top = sorted(fused, key=fused.get, reverse=True)[: cfg.rerank_depth]
        coverage = self._coverage(query, tokens, top)
        for i, part in self._sentence_part(query, top).items():
            coverage[i] = coverage.get(i, 0.0) + part
        # The place and year features cost a regex over the chunk's text, and each feature adds at most its
        # bonus: score the candidates by their best possible score, best first, and stop once that cannot
        # reach the k-th score found. Float addition is monotonic, so the bound holds for
        # the computed sums too: the hits and their order are those of scoring every candidate.
        most = (
            (0.0 + (max(cfg.place_bonus, 0.0, -cfg.place_penalty) if query.place else 0.0))
            + (max(cfg.year_bonus, 0.0, -cfg.year_penalty) if query.years else 0.0)
        )
        pending = sorted(  # (the store applied the filter; checked again, cheaply: the chunks are at hand)
            ((base + (most + coverage.get(i, 0.0)), i) for i, base in fused.items()
             if not where or self._passes(chunks[i], where)),
            key=lambda p: (-p[0], p[1]),
        )
        scored = []  # (score, chunk index, bonus)
        kth: list[float] = []  # the k best scores so far, ascending
        for bound, i in pending:
            if len(kth) == k and (k == 0 or bound < kth[0]):
                break
            place_part = self._place_part(chunks[i], query.place) if query.place else 0.0
            bonus = ((0.0 + place_part) + self._year_part(i, query)) + coverage.get(i, 0.0)
            score = fused[i] + bonus
            scored.append((score, i, bonus))
            if len(kth) < k:
                bisect.insort(kth, score)
            elif score > kth[0]:
                kth.pop(0)
                bisect.insort(kth, score)
        scored.sort(key=lambda h: (-h[0], h[1]))
        docs = self.snapshot.documents
        hits = []
        for r, (score, i, bonus) in enumerate(scored[:k]):
            signals = (("lexical", round(float(lex[i]), 4)), ("fused", round(fused[i], 4)), ("bonus", round(bonus, 4)))
            if i in dense_scores:
                signals += (("dense", round(dense_scores[i], 4)),)
            chunk = chunks[i]
            hits.append(Hit(chunk=chunk, score=round(score, 4), rank=r + 1, source=docs[chunk.doc_id].source, signals=signals))
        return hits

    def dense_text(self, query: Query) -> str:
        """What the embedder reads for a question: an unaccented one gets the accents its words most
        often carry in this index ("ty le ho ngheo" -> "tỷ lệ hộ nghèo"), which the model reads far better."""
        if not (query.folded and self.config.restore_diacritics):
            return query.normalized
        return self._restored(query.normalized)

    def _restore(self, text: str) -> str:
        if self._restorer is None:
            self._restorer = self.snapshot.restorer()
        return self._restorer.restore(text)

    def similarities(self, query: Query, chunks: list[Chunk]) -> list[float | None]:
        """Cosine of the question and each chunk, from the index's stored vectors and the (cached) question
        vector: no model call beyond the search's own. None for each chunk when the index is lexical."""
        vectors = getattr(self.snapshot, "vectors", None)  # (a Milvus index keeps its vectors in the engine)
        if self.embedder is None or vectors is None or len(vectors) != len(self.snapshot.chunks):
            return [None] * len(chunks)
        qvec = self._query_vector(self.dense_text(query))
        rows = [self._row(c) for c in chunks]
        return [None if r is None else float(vectors[r] @ qvec) for r in rows]

    def _row(self, chunk: Chunk) -> int | None:
        """The chunk's position in the index (the row of its stored vectors), or None."""
        row_of = getattr(self.snapshot, "chunk_row", None)  # (Milvus: its id, known from the search that found it)
        if row_of is not None:
            return row_of(chunk)
        if self._rows is None:
            self._rows = {c.id: i for i, c in enumerate(self.snapshot.chunks)}
        return self._rows.get(chunk.id)

    def _sentence_part(self, query: Query, candidates: list[int]) -> dict[int, float]:
        """Each candidate's best question–sentence cosine, min-max scaled over the candidates, times its weight:
        the passage that holds one sentence saying what was asked, among passages on the same subject."""
        weight = self.config.sentence_dense_unaccented if query.folded else self.config.sentence_dense
        block = getattr(self.snapshot, "sentence_block", None)  # (an index built without sentence vectors has none)
        if weight <= 0 or self.embedder is None or block is None or not candidates:
            return {}
        many = getattr(self.snapshot, "sentence_blocks", None)  # (Milvus: every candidate's in one query)
        blocks = many(candidates) if many is not None else {i: block(i) for i in candidates}
        qvec = self._query_vector(self.dense_text(query))
        best = {i: float((b.astype(np.float32) @ qvec).max()) for i, b in blocks.items() if b is not None and len(b)}
        if not best:
            return {}
        lo, hi = min(best.values()), max(best.values())
        return {i: weight * ((v - lo) / (hi - lo) if hi > lo else 1.0) for i, v in best.items()}

    def sentence_similarities(self, query: Query, chunk: Chunk, sentences: list[str]) -> list[float | None]:
        """Cosine of the question and each of the chunk's `sentences` (answer.sentence_spans of its text),
        from the sentence vectors the index stores; None for each when it stores none for this chunk."""
        block = getattr(self.snapshot, "sentence_block", None)
        row = self._row(chunk) if self.embedder is not None and block is not None else None
        vectors = None if row is None else block(row)
        if vectors is None or len(vectors) != len(sentences):
            return [None] * len(sentences)
        qvec = self._query_vector(self.dense_text(query))
        return [float(v) for v in vectors.astype(np.float32) @ qvec]

    def _embed(self, text: str) -> np.ndarray:
        vec = np.array(self.embedder.embed_query(text), dtype=np.float32)  # (a copy: made read-only below)
        vec.flags.writeable = False  # shared by the cache
        return vec

    # -- features

    def _coverage(self, query: Query, tokens: dict[str, list[str]], candidates: list[int]) -> dict[int, float]:
        """Weighted share of the question's words in each candidate's best sentence, and of its bigrams.

        Answers sit in one sentence that repeats most of the question's rarer words; BM25 over the
        whole chunk does not see that.
        """
        field_syl, field_bi = ("fsyl", "fbi") if query.folded else ("syl", "bi")
        # the place and the year are scored by their own features (a passage rarely repeats them)
        skip = {str(y) for y in query.years}
        if query.place:
            surfaces = [m.surface for m in gazetteer.find_places(query.text, folded=query.folded or None)]
            for name in [query.place, *surfaces]:
                skip.update(syllables(name))
                skip.update(fold(t) for t in syllables(name))
        words = {t for t in tokens[field_syl] if t not in skip}
        pairs = {t for t in tokens[field_bi] if not skip.intersection(t.split("_"))}
        idf = self.snapshot.idf(sorted(words), field_syl)
        total = sum(idf.values())
        if not total:
            return {}
        cfg = self.config
        best, found = self.snapshot.coverage(candidates, idf, pairs, query.folded)
        sentence = cfg.sentence_coverage_unaccented if query.folded else cfg.sentence_coverage
        return {
            i: sentence * (b / total) + cfg.bigram_coverage * (n / len(pairs) if pairs else 0.0)
            for i, b, n in zip(candidates, best, found)
        }

    def _doc_place(self, chunk: Chunk) -> str | None:
        meta = self.snapshot.documents[chunk.doc_id].meta
        # related news of a local site is often about elsewhere: there, an item naming no place is the
        # site's own ("UBND tỉnh vừa ban hành…"), one naming a place is about that place
        if chunk.section == "related" and chunk.places:
            return None
        return meta.province

    def about_place(self, place: str, chunk: Chunk) -> bool:
        """The chunk names the place, or belongs to a document about it."""
        return self._doc_place(chunk) == place or place in chunk.places  # the cheap test first

    def _place_part(self, chunk: Chunk, place: str) -> float:
        cfg = self.config
        if self.about_place(place, chunk):
            return cfg.place_bonus
        if self._doc_place(chunk) is not None or chunk.places:
            return -cfg.place_penalty
        return 0.0

    def _year_part(self, i: int, query: Query) -> float:
        if not query.years:
            return 0.0
        chunk_years = self._chunk_years(i)
        if any(y in chunk_years for y in query.years):
            return self.config.year_bonus
        return -self.config.year_penalty if chunk_years else 0.0  # speaks of other years only

    def _years_of(self, i: int) -> tuple[int, ...]:
        return tuple(dict.fromkeys(years_in(self.snapshot.chunks[i].text)))

    def _passes(self, chunk: Chunk, where: Where) -> bool:
        return where.passes(chunk, self.snapshot.documents[chunk.doc_id])


class Restorer:
    """Diacritics for unaccented text, from the index's own vocabulary: each word takes the accented
    form that the most frequent indexed bigram it makes with a neighbour gives it, else its most
    frequent accented form; unknown words stay as typed.

    Only the syllable vocabulary is folded (once); a question's bigrams are looked up among the
    pairs of their syllables' accented forms, so the cost does not grow with the bigram vocabulary.
    """

    FORMS = 8  # accented forms tried per syllable ("ho" -> hộ, hồ, họ, hỗ, hổ, ...)

    def __init__(self, lexical) -> None:
        syl = lexical.fields["syl"]
        df = _doc_freq(syl)
        forms: dict[str, list[tuple[int, str]]] = {}
        for token, tid in syl.vocab_dict.items():
            count = int(df[tid]) if tid < len(df) else 0  # (bm25s adds an empty token past the postings)
            if count:
                forms.setdefault(fold(token), []).append((count, token))
        self.forms = {key: sorted(found, reverse=True)[: self.FORMS] for key, found in forms.items()}
        self.pairs = lexical.fields["bi"].vocab_dict
        self.pair_df = _doc_freq(lexical.fields["bi"])

    def _pair_count(self, pair: str) -> int:
        tid = self.pairs.get(pair)
        return int(self.pair_df[tid]) if tid is not None and tid < len(self.pair_df) else 0

    def _lookup(self, words: list[str]):
        """The accented forms of the words ({folded: [(count, form), ...]}) and a bigram's count.
        (A store that keeps its vocabulary remotely fetches only these words'.)"""
        return self.forms, self._pair_count

    def _pair(self, a: str, b: str, forms, pair_count) -> tuple[int, str, str] | None:
        best = None
        for _, x in forms.get(a, ()):
            for _, y in forms.get(b, ()):
                count = pair_count(f"{x}_{y}")
                if count and (best is None or count > best[0]):
                    best = (count, x, y)
        return best

    def restore(self, text: str) -> str:
        words = syllables(text)
        forms, pair_count = self._lookup(words)
        pairs = [self._pair(a, b, forms, pair_count) for a, b in zip(words, words[1:])]
        out = []
        for m, word in enumerate(words):
            options = []  # (document frequency, form) from the bigrams it makes with its neighbours
            if m > 0 and pairs[m - 1] is not None:
                options.append((pairs[m - 1][0], pairs[m - 1][2]))
            if m < len(pairs) and pairs[m] is not None:
                options.append((pairs[m][0], pairs[m][1]))
            if options:
                out.append(max(options)[1])
            else:
                out.append(forms[word][0][1] if word in forms else word)
        return " ".join(out) if out else text


def _doc_freq(bm25) -> np.ndarray:
    return np.diff(np.asarray(bm25.scores["indptr"]))


def _top_positive(scores: np.ndarray, n: int, step: int = 16) -> np.ndarray:
    """`_top(scores, n)` without its zero scores, the same indices in the same order, faster on large arrays.

    The n best lie above a threshold read from every `step`-th score, so only those few are partitioned.
    When the n-th best score ties with the next one, which of them `_top` keeps is up to np.argpartition:
    then (and when the threshold was too high) `_top` itself answers.
    """
    if n <= 0 or len(scores) <= step * n:
        top = _top(scores, n)
        return top[scores[top] > 0]
    sample = scores[::step]
    rank = min(len(sample), 2 * -(-n // step))  # expect about 2n scores at or above the threshold
    threshold = np.partition(sample, len(sample) - rank)[len(sample) - rank]
    above = np.flatnonzero(scores >= threshold) if threshold > 0 else np.flatnonzero(scores > 0)
    values = scores[above]
    if len(above) <= n:
        if threshold > 0 and len(above) < n:  # fewer than n above a positive threshold: look at them all
            top = _top(scores, n)
            return top[scores[top] > 0]
        return above[np.lexsort((above, -values))]  # every positive score (or exactly n of them)
    nth = np.partition(values, len(values) - n)[len(values) - n]  # the n-th best score
    keep = values >= nth
    if np.count_nonzero(keep) != n:  # ties at the n-th place
        top = _top(scores, n)
        return top[scores[top] > 0]
    best = above[keep]
    return best[np.lexsort((best, -values[keep]))]


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n largest scores, best first (stable for ties)."""
    n = min(n, len(scores))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
    return part[np.lexsort((part, -scores[part]))]
