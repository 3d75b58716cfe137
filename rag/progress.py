"""Progress of an indexing run, reported to whoever listens in this thread (the chat, an API job).

    with progress.listening(lambda stage, done, total: print(stage, done, total)):
        rag.add_documents(docs)

Stages: "reading", "waiting" (for the index's lock), "chunking", "embedding" (done/total chunks),
"saving", "ready". Nothing is reported, and nothing costs, when no one listens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

Listener = Callable[[str, int, int], None]
STAGES = ("reading", "waiting", "chunking", "embedding", "saving", "ready")
EMBED_BATCH = 8  # chunks embedded between two reports

_listener: ContextVar[Listener | None] = ContextVar("rag_progress_listener", default=None)


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[None]:
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def active() -> bool:
    return _listener.get() is not None


def report(stage: str, done: int = 0, total: int = 0) -> None:
    listener = _listener.get()
    if listener is not None:
        listener(stage, done, total)


__all__ = ["EMBED_BATCH", "STAGES", "active", "listening", "report"]
