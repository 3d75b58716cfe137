"""The extractive answerer: the sentence that answers, the exact span inside it, a citation, or an honest abstention.

No model is needed. Sentences of the retrieved passages are scored by how much of the question
they hold (idf-weighted, diacritic-insensitive), whether they speak of the asked year and place,
and whether they hold a value of the expected type; the span of that type closest to the
question's words is the answer.
"""

from __future__ import annotations

import re
import time

import numpy as np
from dataclasses import dataclass, field, replace

from . import compare, extract, gazetteer
from .abstention import Abstention
from .answer_scorer import BASE, TYPED, AnswerScorer
from .lexical import tokenize
from .lexicon import (BRACKETED_TARGET, COMPARED_YEAR, DATED, DOCUMENT_DATE, PLAN_ASKED, PLAN_SHARE, PLAN_YEAR,
                      RATE_OF, TARGET, TARGET_FOLDED,
                      TITLE_WORDS, UNIT_CLASSES, VERB_RE, WHOLE_PROVINCE, YEAR_RANGE)
from .query import analyse, organ_of
from .retriever import Retriever
from .spans import SpanModel
from .tables import cell_header, cell_span, value_spans
from .text import fold, numbers_in, sentence_spans, sentence_start, syllables, years_in
from .types import Hit, Query

_TOKEN = re.compile(r"\d+(?:[.,/]\d+)*%?|[^\W\d_]+|[,;:()–]")
_BOUNDARY = frozenset(",;:()–")
_STRICT = {"person": "tên người", "date": "ngày tháng", "percent": "tỷ lệ phần trăm", "entity": "tên cần tìm",
           "code": "số hiệu văn bản", "count": "con số", "money": "số tiền", "place": "địa danh"}


@dataclass(frozen=True)
class Citation:
    n: int
    doc_id: str
    source: str
    chunk_id: str
    start: int
    end: int
    text: str
    score: float
    page: int | None = None  # the page of the document (1-based) where the cited text starts; None: no pages


def with_pages(citations: tuple[Citation, ...], documents) -> tuple[Citation, ...]:
    """The citations with the page each one starts on, from the documents' page starts."""
    from dataclasses import replace

    out = []
    for c in citations:
        doc = documents.get(c.doc_id) if c.page is None else None
        out.append(replace(c, page=doc.page_at(c.start)) if doc is not None and doc.pages else c)
    return tuple(out)


@dataclass(frozen=True)
class Answer:
    question: str
    answer: str | None
    abstained: bool
    answer_text: str
    citations: tuple[Citation, ...] = ()
    mode: str = "extractive"
    timings_ms: dict[str, float] = field(default_factory=dict)
    retrieval_mode: str = "lexical"
    confidence: float | None = None  # the scorer's probability that the quoted sentence holds the answer
    asked: str | None = None  # the question answered, when a follow-up was completed from earlier turns

    def to_json(self, qid=None) -> dict:
        """The contract's fields, in the contract's order."""
        return {
            "id": qid, "question": self.question, "answer": self.answer, "abstained": self.abstained,
            "answer_text": self.answer_text,
            "citations": [c.__dict__.copy() for c in self.citations],
            "mode": self.mode, "timings_ms": self.timings_ms,
            "confidence": None if self.confidence is None else round(self.confidence, 4),
            "asked": self.asked or self.question,
        }


@dataclass(frozen=True)
class AnswerConfig:
    k: int = 6  # passages read
    min_support: float = 0.45  # abstain when the best sentence holds less of the question than this
    place_strict: bool = True  # abstain when the asked place is not what the passage is about
    year_strict: bool = True  # abstain when the asked year appears nowhere near the answer
    # what decides that the documents do not hold the answer, besides the place, year and type rules: "learned" (the
    # fitted probability that the answer is right, below its threshold: rag/abstention.py) or "support" (the
    # picked sentence holds less than `min_support` of the question); "learned" falls back to "support" without
    # the fitted file
    abstain_by: str = "learned"
    # what orders the sentences: "hand" (the hand-set weights), "hand+cosine" (those plus the fitted weights of the
    # question–sentence cosine, for open and for typed questions; fitted: 6 and 0) or "learned" (the fitted scorer,
    # better on ViQuAD and worse on the seed reports: docs/answering.md)
    rank_by: str = "hand+cosine"
    # what answers an open question ("… là gì?", "Vì sao…") from its sentence: "learned" (the span model fitted
    # on ViQuAD, rag/spans.py) or "trim" (the sentence less the question's words at its edges)
    span_by: str = "learned"


@dataclass
class _Sentence:
    hit: Hit
    start: int  # offsets into the document
    end: int
    text: str
    support: float = 0.0
    score: float = 0.0  # the ranker's score (the order of the sentences)
    logit: float = 0.0  # the learned scorer's logit (the confidence)
    features: dict[str, float | None] = field(default_factory=dict)  # answer_scorer.FEATURES
    lead: str = ""  # the paragraph's earlier sentences
    spans: list[tuple[int, int]] = field(default_factory=list)  # values of the expected type in it


