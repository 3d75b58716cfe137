"""Question understanding: everything the retriever and the answerer read from a question, found once.

The year(s), places, expected answer type, the abbreviations and English terms expanded, and what
the answerer weighs: the unit counted, the measure a rate is of, the verb asked, target or result,
the title and its organ, a comparison of places. The words and patterns are in `rag/lexicon.py`.

>>> q = analyse("XKLĐ Nghệ An 2023")
>>> q.years, q.place, q.expects
((2023,), 'Nghệ An', 'count')
>>> "xuất khẩu lao động" in q.normalized
True
>>> analyse("ty le ho ngheo hue 2023").place
'Thừa Thiên Huế'
>>> q = analyse("Tỷ lệ hộ nghèo của Huế cuối năm 2022 giảm bao nhiêu?")
>>> q.measure, q.verb, sorted(q.time_words), q.wants_target
(('ho', 'ngheo'), 'giam', ['2022', 'cuoi', 'nam'], False)
>>> q = analyse("Phó Chủ tịch UBND tỉnh Nghệ An tên là gì?")
>>> q.title, q.organ, q.wants_name
('pho chu tich', 'ubnd', True)
>>> c = analyse("Tỉnh nào có tỷ lệ hộ nghèo năm 2023 thấp hơn, Hòa Bình hay Huế?").comparison
>>> c.more, c.word, c.which, c.base  # ("thấp" stays: only "thấp hơn" and "hơn" are frame words)
(False, 'thấp hơn', True, 'có tỷ lệ hộ nghèo năm 2023 thấp')
>>> analyse("Tỷ lệ hộ nghèo Hòa Bình năm 2023").comparison is None
True
"""

from __future__ import annotations

import re

from . import gazetteer
from .lexicon import (ABBREVIATIONS, ASKED_UNIT_FOLDED, COMPARATIVE, COMPARATIVE_WORD, COUNT_WORDS, DOCUMENT_ASKED,
                      ENGLISH, EXPLAINS, OPEN_WH,
                      ENGLISH_FUNCTION_WORDS, ENGLISH_HEADS, ENTITY_HEADS, EXPECTED_TYPES, FRAME, FRAME_LEFTOVERS,
                      HOW_MANY_FOLDED, MEASURED_FOLDED, MORE, NAME_ASKED_FOLDED, ORGANS, SYNONYMS, TARGET,
                      TARGET_FOLDED, TIME_FOLDED, TITLE_WORDS, VERB_RE, WHICH)
from .text import collapse_spaces, fold, has_diacritics, normalize_query, numbers_in, syllables, years_in
from .types import Comparison, Query

_SYNONYM_RES = [(re.compile(rf"\b{re.escape(fold(p))}\b"), group) for group in SYNONYMS for p in group]
_ABBR_RE = re.compile(
    r"(?<![\w&.-])(" + "|".join(re.escape(a) for a in sorted(ABBREVIATIONS, key=len, reverse=True)) + r")(?![\w&-])",
    re.IGNORECASE,
)
_FOLDED_ABBR = {fold(a): a for a in ABBREVIATIONS}

_ENTITY_RE = re.compile(
    r"\b(" + "|".join(sorted((fold(h) for h in ENTITY_HEADS), key=len, reverse=True)) + r")((?:\s+(?!ngay\b|nam\b|thang\b|khi\b|luc\b)\w+){0,2}?)\s+(?:nao|gi)\b"
)
_ENGLISH_ENTITY_RE = re.compile(r"\b(?:which|what)\s+(" + "|".join(ENGLISH_HEADS) + r")\b")


class EmptyQuestion(ValueError):
    """Nothing is left of the question once it is normalised (invisible characters, spaces)."""


def analyse(text: str) -> Query:
    """Parse a question; raises EmptyQuestion (a ValueError) on an empty one."""
    cleaned = collapse_spaces(normalize_query(text))
    if not cleaned:
        raise EmptyQuestion("nothing is left once invisible characters and spaces are dropped")
    folded = not has_diacritics(cleaned)
    mentions = gazetteer.find_places(cleaned, folded=folded or None)
    if not mentions and not folded:  # "hộ nghèo ở hue": try the unaccented words too
        mentions = [m for m in gazetteer.find_places(cleaned, folded=True) if not has_diacritics(m.surface)]
    places = tuple(dict.fromkeys(m.place.name for m in mentions))
    subplace = next((m.via.split(":", 1)[1] for m in mentions[:1] if m.via.startswith("subplace:")), None)
    folded_text = fold(cleaned).lower()
    expects, head = _expects(cleaned, folded_text)
    normalized = expand(cleaned)
    folded_normalized = fold(normalized).lower()
    title = _asked_title(folded_normalized)
    return Query(
        text=cleaned,
        normalized=normalized,
        folded=folded,
        years=tuple(dict.fromkeys(years_in(cleaned))),
        place=places[0] if places else None,
        expects=expects,
        head=head,
        places=places,
        subplace=subplace,
        folded_text=folded_text,
        folded_words=tuple(fold(t) for t in syllables(normalized)),
        numbers=frozenset(numbers_in(cleaned)),
        english=len(ENGLISH_FUNCTION_WORDS & set(syllables(cleaned.lower()))) >= 2,
        time_words=frozenset(t for m in TIME_FOLDED.finditer(folded_text) for t in m.group().split()),
        unit=_asked_unit(folded_text),
        measure=_measure(folded_normalized, (*places, subplace or "")),
        verb=_asked_verb(folded_text),
        wants_target=bool(TARGET.search(cleaned)) or bool(TARGET_FOLDED.search(folded_text)),
        title=title,
        organ=organ_of(folded_normalized) if title else None,
        wants_name=bool(title) or bool(NAME_ASKED_FOLDED.search(folded_text)),
        asks_document=bool(DOCUMENT_ASKED.search(normalized)),
        comparison=_comparison(cleaned, folded, folded_text, places),
    )


