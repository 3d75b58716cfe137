"""The generative answerer: an LLM writes the answer from the retrieved passages and cites them.

Any LangChain chat model can write it; `LLMConfig` builds one for an Ollama server
(`http://localhost:11434`) or an OpenAI-compatible one (`http://host:8000/v1`). The reply is
checked before it is shown:

- it cites at least one passage, and only passages that were given ([1]..[k]);
- every figure it states ("2,27%", "17.034", "13,5 tỷ") is written in a passage it cites,
  compared on digits ("17.034" == "17034"), numbers of the question left aside;
- the short answer is written in a cited passage (diacritics and case aside), or its figures are.

A reply that passes is the answer (mode "generative"); the LLM saying the passages do not hold
the answer is an abstention (mode "generative": the reader that was asked has read them). A reply
that fails the checks, an error, a timeout or an unreachable server gives the extractive answer
instead (mode "extractive"), with the reason in `GeneratedAnswer.fallback` and one sentence on
stderr. After a server was unreachable it is left alone for `COOLDOWN_S` seconds, so a batch does
not wait on it question after question.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import threading
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .answer import Answer, AnswerConfig, Answerer, Citation, abstain, sentence_spans, with_pages
from .errors import RagError, UsageError
from .query import analyse
from .retriever import Retriever
from .text import collapse_spaces, fold, syllables
from .types import Hit

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage

PROVIDERS = ("ollama", "openai")
DEFAULT_MODELS = {"ollama": "qwen2.5:7b-instruct", "openai": "gpt-4o-mini"}
NOT_FOUND = "KHÔNG TÌM THẤY"
COOLDOWN_S = 30.0  # an unreachable server is not asked again before this
_PACKAGES = {"ollama": "langchain_ollama", "openai": "langchain_openai"}


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class LLMConfig:
    """Where the LLM is and how it is asked. `LLMConfig.from_url` guesses what is left out."""

    url: str  # "http://localhost:11434" (Ollama) or "http://host:8000/v1" (OpenAI-compatible)
    model: str
    provider: str  # "ollama" | "openai"
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 30.0  # the whole request
    connect_timeout_s: float = 2.0  # an unreachable server falls back after this
    temperature: float = 0.0
    max_tokens: int = 512

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"The LLM URL must be http(s)://host[:port][/path], got {self.url!r}.")
        if self.provider not in PROVIDERS:
            raise UsageError(f"The LLM provider must be one of {', '.join(PROVIDERS)}, got {self.provider!r}.")
        if not self.model.strip():
            raise UsageError("The LLM model name is empty.")
        if not (self.timeout_s > 0 and self.connect_timeout_s > 0):
            raise UsageError(f"LLM timeouts must be positive, got {self.timeout_s} and {self.connect_timeout_s}.")
        if self.max_tokens < 1:
            raise UsageError(f"max_tokens must be at least 1, got {self.max_tokens}.")

    @classmethod
    def from_url(cls, url: str, *, model: str | None = None, provider: str | None = None,
                 api_key: str | None = None, **options: Any) -> LLMConfig:
        """The config for `url`; the provider is guessed from it when not given (`guess_provider`)."""
        url = url.strip().rstrip("/")
        provider = (provider or guess_provider(url)).strip().lower()
        if provider == "ollama" and url.endswith("/api"):  # the API root was given, not the server
            url = url[: -len("/api")]
        return cls(url=url, model=model or DEFAULT_MODELS.get(provider, ""), provider=provider,
                   api_key=api_key or None, **options)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LLMConfig | None:
        """$RAG_LLM_URL, $RAG_LLM_MODEL, $RAG_LLM_PROVIDER, $RAG_LLM_API_KEY; None when no URL is set."""
        env = os.environ if environ is None else environ
        url = env.get("RAG_LLM_URL", "").strip()
        if not url:
            return None
        return cls.from_url(url, model=env.get("RAG_LLM_MODEL") or None, provider=env.get("RAG_LLM_PROVIDER") or None,
                            api_key=env.get("RAG_LLM_API_KEY") or None)

    def describe(self) -> dict:
        """What the status shows (never the key)."""
        return {"provider": self.provider, "model": self.model, "url": self.url}


def guess_provider(url: str) -> str:
    """"openai" when the URL's path has a /v1 segment, else "ollama" (port 11434 or any other).

    >>> guess_provider("http://localhost:11434"), guess_provider("http://gpu:8000/v1")
    ('ollama', 'openai')
    """
    parts = urlsplit(url)
    if parts.port == 11434:
        return "ollama"
    return "openai" if "v1" in parts.path.strip("/").split("/") else "ollama"


def build_chat_model(config: LLMConfig) -> BaseChatModel:
    """The LangChain chat model for `config`: ChatOllama or ChatOpenAI, temperature 0, no retries."""
    import httpx

    timeout = httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s)
    if config.provider == "ollama":
        from langchain_ollama import ChatOllama

        client: dict[str, Any] = {"timeout": timeout}
        if config.api_key:
            client["headers"] = {"Authorization": f"Bearer {config.api_key}"}
        return ChatOllama(model=config.model, base_url=config.url, temperature=config.temperature,
                          num_predict=config.max_tokens, client_kwargs=client)
    from langchain_openai import ChatOpenAI

    key = config.api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"  # local servers want none
    return ChatOpenAI(model=config.model, base_url=config.url, api_key=key, temperature=config.temperature,
                      max_tokens=config.max_tokens, timeout=timeout, max_retries=0, use_responses_api=False)


# ---------------------------------------------------------------- the model behind one method


class LLMError(RagError):
    """The LLM gave no reply. `kind`: "unreachable", "timeout" or "failed"; `repeated`: not asked
    again because the server was unreachable moments ago."""

    def __init__(self, message: str, kind: str, repeated: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.repeated = repeated


class LLM:
    """A chat model (built from an `LLMConfig` on first use, or given) behind `complete`."""

    def __init__(self, source: LLMConfig | BaseChatModel) -> None:
        self.config = source if isinstance(source, LLMConfig) else None
        self._model = None if isinstance(source, LLMConfig) else source
        self._lock = threading.Lock()
        self._down_until = 0.0  # not asked before this (monotonic clock), after `_down_why`
        self._down_why = ""
        if self.config is not None and importlib.util.find_spec(_PACKAGES[self.config.provider]) is None:
            package = _PACKAGES[self.config.provider].replace("_", "-")
            raise UsageError(f"An {self.config.provider} LLM needs {package}: pip install 'rag-vi[llm]'.")

    def describe(self) -> dict:
        if self.config is not None:
            return self.config.describe()
        model = self._model
        name = getattr(model, "model_name", None) or getattr(model, "model", None)
        return {"provider": type(model).__name__, "model": str(name) if name else None, "url": None}

    @property
    def chat_model(self) -> BaseChatModel:
        with self._lock:
            if self._model is None:
                self._model = build_chat_model(self.config)
            return self._model

    def complete(self, messages: Sequence[BaseMessage]) -> str:
        """The reply's text; LLMError when there is none."""
        if time.monotonic() < self._down_until:
            raise LLMError(f"{self._down_why} moments ago (not asked again for {COOLDOWN_S:.0f} s)", "unreachable",
                           repeated=True)
        model = self.chat_model
        try:
            reply = model.invoke(list(messages))
        except Exception as exc:  # any provider, any error: the caller falls back and says why
            kind = _error_kind(exc)
            message = _error_message(self.describe(), kind, exc)
            if kind in ("unreachable", "timeout"):
                self._down_until, self._down_why = time.monotonic() + COOLDOWN_S, message
            raise LLMError(message, kind) from exc
        return _text_of(reply.content)