CLAUSE_TARGET_W = 0.3  # the value's own clause is a target ("chỉ tiêu … là 1,32%"): asked or not
TIME_W = 0.1  # share of a time word's idf in a sentence's support
RUNNER_UP = 0.3  # how far below the best value one from a sentence that does answer may be
LOOSE_SUPPORT = 0.6  # a name was asked, none of the expected kind found: answer anyway above this support


class Answerer:
    def __init__(self, retriever: Retriever, config: AnswerConfig = AnswerConfig(),
                 scorer: AnswerScorer | None = None) -> None:
        self.retriever = retriever
        self.config = config
        self.scorer = scorer if scorer is not None else AnswerScorer.load()
        rankers = {"learned": self.scorer, "hand+cosine": self.scorer.ranking(), "hand": AnswerScorer.hand()}
        if config.rank_by not in rankers:
            raise ValueError(f"rank_by must be one of {sorted(rankers)}, not {config.rank_by!r}")
        self.ranker = rankers[config.rank_by]
        if config.abstain_by not in ("learned", "support"):
            raise ValueError(f"abstain_by must be 'learned' or 'support', not {config.abstain_by!r}")
        if config.span_by not in ("learned", "trim"):
            raise ValueError(f"span_by must be 'learned' or 'trim', not {config.span_by!r}")
        self.spans = SpanModel.load() if config.span_by == "learned" else None
        mode = getattr(retriever, "mode", "lexical")
        self.abstention = Abstention.load(mode) if config.abstain_by == "learned" else None

    def ask(self, question: str, *, k: int | None = None, province: str | None = None, year: int | None = None) -> Answer:
        t0 = time.perf_counter()
        query = analyse(question)
        k = k or self.config.k
        timings = {"retrieve": 0.0, "answer": 0.0}
        if compare.is_comparison(query) and not province:
            answer = compare.answer(self, query, k, year, timings)
        else:
            hits = self._search(query, k, province, year, timings)
            t1 = time.perf_counter()
            answer = self._answer(query, hits)
            timings["answer"] += (time.perf_counter() - t1) * 1000
        timings = {key: round(v, 2) for key, v in timings.items()}
        timings["answer"] = round(max(timings["answer"], (time.perf_counter() - t0) * 1000 - timings["retrieve"]), 2)
        return Answer(
            question=query.text, answer=answer.answer, abstained=answer.abstained, answer_text=answer.answer_text,
            citations=with_pages(answer.citations, self.retriever.snapshot.documents), mode="extractive", timings_ms=timings, retrieval_mode=self.retriever.mode,
            confidence=answer.confidence,
        )

    def _search(self, query: Query, k: int, province, year, timings: dict) -> list[Hit]:
        t = time.perf_counter()
        hits = self.retriever.search(query, k, province=province, year=year)
        timings["retrieve"] += (time.perf_counter() - t) * 1000
        return hits

    # -- steps

    def _answer(self, query: Query, hits: list[Hit]) -> Answer:
        pick, reason, confidence = self.choose(query, hits)
        if pick is None:
            return abstain(query, reason, confidence)
        sentence, span = pick
        citation = _citation(1, sentence, self.retriever.snapshot.documents)
        answer_text = f"{citation.text.rstrip().rstrip('.;:')} [1]."
        return Answer(query.text, span, False, answer_text, (citation,), confidence=confidence)

    def choose(self, query: Query, hits: list[Hit]) -> tuple[tuple[_Sentence, str] | None, str, float]:
        """`pick`, then the learned abstention: the sentence and the answer in it, or None and why not; and the
        confidence (for an abstention, that of the best sentence set aside)."""
        sentences = self.candidates(query, hits)
        pick, reason = self.pick(query, hits, sentences)
        if pick is None:
            return None, reason, self.confidence(query, hits, sentences[0], sentences) if sentences else 0.0
        sentence = pick[0]
        confidence = self.confidence(query, hits, sentence, sentences)
        if self.abstention is not None and confidence < self.abstention.threshold:
            absent = self._absent_words(query)
            missing = f"không tài liệu nào có từ {', '.join(f'“{w}”' for w in absent[:3])}; " if absent else ""
            return None, (f"{missing}câu gần nhất với câu hỏi chỉ chứa {sentence.support:.0%} nội dung của nó, và câu "
                          f"trả lời có độ tin cậy {confidence:.0%}, dưới ngưỡng {self.abstention.threshold:.0%}"), confidence
        return pick, "", confidence

    def _absent_words(self, query: Query) -> list[str]:
        """The question's words, as typed, that no document holds ("vàng", "SJC")."""
        known = self._doc_freq(question_syllables(query))
        return list(dict.fromkeys(w for w in re.findall(r"[^\W_]+", query.text) if fold(w).lower() in known
                                  and not known[fold(w).lower()]))

    def confidence(self, query: Query, hits: list[Hit], sentence: _Sentence, sentences: list[_Sentence]) -> float:
        """The probability that the answer from `sentence` is right (rag/abstention.py); without the fitted
        file, the ranking scorer's calibrated probability that the sentence holds the answer."""
        if self.abstention is None:
            other = max((s.logit for s in sentences if s is not sentence), default=None)
            return self.scorer.confidence(sentence.logit, other)
        unknown = unknown_share(query, self._doc_freq)
        return self.abstention.probability(answer_evidence(hits, sentence, sentences, unknown), self._model())

    def _doc_freq(self, words: list[str]) -> dict[str, float]:
        """Whether the index holds each word (its idf, 0 when no document does)."""
        return self.retriever.snapshot.lexical.idf(words, "fsyl")

    def _model(self) -> str | None:
        """The name of the model whose cosines the features are (None in a lexical index)."""
        if getattr(self.retriever, "embedder", None) is None:
            return None
        manifest = getattr(getattr(self.retriever, "snapshot", None), "manifest", None) or {}
        return (manifest.get("model") or {}).get("name")

    def pick(self, query: Query, hits: list[Hit], sentences: list[_Sentence] | None = None,
             ) -> tuple[tuple[_Sentence, str] | None, str]:
        """The sentence that answers and the answer inside it, or None and why not; `sentences` are
        the hits' `candidates` when already computed."""
        if sentences is None:
            sentences = self.candidates(query, hits)
        if not hits:
            return None, "không có đoạn văn nào khớp với câu hỏi"
        if not sentences:
            return None, "không có câu nào khớp với câu hỏi"
        weights = _question_words(self.retriever, query)[1]
        echoed = query.numbers
        title, organ, verb, unit = query.title, query.organ, query.verb, query.unit
        if len(query.years) < 2:  # one year: a matter for the sentence, not for which value in it
            weights = {t: w for t, w in weights.items() if not years_in(t)}
        asked_words = set(query.folded_words)
        measured = query.measure
        asks_document, wants_target, wants_name = query.asks_document, query.wants_target, query.wants_name
        filtered = False
        plan_asked = bool(PLAN_ASKED.search(query.folded_text))
        scored: list[tuple[float, int, _Sentence, tuple[int, int]]] = []
        for sent in sentences[:8]:
            if measured and not _mentions(sent.text, measured):
                continue  # "tỷ lệ hộ nghèo" was asked; this is the rate of something else
            base = _compared_only(query, sent.text)
            tokens = _tokens(sent.text)
            spans = sent.spans
            if not spans and sent.support >= LOOSE_SUPPORT:  # no value of the type: any name will do
                spans = extract.candidates(query.expects, sent.text, query.head, loose=True)
            if not spans and query.expects in (None, "number", "count", "money"):
                spans = value_spans(sent.text)  # a table row: its cells' values
            topic_end = min((a for a, _ in spans), default=0)
            for n, span in enumerate(spans):
                text = sent.text[span[0]:span[1]]
                if numbers_in(text) & echoed:  # "…còn 9,2%; vậy năm 2024…": the question already says it
                    continue
                if not numbers_in(text) and {fold(t) for t in syllables(text)} <= asked_words:
                    continue  # a name the question already says ("Đồng Nai")
                if query.expects == "person" and wants_name and not extract.person_spans(text):
                    continue  # an office without its holder does not answer "Giám đốc Sở … tên là gì?"
                if query.expects == "person" and not _title_fits(title, self._titles(sent, span), organ):
                    filtered = True
                    continue  # "Chủ tịch" was asked; this is the "Phó Chủ tịch"
                if query.expects == "date" and not asks_document and DOCUMENT_DATE.search(sent.text[:span[0]]):
                    continue  # "Kế hoạch số 274-KH/ĐU ngày 13/3/2023": the plan's date, not the event's
                if query.expects == "percent" and measured and not _same_measure(measured, sent.text[:span[0]]):
                    continue  # "tỷ lệ lao động có việc làm" was asked; this is "tỷ lệ lao động qua đào tạo đạt 61%"
                if query.expects == "percent" and not plan_asked and PLAN_SHARE.match(sent.text, span[1]):
                    continue  # "đạt 118,91% kế hoạch" is how much of the plan was done, not a rate
                local = _proximity(tokens, span, weights, topic_end)
                score = (sent.score * self.ranker.scale + 0.6 * local + _unit_bonus(unit, text) - 0.01 * n
                         + _predicate_bonus(verb, sent.text, span))
                if _clause_is_target(sent.text, span[0]):  # "(chỉ tiêu được giao là 1,32%)"
                    score += CLAUSE_TARGET_W if wants_target else -CLAUSE_TARGET_W
                if base:  # the year asked is only what a figure of another year is compared with
                    if (query.expects == "percent") != ("%" in sent.text[span[0]:span[1] + 2]):
                        continue  # "giảm 1,29%" is no count of people
                    change = _change_since(sent.text, span, base)
                    if change is None:
                        continue  # "2,27%" is 2023's rate, not 2022's
                    span = change
                header = cell_header(sent.text, span[0])
                if header is not None:  # a table row: the column asked ("Năm 2023: 2,27%", not "Năm 2022: 3,56%")
                    score += _column_bonus(query, header, asked_words, wants_target)
                scored.append((score, sent, span))
        if not scored:
            top = sentences[0]
            loose = query.expects in ("person", "place", "entity") and top.support >= LOOSE_SUPPORT and not filtered
            if query.expects in _STRICT and not loose:
                return None, f"không tìm thấy {_STRICT[query.expects]} trong đoạn phù hợp nhất"
            reason = self._unsupported(query, top)
            return (None, reason) if reason else ((top, self._free_span(query, top.text)), "")
        # the best value whose sentence answers; a better-scored one may be from another year or place
        scored.sort(key=lambda c: c[0], reverse=True)  # stable: ties keep sentence and value order
        first_reason = ""
        for score, sent, (a, b) in scored:
            if score < scored[0][0] - RUNNER_UP:
                break
            reason = self._unsupported(query, sent)
            if not reason:
                a, b = cell_span(sent.text, a) or (a, b)  # in a table row: the cell's whole value, its unit too
                if query.expects in _NAMES:
                    b = _whole_name(sent.text, b, self.retriever.snapshot.documents[sent.hit.chunk.doc_id].text)
                return (sent, sent.text[a:b].strip(" ,.;:")), ""
            first_reason = first_reason or reason
        return None, first_reason

    def _free_span(self, query: Query, sentence: str) -> str:
        """The answer to a question that expects no typed value, inside its sentence: the span model's, or (without
        it, or for an English question) the sentence less the question's words at its edges."""
        if self.spans is None or query.english:
            return _free_span(query, sentence)
        span = self.spans.best(query.text, sentence)
        return sentence[span[0]:span[1]].strip(" ,.;:") if span else _free_span(query, sentence)

    def candidates(self, query: Query, hits: list[Hit]) -> list[_Sentence]:
        """Every sentence of the hits with its features and score, best first (stable)."""
        if not hits:
            return []
        asked, weights = _question_words(self.retriever, query)
        sentences = self._score_sentences(query, hits, weights, asked)
        sentences.sort(key=lambda s: s.score, reverse=True)
        return sentences

    def _titles(self, sent: _Sentence, span: tuple[int, int]) -> list[str]:
        """The titles written next to a name; if none, those next to it elsewhere in its document
        ("Ông Nguyễn Thanh Bình hy vọng…" is the "Phó Chủ tịch thường trực" named earlier)."""
        near = extract.titles_near(sent.text, *span)
        if _title_words(near):
            return near
        name = extract.ADDRESS_BEFORE.sub("", sent.text[span[0]:span[1]].strip())
        text = self.retriever.snapshot.documents[sent.hit.chunk.doc_id].text
        found = [t for m in re.finditer(re.escape(name), text) for t in extract.titles_near(text, m.start(), m.end())]
        return _title_words(found) or near

    def _score_sentences(self, query: Query, hits: list[Hit], idf: dict[str, float],
                         asked: set[str]) -> list[_Sentence]:
        """Every sentence of the hits, scored; `support` is the idf share of the question's words it
        holds: of the words as asked, or of the expanded query, whichever is higher (an English
        question counts only its translated words)."""
        when = query.time_words  # "cuối năm 2022" counts less: the year features judge it too
        idf = {t: w * (TIME_W if t in when else 1.0) for t, w in idf.items()}
        asked_total = sum(idf[t] for t in asked) or 1.0
        english = query.english
        total = sum(idf.values()) or 1.0
        top_score = hits[0].score or 1.0
        wants_target = query.wants_target
        dense = self.retriever.similarities(query, [hit.chunk for hit in hits])
        # a store that keeps its chunk vectors in the engine (Milvus) has the cosine of the chunks its dense search found
        dense = [c if c is not None else dict(hit.signals).get("dense") for c, hit in zip(dense, hits)]
        qwords = list(query.folded_words)
        qpairs = {p for p in zip(qwords, qwords[1:]) if p[0] in idf or p[1] in idf}
        out: list[_Sentence] = []
        for rank, (hit, cosine) in enumerate(zip(hits, dense), 1):
            chunk = hit.chunk
            context = {fold(t) for t in syllables(chunk.header)}
            lead = ""  # the paragraph's earlier sentences: "Năm 2024, ngành đề ra…: Giải quyết việc làm…"
            heading: set[str] = set()  # the words of a line announcing the paragraph ("Vụ nổ lò hơi tại Đồng Nai:")
            spans = sentence_spans(chunk.text)
            close = self.retriever.sentence_similarities(query, chunk, [chunk.text[a:b] for a, b in spans])
            for position, ((s, e), sent_cosine) in enumerate(zip(spans, close)):
                text = chunk.text[s:e]
                if s == 0 or "\n" in chunk.text[max(0, s - 2):s]:
                    announced = lead.rstrip().endswith(":")
                    title = len(lead.split()) <= 25 and not lead.rstrip().endswith((".", "!", "?", ";"))
                    heading = {fold(t) for t in syllables(lead[lead.rfind(".") + 1:])} if announced or title else set()
                    lead = lead if announced else ""  # a new paragraph, unless the last one announced it
                folded = [fold(t) for t in syllables(text)]
                own = set(folded)
                present = own | context | heading
                support = sum(idf[t] for t in asked if t in present) / asked_total
                support_own = sum(idf[t] for t in asked if t in own) / asked_total
                if not english:
                    support = max(support, sum(w for t, w in idf.items() if t in present) / total)
                    support_own = max(support_own, sum(w for t, w in idf.items() if t in own) / total)
                pairs = len(qpairs & set(zip(folded, folded[1:]))) / len(qpairs) if qpairs else 0.0
                sent = _Sentence(hit, chunk.start + s, chunk.start + e, text, support, lead=lead,
                                 spans=extract.candidates(query.expects, text, query.head))
                sent.features = {
                    "support": support, "support_own": support_own, "pairs": pairs,
                    "hit_score": hit.score / top_score, "hit_rank": 1.0 / rank, "dense": cosine,
                    "sent_dense": sent_cosine, "position": 1.0 / (1 + position), **self._features(query, sent, wants_target),
                }
                out.append(sent)
                lead = f"{lead} {text}"[-400:]
        best_support = max((s.features["support_own"] for s in out), default=0.0)
        best_pairs = max((s.features["pairs"] for s in out), default=0.0)
        best_close = max((s.features["sent_dense"] for s in out if s.features["sent_dense"] is not None), default=None)
        typed = float(query.expects in extract.PATTERNS or query.expects in _STRICT)
        for sent in out:  # how far each is from the question's best candidate
            f = sent.features
            f["support_gap"] = f["support_own"] - best_support
            f["pairs_gap"] = f["pairs"] - best_pairs
            f["sent_dense_gap"] = None if f["sent_dense"] is None else f["sent_dense"] - best_close
            f[TYPED] = typed
            f.update({f"{name}*typed": None if f[name] is None else f[name] * typed for name in BASE})
            sent.logit = self.scorer.logit(f)
            sent.score = sent.logit if self.ranker is self.scorer else self.ranker.logit(f)
        return out

    def _features(self, query: Query, sent: _Sentence, wants_target: bool) -> dict[str, float]:
        """The sentence's length, year, target, type and place features."""
        lead = sent.lead
        out = dict.fromkeys(("year_own", "year_para", "year_other", "typed_found", "typed_missing"), 0.0)
        out["length"] = min(1.0, len(sent.text.split()) / 80)  # long sentences cover words by chance
        text = sent.text if years_in(sent.text) else lead[-200:]  # else the paragraph's years
        if query.years:
            asked = set(query.years)
            if asked & set(years_in(sent.text)):
                out["year_own"] = 1.0  # the sentence itself dates its figure to the year asked
            elif asked & set(years_in(text)):
                out["year_para"] = 1.0
            elif years_in(text) and not asked & set(_years(text)):  # "giai đoạn 2021 - 2025" holds 2024
                out["year_other"] = 1.0
        is_target = bool(TARGET.search(sent.text) or TARGET.search(lead[-150:]))
        out["target_mismatch"] = float(wants_target != is_target)
        if query.expects in extract.PATTERNS or query.expects in _STRICT:
            out["typed_found" if sent.spans else "typed_missing"] = 1.0
        out["place"] = 0.0
        if query.place:
            out["place"] = 1.0 if self.retriever.about_place(query.place, sent.hit.chunk) else -1.0
        return out

    def _unsupported(self, query: Query, best: _Sentence) -> str | None:
        """Why the best sentence does not answer the question, or None when it does."""
        if self.abstention is None and best.support < self.config.min_support:
            return "không có đoạn nào chứa đủ nội dung của câu hỏi"
        chunk = best.hit.chunk
        doc = self.retriever.snapshot.documents[chunk.doc_id]
        if self.config.place_strict and query.place and not self._about_place(query.place, best):
            return f"tài liệu không nói về {query.place}"
        if self.config.year_strict and query.years and not self._speaks_of_years(query, best, doc):
            return f"tài liệu không có số liệu năm {', '.join(map(str, query.years))}"
        if query.subplace and (fold(query.subplace).lower() not in fold(doc.text).lower()
                               or WHOLE_PROVINCE.search(f"{best.lead[-200:]} {best.text}")):
            return f"tài liệu không có số liệu riêng của {query.subplace}"  # "toàn tỉnh …": not Cửa Lò's own
        if query.english and len(query.normalized.split()) - len(query.text.split()) < 2:
            return "không hiểu đủ các từ tiếng Anh của câu hỏi; hãy hỏi bằng tiếng Việt"
        return None

    def _about_place(self, place: str, sent: _Sentence) -> bool:
        """The answer is about the asked place: its document is, or the document is about no known place and the
        chunk names it, or the document is about another place and the sentence or its paragraph names the asked
        one ("Hà Nội và TP Hồ Chí Minh là hai thị trường lao động lớn" in a Lâm Đồng report is no figure of Hà Nội)."""
        if not self.retriever.about_place(place, sent.hit.chunk):
            return False
        doc_place = self.retriever._doc_place(sent.hit.chunk)
        if doc_place is None or doc_place == place:
            return True
        return any(m.place.name == place for m in gazetteer.find_places(f"{sent.lead[-200:]} {sent.text}"))

    @staticmethod
    def _speaks_of_years(query: Query, best: _Sentence, doc) -> bool:
        """The asked year is written in the passage (not only as the start or end of a range), or the
        passage's document reports on that year and the sentence names no other year."""
        asked = set(query.years)
        # "cuối năm 2022 … (giảm 1% so với năm 2021)"; an undated sentence is dated by its paragraph
        dated = best.text if _own_years(best.text) else best.lead
        if _own_years(dated) and not asked & set(_years(dated)):
            return False  # the figure is dated, and not to the year asked
        written = years_in(YEAR_RANGE.sub(" ", best.text))
        if asked & set(written):
            return True  # "từ ngày 18 tháng 12 năm 2017 đứng đầu tòa là …"
        chunk = best.hit.chunk
        text = YEAR_RANGE.sub(" ", f"{chunk.header} {chunk.text}")
        if not query.wants_target:  # a figure asked: the day the report was written or held, or the year it plans
            text = PLAN_YEAR.sub(" ", DATED.sub(" ", text))  # for ("triển khai nhiệm vụ năm 2020"), dates no figure
        if asked & set(years_in(text)):
            return True
        return doc.meta.year in asked and not written


