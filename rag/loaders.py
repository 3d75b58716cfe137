"""Read .txt, .md, .html, .pdf and .docx files into plain text.

Parsing is left to the libraries that do it well (pypdf, python-docx, BeautifulSoup,
charset-normalizer); this module only picks one by suffix and turns their failures into
one-sentence errors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import UsageError

SUPPORTED = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")
MAX_FILE_BYTES = 50 * 1024 * 1024


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
        raise UsageError(f"{path.name} is larger than {MAX_FILE_BYTES // 2**20} MB.")
    suffix = path.suffix.lower()
    if suffix in (".txt", ".md", ".markdown"):
        return decode_text(data, path.name)
    if suffix in (".html", ".htm"):
        return _html_text(decode_text(data, path.name))
    if suffix == ".pdf":
        return _pdf_text(data, path.name)
    if suffix == ".docx":
        return _docx_text(data, path.name)
    raise UsageError(f"{path.name} is not a supported document type (use {', '.join(SUPPORTED)}).")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_text(data: bytes, name: str) -> str:
    """UTF-8 (with or without BOM), else the encoding charset-normalizer detects; binary is refused."""
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UsageError(f"{name} looks like a binary file, not text.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise UsageError(f"{name} is not valid UTF-8 and its encoding could not be detected.")
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


def _pdf_text(data: bytes, name: str) -> str:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError, NotImplementedError, AssertionError,
            IndexError, AttributeError, RecursionError, OSError) as exc:
        raise UsageError(f"{name} could not be read as a PDF ({exc}).") from exc
    return "\n\n".join(pages)


def _docx_text(data: bytes, name: str) -> str:
    import io
    import zipfile
    import zlib

    import docx
    from lxml.etree import LxmlError

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError, LxmlError, zlib.error, EOFError, OSError) as exc:
        raise UsageError(f"{name} could not be read as a .docx file ({exc}).") from exc
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text for cell in row.cells))
    return "\n\n".join(parts)