def resolve_llm(llm: LLMConfig | BaseChatModel | LLM | bool | None) -> LLM | None:
    """What `RAG.open(llm=...)` accepts: a config, a LangChain chat model, None (read the
    environment) or False (no LLM, whatever the environment says)."""
    if llm is False:
        return None
    if llm is None:
        config = LLMConfig.from_env()
        return LLM(config) if config else None
    if isinstance(llm, LLM):
        return llm
    if isinstance(llm, LLMConfig):
        return LLM(llm)
    from langchain_core.language_models import BaseChatModel

    if isinstance(llm, BaseChatModel):
        return LLM(llm)
    raise UsageError(f"llm must be an LLMConfig, a LangChain chat model, None or False, not {type(llm).__name__}.")


def _error_kind(exc: BaseException) -> str:
    """"unreachable" (no connection: refused, or none within the connect timeout), "timeout" (no
    reply in time) or "failed" (anything else), read from the exception and its causes, whichever
    client wrapped which."""
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    names = [cls.__name__ for e in chain for cls in type(e).__mro__]
    if any(isinstance(e, ConnectionError) for e in chain) or {"ConnectError", "ConnectTimeout"} & set(names):
        return "unreachable"
    if any(isinstance(e, TimeoutError) for e in chain) or any("Timeout" in n for n in names):
        return "timeout"
    if any("Connect" in n for n in names):  # openai's APIConnectionError and the like
        return "unreachable"
    return "failed"