TABLE_YEAR_W = 1.0  # a table's column of the asked year, over the other years' columns
TABLE_WORD_W = 0.5  # the share of a column header's words the question says ("kế hoạch", "thực hiện")


def _column_bonus(query: Query, header: str, asked_words: set[str], wants_target: bool) -> float:
    """How well a table column's header fits the question: its year, its words, plan or result."""
    bonus = 0.0
    years = years_in(header)
    if query.years and years:
        bonus += TABLE_YEAR_W if set(years) & set(query.years) else -TABLE_YEAR_W
    words = [fold(w).lower() for w in syllables(header) if not years_in(w)]
    asked = {w.lower() for w in asked_words}
    if words:
        bonus += TABLE_WORD_W * sum(w in asked for w in words) / len(words)
    if TARGET_FOLDED.search(fold(header).lower()):  # a plan's column ("Kế hoạch 2023") unless a plan is asked
        bonus += CLAUSE_TARGET_W if wants_target else -CLAUSE_TARGET_W
    return bonus


def _clause_is_target(sentence: str, start: int) -> bool:
    """The value is a target in brackets after a result: "giảm 1,52% (chỉ tiêu được giao là 1,32%)"."""
    return bool(BRACKETED_TARGET.search(sentence[:start]))


def _compared_only(query: Query, sentence: str) -> list[re.Match]:
    """The sentence's "so với năm Y" for a year asked that it names only as a comparison base
    ("Tỷ lệ hộ nghèo 2,27%, giảm 1,29% so với năm 2022" for 2022); [] when it dates a figure to it."""
    if len(query.years) != 1:
        return []
    asked = query.years[0]
    bases = [m for m in COMPARED_YEAR.finditer(sentence) if asked in years_in(m.group())]
    if not bases or asked in _own_years(sentence):
        return []
    return bases


