"""The HTTP API (under /api) and the Gradio chat (at /) in one FastAPI app.

    $ rag serve --port 7860            # or: python app.py
    $ curl -s localhost:7860/api/ask -H 'content-type: application/json' \\
           -d '{"question": "Tỷ lệ hộ nghèo Huế 2023?"}'

Every error is one JSON object `{"error": "plain words"}` with a 4xx status for bad input; no
traceback ever reaches a client. Requests are served concurrently (sync endpoints run in the
thread pool); an upload re-indexes beside the live index and swaps it in when done, so questions
keep being answered meanwhile. When `RAG_API_TOKEN` is set, every /api route but /api/health
wants `Authorization: Bearer <token>`, and the chat asks for it as its password.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import sys
import threading
import time
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.routing import Match

from .answer import Answer
from . import progress, store
from .store import fsync_dir as _fsync_dir
from .api import RAG, check_history, search_json
from .errors import IndexCorrupt, IndexLocked, IndexNotFound, RagError, TooLarge, UsageError
from .ingest import document_file, load_document
from .jobs import Jobs
from .loaders import SUPPORTED, sha256
from .text import lone_surrogate

MAX_QUESTION_CHARS = 2000
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_JSON_BYTES = 64 * 1024
DRAIN_BYTES = 8 * 2**20  # of a refused body, read and thrown away so that the client sees the answer
MAX_NAME_BYTES = 200  # in UTF-8: the stored file (and its temporary twin) must fit a file system's 255-byte names
MAX_NAME_CHARS = MAX_NAME_BYTES  # (the old name of the limit)
UPLOADS = "uploads"  # folder inside the index folder that keeps uploaded files (their `source`)
STAGED = ".incoming-"  # an upload's bytes in uploads/ until the index holds them: .incoming-<8 hex>-<name>

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_NAME_OK = re.compile(r"[\w\- .,()+&'\[\]]+")


# ---------------------------------------------------------------- validation shared by the API and the chat


def clean_text(value: Any, what: str = "question", limit: int = MAX_QUESTION_CHARS) -> str:
    """The text stripped and NFC-normalised; UsageError when it is empty, too long, holds control characters
    or lone surrogates (a JSON "\\ud800" escape: no UTF-8 can hold it)."""
    if not isinstance(value, str):
        raise UsageError(f"The {what} must be a string.", code="text_not_string", what=what)
    bad = lone_surrogate(value)
    if bad:
        raise UsageError(f"The {what} is not valid Unicode text (it holds a lone surrogate, {bad}).",
                         code="text_not_unicode", what=what)
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        raise UsageError(f"The {what} is empty.", code="text_empty", what=what)
    if len(text) > limit:
        raise UsageError(f"The {what} is too long ({len(text)} characters; at most {limit}).", code="text_too_long",
                         what=what, chars=len(text), limit=limit)
    if _CONTROL.search(text):
        raise UsageError(f"The {what} contains control characters.", code="text_control", what=what)
    return text


def safe_file_name(name: str | None) -> str:
    """An upload's file name, or UsageError when it holds a path, odd characters or an unsupported type."""
    if not name or not name.strip():
        raise UsageError("The upload has no file name.", code="name_missing")
    name = unicodedata.normalize("NFC", name.strip())
    if "/" in name or "\\" in name or name.startswith(".") or ".." in name:
        raise UsageError(f"The file name {name!r} must be a plain name, not a path.", code="name_path", name=name)
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        raise UsageError(f"The file name is too long ({size} bytes in UTF-8; at most {MAX_NAME_BYTES}); shorten it.",
                         code="name_too_long", size=size, limit=MAX_NAME_BYTES)
    if _CONTROL.search(name) or not _NAME_OK.fullmatch(name):
        raise UsageError("The file name holds characters that are not allowed (use letters, digits, spaces, - _ . ( )).",
                         code="name_characters")
    if Path(name).suffix.lower() not in SUPPORTED:
        raise UsageError(f"{name} is not a supported document type (use {', '.join(SUPPORTED)}).",
                         code="file_type", name=name, types=", ".join(SUPPORTED))
    return name


# ---------------------------------------------------------------- the service behind both front ends


@dataclass(frozen=True)
class Upload:
    doc_id: str
    status: str  # "added" | "updated" | "unchanged"
    documents: int
    chunks: int


