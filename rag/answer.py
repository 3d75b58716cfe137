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
from dataclasses import dataclass, field

from . import gazetteer
from .lexical import tokenize
from .query import analyse
from .retriever import Retriever
from .text import fold, syllables, years_in
from .types import Hit, Query

_SENT_SPLIT = re.compile(r"(?<=[.!?;])\s+(?=[A-ZĐÀ-Ỹ\d\[“\"-])|\n+|(?<=:)\s+(?=[A-ZĐ])")
_NUM = r"\d+(?:[.,]\d+)*"
_QUANT = r"(?:(?:khoảng|hơn|trên|gần|dưới|tới|đến|chỉ|mới)\s+)?"
SPAN_PATTERNS: dict[str, re.Pattern] = {
    "percent": re.compile(rf"{_QUANT}{_NUM}(?:\s*-\s*{_NUM})?\s?%"),
    "money": re.compile(rf"{_QUANT}{_NUM}\s*(?:tỷ|triệu|nghìn|ngàn)?\s*(?:đồng|USD|usd)", re.I),
    "count": re.compile(
        rf"{_QUANT}{_NUM}(?:\s*(?:ngàn|nghìn|triệu|vạn))?\s+(?:lượt\s+)?"
        r"(?:người|lao động|hộ|học viên|đối tượng|suất quà|suất|cá nhân|tập thể|chỉ tiêu|vị trí việc làm|"
        r"phiên|đơn vị|lượt|SV|HS|HV|trẻ em|xã|phường|huyện|ngôi nhà|nhà|tỷ đồng)"
    ),
    "date": re.compile(r"(?:ngày\s+)?\d{1,2}/\d{1,2}(?:/\d{4})?|ngày \d{1,2} tháng \d{1,2}(?: năm \d{4})?|tháng \d{1,2}/\d{4}"),
    "number": re.compile(rf"{_QUANT}{_NUM}(?:\s*(?:ngàn|nghìn|triệu|tỷ))?"),
}
_TITLE = (
    r"(?:Phó Chủ tịch thường trực UBND tỉnh|Phó Chủ tịch UBND tỉnh|Chủ tịch UBND tỉnh|Phó Chủ tịch HĐND tỉnh|"
    r"Phó Chủ tịch|Chủ tịch|Giám đốc Sở|Giám đốc|Phó Giám đốc|Trưởng phòng|Bộ trưởng|Đồng chí|đồng chí|Ông|ông|Bà|bà)"
)
_SURNAMES = (
    "Nguyễn Trần Lê Phạm Hoàng Huỳnh Phan Vũ Võ Đặng Bùi Đỗ Hồ Ngô Dương Lý Đoàn Đinh Lương Trương Mai Cao Lâm "
    "Tạ Hà Châu Tô Trịnh Quách Lưu Đào Thái Kiều Thân Triệu La Từ Chu Tăng Lục Mạc Hứa Khúc Vương Đàm Nông Lò "
    "Lại Giang Kim Tống Văn Âu Doãn Khổng Lưu Ông Phùng Quan Tôn Trình Tiêu Hàn Hầu Mã Lã Diệp Thạch Viên"
).split()
_NAME = rf"(?:{'|'.join(_SURNAMES)})(?:\s+[A-ZĐ][a-zà-ỹđ]+){{1,3}}"
_PERSON = re.compile(rf"(?:{_TITLE}\s+)?({_NAME})")
_TARGET = re.compile(r"mục tiêu|phấn đấu|dự kiến|chỉ tiêu (?:chủ yếu|chính)|\btarget|\bgoal", re.I)
_TARGET_FOLDED = re.compile(r"muc tieu|chi tieu|phan dau|ke hoach|\bplan")
_ENGLISH_WORDS = frozenset("what which who whom how many much when where was were is are the of in did does do for to".split())
_NOT_NAMES = {"Lao Động", "Thương Binh", "Xã Hội", "Ủy Ban", "Nhân Dân", "Chính Phủ", "Thủ Tướng"}


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

    def to_json(self, qid=None) -> dict:
        """The contract's fields, in the contract's order."""
        return {
            "id": qid, "question": self.question, "answer": self.answer, "abstained": self.abstained,
            "answer_text": self.answer_text,
            "citations": [c.__dict__.copy() for c in self.citations],
            "mode": self.mode, "timings_ms": self.timings_ms,
        }


@dataclass(frozen=True)
class AnswerConfig:
    k: int = 6  # passages read
    min_support: float = 0.45  # abstain when the best sentence holds less of the question than this
    place_strict: bool = True  # abstain when the asked place is not what the passage is about
    year_strict: bool = True  # abstain when the asked year appears nowhere near the answer


@dataclass
class _Sentence:
    hit: Hit
    start: int  # offsets into the document
    end: int
    text: str
    support: float = 0.0
    score: float = 0.0


