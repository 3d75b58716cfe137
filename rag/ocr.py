"""OCR of PDF pages without a text layer: pypdfium2 renders the page, Tesseract (Vietnamese) reads it.

Tesseract is a program, not a Python package: Debian's `tesseract-ocr` and `tesseract-ocr-vie`
(scripts/setup.sh installs them when it can). `missing()` says what is absent; without it, a
scanned page yields no text and the loader says why.

Bounds: at most MAX_OCR_PAGES pages and MAX_OCR_SECONDS seconds of OCR per document (env
RAG_OCR_MAX_PAGES, RAG_OCR_MAX_SECONDS), each page's Tesseract run killed after the time left.
Pages are read OCR_WORKERS at a time (one Tesseract thread each).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .errors import TooLarge, UsageError

DPI = 300
LANG = "vie"
MIN_TEXT_CHARS = 20  # a page whose text layer has fewer letters and digits than this is read by OCR


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default


MAX_OCR_PAGES = _env_int("RAG_OCR_MAX_PAGES", 200)
MAX_OCR_SECONDS = _env_int("RAG_OCR_MAX_SECONDS", 900)
OCR_WORKERS = _env_int("RAG_OCR_WORKERS", min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class Word:
    """A word Tesseract read, with its box in pixels of the page rendered at `DPI`."""

    text: str
    left: int
    top: int
    width: int
    height: int
    line: tuple[int, int, int]  # (block, paragraph, line): the words of one line share it


@functools.lru_cache(maxsize=1)
def missing() -> str | None:
    """None when Tesseract with Vietnamese can run here, else what is missing, in one sentence."""
    exe = shutil.which("tesseract")
    if exe is None:
        return "Tesseract is not installed (apt-get install tesseract-ocr tesseract-ocr-vie)"
    try:
        out = subprocess.run([exe, "--list-langs"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"Tesseract does not run ({exc})"
    if LANG not in out.stdout.split():
        return "Tesseract's Vietnamese data is not installed (apt-get install tesseract-ocr-vie)"
    return None


def needs_ocr(text: str) -> bool:
    return sum(ch.isalnum() for ch in text) < MIN_TEXT_CHARS


def render(pdf, index: int, dpi: int = DPI):
    """Page `index` (0-based) of a pypdfium2 document as a grayscale PIL image."""
    page = pdf[index]
    try:
        return page.render(scale=dpi / 72, grayscale=True).to_pil()
    finally:
        page.close()


def image_text(image, timeout: float) -> str:
    """The text Tesseract reads in a PIL image (Vietnamese, automatic page segmentation)."""
    return _tesseract(image, timeout, "txt")


def image_words(image, timeout: float = 120) -> list[Word]:
    """The words Tesseract reads in a PIL image, with their boxes (to mark a sentence on the page)."""
    words = []
    for row in _tesseract(image, timeout, "tsv").splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) == 12 and cols[0] == "5" and cols[11].strip():
            words.append(Word(cols[11], int(cols[6]), int(cols[7]), int(cols[8]), int(cols[9]),
                              (int(cols[2]), int(cols[3]), int(cols[4]))))
    return words


def _tesseract(image, timeout: float, kind: str) -> str:
    import io

    reason = missing()
    if reason:
        raise UsageError(f"OCR is not available: {reason}.")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    args = [shutil.which("tesseract") or "tesseract", "stdin", "stdout", "-l", LANG, "--psm", "3", "--dpi", str(DPI)]
    if kind == "tsv":
        args.append("tsv")
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        out = subprocess.run(args, input=buf.getvalue(), capture_output=True, timeout=max(1.0, timeout), env=env)
    except subprocess.TimeoutExpired:
        raise TooLarge(f"OCR of a page took more than {timeout:.0f} seconds.") from None
    if out.returncode != 0:
        raise UsageError(f"Tesseract failed ({out.stderr.decode('utf-8', 'replace').strip()[:200]}).")
    return out.stdout.decode("utf-8", "replace")


def ocr_pages(pdf, indexes: list[int], name: str, progress: Callable[[int, int], None] | None = None) -> dict[int, str]:
    """The OCR'd text of the pages `indexes` (0-based) of a pypdfium2 document, within the bounds.

    TooLarge past MAX_OCR_PAGES pages or MAX_OCR_SECONDS seconds; UsageError when Tesseract is missing."""
    if not indexes:
        return {}
    if len(indexes) > MAX_OCR_PAGES:
        raise TooLarge(f"{name} has {len(indexes):,} pages without text to read by OCR (at most {MAX_OCR_PAGES:,}); "
                       "split it into smaller files.")
    reason = missing()
    if reason:
        raise UsageError(f"{name} has {len(indexes)} scanned page(s) without a text layer and OCR is not available: "
                         f"{reason}.")
    deadline = time.monotonic() + MAX_OCR_SECONDS
    images = {}  # rendered one at a time here (pdfium is not thread-safe), read by Tesseract in parallel

    def read(i: int) -> str:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TooLarge(f"OCR of {name} takes more than {MAX_OCR_SECONDS} seconds; split it into smaller files.")
        try:
            return image_text(images.pop(i), left)
        except TooLarge:
            raise TooLarge(f"OCR of {name} takes more than {MAX_OCR_SECONDS} seconds; split it into smaller files.") from None

    out: dict[int, str] = {}
    with ThreadPoolExecutor(max_workers=OCR_WORKERS) as pool:
        pending = []
        for i in indexes:
            if time.monotonic() > deadline:
                raise TooLarge(f"OCR of {name} takes more than {MAX_OCR_SECONDS} seconds; split it into smaller files.")
            images[i] = render(pdf, i)
            pending.append((i, pool.submit(read, i)))
            while len(pending) >= OCR_WORKERS * 2 or (pending and pending[0][1].done()):
                j, fut = pending.pop(0)
                out[j] = fut.result()
                if progress:
                    progress(len(out), len(indexes))
        for j, fut in pending:
            out[j] = fut.result()
            if progress:
                progress(len(out), len(indexes))
    return out


__all__ = ["DPI", "MAX_OCR_PAGES", "MAX_OCR_SECONDS", "Word", "image_text", "image_words", "missing", "needs_ocr",
           "ocr_pages", "render"]
