"""Conversations of the chat: their data, Markdown and JSON exports, and the server-side store.

A conversation is a plain dict (it travels to the browser's storage as JSON):

    {"id": "…", "title": "first question", "created": ISO, "updated": ISO,
     "turns": [{"question": "…", "answer": <the `rag ask --json` object>, "retrieval_mode": "dense"}, …]}

Without a token the chat keeps them in the browser (gr.BrowserState); with one, per user on the
server, under the index folder (`.conversations/<sha256 of the user>/<id>.json`, folders 0700, files
0600), at most MAX_CONVERSATIONS per user and MAX_TURNS per conversation (the oldest go first).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
import uuid
from pathlib import Path

FOLDER = ".conversations"
MAX_CONVERSATIONS = 50
MAX_TURNS = 100
MAX_BYTES = 2 * 2**20  # of one stored conversation
MAX_BROWSER_BYTES = 2 * 2**20  # of all the conversations a browser keeps (localStorage holds ~5 MB)
TITLE_CHARS = 80
_ID = re.compile(r"[0-9a-f]{16}")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def new(title: str = "") -> dict:
    stamp = now()
    return {"id": uuid.uuid4().hex[:16], "title": title, "created": stamp, "updated": stamp, "turns": []}


def add_turn(conversation: dict, question: str, answer: dict, retrieval_mode: str) -> dict:
    """A copy of `conversation` with one more turn (the oldest dropped past MAX_TURNS)."""
    turns = [*conversation.get("turns", []), {"question": question, "answer": answer,
                                             "retrieval_mode": retrieval_mode}][-MAX_TURNS:]
    return {**conversation, "title": conversation.get("title") or short_title(question), "updated": now(),
            "turns": turns}


def short_title(text: str, limit: int = TITLE_CHARS) -> str:
    """`text` on one line, cut at a word boundary with "…" when longer than `limit`."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,.;:") + "…"


def history(conversation: dict | None) -> list[dict]:
    """The earlier turns as the API's `history`: [{"question", "answer", "doc_id"}], oldest first; the question is
    the one answered (a follow-up completed from the turns before it), the document the first one cited."""
    from .followup import MAX_FIELD_CHARS, MAX_TURNS

    out = []
    for t in (conversation or {}).get("turns", []):
        answer = t.get("answer") or {}
        turn = {"question": (answer.get("asked") or t["question"])[:MAX_FIELD_CHARS],
                "answer": (answer.get("answer_text") or "")[:MAX_FIELD_CHARS]}
        cited = [c.get("doc_id") for c in answer.get("citations") or [] if isinstance(c, dict) and isinstance(c.get("doc_id"), str)]
        if cited:
            turn["doc_id"] = cited[0]
        out.append(turn)
    return out[-MAX_TURNS:]  # (the API takes the latest turns only)


def valid(conversation) -> bool:
    """A conversation as this module writes it (what comes back from a browser is checked)."""
    if not isinstance(conversation, dict) or not isinstance(conversation.get("id"), str):
        return False
    if not _ID.fullmatch(conversation["id"]) or not isinstance(conversation.get("turns"), list):
        return False
    return all(isinstance(t, dict) and isinstance(t.get("question"), str) and isinstance(t.get("answer"), dict)
               for t in conversation["turns"])


def bounded(conversations: list[dict]) -> list[dict]:
    """The valid ones, newest first, at most MAX_CONVERSATIONS and MAX_BROWSER_BYTES of JSON (the
    oldest go first; a conversation alone over the bound loses its oldest turns)."""
    good = [c for c in conversations if valid(c)]
    good.sort(key=lambda c: str(c.get("updated", "")), reverse=True)
    kept, size = [], 0
    for c in good[:MAX_CONVERSATIONS]:
        while len(c["turns"]) > 1 and _size(c) > MAX_BROWSER_BYTES:
            c = {**c, "turns": c["turns"][1:]}
        if size + _size(c) > MAX_BROWSER_BYTES:
            break
        kept.append(c)
        size += _size(c)
    return kept


def _size(conversation: dict) -> int:
    return len(json.dumps(conversation, ensure_ascii=False).encode())


# ---------------------------------------------------------------- exports


def to_json(conversation: dict) -> str:
    return json.dumps({"format": "rag-vi-conversation", "version": 1, **conversation}, ensure_ascii=False, indent=2)


def to_markdown(conversation: dict) -> str:
    """The conversation as Markdown: each question, its answer, the quoted sources with their places."""
    lines = [f"# {conversation.get('title') or 'Hội thoại'}", "",
             f"Bắt đầu: {conversation.get('created', '')} · cập nhật: {conversation.get('updated', '')}", ""]
    for i, turn in enumerate(conversation.get("turns", []), 1):
        answer = turn.get("answer") or {}
        lines += [f"## {i}. {turn['question']}", ""]
        if answer.get("abstained"):
            lines.append("**Không tìm thấy câu trả lời trong các tài liệu.**")
        elif answer.get("answer"):
            lines.append(f"**Trả lời:** {answer['answer']}")
        lines += ["", answer.get("answer_text") or "", ""]
        citations = answer.get("citations") or []
        if citations:
            lines.append("**Nguồn**")
            lines.append("")
            for c in citations:
                quote = " ".join(str(c.get("text", "")).split())
                lines.append(f"- [{c.get('n')}] {c.get('doc_id')} ({c.get('source')}), ký tự "
                             f"{c.get('start')}–{c.get('end')}: > {quote}")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------- per user, on the server


class ServerStore:
    """The conversations of each user, in files under `<index>/.conversations/`."""

    def __init__(self, index_dir: str | Path) -> None:
        self.root = Path(index_dir) / FOLDER

    def _folder(self, user: str, create: bool = False) -> Path:
        folder = self.root / hashlib.sha256(user.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        if create:
            for path in (self.root, folder):
                path.mkdir(mode=0o700, exist_ok=True)
                if path.stat().st_mode & 0o077:
                    path.chmod(0o700)
        return folder

    def list(self, user: str) -> list[dict]:
        folder = self._folder(user)
        if not folder.is_dir():
            return []
        found = []
        for path in folder.glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                found.append(json.loads(path.read_text("utf-8")))
        return bounded(found)

    def save(self, user: str, conversation: dict) -> None:
        if not valid(conversation):
            raise ValueError("not a conversation")
        data = json.dumps(conversation, ensure_ascii=False)
        while len(data.encode()) > MAX_BYTES and len(conversation["turns"]) > 1:
            conversation = {**conversation, "turns": conversation["turns"][1:]}
            data = json.dumps(conversation, ensure_ascii=False)
        folder = self._folder(user, create=True)
        tmp = folder / f".tmp-{uuid.uuid4().hex[:8]}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(data)
        os.replace(tmp, folder / f"{conversation['id']}.json")
        keep = {c["id"] for c in self.list(user)}
        for path in folder.glob("*.json"):
            if path.stem not in keep:
                path.unlink(missing_ok=True)

    def delete(self, user: str, conversation_id: str) -> None:
        if _ID.fullmatch(conversation_id or ""):
            (self._folder(user) / f"{conversation_id}.json").unlink(missing_ok=True)


__all__ = ["ServerStore", "add_turn", "bounded", "history", "new", "short_title", "to_json", "to_markdown"]