def _change_since(sentence: str, span: tuple[int, int], bases: list[re.Match]) -> tuple[int, int] | None:
    """The change that a value states against the asked year: "giảm 1,29% so với năm 2022" (its verb,
    the value, the comparison), or None when no comparison with that year follows the value in its clause."""
    for m in bases:
        between = sentence[span[1]:m.start()]
        if len(between) <= 40 and not re.search(r"[,;:()]", between):
            words = list(re.finditer(r"\S+", sentence[max(0, span[0] - 14):span[0]]))
            start = span[0]
            if words and VERB_RE.fullmatch(fold(words[-1].group()).lower()):
                start = max(0, span[0] - 14) + words[-1].start()
            return start, m.end()
    return None


def _own_years(text: str) -> list[int]:
    """The years a text dates its figures to: not those it compares with ("so với năm 2021")."""
    return years_in(COMPARED_YEAR.sub(" ", text))


def _years(text: str) -> list[int]:
    """Years a text speaks of, the years inside a range ("giai đoạn 2021 - 2025") included."""
    years = years_in(text)
    for m in YEAR_RANGE.finditer(text):
        a, b = int(m.group(1)), int(m.group(2))
        if a < b <= a + 20:
            years += range(a + 1, b)
    return years


def _predicate_bonus(verb: str, sentence: str, span: tuple[int, int]) -> float:
    """"giảm 3,09%" answers "giảm được bao nhiêu"; "còn 9,2%" does not."""
    if not verb:
        return 0.0
    near = fold(sentence[max(0, span[0] - 14):span[0] + 8]).lower()
    said = VERB_RE.findall(near)
    if not said:
        return 0.0
    return 0.3 if verb in said else -0.15


