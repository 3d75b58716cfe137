"""The HTTP API under hostile or odd input (issue 14): lone surrogates, file names, body framing and
size, the token before the body. Every refusal is a 4xx with `{"error": "one sentence"}`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rag.api import RAG
from rag.chat import answer_stream
from rag.server import Library, create_app

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
BEE_DOC = "Báo cáo nuôi ong Quảng Trị năm 2023.\nSố hộ nuôi ong ở Quảng Trị năm 2023 là 321 hộ.\n"


@pytest.fixture(scope="module")
def rag(tmp_path_factory) -> RAG:
    """A lexical index of a private copy of the seeds (the tests upload)."""
    root = tmp_path_factory.mktemp("hardening")
    shutil.copytree(SEEDS, root / "seeds")
    built, _ = RAG.build([root / "seeds"], root / "index", model="none")
    return built


@pytest.fixture(scope="module")
def client(rag):
    with TestClient(create_app(rag=rag, token="", ui=False), raise_server_exceptions=False) as c:
        yield c


def assert_error(response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text[:300])
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    return body["error"]


def post_json(client, path: str, obj) -> object:
    # json.dumps escapes a lone surrogate as \ud800: valid JSON text, a Python str no UTF-8 can hold
    return client.post(path, content=json.dumps(obj).encode(), headers={"content-type": "application/json"})


# ---------------------------------------------------------------- lone surrogates (#7)


@pytest.mark.parametrize("path, field", [("/api/ask", "question"), ("/api/search", "query")])
@pytest.mark.parametrize("text", ["h\ud800", "\udfff", "hộ nghèo \udced Huế"])
def test_a_lone_surrogate_is_bad_input_not_a_server_error(client, path, field, text):
    error = assert_error(post_json(client, path, {field: text}), 400)
    assert "Unicode" in error
    error.encode("utf-8")  # the message itself is printable


def test_a_lone_surrogate_in_the_python_api_is_a_usage_error(rag):
    from rag.errors import UsageError

    with pytest.raises(UsageError, match="Unicode"):
        rag.ask("h\ud800")
    with pytest.raises(UsageError, match="Unicode"):
        rag.search("h\ud800")


def test_a_lone_surrogate_in_the_chat_is_a_vietnamese_warning(rag):
    warnings: list[str] = []
    steps = list(answer_stream(Library(rag), "h\ud800", [], warn=warnings.append))
    assert warnings and "không hợp lệ" in warnings[0]
    for history, box in steps:  # what Gradio sends back to the browser must encode
        json.dumps([history, box], ensure_ascii=False).encode("utf-8")
    assert steps[-1][0] == []


@pytest.mark.parametrize("path, body", [
    ("/api/ask", {"question": "hộ nghèo Huế", "id": "q\ud800"}),
    ("/api/search", {"query": "hộ nghèo Huế", "id": "\udc80"}),
    ("/api/ask", {"question": "hộ nghèo Huế", "province": "Hu\ud800"}),
])
def test_a_lone_surrogate_in_another_field_is_bad_input(client, path, body):
    assert "Unicode" in assert_error(post_json(client, path, body), 400)


# ---------------------------------------------------------------- framing the server itself refuses (#12)


@pytest.fixture(scope="module")
def server(rag):
    from rag.server import BackgroundServer

    with BackgroundServer(create_app(rag=rag, token="", ui=False)) as url:
        yield url


def raw_http(url: str, request: bytes, timeout: float = 10) -> tuple[int, dict, bytes]:
    """Send bytes as they are; the status, headers and body of the answer."""
    import socket

    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("length", [b"abc", b"-1", b"1, 2", b"0x10"])
def test_a_malformed_content_length_gets_a_json_error(server, length):
    status, headers, body = raw_http(server, b"POST /api/ask HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                             b"Content-Length: " + length + b"\r\nConnection: close\r\n\r\n{}")
    assert status == 400 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"]


def test_a_request_that_is_not_http_gets_a_json_error(server):
    status, headers, body = raw_http(server, b"NOT HTTP AT ALL\r\n\r\n")
    assert status == 400 and headers["content-type"] == "application/json"
    assert "HTTP" in json.loads(body)["error"]


# ---------------------------------------------------------------- messages that say what is wrong (#14)


@pytest.mark.parametrize("bad_id", [[1], 1.5, True, {"a": 1}])
def test_a_bad_id_names_the_field_and_its_types(client, bad_id):
    error = assert_error(post_json(client, "/api/ask", {"question": "hộ nghèo", "id": bad_id}), 422)
    assert error == "The field 'id' must be a string or an integer."


# ---------------------------------------------------------------- upload names (#9, #14)


def upload(client, name: str, data: bytes = BEE_DOC.encode()):
    return client.post("/api/documents", files={"file": (name, data, "text/plain")})


@pytest.mark.parametrize("name", ["C:\\tmp\\evil.txt", "c:\\evil.txt", "\\\\server\\share\\evil.txt"])
def test_a_windows_path_is_refused_like_any_path(client, rag, name):
    before = set(rag.documents)
    assert "not a path" in assert_error(upload(client, name), 400)
    assert set(rag.documents) == before


@pytest.mark.parametrize("name, length", [("ệ" * 80 + ".txt", "244 bytes"), ("x" * 300 + ".txt", "304 bytes")])
def test_an_over_long_name_is_called_too_long(client, rag, name, length):
    before = set(rag.documents)
    error = assert_error(upload(client, name), 400)
    assert "too long" in error and length in error and "not allowed" not in error
    assert set(rag.documents) == before


def test_the_longest_allowed_name_is_stored(client, rag):
    from rag.server import MAX_NAME_BYTES

    stem = "ệ" * ((MAX_NAME_BYTES - 4) // 3)  # 3 bytes each in UTF-8
    r = upload(client, stem + ".txt")
    assert r.status_code == 201, r.text
    assert client.delete(f"/api/documents/{stem}").status_code == 200


# ---------------------------------------------------------------- bodies: bounded whatever the framing, the token first (#5)


CHUNK = b"x" * 65536


def call_asgi(app, path: str, headers: list[tuple[bytes, bytes]], offered: int) -> tuple[int, dict, int]:
    if path == "/api/documents":  # one file part that goes on and on
        headers = [(b"content-type", b"multipart/form-data; boundary=xyz"), *headers]
        first = (b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
                 b"Content-Type: text/plain\r\n\r\n")
    else:
        headers, first = [(b"content-type", b"application/json"), *headers], b'{"question": "'
    return _call_asgi(app, path, headers, first, offered)


def _call_asgi(app, path: str, headers: list[tuple[bytes, bytes]], first: bytes, offered: int) -> tuple[int, dict, int]:
    """POST to the ASGI app a body of `offered` bytes in 64 KB messages, without Content-Length (as a
    chunked request arrives); the status, the JSON answer, and how many body bytes the app pulled."""
    import asyncio

    pulled, sent = 0, []

    async def receive():
        nonlocal pulled
        if pulled >= offered:
            return {"type": "http.request", "body": b"", "more_body": False}
        body = first + CHUNK[len(first):] if pulled == 0 else CHUNK
        pulled += len(body)
        return {"type": "http.request", "body": body, "more_body": pulled < offered}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"test"), *headers],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), pulled


OFFERED = 50 * 2**20


@pytest.mark.parametrize("path", ["/api/ask", "/api/search"])
def test_a_chunked_body_is_bounded_like_any_other(rag, path):
    from rag.server import DRAIN_BYTES, MAX_JSON_BYTES

    status, body, pulled = call_asgi(create_app(rag=rag, token="", ui=False), path, [], OFFERED)
    assert status == 413 and "too large" in body["error"]
    assert pulled <= MAX_JSON_BYTES + DRAIN_BYTES + 2 * len(CHUNK)  # the chunk that passed the limit, the drain


def test_a_chunked_upload_is_bounded(rag):
    from rag.server import DRAIN_BYTES, MAX_UPLOAD_BYTES

    status, body, pulled = call_asgi(create_app(rag=rag, token="", ui=False), "/api/documents", [], 3 * MAX_UPLOAD_BYTES)
    assert status == 413 and "20 MB" in body["error"]
    assert pulled <= MAX_UPLOAD_BYTES + 64 * 1024 + DRAIN_BYTES + 2 * len(CHUNK)


@pytest.mark.parametrize("path", ["/api/ask", "/api/documents"])
def test_the_token_is_checked_before_the_body_is_read(rag, path):
    from rag.server import DRAIN_BYTES

    app = create_app(rag=rag, token="s3cret", ui=False)
    status, body, pulled = call_asgi(app, path, [], OFFERED)
    assert status == 401 and "token" in body["error"]
    assert pulled <= DRAIN_BYTES + len(CHUNK)  # read only to be thrown away, never parsed
    status, body, pulled = call_asgi(app, path, [(b"authorization", b"Bearer nope")], OFFERED)
    assert status == 401 and pulled <= DRAIN_BYTES + len(CHUNK)


# ---------------------------------------------------------------- an early answer reaches the client (#6)


@pytest.mark.parametrize("size", [1_000_000, 5_000_000])
def test_urllib_sees_the_413_for_an_oversized_question(server, size):
    import urllib.error
    import urllib.request

    body = json.dumps({"question": "x" * size}).encode()
    request = urllib.request.Request(server + "/api/ask", data=body, headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert caught.value.code == 413
    assert "too large" in json.loads(caught.value.read())["error"]


def test_http_client_sees_the_413_for_a_chunked_oversized_question(server):
    import http.client

    host, port = server.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    pieces = (b'{"question": "', *(b"x" * 65536 for _ in range(80)), b'"}')  # 5 MB, Transfer-Encoding: chunked
    conn.request("POST", "/api/ask", body=iter(pieces), headers={"Content-Type": "application/json"}, encode_chunked=True)
    response = conn.getresponse()
    assert response.status == 413 and "too large" in json.loads(response.read())["error"]
    conn.close()


def test_urllib_sees_the_401_before_a_large_body(rag):
    import urllib.error
    import urllib.request

    from rag.server import BackgroundServer

    with BackgroundServer(create_app(rag=rag, token="s3cret", ui=False)) as url:
        body = json.dumps({"question": "x" * 3_000_000}).encode()
        request = urllib.request.Request(url + "/api/ask", data=body, headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=30)
        assert caught.value.code == 401 and json.loads(caught.value.read())["error"]
