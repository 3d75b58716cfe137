"""Errors meant to be shown to the user: one plain sentence each.

Each error may carry a `code` (a stable identifier such as "question_empty") and the `params` its
sentence is made of, so that a front end words it in its own language (rag/messages_vi.py for the
chat) without reading the English sentence. An error without a code is worded by its class.
"""

from __future__ import annotations

from typing import Any


class RagError(Exception):
    """Something went wrong that the user can act on (exit code 1)."""

    exit_code = 1

    def __init__(self, message: str = "", *, code: str | None = None, **params: Any) -> None:
        super().__init__(message)
        self.code = code
        self.params = params


class UsageError(RagError):
    """Bad usage or bad input: a wrong flag, an empty question, an unreadable file (exit code 2)."""

    exit_code = 2


class TooLarge(UsageError):
    """The input is, or expands to, more than is allowed: bytes, pages, paragraphs, time (HTTP 413)."""


class IndexNotFound(RagError):
    """No index at the given place."""


class IndexCorrupt(RagError):
    """The index on disk is damaged, foreign, or of another format."""


class IndexLocked(RagError):
    """Another process is writing the index."""
