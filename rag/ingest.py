"""File → Document: read, clean, describe."""

from __future__ import annotations

import os
from pathlib import Path

from . import loaders, metadata
from .clean import clean_pages
from .errors import UsageError
from .types import Document


def load_document(path: str | Path, data: bytes | None = None, source: str | None = None,
                  progress: bool = False) -> Document:
    """Read and clean one file (or `data`, the bytes of the file to be at `path`); its id is the file stem.
    `progress`: show the OCR of scanned pages on stderr.

    Raises UsageError when the file cannot be read or holds no text.
    """
    path = Path(path)
    data = path.read_bytes() if data is None else data
    real = path.resolve()
    extracted = loaders.read_document(path, data, progress=progress)
    text, sections, starts = clean_pages(extracted.pages)
    if not text.strip():
        raise UsageError(f"{path.name} contains no text.")
    meta = metadata.extract(text, sections, fallback_title=path.stem)
    return Document(
        id=path.stem,
        source=source or display_source(real),
        text=text,
        sha256=loaders.sha256(data),
        meta=meta,
        sections=sections,
        path=str(real),
        pages=starts if extracted.paged else (),
        ocr_pages=extracted.ocr_pages,
    )


def display_source(path: Path) -> str:
    """A file as people read it: relative to the current directory when it is under it
    ("seeds/004_1400c37e89a2c6fc.txt"), else its absolute path; never "../…", which means nothing elsewhere."""
    path = Path(os.path.abspath(path))
    cwd = Path.cwd()
    return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)


def document_file(doc: Document) -> Path | None:
    """The file `doc` was read from; None when unknown. An index written before paths were kept has
    only `source`, relative to the directory it was written from: it counts only when, from here,
    it names a file with the document's content."""
    if doc.path:
        return Path(doc.path)
    source = Path(doc.source)
    try:
        if source.is_file() and loaders.sha256(source.read_bytes()) == doc.sha256:
            return source.resolve()
    except OSError:
        pass
    return None
