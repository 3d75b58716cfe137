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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.routing import Match

from .answer import Answer
from .api import RAG, search_json
from .errors import IndexCorrupt, IndexLocked, IndexNotFound, RagError, UsageError
from .ingest import load_document
from .loaders import SUPPORTED

MAX_QUESTION_CHARS = 2000
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_JSON_BYTES = 64 * 1024
MAX_NAME_CHARS = 200
UPLOADS = "uploads"  # folder inside the index folder that keeps uploaded files (their `source`)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_NAME_OK = re.compile(r"[\w\- .,()+&'\[\]]+")


# ---------------------------------------------------------------- validation shared by the API and the chat


def clean_text(value: Any, what: str = "question", limit: int = MAX_QUESTION_CHARS) -> str:
    """The text stripped and NFC-normalised; UsageError when it is empty, too long or holds control characters."""
    if not isinstance(value, str):
        raise UsageError(f"The {what} must be a string.")
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        raise UsageError(f"The {what} is empty.")
    if len(text) > limit:
        raise UsageError(f"The {what} is too long ({len(text)} characters; at most {limit}).")
    if _CONTROL.search(text):
        raise UsageError(f"The {what} contains control characters.")
    return text


def safe_file_name(name: str | None) -> str:
    """An upload's file name, or UsageError when it holds a path, odd characters or an unsupported type."""
    if not name or not name.strip():
        raise UsageError("The upload has no file name.")
    name = unicodedata.normalize("NFC", name.strip())
    if "/" in name or "\\" in name or name.startswith(".") or ".." in name:
        raise UsageError(f"The file name {name!r} must be a plain name, not a path.")
    if len(name) > MAX_NAME_CHARS or _CONTROL.search(name) or not _NAME_OK.fullmatch(name):
        raise UsageError("The file name holds characters that are not allowed (use letters, digits, spaces, - _ . ( )).")
    if Path(name).suffix.lower() not in SUPPORTED:
        raise UsageError(f"{name} is not a supported document type (use {', '.join(SUPPORTED)}).")
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

    # -- reading

    def ask(self, question: Any, *, k: int | None = None, province: str | None = None, year: int | None = None) -> Answer:
        return self.rag.ask(clean_text(question), k=k, province=_opt(province, "province"), year=year)

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

    def document(self, doc_id: str):
        doc = self.rag.documents.get(doc_id)
        if doc is None:
            raise KeyError(doc_id)
        return doc

    # -- writing

    def add_upload(self, name: str | None, data: bytes) -> Upload:
        """Keep the file in the uploads folder and index it incrementally."""
        name = safe_file_name(name)
        if len(data) > MAX_UPLOAD_BYTES:
            raise UsageError(f"{name} is larger than {MAX_UPLOAD_BYTES // 2**20} MB.")
        target = self.uploads_dir / name
        load_document(target, data)  # parse before touching anything: unreadable files change nothing
        with self._write:
            existing = self.rag.documents.get(target.stem)
            if existing is not None and Path(existing.source).resolve() != target.resolve():
                raise Conflict(f"A document with id {target.stem!r} is already indexed from {existing.source}; "
                               "rename the file or remove that document first.")
            self.uploads_dir.mkdir(parents=True, exist_ok=True)
            previous = target.read_bytes() if target.exists() else None
            tmp = self.uploads_dir / f".tmp-{os.getpid()}-{threading.get_ident()}-{name}"
            tmp.write_bytes(data)
            os.replace(tmp, target)
            try:
                report = self.rag.add([target])
            except BaseException:
                if previous is None:
                    target.unlink(missing_ok=True)
                else:
                    target.write_bytes(previous)
                raise
        status = "added" if report.added else "updated" if report.updated else "unchanged"
        return Upload(target.stem, status, report.documents, report.chunks)

    def remove(self, doc_id: str) -> dict:
        with self._write:
            doc = self.rag.documents.get(doc_id)
            if doc is None:
                raise KeyError(doc_id)
            report = self.rag.remove(doc_id)
            source = Path(doc.source)
            if source.resolve().is_relative_to(self.uploads_dir.resolve()):  # an uploaded copy goes too; files elsewhere are the user's
                source.unlink(missing_ok=True)
        return {"removed": doc_id, "documents": report.documents, "chunks": report.chunks}


