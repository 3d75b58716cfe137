"""The HTTP API and the chat page, over real HTTP on 127.0.0.1 (uvicorn in a background thread)."""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from rag.api import RAG, search_json
from rag.chat import answer_html, answer_stream, document_html, document_page, esc
from rag.server import MAX_UPLOAD_BYTES, BackgroundServer, Library, clean_text, create_app, safe_file_name
from rag.errors import UsageError

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
CANONICAL = "Tỷ lệ hộ nghèo Huế 2023?"
HUE_DOC = "004_1400c37e89a2c6fc"
ANSWER_KEYS = ["id", "question", "answer", "abstained", "answer_text", "citations", "mode", "timings_ms", "confidence",
               "asked"]
CITATION_KEYS = {"n", "doc_id", "source", "chunk_id", "start", "end", "text", "score", "page"}
BEE_DOC = "Báo cáo nuôi ong Quảng Trị năm 2023.\nSố hộ nuôi ong ở Quảng Trị năm 2023 là 321 hộ, tăng 12 hộ so với năm 2022.\n"


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    """A lexical index of a private copy of the seeds (the tests upload and delete)."""
    root = tmp_path_factory.mktemp("server")
    seeds = root / "seeds"
    shutil.copytree(SEEDS, seeds)
    RAG.build([seeds], root / "index", model="none")
    return root / "index"


@pytest.fixture(scope="module")
def rag(index_dir) -> RAG:
    return RAG.open(index_dir)


@pytest.fixture(scope="module")
def server(rag):
    """The full app (API and chat) without a token."""
    with BackgroundServer(create_app(rag=rag, token="")) as url:
        yield url


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server, timeout=30) as c:
        yield c


def _ask(client, question, **extra):
    return client.post("/api/ask", json={"question": question, **extra})


def _assert_error(response, low=400, high=499):
    assert low <= response.status_code <= high, (response.status_code, response.text)
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body["error"]


# ---------------------------------------------------------------- the contract


def test_health(client, rag):
    r = client.get("/api/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "mode": "lexical", "model": None, "documents": len(rag.documents),
                        "chunks": rag.chunk_count, "llm": None, "model_build": None, "precision": None,
                        "store": {"kind": "local", "location": str(rag.index_dir)}}


def test_canonical_question(client):
    r = _ask(client, CANONICAL)
    assert r.status_code == 200
    body = r.json()
    assert list(body)[: len(ANSWER_KEYS)] == ANSWER_KEYS
    assert body["abstained"] is False and "2,27%" in body["answer"]
    assert "2,27%" in body["answer_text"]
    cite = body["citations"][0]
    assert set(cite) == CITATION_KEYS
    assert cite["doc_id"] == HUE_DOC and "2,27%" in cite["text"]


def test_ask_is_the_python_api_answer(client, rag):
    body = _ask(client, "ty le ho ngheo hue 2023", id="q7").json()
    expected = rag.ask("ty le ho ngheo hue 2023").to_json("q7")
    body.pop("timings_ms"), expected.pop("timings_ms")
    assert body == expected


def test_unanswerable_abstains(client):
    body = _ask(client, "Giá vàng SJC hôm nay?").json()
    assert body["abstained"] is True and body["answer"] is None and body["citations"] == []


def test_filters(client):
    body = _ask(client, CANONICAL, province="Nghệ An").json()
    assert all(c["doc_id"] != HUE_DOC for c in body["citations"])
    body = _ask(client, CANONICAL, province="Thừa Thiên Huế", year=2023, k=8).json()
    assert body["citations"][0]["doc_id"] == HUE_DOC


def test_search_is_the_cli_object(client, rag):
    r = client.post("/api/search", json={"query": "hộ nghèo Huế 2023", "k": 3, "id": 1})
    assert r.status_code == 200
    body = r.json()
    assert body == search_json("hộ nghèo Huế 2023", rag.search("hộ nghèo Huế 2023", 3), 1)
    assert set(body["hits"][0]) == {"rank", "doc_id", "chunk_id", "score", "text", "start", "end"}


