"""Clean extracted text: normalise it, drop web boilerplate, keep related news as sections.

Local news sites end an article with "Các tin khác" (other news): headlines with a one-paragraph
summary each. Users ask about them ("13,5 tỷ đồng", the boiler explosion in Đồng Nai), so they are
kept, each as its own section, while the navigation around them is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .text import _WORD_RE, _normalize_word, nfc
from .types import Section

# Lines that only carry site navigation.
_BOILERPLATE = re.compile(
    r"^\s*(?:\|+|Xem các tin đã đưa ngày:?.*|Tin trong:.*Chuyên mục.*|Các tin đã đưa(?: ngày.*)?"
    r"|Chuyên mục này|Mọi chuyên mục|In bài viết|Gửi email|Chia sẻ:?|Bản in|Về đầu trang)\s*$",
    re.IGNORECASE,
)
# Headings that open the related-news block.
_RELATED = re.compile(r"^\s*(?:Các tin khác|Tin liên quan|Tin cùng chuyên mục|Bài viết liên quan)\s*:?\s*$", re.I)
_FOOTNOTE = re.compile(r"^\s*\[\d{1,3}\]\s*\S")


def clean(raw: str) -> tuple[str, tuple[Section, ...]]:
    """Cleaned text and its sections (body, footnotes, one per related-news item).

    >>> text, sections = clean("Tỷ lệ hộ nghèo 2,27%.\\n\\nCác tin khác\\n\\nTin A\\n\\nTóm tắt A.\\n|\\n")
    >>> text
    'Tỷ lệ hộ nghèo 2,27%.\\n\\nTin A\\nTóm tắt A.'
    >>> [(s.kind, text[s.start:s.end]) for s in sections]
    [('body', 'Tỷ lệ hộ nghèo 2,27%.'), ('related', 'Tin A\\nTóm tắt A.')]
    """
    text, sections, _ = clean_pages([raw])
    return text, sections


def clean_pages(pages: Sequence[str]) -> tuple[str, tuple[Section, ...], tuple[int, ...]]:
    """`clean` of a document given page by page, and where each page starts in the cleaned text
    (a page without text starts where the next one does).

    >>> text, _, starts = clean_pages(["Trang một.", "", "Trang  ba.\\n\\nHết."])
    >>> text, starts
    ('Trang một.\\n\\nTrang ba.\\n\\nHết.', (0, 12, 12))
    """
    paragraphs: list[tuple[str, str]] = []  # (kind, text)
    page_of: list[int] = []  # the page each paragraph starts on
    in_related = False
    for number, raw in enumerate(pages):
        # (NFC again: moving a tone can let a stray combining mark compose, "hoà\u0300" → "hòà")
        text = nfc(_normalize(raw)).replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "").replace("\f", "\n\n")
        for para in _paragraphs(text):
            if _RELATED.match(para):
                in_related = True
                continue
            kind = "related" if in_related else ("footnotes" if _FOOTNOTE.match(para) else "body")
            paragraphs.append((kind, para))
            page_of.append(number)
    pairs, firsts = _pair_related(paragraphs)
    text, sections, starts = _assemble(pairs)
    page_starts = [len(text)] * len(pages)
    for i in reversed(range(len(pairs))):
        page_starts[page_of[firsts[i]]] = starts[i]
    for number in reversed(range(len(pages) - 1)):  # a page without text starts where the next one does
        page_starts[number] = min(page_starts[number], page_starts[number + 1])
    return text, sections, tuple(page_starts)


def _normalize(text: str) -> str:
    """`text.normalize`, about twice as fast on documents: each distinct word is looked up once, and
    the text is rewritten only when some word has an old-style tone ("hoà" → "hòa"), which is rare."""
    text = nfc(text)
    if text.isascii():
        return text
    fixes = {w: fixed for w in set(_WORD_RE.findall(text)) if (fixed := _normalize_word(w)) != w}
    if not fixes:
        return text
    return _WORD_RE.sub(lambda m: fixes.get(m.group(0), m.group(0)), text)


def _paragraphs(text: str) -> list[str]:
    """Non-empty paragraphs, boilerplate lines removed, spaces collapsed inside lines."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        lines = [re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in block.split("\n")]
        lines = [line for line in lines if line and not _BOILERPLATE.match(line)]
        # A heading glued to boilerplate on the same line ("…Mọi chuyên mục" at the end) is dropped above.
        if lines:
            out.append("\n".join(lines))
    return out


def _pair_related(paragraphs: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[int]]:
    """Join each related-news headline with the summary paragraph that follows it; and, for each
    paragraph out, the index of the first paragraph in it."""
    out: list[tuple[str, str]] = []
    firsts: list[int] = []
    i = 0
    while i < len(paragraphs):
        kind, para = paragraphs[i]
        nxt = paragraphs[i + 1] if i + 1 < len(paragraphs) else None
        firsts.append(i)
        if kind == "related" and nxt and nxt[0] == "related" and _is_headline(para) and not _is_headline(nxt[1]):
            out.append(("related", f"{para}\n{nxt[1]}"))
            i += 2
            continue
        out.append((kind, para))
        i += 1
    return out, firsts


def _is_headline(para: str) -> bool:
    return "\n" not in para and len(para) < 200 and not para.rstrip().endswith((".", "..", "…"))


def _assemble(paragraphs: list[tuple[str, str]]) -> tuple[str, tuple[Section, ...], list[int]]:
    """Join paragraphs with blank lines; consecutive body paragraphs form one section; and where each
    paragraph starts."""
    pieces: list[str] = []
    sections: list[Section] = []
    starts: list[int] = []
    pos = 0
    for kind, para in paragraphs:
        if pieces:
            pieces.append("\n\n")
            pos += 2
        start, pos = pos, pos + len(para)
        starts.append(start)
        pieces.append(para)
        if sections and sections[-1].kind == kind and kind != "related":
            sections[-1] = Section(sections[-1].start, pos, kind)
        else:
            sections.append(Section(start, pos, kind))
    return "".join(pieces), tuple(sections), starts