class Library:
    """An opened index plus the folder of uploaded files; thread-safe."""

    def __init__(self, rag: RAG, uploads_dir: Path | None = None) -> None:
        self.rag = rag
        self.uploads_dir = Path(uploads_dir) if uploads_dir else Path(rag.index_dir) / UPLOADS
        self._write = threading.Lock()  # one upload or removal at a time
        self.jobs = Jobs()  # uploads indexed in the background (`?async=1`, the chat), with their progress
        self.recover_uploads()

    # -- reading

    def ask(self, question: Any, *, k: int | None = None, province: str | None = None, year: int | None = None,
            history: Any = None) -> Answer:
        return self.rag.ask(clean_text(question), k=k, province=_opt(province, "province"), year=year,
                            history=check_history(history))

    def search(self, query: Any, k: int = 10, *, province: str | None = None, year: int | None = None) -> list:
        return self.rag.search(clean_text(query, "query"), k, province=_opt(province, "province"), year=year)

    def health(self) -> dict:
        info = self.rag.model_info or {}
        return {"status": "ok", "mode": self.rag.mode, "model": self.rag.model,
                "documents": len(self.rag.documents), "chunks": self.rag.chunk_count, "llm": self.rag.llm,
                "model_build": info.get("build"), "precision": info.get("precision"),
                "store": self.rag.store_info}

    def document_list(self) -> list[dict]:
        return [_doc_summary(doc) for doc in self.rag.documents.values()]

    def document_rows(self) -> list[dict]:
        """The documents for the chat's panel: the summary plus chunk count and the date each was added."""
        snapshot = self.rag._retriever.snapshot
        info = (snapshot.manifest or {}).get("documents", {})
        per_doc: dict[str, int] = {}
        if not info:
            for chunk in snapshot.chunks:
                per_doc[chunk.doc_id] = per_doc.get(chunk.doc_id, 0) + 1
        rows = []
        for doc in snapshot.documents.values():
            entry = info.get(doc.id) if isinstance(info.get(doc.id), dict) else {}
            rows.append({**_doc_summary(doc), "chunks": entry.get("chunks", per_doc.get(doc.id, 0)),
                         "added": entry.get("added") or ""})
        return rows

    def document(self, doc_id: str):
        doc = self.rag.documents.get(doc_id)
        if doc is None:
            raise KeyError(doc_id)
        return doc

    # -- writing

    def add_upload(self, name: str | None, data: bytes) -> Upload:
        """Keep the file in the uploads folder and index it incrementally.

        The file and the index change together or not at all: under the index's lock the bytes are
        staged beside the file, the index is swapped, then the staged file is renamed over the old
        one; a process killed in between is finished or undone when the server starts again.
        """
        name = safe_file_name(name)
        if len(data) > MAX_UPLOAD_BYTES:
            raise TooLarge(f"{name} is larger than {MAX_UPLOAD_BYTES // 2**20} MB.", code="file_too_large", name=name,
                           mb=MAX_UPLOAD_BYTES // 2**20)
        target = self.uploads_dir / name
        progress.report("reading")
        doc = load_document(target, data)  # parsed here, outside the lock: unreadable files change nothing
        progress.report("waiting")
        with self._write, store.write_lock(Path(self.rag.index_dir)):
            existing = self.rag.documents.get(target.stem)
            if existing is not None and document_file(existing) != target.resolve():
                raise Conflict(f"A document with id {target.stem!r} is already indexed from {existing.source}; "
                               "rename the file or remove that document first.", code="id_conflict",
                               doc_id=target.stem, source=existing.source)
            self._private_folder()
            staged = self.uploads_dir / f"{STAGED}{uuid.uuid4().hex[:8]}-{name}"
            _write_private(staged, data)
            try:
                report = self.rag.add_documents([doc])
                os.replace(staged, target)
                _fsync_dir(self.uploads_dir)
            finally:
                staged.unlink(missing_ok=True)
        status = "added" if report.added else "updated" if report.updated else "unchanged"
        return Upload(target.stem, status, report.documents, report.chunks)

    def _private_folder(self) -> None:
        """The uploads folder, readable by this user only (uploads may be private documents)."""
        self.uploads_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.uploads_dir.stat().st_mode & 0o077:
            self.uploads_dir.chmod(0o700)

    def remove(self, doc_id: str) -> dict:
        with self._write, store.write_lock(Path(self.rag.index_dir)):
            doc = self.rag.documents.get(doc_id)
            if doc is None:
                raise KeyError(doc_id)
            report = self.rag.remove(doc_id)
            file = document_file(doc)
            if file is not None and file.is_relative_to(self.uploads_dir.resolve()):  # an uploaded copy goes too; files elsewhere are the user's
                file.unlink(missing_ok=True)
        return {"removed": doc_id, "documents": report.documents, "chunks": report.chunks}

    def recover_uploads(self) -> None:
        """Put uploads/ back in step with the index after a write killed halfway (run at start).

        A staged file whose bytes the index already holds for its name goes live (the process died
        after the index's swap); any other staged file goes; a file no indexed document comes from
        goes (an upload that never made it into the index, or a removal that did) when the folder
        is the index's own `uploads/`. Nothing is touched while another process writes the index,
        or when the index cannot be read.
        """
        if not self.uploads_dir.is_dir():
            return
        try:
            with store.write_lock(Path(self.rag.index_dir)):
                self._recover(store.read_manifest(Path(self.rag.index_dir))["documents"])
        except (IndexLocked, IndexCorrupt, IndexNotFound, KeyError, TypeError):
            return

    def _recover(self, documents: dict) -> None:
        folder = self.uploads_dir.resolve()
        own = folder == (Path(self.rag.index_dir) / UPLOADS).resolve()  # a folder given by the caller may hold other files
        indexed: dict[str, str] = {}  # file name in uploads/ → the sha256 the index holds for it
        for info in documents.values():
            path = Path(info.get("path") or "")
            if path.parent == folder:
                indexed[path.name] = info["sha256"]
            elif not info.get("path"):  # an index written before paths were kept: known by name only
                indexed.setdefault(Path(info["source"]).name, "")
        self._private_folder()
        for child in sorted(self.uploads_dir.iterdir()):
            if not child.is_file() or child.is_symlink():
                continue
            if child.name.startswith(STAGED):
                name = child.name.split("-", 2)[-1]
                if indexed.get(name) == sha256(child.read_bytes()):
                    os.replace(child, self.uploads_dir / name)
                    print(f"Finished an upload of {name} that was interrupted after indexing.", file=sys.stderr)
                else:
                    child.unlink()
            elif own and (child.name.startswith(".tmp-") or child.name not in indexed):
                child.unlink()
                if not child.name.startswith(".tmp-"):
                    print(f"Removed {child}: no document of the index comes from it "
                          "(an upload or removal was interrupted).", file=sys.stderr)
            elif child.stat().st_mode & 0o077:
                child.chmod(0o600)
        _fsync_dir(self.uploads_dir)


def _write_private(path: Path, data: bytes) -> None:
    """Write `data` to a new file readable by this user only, synced to disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


class Conflict(UsageError):
    """The request is well-formed but clashes with what is indexed (HTTP 409)."""


def _opt(value: str | None, what: str) -> str | None:
    return None if value is None or not str(value).strip() else clean_text(value, what, 100)


def _echo_id(value: str | int | None) -> str | int | None:
    """The request's `id`, echoed back: a string must be one that UTF-8 can hold."""
    bad = lone_surrogate(value) if isinstance(value, str) else None
    if bad:
        raise UsageError(f"The field 'id' is not valid Unicode text (it holds a lone surrogate, {bad}).")
    return value


def upload_json(library: Library, result: Upload) -> dict:
    """What POST /api/documents answers for a stored upload (and a finished job's `result`)."""
    doc = library.document(result.doc_id)
    return {**_doc_summary(doc), "status": result.status, "documents": result.documents, "chunks": result.chunks}


def error_json(exc: BaseException) -> dict:
    """A failed job's error: the HTTP status the request would have got and the sentence."""
    if isinstance(exc, RagError):
        return {"status": error_status(exc), "error": str(exc), "code": getattr(exc, "code", None)}
    return {"status": 500, "error": f"Internal error ({type(exc).__name__}); the server log has the details.",
            "code": None}


def error_status(exc: RagError) -> int:
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, TooLarge):
        return 413
    if isinstance(exc, UsageError):
        return 400
    if isinstance(exc, IndexLocked):
        return 409
    return 503


