"""The chat's parts without a browser: Vietnamese errors by code, conversations and their exports,
the documents table, upload progress, and the API's background uploads (?async=1, /api/jobs/{id})."""

from __future__ import annotations

import json
import stat
import time

import pytest
from fastapi.testclient import TestClient

from rag import conversations as convs
from rag import progress
from rag.api import RAG
from rag.chat import answer_from_json, answer_html, conversation_messages, documents_page, job_status_html
from rag.errors import RagError, TooLarge, UsageError
from rag.jobs import Jobs
from rag.messages_vi import message
from rag.screenshots import not_vietnamese
from rag.server import Library, clean_text, create_app, safe_file_name

CANONICAL = "Tỷ lệ hộ nghèo Huế 2023?"
BEE = "Báo cáo nuôi ong.\n" + "\n".join(
    f"Đoạn {i}: huyện Cam Lộ có {40 + i} tổ hợp tác trồng rừng và {i} mô hình dược liệu." for i in range(40)
) + "\nSố hộ nuôi ong ở Quảng Trị năm 2023 là 321 hộ.\n"


@pytest.fixture
def rag(seeds_copy, tmp_path):
    built, _ = RAG.build([seeds_copy], tmp_path / "index", model="hashing", llm=False)
    return built


# ---------------------------------------------------------------- Vietnamese errors, by code


@pytest.mark.parametrize("call, expected", [
    (lambda: clean_text("   "), "Câu hỏi đang trống."),
    (lambda: clean_text("x" * 2500), "Câu hỏi quá dài (2.500 ký tự; tối đa 2.000)."),
    (lambda: clean_text("a\x01b", "query"), "Câu tìm kiếm chứa ký tự điều khiển."),
    (lambda: safe_file_name("../a.txt"), "Tên tệp phải là một tên đơn giản, không phải đường dẫn."),
    (lambda: safe_file_name("a.exe"), "a.exe: loại tệp không được hỗ trợ"),
])
def test_errors_are_worded_in_vietnamese_from_their_code(call, expected):
    with pytest.raises(UsageError) as caught:
        call()
    assert caught.value.code and message(caught.value).startswith(expected)


def test_an_unreadable_pdf_is_worded_without_the_parsers_english(tmp_path):
    from rag.ingest import load_document

    with pytest.raises(UsageError) as caught:
        load_document(tmp_path / "hong.pdf", b"%PDF-1.4 not a pdf")
    assert "PDF" in str(caught.value)  # the English sentence stays for the CLI and the API
    worded = message(caught.value)
    assert worded.startswith("Không đọc được hong.pdf dưới dạng tệp PDF") and not not_vietnamese(worded)


def test_errors_without_a_code_get_their_class_sentence():
    assert message(TooLarge("x")).startswith("Tệp hoặc dữ liệu quá lớn")
    assert message(RagError("Something English")) == "Có lỗi khi xử lý yêu cầu; vui lòng thử lại."
    assert message(UsageError("bad", code="no_such_code")) == "Dữ liệu nhập không hợp lệ."


def test_the_english_check_catches_english_and_lets_vietnamese_pass():
    for shown in ("Drop File Here", "- or -", "processing | 1.2s", "bot's message: Trả lời", "Copy message",
                  "trả lời: extractive", "Empty value"):
        assert not_vietnamese(shown), shown
    for shown in ("Thả tệp vào đây", "An Giang", "Trang sau ›", "004_1400c37e89a2c6fc", "API HTTP (/docs)",
                  "đang nhúng 32/64 đoạn", "Xong"):
        assert not not_vietnamese(shown), shown


# ---------------------------------------------------------------- conversations


def test_a_conversation_renders_again_and_exports_with_its_citations(rag):
    library = Library(rag)
    answer = library.ask(CANONICAL)
    conversation = convs.add_turn(convs.new(), CANONICAL, answer.to_json(), rag.mode)
    assert conversation["title"] == CANONICAL and convs.history(conversation) == [
        {"question": CANONICAL, "answer": answer.answer_text, "doc_id": answer.citations[0].doc_id}]
    again = answer_from_json(json.loads(json.dumps(answer.to_json())))
    assert answer_html(again, rag.documents, rag.mode) == answer_html(answer, rag.documents, rag.mode)
    messages = conversation_messages(conversation, rag.documents)
    assert [m["role"] for m in messages] == ["user", "assistant"] and "2,27%" in messages[1]["content"]
    markdown = convs.to_markdown(conversation)
    cited = answer.citations[0]
    assert f"## 1. {CANONICAL}" in markdown and "**Trả lời:** 2,27%" in markdown
    assert f"[1] {cited.doc_id}" in markdown and f"{cited.start}–{cited.end}" in markdown
    exported = json.loads(convs.to_json(conversation))
    assert exported["turns"][0]["answer"]["citations"][0]["doc_id"] == cited.doc_id


