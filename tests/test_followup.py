"""Follow-up questions (rag/followup.py): the question actually asked, and the answers it gets on the seeds.

Two tables: how a follow-up is completed from the earlier turns (what it inherits, and questions that
must inherit nothing), and whole conversations answered over the seed reports (lexical index, no model).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag import followup
from rag.api import RAG, check_history
from rag.errors import UsageError
from rag.followup import Turn, resolve

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
HUE, NGHE_AN, HOA_BINH, AN_GIANG = (
    "004_1400c37e89a2c6fc", "003_9347b5653608e64b", "000_524045bc19e57ccc", "002_e28979bfba23dcdb",
)
HUE_Q = "Tỷ lệ hộ nghèo Huế 2023?"
AG_Q = "Số hộ nghèo An Giang cuối năm 2022 là bao nhiêu?"

# (earlier questions, follow-up, the question asked, what it inherited)
RESOLVED = [
    # only a year: the earlier question with the year put in (and the place by its gazetteer name)
    ([HUE_Q], "Còn năm 2022 thì sao?", "Tỷ lệ hộ nghèo Thừa Thiên Huế năm 2022?", {"measure", "place"}),
    ([HUE_Q], "con nam 2022 thi sao?", "Tỷ lệ hộ nghèo Thừa Thiên Huế năm 2022?", {"measure", "place"}),
    ([HUE_Q], "Năm 2022?", "Tỷ lệ hộ nghèo Thừa Thiên Huế năm 2022?", {"measure", "place"}),
    ([AG_Q], "Còn năm 2021?", "Số hộ nghèo An Giang cuối năm 2021 là bao nhiêu?", {"measure", "place"}),
    # only a place
    ([HUE_Q], "Còn Nghệ An thì sao?", "Tỷ lệ hộ nghèo Nghệ An 2023?", {"measure", "year"}),
    ([HUE_Q], "Vậy ở Hòa Bình?", "Tỷ lệ hộ nghèo Hòa Bình 2023?", {"measure", "year"}),
    (["XKLĐ Nghệ An 2023"], "Còn TT-Huế?", "XKLĐ Thừa Thiên Huế 2023?", {"measure", "year"}),
    # a place and a year
    ([HUE_Q], "Còn Hòa Bình năm 2022 thì sao?", "Tỷ lệ hộ nghèo Hòa Bình năm 2022?", {"measure"}),
    # no subject: the earlier subject, with its place and time, before the predicate
    ([AG_Q], "Chiếm tỷ lệ bao nhiêu?", "Số hộ nghèo An Giang cuối năm 2022 chiếm tỷ lệ bao nhiêu?", {"subject"}),
    ([AG_Q], "Giảm bao nhiêu so với năm 2021?",
     "Số hộ nghèo An Giang cuối năm 2022 giảm bao nhiêu so với năm 2021?", {"subject"}),
    (["Năm 2023 Nghệ An giải quyết việc làm cho bao nhiêu người?"], "Đạt bao nhiêu phần trăm kế hoạch?",
     "Năm 2023 Nghệ An giải quyết việc làm đạt bao nhiêu phần trăm kế hoạch?", {"subject"}),
    # a new measure marked as a follow-up: the earlier place and year
    ([HUE_Q], "Còn số người được giải quyết việc làm?",
     "Số người được giải quyết việc làm Thừa Thiên Huế năm 2023?", {"place", "year"}),
    ([HUE_Q], "Còn tỷ lệ lao động qua đào tạo thì sao?",
     "Tỷ lệ lao động qua đào tạo Thừa Thiên Huế năm 2023?", {"place", "year"}),
    ([AG_Q], "Còn hộ cận nghèo?", "Hộ cận nghèo An Giang năm 2022?", {"place", "year"}),
    # words that point back: "tỉnh đó", "năm đó"
    ([HUE_Q], "Phó Chủ tịch UBND tỉnh đó là ai?",
     "Phó Chủ tịch UBND tỉnh Thừa Thiên Huế năm 2023 là ai?", {"place", "year"}),
    ([HUE_Q], "pho chu tich ubnd tinh do la ai?", "Pho chu tich ubnd tinh Thừa Thiên Huế năm 2023 la ai?",
     {"place", "year"}),
    ([HUE_Q], "Năm đó giải quyết việc làm cho bao nhiêu người?",
     "Thừa Thiên Huế năm 2023 giải quyết việc làm cho bao nhiêu người?", {"place", "year"}),
    ([HUE_Q], "Còn tạo được việc làm cho bao nhiêu người?",
     "Thừa Thiên Huế năm 2023 tạo được việc làm cho bao nhiêu người?", {"place", "year"}),
    # "đặt mục tiêu" is no predicate "đạt" (they fold alike): a new measure, not the earlier subject's
    (["Chỉ tiêu xuất khẩu lao động năm 2024 của Hòa Bình là bao nhiêu người?"],
     "Còn đặt mục tiêu giải quyết việc làm trong nước cho bao nhiêu lao động?",
     "Hòa Bình năm 2024 đặt mục tiêu giải quyết việc làm trong nước cho bao nhiêu lao động?", {"place", "year"}),
    # a chain: the third turn builds on the second, itself a follow-up
    ([HUE_Q, "Còn năm 2022 thì sao?"], "Còn Nghệ An?", "Tỷ lệ hộ nghèo Nghệ An năm 2022?", {"measure", "year"}),
    ([HUE_Q, "Còn số người được giải quyết việc làm?"], "Còn năm 2024?",
     "Số người được giải quyết việc làm Thừa Thiên Huế năm 2024?", {"measure", "place"}),
    # English
    ([HUE_Q], "What about 2022?", "Tỷ lệ hộ nghèo Thừa Thiên Huế năm 2022?", {"measure", "place"}),
    # must NOT inherit: a new full question, a question of its own without a follow-up mark, no history
    ([HUE_Q], "Ai là Giám đốc Sở Lao động Nghệ An?", "Ai là Giám đốc Sở Lao động Nghệ An?", set()),
    ([HUE_Q], "Vụ nổ lò hơi xảy ra ở đâu?", "Vụ nổ lò hơi xảy ra ở đâu?", set()),
    ([HUE_Q], "XKLĐ Nghệ An 2023", "XKLĐ Nghệ An 2023", set()),
    ([AG_Q], "Tỷ lệ hộ nghèo Hòa Bình năm 2023 còn bao nhiêu phần trăm?",
     "Tỷ lệ hộ nghèo Hòa Bình năm 2023 còn bao nhiêu phần trăm?", set()),
    ([HUE_Q], "Còn ở Nghệ An năm 2023 thì tỷ lệ hộ nghèo là bao nhiêu?",
     "Còn ở Nghệ An năm 2023 thì tỷ lệ hộ nghèo là bao nhiêu?", set()),
    ([HUE_Q], "Hội nghị do ai chủ trì?", "Hội nghị do ai chủ trì?", set()),  # "do" (by) is no "đó" (that)
    ([], "Còn năm 2022 thì sao?", "Còn năm 2022 thì sao?", set()),
    ([HUE_Q], "Thì sao?", "Thì sao?", set()),  # nothing to complete with: asked as typed
]


@pytest.mark.parametrize(("earlier", "question", "asked", "inherited"), RESOLVED,
                         ids=[f"{n:02d}" for n in range(len(RESOLVED))])
def test_resolution(earlier, question, asked, inherited):
    got = resolve(question, [Turn(q) for q in earlier])
    assert (got.asked, set(got.inherited)) == (asked, inherited)
    assert got.changed == (asked != got.question)


def test_resolution_table_is_big_and_varied():
    assert len(RESOLVED) >= 20
    assert sum(1 for *_, inherited in RESOLVED if not inherited) >= 5  # questions that must inherit nothing


def test_document_of_the_earlier_answer_gives_place_and_year():
    """An earlier question that named no place passes on the place of the document it was answered from."""
    where = {HOA_BINH: ("Hòa Bình", 2023)}
    got = resolve("Còn tỷ lệ lao động qua đào tạo trong tài liệu này?",
                  [Turn("Ai trao bằng khen của Thủ tướng Chính phủ?", "Nguyễn Văn Toàn", HOA_BINH)],
                  document=lambda doc_id: where.get(doc_id, (None, None)))
    assert "Hòa Bình" in got.asked and "2023" in got.asked and "document" in got.inherited


def test_dicts_and_empty_turns():
    got = resolve("Còn năm 2022 thì sao?", [{"question": "   "}, {"question": HUE_Q, "answer": "2,27%"}])
    assert got.asked == "Tỷ lệ hộ nghèo Thừa Thiên Huế năm 2022?"
    with pytest.raises(ValueError):
        resolve("Còn năm 2022?", [{"question": 5}])


# -- whole conversations over the seeds, no model

# (earlier questions, follow-up, the answer, the cited document)
CONVERSATIONS = [
    ([AG_Q], "Chiếm tỷ lệ bao nhiêu?", "2,81%", AN_GIANG),
    ([HUE_Q], "Còn năm 2022 thì sao?", "giảm 1,29% so với năm 2022", HUE),
    ([HUE_Q], "Còn số người được giải quyết việc làm?", "17.034", HUE),
    ([HUE_Q], "Còn tỷ lệ lao động qua đào tạo thì sao?", "70,25%", HUE),
    ([HUE_Q], "Còn Hòa Bình thì sao?", "9,2%", HOA_BINH),
    (["Năm 2023 Hòa Bình giải quyết việc làm cho bao nhiêu lao động?"], "Còn tỷ lệ hộ nghèo?", "9,2%", HOA_BINH),
    (["XKLĐ Nghệ An 2023"], "Còn số người được giải quyết việc làm thì sao?", "45 ngàn người", NGHE_AN),
    (["Năm 2023 Nghệ An giải quyết việc làm cho bao nhiêu người?"], "Đạt bao nhiêu phần trăm kế hoạch?", "104,65%",
     NGHE_AN),
    ([HUE_Q], "Còn XKLĐ thì sao?", "2.325", HUE),
    (["ty le ho ngheo hoa binh 2023"], "con ty le lao dong qua dao tao?", "61%", HOA_BINH),
    ([HUE_Q, "Còn Hòa Bình thì sao?"], "Giảm bao nhiêu?", "3,09%", HOA_BINH),
]


@pytest.fixture(scope="module")
def lexical(tmp_path_factory) -> RAG:
    built, _ = RAG.build([SEEDS], tmp_path_factory.mktemp("followup-index"), model="none")
    return built


def _converse(rag: RAG, earlier: list[str], question: str):
    history = []
    for q in earlier:
        a = rag.ask(q, history=history)
        history.append({"question": q, "answer": a.answer or "", "doc_id": a.citations[0].doc_id if a.citations else None})
    return rag.ask(question, history=history)


@pytest.mark.parametrize(("earlier", "question", "answer", "doc"), CONVERSATIONS,
                         ids=[f"{n:02d}" for n in range(len(CONVERSATIONS))])
def test_conversation(lexical, earlier, question, answer, doc):
    got = _converse(lexical, earlier, question)
    assert not got.abstained, got.answer_text
    assert answer in got.answer and got.citations[0].doc_id == doc, (got.asked, got.answer)
    assert got.question == question and got.asked != question
    data = got.to_json()
    assert list(data)[-1] == "asked" and data["asked"] == got.asked


def test_without_history_asked_is_the_question(lexical):
    got = lexical.ask(HUE_Q)
    assert got.to_json()["asked"] == HUE_Q and got.answer == "2,27%"


def test_a_new_question_does_not_inherit(lexical):
    got = _converse(lexical, [HUE_Q], "Năm 2023 tỷ lệ hộ nghèo của Hòa Bình giảm được bao nhiêu?")
    assert got.asked == got.question and "3,09%" in got.answer


def test_year_only_named_as_comparison_is_not_answered_with_the_other_year(lexical):
    """2,27% is 2023's rate; for 2022 the report gives only the change since then."""
    got = lexical.ask("Tỷ lệ hộ nghèo Thừa Thiên Huế năm 2022?")
    assert got.answer != "2,27%"
    assert got.answer == "giảm 1,29% so với năm 2022"


