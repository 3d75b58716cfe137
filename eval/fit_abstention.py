"""Fit the abstention (rag/data/abstention.json): when the documents do not hold the answer.

    python eval/fit_abstention.py [--false-answers 0.05] [--write]

Data: every question of eval/gold.jsonl, eval/heldout.jsonl and UIT-ViQuAD dev (`--squad`, indexed in
`--squad-index`) is asked of its index as it is, and each answerable one is asked again of the same index without
its document (the ViQuAD article's passages, the seed report): taken out of the top 30 hits before the 6 read are
chosen, and out of the word counts that say which of the question's words no document holds. That makes 2,509 unanswerable questions beside the seeds' 32. The answerer picks a sentence and an answer
with its place, year and type rules but without its support floor; the label is whether the pick is right (the
sentence or the answer holds a gold answer). The model: a logistic regression over rag.abstention.FEATURES,
standardised (scikit-learn, lbfgs, L2: deterministic).

The threshold is the lowest probability at which at most `--false-answers` of the unanswerable questions get an
answer. Cross-validation: 5 folds grouped by document (a ViQuAD article, a seed report; the seeds' unanswerable
questions are one group); each fold's model and threshold come from the other folds, and the report is out of
fold only, beside the rule it replaces (`min_support`). The file is fitted on everything. A lexical index (no embedding model) scores hits
on another scale and has no cosines: `--lexical` fits its own model on lexical indexes of the same documents.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval.train_answerer import CACHE, K, QuestionSet, data_arguments, folds_of, open_index, question_sets  # noqa: E402
from rag.abstention import FEATURES, WEIGHTS_FILE  # noqa: E402
from rag.answer import AnswerConfig, Answerer, answer_evidence, unknown_share  # noqa: E402
from rag.evaluation import contains_answer  # noqa: E402
from rag.lexical import tokenize  # noqa: E402

DEPTH = 30  # hits retrieved before the question's own document is taken out
C = 1.0


def _open(paths: list[Path], index_dir: Path, lexical: bool):
    if not lexical:
        return open_index(paths, index_dir)
    from rag import RAG

    if not (index_dir / "CURRENT").exists():
        RAG.build(paths, index_dir, model="none")
    return RAG.open(index_dir)


def owner(doc_id: str, squad: bool) -> str:
    """The unit taken out: a ViQuAD article ("p012" of "p012_003"), a seed document."""
    return doc_id.split("_")[0] if squad else doc_id


def doc_freqs(qs: QuestionSet, squad: bool):
    """Document frequency in the folded syllable field of the whole index, and the part of it that each unit
    (a ViQuAD article, a seed document) contributes: taking a unit out of the index takes out its words too."""
    field = qs.retriever.snapshot.lexical.fields["fsyl"]
    indptr, vocab = field.scores["indptr"], field.vocab_dict
    per_unit: dict[str, Counter] = {}
    for chunk in qs.retriever.snapshot.chunks:
        per_unit.setdefault(owner(chunk.doc_id, squad), Counter()).update(set(tokenize(chunk.index_text)["fsyl"]))

    def whole(words):
        return {w: int(indptr[vocab[w] + 1] - indptr[vocab[w]]) if w in vocab else 0 for w in words}

    def without(unit):
        return lambda words: {w: d - per_unit.get(unit, Counter())[w] for w, d in whole(words).items()}
    return whole, without


def records(qs: QuestionSet, squad: bool):
    """Per question and condition: the rule's decision, the loose pick's features and whether it is right."""
    rule = Answerer(qs.retriever, AnswerConfig(abstain_by="support"))
    loose = Answerer(qs.retriever, AnswerConfig(abstain_by="support", min_support=0.0))
    whole, without = doc_freqs(qs, squad)
    for item, query, hits in zip(qs.items, qs.queries, qs.hits):
        runs = [("asked", hits)]
        if item.answerable:
            gone = owner(item.doc, squad)
            runs.append(("without", [h for h in qs.retriever.search(query, DEPTH)
                                     if owner(h.chunk.doc_id, squad) != gone][:K]))
        for condition, found in runs:
            answerable = item.answerable and condition == "asked"
            before = rule._answer(query, found)
            sentences = loose.candidates(query, found)
            pick, _ = loose.pick(query, found, sentences)
            row = {"set": qs.name, "id": item.id, "group": qs.group(item), "condition": condition,
                   "answerable": answerable, "picked": pick is not None,
                   "rule_right": answerable and not before.abstained and contains_answer(before.answer_text, item.answers),
                   "rule_abstained": before.abstained, "right": False, "evidence": None}
            if pick is not None:
                sent, span = pick
                row["right"] = answerable and (contains_answer(sent.text, item.answers) or contains_answer(span, item.answers))
                unknown = unknown_share(query, whole if condition == "asked" else without(owner(item.doc, squad)))
                row["evidence"] = answer_evidence(found, sent, sentences, unknown)
            yield row


def matrix(rows: list[dict], fill: np.ndarray) -> np.ndarray:
    return np.array([[fill[i] if (r["evidence"] or {}).get(n) is None else r["evidence"][n]
                      for i, n in enumerate(FEATURES)] for r in rows], dtype=float)


def fill_values(rows: list[dict]) -> np.ndarray:
    """Per feature, the mean of its known values among the picked answers."""
    out = []
    for n in FEATURES:
        known = [r["evidence"][n] for r in rows if r["evidence"] and r["evidence"].get(n) is not None]
        out.append(float(np.mean(known)) if known else 0.0)
    return np.array(out)


def fit(rows: list[dict]) -> dict:
    """Standardisation, weights and bias on the picked answers of `rows`."""
    from sklearn.linear_model import LogisticRegression

    picked = [r for r in rows if r["picked"]]
    fill = fill_values(picked)
    X = matrix(picked, fill)
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=C, max_iter=5000).fit((X - mean) / scale, [r["right"] for r in picked])
    return {"mean": mean, "scale": scale, "weights": model.coef_[0], "bias": float(model.intercept_[0]), "fill": fill}


def probabilities(model: dict, rows: list[dict]) -> np.ndarray:
    """P(right) of each row's pick; -1 where nothing was picked (the rules abstained)."""
    z = ((matrix(rows, model["fill"]) - model["mean"]) / model["scale"]) @ model["weights"] + model["bias"]
    return np.where([r["picked"] for r in rows], 1 / (1 + np.exp(-z)), -1.0)


