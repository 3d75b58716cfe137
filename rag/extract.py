"""Typed answer candidates inside a sentence: percentages, money, counts with units, dates, people,
places, named things ("Công ty TNHH gỗ Bình Minh", "Nghị quyết số 42-NQ/TW"), and their values.

>>> s = "Tỷ lệ hộ nghèo 2,27%, giảm 1,29% so với năm 2022."
>>> [s[a:b] for a, b in candidates("percent", s)]
['2,27%', '1,29%']
>>> s = "giải quyết việc làm cho khoảng 24 ngàn người [1]"
>>> [s[a:b] for a, b in candidates("count", s)]
['khoảng 24 ngàn người']
>>> value("khoảng 24 ngàn người"), value("2,27%"), value("17.034 người")
(24000.0, 2.27, 17034.0)
"""

from __future__ import annotations

import re

from . import gazetteer
from .lexicon import (ADDRESS, ADDRESS_BEFORE, FOOTNOTE_MARK, GENERIC_ORG_HEADS, IN_YEAR, MULTIPLIERS, NAME_GLUE,
                      NAME_PARTICLES, NOT_AN_AMOUNT, NOT_NAMES, OFFICE_PREFIX, OFFICES, ORG_WORDS, ORGS, SURNAMES,
                      TITLES, VIETNAMESE_NUMBER, YEAR_DIGITS)
from .lexicon import VALUE_PATTERNS as PATTERNS  # (the typed values' patterns, by their old name here)
from .text import fold

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def candidates(kind: str | None, sentence: str, head: str | None = None, loose: bool = False) -> list[tuple[int, int]]:
    """Spans of values of the given kind in the sentence; bare years and footnote marks excluded.
    `loose`: when no name of the kind is found, any run of capitalised words will do."""
    if kind == "person":
        spans = person_spans(sentence) or office_spans(sentence)
    elif kind == "place":
        spans = [(m.start, m.end) for m in gazetteer.find_places(sentence, folded=False)]
        spans += _named_after(sentence, ("tỉnh", "thành phố", "huyện", "quận", "thị xã", "xã", "phường"))
    elif kind == "entity":
        spans = _named_after(sentence, (head,) if head else ())
        if head and fold(head).lower() in GENERIC_ORG_HEADS:  # "cơ quan nào" → "Công an phường Thịnh Lang"
            spans += [(a, b) for a, b in _named_after(sentence, ORGS) if sentence[a].isupper()]
    elif kind in PATTERNS:
        spans = [m.span() for m in PATTERNS[kind].finditer(sentence)]
        if not spans and kind in ("count", "money"):  # a bare number, not a duration ("5 năm") nor a code
            spans = [m.span() for m in PATTERNS["number"].finditer(sentence) if not NOT_AN_AMOUNT.match(sentence, m.end())]
    else:
        spans = []
    if loose and not spans and kind in ("person", "place", "entity"):
        spans = proper_names(sentence)  # "Charles de Gaulle", "Puerto Rico"
    marks = [m.span() for m in FOOTNOTE_MARK.finditer(sentence)]
    if not spans and kind == "date":  # no day written: the year is the answer ("năm 1898")
        return [m.span() for m in IN_YEAR.finditer(sentence)]
    return [
        (a, b) for a, b in dict.fromkeys(spans)
        if not YEAR_DIGITS.fullmatch(sentence[a:b].strip()) and not any(s <= a and b <= e for s, e in marks)
    ]


def proper_names(sentence: str) -> list[tuple[int, int]]:
    """Runs of capitalised words not opening the sentence ("Charles de Gaulle", "Puerto Rico")."""
    words = list(re.finditer(r"[^\W\d_][\w'.-]*", sentence))
    spans, run = [], []
    for i, w in enumerate(words):
        text = w.group()
        gap = sentence[run[-1].end():w.start()] if run else " "
        if text[0].isupper() and i > 0 and gap.strip() in ("", "-") and (run or text not in ORG_WORDS):
            run.append(w)
        elif run and text in NAME_PARTICLES and gap == " ":
            run.append(w)
        else:
            if run:
                while run and run[-1].group() in NAME_PARTICLES:
                    run.pop()
                if run:
                    spans.append((run[0].start(), run[-1].end()))
            run = [w] if text[0].isupper() and i > 0 and text not in ORG_WORDS else []
    while run and run[-1].group() in NAME_PARTICLES:
        run.pop()
    if run:
        spans.append((run[0].start(), run[-1].end()))
    return spans