def _error_message(where: dict, kind: str, exc: Exception) -> str:
    server = where["url"] or where["provider"]
    if kind == "timeout":
        return f"the LLM at {server} did not answer in time"
    if kind == "unreachable":
        return f"the LLM at {server} is unreachable"
    detail = " ".join(str(exc).split())[:200]
    return f"the LLM at {server} failed ({type(exc).__name__}: {detail})" if detail else \
        f"the LLM at {server} failed ({type(exc).__name__})"


def _text_of(content: str | list) -> str:
    if isinstance(content, str):
        return content
    parts = [block if isinstance(block, str) else block.get("text", "") for block in content
             if isinstance(block, str) or (isinstance(block, dict) and block.get("type") == "text")]
    return "".join(parts)


# ---------------------------------------------------------------- the prompt

SYSTEM_PROMPT = f"""Bạn là trợ lý trả lời câu hỏi dựa trên tài liệu tiếng Việt.
Chỉ dùng thông tin trong các đoạn văn được đánh số [1], [2], … bên dưới; không dùng kiến thức bên ngoài, không suy đoán.

Quy tắc:
1. Trả lời bằng tiếng Việt, ngắn gọn: một hoặc hai câu.
2. Sau mỗi ý, ghi số của đoạn văn làm nguồn trong ngoặc vuông, ví dụ [1] hoặc [2][3]. Câu trả lời nào cũng phải có ít nhất một trích dẫn [n].
3. Chép đúng con số, đơn vị, tên riêng, ngày tháng như trong đoạn văn (giữ dấu phẩy thập phân và dấu chấm hàng nghìn: 2,27%; 17.034).
4. Chỉ trả lời khi đoạn văn nói đúng về địa phương và năm được hỏi.
5. Nếu các đoạn văn không chứa câu trả lời, chỉ viết đúng một dòng: {NOT_FOUND}

Định dạng (đúng hai dòng):
Trả lời ngắn: <chỉ con số kèm đơn vị, tên, hoặc ngày tháng>
Trả lời: <một hoặc hai câu, có trích dẫn [n]>"""


def prompt_messages(question: str, hits: Sequence[Hit]) -> list[BaseMessage]:
    """The system message (the rules, the format) and the user message (the numbered passages, the question)."""
    from langchain_core.messages import HumanMessage, SystemMessage

    passages = "\n\n".join(
        f"[{n}] ({hit.chunk.doc_id}{' — ' + hit.chunk.header if hit.chunk.header else ''})\n{hit.chunk.text.strip()}"
        for n, hit in enumerate(hits, 1)
    )
    user = f"Các đoạn văn:\n\n{passages}\n\nCâu hỏi: {question}"
    return [SystemMessage(SYSTEM_PROMPT), HumanMessage(user)]


