"""A page of an indexed PDF as a PNG image, the cited sentence marked in yellow.

The file is the one the document was indexed from (`document_file`), used only while its bytes are
still those indexed (else FileChanged). The sentence is found among the page's words: the text
layer's (pdfium's character boxes) or, on a page read by OCR, Tesseract's word boxes; the longest
run of the sentence's words, in order, is marked line by line.
"""

from __future__ import annotations

import io
import re
import threading
import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

from .errors import UsageError
from .ingest import document_file
from .loaders import sha256

DPI = 110  # the image served: about 910 × 1290 pixels for an A4 page
MAX_GAP = 6  # words of the page between two matched pieces of the sentence that still count as one run
_WORD = re.compile(r"\w[\w.,%/-]*", re.U)


class NoPage(UsageError):
    """The document has no such page to show (not a PDF, no file, a page out of range): HTTP 404."""


class FileChanged(UsageError):
    """The file on disk is no longer the one indexed: HTTP 409."""


@dataclass(frozen=True)
class Box:
    text: str
    left: float  # pixels of the served image
    top: float
    right: float
    bottom: float
    line: object  # words of one line share it


def page_png(doc, number: int, start: int | None = None, end: int | None = None, dpi: int = DPI) -> bytes:
    """Page `number` (1-based) of the document's PDF, rendered; the text doc.text[start:end] marked when
    it lies on that page."""
    data = _pdf_bytes(doc)
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    try:
        if not 1 <= number <= len(pdf):
            raise NoPage(f"{doc.id} has {len(pdf)} page(s); there is no page {number}.")
        page = pdf[number - 1]
        try:
            image = page.render(scale=dpi / 72).to_pil().convert("RGB")
            boxes: list[Box] = []
            if start is not None and end is not None and 0 <= start < end <= len(doc.text):
                sentence = doc.text[start:end]
                words = (_ocr_words(doc.sha256, data, number, dpi) if number in doc.ocr_pages
                         else _layer_words(page, dpi))
                boxes = match(sentence, words)
        finally:
            page.close()
    finally:
        pdf.close()
    if boxes:
        image = _mark(image, boxes)
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _pdf_bytes(doc) -> bytes:
    file = document_file(doc)
    if file is None or Path(file).suffix.lower() != ".pdf":
        raise NoPage(f"{doc.id} is not a PDF with its file at hand: there is no page image to show.")
    try:
        data = Path(file).read_bytes()
    except OSError:
        raise NoPage(f"The file of {doc.id} ({doc.source}) is gone; its pages cannot be shown.") from None
    if sha256(data) != doc.sha256:
        raise FileChanged(f"The file of {doc.id} ({doc.source}) has changed since it was indexed; index it again "
                          "to see its pages.")
    return data


def _norm(word: str) -> str:
    return unicodedata.normalize("NFC", word).lower().strip(".,;:()[]\"'“”…|-–")


def _layer_words(page, dpi: int) -> list[Box]:
    """The words of the page's text layer with their boxes (pdfium's character boxes, joined)."""
    scale = dpi / 72
    height = page.get_height()
    textpage = page.get_textpage()
    try:
        count = textpage.count_chars()
        text = textpage.get_text_range(0, count) if count else ""
        words: list[Box] = []
        current, box, line = "", None, 0
        for i, ch in enumerate(text[:count]):
            if ch.isspace():
                if ch in "\r\n":
                    line += 1
                if current:
                    words.append(Box(current, *box, line))
                current, box = "", None
                continue
            left, bottom, right, top = textpage.get_charbox(i, loose=True)
            rect = (left * scale, (height - top) * scale, right * scale, (height - bottom) * scale)
            if box is None:
                box = rect
            else:
                box = (min(box[0], rect[0]), min(box[1], rect[1]), max(box[2], rect[2]), max(box[3], rect[3]))
            current += ch
        if current:
            words.append(Box(current, *box, line))
        return words
    finally:
        textpage.close()


_OCR_CACHE: dict[tuple[str, int, int], list[Box]] = {}
_OCR_CACHE_SIZE = 16
_OCR_LOCK = threading.Lock()


def _ocr_words(digest: str, data: bytes, number: int, dpi: int) -> list[Box]:
    """Tesseract's words of a scanned page, boxes scaled to the served image (the last pages read are
    kept, by file hash: a second look at the page costs nothing)."""
    key = (digest, number, dpi)
    with _OCR_LOCK:
        if key in _OCR_CACHE:
            return _OCR_CACHE[key]
    words = _read_ocr_words(data, number, dpi)
    with _OCR_LOCK:
        while len(_OCR_CACHE) >= _OCR_CACHE_SIZE:
            _OCR_CACHE.pop(next(iter(_OCR_CACHE)))
        _OCR_CACHE[key] = words
    return words


def _read_ocr_words(data: bytes, number: int, dpi: int) -> list[Box]:
    import pypdfium2 as pdfium

    from . import ocr

    pdf = pdfium.PdfDocument(data)
    try:
        image = ocr.render(pdf, number - 1)
    finally:
        pdf.close()
    k = dpi / ocr.DPI
    return [Box(w.text, w.left * k, w.top * k, (w.left + w.width) * k, (w.top + w.height) * k, w.line)
            for w in ocr.image_words(image)]


def match(sentence: str, words: list[Box]) -> list[Box]:
    """The page words that hold the sentence: the run of the page with the most of the sentence's words
    in order (pieces at most MAX_GAP words apart), from its first matched word to its last."""
    wanted = [_norm(w) for w in _WORD.findall(sentence)]
    wanted = [w for w in wanted if w]
    page = [_norm(b.text) for b in words]
    if not wanted or not page:
        return []
    blocks = [b for b in SequenceMatcher(None, page, wanted, autojunk=False).get_matching_blocks() if b.size]
    best: tuple[int, int, int] | None = None  # (matched words, first page word, last page word)
    run: list = []
    for block in blocks + [None]:
        if block is not None and run and block.a - (run[-1].a + run[-1].size) <= MAX_GAP:
            run.append(block)
            continue
        if run:
            total = sum(b.size for b in run)
            if best is None or total > best[0]:
                best = (total, run[0].a, run[-1].a + run[-1].size - 1)
        run = [block] if block is not None else []
    if best is None or best[0] < min(2, len(wanted)):
        return []
    return words[best[1] : best[2] + 1]


def _mark(image, boxes: list[Box]):
    """The image with one translucent yellow band over each line's marked words."""
    from PIL import Image, ImageDraw

    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    lines: dict[object, list[Box]] = {}
    for box in boxes:
        lines.setdefault(box.line, []).append(box)
    for group in lines.values():
        left = min(b.left for b in group) - 2
        top = min(b.top for b in group) - 2
        right = max(b.right for b in group) + 2
        bottom = max(b.bottom for b in group) + 2
        draw.rectangle((left, top, right, bottom), fill=(250, 204, 21, 110), outline=(217, 119, 6, 255), width=1)
    return Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")


__all__ = ["DPI", "FileChanged", "NoPage", "match", "page_png"]
