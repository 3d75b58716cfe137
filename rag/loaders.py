"""Read .txt, .md, .html, .pdf and .docx files into plain text.

Parsing is left to the libraries that do it well (pypdf, python-docx, BeautifulSoup,
charset-normalizer); this module only picks one by suffix and turns their failures into
one-sentence errors.

What a file may expand to is bounded, each bound checked before the work it protects (a 45 KB
.docx of a million empty paragraphs took python-docx 25 s and 370 MB): a .docx's zip directory
and unzipped size (from the directory, before anything is inflated), its XML elements and
paragraphs (counted on the raw bytes, before any XML is parsed), a PDF's pages, the characters of
text, and the seconds spent. Past a bound: TooLarge, one sentence saying which.
"""

from __future__ import annotations

import hashlib
import re
import struct
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import TooLarge, UsageError

SUPPORTED = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")
MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 100 * 1024 * 1024  # a .docx's parts together, uncompressed
MAX_ZIP_DIRECTORY_BYTES = 1024 * 1024  # a .docx's zip directory (~10k parts; Word writes ~20)
MAX_XML_ELEMENTS = 1_000_000  # in a .docx's parts (python-docx's tree: ~130 bytes each)
MAX_PARAGRAPHS = 100_000  # in a .docx (~3,000 pages; python-docx reads ~40k a second)
MAX_PDF_PAGES = 2_000
MAX_TEXT_CHARS = 50_000_000  # what any file may give: as much as the largest text file
MAX_READ_SECONDS = 60  # reading one file


def iter_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Supported files under the given files and folders, sorted, hidden files skipped."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in child.relative_to(path).parts)
                if child.is_file() and not hidden and child.suffix.lower() in SUPPORTED:
                    yield child
        elif path.is_file():
            if path.suffix.lower() not in SUPPORTED:
                raise UsageError(
                    f"{path} is not a supported document type (use {', '.join(SUPPORTED)})."
                )
            yield path
        else:
            raise UsageError(f"{path} does not exist.")