# ---------------------------------------------------------------- reading the reply


@dataclass(frozen=True)
class Reply:
    """The LLM's reply, parsed: the short answer, the sentence with its [n], or "not found"."""

    short: str | None
    text: str | None
    not_found: bool = False


_BOLD = re.compile(r"\*\*|__")
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)
_LABEL = re.compile(  # on the folded line: "**Trả lời ngắn:**", "Tra loi:", "Short answer:"
    r"^[\s*_#>\-]*(tra loi ngan|cau tra loi ngan|short answer|tra loi|cau tra loi|answer)[\s*_]*:[\s*_]*", re.I)


def parse_reply(raw: str) -> Reply:
    """The "Trả lời ngắn: …" and "Trả lời: …" lines, tolerant of Markdown, missing diacritics, an
    English label, a reasoning model's <think> block and code fences.

    >>> parse_reply("**Trả lời ngắn:** 2,27%\\nTrả lời: Tỷ lệ hộ nghèo là 2,27% [1].")
    Reply(short='2,27%', text='Tỷ lệ hộ nghèo là 2,27% [1].', not_found=False)
    """
    body = _THINK.sub("", unicodedata.normalize("NFC", raw)).replace("```", "").strip()
    short: list[str] | None = None
    text: list[str] | None = None
    current: list[str] | None = None
    for line in body.splitlines():
        m = _LABEL.match(fold(line))
        if m:
            current = [line[m.end():].strip()]  # fold keeps an NFC line's length: offsets hold
            if "ngan" in m.group(1) or "short" in m.group(1):
                short = current
            else:
                text = current
        elif current is not None and line.strip():
            current.append(line.strip())
    short_s = _clean(" ".join(short)) if short else None
    text_s = collapse_spaces(_BOLD.sub("", " ".join(text))).strip(" *_") if text else None
    unlabeled = short is None and text is None
    not_found = any(_says_not_found(s) for s in (short_s, text_s, body if unlabeled else None))
    if unlabeled and not not_found and body:
        text_s = collapse_spaces(_BOLD.sub("", body))  # no labels: the whole reply is the answer sentence
    return Reply(short_s or None, text_s or None, not_found)


def _says_not_found(text: str | None) -> bool:
    return bool(text) and fold(text).strip(" *_.:\"'“”").startswith(fold(NOT_FOUND))


def _clean(short: str) -> str:
    return _MARKERS.sub("", _BOLD.sub("", short)).strip(" *_.;:\"'“”")


# ---------------------------------------------------------------- checking the reply