def _doc_summary(doc) -> dict:
    meta = doc.meta
    return {"doc_id": doc.id, "source": doc.source, "title": meta.title, "province": meta.province,
            "year": meta.year, "chars": len(doc.text)}


# ---------------------------------------------------------------- request bodies


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    question: str = Field(description="the question, in Vietnamese, with or without diacritics",
                          examples=["Tỷ lệ hộ nghèo Huế 2023?"])
    k: int | None = Field(None, ge=1, le=50, description="passages to read")
    province: str | None = Field(None, description="only documents or passages about this province")
    year: int | None = Field(None, ge=1900, le=2100, description="only documents or passages about this year")
    id: str | int | None = Field(None, description="echoed back")
    history: Any = Field(None, description="earlier turns of the conversation, oldest first: "
                         "[{\"question\": str, \"answer\": str, \"doc_id\": str (optional)}], at most 20; "
                         "a follow-up question is completed from them (the answer's `asked`)",
                         examples=[[{"question": "Tỷ lệ hộ nghèo Huế 2023?", "answer": "2,27%"}]])


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    query: str = Field(examples=["hộ nghèo Thừa Thiên Huế 2023"])
    k: int = Field(10, ge=1, le=100)
    province: str | None = None
    year: int | None = Field(None, ge=1900, le=2100)
    id: str | int | None = None


