"""Measure what each hand rule of the answerer is worth: the shipped answerer, then with one rule switched off.

    python eval/ablate_answerer.py [--only NAME,...] [--limit N]

Sets: eval/gold.jsonl and eval/heldout.jsonl on the dense seeds index, through `Answerer.ask` (the comparison path
included); UIT-ViQuAD dev on its passages' index, through `Answerer._answer` on hits retrieved once. Printed per
rule and set: answer accuracy (the answer holds a gold answer and cites its document; ViQuAD: the answer holds it),
the share whose quoted sentence holds it, F1, false abstention and abstention on unanswerable questions. A rule
whose removal changes nothing measurable is a candidate for deletion.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval.train_answerer import QuestionSet, data_arguments, prediction, question_sets  # noqa: E402
from rag import answer as A  # noqa: E402
from rag import answer_scorer as S  # noqa: E402
from rag.evaluation import Prediction, answer_metrics  # noqa: E402


@contextlib.contextmanager
def patched(pairs):
    """Set (object, attribute, value) triples for the length of the block."""
    old = [(obj, name, getattr(obj, name)) for obj, name, _ in pairs]
    for obj, name, value in pairs:
        setattr(obj, name, value)
    try:
        yield
    finally:
        for obj, name, value in old:
            setattr(obj, name, value)


NEVER = re.compile(r"(?!)")  # a pattern that matches nothing: the rule that reads it is off


def _hand(**changes):
    return [(S, "HAND", {**S.HAND, **changes})]


ABLATIONS = {
    "shipped": [],
    "length weight (LEN_W)": _hand(length=0.0),
    "year weights (YEAR_W)": _hand(year_own=0.0, year_para=0.0, year_other=0.0),
    "clause decay in _proximity": [(A, "CLAUSE_DECAY", 1.0)],
    "target clause (CLAUSE_TARGET_W)": [(A, "CLAUSE_TARGET_W", 0.0)],
    "time words count less (TIME_W)": [(A, "TIME_W", 1.0)],
    "runner-up values (RUNNER_UP)": [(A, "RUNNER_UP", 0.0)],
    "names at loose support (LOOSE_SUPPORT)": [(A, "LOOSE_SUPPORT", 2.0)],
    "unit bonus": [(A, "_unit_bonus", lambda unit, candidate: 0.0)],
    "predicate bonus": [(A, "_predicate_bonus", lambda verb, sentence, span: 0.0)],
    "target weight": _hand(target_mismatch=0.0),
    "type weights": _hand(typed_found=0.0, typed_missing=0.0),
    "place weight": _hand(place=0.0),
    "hit score weight": _hand(hit_score=0.0),
    "a percentage's own rate (_same_measure)": [(A, "_same_measure", lambda measured, before: True)],
    "a share of the plan is no rate (PLAN_SHARE)": [(A, "PLAN_SHARE", NEVER)],
    "plan years and dates vouch for no figure (PLAN_YEAR and DATED)": [(A, "PLAN_YEAR", NEVER), (A, "DATED", NEVER)],
    "learned spans (rag/spans.py) → trimmed sentence": [
        (A.Answerer, "_free_span", lambda self, query, sentence: A._free_span(query, sentence))],
}


def predictions(qs: QuestionSet, full: bool, rank_by: str | None = None) -> list[Prediction]:
    answerer = A.Answerer(qs.retriever, A.AnswerConfig(**({"rank_by": rank_by} if rank_by else {})))
    out = []
    for item, query, hits in zip(qs.items, qs.queries, qs.hits):
        out.append(prediction(item, answerer.ask(item.question) if full else answerer._answer(query, hits)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data_arguments(ap)
    ap.add_argument("--only", default="", help="comma-separated ablation names (default: all)")
    ap.add_argument("--rank-by", default=None, choices=("hand", "hand+cosine", "learned"),
                    help="the answerer's sentence ranking (default: AnswerConfig's)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    sets = [(qs, qs.name != "viquad") for qs in question_sets(args)]  # the seeds through ask (comparisons too)
    names = [n for n in ABLATIONS if not args.only or n in args.only.split(",")]
    keys = ("answer_accuracy", "answer_text_contains", "f1", "false_abstention_rate", "abstention_accuracy")
    for name in names:
        with patched(ABLATIONS[name]):
            row = {}
            for qs, full in sets:
                m = answer_metrics(qs.items, predictions(qs, full, args.rank_by))
                row[qs.name] = {k: round(m[k], 3) for k in keys if m.get(k) is not None}
        print(json.dumps({"ablation": name, "rank_by": args.rank_by or A.AnswerConfig().rank_by, **row}, ensure_ascii=False), flush=True)
    print(f"done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