class Answerer:
    def __init__(self, retriever: Retriever, config: AnswerConfig = AnswerConfig()) -> None:
        self.retriever = retriever
        self.config = config

    def ask(self, question: str, *, k: int | None = None, province: str | None = None, year: int | None = None) -> Answer:
        t0 = time.perf_counter()
        query = analyse(question)
        hits = self.retriever.search(query, k or self.config.k, province=province, year=year)
        t1 = time.perf_counter()
        answer = self._answer(query, hits)
        t2 = time.perf_counter()
        timings = {"retrieve": round((t1 - t0) * 1000, 2), "answer": round((t2 - t1) * 1000, 2)}
        return Answer(
            question=query.text, answer=answer.answer, abstained=answer.abstained, answer_text=answer.answer_text,
            citations=answer.citations, mode="extractive", timings_ms=timings, retrieval_mode=self.retriever.mode,
        )

    # -- steps

    def _answer(self, query: Query, hits: list[Hit]) -> Answer:
        if not hits:
            return _abstain(query, "không có đoạn văn nào khớp với câu hỏi")
        sentences = self._score_sentences(query, hits)
        if not sentences:
            return _abstain(query, "không có câu nào khớp với câu hỏi")
        best = max(sentences, key=lambda s: s.score)
        reason = self._unsupported(query, best)
        if reason:
            return _abstain(query, reason)
        span = extract_span(query, best.text)
        citation = Citation(
            n=1, doc_id=best.hit.chunk.doc_id, source=best.hit.source, chunk_id=best.hit.chunk.id,
            start=best.start, end=best.end, text=best.text, score=round(best.score, 4),
        )
        sentence = best.text.rstrip()
        answer_text = f"{sentence.rstrip('.;:')} [1]."
        return Answer(query.text, span, False, answer_text, (citation,))

    def _score_sentences(self, query: Query, hits: list[Hit]) -> list[_Sentence]:
        words, idf = _question_words(self.retriever, query)
        total = sum(idf.values()) or 1.0
        top_score = hits[0].score or 1.0
        out: list[_Sentence] = []
        for hit in hits:
            chunk = hit.chunk
            context = {fold(t) for t in syllables(chunk.header)}
            lead = ""  # the paragraph's earlier sentences: "Năm 2024, ngành đề ra…: Giải quyết việc làm…"
            for s, e in sentence_spans(chunk.text):
                text = chunk.text[s:e]
                if s == 0 or "\n" in chunk.text[max(0, s - 2):s]:
                    lead = ""
                present = {fold(t) for t in syllables(text)} | context
                support = sum(w for t, w in idf.items() if t in present) / total
                sent = _Sentence(hit, chunk.start + s, chunk.start + e, text, support)
                sent.score = support + 0.3 * (hit.score / top_score) + self._features(query, sent, lead)
                out.append(sent)
                lead = f"{lead} {text}"[-400:]
        return out

    def _features(self, query: Query, sent: _Sentence, lead: str = "") -> float:
        bonus = -0.15 * min(1.0, len(sent.text.split()) / 80)  # long sentences cover words by chance
        years = set(years_in(sent.text)) or set(years_in(lead)[-1:])  # else the paragraph's last year
        if query.years:
            if years & set(query.years):
                bonus += 0.1
            elif years:
                bonus -= 0.15
        wants_target = bool(_TARGET.search(query.text)) or bool(_TARGET_FOLDED.search(fold(query.text)))
        is_target = bool(_TARGET.search(sent.text) or _TARGET.search(lead[-150:]))
        if wants_target != is_target:
            bonus -= 0.1
        if query.expects in SPAN_PATTERNS or query.expects == "person":
            if extract_candidates(query.expects, sent.text):
                bonus += 0.15
            else:
                bonus -= 0.3
        if query.place:
            bonus += 0.4 if self.retriever.about_place(query.place, sent.hit.chunk) else -0.4
        return bonus

    def _unsupported(self, query: Query, best: _Sentence) -> str | None:
        """Why the best sentence does not answer the question, or None when it does."""
        if best.support < self.config.min_support:
            return "không có đoạn nào chứa đủ nội dung của câu hỏi"
        chunk = best.hit.chunk
        doc = self.retriever.snapshot.documents[chunk.doc_id]
        if self.config.place_strict and query.place and not self.retriever.about_place(query.place, best.hit.chunk):
            return f"tài liệu không nói về {query.place}"
        if query.expects in ("person", "date", "percent") and not extract_candidates(query.expects, best.text):
            kinds = {"person": "tên người", "date": "ngày tháng", "percent": "tỷ lệ phần trăm"}
            return f"không tìm thấy {kinds[query.expects]} trong đoạn phù hợp nhất"
        if self.config.year_strict and query.years:
            near = chunk.text + " " + chunk.header
            if not any(str(y) in near for y in query.years) and not set(query.years) & set(doc.meta.years):
                return f"tài liệu không có số liệu năm {', '.join(map(str, query.years))}"
        return None


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentence offsets inside `text` (a fast regex splitter, good enough for scoring)."""
    spans = []
    pos = 0
    for m in _SENT_SPLIT.finditer(text):
        if m.start() > pos:
            spans.append((pos, m.start()))
        pos = m.end()
    if pos < len(text):
        spans.append((pos, len(text)))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def _question_words(retriever: Retriever, query: Query) -> tuple[set[str], dict[str, float]]:
    tokens = tokenize(query.normalized, query=True)
    words = set(tokens["fsyl"])
    idf = retriever.snapshot.lexical.idf(sorted(words), "fsyl")
    known = [w for w in idf.values() if w > 0]
    english = len(_ENGLISH_WORDS & set(syllables(query.text))) >= 2
    # A word no document holds ("SJC", "vàng") is evidence the answer is not here, unless it is English.
    unknown = 0.0 if english or not known else float(np.median(known))
    idf = {t: (w if w > 0 else unknown) for t, w in idf.items()}
    return words, {t: w for t, w in idf.items() if not t.isdigit() or len(t) == 4}


def extract_candidates(kind: str | None, sentence: str) -> list[tuple[int, int]]:
    """Spans of values of the given type in the sentence (years excluded)."""
    candidates: list[tuple[int, int]] = []
    if kind == "person":
        candidates = [m.span(1) for m in _PERSON.finditer(sentence) if m.group(1) not in _NOT_NAMES
                      and not gazetteer.lookup(m.group(1))]
    elif kind == "place":
        candidates = [(m.start, m.end) for m in gazetteer.find_places(sentence, folded=False)]
    elif kind in SPAN_PATTERNS:
        candidates = [m.span() for m in SPAN_PATTERNS[kind].finditer(sentence)]
        if not candidates and kind in ("count", "money", "percent"):
            candidates = [m.span() for m in SPAN_PATTERNS["number"].finditer(sentence) if not _is_year(m.group())]
    return [c for c in candidates if not _is_year(sentence[c[0]:c[1]])]


def extract_span(query: Query, sentence: str) -> str:
    """The exact answer inside `sentence`: a value of the expected type nearest the question's words."""
    candidates = extract_candidates(query.expects, sentence)
    if not candidates:
        return _free_span(query, sentence)
    anchor = _anchor(query, sentence)
    best = min(candidates, key=lambda c: (_distance(c, anchor), c[0]))
    return sentence[best[0]:best[1]].strip(" ,.;")