def test_documents_listed(client, rag):
    body = client.get("/api/documents").json()
    assert body["count"] == len(body["documents"]) == len(rag.documents)
    assert HUE_DOC in {d["doc_id"] for d in body["documents"]}


def test_document_text_page_marks_the_span(client):
    cite = _ask(client, CANONICAL).json()["citations"][0]
    r = client.get(f"/api/documents/{HUE_DOC}/text", params={"start": cite["start"], "end": cite["end"]})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<mark class="rag-cite" id="cite">' in r.text and "2,27%" in r.text
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert client.get(f"/api/documents/{HUE_DOC}").json()["text"].count("2,27%") >= 1


def test_chat_page_and_docs(client):
    r = client.get("/")
    assert r.status_code == 200 and "gradio" in r.text.lower()
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/ask", "/api/search", "/api/health", "/api/documents", "/api/documents/{doc_id}"} <= set(paths)


# ---------------------------------------------------------------- bad input: 4xx, {"error": ...}, never a traceback


BAD_ASKS = [
    pytest.param({"question": ""}, id="empty"),
    pytest.param({"question": "   \n\t "}, id="whitespace"),
    pytest.param({}, id="missing"),
    pytest.param({"q": "x"}, id="wrong-field"),
    pytest.param({"question": 5}, id="number"),
    pytest.param({"question": None}, id="null"),
    pytest.param({"question": ["a"]}, id="list"),
    pytest.param({"question": "ok", "k": "5"}, id="k-string"),
    pytest.param({"question": "ok", "k": 0}, id="k-zero"),
    pytest.param({"question": "ok", "k": 10**9}, id="k-huge"),
    pytest.param({"question": "ok", "k": True}, id="k-bool"),
    pytest.param({"question": "ok", "year": "2023"}, id="year-string"),
    pytest.param({"question": "ok", "year": 99999}, id="year-range"),
    pytest.param({"question": "ok", "province": 3}, id="province-number"),
    pytest.param({"question": "a\x00b"}, id="nul"),
    pytest.param({"question": "hộ nghèo\x1b[31m"}, id="escape-seq"),
    pytest.param({"question": "x" * 2001}, id="too-long"),
]


@pytest.mark.parametrize("body", BAD_ASKS)
def test_bad_ask_bodies(client, body):
    _assert_error(client.post("/api/ask", json=body))


@pytest.mark.parametrize("raw, content_type", [
    (b"not json", "application/json"),
    (b'{"question": "x"', "application/json"),
    (b"[1, 2]", "application/json"),
    (b'"just a string"', "application/json"),
    (b"", "application/json"),
    (b"question=x", "application/x-www-form-urlencoded"),
    (b"\xff\xfe\x00", "application/json"),
])
def test_bad_ask_payloads(client, raw, content_type):
    _assert_error(client.post("/api/ask", content=raw, headers={"content-type": content_type}))


def test_bad_search_bodies(client):
    for body in ({"query": ""}, {"question": "x"}, {"query": "x", "k": -1}, {"query": 1}):
        _assert_error(client.post("/api/search", json=body))


def test_over_long_body_is_refused_before_reading(client):
    error = _assert_error(client.post("/api/ask", content=b'{"question": "' + b"x" * 100_000 + b'"}',
                                      headers={"content-type": "application/json"}))
    assert "too large" in error


def test_unknown_routes_and_methods(client):
    assert _assert_error(client.get("/api/nope")) and client.get("/api/nope").status_code == 404
    assert client.get("/api/ask").status_code == 405
    _assert_error(client.get("/api/ask"))
    assert client.delete("/api/documents/no-such-doc").status_code == 404
    _assert_error(client.delete("/api/documents/no-such-doc"))
    _assert_error(client.get("/api/documents/no-such-doc/text"))
    _assert_error(client.get(f"/api/documents/{HUE_DOC}/text", params={"start": "abc"}))


