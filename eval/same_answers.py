"""Whether a change leaves every answer as it was: the answers of the seeds' gold and held-out questions
(on the dense index and on the dense-and-lexical one) and of the first ViQuAD dev questions, saved before
the change (`--save FILE`) and compared after it (`--check FILE`).

An answer is its text, its short answer, whether it abstained, its citations and its confidence (equal
within 1e-9). Prints the number of questions and of differing answers; exits 1 on any difference.
The indexes are only opened, never written.

    python eval/same_answers.py --save /tmp/before.json
    python eval/same_answers.py --check /tmp/before.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SQUAD = Path("/work/shared/benchdata/uit-viquad-1.0/dev_ViQuAD.json")
TOLERANCE = 1e-9


def record(answer) -> dict:
    """What must not change: the fields of an `Answer` that the contract and the evaluation read."""
    return {
        "answer": answer.answer, "abstained": answer.abstained, "answer_text": answer.answer_text,
        "citations": [c.__dict__.copy() for c in answer.citations], "confidence": answer.confidence,
    }


def sets(args) -> list[tuple[str, Path, list[tuple[str, str]]]]:
    """(name, index, [(question id, question)]) of every set asked."""
    from rag.evaluation import load_gold, load_squad

    seeds = [(f"{name}:{i.id}", i.question) for name in ("gold", "heldout")
             for i in load_gold(ROOT / "eval" / f"{name}.jsonl")]
    out = [("seeds-dense", args.seeds_index, seeds), ("seeds-dense-lexical", args.seeds_lexical_index, seeds)]
    if args.limit:
        _, items = load_squad(args.squad)
        out.append(("viquad", args.squad_index, [(i.id, i.question) for i in items[: args.limit]]))
    return [s for s in out if not args.only or s[0] in args.only]


def answers(args) -> dict[str, dict[str, dict]]:
    from rag.api import RAG

    out: dict[str, dict[str, dict]] = {}
    for name, index, questions in sets(args):
        if not (index / "CURRENT").exists():
            raise SystemExit(f"{index}: no index there (this script only opens indexes; it builds none)")
        rag = RAG.open(index, llm=False)
        t = time.perf_counter()
        out[name] = {qid: record(rag.ask(question)) for qid, question in questions}
        print(f"{name}: {len(questions)} questions in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return out


def differences(before: dict, after: dict) -> list[str]:
    """One line per answer that differs (or is missing on one side)."""
    lines = []
    for name in after:
        old = before.get(name, {})
        for qid, new in after[name].items():
            if qid not in old:
                lines.append(f"{name} {qid}: not in the saved answers")
                continue
            fields = [k for k in new if not _same(k, old[qid].get(k), new[k])]
            if fields:
                lines.append(f"{name} {qid}: {', '.join(fields)} differ: "
                             + "; ".join(f"{k}: {old[qid].get(k)!r} → {new[k]!r}" for k in fields))
    return lines


def _same(key: str, a, b) -> bool:
    if key == "confidence" and a is not None and b is not None:
        return math.isclose(a, b, rel_tol=0.0, abs_tol=TOLERANCE)
    return a == b


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--save", type=Path, help="write the answers to this JSON file")
    mode.add_argument("--check", type=Path, help="compare the answers with those saved in this file")
    ap.add_argument("--seeds-index", type=Path, default=ROOT / ".cache" / "seeds-dense")
    ap.add_argument("--seeds-lexical-index", type=Path, default=ROOT / ".cache" / "seeds-dense-lexical")
    ap.add_argument("--squad-index", type=Path, default=ROOT / ".cache" / "viquad-dev-index")
    ap.add_argument("--squad", type=Path, default=SQUAD)
    ap.add_argument("--limit", type=int, default=600, help="the first N ViQuAD dev questions (0: none)")
    ap.add_argument("--only", nargs="*", default=(), help="only these sets (seeds-dense, seeds-dense-lexical, viquad)")
    args = ap.parse_args(argv)
    got = answers(args)
    count = sum(len(v) for v in got.values())
    if args.save:
        args.save.write_text(json.dumps(got, ensure_ascii=False, indent=1), "utf-8")
        print(f"{count} questions; answers saved to {args.save}")
        return 0
    diff = differences(json.loads(args.check.read_text("utf-8")), got)
    for line in diff:
        print(line)
    print(f"{count} questions, {len(diff)} differing answers")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