def test_titles_are_cut_at_a_word_boundary():
    title = convs.short_title("Hội nghị tổng kết công tác lao động, người có công và xã hội năm 2019", 40)
    assert title.endswith("…") and len(title) <= 40
    assert "Hội nghị tổng kết công tác lao động, người có công và xã hội năm 2019".startswith(title[:-1])
    assert title[:-1].split()[-1] in "Hội nghị tổng kết công tác lao động người có".split()


def test_the_server_store_keeps_each_users_conversations_private_and_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(convs, "MAX_CONVERSATIONS", 3)
    store = convs.ServerStore(tmp_path)
    for i in range(5):
        c = convs.add_turn(convs.new(), f"câu {i}", {"answer_text": "x", "citations": []}, "lexical")
        c["updated"] = f"2026-01-0{i + 1}T00:00:00"
        store.save("an", c)
    kept = store.list("an")
    assert [c["title"] for c in kept] == ["câu 4", "câu 3", "câu 2"]  # the newest, at most 3
    assert store.list("bình") == []  # another user sees none of them
    folder = next((tmp_path / convs.FOLDER).iterdir())
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())
    store.delete("an", kept[0]["id"])
    store.delete("an", "../../etc/passwd")  # not an id: nothing happens
    assert [c["title"] for c in store.list("an")] == ["câu 3", "câu 2"]
    assert not convs.valid({"id": "../x", "turns": []}) and convs.bounded([{"id": 1}, "x"]) == []


# ---------------------------------------------------------------- documents panel


def test_the_documents_table_shows_every_document_by_pages_and_search(rag):
    rows = Library(rag).document_rows()
    assert len(rows) == len(rag.documents) and all(r["chunks"] > 0 and r["added"] for r in rows)
    many = [{**rows[0], "doc_id": f"doc_{i:02}", "title": f"Báo cáo số {i}", "added": f"2026-01-{i + 1:02}T00:00"}
            for i in range(20)]
    first, page = documents_page(many, "", 0)
    assert page == 0 and "Trang 1/3 · 20 tài liệu" in first and "doc_19" in first  # newest first
    last, page = documents_page(many, "", 99)
    assert page == 2 and "Trang 3/3" in last and "doc_00" in last
    found, _ = documents_page(many, "bao cao so 7", 0)  # without marks: found all the same
    assert "doc_07" in found and "doc_08" not in found and "1 tài liệu khớp" in found
    assert "Không có tài liệu nào khớp" in documents_page(many, "không có", 0)[0]
    assert "&lt;b&gt;" in documents_page([{**rows[0], "title": "<b>x</b>"}], "", 0)[0]


# ---------------------------------------------------------------- progress


def test_indexing_reports_its_stages_and_embedding_counts(rag, monkeypatch):
    monkeypatch.setattr(progress, "EMBED_BATCH", 1)
    library = Library(rag)
    seen: list[tuple[str, int, int]] = []
    with progress.listening(lambda stage, done, total: seen.append((stage, done, total))):
        library.add_upload("ong.txt", BEE.encode())
    stages = [s for s, _, _ in seen]
    assert stages[:3] == ["reading", "waiting", "chunking"] and stages[-1] == "saving"
    embedding = [(d, t) for s, d, t in seen if s == "embedding"]
    total = embedding[0][1]
    assert total > 1 and embedding == [(n, total) for n in range(total + 1)]  # 0/N, 1/N … N/N
    assert library.ask("Số hộ nuôi ong ở Quảng Trị năm 2023?").answer == "321 hộ"