def expand(text: str) -> str:
    """Append the expansions of abbreviations and English terms to the question."""
    extra: list[str] = []
    for m in _ABBR_RE.finditer(text):
        key = next((a for a in ABBREVIATIONS if a.lower() == m.group(1).lower()), None)
        if key:
            extra += ABBREVIATIONS[key]
    for word in re.findall(r"[\w&.-]+", text):  # unaccented abbreviations: "xkld" → XKLĐ
        key = _FOLDED_ABBR.get(fold(word))
        if key and len(word) >= 3:
            extra += ABBREVIATIONS[key]
    folded = fold(text).lower()
    for pattern, group in _SYNONYM_RES:
        if pattern.search(folded):
            extra += [g for g in group if fold(g) not in folded]
    lower = text.lower()
    for english, vietnamese in ENGLISH.items():
        if english in lower and re.search(rf"\b{re.escape(english)}\b", lower):  # (the substring test is the fast one)
            extra.append(vietnamese)
    extra = [e for e in dict.fromkeys(extra) if e.lower() not in lower]
    return " ".join([text, *extra])


def _expects(text: str, folded: str) -> tuple[str | None, str | None]:
    """The expected answer type, and for a named thing the noun that introduces it (`folded`: the text folded)."""
    if EXPLAINS.search(folded):  # "Vì sao tỷ lệ hộ nghèo giảm?" asks for a reason, not for a percentage
        return None, None
    m = _ENTITY_RE.search(folded)
    if m and m.group(1) != "so":
        words = text.split()
        start = len(folded[:m.start(1)].split())
        return "entity", " ".join(words[start:start + len(m.group(1).split())])
    m = _ENGLISH_ENTITY_RE.search(folded)
    if m:
        return "entity", ENGLISH_HEADS[m.group(1)]
    for kind, pattern in EXPECTED_TYPES:
        if re.search(pattern, folded):
            return kind, None
    if COUNT_WORDS.search(folded) and not OPEN_WH.search(folded):
        return "count", None
    return None, None


_TITLE_RES = tuple((word, re.compile(rf"(pho\s+)?{word}")) for word in TITLE_WORDS)


def _asked_title(folded_normalized: str) -> str:
    """The title in a "who" question, folded: "pho chu tich", "chu tich", "giam doc", or ""."""
    for word, pattern in _TITLE_RES:
        m = pattern.search(folded_normalized) if word in folded_normalized else None  # (the substring test is fast)
        if m:
            return m.group()
    return ""


def organ_of(folded: str) -> str | None:
    """Whose office a title is (in a folded question or title): the People's Committee ("ubnd") or
    Council ("hdnd"), if said."""
    return next((name for name, pattern in ORGANS.items() if re.search(pattern, folded)), None)


def _asked_verb(folded_text: str) -> str:
    """The verb the question asks about: "giảm bao nhiêu" → "giam"; "còn bao nhiêu" → "con"."""
    m = HOW_MANY_FOLDED.search(folded_text)
    verbs = VERB_RE.findall(folded_text[:m.start()] if m else folded_text)
    return verbs[-1] if verbs else ""


def _asked_unit(folded_text: str) -> str:
    """The thing counted: "bao nhiêu vị trí việc làm" → "vi tri viec lam" (folded)."""
    m = ASKED_UNIT_FOLDED.search(folded_text)
    return m.group(1).strip() if m else ""


def _measure(folded_normalized: str, places: tuple[str, ...]) -> tuple[str, ...]:
    """What a rate is of: "Tỷ lệ hộ nghèo Huế 2023" → ("ho", "ngheo"); the words of `places` left out."""
    m = MEASURED_FOLDED.search(folded_normalized)
    if not m:
        return ()
    place = {fold(t).lower() for name in places for t in syllables(name)}
    return tuple(t for t in m.group(1).split() if t not in place)


def _comparison(text: str, folded: bool, folded_text: str, places: tuple[str, ...]) -> Comparison | None:
    """What a question comparing its places asks ("… thấp hơn, Hòa Bình hay Huế?"); None for any other."""
    if len(places) < 2 or not COMPARATIVE.search(folded_text):
        return None
    more = bool(MORE.search(folded_text))
    which = bool(WHICH.search(folded_text)) or " hay " in f" {text.lower()} "
    return Comparison(more, _comparative_word(text, more), which, _base_question(text, folded))


def _base_question(text: str, folded: bool) -> str:
    """The question without its places and comparison words: "Tỉnh nào có tỷ lệ hộ nghèo năm 2023 thấp hơn, Hòa Bình
    hay Huế?" → "có tỷ lệ hộ nghèo năm 2023 thấp"."""
    mentions = gazetteer.find_places(text, folded=folded or None) or gazetteer.find_places(text, folded=True)
    for m in sorted(mentions, key=lambda m: m.start, reverse=True):
        text = text[:m.start] + " " + text[m.end:]
    words = [w for w in re.findall(r"\S+", text) if not FRAME.fullmatch(fold(w.strip(",.?!:;")).lower())]
    folded_words = fold(" ".join(words)).lower()
    # multi-word frames ("cao hơn", "tỉnh nào") are dropped word by word above; drop leftovers like "tỉnh"
    kept = [w for w, f in zip(words, folded_words.split()) if f not in FRAME_LEFTOVERS]
    return collapse_spaces(" ".join(kept).strip(" ,.?!:;"))


def _comparative_word(question: str, more: bool) -> str:
    m = COMPARATIVE_WORD.search(question.lower())
    if m:
        return f"{m.group(1)} {m.group(2)}"
    return "cao hơn" if more else "thấp hơn"