@pytest.mark.parametrize(("history", "message"), [
    ("Tỷ lệ hộ nghèo Huế 2023?", "must be a list"),
    ({"question": "x"}, "must be a list"),
    ([1], "history[0] must be an object"),
    ([{"answer": "2,27%"}], "history[0] has no \"question\""),
    ([{"question": 5}], "history[0].question must be a string"),
    ([{"question": "x", "answer": ["2,27%"]}], "history[0].answer must be a string"),
    ([{"question": "x", "extra": 1}], "unknown field 'extra'"),
    ([{"question": "x" * (followup.MAX_FIELD_CHARS + 1)}], "too long"),
    ([{"question": "x"}] * (followup.MAX_TURNS + 1), f"at most {followup.MAX_TURNS}"),
    ([{"question": "\ud800"}], "lone surrogate"),
])
def test_bad_history_is_a_usage_error(history, message):
    with pytest.raises(UsageError, match="history") as err:
        check_history(history)
    assert message in str(err.value)


def test_http_history(lexical, tmp_path):
    from fastapi.testclient import TestClient

    from rag.server import create_app

    client = TestClient(create_app(rag=lexical, uploads_dir=tmp_path / "uploads", ui=False, token=""))
    ok = client.post("/api/ask", json={"question": "Chiếm tỷ lệ bao nhiêu?",
                                       "history": [{"question": AG_Q, "answer": "14.872 hộ"}]})
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["answer"] == "2,81%" and list(body)[-1] == "asked"
    assert body["asked"] == "Số hộ nghèo An Giang cuối năm 2022 chiếm tỷ lệ bao nhiêu?"
    assert client.post("/api/ask", json={"question": HUE_Q}).json()["asked"] == HUE_Q
    for bad in ("x", [{"question": 1}], [{"q": "x"}], [{"question": "x"}] * 21):
        r = client.post("/api/ask", json={"question": "Còn năm 2022?", "history": bad})
        assert r.status_code == 400 and "history" in r.json()["error"], r.text