def _title_words(titles: list[str]) -> list[str]:
    """The titles that are offices ("Phó Chủ tịch"), not forms of address ("Ông", "đồng chí")."""
    return [t for t in titles if any(word in fold(t).lower() for word in TITLE_WORDS)]


def _title_fits(asked: str, written: list[str], organ: str | None = None) -> bool:
    """No title asked, none written, or one of the written titles is the asked one ("Phó" included),
    of the body asked ("Phó Chủ tịch HĐND" is not the "Phó Chủ tịch UBND")."""
    written = [fold(w).lower() for w in _title_words(written)]
    if not asked or not written:
        return True
    return any(asked.split()[-1] in w and asked.startswith("pho") == w.startswith("pho")
               and (organ is None or organ_of(w) in (None, organ)) for w in written)


def _citation(n: int, sent: _Sentence, documents=None) -> Citation:
    """The sentence quoted; one that starts in lowercase (a chunk cut after ";": "đưa người lao động …")
    is quoted from its sentence's start in the document ("Trong năm toàn tỉnh …; đưa người lao động …")."""
    start, text = sent.start, sent.text
    doc = documents.get(sent.hit.chunk.doc_id) if documents is not None else None
    if doc is not None and text[:1].islower():
        start = sentence_start(doc.text, sent.start)
        text = doc.text[start:sent.end]
    return Citation(
        n=n, doc_id=sent.hit.chunk.doc_id, source=sent.hit.source, chunk_id=sent.hit.chunk.id,
        start=start, end=sent.end, text=text, score=round(sent.score, 4),
    )


