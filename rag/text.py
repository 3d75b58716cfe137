"""Vietnamese text primitives: normalisation, diacritic folding, tokens.

>>> normalize("Thừa uỷ quyền, hoá đơn")
'Thừa ủy quyền, hóa đơn'
>>> fold("Tỷ lệ hộ nghèo Huế")
'ty le ho ngheo hue'
>>> syllables("Tỷ lệ hộ nghèo 2,27%, giảm 1,29%")
['tỷ', 'lệ', 'hộ', 'nghèo', '2,27%', 'giảm', '1,29%']
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from .lexicon import NUMBER, NUMBER_TOKEN, YEAR_DIGITS, YEAR_RE

# (Every token starts with a word character, a letter or a digit, so the two alternatives never compete;
# the look-ahead lets the engine skip spaces and punctuation fast.)
TOKEN_RE = re.compile(rf"(?=\w)(?:[^\W\d_]+(?:[-'][^\W\d_]+)*|{NUMBER_TOKEN})", re.UNICODE)
_WORD_RE = re.compile(r"[^\W\d_]+", re.UNICODE)
_SPACES_RE = re.compile(r"[ \t\u00a0\u2000-\u200b\u3000]+")


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


@lru_cache(maxsize=200_000)
def _normalize_word(word: str) -> str:
    """Put the tone mark where modern spelling has it ("hoá" → "hóa"), via underthesea."""
    if word.isascii():
        return word
    from underthesea import text_normalize  # lazy: importing underthesea costs seconds

    fixed = nfc(text_normalize(word))
    # text_normalize re-tokenises; accept only a same-length, single-word rewrite so offsets hold.
    return fixed if len(fixed) == len(word) and " " not in fixed else word


def normalize(text: str) -> str:
    """NFC, then modern tone placement word by word (length-preserving)."""
    text = nfc(text)
    if text.isascii():
        return text
    return _WORD_RE.sub(lambda m: _normalize_word(m.group(0)), text)


_TONES = "\u0300\u0301\u0309\u0303\u0323"  # huyền, sắc, hỏi, ngã, nặng
_OLD_TONE = re.compile(  # "hoà", "hoá", "khoẻ", "thuỷ" at syllable end: tone on the 2nd vowel
    "([oO])([" + "".join(unicodedata.normalize("NFC", v + t) for v in "aAeE" for t in _TONES)
    + r"])(?!\w)|([uU])(?<![qQ][uU])([" + "".join(unicodedata.normalize("NFC", v + t) for v in "yY" for t in _TONES)
    + r"])(?!\w)")


def _retone(m: re.Match) -> str:
    first, second = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    base, tone = unicodedata.normalize("NFD", second)
    return unicodedata.normalize("NFC", first + tone) + base


def modern_tone(text: str) -> str:
    """Move the tone to the first vowel, same length: "Hoà Bình" -> "Hòa Bình", "Thuỷ" -> "Thủy"."""
    return _OLD_TONE.sub(_retone, text)


@lru_cache(maxsize=4096)
def fold_char(ch: str) -> str:
    if ch in "đĐ":
        return "d"
    base = unicodedata.normalize("NFD", ch)[0]
    low = base.lower()
    return low if len(low) == 1 else base


@lru_cache(maxsize=500_000)
def fold(text: str) -> str:
    """Lowercase and strip diacritics, NFC/NFD alike: "Thừa Thiên Huế" -> "thua thien hue"."""
    folded = "".join(fold_char(c) for c in unicodedata.normalize("NFC", text))
    return "".join(c for c in folded if not unicodedata.combining(c))


def normalize_query(text: str) -> str:
    """NFC and modern tone placement without loading underthesea (fast, for questions).

    Differs from `normalize` only on rare old-style spellings; the folded BM25 fields match them anyway.
    """
    return modern_tone(nfc(text))


def has_diacritics(text: str) -> bool:
    """True when any letter carries a Vietnamese mark (or is đ)."""
    return any(ord(ch) > 127 and ch.isalpha() for ch in text)


def syllables(text: str) -> list[str]:
    """Lowercased syllables and numbers, punctuation dropped."""
    return TOKEN_RE.findall(nfc(text).lower())


def bigrams(tokens: list[str]) -> list[str]:
    """Adjacent pairs joined by "_": a cheap stand-in for Vietnamese compound words."""
    return [f"{a}_{b}" for a, b in zip(tokens, tokens[1:])]


_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def lone_surrogate(text: str) -> str | None:
    """The first lone surrogate in `text` as "U+D800", or None. Such a string is not text: no UTF-8
    can hold it (a JSON "\\ud800" escape, bytes that were not UTF-8 decoded with surrogateescape)."""
    m = _SURROGATE_RE.search(text)
    return f"U+{ord(m.group()):04X}" if m else None


def without_surrogates(text: str) -> str:
    """`text` with its lone surrogates replaced by U+FFFD, so it can be shown or sent back."""
    return _SURROGATE_RE.sub("\ufffd", text)


def collapse_spaces(text: str) -> str:
    return _SPACES_RE.sub(" ", text).strip()


def years_in(text: str) -> list[int]:
    """Years mentioned, in order: years_in("năm 2023, so với 2022") == [2023, 2022]."""
    return [int(y) for y in YEAR_RE.findall(text)]


def numbers_in(text: str) -> set[str]:
    """The numbers a text states, years left out: numbers_in("còn 9,2% năm 2023") == {"9,2"}."""
    return {n for n in NUMBER.findall(text) if not YEAR_DIGITS.fullmatch(n)}


# The sentences the answerer scores and quotes (and the index stores vectors of): a fast regex splitter.
# (Chunks are cut at underthesea's sentences, chunker.split_sentences, and the reranker reads the pieces of
# lexical.SENTENCE_CUT: each is stored in indexes, so each stays; eval/compare_splitters.py shows how they differ.)
_SENT_SPLIT = re.compile(r"(?<=[.!?;])\s+(?=[A-ZĐÀ-Ỹ\d\[“\"-])|\n+|(?<=:)\s+(?=[A-ZĐ])")


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


MAX_LOOK_BACK = 600  # characters a quoted sentence is extended back, at most


def sentence_start(text: str, pos: int) -> int:
    """Where the sentence holding text[pos] starts (`sentence_spans`' boundaries), looking back at most
    MAX_LOOK_BACK characters; `pos` itself when no boundary is found that close."""
    lo = max(0, pos - MAX_LOOK_BACK)
    start = lo if lo == 0 else None
    for m in _SENT_SPLIT.finditer(text, lo, pos):
        if m.end() <= pos:
            start = m.end()
    return pos if start is None else start