def read_text(path: Path, data: bytes | None = None) -> str:
    """The text of a supported file; raises UsageError when it cannot be read."""
    data = path.read_bytes() if data is None else data
    if len(data) > MAX_FILE_BYTES:
        raise TooLarge(f"{path.name} is larger than {MAX_FILE_BYTES // 2**20} MB.", code="file_too_large",
                       name=path.name, mb=MAX_FILE_BYTES // 2**20)
    suffix = path.suffix.lower()
    budget = _Budget(path.name)
    if suffix in (".txt", ".md", ".markdown"):
        text = decode_text(data, path.name)
    elif suffix in (".html", ".htm"):
        text = _html_text(decode_text(data, path.name))
    elif suffix == ".pdf":
        text = _pdf_text(data, path.name, budget)
    elif suffix == ".docx":
        text = _docx_text(data, path.name, budget)
    else:
        raise UsageError(f"{path.name} is not a supported document type (use {', '.join(SUPPORTED)}).",
                         code="file_type", name=path.name, types=", ".join(SUPPORTED))
    budget.check(len(text))
    return text


class _Budget:
    """The time and the characters of text one file may take; `check` raises TooLarge past either."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.deadline = time.monotonic() + MAX_READ_SECONDS

    def check(self, chars: int = 0) -> None:
        if chars > MAX_TEXT_CHARS:
            raise TooLarge(f"{self.name} holds more than {MAX_TEXT_CHARS:,} characters of text; split it into "
                           "smaller files.", code="file_too_much_text", name=self.name, limit=MAX_TEXT_CHARS)
        if time.monotonic() > self.deadline:
            raise TooLarge(f"{self.name} takes more than {MAX_READ_SECONDS} seconds to read; split it into "
                           "smaller files.", code="file_too_slow", name=self.name, seconds=MAX_READ_SECONDS)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_text(data: bytes, name: str) -> str:
    """UTF-8 (with or without BOM), else the encoding charset-normalizer detects; binary is refused."""
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UsageError(f"{name} looks like a binary file, not text.", code="file_binary", name=name)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise UsageError(f"{name} is not valid UTF-8 and its encoding could not be detected.", code="file_encoding",
                         name=name)
    return str(best)


def _html_text(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "nav", "header", "footer", "form", "iframe"]):
        tag.decompose()
    blocks = ("p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "br", "section", "article", "title",
              "table", "blockquote", "pre", "dt", "dd")
    for tag in soup.find_all(blocks):
        tag.insert_after("\n\n" if tag.name != "br" else "\n")
    for tag in soup.find_all(("td", "th")):
        tag.insert_after(" | ")
    return soup.get_text()


def _pdf_text(data: bytes, name: str, budget: _Budget) -> str:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        count = len(reader.pages)  # (the page tree's /Count: nothing is read yet)
        if count > MAX_PDF_PAGES:
            raise TooLarge(f"{name} has {count:,} pages (at most {MAX_PDF_PAGES:,}); split it into smaller files.",
                           code="file_too_many_pages", name=name, limit=MAX_PDF_PAGES)
        pages, chars = [], 0
        for page in reader.pages:
            pages.append(page.extract_text() or "")
            chars += len(pages[-1])
            budget.check(chars)
            if len(pages) > MAX_PDF_PAGES:  # a page tree that lies about its /Count
                raise TooLarge(f"{name} has more than {MAX_PDF_PAGES:,} pages; split it into smaller files.",
                               code="file_too_many_pages", name=name, limit=MAX_PDF_PAGES)
    except (PdfReadError, ValueError, KeyError, TypeError, NotImplementedError, AssertionError,
            IndexError, AttributeError, RecursionError, OSError) as exc:
        raise UsageError(f"{name} could not be read as a PDF ({exc}).", code="file_unreadable", name=name,
                         kind="PDF") from exc
    return "\n\n".join(pages)


def _docx_text(data: bytes, name: str, budget: _Budget) -> str:
    import io
    import zipfile
    import zlib

    import docx
    from lxml.etree import LxmlError

    try:
        _check_zip_directory(data, name)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            _check_docx_parts(archive, name, budget)
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError, LxmlError, zlib.error, EOFError, OSError) as exc:
        raise UsageError(f"{name} could not be read as a .docx file ({exc}).", code="file_unreadable", name=name,
                         kind="DOCX") from exc
    parts, chars = [], 0
    for i, paragraph in enumerate(document.paragraphs):
        parts.append(paragraph.text)
        chars += len(parts[-1])
        if i % 256 == 0:
            budget.check(chars)
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text for cell in row.cells))
            chars += len(parts[-1])
            budget.check(chars)
    budget.check(chars)
    return "\n\n".join(parts)


def _check_zip_directory(data: bytes, name: str) -> None:
    """TooLarge when the zip's central directory (which zipfile reads whole, ~560 bytes of memory an
    entry) is over MAX_ZIP_DIRECTORY_BYTES; read from the end-of-directory record, as zipfile finds it."""
    record = len(data) - 22
    if record < 0:
        return  # not a zip: zipfile says so
    if data[record:record + 4] != b"PK\x05\x06":
        record = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 65535))
        if record < 0 or record + 22 > len(data):
            return
    entries, size = struct.unpack("<HI", data[record + 10:record + 16])
    if size > MAX_ZIP_DIRECTORY_BYTES or entries == 0xFFFF:  # (0xFFFF: a ZIP64 directory, never a .docx)
        raise TooLarge(f"{name} holds too many parts (a zip directory of {size:,} bytes, at most "
                       f"{MAX_ZIP_DIRECTORY_BYTES:,}); it is not a document python-docx should open.")


_START_TAG = re.compile(rb"<[A-Za-z_]")  # an element (not </, <? or <!)
_PARAGRAPH = re.compile(rb"<(?:[A-Za-z_][\w.-]{0,40}:)?p[\s/>]")  # <w:p>, <w:p/>, <x:p …>: any prefix


def _check_docx_parts(archive, name: str, budget: _Budget) -> None:
    """TooLarge when the parts unzip to more than MAX_UNZIPPED_BYTES (from the directory, before anything
    is inflated; zipfile stops at the declared size), or hold more than MAX_XML_ELEMENTS elements or
    MAX_PARAGRAPHS paragraphs (counted on the inflated bytes, 1 MB at a time, before any XML is parsed:
    every part, as [Content_Types].xml may call any of them XML)."""
    members = archive.infolist()
    unzipped = sum(m.file_size for m in members)
    if unzipped > MAX_UNZIPPED_BYTES:
        raise TooLarge(f"{name} expands to {unzipped / 2**20:,.0f} MB once unzipped (at most "
                       f"{MAX_UNZIPPED_BYTES // 2**20} MB); split it into smaller files.")
    elements = paragraphs = 0
    for member in members:
        tail = b""
        with archive.open(member) as part:
            while block := part.read(1 << 20):
                window = tail + block
                elements += sum(1 for m in _START_TAG.finditer(window) if m.end() > len(tail))
                paragraphs += sum(1 for m in _PARAGRAPH.finditer(window) if m.end() > len(tail))
                tail = window[-48:]
                if paragraphs > MAX_PARAGRAPHS:
                    raise TooLarge(f"{name} holds more than {MAX_PARAGRAPHS:,} paragraphs; split it into "
                                   "smaller files.")
                if elements > MAX_XML_ELEMENTS:
                    raise TooLarge(f"{name} holds more than {MAX_XML_ELEMENTS:,} XML elements; split it into "
                                   "smaller files.")
                budget.check()
