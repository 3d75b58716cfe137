"""Background jobs with progress you can poll: an upload sent with `?async=1`, or from the chat.

A job runs in its own thread, listening to the indexing progress (rag.progress); its state is kept
in memory, the last MAX_JOBS of them.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import progress
from .errors import RagError

MAX_JOBS = 200


@dataclass
class Job:
    id: str
    name: str  # what it works on (the file's name)
    state: str = "queued"  # queued | running | done | error
    stage: str = "queued"  # a rag.progress stage while running
    done: int = 0
    total: int = 0
    result: Any = None
    error: BaseException | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None

    def to_json(self, render_error: Callable[[BaseException], dict] | None = None) -> dict:
        out = {"id": self.id, "name": self.name, "state": self.state, "stage": self.stage,
               "done": self.done, "total": self.total,
               "created": _iso(self.created), "finished": _iso(self.finished) if self.finished else None}
        if self.state == "done":
            out["result"] = self.result
        if self.state == "error" and self.error is not None:
            out["error"] = render_error(self.error) if render_error else {"error": str(self.error)}
        return out


class Jobs:
    """The jobs of one server; thread-safe."""

    def __init__(self, limit: int = MAX_JOBS) -> None:
        self.limit = limit
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, name: str, work: Callable[[], Any]) -> Job:
        """Run `work()` in a thread; its progress reports and its result or error go to the job."""
        job = Job(uuid.uuid4().hex[:16], name)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > self.limit:
                oldest = next(iter(self._jobs.values()))
                if oldest.state in ("queued", "running"):
                    break  # never forget a job still running
                self._jobs.popitem(last=False)

        def listen(stage: str, done: int, total: int) -> None:
            job.stage, job.done, job.total = stage, done, total

        def run() -> None:
            job.state = "running"
            try:
                with progress.listening(listen):
                    job.result = work()
                job.stage, job.state = "ready", "done"
            except RagError as exc:
                job.error, job.state = exc, "error"
            except Exception as exc:  # a bug: kept for the log, said plainly to the client
                import sys

                print(f"Job {job.id} ({name}) failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                job.error, job.state = exc, "error"
            finally:
                job.finished = time.time()

        threading.Thread(target=run, name=f"rag-job-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


__all__ = ["Job", "Jobs"]