def test_a_job_keeps_its_progress_its_result_or_its_error():
    jobs = Jobs(limit=2)

    def work():
        progress.report("embedding", 3, 7)
        time.sleep(0.3)
        return {"ok": 1}

    job = jobs.start("a.txt", work)
    time.sleep(0.1)
    assert (job.state, job.stage, job.done, job.total) == ("running", "embedding", 3, 7)
    assert "đang nhúng 3/7 đoạn" in job_status_html(job)
    _wait(job)
    assert job.to_json()["result"] == {"ok": 1} and job.stage == "ready"

    def fail():
        raise UsageError("x.pdf could not be read as a PDF (boom).", code="file_unreadable", name="x.pdf", kind="PDF")

    bad = _wait(jobs.start("x.pdf", fail))
    assert bad.state == "error" and "Không đọc được x.pdf" in job_status_html(bad)
    _wait(jobs.start("c.txt", lambda: 1))
    assert jobs.get(job.id) is None and jobs.get(bad.id) is not None  # the oldest finished one goes


def _wait(job, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while job.state in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.02)
    return job


# ---------------------------------------------------------------- the API's background uploads


def test_an_async_upload_returns_a_job_to_poll(rag):
    client = TestClient(create_app(rag=rag, token="", ui=False))
    r = client.post("/api/documents?async=1", files={"file": ("ong.txt", BEE.encode(), "text/plain")})
    assert r.status_code == 202 and r.headers["location"] == r.json()["url"] == f"/api/jobs/{r.json()['job']}"
    deadline, body = time.monotonic() + 60, {}
    while time.monotonic() < deadline:
        body = client.get(r.json()["url"]).json()
        assert body["state"] in ("queued", "running", "done"), body
        if body["state"] == "done":
            break
        time.sleep(0.05)
    assert body["stage"] == "ready" and body["result"]["doc_id"] == "ong" and body["result"]["status"] == "added"
    assert body["result"]["chunks"] > 0 and client.get("/api/documents/ong").status_code == 200
    # without ?async: as before, 201 and the document at once
    r = client.post("/api/documents", files={"file": ("ong2.txt", BEE.encode(), "text/plain")})
    assert r.status_code == 201 and r.json()["doc_id"] == "ong2"


def test_async_upload_errors(rag):
    client = TestClient(create_app(rag=rag, token="", ui=False))
    r = client.post("/api/documents?async=1", files={"file": ("../x.txt", b"abc", "text/plain")})
    assert r.status_code == 400 and "plain name" in r.json()["error"]  # a bad name: refused at once
    r = client.post("/api/documents?async=1", files={"file": ("hong.pdf", b"%PDF-1.4 broken", "application/pdf")})
    assert r.status_code == 202
    job = client.get(r.json()["url"]).json()
    deadline = time.monotonic() + 30
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.05)
        job = client.get(r.json()["url"]).json()
    assert job["state"] == "error" and job["error"]["status"] == 400 and job["error"]["code"] == "file_unreadable"
    assert client.get("/api/jobs/nope").status_code == 404
    assert "error" in client.get("/api/jobs/nope").json()


def test_what_a_browser_keeps_is_bounded_in_bytes(monkeypatch):
    monkeypatch.setattr(convs, "MAX_BROWSER_BYTES", 5_000)
    big = {"answer_text": "x" * 1_000, "citations": []}
    many = []
    for i in range(6):
        c = convs.new()
        for j in range(3):
            c = convs.add_turn(c, f"câu {i}.{j}", big, "lexical")
        c["updated"] = f"2026-01-0{i + 1}"
        many.append(c)
    kept = convs.bounded(many)
    assert 0 < len(kept) < 6 and kept[0]["updated"] == "2026-01-06"
    assert sum(len(json.dumps(c, ensure_ascii=False).encode()) for c in kept) <= 5_000
    huge = convs.new()
    for j in range(10):
        huge = convs.add_turn(huge, f"câu {j}", big, "lexical")
    (alone,) = convs.bounded([huge])
    assert 0 < len(alone["turns"]) < 10 and alone["turns"][-1]["question"] == "câu 9"  # the newest turns stay


def test_the_browser_key_is_kept_in_the_index_folder(tmp_path):
    from rag.chat import browser_secret

    first = browser_secret(tmp_path)
    assert first and browser_secret(tmp_path) == first  # the same after a restart
    assert stat.S_IMODE((tmp_path / ".chat-secret").stat().st_mode) == 0o600