_MARKERS = re.compile(r"\s*(?:\[\s*\d+(?:\s*[,;–-]\s*\d+)*\s*\])+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def cited_numbers(text: str) -> list[int]:
    """The passage numbers cited, in order of first appearance: "… [2], … [1][2]" → [2, 1]."""
    out: list[int] = []
    for group in _MARKERS.finditer(text):
        for n in map(int, re.findall(r"\d+", group.group())):
            if n not in out:
                out.append(n)
    return out


def figures(text: str) -> set[str]:
    """The numbers a text states as digits: "17.034 người, 2,27%" → {"17034", "227"}."""
    return {re.sub(r"[.,]", "", n).lstrip("0") or "0" for n in _NUMBER.findall(text)}


def _segments(text: str) -> list[tuple[str, list[int]]]:
    """The answer cut after each group of markers: each piece with the passages it cites; words
    after the last group belong to it ("… 2,27% [1], giảm 1,29%.")."""
    out: list[tuple[str, list[int]]] = []
    pos = 0
    for group in _MARKERS.finditer(text):
        out.append((text[pos:group.start()], [int(n) for n in re.findall(r"\d+", group.group())]))
        pos = group.end()
    if out and text[pos:].strip():
        last, numbers = out[-1]
        out[-1] = (f"{last} {text[pos:]}", numbers)
    return out


def _passage_text(hit: Hit) -> str:
    return f"{hit.chunk.header}\n{hit.chunk.text}"


def verify(reply: Reply, hits: Sequence[Hit], question: str) -> str | None:
    """Why the reply cannot be shown, or None when every check passes (see the module's docstring)."""
    if not reply.text:
        return "the LLM's reply has no answer line"
    cited = cited_numbers(reply.text)
    if not cited:
        return "the LLM's answer cites no passage"
    bad = [n for n in cited if not 1 <= n <= len(hits)]
    if bad:
        return f"the LLM cited [{bad[0]}], but only {len(hits)} passages were given"
    asked = figures(question)
    for piece, numbers in _segments(reply.text):
        known = set().union(*(figures(_passage_text(hits[n - 1])) for n in numbers))
        missing = sorted(figures(piece) - asked - known)
        if missing:
            where = "".join(f"[{n}]" for n in numbers)
            return f"the figure {_shown(piece, missing[0])} in the LLM's answer is not in passage {where}"
    if reply.short:
        texts = [_passage_text(hits[n - 1]) for n in cited]
        short = _folded(reply.short)
        in_text = any(short in _folded(t) for t in texts)
        own = figures(reply.short)
        if not in_text and not (own and own <= set().union(*map(figures, texts)) | asked):
            return f"the short answer “{reply.short}” is not in the cited passages"
    return None


def _folded(text: str) -> str:
    return " ".join(fold(text).split())


def _shown(piece: str, digits: str) -> str:
    """The figure as the LLM wrote it ("3,5"), for the reason."""
    for n in _NUMBER.findall(piece):
        if (re.sub(r"[.,]", "", n).lstrip("0") or "0") == digits:
            return n
    return digits


# ---------------------------------------------------------------- citing


def renumber(text: str, cited: Sequence[int]) -> str:
    """The markers rewritten to the order of citation: with cited [3, 1], "[3]" → "[1]", "[1, 3]" → "[2][1]"."""
    new = {old: i for i, old in enumerate(cited, 1)}

    def swap(group: re.Match) -> str:
        numbers = dict.fromkeys(new[int(n)] for n in re.findall(r"\d+", group.group()))
        return " " + "".join(f"[{n}]" for n in numbers)

    return collapse_spaces(_MARKERS.sub(swap, text)).replace(" .", ".").replace(" ,", ",")


def cite(n: int, hit: Hit, short: str | None, claim: str) -> Citation:
    """Citation `n` of the passage: the sentence of the chunk that holds the short answer or the
    claim's figures and words, or the whole chunk when none does; offsets into the document."""
    chunk = hit.chunk
    want = _folded(short) if short else ""
    claim_figures = figures(_MARKERS.sub(" ", claim))
    claim_words = {fold(w) for w in syllables(_MARKERS.sub(" ", claim))}
    best, best_score = (0, len(chunk.text)), 0.0
    for s, e in sentence_spans(chunk.text):
        sentence = chunk.text[s:e]
        words = {fold(w) for w in syllables(sentence)}
        score = (2.0 * bool(want and want in _folded(sentence)) + len(claim_figures & figures(sentence))
                 + len(claim_words & words) / (len(claim_words) or 1))
        if score > best_score:
            best, best_score = (s, e), score
    s, e = best
    return Citation(n=n, doc_id=chunk.doc_id, source=hit.source, chunk_id=chunk.id, start=chunk.start + s,
                    end=chunk.start + e, text=chunk.text[s:e], score=round(hit.score, 4))


def _claims_of(text: str, old: int) -> str:
    """The pieces of the answer that cite passage `old`."""
    return " ".join(piece for piece, numbers in _segments(text) if old in numbers)


# ---------------------------------------------------------------- the answerer


@dataclass(frozen=True)
class GeneratedAnswer(Answer):
    """An `Answer` of the generative answerer; `fallback` says why the extractive answer was given
    instead of the LLM's (None when the LLM's reading was used). Its JSON is the contract's."""

    fallback: str | None = None


class GenerativeAnswerer:
    """The LLM reads the retrieved passages and answers; the extractive answerer stands behind it."""

    def __init__(self, retriever: Retriever, llm: LLM, config: AnswerConfig = AnswerConfig()) -> None:
        self.retriever = retriever
        self.llm = llm
        self.config = config

    def ask(self, question: str, *, k: int | None = None, province: str | None = None,
            year: int | None = None) -> GeneratedAnswer:
        t0 = time.perf_counter()
        query = analyse(question)
        hits = self.retriever.search(query, k or self.config.k, province=province, year=year)
        t1 = time.perf_counter()
        timings = {"retrieve": (t1 - t0) * 1000, "answer": 0.0}
        if not hits:  # nothing to give the LLM: no failure of its own, nothing to log
            return self._extractive(question, k, province, year, timings, "no passage matched the question", log=False)
        try:
            raw = self.llm.complete(prompt_messages(query.text, hits))
        except LLMError as exc:
            timings["answer"] = (time.perf_counter() - t1) * 1000
            return self._extractive(question, k, province, year, timings, str(exc), log=not exc.repeated)
        reply = parse_reply(raw)
        if reply.not_found:
            answer = abstain(query, f"mô hình ngôn ngữ không thấy câu trả lời trong {len(hits)} đoạn")
        else:
            reason = verify(reply, hits, query.text)
            if reason:
                timings["answer"] = (time.perf_counter() - t1) * 1000
                return self._extractive(question, k, province, year, timings, reason)
            answer = self._answer(query.text, reply, hits)
        timings["answer"] = (time.perf_counter() - t1) * 1000
        return GeneratedAnswer(
            question=query.text, answer=answer.answer, abstained=answer.abstained, answer_text=answer.answer_text,
            citations=with_pages(answer.citations, self.retriever.snapshot.documents), mode="generative", timings_ms=_rounded(timings),
            retrieval_mode=self.retriever.mode,
        )

    @staticmethod
    def _answer(question: str, reply: Reply, hits: Sequence[Hit]) -> Answer:
        cited = cited_numbers(reply.text)
        citations = tuple(cite(n, hits[old - 1], reply.short, _claims_of(reply.text, old))
                          for n, old in enumerate(cited, 1))
        short = reply.short or _clean(reply.text)
        return Answer(question, short, False, renumber(reply.text, cited), citations)

    def _extractive(self, question: str, k: int | None, province: str | None, year: int | None,
                    timings: dict[str, float], reason: str, log: bool = True) -> GeneratedAnswer:
        if log:
            print(f"LLM answer not used: {reason}; the extractive answer is given.", file=sys.stderr, flush=True)
        answer = Answerer(self.retriever, self.config).ask(question, k=k, province=province, year=year)
        total = {key: timings.get(key, 0.0) + answer.timings_ms.get(key, 0.0)
                 for key in {**timings, **answer.timings_ms}}
        values = {f.name: getattr(answer, f.name) for f in fields(Answer)}
        return GeneratedAnswer(**{**values, "timings_ms": _rounded(total)}, fallback=reason)


def _rounded(timings: dict[str, float]) -> dict[str, float]:
    return {key: round(value, 2) for key, value in timings.items()}


__all__ = [
    "COOLDOWN_S", "GeneratedAnswer", "GenerativeAnswerer", "LLM", "LLMConfig", "LLMError", "NOT_FOUND", "Reply",
    "SYSTEM_PROMPT",
    "build_chat_model", "cite", "cited_numbers", "figures", "guess_provider", "parse_reply", "prompt_messages",
    "renumber", "resolve_llm", "verify",
]
