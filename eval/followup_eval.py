"""Follow-up questions on questions nobody wrote as follow-ups: the gold files' questions, made elliptic.

    python eval/followup_eval.py [--index-dir DIR | --model none] [--json]

For every answerable gold question Q (eval/gold.jsonl, eval/heldout.jsonl) that names a place and a
year, an earlier turn P is taken from the same files: another question about the same document, the
same place and the same year. Q is then stripped of its place and time words and asked as "Còn …?"
after P. A follow-up counts as right when its answer holds a gold answer (`contains_answer`), as the
full question is judged. The control: Q asked in full after a question about ANOTHER document must
not change (no inheritance) and must be answered as well as on its own.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag import gazetteer  # noqa: E402
from rag.api import RAG  # noqa: E402
from rag.evaluation import contains_answer  # noqa: E402
from rag.query import analyse  # noqa: E402
from rag.text import fold  # noqa: E402

_TIME = re.compile(r"\b(?:(?:vào|trong|cuối|đầu|giữa|hết|vao|cuoi|dau|giua|het)\s+)?(?:(?:năm|nam)\s+)?(?:19|20)\d{2}\b",
                   re.I)
_BEFORE_PLACE = re.compile(r"(?:\b(?:của|ở|tại|tỉnh|thành phố|cua|o|tai|tinh|thanh pho|TP\.?)\s+)+$", re.I)


def elliptic(question: str) -> str | None:
    """The question without its place and time words, as a follow-up: "Còn …?"; None when nothing is left."""
    text = question
    for m in reversed(gazetteer.find_places(text) or gazetteer.find_places(text, folded=True)):
        before = _BEFORE_PLACE.search(text[:m.start])
        text = text[:before.start() if before else m.start] + text[m.end:]
    text = _TIME.sub(" ", text)
    text = re.sub(r"\s+([?,.])", r"\1", " ".join(text.split())).strip(" ,")
    if len(fold(text).split()) < 3:
        return None
    return f"Còn {text[:1].lower()}{text[1:]}".rstrip("?") + "?"


def items() -> list[dict]:
    out = []
    for name in ("gold.jsonl", "heldout.jsonl"):
        for line in (ROOT / "eval" / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(json.loads(line))
    return [i for i in out if i.get("answerable") and i.get("answers") and i.get("doc")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, help="an index of seeds/ (else one is built in a temporary folder)")
    parser.add_argument("--model", default="none", help="for the index built here (default: none, BM25 only)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.index_dir:
        rag = RAG.open(args.index_dir, llm=False)
    else:
        rag, _ = RAG.build([ROOT / "seeds"], Path(tempfile.mkdtemp()) / "index", model=args.model, llm=False)
    pool = items()
    parsed = {id(i): analyse(i["question"]) for i in pool}
    rows = []
    for q in pool:
        query = parsed[id(q)]
        if not (query.place and query.years) or len(query.places) > 1 or len(query.years) > 1:  # one place, one year
            continue
        follow = elliptic(q["question"])
        earlier = next((p for p in pool if p is not q and p["doc"] == q["doc"]
                        and parsed[id(p)].place == query.place and parsed[id(p)].years == query.years
                        and p["question"] != q["question"]), None)
        other = next((p for p in pool if p["doc"] != q["doc"] and parsed[id(p)].place
                      and parsed[id(p)].place != query.place), None)
        if follow is None or earlier is None:
            continue
        alone = rag.ask(q["question"])
        got = rag.ask(follow, history=[{"question": earlier["question"]}])
        control = rag.ask(q["question"], history=[{"question": other["question"]}]) if other else None
        rows.append({
            "id": q["id"], "question": q["question"], "earlier": earlier["question"], "follow_up": follow,
            "asked": got.asked, "answer": got.answer, "golds": q["answers"],
            "alone_right": contains_answer(alone.answer, q["answers"]),
            "follow_right": contains_answer(got.answer, q["answers"]),
            "control_unchanged": None if control is None else control.asked == control.question,
            "control_right": None if control is None else contains_answer(control.answer, q["answers"]),
        })
    n = len(rows)
    controls = [r for r in rows if r["control_unchanged"] is not None]
    summary = {
        "mode": rag.mode, "pairs": n,
        "alone_accuracy": round(sum(r["alone_right"] for r in rows) / n, 3) if n else None,
        "follow_up_accuracy": round(sum(r["follow_right"] for r in rows) / n, 3) if n else None,
        "follow_up_when_alone_right": round(sum(r["follow_right"] for r in rows if r["alone_right"])
                                            / max(1, sum(r["alone_right"] for r in rows)), 3),
        "control_unchanged": round(sum(r["control_unchanged"] for r in controls) / len(controls), 3) if controls else None,
        "control_accuracy": round(sum(r["control_right"] for r in controls) / len(controls), 3) if controls else None,
    }
    if args.json:
        print(json.dumps({"summary": summary, "rows": rows}, ensure_ascii=False, indent=1))
    else:
        print(json.dumps(summary, ensure_ascii=False))
        for r in rows:
            if r["alone_right"] and not r["follow_right"]:
                print(f"MISS {r['id']}: {r['earlier']!r} → {r['follow_up']!r} → asked {r['asked']!r} → {r['answer']!r}"
                      f" (gold {r['golds']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