def _question_words(retriever: Retriever, query: Query) -> tuple[set[str], dict[str, float]]:
    """The words the question itself says (for an English question: their Vietnamese translations),
    and the idf weight of every query word, expansions included."""
    tokens = tokenize(query.normalized, query=True)
    words = set(tokens["fsyl"])
    idf = retriever.snapshot.lexical.idf(sorted(words), "fsyl")
    known = [w for w in idf.values() if w > 0]
    said_words = set(question_syllables(query))
    # A word no document holds ("SJC", "vàng", "tối thiểu") is evidence the answer is not here,
    # unless it is an English word left untranslated.
    unknown = float(np.median(known)) if known else 0.0
    idf = {t: (w if w > 0 else unknown if t in said_words else 0.0)
           for t, w in idf.items() if not t.isdigit() or len(t) == 4}
    return said_words & set(idf), idf


def _tokens(sentence: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), fold(m.group().lower())) for m in _TOKEN.finditer(sentence)]


CLAUSE_DECAY = 0.4  # a question word's weight next to a value, per clause boundary between them


def _proximity(tokens: list[tuple[int, int, str]], span: tuple[int, int], weights: dict[str, float],
               topic_end: int = 0) -> float:
    """How much of the question sits next to the candidate: each question word counts by its idf,
    decayed by its distance in words and much more by each clause boundary (",", ";", "(") between
    them, so that the clause's own words decide ("giảm 1,29% so với năm 2022"); words before the
    value count a little more than words after it. The sentence's topic (the words before its first
    value: "Tỷ lệ hộ nghèo") is shared by all its values and counts the same for each."""
    total = sum(weights.values()) or 1.0
    inside = [i for i, (s, e, _) in enumerate(tokens) if s < span[1] and e > span[0]]
    if not inside:
        return 0.0
    first, last = inside[0], inside[-1]
    walls = [0]
    for _, _, t in tokens:
        walls.append(walls[-1] + (t in _BOUNDARY))
    best: dict[str, float] = {}
    for i, (_, e, t) in enumerate(tokens):
        w = weights.get(t)
        if not w:
            continue
        if first <= i <= last:
            factor = 1.0
        elif i < first:
            factor = 0.9 ** (first - i) * CLAUSE_DECAY ** (walls[first] - walls[i + 1])
        else:
            factor = 0.8 * 0.9 ** (i - last) * CLAUSE_DECAY ** (walls[i] - walls[last + 1])
        if e <= topic_end:
            factor = max(factor, 0.6)
        best[t] = max(best.get(t, 0.0), w * factor)
    return sum(best.values()) / total


