"""Split a document into sentence-aligned chunks with a context header.

Chunks never cross a section (the body, a related-news item, a footnote), never cut a sentence
unless it alone is longer than the chunk size, and never cut between a number and its unit
("13,5 tỷ đồng", "17.034 người"). Footnotes are linked both ways: the chunk citing "[1]" carries
the footnote's text in `extra`, and the footnote's chunk carries the citing sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import gazetteer
from .lexicon import UNIT_START
from .types import Chunk, Document, Section

_MARKER = re.compile(r"(?<!^)\[(\d{1,3})\]", re.M)
_FOOTNOTE_LINE = re.compile(r"^\[(\d{1,3})\]\s*(.+)$", re.M)
_HAS_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class ChunkConfig:
    size: int = 1000  # characters, soft limit
    overlap: int = 150  # characters of trailing sentences repeated in the next chunk

    def __post_init__(self) -> None:
        if self.size < 50:
            raise ValueError(f"chunk size must be at least 50 characters, got {self.size}")
        if not 0 <= self.overlap < self.size:
            raise ValueError(f"chunk overlap must be in [0, size), got {self.overlap}")


def chunk_document(doc: Document, config: ChunkConfig = ChunkConfig()) -> list[Chunk]:
    sections = doc.sections or (Section(0, len(doc.text)),)
    spans: list[tuple[int, int, str]] = []
    for sec in sections:
        if sec.kind == "footnotes":
            lines = _FOOTNOTE_LINE.finditer(doc.text[: sec.end], sec.start)
            spans += [(m.start(), m.end(), "footnote") for m in lines]
        else:
            sentences = split_sentences(doc.text, sec.start, sec.end)
            spans += [(s, e, sec.kind) for s, e in _pack(doc.text, sentences, config)]
    header = make_header(doc)
    footnotes = {m.group(1): m.group(2).strip() for m in _FOOTNOTE_LINE.finditer(doc.text)}
    chunks = []
    for start, end, kind in spans:
        text = doc.text[start:end]
        chunks.append(
            Chunk(
                id=f"{doc.id}:{start}-{end}",
                doc_id=doc.id,
                text=text,
                start=start,
                end=end,
                header=header,
                extra=_linked_text(doc.text, text, kind, footnotes),
                section=kind,
                places=tuple(dict.fromkeys(m.place.name for m in gazetteer.find_places(text, folded=False))),
            )
        )
    return chunks


def make_header(doc: Document) -> str:
    """"title · province · date", the context every chunk of the document is indexed with."""
    meta = doc.meta
    date = meta.dates[0] if meta.dates else (str(meta.year) if meta.year else "")
    return " · ".join(part for part in (meta.title, meta.province or "", date) if part)


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans (offsets into `text`) inside [start, end), line by line, via underthesea."""
    from underthesea import sent_tokenize  # lazy: importing underthesea costs seconds

    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    for line in re.finditer(r"[^\n]+", text[start:end]):
        line_start = start + line.start()
        line_text = line.group(0)
        cursor = 0
        for sentence in sent_tokenize(line_text):
            sentence = sentence.strip()
            pos = line_text.find(sentence, cursor) if sentence else -1
            if pos < 0:  # the tokenizer rewrote the text: keep the rest of the line whole
                rest = line_text[cursor:].strip()
                if rest:
                    s = line_text.index(rest, cursor)
                    spans.append((line_start + s, line_start + s + len(rest)))
                cursor = len(line_text)
                break
            spans.append((line_start + pos, line_start + pos + len(sentence)))
            cursor = pos + len(sentence)
    return spans


def _pack(text: str, sentences: list[tuple[int, int]], config: ChunkConfig) -> list[tuple[int, int]]:
    """Greedy packing of sentences into chunks of about `size` characters, with overlap."""
    pieces: list[tuple[int, int]] = []
    for s, e in sentences:
        pieces += _split_long(text, s, e, config.size) if e - s > config.size else [(s, e)]
    chunks: list[tuple[int, int]] = []
    current: list[tuple[int, int]] = []
    for piece in pieces:
        if current and piece[1] - current[0][0] > config.size:
            chunks.append((current[0][0], current[-1][1]))
            kept: list[tuple[int, int]] = []
            for prev in reversed(current):  # trailing sentences that fit in the overlap
                if current[-1][1] - prev[0] > config.overlap or piece[1] - prev[0] > config.size:
                    break
                kept.insert(0, prev)
            current = kept
        current.append(piece)
    if current:
        chunks.append((current[0][0], current[-1][1]))
    return chunks


def _split_long(text: str, start: int, end: int, size: int) -> list[tuple[int, int]]:
    """Cut an over-long sentence at spaces, never between a number and its unit."""
    out: list[tuple[int, int]] = []
    s = start
    while end - s > size:
        cut = None
        for m in re.finditer(r"\s+", text[s : s + size]):
            head = text[s : s + m.start()].split()
            after = text[s + m.end() : end]
            before = head[-1] if head else ""
            # inside "13,5 tỷ đồng", "24 ngàn người", "6.137 lượt lao động": a number within 2 words back
            if any(_HAS_DIGIT.search(w) for w in head[-3:]) and UNIT_START.match(after):
                continue
            if after[:1].isdigit() and before.lower() in ("là", "đạt", "còn", "hơn", "khoảng", "trên", "gần"):
                continue
            if m.start() > size // 3:
                cut = (s + m.start(), s + m.end())
        if cut is None:
            m = re.search(r"\s", text[s + size : end])  # no safe space: cut at the next space
            if not m:
                break
            cut = (s + size + m.start(), s + size + m.end())
        out.append((s, cut[0]))
        s = cut[1]
    out.append((s, end))
    return out


def _linked_text(text: str, chunk_text: str, kind: str, footnotes: dict[str, str]) -> str:
    """Footnote texts cited in a body chunk, or the sentences that cite a footnote chunk."""
    if kind == "footnote":
        number = chunk_text[1 : chunk_text.index("]")]
        citing = [
            _sentence_around(text, m.start())
            for m in _MARKER.finditer(text)
            if m.group(1) == number and not _is_line_start(text, m.start())
        ]
        return " ".join(citing)
    cited = [footnotes[n] for n in dict.fromkeys(_MARKER.findall(chunk_text)) if n in footnotes]
    return " ".join(f"[{n}] {t}" for n, t in zip(dict.fromkeys(_MARKER.findall(chunk_text)), cited))


def _is_line_start(text: str, pos: int) -> bool:
    return pos == 0 or text[pos - 1] == "\n"


def _sentence_around(text: str, pos: int) -> str:
    start = max(text.rfind(". ", 0, pos), text.rfind("\n", 0, pos)) + 1
    ends = [i for i in (text.find(". ", pos), text.find("\n", pos)) if i >= 0]
    end = min(ends) + 1 if ends else len(text)
    return text[start:end].strip()