# ---------------------------------------------------------------- the app


def create_app(
    index_dir: str | Path | None = None,
    *,
    rag: RAG | None = None,
    uploads_dir: str | Path | None = None,
    token: str | None = None,
    ui: bool = True,
) -> FastAPI:
    """The FastAPI app: the API under /api, the chat at / (unless `ui` is False), OpenAPI at /docs.

    `token` defaults to $RAG_API_TOKEN; an empty one means no protection.
    """
    rag = rag or RAG.open(index_dir)
    library = Library(rag, Path(uploads_dir) if uploads_dir else None)
    token = os.environ.get("RAG_API_TOKEN") if token is None else token
    app = FastAPI(
        title="rag-vi",
        description="Vietnamese document question answering with citations. Errors are `{\"error\": \"...\"}`.",
        version=_version(),
    )
    app.state.library = library
    app.add_middleware(_BodyLimit, token=token)
    _error_handlers(app)
    app.include_router(_public_routes(library), prefix="/api")
    app.include_router(_routes(library), prefix="/api", dependencies=[Depends(_bearer(token))])
    _api_fallback(app)  # else the chat mounted at / would answer unknown /api paths with its own 404
    if ui:
        from .chat import mount_chat  # gradio is imported only here: it costs seconds

        app = mount_chat(app, library, password=token or None)
    return app


def _version() -> str:
    from . import __version__

    return __version__


def _bearer(token: str | None):
    expected = f"Bearer {token}".encode() if token else None

    def check(request: Request) -> None:
        if expected is None:
            return
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):  # (the middleware checked it already, before the body)
            raise HTTPException(401, _TOKEN_MESSAGE, headers={"WWW-Authenticate": "Bearer"})

    return check


def _public_routes(library: Library) -> APIRouter:
    router = APIRouter()

    @router.get("/health", summary="Status: mode (dense or lexical), model, counts, the LLM writing answers (or null)")
    def health() -> dict:
        return library.health()

    return router


