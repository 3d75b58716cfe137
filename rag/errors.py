"""Errors meant to be shown to the user: one plain sentence each."""


class RagError(Exception):
    """Something went wrong that the user can act on (exit code 1)."""

    exit_code = 1


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