class Conflict(UsageError):
    """The request is well-formed but clashes with what is indexed (HTTP 409)."""


def _opt(value: str | None, what: str) -> str | None:
    return None if value is None or not str(value).strip() else clean_text(value, what, 100)


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
    app.add_middleware(_BodyLimit)
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
        if not hmac.compare_digest(given, expected):
            raise HTTPException(401, "Missing or wrong API token: send the header `Authorization: Bearer <token>`.",
                                headers={"WWW-Authenticate": "Bearer"})

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
        return library.ask(body.question, k=body.k, province=body.province, year=body.year).to_json(body.id)

    @router.post("/search", summary="Ranked passages (the `rag search --json` object)")
    def search(body: SearchRequest) -> dict:
        query = clean_text(body.query, "query")
        return search_json(query, library.search(query, body.k, province=body.province, year=body.year), body.id)

    @router.get("/documents", summary="The indexed documents")
    def documents() -> dict:
        docs = library.document_list()
        return {"documents": docs, "count": len(docs)}

    @router.post("/documents", status_code=201, summary="Upload a document (txt, md, html, pdf, docx; at most 20 MB)")
    def upload(file: UploadFile = File(description="the document")) -> dict:
        data = file.file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"The upload is larger than {MAX_UPLOAD_BYTES // 2**20} MB.")
        result = library.add_upload(file.filename, data)
        doc = library.document(result.doc_id)
        return {**_doc_summary(doc), "status": result.status, "documents": result.documents, "chunks": result.chunks}

    @router.get("/documents/{doc_id}", summary="One document: its metadata and cleaned text")
    def document(doc_id: str) -> dict:
        doc = _get(library, doc_id)
        return {**_doc_summary(doc), "text": doc.text}

    @router.get("/documents/{doc_id}/text", response_class=HTMLResponse,
                summary="The cleaned text as HTML, the span start–end marked (#cite)")
    def document_text(doc_id: str, start: int | None = None, end: int | None = None) -> HTMLResponse:
        from .chat import document_page

        doc = _get(library, doc_id)
        return HTMLResponse(document_page(doc, start, end), headers=_PAGE_HEADERS)

    @router.delete("/documents/{doc_id}", summary="Remove a document from the index")
    def delete(doc_id: str) -> dict:
        try:
            return library.remove(doc_id)
        except KeyError:
            raise _not_found(doc_id) from None

    return router


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
        if isinstance(exc, Conflict):
            return _error(409, str(exc))
        if isinstance(exc, UsageError):
            return _error(400, str(exc))
        if isinstance(exc, IndexLocked):
            return _error(409, str(exc))
        if isinstance(exc, (IndexNotFound, IndexCorrupt)):
            return _error(503, str(exc))
        return _error(503, str(exc))

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
    names = {"string_type": "a string", "int_type": "an integer", "bool_type": "a boolean",
             "dict_type": "an object", "model_type": "an object"}
    if kind in names:
        return f"The field {field!r} must be {names[kind]}."
    msg = str(e.get("msg", "is not valid")).rstrip(".")
    return f"The field {field!r} is not valid: {msg[:1].lower() + msg[1:]}."


class _BodyLimit:
    """Refuse over-long bodies on /api before reading them: 413 with a JSON error."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            length = dict(scope["headers"]).get(b"content-length")
            limit = MAX_UPLOAD_BYTES + 64 * 1024 if scope["path"].rstrip("/") == "/api/documents" else MAX_JSON_BYTES
            if length is not None:
                if not length.isdigit():
                    await _send_json(send, 400, "The Content-Length header is not a number.")
                    return
                if int(length) > limit:
                    await _send_json(send, 413, f"The request body is too large (at most {limit // 1024} KB).")
                    return
        await self.app(scope, receive, send)


async def _send_json(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
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
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
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
                                                    access_log=False))
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