def _routes(library: Library) -> APIRouter:
    router = APIRouter()

    @router.post("/ask", summary="Answer a question with its citations (the `rag ask --json` object)")
    def ask(body: AskRequest) -> dict:
        qid = _echo_id(body.id)
        return library.ask(body.question, k=body.k, province=body.province, year=body.year,
                           history=body.history).to_json(qid)

    @router.post("/search", summary="Ranked passages (the `rag search --json` object)")
    def search(body: SearchRequest) -> dict:
        query, qid = clean_text(body.query, "query"), _echo_id(body.id)
        return search_json(query, library.search(query, body.k, province=body.province, year=body.year), qid)

    @router.get("/documents", summary="The indexed documents")
    def documents() -> dict:
        docs = library.document_list()
        return {"documents": docs, "count": len(docs)}

    @router.post("/documents", status_code=201,
                 summary="Upload a document (txt, md, html, pdf, docx, doc, xlsx; at most 20 MB); with ?async=1, a job to poll",
                 responses={202: {"description": "with ?async=1: the job indexing it, to poll at /api/jobs/{id}"}})
    def upload(file: UploadFile = File(description="the document"),
               run_async: bool = Query(False, alias="async", description="index in the background: 202 and a job")):
        data = file.file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"The upload is larger than {MAX_UPLOAD_BYTES // 2**20} MB.")
        name = _sent_name(file)
        if not run_async:
            return upload_json(library, library.add_upload(name, data))
        name = safe_file_name(name)  # bad names are refused now, as without ?async
        job = library.jobs.start(name, lambda: upload_json(library, library.add_upload(name, data)))
        url = f"/api/jobs/{job.id}"
        return JSONResponse({"job": job.id, "state": job.state, "url": url}, status_code=202, headers={"Location": url})

    @router.get("/jobs/{job_id}", summary="A background upload: state, stage (reading, chunking, embedding done/total, "
                                          "saving, ready), then its result or its error")
    def job(job_id: str) -> dict:
        found = library.jobs.get(job_id)
        if found is None:
            raise HTTPException(404, f"No job with id {job_id!r} (jobs are kept in memory, the last 200).")
        return found.to_json(error_json)

    @router.get("/documents/{doc_id}", summary="One document: its metadata and cleaned text")
    def document(doc_id: str) -> dict:
        doc = _get(library, doc_id)
        return {**_doc_summary(doc), "text": doc.text}

    @router.get("/documents/{doc_id}/text", response_class=HTMLResponse,
                summary="The cleaned text as HTML, the span start–end marked (#cite)")
    def document_text(doc_id: str, start: int | None = None, end: int | None = None,
                      answer: str | None = None) -> HTMLResponse:
        from .chat import MAX_MARK_CHARS, document_page

        doc = _get(library, doc_id)
        if answer is not None and len(answer) > MAX_MARK_CHARS:
            raise UsageError(f"The answer to mark is too long ({len(answer)} characters; at most {MAX_MARK_CHARS}).")
        return HTMLResponse(document_page(doc, start, end, answer), headers=_PAGE_HEADERS)

    @router.get("/documents/{doc_id}/pages/{number}", response_class=Response,
                responses={200: {"content": {"image/png": {}}}},
                summary="A page of the original PDF as a PNG image, the span start–end marked")
    def document_page_image(doc_id: str, number: int, start: int | None = None, end: int | None = None) -> Response:
        from .pageimage import FileChanged, NoPage, page_png

        doc = _get(library, doc_id)
        try:
            png = page_png(doc, number, start, end)
        except NoPage as exc:
            raise HTTPException(404, str(exc)) from None
        except FileChanged as exc:
            raise HTTPException(409, str(exc)) from None
        return Response(png, media_type="image/png",
                        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=300"})

    @router.delete("/documents/{doc_id}", summary="Remove a document from the index")
    def delete(doc_id: str) -> dict:
        try:
            return library.remove(doc_id)
        except KeyError:
            raise _not_found(doc_id) from None

    return router


def _sent_name(file: UploadFile) -> str | None:
    """The file name as the client sent it. python-multipart keeps only the last part of a Windows path
    ("C:\\tmp\\evil.txt" becomes "evil.txt"); here such a name is refused like any other path."""
    disposition = file.headers.get("content-disposition", "")
    if "\\" not in disposition:
        return file.filename
    from email.message import Message

    header = Message()
    header["content-disposition"] = disposition
    sent = header.get_param("filename", header="content-disposition")
    return sent if isinstance(sent, str) and sent else disposition


def _api_fallback(app: FastAPI) -> None:
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    @app.api_route("/api/{rest:path}", methods=methods, include_in_schema=False)
    def not_found(rest: str, request: Request) -> None:
        others = [r for r in request.app.router.routes if getattr(r, "path", None) != "/api/{rest:path}"]
        if any(r.matches(request.scope)[0] == Match.PARTIAL for r in others):
            raise HTTPException(405, f"{request.method} is not allowed on {request.url.path}.")
        raise HTTPException(404, f"No API route {request.url.path}; see /docs.")


_PAGE_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                 "X-Content-Type-Options": "nosniff"}