def test_abstention_names_the_active_filter(lexical):
    got = lexical.ask("Tỷ lệ hộ nghèo năm 2023?", province="Nghệ An")
    assert got.abstained
    assert "bộ lọc" in got.answer_text and "tỉnh Nghệ An" in got.answer_text
    assert json.dumps(got.to_json(), ensure_ascii=False)  # (serialisable)


def test_cli_history(lexical, tmp_path, capsys):
    from rag.cli import main

    history = tmp_path / "history.json"
    history.write_text(json.dumps([{"question": HUE_Q, "answer": "2,27%"}], ensure_ascii=False), encoding="utf-8")
    assert main(["ask", "--index-dir", str(lexical.index_dir), "--history", str(history), "Còn năm 2022 thì sao?"]) == 0
    out = capsys.readouterr().out
    assert "Câu hỏi đã hiểu: Tỷ lệ hộ nghèo Thừa Thiên Huế năm 2022?" in out and "1,29%" in out
    assert main(["ask", "--index-dir", str(lexical.index_dir), "--json", "--history", str(history),
                 "Còn số người được giải quyết việc làm?"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "17.034" in data["answer"] and list(data)[-2:] == ["asked", "store"]
    history.write_text('[{"question": 1}]', encoding="utf-8")
    assert main(["ask", "--index-dir", str(lexical.index_dir), "--history", str(history), "Còn năm 2022?"]) == 2
    assert "history[0].question must be a string" in capsys.readouterr().err


# -- the chat: earlier turns from its messages, the question understood, citations (issue 16, items 1 and 7)

def test_chat_passes_earlier_turns_and_shows_the_question_understood(lexical, tmp_path):
    from rag.chat import answer_stream, conversation_turns
    from rag.server import Library

    library = Library(lexical, uploads_dir=tmp_path / "uploads")
    messages: list = []
    for question in (HUE_Q, "Còn số người được giải quyết việc làm?"):
        for messages, _ in answer_stream(library, question, messages):
            pass
    last = messages[-1]["content"]
    assert "Câu hỏi đã hiểu: <em>Số người được giải quyết việc làm Thừa Thiên Huế năm 2023?</em>" in last
    assert "17.034" in last
    assert "Câu hỏi đã hiểu" not in messages[1]["content"]  # the first question was answered as typed
    turns = conversation_turns(messages)
    assert turns == [
        {"question": HUE_Q, "answer": "2,27%", "doc_id": HUE},
        {"question": "Số người được giải quyết việc làm Thừa Thiên Huế năm 2023?", "answer": "17.034 người",
         "doc_id": HUE},
    ]
    # Gradio may hand messages back with their content as parts; an error reply is no context
    parts = [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]} for m in messages]
    assert conversation_turns(parts) == turns
    failed = messages + [{"role": "user", "content": "x"},
                         {"role": "assistant", "content": '<div class="rag-answer rag-error">⚠️ lỗi</div>'}]
    assert conversation_turns(failed) == turns