@pytest.mark.parametrize("name, data, status", [
    ("../x.txt", b"van ban", 400),
    ("..\\x.txt", b"van ban", 400),
    ("/etc/passwd.txt", b"van ban", 400),
    (".hidden.txt", b"van ban", 400),
    ("a\x01b.txt", b"van ban", 400),
    ("virus.exe", b"MZ", 400),
    ("noext", b"van ban", 400),
    ("empty.txt", b"", 400),
    ("blank.txt", b"   \n  ", 400),
    ("broken.pdf", b"%PDF-1.4 not really", 400),
    ("broken.docx", b"PK not a zip", 400),
    (f"{HUE_DOC}.txt", b"thay the tai lieu", 409),
])
def test_bad_uploads(client, rag, name, data, status):
    before = set(rag.documents)
    r = client.post("/api/documents", files={"file": (name, data, "text/plain")})
    assert r.status_code == status, r.text
    _assert_error(r)
    assert set(rag.documents) == before


def test_upload_without_file_field(client):
    _assert_error(client.post("/api/documents", files={"other": ("a.txt", b"x", "text/plain")}))
    _assert_error(client.post("/api/documents", json={"file": "a.txt"}))


def test_oversized_upload(client, rag):
    r = client.post("/api/documents", files={"file": ("big.txt", b"a" * (MAX_UPLOAD_BYTES + 1), "text/plain")})
    assert r.status_code == 413
    assert "20 MB" in _assert_error(r)
    assert "big" not in rag.documents


# ---------------------------------------------------------------- uploads


def test_upload_ask_delete_round_trip(client, index_dir):
    r = client.post("/api/documents", files={"file": ("nuoi ong.txt", BEE_DOC.encode(), "text/plain")})
    assert r.status_code == 201, r.text
    assert r.json()["doc_id"] == "nuoi ong" and r.json()["status"] == "added"
    assert (index_dir / "uploads" / "nuoi ong.txt").is_file()
    assert "nuoi ong" in {d["doc_id"] for d in client.get("/api/documents").json()["documents"]}
    body = _ask(client, "Số hộ nuôi ong ở Quảng Trị năm 2023?").json()
    assert body["answer"] == "321 hộ" and body["citations"][0]["doc_id"] == "nuoi ong"
    again = client.post("/api/documents", files={"file": ("nuoi ong.txt", BEE_DOC.encode(), "text/plain")})
    assert again.status_code == 201 and again.json()["status"] == "unchanged"
    r = client.delete("/api/documents/nuoi ong")
    assert r.status_code == 200 and r.json()["removed"] == "nuoi ong"
    assert not (index_dir / "uploads" / "nuoi ong.txt").exists()
    assert client.delete("/api/documents/nuoi ong").status_code == 404
    assert _ask(client, "Số hộ nuôi ong ở Quảng Trị năm 2023?").json()["abstained"] is True


def test_upload_html_is_cleaned_and_escaped(client):
    page = ("<html><body><h1>Tin nuôi ong</h1><p>Số hộ nuôi ong ở Quảng Trị năm 2023 là 321 hộ.</p>"
            "<script>window.__pwned=1</script></body></html>")
    r = client.post("/api/documents", files={"file": ("tin.html", page.encode(), "text/html")})
    assert r.status_code == 201, r.text
    try:
        text = client.get("/api/documents/tin/text").text
        assert "<script>window" not in text
    finally:
        client.delete("/api/documents/tin")


# ---------------------------------------------------------------- concurrency


def _hammer(client, n: int, workers: int = 16) -> list[httpx.Response]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda _: _ask(client, CANONICAL), range(n)))


def _check_all(responses):
    bad = [r for r in responses if r.status_code != 200 or "2,27%" not in (r.json().get("answer") or "")]
    assert not bad, [(r.status_code, r.text[:200]) for r in bad[:3]]


