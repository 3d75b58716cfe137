"""The generative answerer, on recorded replies: a local HTTP server on 127.0.0.1 plays an
OpenAI-compatible server and an Ollama server to the real ChatOpenAI and ChatOllama clients."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rag.api import RAG
from rag.cli import main
from rag.errors import UsageError
from rag.generate import (
    NOT_FOUND, SYSTEM_PROMPT, GeneratedAnswer, LLMConfig, cited_numbers, figures, guess_provider, parse_reply,
    renumber,
)

ROOT = Path(__file__).resolve().parents[1]
RECORDED = Path(__file__).parent / "fixtures" / "llm"
QUESTION = "Tỷ lệ hộ nghèo Huế 2023?"
HUE_DOC = "004_1400c37e89a2c6fc"
ANSWER_KEYS = ["id", "question", "answer", "abstained", "answer_text", "citations", "mode", "timings_ms", "confidence",
               "asked"]


# ---------------------------------------------------------------- the recorded server


class RecordedLLM:
    """A threaded HTTP server on 127.0.0.1 answering every POST with the reply set by `play`, and
    keeping the JSON bodies it was sent."""

    def __init__(self) -> None:
        self.status, self.content_type, self.body = 500, "application/json", b"{}"
        self.delay = 0.0  # seconds before replying
        self.requests: list[tuple[str, dict]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("content-length", 0)))
                owner.requests.append((self.path, json.loads(data)))
                time.sleep(owner.delay)
                try:
                    self.send_response(owner.status)
                    self.send_header("content-type", owner.content_type)
                    self.send_header("content-length", str(len(owner.body)))
                    self.end_headers()
                    self.wfile.write(owner.body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (timeout tests)
                    return

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def play(self, fixture: str) -> None:
        """Serve tests/fixtures/llm/<fixture>.json as that server would."""
        recorded = json.loads((RECORDED / f"{fixture}.json").read_text(encoding="utf-8"))
        if fixture.startswith("ollama"):
            lines = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in recorded)
            self.respond(200, "application/x-ndjson", lines)
        else:
            self.respond(200, "application/json", json.dumps(recorded, ensure_ascii=False))

    def respond(self, status: int, content_type: str, body: str) -> None:
        self.status, self.content_type, self.body = status, content_type, body.encode()
        self.delay = 0.0
        self.requests.clear()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def llm_server():
    server = RecordedLLM()
    yield server
    server.close()


@pytest.fixture(scope="module")
def openai_rag(seeds_index, llm_server) -> RAG:
    return RAG.open(seeds_index, llm=LLMConfig.from_url(f"{llm_server.url}/v1", model="qwen2.5-7b-instruct"))


@pytest.fixture(scope="module")
def extractive(seeds_index):
    return RAG.open(seeds_index, llm=False).ask(QUESTION)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_quotes_document(rag: RAG, answer) -> None:
    for c in answer.citations:
        assert rag.documents[c.doc_id].text[c.start:c.end] == c.text
        assert c.chunk_id.startswith(f"{c.doc_id}:")


# ---------------------------------------------------------------- OpenAI-compatible server


def test_correct_answer_is_generative_and_cites_the_document(openai_rag, llm_server):
    llm_server.play("openai_correct")
    answer = openai_rag.ask(QUESTION)
    assert isinstance(answer, GeneratedAnswer) and answer.fallback is None
    assert answer.mode == "generative" and not answer.abstained
    assert answer.answer == "2,27%"
    assert answer.answer_text.endswith("[1].") and "2,27%" in answer.answer_text
    [c] = answer.citations
    assert (c.n, c.doc_id, c.source.endswith(f"{HUE_DOC}.txt")) == (1, HUE_DOC, True)
    assert c.text == "Tỷ lệ hộ nghèo 2,27%, giảm 1,29% so với năm 2022, vượt 0,52% so với chỉ tiêu kế hoạch năm 2023."
    assert_quotes_document(openai_rag, answer)
    assert set(answer.timings_ms) == {"retrieve", "answer"}
    assert list(answer.to_json("q1")) == ANSWER_KEYS


def test_the_prompt_numbers_the_passages_and_demands_citations(openai_rag, llm_server):
    llm_server.play("openai_correct")
    openai_rag.ask(QUESTION)
    [(path, body)] = llm_server.requests
    assert path == "/v1/chat/completions"
    assert body["model"] == "qwen2.5-7b-instruct" and body["temperature"] == 0
    system, user = body["messages"]
    assert system["role"] == "system" and system["content"] == SYSTEM_PROMPT
    assert "[n]" in system["content"] and NOT_FOUND in system["content"] and "Trả lời ngắn:" in system["content"]
    assert user["role"] == "user" and user["content"].rstrip().endswith(f"Câu hỏi: {QUESTION}")
    for n in range(1, 7):
        assert f"\n[{n}] (" in f"\n{user['content']}"
    assert f"[1] ({HUE_DOC} — " in user["content"] and "Tỷ lệ hộ nghèo 2,27%" in user["content"]


def test_citations_are_renumbered_in_order_and_each_claim_checked(openai_rag, llm_server):
    llm_server.play("openai_two_sources")  # cites [2] then [1]
    answer = openai_rag.ask(QUESTION)
    assert answer.mode == "generative", answer.fallback
    assert answer.answer == "2,27%"
    assert answer.answer_text == ("Thừa Thiên Huế phấn đấu giảm tỷ lệ hộ nghèo còn dưới 1,76% [1]; "
                                  "năm 2023 tỷ lệ này là 2,27% [2].")
    first, second = answer.citations
    assert (first.n, second.n) == (1, 2)
    assert "1,76%" in first.text and first.chunk_id == f"{HUE_DOC}:5053-5909"
    assert "2,27%" in second.text and second.chunk_id == f"{HUE_DOC}:774-1595"
    assert_quotes_document(openai_rag, answer)


@pytest.mark.parametrize("fixture, why", [
    ("openai_hallucinated", "3,5"),  # a figure the passage does not hold
    ("openai_bad_citation", "[7]"),  # a passage that was not given
])
def test_unverified_answer_falls_back_to_extractive(openai_rag, llm_server, extractive, fixture, why, capsys):
    llm_server.play(fixture)
    answer = openai_rag.ask(QUESTION)
    assert answer.mode == "extractive" and why in answer.fallback
    assert answer.answer == "2,27%" == extractive.answer
    assert answer.citations == extractive.citations
    assert answer.to_json() == {**extractive.to_json(), "timings_ms": answer.timings_ms}
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("LLM answer not used:") and why in err[0]


def test_not_found_is_a_generative_abstention(openai_rag, llm_server):
    llm_server.play("openai_not_found")
    answer = openai_rag.ask(QUESTION)
    assert answer.mode == "generative" and answer.abstained and answer.answer is None
    assert answer.citations == () and answer.fallback is None
    assert answer.answer_text.startswith("Không tìm thấy thông tin trả lời")


@pytest.mark.parametrize("status, content_type, body", [
    (500, "application/json", '{"error": {"message": "CUDA out of memory", "type": "server_error"}}'),
    (200, "text/html", "<html><body>502 Bad Gateway</body></html>"),
    (200, "application/json", '{"choices": "garbage"}'),
    (200, "application/json", "{not json"),
])
def test_server_error_or_garbage_falls_back(openai_rag, llm_server, extractive, status, content_type, body, capsys):
    llm_server.respond(status, content_type, body)
    answer = openai_rag.ask(QUESTION)
    assert answer.mode == "extractive" and answer.answer == extractive.answer
    assert answer.fallback.startswith("the LLM at") and "failed" in answer.fallback
    assert capsys.readouterr().err.count("\n") == 1


def test_unreachable_server_falls_back_fast_and_is_not_asked_again_at_once(seeds_index, extractive, capsys):
    rag = RAG.open(seeds_index, llm=LLMConfig.from_url(f"http://127.0.0.1:{closed_port()}/v1"))
    t0 = time.perf_counter()
    answer = rag.ask(QUESTION)
    first = time.perf_counter() - t0
    assert answer.mode == "extractive" and answer.answer == extractive.answer
    assert "unreachable" in answer.fallback
    assert first < 3.0, first
    again = rag.ask(QUESTION)  # within the cool-down: no second wait, no second message
    assert again.mode == "extractive" and "unreachable" in again.fallback
    assert capsys.readouterr().err.count("LLM answer not used") == 1


def test_server_that_never_connects_falls_back_after_the_connect_timeout(seeds_index):
    """A listening socket whose backlog is full drops new connections, like a host that is down."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(4)]
        for s in fillers:
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
        time.sleep(0.1)
        with socket.socket() as probe:
            probe.settimeout(0.3)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                pytest.skip("this system accepts connections beyond a full backlog")
        for url in (f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/v1"):
            rag = RAG.open(seeds_index, llm=LLMConfig.from_url(url, connect_timeout_s=0.5))
            t0 = time.perf_counter()
            answer = rag.ask(QUESTION)
            assert time.perf_counter() - t0 < 2.5
            assert answer.mode == "extractive" and "unreachable" in answer.fallback
        for s in fillers:
            s.close()


def test_slow_server_falls_back_after_the_request_timeout(seeds_index, llm_server, extractive):
    llm_server.play("openai_correct")
    llm_server.delay = 1.5
    rag = RAG.open(seeds_index, llm=LLMConfig.from_url(f"{llm_server.url}/v1", timeout_s=0.5))
    t0 = time.perf_counter()
    answer = rag.ask(QUESTION)
    assert time.perf_counter() - t0 < 1.4
    assert answer.mode == "extractive" and answer.answer == extractive.answer
    assert "did not answer in time" in answer.fallback
    llm_server.delay = 0.0


# ---------------------------------------------------------------- Ollama server, any chat model


def test_ollama_streamed_reply_with_reasoning_block(seeds_index, llm_server):
    llm_server.play("ollama_correct")
    rag = RAG.open(seeds_index, llm=LLMConfig.from_url(llm_server.url, model="qwen3:8b"))
    assert rag.llm == {"provider": "ollama", "model": "qwen3:8b", "url": llm_server.url}
    answer = rag.ask(QUESTION)
    assert answer.mode == "generative", answer.fallback
    assert answer.answer == "2,27%" and answer.citations[0].doc_id == HUE_DOC
    assert_quotes_document(rag, answer)
    [(path, body)] = llm_server.requests
    assert path == "/api/chat" and body["model"] == "qwen3:8b" and body["options"]["temperature"] == 0
    assert [m["role"] for m in body["messages"]] == ["system", "user"]


def test_ollama_error_falls_back(seeds_index, llm_server, extractive):
    llm_server.respond(404, "application/json", '{"error": "model \\"qwen3:8b\\" not found, try pulling it first"}')
    rag = RAG.open(seeds_index, llm=LLMConfig.from_url(llm_server.url, model="qwen3:8b"))
    answer = rag.ask(QUESTION)
    assert answer.mode == "extractive" and answer.answer == extractive.answer
    assert "not found" in answer.fallback


def test_any_langchain_chat_model(seeds_index):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    reply = json.loads((RECORDED / "openai_correct.json").read_text(encoding="utf-8"))["choices"][0]["message"]
    rag = RAG.open(seeds_index, llm=FakeListChatModel(responses=[reply["content"]]))
    assert rag.llm["provider"] == "FakeListChatModel"
    answer = rag.ask(QUESTION)
    assert answer.mode == "generative" and answer.answer == "2,27%"


def test_no_llm_by_default_and_env_config(seeds_index, monkeypatch, llm_server):
    assert RAG.open(seeds_index).llm is None
    monkeypatch.setenv("RAG_LLM_URL", f"{llm_server.url}/v1")
    monkeypatch.setenv("RAG_LLM_MODEL", "m")
    assert RAG.open(seeds_index).llm == {"provider": "openai", "model": "m", "url": f"{llm_server.url}/v1"}
    assert RAG.open(seeds_index, llm=False).llm is None


# ---------------------------------------------------------------- configuration and parsing


def test_config_guesses_and_checks():
    assert guess_provider("http://localhost:11434") == "ollama"
    assert guess_provider("http://gpu-box:8000/v1") == "openai"
    assert guess_provider("https://api.example.com/v1/") == "openai"
    assert guess_provider("http://gpu-box:8080") == "ollama"
    config = LLMConfig.from_url("http://localhost:11434/api/", api_key="secret")
    assert (config.url, config.provider, config.model) == ("http://localhost:11434", "ollama", "qwen2.5:7b-instruct")
    assert "secret" not in repr(config) and "secret" not in json.dumps(config.describe())
    assert LLMConfig.from_url("http://h:11434", provider="openai").provider == "openai"
    assert LLMConfig.from_env({}) is None
    for bad in ("localhost:11434", "ftp://host/v1", "http:///v1"):
        with pytest.raises(UsageError, match="LLM URL"):
            LLMConfig.from_url(bad)
    with pytest.raises(UsageError, match="provider"):
        LLMConfig.from_url("http://h/v1", provider="anthropic")
    with pytest.raises(UsageError, match="llm must be"):
        from rag.generate import resolve_llm

        resolve_llm("http://localhost:11434")


def test_parse_reply_is_tolerant():
    assert parse_reply("Trả lời ngắn: 2,27% [1]\nTrả lời: Là 2,27% [1].") == parse_reply(
        "**Tra loi ngan:** 2,27%\n\n**Tra loi:** Là 2,27% [1].")
    assert parse_reply("```\nShort answer: 17.034 người\nAnswer: 17.034 người [2].\n```").short == "17.034 người"
    multi = parse_reply("Trả lời ngắn: 2,27%\nTrả lời: Tỷ lệ là 2,27% [1].\nGiảm 1,29% [1].")
    assert multi.text == "Tỷ lệ là 2,27% [1]. Giảm 1,29% [1]."
    assert parse_reply(f"{NOT_FOUND}.").not_found
    assert parse_reply("Trả lời ngắn: Không tìm thấy\nTrả lời: Các đoạn văn không nói.").not_found
    assert parse_reply("Tỷ lệ là 2,27% [1].") == parse_reply("Tỷ lệ là 2,27% [1].")
    assert parse_reply("Tỷ lệ là 2,27% [1].").text == "Tỷ lệ là 2,27% [1]."
    assert parse_reply("").text is None


def test_figures_citations_and_renumbering():
    assert figures("17.034 người, 2,27%, 13,5 tỷ") == figures("17034 người; 2.27%; 13.5 tỷ") == {"17034", "227", "135"}
    assert cited_numbers("a [2], b [1, 2]; c [3][2].") == [2, 1, 3]
    assert renumber("a [3], b [1; 3].", [3, 1]) == "a [1], b [2][1]."


# ---------------------------------------------------------------- the command line


def test_cli_ask_json_with_llm_prints_the_contract(seeds_index, llm_server):
    llm_server.play("openai_correct")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "rag", "ask", "--json", "--llm", f"{llm_server.url}/v1", "--llm-model", "qwen2.5",
         "--index-dir", str(seeds_index), QUESTION],
        capture_output=True, text=True, encoding="utf-8", cwd=ROOT, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    [line] = proc.stdout.strip().splitlines()
    result = json.loads(line)
    assert list(result) == ANSWER_KEYS + ["store"]  # (rag ask --json adds where the index lives, last)
    assert (result["mode"], result["answer"], result["citations"][0]["doc_id"]) == ("generative", "2,27%", HUE_DOC)
    assert set(result["timings_ms"]) == {"retrieve", "answer"}


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_cli_env_config_and_bad_usage(seeds_index, llm_server, monkeypatch):
    llm_server.play("openai_not_found")
    monkeypatch.setenv("RAG_LLM_URL", f"{llm_server.url}/v1")
    code, out, _ = _cli("ask", "--json", "--index-dir", str(seeds_index), QUESTION)
    assert code == 0 and json.loads(out)["mode"] == "generative" and json.loads(out)["abstained"]
    code, out, _ = _cli("ask", "--json", "--no-llm", "--index-dir", str(seeds_index), QUESTION)
    assert code == 0 and json.loads(out)["mode"] == "extractive"
    monkeypatch.delenv("RAG_LLM_URL")
    code, _, err = _cli("ask", "--llm-model", "m", "--index-dir", str(seeds_index), QUESTION)
    assert code == 2 and "--llm" in err
    code, _, err = _cli("ask", "--llm", "localhost:11434", "--index-dir", str(seeds_index), QUESTION)
    assert code == 2 and err.startswith("Error: The LLM URL")


# ---------------------------------------------------------------- the HTTP API and the chat notice


def test_api_health_and_ask_with_llm(openai_rag, llm_server):
    import httpx

    from rag.chat import mode_notice_html
    from rag.server import BackgroundServer, create_app

    llm_server.play("openai_correct")
    with BackgroundServer(create_app(rag=openai_rag, token="", ui=False)) as url, httpx.Client(base_url=url) as c:
        health = c.get("/api/health").json()
        assert health["llm"] == {"provider": "openai", "model": "qwen2.5-7b-instruct", "url": f"{llm_server.url}/v1"}
        body = c.post("/api/ask", json={"question": QUESTION}).json()
    assert list(body) == ANSWER_KEYS and body["mode"] == "generative"
    assert "qwen2.5-7b-instruct" in mode_notice_html(health)
    assert "mô hình ngôn ngữ" not in mode_notice_html({**health, "llm": None})
