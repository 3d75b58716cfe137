"""Comparison questions across places: "Tỉnh nào có tỷ lệ hộ nghèo năm 2023 thấp hơn, Hòa Bình hay Huế?"

Each place is asked on its own ("tỷ lệ hộ nghèo năm 2023 Hòa Bình"), the values found are compared,
and the answer cites every side. When one side is not in the documents, the answer abstains and
says which.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from . import extract, gazetteer
from .query import analyse
from .text import collapse_spaces, fold
from .types import Query

if TYPE_CHECKING:
    from .answer import Answer, Answerer

_MORE = r"cao hon|nhieu hon|lon hon|tot hon|cao nhat|nhieu nhat|lon nhat|higher|more|most|larger|highest|largest"
_LESS = r"thap hon|it hon|nho hon|thap nhat|it nhat|nho nhat|lower|fewer|less|least|lowest|smaller"
# "nhiều lao động … hơn", "nhiều lao động nhất": the adjective and its degree word apart
_SPLIT_MORE = r"(?:nhieu|cao|lon)(?:\s+\S+){1,8}?\s+(?:hon|nhat)"
_SPLIT_LESS = r"(?:it|thap|nho)(?:\s+\S+){1,8}?\s+(?:hon|nhat)"
_COMPARATIVE = re.compile(rf"\b(?:{_MORE}|{_LESS}|{_SPLIT_MORE}|{_SPLIT_LESS})\b")
_MORE_RE = re.compile(rf"\b(?:{_MORE}|{_SPLIT_MORE})\b")
_WHICH = re.compile(r"\b(?:tinh nao|thanh pho nao|dia phuong nao|noi nao|ben nao|which)\b")
# Words that only frame the comparison; dropped from the per-place question.
_FRAME = re.compile(
    rf"\b(?:{_MORE}|{_LESS}|tinh nao|thanh pho nao|dia phuong nao|noi nao|ben nao|trong (?:hai|ba|cac) tinh|"
    r"giua|hay|hoac|voi|va|which|or|and|between|province|hon|nhat)\b"
)


def is_comparison(query: Query) -> bool:
    return len(query.places) >= 2 and bool(_COMPARATIVE.search(fold(query.text).lower()))


def answer(answerer: Answerer, query: Query, k: int, year: int | None, timings: dict) -> Answer:
    from .answer import Answer, abstain, _citation

    base = _base_question(query)
    sides = []
    for place in query.places:
        sub = analyse(f"{base} {place}")
        hits = answerer._search(sub, k, None, year, timings)
        pick, reason, _ = answerer.choose(sub, hits)
        number = extract.value(pick[1]) if pick else None
        if pick is None or number is None:
            return abstain(query, f"không tìm thấy số liệu của {place}" + (f" ({reason})" if reason else ""))
        sides.append((place, pick[0], pick[1], number))
    more = bool(_MORE_RE.search(fold(query.text).lower()))
    winner = (max if more else min)(sides, key=lambda side: side[3])
    word = _comparative_word(query.text, more)
    parts = [f"{place}: {span} [{n}]" for n, (place, _, span, _) in enumerate(sides, 1)]
    answer_text = f"{winner[0]} {word} ({'; '.join(parts)})."
    citations = tuple(_citation(n, sent, answerer.retriever.snapshot.documents)
                      for n, (_, sent, _, _) in enumerate(sides, 1))
    asks_which = bool(_WHICH.search(fold(query.text).lower())) or " hay " in f" {query.text.lower()} "
    return Answer(query.text, winner[0] if asks_which else winner[2], False, answer_text, citations)


def _base_question(query: Query) -> str:
    """The question without its places and comparison words: "có tỷ lệ hộ nghèo năm 2023"."""
    text = query.text
    mentions = gazetteer.find_places(text, folded=query.folded or None) or gazetteer.find_places(text, folded=True)
    for m in sorted(mentions, key=lambda m: m.start, reverse=True):
        text = text[:m.start] + " " + text[m.end:]
    words = [w for w in re.findall(r"\S+", text) if not _FRAME.fullmatch(fold(w.strip(",.?!:;")).lower())]
    folded = fold(" ".join(words)).lower()
    # multi-word frames ("cao hơn", "tỉnh nào") are dropped word by word above; drop leftovers like "tỉnh"
    kept = [w for w, f in zip(words, folded.split()) if f not in {"tinh", "nao"}]
    return collapse_spaces(" ".join(kept).strip(" ,.?!:;"))


def _comparative_word(question: str, more: bool) -> str:
    m = re.search(r"\b(cao|nhiều|lớn|thấp|ít|nhỏ|tốt)(?:\s+\S+){0,8}?\s+(hơn|nhất)\b", question.lower())
    if m:
        return f"{m.group(1)} {m.group(2)}"
    return "cao hơn" if more else "thấp hơn"
