"""File → Document: read, clean, describe."""

from __future__ import annotations

from pathlib import Path

from . import loaders, metadata
from .clean import clean
from .errors import UsageError
from .types import Document


def load_document(path: str | Path, data: bytes | None = None, source: str | None = None) -> Document:
    """Read and clean one file; its id is the file stem.

    Raises UsageError when the file cannot be read or holds no text.
    """
    path = Path(path)
    data = path.read_bytes() if data is None else data
    text, sections = clean(loaders.read_text(path, data))
    if not text.strip():
        raise UsageError(f"{path.name} contains no text.")
    meta = metadata.extract(text, sections, fallback_title=path.stem)
    return Document(
        id=path.stem,
        source=source or str(path),
        text=text,
        sha256=loaders.sha256(data),
        meta=meta,
        sections=sections,
    )