def _unit_bonus(unit: str, candidate: str) -> float:
    """The candidate counts what was asked ("62.696 vị trí việc làm" for "bao nhiêu vị trí việc làm")."""
    if not unit:
        return 0.0
    said = re.sub(r"^\D*\d+(?:[.,/]\d+)*\s*(?:ngan|nghin|trieu|ty|van)?\s*", "", fold(candidate).lower()).strip()
    if not said:
        return 0.0
    if f"{unit} ".startswith(f"{said} "):
        return 0.3
    for group in UNIT_CLASSES:
        if any(f"{unit} ".startswith(f"{u} ") for u in group):  # people or households were asked
            return 0.3 if said in group else -0.3  # "2 chỉ tiêu" does not count people
    return 0.0


def _same_measure(measured: tuple[str, ...], before: str) -> bool:
    """Whether a percentage's own "tỷ lệ …" (the last one written before it) is the rate asked: it holds at least
    half of the asked measure's word pairs (its word, for a one-word measure). A value no "tỷ lệ" precedes passes."""
    said = list(RATE_OF.finditer(fold(before).lower()))
    if not said:
        return True
    own = said[-1].group(1).split()
    pairs = set(zip(measured, measured[1:])) or {(w,) for w in measured}
    own_pairs = set(zip(own, own[1:])) | {(w,) for w in own}
    return 2 * len(pairs & own_pairs) >= len(pairs)


