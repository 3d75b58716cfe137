"""Follow-up questions: the question actually asked, given the conversation's earlier turns.

A follow-up leaves out what the earlier turn said: the place, the year, the measure, the subject,
or the document. `resolve` puts it back, from the parsed earlier question (rag/query.py) and the
gazetteer (rag/gazetteer.py), and leaves a question that stands on its own unchanged:

>>> h = [Turn("Tỷ lệ hộ nghèo Huế 2023?")]
>>> resolve("Còn năm 2022 thì sao?", h).asked
'Tỷ lệ hộ nghèo Thừa Thiên Huế năm 2022?'
>>> resolve("Còn số người được giải quyết việc làm?", h).asked
'Số người được giải quyết việc làm Thừa Thiên Huế năm 2023?'
>>> resolve("Chiếm tỷ lệ bao nhiêu?", [Turn("Số hộ nghèo An Giang cuối năm 2022 là bao nhiêu?")]).asked
'Số hộ nghèo An Giang cuối năm 2022 chiếm tỷ lệ bao nhiêu?'
>>> resolve("Ai là Giám đốc Sở Lao động Nghệ An?", h).inherited
()

The rules, on the folded text (so unaccented questions work too):
- only a place and/or a year ("Còn năm 2022 thì sao?", "Nghệ An thì sao?"): the earlier question
  with that place or year put in;
- no subject, the question starts with its predicate ("Chiếm tỷ lệ bao nhiêu?", "Giảm bao nhiêu?"):
  the earlier question's subject (its place and time included) before it;
- a new measure marked as a follow-up ("Còn …", "Vậy …", "… thì sao", "tỉnh đó", "năm ấy", "tài liệu
  này"): the earlier place and year where it names none;
- otherwise (a question with its own measure and no follow-up mark) it stands alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from . import gazetteer
from .query import EmptyQuestion, analyse
from .text import collapse_spaces, fold, normalize_query, years_in
from .types import Query

MAX_TURNS = 20  # earlier turns read, at most (the most recent ones)
MAX_FIELD_CHARS = 4000  # a turn's question or answer, at most (the API says so in its 400)


@dataclass(frozen=True)
class Turn:
    """An earlier turn: what was asked, what was answered, and the cited document if known."""

    question: str
    answer: str = ""
    doc_id: str | None = None


@dataclass(frozen=True)
class Resolution:
    """The question actually asked, and what it took from the earlier turns."""

    question: str  # as typed
    asked: str  # what is answered; == question when nothing was inherited
    inherited: tuple[str, ...] = ()  # "place", "year", "measure", "subject", "document"

    @property
    def changed(self) -> bool:
        return self.asked != self.question


@dataclass(frozen=True)
class _Frame:
    """What a (resolved) question is about."""

    text: str  # the resolved question
    query: Query
    doc_place: str | None = None  # the cited document's province and year, when known
    doc_year: int | None = None

    @property
    def place(self) -> str | None:  # the most specific place: the district when one was named
        return self.query.subplace or self.query.place or self.doc_place

    @property
    def year(self) -> int | None:
        return self.query.years[0] if self.query.years else self.doc_year


# -- the words, folded
_LEAD = re.compile(r"^(?:(?:the|va|vay|con|the con|vay con|va con|con ve|con doi voi|con voi|nhung|"
                   r"what about|how about|and)\b[\s,]*)+")
_TAIL = re.compile(r"[\s,]*(?:thi sao|the nao|ra sao|thi the nao|thi ra sao|nua|a|vay|nhi)?\s*[?.!…]*\s*$")
_QUESTION = re.compile(r"\b(?:la bao nhieu|bao nhieu|la may|may|la gi|gi|la ai|ai|nao|o dau|dau|khi nao"
                       r"|bao gio|nhu the nao|the nao|ra sao|how many|how much|what|which|who|when|where)\b")
# a question that starts with its predicate has no subject of its own
_PREDICATE = re.compile(r"^(?:chiem|dat|giam|tang|vuot|bang|so voi|tuong duong|trong do|trong so do|"
                        r"con lai|gom|bao gom)\b")
_PREDICATE_ACCENTED = re.compile(r"^(?:chiếm|đạt|giảm|tăng|vượt|bằng|so với|tương đương|trong đó|trong số đó|"
                                 r"còn lại|gồm|bao gồm)(?!\w)")
_POINTERS = ("đó", "này", "ấy", "trên", "kia")  # "tỉnh đó": accented, "do" (by) is no "đó" (that)


def _refs(*heads: str) -> tuple[re.Pattern, re.Pattern]:
    """(accented, folded) patterns of "<head> đó/này/…"; the folded one is for unaccented questions."""
    accented = rf"(?<!\w)(?:{'|'.join(heads)})\s+(?:{'|'.join(_POINTERS)})(?!\w)" if heads else \
        rf"(?<!\w)(?:{'|'.join(_POINTERS)})(?!\w)"
    return re.compile(accented), re.compile(fold(accented))


_ANAPHORA = _refs()
_PLACE_REF = _refs("tỉnh", "thành phố", "địa phương", "địa bàn", "huyện", "thị xã")
_YEAR_REF = _refs("năm", "cùng kỳ")
_DOC_REF = _refs("tài liệu", "báo cáo", "văn bản", "bài viết", "bài báo", "hội nghị")
_TIME = re.compile(r"\b(?:(?:vao\s+)?(?:cuoi|dau|giua|trong|het)\s+)?(?:nam\s+)?(?:19|20)\d{2}\b")
_COMPARED = re.compile(r"\b(?:so voi|bang|nhu)\s+(?:cung ky\s+)?(?:nam\s+)?(?:19|20)\d{2}\b")
_PLACE_LEAD = re.compile(r"(?:\b(?:o|tai|cua|tinh|thanh pho|tp\.?)\s+)+$")


def resolve(question: str, history: Sequence[Turn | Mapping] = (), *,
            document: Callable[[str], tuple[str | None, int | None]] | None = None) -> Resolution:
    """The question actually asked after `history` (earlier turns, oldest first).

    `document(doc_id)` gives a cited document's (province, year): a turn whose question named no place
    or year passes on those of the document it was answered from. Raises EmptyQuestion on an empty
    question, ValueError on a malformed turn.
    """
    turns = [_turn(t) for t in history][-MAX_TURNS:]
    frame: _Frame | None = None
    for turn in turns:  # each earlier turn resolved against the one before it
        try:
            text = _rewrite(turn.question, frame)[0] if frame else collapse_spaces(normalize_query(turn.question))
            frame = _frame(text, turn.doc_id, document)
        except EmptyQuestion:
            continue  # an empty earlier turn carries nothing
    typed = collapse_spaces(normalize_query(question))
    analyse(typed)  # (raises EmptyQuestion)
    if frame is None:
        return Resolution(question=typed, asked=typed)
    asked, inherited = _rewrite(typed, frame)
    return Resolution(question=typed, asked=asked, inherited=inherited)


def _turn(item: Turn | Mapping) -> Turn:
    if isinstance(item, Turn):
        return item
    if not isinstance(item, Mapping):
        raise ValueError(f"a turn must be an object with a question, got {type(item).__name__}")
    q, a, d = item.get("question"), item.get("answer", ""), item.get("doc_id")
    if not isinstance(q, str) or not isinstance(a, str) or (d is not None and not isinstance(d, str)):
        raise ValueError("a turn's question, answer and doc_id must be strings")
    return Turn(q, a, d)


def _frame(text: str, doc_id: str | None, document) -> _Frame:
    query = analyse(text)
    place, year = (None, None)
    if doc_id and document is not None:
        place, year = document(doc_id)
    return _Frame(_canonical(text), query, place, year)


def _canonical(text: str) -> str:
    """Places by their gazetteer names ("Huế" → "Thừa Thiên Huế"); districts stay as written."""
    for m in reversed(gazetteer.find_places(text) or gazetteer_folded(text)):
        if not m.via.startswith("subplace:"):
            text = f"{text[:m.start]}{m.place.name}{text[m.end:]}"
    return text


# -- rewriting

def _rewrite(typed: str, prev: _Frame) -> tuple[str, tuple[str, ...]]:
    """The typed question completed from the earlier frame, and what was taken from it."""
    query = analyse(typed)
    text = query.text
    folded = _fold(text)
    lead = _LEAD.match(folded)
    marked = bool(lead and lead.end()) or bool(re.search(r"\b(?:thi sao|ra sao|the nao)\s*[?.!]*\s*$", folded)) \
        or bool(re.match(r"^(?:what|how) about\b", folded))
    start = lead.end() if lead else 0
    body, body_folded = text[start:], folded[start:]
    tail = _TAIL.search(body_folded)
    if tail and marked:
        body, body_folded = body[:tail.start()], body_folded[:tail.start()]
    plain = body_folded if query.folded else body.lower()  # what the pointer patterns read
    pick = 1 if query.folded else 0
    place_ref, year_ref, doc_ref, pointer = (bool(r[pick].search(plain))
                                             for r in (_PLACE_REF, _YEAR_REF, _DOC_REF, _ANAPHORA))
    measure = _measure(body, body_folded)
    inherited: list[str] = []
    place = query.subplace or query.place
    own = years_in(_COMPARED.sub(" ", folded))  # "giảm bao nhiêu so với năm 2021": 2021 is not the year asked
    year = own[0] if own else None

    if doc_ref and (prev.doc_place or prev.doc_year):  # "tài liệu này": the cited document's place and year
        inherited.append("document")
    if not measure.strip():  # only a place and/or a year: the earlier question with them put in
        if not (place or year):
            return text, ()
        out = prev.text
        if place and place != prev.place:
            out = _put_place(out, place)
        elif not place and prev.place and prev.place != prev.query.subplace and prev.place != prev.query.place:
            out = _put_place(out, prev.place)  # the earlier place came from its document
        if year and year != prev.year:
            out = _put_year(out, year)
        inherited += ["measure"] + (["place"] if not place and prev.place else []) + \
            (["year"] if not year and prev.year else [])
        return _finish(out), tuple(dict.fromkeys(inherited))

    if _no_subject(body, query.folded):  # "Chiếm tỷ lệ bao nhiêu?": the earlier subject before it
        subject = _subject(prev.text)
        if place and place != prev.place:
            subject = _put_place(subject, place)
        if year and year != prev.year:
            subject = _put_year(subject, year)
        predicate = _strip_time_place(text[start:], query) if (place or year) else text[start:]
        return _finish(f"{subject} {_lower_first(predicate)}"), ("subject",)

    if not (marked or place_ref or year_ref or doc_ref or (pointer and not place and not year)):
        return text, ()  # a question of its own
    out = body  # without "Còn …" and "… thì sao"
    want_place = prev.place if not place else None
    want_year = prev.year if not year else None
    if place_ref and want_place:
        out = _sub_at(out, _PLACE_REF[pick], plain, lambda s: f"{s.split()[0]} {want_place}")
        want_place, inherited = None, inherited + ["place"]
    if year_ref and want_year:
        out = _sub_at(out, _YEAR_REF[pick], plain, lambda s: f"năm {want_year}")
        want_year, inherited = None, inherited + ["year"]
    extra = " ".join(x for x in (want_place, f"năm {want_year}" if want_year else "") if x)
    if extra:
        out = _insert(out, extra)
        inherited += (["place"] if want_place else []) + (["year"] if want_year else [])
    if not inherited:
        return text, ()
    return _finish(out), tuple(dict.fromkeys(inherited))


_LAST_ASKED = re.compile(r"^(?:(?:la|duoc|dat|co|thi|bang)\s+)*(?:bao nhieu|may|gi|ai|nao|o dau|khi nao|bao gio"
                         r"|nhu the nao|ra sao)\s*[?.!…]*\s*$")


def _insert(text: str, extra: str) -> str:
    """`extra` (a place, a year) before a closing "là bao nhiêu?", else first ("Thừa Thiên Huế năm 2023 tạo
    được việc làm cho bao nhiêu người?": put after the question word, "ở Huế" would be read as its noun's)."""
    head, q = _split_question(text)
    if not q or _LAST_ASKED.match(_fold(q)):
        return f"{head.rstrip(' ,')} {extra}{(' ' + q) if q else ''}"
    first = text[:1].lower() + text[1:] if text[1:2].islower() else text
    return f"{extra[:1].upper()}{extra[1:]} {first}"


def _no_subject(body: str, folded: bool) -> bool:
    """The question starts with its predicate ("Chiếm tỷ lệ bao nhiêu?"), after any place or time words;
    accented words are compared accented ("đặt mục tiêu" is no "đạt")."""
    text = body
    for m in sorted(gazetteer.find_places(text), key=lambda m: -m.start):
        text = text[:m.start] + text[m.end:]
    text = re.sub(r"^[\s,]+", "", _TIME_ACCENTED.sub(" ", text)).lower().strip()
    return bool(_PREDICATE.match(_fold(text)) if folded else _PREDICATE_ACCENTED.match(text))


_TIME_ACCENTED = re.compile(r"\b(?:(?:vào\s+)?(?:cuối|đầu|giữa|trong|hết)\s+)?(?:năm\s+)?(?:19|20)\d{2}\b", re.I)


def _measure(body: str, body_folded: str) -> str:
    """What is left of the body once places, years, anaphora and filler words are taken out."""
    spans = [(m.start, m.end) for m in gazetteer.find_places(body)]
    spans += [(m.start, m.end) for m in gazetteer_folded(body)]
    spans += [(m.start(), m.end()) for m in _TIME.finditer(body_folded)]
    spans += [(m.start(), m.end()) for r in (_PLACE_REF[1], _YEAR_REF[1]) for m in r.finditer(body_folded)]
    keep = [True] * len(body)
    for a, b in spans:
        for i in range(a, min(b, len(body))):
            keep[i] = False
    rest = "".join(c if k else " " for c, k in zip(body, keep))
    folded_rest = _fold(rest)
    folded_rest = re.sub(r"\b(?:o|tai|cua|tinh|thanh pho|tp|nam|thi|la|ve|con|sao|nua|vay)\b", " ", folded_rest)
    return collapse_spaces(re.sub(r"[^\w]+", " ", folded_rest))


def gazetteer_folded(text: str) -> list:
    """Places written without diacritics in an accented question ("hộ nghèo ở hue")."""
    return [m for m in gazetteer.find_places(text, folded=True) if _fold(m.surface) == m.surface.lower()]


def _subject(text: str) -> str:
    """The earlier question without its interrogative tail: "Số hộ nghèo … là bao nhiêu?" → "Số hộ nghèo …"."""
    head, _ = _split_question(text)
    head = head.rstrip(" ,")
    dangling = re.search(r"(?:\s+(?:cho|cua|la|duoc|dat|co|o|tai|voi|thi|trong))+$", _fold(head))
    return head[:dangling.start()] if dangling and dangling.start() > 0 else head


def _split_question(text: str) -> tuple[str, str]:
    """(subject, interrogative tail) of a question; the tail keeps its "?"."""
    text = text.rstrip()
    folded = _fold(text)
    m = _QUESTION.search(folded)
    if m:
        cut = m.start()
        before = re.search(r"(?:\b(?:la|duoc|dat|co|thi|bang)\s+)+$", folded[:cut])
        if before:
            cut = before.start()
        if cut > 0:
            return text[:cut].rstrip(" ,"), text[cut:]
    stripped = text.rstrip("?.!… ")
    return stripped, text[len(stripped):].strip()


def _put_place(text: str, place: str) -> str:
    """`text` speaking of `place`: the first place it names replaced, or the place added before the time."""
    mentions = gazetteer.find_places(text) or gazetteer_folded(text)
    if mentions:
        m = mentions[0]
        return f"{text[:m.start]}{place}{text[m.end:]}"
    folded = _fold(text)
    t = _TIME.search(folded)
    if t:
        return f"{text[:t.start()].rstrip()} {place} {text[t.start():]}"
    head, q = _split_question(text)
    return f"{head} {place}{(' ' + q) if q else ''}"


def _put_year(text: str, year: int) -> str:
    """`text` dated `year`: its years replaced (a bare "2023" becomes "năm 2022"), or "năm Y" added."""
    folded = _fold(text)
    found = years_in(text)
    if found and len(set(found)) == 1:
        old = str(found[0])

        def sub(m: re.Match) -> str:
            before = folded[:m.start()]
            return str(year) if re.search(r"\bnam\s+$", before) else f"năm {year}"
        return re.sub(rf"(?<!\d){old}(?!\d)", sub, text)
    head, q = _split_question(text)
    return f"{head} năm {year}{(' ' + q) if q else ''}"


def _strip_time_place(text: str, query: Query) -> str:
    """The predicate without the place and time the subject now carries."""
    folded = _fold(text)
    compared = [(m.start(), m.end()) for m in _COMPARED.finditer(folded)]
    spans = [(m.start, m.end) for m in gazetteer.find_places(text)]
    spans += [(m.start(), m.end()) for m in _TIME.finditer(folded)
              if not any(a <= m.start() < b for a, b in compared)]
    for a, b in sorted(spans, reverse=True):
        before = _PLACE_LEAD.search(_fold(text[:a]))
        a = before.start() if before else a
        text = text[:a] + text[b:]
    return collapse_spaces(text)


def _sub_at(text: str, pattern: re.Pattern, plain: str, repl: Callable[[str], str]) -> str:
    """`text` with each match of `pattern` in `plain` (its folded or lowercased twin, same offsets) replaced."""
    out, pos = [], 0
    for m in pattern.finditer(plain):
        out += [text[pos:m.start()], repl(text[m.start():m.end()])]
        pos = m.end()
    return "".join(out) + text[pos:]


def _finish(text: str) -> str:
    text = collapse_spaces(re.sub(r"\s+([?,.!])", r"\1", text)).strip(" ,")
    if not text.endswith(("?", ".", "!")):
        text += "?"
    return text[:1].upper() + text[1:]


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() or len(text) < 2 else text


def _fold(text: str) -> str:
    """Folded and lowercased, one character per character (offsets carry over)."""
    return "".join((fold(c) or c)[:1] for c in text).lower()


__all__ = ["MAX_FIELD_CHARS", "MAX_TURNS", "Resolution", "Turn", "resolve"]