def _is_year(text: str) -> bool:
    return bool(re.fullmatch(r"(?:19|20)\d{2}", text.strip()))


def _anchor(query: Query, sentence: str) -> tuple[int, int]:
    """The span of the longest run of the question's words in the sentence (the answer sits next to it)."""
    q = [fold(t) for t in syllables(query.text)]
    toks = [(m.start(), m.end(), fold(m.group().lower())) for m in re.finditer(r"\S+", sentence)]
    toks = [(s, e, re.sub(r"[^\w%]", "", t)) for s, e, t in toks]
    best, best_len = (0, 0), 0
    qs = set(q)
    qpairs = set(zip(q, q[1:]))
    run = 0
    for i, (s, e, t) in enumerate(toks):
        if t in qs and not re.fullmatch(r"[\d.,%]+", t):
            run = run + 1 if i and (toks[i - 1][2], t) in qpairs else 1
            if run >= best_len:
                best, best_len = (toks[i - run + 1][0], e), run
        else:
            run = 0
    return best


def _distance(span: tuple[int, int], anchor: tuple[int, int]) -> float:
    """0 when the value touches the question's words ("27 phiên giao dịch"), else characters away;
    values after the words are preferred ("Tỷ lệ hộ nghèo 2,27%")."""
    if span[0] <= anchor[1] + 1 and span[1] >= anchor[0] - 1:
        return 0.0
    if span[0] > anchor[1]:
        return span[0] - anchor[1]
    return (anchor[0] - span[1]) * 3 + 50


def _free_span(query: Query, sentence: str) -> str:
    """No typed value: the longest run of the sentence that the question does not already say."""
    qwords = {fold(t) for t in syllables(query.text)}
    words = list(re.finditer(r"\S+", sentence))
    runs: list[tuple[int, int]] = []
    start = None
    for i, m in enumerate(words):
        inside = fold(re.sub(r"[^\w]", "", m.group().lower())) in qwords
        if not inside and start is None:
            start = i
        if inside and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(words)))
    if not runs:
        return sentence.strip()
    a, b = max(runs, key=lambda r: (min(r[1] - r[0], 12), -r[0]))
    b = min(b, a + 15)
    return sentence[words[a].start():words[b - 1].end()].strip(" ,.;:")


def _abstain(query: Query, reason: str) -> Answer:
    searched = [f"“{query.text}”"]
    if query.place:
        searched.append(f"địa phương: {query.place}")
    if query.years:
        searched.append(f"năm: {', '.join(map(str, query.years))}")
    text = f"Không tìm thấy thông tin trả lời trong các tài liệu ({reason}; đã tìm: {'; '.join(searched)})."
    return Answer(query.text, None, True, text, ())