def _mentions(sentence: str, words: tuple[str, ...]) -> bool:
    """At least half of the words are in the sentence (folded)."""
    present = {fold(t).lower() for t in syllables(sentence)}
    return 2 * sum(w in present for w in words) >= len(words)


_NAMES = frozenset({"entity", "person", "place"})
_NEXT_SYLLABLE = re.compile(r"[ \t]+([^\W\d_]+)")


def _whole_name(sentence: str, end: int, document: str) -> int:
    """The end of a name cut after the first syllable of its last word. A Vietnamese name capitalises only a word's
    first syllable, so "Bộ Lao động – Thương binh và Xã" goes on with "hội". The next syllable joins the name when
    it is lowercase and the document writes the capitalised syllable followed by it every time, at least twice."""
    last = re.search(r"([^\W\d_]+)$", sentence[:end])
    after = _NEXT_SYLLABLE.match(sentence, end)
    if not last or not after or not last.group(1)[0].isupper() or not after.group(1).islower():
        return end
    followers = [m.group(1) for m in re.finditer(rf"(?<!\w){re.escape(last.group(1))}(?!\w)[ \t]+([^\W\d_]+)", document)]
    if len(followers) >= 2 and set(followers) == {after.group(1)}:
        return after.end()
    return end


def _free_span(query: Query, sentence: str) -> str:
    """No typed value: the sentence without the question's words at its edges, which the asker
    already knows ("Canada là một nhà nước quân chủ lập hiến" → "nhà nước quân chủ lập hiến")."""
    asked = {fold(t) for t in syllables(query.text)}
    words = [m for m in re.finditer(r"\S+", sentence) if fold(re.sub(r"[^\w]", "", m.group().lower())) not in asked]
    if not words:
        return sentence.strip()
    return sentence[words[0].start():words[-1].end()].strip(" ,.;:")


def with_filters(answer: Answer, province: str | None, year: int | None) -> Answer:
    """An abstention that says which filters limited the search ("chỉ tìm trong: tỉnh Nghệ An, năm 2022")."""
    if not answer.abstained or not (province or year) or not answer.answer_text.endswith(")."):
        return answer
    limits = ", ".join(x for x in (f"tỉnh {province}" if province else "", f"năm {year}" if year else "") if x)
    text = f"{answer.answer_text[:-2]}; bộ lọc đang bật, chỉ tìm trong: {limits} — bỏ bộ lọc để tìm trong mọi tài liệu)."
    return replace(answer, answer_text=text)


def answer_evidence(hits: list[Hit], sentence: _Sentence, sentences: list[_Sentence],
                    unknown: float) -> dict[str, float | None]:
    """What rag/abstention.py reads: the sentence's features, the first hit's score, the best support and
    question–sentence cosine among the candidates, and the share of the question's words no document holds."""
    close = [s.features.get("sent_dense") for s in sentences]
    return {**sentence.features, "top_score": hits[0].score if hits else 0.0,
            "best_support": max((s.support for s in sentences), default=0.0),
            "best_sent_dense": max((c for c in close if c is not None), default=None), "unknown": unknown}


def question_syllables(query: Query) -> list[str]:
    """The question's own words (folded syllables; numbers other than years left out), as `unknown` counts them."""
    said = query.normalized[len(query.text):] if query.english else query.text  # (English: its translations)
    words = dict.fromkeys(tokenize(said, query=True)["fsyl"])
    return [w for w in words if not w.isdigit() or len(w) == 4]


def unknown_share(query: Query, doc_freq) -> float:
    """The share of the question's words that no document of the index holds ("giá vàng SJC" in reports on
    jobs); `doc_freq(words)` gives each word's document frequency in the folded syllable field."""
    words = question_syllables(query)
    if not words:
        return 0.0
    df = doc_freq(words)
    return sum(not df.get(w) for w in words) / len(words)


def abstain(query: Query, reason: str, confidence: float | None = None) -> Answer:
    searched = [f"“{query.text}”"]
    if query.place:
        searched.append(f"địa phương: {', '.join(query.places or (query.place,))}")
    if query.years:
        searched.append(f"năm: {', '.join(map(str, query.years))}")
    text = f"Không tìm thấy thông tin trả lời trong các tài liệu ({reason}; đã tìm: {'; '.join(searched)})."
    return Answer(query.text, None, True, text, (), confidence=confidence)