def threshold_for(p: np.ndarray, rows: list[dict], false_answers: float) -> float:
    """The lowest threshold at which at most `false_answers` of the unanswerable rows get an answer."""
    unanswerable = np.sort([pi for pi, r in zip(p, rows) if not r["answerable"]])[::-1]
    allowed = int(np.floor(false_answers * len(unanswerable)))
    return float(unanswerable[allowed]) + 1e-6 if allowed < len(unanswerable) else 0.0


def report(rows: list[dict], answered: np.ndarray) -> dict:
    """Per set: answerable questions answered right and wrongly withheld; unanswerable ones withheld
    (the sets' own, and those made by taking the document out)."""
    out = {}
    for name in dict.fromkeys(r["set"] for r in rows):
        def share(keep, value):
            idx = [i for i, r in enumerate(rows) if r["set"] == name and keep(r)]
            return (round(float(np.mean([value(i) for i in idx])), 3), len(idx)) if idx else None
        out[name] = {
            "answerable_right": share(lambda r: r["answerable"], lambda i: bool(answered[i] and rows[i]["right"])),
            "answerable_withheld": share(lambda r: r["answerable"], lambda i: not answered[i]),
            "unanswerable_withheld": share(lambda r: not r["answerable"] and r["condition"] == "asked",
                                           lambda i: not answered[i]),
            "document_removed_withheld": share(lambda r: r["condition"] == "without", lambda i: not answered[i]),
        }
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data_arguments(ap)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--false-answers", type=float, default=0.05,
                    help="share of unanswerable questions the threshold lets through")
    ap.add_argument("--lexical", action="store_true",
                    help="fit the model for lexical indexes (no embedding model: other retrieval scores, no cosines)")
    ap.add_argument("--records", type=Path, default=None,
                    help="where the collected rows are kept (reused with --reuse)")
    ap.add_argument("--reuse", action="store_true", help="fit on the rows collected by an earlier run")
    ap.add_argument("--write", action="store_true", help=f"write {WEIGHTS_FILE.relative_to(ROOT)}")
    ap.add_argument("--out", type=Path, default=WEIGHTS_FILE)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    mode = "lexical" if args.lexical else "dense"
    args.records = args.records or CACHE / f"abstention-records-{mode}.jsonl"
    corpus_index = args.squad_index  # the ViQuAD passages' text files sit beside the dense index
    if args.lexical:  # indexes of the same documents without vectors, beside the dense ones
        args.seeds_index = args.seeds_index.with_name(args.seeds_index.name + "-lexical")
        args.squad_index = args.squad_index.with_name(args.squad_index.name + "-lexical")

    if args.reuse and args.records.is_file():
        rows = [json.loads(line) for line in args.records.read_text("utf-8").splitlines()]
        model_name = rows[0].pop("_model", None) if rows else None
    else:
        sets = question_sets(args, lambda paths, index_dir: _open(paths, index_dir, args.lexical), corpus_index,
                             vectors=not args.lexical)
        seeds = sets[0].retriever
        rows = [row for qs in sets for row in records(qs, qs.name == "viquad")]
        model_name = (seeds.snapshot.manifest.get("model") or {}).get("name") if seeds.mode == "dense" else None
        args.records.parent.mkdir(parents=True, exist_ok=True)
        args.records.write_text("".join(json.dumps({**r, "_model": model_name} if i == 0 else r, ensure_ascii=False)
                                        + "\n" for i, r in enumerate(rows)), "utf-8")
        print(f"collected {len(rows)} rows: {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    fold_of_group = folds_of([r["group"] for r in rows], args.folds)
    fold = np.array([fold_of_group[r["group"]] for r in rows])
    p = np.zeros(len(rows))
    thresholds = []
    for f in range(args.folds):
        train = [r for r, fi in zip(rows, fold) if fi != f]
        model = fit(train)
        thresholds.append(threshold_for(probabilities(model, train), train, args.false_answers))
        mine = np.flatnonzero(fold == f)
        p[mine] = probabilities(model, [rows[i] for i in mine])
    answered_cv = p >= np.array([thresholds[f] for f in fold])
    answered_rule = np.array([not r["rule_abstained"] for r in rows])
    rule_rows = [{**r, "right": r["rule_right"]} for r in rows]

    model = fit(rows)
    threshold = threshold_for(probabilities(model, rows), rows, args.false_answers)
    picked = (fold >= 0) & (p >= 0)
    bins = []
    for lo in np.arange(0, 1, 0.2):
        m = picked & (p >= lo) & (p < lo + 0.2 + (lo >= 0.8))
        if m.any():
            bins.append({"confidence": f"{lo:.1f}-{lo + 0.2:.1f}", "answers": int(m.sum()),
                         "mean_confidence": round(float(p[m].mean()), 3),
                         "right": round(float(np.mean([rows[i]["right"] for i in np.flatnonzero(m)])), 3)})
    data = {
        "version": 1,
        "model": model_name,
        "fitted": (f"logistic regression (scikit-learn, L2, C={C:g}) on standardised features; label: the answer "
                   "picked without the support floor is right (its sentence or span holds a gold answer)"),
        "features": list(FEATURES),
        **{key: {n: round(float(v), 6) for n, v in zip(FEATURES, model[key])} for key in ("mean", "scale", "weights", "fill")},
        "bias": round(model["bias"], 6),
        "threshold": round(threshold, 4),
        "threshold_rule": f"lowest probability at which at most {args.false_answers:.0%} of the unanswerable questions "
                          "(the seeds' own and those made by taking the document out) get an answer",
        "rows": len(rows), "unanswerable": int(sum(not r["answerable"] for r in rows)), "folds": args.folds,
        "cv_thresholds": [round(t, 4) for t in thresholds],
        "cv": report(rows, answered_cv),
        "rule_min_support": report(rule_rows, answered_rule),
        "reliability": bins,
    }
    text = json.dumps(data, ensure_ascii=False, indent=1) + "\n"
    if args.write:  # one model per kind of index, in one file
        shipped = json.loads(args.out.read_text("utf-8")) if args.out.is_file() else {}
        args.out.write_text(json.dumps({**shipped, mode: data}, ensure_ascii=False, indent=1) + "\n", "utf-8")
    print(text)
    print(f"done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