def person_spans(sentence: str) -> list[tuple[int, int]]:
    """Names: a surname followed by one to three capitalised syllables ("Nguyễn Thị Ái Vân")."""
    words = list(_WORD.finditer(sentence))
    spans = []
    i = 0
    while i < len(words):
        w = words[i]
        if w.group() in SURNAMES:
            j = i + 1
            while j < len(words) and j - i <= 3 and words[j].group()[0].isupper() \
                    and sentence[words[j - 1].end():words[j].start()] == " ":
                j += 1
            if j - i >= 2:
                a, b = w.start(), words[j - 1].end()
                name = sentence[a:b]
                if name not in NOT_NAMES and not gazetteer.lookup(name):
                    spans.append((a, b))
                i = j
                continue
        i += 1
    return spans


def office_spans(sentence: str) -> list[tuple[int, int]]:
    """An office named without its holder: "Quyền Chủ tịch UBND tỉnh Đồng Nai (yêu cầu …)"."""
    spans = []
    for a, b in _named_after(sentence, OFFICES):
        if not sentence[a].isupper() or b - a <= len(sentence[a:b].split()[0]) + 9:
            continue  # a bare "Chủ tịch": not who
        prefix = OFFICE_PREFIX.search(sentence[:a])
        spans.append((prefix.start() if prefix else a, b))
    return [s for s in spans if not any(o != s and o[0] <= s[0] and s[1] <= o[1] for o in spans)]


def titles_near(sentence: str, start: int, end: int) -> list[str]:
    """Titles written right before a name ("Phó Chủ tịch HĐND tỉnh Nguyễn Thị Ái Vân") or right after
    it ("Nguyễn Văn Toàn, Phó Chủ tịch UBND tỉnh"; "Hoàng Văn Phúc – Thị ủy viên, Phó Chủ tịch")."""
    before = sentence[max(0, start - 60):start].rstrip()
    found = [t for t in TITLES if before.endswith(t)][:1]
    if found and found[0] not in ADDRESS:
        return found  # "…UBND tỉnh Nguyễn Thanh Bình, Phó Chủ tịch HĐND tỉnh Nguyễn Thị Ái Vân": the next is hers
    after = sentence[end:end + 80]
    m = re.match(r"\s*[,–-]\s*(?:[^,;.()]{0,25},\s*)?", after)
    if m:
        rest = after[m.end():]
        found += [t for t in TITLES if rest.startswith(t)][:1]
    return found


def _named_after(sentence: str, heads: tuple[str, ...]) -> list[tuple[int, int]]:
    """"<head> <Name…>": the head word followed by the name it introduces, up to punctuation, with
    trailing lowercase words dropped ("Nghị quyết số 42-NQ/TW về …" → "Nghị quyết số 42-NQ/TW")."""
    spans = []
    folded = fold(sentence).lower()
    for head in filter(None, heads):
        h = fold(head).lower()
        for m in re.finditer(rf"(?<!\w){re.escape(h)}(?!\w)", folded):
            tail = re.match(r"[^,;:.()\[\]\n“”\"]*", sentence[m.end():m.end() + 120]).group()
            toks = list(re.finditer(r"\S+", tail))[:10]
            keep = 0
            for n, t in enumerate(toks):
                word = t.group()
                if word[0].isupper() or word[0].isdigit() or word in NAME_GLUE or word.isupper():
                    keep = n + 1
                elif n + 1 < len(toks) and n < 8 and (toks[n + 1].group()[0].isupper() or toks[n + 1].group() in NAME_GLUE):
                    continue  # "gỗ Bình Minh", "vùng cao Mai Châu", "Kỹ thuật – Tổng hợp"
                elif keep == 0 and n < 2 and word.islower():
                    continue
                else:
                    break
            if keep:
                end = m.end() + toks[keep - 1].end()
                while end > m.end() and sentence[end - 1] in "–-& ":
                    end -= 1
                spans.append((m.start(), end))
    return spans


def value(span: str) -> float | None:
    """The number a span states, Vietnamese style: "17.034" = 17034, "2,27" = 2.27, "24 ngàn" = 24000;
    None when it states none, or a list ("1,2,3 người")."""
    m = re.search(r"\d+(?:[.,]\d+)*", span)
    if not m:
        return None
    digits = m.group()
    if not VIETNAMESE_NUMBER.fullmatch(digits):
        return None  # "1,2,3 người": a list; "1.2.3": a section number
    number = float(digits.replace(".", "").replace(",", "."))
    after = span[m.end():].split()
    if after and after[0] in MULTIPLIERS:
        number *= MULTIPLIERS[after[0]]
    return number