def test_concurrent_asks(client):
    _check_all(_hammer(client, 40))


def test_200_concurrent_asks(client):  # ~4 s on 2 cores
    _check_all(_hammer(client, 200))


def test_uploads_during_concurrent_asks(client, rag):
    before = set(rag.documents)
    results: list[httpx.Response] = []
    stop = threading.Event()

    def asker():
        while not stop.is_set():
            results.append(_ask(client, CANONICAL))

    threads = [threading.Thread(target=asker) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        for i in range(3):
            r = client.post("/api/documents", files={"file": (f"ong {i}.txt", BEE_DOC.encode(), "text/plain")})
            assert r.status_code == 201, r.text
        for i in range(3):
            assert client.delete(f"/api/documents/ong {i}").status_code == 200
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert len(results) >= 6
    _check_all(results)
    assert set(rag.documents) == before


# ---------------------------------------------------------------- token


def test_token_protects_the_api(rag):
    with BackgroundServer(create_app(rag=rag, token="s3cret", ui=False)) as url, httpx.Client(base_url=url) as c:
        assert c.get("/api/health").status_code == 200
        for r in (c.post("/api/ask", json={"question": CANONICAL}), c.get("/api/documents"),
                  c.post("/api/ask", json={"question": CANONICAL}, headers={"Authorization": "Bearer nope"}),
                  c.post("/api/ask", json={"question": CANONICAL}, headers={"Authorization": "s3cret"}),
                  c.delete(f"/api/documents/{HUE_DOC}")):
            assert r.status_code == 401
            _assert_error(r)
            assert r.headers["www-authenticate"] == "Bearer"
        ok = c.post("/api/ask", json={"question": CANONICAL}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["answer"] == "2,27%"
    assert HUE_DOC in rag.documents


def test_token_from_environment(rag, monkeypatch):
    monkeypatch.setenv("RAG_API_TOKEN", "from-env")
    app = create_app(rag=rag, ui=False)
    with BackgroundServer(app) as url, httpx.Client(base_url=url) as c:
        assert c.get("/api/documents").status_code == 401
        assert c.get("/api/documents", headers={"Authorization": "Bearer from-env"}).status_code == 200


# ---------------------------------------------------------------- escaping and validation helpers


EVIL = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1"> 2,27% & "quotes"'


def test_escaping_helpers(rag):
    assert esc(EVIL).startswith("&lt;script&gt;") and "<" not in esc(EVIL) and '"' not in esc(EVIL)
    answer = rag.ask(CANONICAL)
    doc = rag.documents[HUE_DOC]
    evil_doc = type(doc)(doc.id, doc.source, EVIL + "\n" + doc.text, doc.sha256, doc.meta, doc.sections)
    html = answer_html(answer, {HUE_DOC: evil_doc}, "lexical")
    assert "<mark" in html and "<script" not in html and "<img" not in html
    shown = document_html(evil_doc, 0, len(EVIL), "2,27%")
    assert "&lt;img src=x onerror=&quot;" in shown and "<img" not in shown
    assert '<mark class="rag-span">2,27%</mark>' in shown
    page = document_page(evil_doc, 0, 10)
    assert "<script>" not in page.split("</head>")[1]


def test_chat_streams_then_shows_sources(rag):
    library = Library(rag)
    steps = list(answer_stream(library, CANONICAL, [], "Tất cả", "Tất cả"))
    assert len(steps) >= 4  # a placeholder, pieces of the sentence, then the answer with its sources
    assert all(text == "" for _, text in steps)
    history = steps[-1][0]
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert "rag-streaming" in steps[1][0][-1]["content"] and "rag-source" not in steps[1][0][-1]["content"]
    assert "<mark" in history[-1]["content"] and HUE_DOC in history[-1]["content"]
    warnings = []
    assert list(answer_stream(library, "  ", history, warn=warnings.append)) == [(history, "  ")]
    assert warnings == ["Câu hỏi đang trống."]
    assert list(answer_stream(library, "x" * 2001, [], warn=warnings.append))[-1][0] == []
    evil = list(answer_stream(library, "<script>x</script> Huế?", [], None, None))[-1][0]
    assert evil[0]["content"].startswith("&lt;script&gt;")


def test_validation_helpers():
    assert clean_text("  Huế  ") == "Huế"
    assert clean_text("Hu\u00ea\u0301") == "Huế"  # decomposed input is normalised
    for bad in ("", " ", "a\x07", "x" * 2001, None, 3):
        with pytest.raises(UsageError):
            clean_text(bad)
    assert safe_file_name("Báo cáo (2023).docx") == "Báo cáo (2023).docx"
    for bad in ("../a.txt", "a/b.txt", "C:\\a.txt", ".env.txt", "a.sh", "", "a\nb.txt", "x" * 300 + ".txt"):
        with pytest.raises(UsageError):
            safe_file_name(bad)


def test_serve_subcommand_parses():
    from rag.cli import build_parser

    args = build_parser().parse_args(["serve", "--port", "8123", "--index-dir", "idx"])
    assert (args.host, args.port, str(args.index_dir), args.func.__name__) == ("127.0.0.1", 8123, "idx", "cmd_serve")


# ---------------------------------------------------------------- the chat's upload event, over Gradio's own routes


def _gradio_upload_event(client, file_data: dict, session: str) -> dict:
    """Call the chat's upload event as a client can (POST /gradio_api/queue/join), return its completed message."""
    import json

    config = client.get("/config").json()
    upload_id = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "rag-upload")
    fn_index = next(d["id"] for d in config["dependencies"] if [upload_id, "upload"] in d["targets"])
    r = client.post("/gradio_api/queue/join", json={"data": [file_data], "fn_index": fn_index, "session_hash": session,
                                                    "event_data": None, "trigger_id": upload_id})
    assert r.status_code == 200, r.text
    with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message
    raise AssertionError("the upload event never completed")


def _file_data(path: str, name: str) -> dict:
    return {"path": path, "meta": {"_type": "gradio.FileData"}, "orig_name": name}


def test_chat_upload_reads_only_files_the_browser_sent(client, rag, index_dir, tmp_path):
    """A FileData naming any other server path (absolute, or `..` out of Gradio's cache) is refused in
    Vietnamese; nothing is read, copied, indexed or served."""
    import os

    secret = tmp_path / "private" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("Mật khẩu quản trị là ngựa-vằn-42.\n", "utf-8")
    secret.chmod(0o600)
    cache = Path(_upload_cache(client))
    sneaky = str(cache / os.path.relpath(secret, cache))  # "<cache>/../../…/secret.txt"
    link = cache / "link" / "secret.txt"  # (a client cannot make one; the check resolves symlinks all the same)
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(secret)
    before = set(rag.documents)
    for i, path in enumerate((str(secret), sneaky, str(link), "http://127.0.0.1:9/secret.txt")):
        message = _gradio_upload_event(client, _file_data(path, "secret.txt"), f"evil{i}")
        status = message["output"]["data"][1] if message.get("success") else message["output"].get("error", "")
        assert "Không thêm được" in status and "tải lên" in status, message
        assert set(rag.documents) == before
        assert client.get("/api/documents/secret").status_code == 404
        assert not (index_dir / "uploads" / "secret.txt").exists()
        copies = [p for p in cache.rglob("secret.txt") if p != link] if cache.exists() else []
        assert not copies, copies  # Gradio did not copy it into its cache either
    link.unlink()


def _upload_cache(client) -> str:
    """Where the chat keeps what the browser uploads: the folder of a file sent to /gradio_api/upload."""
    r = client.post("/gradio_api/upload", files={"files": ("probe.txt", b"probe", "text/plain")})
    assert r.status_code == 200, r.text
    return str(Path(r.json()[0]).parent.parent)


def test_chat_upload_of_a_file_the_browser_sent(client, rag, index_dir):
    """The real flow: the browser posts the file to /gradio_api/upload, then the event names the path it got."""
    r = client.post("/gradio_api/upload", files={"files": ("ong chat.txt", BEE_DOC.encode(), "text/plain")})
    assert r.status_code == 200, r.text
    message = _gradio_upload_event(client, _file_data(r.json()[0], "ong chat.txt"), "good")
    assert message["success"] and "Đã thêm ong chat" in message["output"]["data"][1], message
    try:
        assert "ong chat" in rag.documents
        stored = index_dir / "uploads" / "ong chat.txt"
        assert stored.stat().st_mode & 0o077 == 0, oct(stored.stat().st_mode)  # not readable by others
        assert (index_dir / "uploads").stat().st_mode & 0o077 == 0
    finally:
        assert client.delete("/api/documents/ong chat").status_code == 200


def test_upload_into_a_damaged_index_keeps_every_document(tmp_path):
    """The audit's case: one flipped byte in the live snapshot's lexical/tokens.npy, then an upload."""
    from rag import store

    shutil.copytree(SEEDS, tmp_path / "seeds")
    rag, _ = RAG.build([tmp_path / "seeds"], tmp_path / "index", model="none")
    tokens = store.live_snapshot(tmp_path / "index") / "lexical" / "tokens.npy"
    data = bytearray(tokens.read_bytes())
    data[len(data) // 2] ^= 0x01
    tokens.write_bytes(bytes(data))
    with BackgroundServer(create_app(rag=rag, token="", ui=False)) as url, httpx.Client(base_url=url, timeout=60) as c:
        r = c.post("/api/documents", files={"file": ("nuoi ong.txt", BEE_DOC.encode(), "text/plain")})
        assert r.status_code == 201, r.text
        assert r.json()["documents"] == 6
        assert c.get("/api/health").json()["documents"] == 6
        assert _ask(c, CANONICAL).json()["answer"] == "2,27%"
    assert len(store.load(tmp_path / "index").documents) == 6


def test_each_index_has_its_own_private_chat_cache(tmp_path):
    """A file sent to one instance's chat is kept in that index's own cache (0700), is not served by
    another instance on the machine, and is deleted once indexed; nothing of it stays after removal."""
    apps = {}
    for name in ("a", "b"):
        shutil.copytree(SEEDS, tmp_path / name / "seeds")
        rag, _ = RAG.build([tmp_path / name / "seeds"], tmp_path / name / "index", model="none")
        apps[name] = create_app(rag=rag, token="")
    with BackgroundServer(apps["a"]) as url_a, BackgroundServer(apps["b"]) as url_b, \
            httpx.Client(base_url=url_a, timeout=30) as a, httpx.Client(base_url=url_b, timeout=30) as b:
        r = b.post("/gradio_api/upload", files={"files": ("ong b.txt", BEE_DOC.encode(), "text/plain")})
        assert r.status_code == 200, r.text
        cached = Path(r.json()[0])
        cache = tmp_path / "b" / "index"
        assert cached.is_relative_to(cache) and cached.is_file()
        folder = next(p for p in cached.parents if p.parent == cache)
        assert folder.stat().st_mode & 0o077 == 0, oct(folder.stat().st_mode)
        assert a.get(f"/gradio_api/file={cached}").status_code in (403, 404)  # not the other instance's to serve
        assert b.get(f"/gradio_api/file={cached}").status_code == 200
        message = _gradio_upload_event(b, _file_data(str(cached), "ong b.txt"), "b1")
        assert "Đã thêm ong b" in message["output"]["data"][1], message
        assert not cached.exists()  # indexed, then gone from the cache
        assert b.delete("/api/documents/ong b").status_code == 200
        assert not [p for p in folder.rglob("*") if p.is_file() and p.name == "ong b.txt"]