def test_quoted_sentence_starts_at_its_sentence_not_after_a_semicolon(lexical):
    got = lexical.ask("XKLĐ Nghệ An 2023")
    quote = got.citations[0].text
    assert quote.startswith("Trong năm toàn tỉnh giải quyết việc làm") and "24 ngàn người" in quote
    doc = lexical.documents[got.citations[0].doc_id]
    assert doc.text[got.citations[0].start:got.citations[0].end] == quote
    assert got.answer_text.startswith("Trong năm toàn tỉnh")


def test_source_line_and_new_tab_view(lexical, tmp_path):
    from fastapi.testclient import TestClient

    from rag.chat import answer_html
    from rag.server import create_app

    got = lexical.ask(HUE_Q)
    html = answer_html(got, lexical.documents, lexical.mode)
    meta = html.split('class="rag-source-meta"', 1)[1].split("</div>", 1)[0]
    import re

    visible = re.sub(r"<[^>]+>", "", meta.split(">", 1)[1])
    assert visible.startswith(f"{HUE}.txt · ký tự") and visible.count(HUE) == 1  # not "id · id.txt"
    link = meta.split('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert "answer=2%2C27%25" in link and link.endswith("#cite")
    client = TestClient(create_app(rag=lexical, uploads_dir=tmp_path / "uploads", ui=False, token=""))
    page = client.get(link.split("#")[0]).text
    assert '<mark class="rag-span">2,27%</mark>' in page  # the answer marked inside the cited sentence
    assert "position:sticky" in page and "scroll-margin-top" in page  # the heading stays above the citation
    assert client.get(f"/api/documents/{HUE}/text", params={"answer": "x" * 201}).status_code == 400


def test_follow_up_with_an_llm(lexical, monkeypatch):
    """The LLM is given the completed question, and its checked answer says which question it answered."""
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from rag import generate

    recorded = Path(__file__).parent / "fixtures" / "llm" / "openai_correct.json"
    reply = json.loads(recorded.read_text(encoding="utf-8"))["choices"][0]["message"]["content"]
    asked: list[str] = []
    real = generate.prompt_messages
    monkeypatch.setattr(generate, "prompt_messages", lambda q, hits: asked.append(q) or real(q, hits))
    llm_rag = RAG.open(lexical.index_dir, llm=FakeListChatModel(responses=[reply]))
    got = llm_rag.ask("Còn Huế năm 2023 thì sao?", history=[{"question": "Tỷ lệ hộ nghèo Hòa Bình năm 2022?"}])
    assert asked == ["Tỷ lệ hộ nghèo Thừa Thiên Huế năm 2023?"]
    assert got.mode == "generative" and got.answer == "2,27%" and got.asked == asked[0]
    assert got.to_json()["asked"] == asked[0] and got.question == "Còn Huế năm 2023 thì sao?"