def _get(library: Library, doc_id: str):
    try:
        return library.document(doc_id)
    except KeyError:
        raise _not_found(doc_id) from None


def _not_found(doc_id: str) -> HTTPException:
    return HTTPException(404, f"No document with id {doc_id!r} in the index.")


# ---------------------------------------------------------------- errors: one JSON object, plain words


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        status = 400 if any(e.get("type") == "json_invalid" for e in errors) else 422
        return _error(status, validation_message(errors))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RagError)
    async def rag_error(request: Request, exc: RagError) -> JSONResponse:
        return _error(error_status(exc), str(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        print(f"Unexpected {type(exc).__name__} on {request.method} {request.url.path}: {exc}", file=sys.stderr)
        return _error(500, f"Internal error ({type(exc).__name__}); the server log has the details.")


def validation_message(errors: list[dict]) -> str:
    """FastAPI's validation errors in one plain sentence."""
    if not errors:
        return "The request is not valid."
    e = errors[0]
    kind = e.get("type", "")
    loc = [str(p) for p in e.get("loc", ()) if p != "body"]
    field = ".".join(loc)
    names = {"string_type": "a string", "int_type": "an integer", "bool_type": "a boolean",
             "dict_type": "an object", "model_type": "an object"}
    union = [x for x in errors if [str(p) for p in x.get("loc", ()) if p != "body"][:-1] == loc[:-1]]
    if len(loc) >= 2 and len(union) > 1 and all(x.get("type") in names for x in union):
        # `str | int`: pydantic tries each type and names each try ('id.str', 'id.int')
        kinds = " or ".join(dict.fromkeys(names[x["type"]] for x in union))
        return f"The field {'.'.join(loc[:-1])!r} must be {kinds}."
    if kind == "json_invalid":
        return "The request body is not valid JSON."
    if not field:
        if kind == "missing":
            return "The request needs a JSON body."
        return "The request body must be a JSON object."
    if kind == "missing":
        return f"The field {field!r} is missing."
    if kind == "extra_forbidden":
        return f"Unknown field {field!r}."
    if kind in names:
        return f"The field {field!r} must be {names[kind]}."
    msg = str(e.get("msg", "is not valid")).rstrip(".")
    return f"The field {field!r} is not valid: {msg[:1].lower() + msg[1:]}."


class _BodyLimit:
    """The gate of every /api request, before any of its body is read.

    With a token, a request without it is refused (401) before its body is read. The body is then
    bounded whatever its framing: a declared Content-Length over the limit is refused at once, and
    the bytes of a chunked body are counted as the app reads them, the request refused (413) once
    they pass the limit. A refused body is read on and thrown away, up to DRAIN_BYTES, so that a
    client that sends its whole body before reading (urllib, http.client) gets the answer and not a
    reset connection; beyond that the connection is closed.
    """

    def __init__(self, app, token: str | None = None) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        path = scope["path"].rstrip("/")
        headers = dict(scope["headers"])
        if self.expected is not None and path not in _PUBLIC and not _token_ok(headers, self.expected):
            await _drain(receive, DRAIN_BYTES)
            await _send_json(send, 401, _TOKEN_MESSAGE, [(b"www-authenticate", b"Bearer")])
            return
        upload = path == "/api/documents"
        limit = MAX_UPLOAD_BYTES + 64 * 1024 if upload else MAX_JSON_BYTES
        too_large = (f"The upload is larger than {MAX_UPLOAD_BYTES // 2**20} MB." if upload
                     else f"The request body is too large (at most {limit // 1024} KB).")
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await _send_json(send, 400, "The Content-Length header is not a number.")
                return
            if int(length) > limit:
                if int(length) <= limit + DRAIN_BYTES:
                    await _drain(receive, int(length))
                await _send_json(send, 413, too_large)
                return
        read, over, started = 0, False, False

        async def counted_receive():
            nonlocal read, over
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > limit:
                    over = True
                    raise _TooLarge(too_large)
            return message

        async def gated_send(message):
            nonlocal started
            if over:
                return  # the app's own answer to the read that failed: ours goes instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, gated_send)
        except Exception:
            if not over:
                raise
        if over and not started:
            await _drain(receive, DRAIN_BYTES)
            await _send_json(send, 413, too_large)


class _TooLarge(Exception):
    """Raised into the app when the body it reads passes the limit (the app's handling of it is dropped)."""


_PUBLIC = {"/api/health"}  # the routes that want no token
_TOKEN_MESSAGE = "Missing or wrong API token: send the header `Authorization: Bearer <token>`."


def _token_ok(headers: dict[bytes, bytes], expected: bytes) -> bool:
    return hmac.compare_digest(headers.get(b"authorization", b""), expected)


async def _drain(receive, limit: int) -> None:
    """Read and discard the rest of the request body, at most `limit` bytes."""
    drained = 0
    while drained < limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _send_json(send, status: int, message: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


# ---------------------------------------------------------------- serving


def open_or_build(index_dir: str | Path | None, seeds: str | Path | None) -> RAG:
    """Open the index; when there is none and `seeds` is given, build it from there (with progress)."""
    try:
        return RAG.open(index_dir)
    except IndexNotFound:
        if seeds is None:
            raise
    from .api import default_index_dir

    target = Path(index_dir) if index_dir else default_index_dir()
    print(f"No index in {target}/: building it from {seeds}/ (once; later starts reuse it)…", flush=True)
    t0 = time.perf_counter()
    rag, report = RAG.build([seeds], target, progress=True)
    print(f"{report.summary()} ({time.perf_counter() - t0:.1f} s)", flush=True)
    return rag


def serve(host: str = "127.0.0.1", port: int = 7860, index_dir: str | Path | None = None, *,
          seeds: str | Path | None = None) -> int:
    """Open (or build) the index and serve the chat and the API until interrupted."""
    import uvicorn

    t0 = time.perf_counter()
    _check_port(host, port)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    warm = threading.Thread(target=__import__, args=("gradio",), daemon=True)  # overlaps the index loading
    warm.start()
    rag = open_or_build(index_dir, seeds)
    warm.join()
    app = create_app(rag=rag)
    if host not in ("127.0.0.1", "localhost", "::1") and not os.environ.get("RAG_API_TOKEN"):
        print(f"Warning: serving on {host} without RAG_API_TOKEN: anyone who can reach it can upload and delete.",
              file=sys.stderr)
    mode = "dense" if rag.mode == "dense" else "lexical (BM25 only: no embedding model)"
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, http=http_protocol())
    server = uvicorn.Server(config)

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            print(f"Ready in {time.perf_counter() - t0:.1f} s: chat http://{_url_host(host)}:{port}/  "
                  f"API http://{_url_host(host)}:{port}/docs  ({len(rag.documents)} documents, mode {mode})",
                  flush=True)

    threading.Thread(target=announce, daemon=True).start()
    server.run()
    return 0 if server.started else 1


class BackgroundServer:
    """Serve an app from a thread (tests, notebooks): `with BackgroundServer(app) as url: ...`."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self.host, self.port = host, port or _free_port(host)
        self.server = uvicorn.Server(uvicorn.Config(app, host=self.host, port=self.port, log_level="warning",
                                                    access_log=False, http=http_protocol()))
        self.thread = threading.Thread(target=self.server.run, name=f"rag-server-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"The server on {self.url} did not start.")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def http_protocol():
    """uvicorn's HTTP/1.1 protocol (h11), except that a request it cannot parse (a malformed request line,
    `Content-Length: abc`) gets a JSON error like every other, not uvicorn's plain text."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class JSONErrorsH11Protocol(H11Protocol):
        def send_400_response(self, msg: str) -> None:  # (uvicorn's own, with a JSON body)
            body = json.dumps({"error": "The request is not valid HTTP/1.1 (a malformed request line or header, "
                                        "such as Content-Length)."}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                       (b"connection", b"close")]
            for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"), h11.Data(data=body),
                          h11.EndOfMessage()):
                self.transport.write(self.conn.send(event))
            self.transport.close()

    return JSONErrorsH11Protocol


def _check_port(host: str, port: int) -> None:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise RagError(f"Cannot listen on {host}:{port} ({exc.strerror}); choose another with --port.") from None


def _free_port(host: str) -> int:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


__all__ = ["BackgroundServer", "Library", "clean_text", "create_app", "open_or_build", "safe_file_name", "serve"]
