"""Fit the abstention (rag/data/abstention.json): when the documents do not hold the answer.

    python eval/fit_abstention.py [--false-answers 0.05] [--lexical] [--shifted] [--reuse] [--write]

Data: every question of eval/gold.jsonl, eval/heldout.jsonl and UIT-ViQuAD dev (`--squad`, indexed in
`--squad-index`) is asked of its index as it is, and each answerable one is asked again of the same index without
its document (the ViQuAD article's passages, the seed report): taken out of the top 30 hits before the 6 read are
chosen, and out of the word counts that say which of the question's words no document holds. That makes 2,474 unanswerable questions beside the seeds' 32. The answerer picks a sentence and an answer
with its place, year and type rules but without its support floor; the label is whether the pick is right (the
sentence or the answer holds a gold answer). The model: a logistic regression over rag.abstention.FEATURES,
standardised (scikit-learn, lbfgs, L2: deterministic).

Shifted questions (`shifted_items`): each answerable seed question that asks a year or a province is asked again of
the whole index with the year moved 3-6 years to one no document writes, or with the province replaced by one no
document names (as typed: without diacritics when it was); each ViQuAD question holding a 4-digit year, with the year
moved to one no passage writes. They are unanswerable; they are always collected and reported (how many the place
and year rules withhold before the model, how many the model withholds), and `--shifted` also fits on them, grouped
with their source question's document. The rules withhold every seed one and 39 of ViQuAD's 61 (a year before 1900
is no year to them), so the model sees 22: fitting on them moves one or two questions either way (docs/answering.md),
so it stays off.

The threshold is the lowest probability at which at most `--false-answers` of the unanswerable questions get an
answer. Cross-validation: 5 folds grouped by document (a ViQuAD article, a seed report; the seeds' unanswerable
questions are one group); each fold's model and threshold come from the other folds, and the report is out of
fold only, beside the rule it replaces (`min_support`). The file is fitted on everything. A lexical index (no embedding model) scores hits
on another scale and has no cosines: `--lexical` fits its own model on lexical indexes of the same documents.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval.train_answerer import CACHE, K, QuestionSet, data_arguments, folds_of, open_index, question_sets  # noqa: E402
from rag import gazetteer  # noqa: E402
from rag.abstention import FEATURES, WEIGHTS_FILE  # noqa: E402
from rag.answer import AnswerConfig, Answerer, answer_evidence, unknown_share  # noqa: E402
from rag.evaluation import GoldItem, contains_answer  # noqa: E402
from rag.lexical import tokenize  # noqa: E402
from rag.query import analyse  # noqa: E402
from rag.text import fold, has_diacritics  # noqa: E402

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


def records(qs: QuestionSet, squad: bool, asked: str = "asked"):
    """Per question and condition: the rule's decision, the loose pick's features and whether it is right. The
    questions are asked of the whole index under the condition `asked` ("asked", or "shifted_year"/"shifted_place" for
    unanswerable questions made by `shifted_items`), and each answerable one again without its document."""
    rule = Answerer(qs.retriever, AnswerConfig(abstain_by="support"))
    loose = Answerer(qs.retriever, AnswerConfig(abstain_by="support", min_support=0.0))
    whole, without = doc_freqs(qs, squad)
    for item, query, hits in zip(qs.items, qs.queries, qs.hits):
        runs = [(asked, hits)]
        if item.answerable:
            gone = owner(item.doc, squad)
            runs.append(("without", [h for h in qs.retriever.search(query, DEPTH)
                                     if owner(h.chunk.doc_id, squad) != gone][:K]))
        for condition, found in runs:
            answerable = item.answerable and condition != "without"
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
                unknown = unknown_share(query, without(owner(item.doc, squad)) if condition == "without" else whole)
                row["evidence"] = answer_evidence(found, sent, sentences, unknown)
            yield row


# ---------------------------------------------------------------------------- shifted questions

YEAR_SHIFTS = (3, -3, 4, -4, 5, -5, 6, -6)  # tried in this order; the same shift for every year of a question
_YEAR = re.compile(r"(?<![\w.,/])(1\d{3}|20\d{2})(?![\w/]|[.,]\d)")  # a 4-digit year as typed, not "38/2022", "1.200"
_ANY_FOUR = re.compile(r"(?<!\d)\d{4}(?!\d)")
_RANGE = re.compile(r"(?<!\d)(\d{4})\s*[-–]\s*(\d{4})(?!\d)")


def mentioned_years(texts) -> set[int]:
    """Every 4-digit number the texts write, and the years inside their ranges ("2021 - 2025" holds 2023)."""
    out: set[int] = set()
    for text in texts:
        out.update(int(y) for y in _ANY_FOUR.findall(text))
        for a, b in _RANGE.findall(text):
            if int(a) < int(b) <= int(a) + 20:
                out.update(range(int(a) + 1, int(b)))
    return out


def mentioned_places(texts) -> set[str]:
    """The provinces and cities the texts name anywhere (not only those they are about)."""
    return {m.place.name for text in texts for m in gazetteer.find_places(text)}


def shift_year(question: str, taken: set[int]) -> str | None:
    """The question with each 4-digit year moved by the first of YEAR_SHIFTS that lands every one of them on a year
    outside `taken`, written where it was typed; None when it holds no year or no shift fits."""
    found = list(_YEAR.finditer(question))
    if not found:
        return None
    years = {int(m.group()) for m in found}
    for d in YEAR_SHIFTS:
        if all(y + d not in taken and 1000 <= y + d <= 2099 for y in years):
            return _YEAR.sub(lambda m: str(int(m.group()) + d), question)
    return None


def _as_typed(name: str, surface: str, folded: bool) -> str:
    """`name` written the way `surface` was: without diacritics when it was found so (`folded`), in capitals, in
    lower case or with capital initials as it was."""
    out = fold(name) if folded else name
    if surface.isupper():
        return out.upper()
    if surface.islower():
        return out.lower()
    return re.sub(r"\b\w", lambda m: m.group().upper(), out) if folded else out


def shift_place(question: str, taken: set[str]) -> str | None:
    """The question with its one province (or centrally-run city) replaced by another of the same kind that
    `taken` lacks, written as the original was typed (with or without diacritics, its case); the replacement is
    chosen by the question's checksum among those that analyse back to it. None when the question names no place,
    several, or a district only ("Cửa Lò")."""
    query = analyse(question)
    if query.place is None or len(query.places) != 1 or query.subplace:
        return None
    folded = query.folded
    mentions = gazetteer.find_places(question, folded=folded or None)
    if not mentions and not folded:  # as analyse does: "hộ nghèo ở hue"
        folded = True
        mentions = [m for m in gazetteer.find_places(question, folded=True) if not has_diacritics(m.surface)]
    mentions = [m for m in mentions if m.place.name == query.place]
    if not mentions or any(m.via.startswith("subplace:") for m in mentions):
        return None
    kind = mentions[0].place.kind
    others = sorted(p.name for p in gazetteer.PLACES if p.kind == kind and p.name not in taken | {query.place})
    start = zlib.crc32(question.encode("utf-8"))
    for i in range(len(others)):
        name = others[(start + i) % len(others)]
        shifted = question
        for m in sorted(mentions, key=lambda m: m.start, reverse=True):
            shifted = shifted[:m.start] + _as_typed(name, m.surface, folded) + shifted[m.end:]
        if analyse(shifted).places == (name,):  # a name that is also a word ("hòa bình") must still read as a place
            return shifted
    return None


def shifted_items(items: list[GoldItem], texts: list[str], places: bool) -> list[GoldItem]:
    """Unanswerable questions made from the answerable `items`: their year moved to one that `texts` (the index's
    documents) never write, and when `places`, their province replaced by one the texts never name. Each keeps its
    source's document (its CV group); its condition is its tag, "shifted_year" or "shifted_place"."""
    years, named = mentioned_years(texts), mentioned_places(texts) if places else set()
    out = []
    for item in items:
        if not item.answerable:
            continue
        for kind, shifted in (("year", shift_year(item.question, years)),
                              ("place", shift_place(item.question, named) if places else None)):
            if shifted is not None:
                out.append(GoldItem(f"{item.id}~{kind}", shifted, (), item.doc, item.type, False, (f"shifted_{kind}",)))
    return out


def shifted_records(sets: list[QuestionSet], places: bool, vectors: bool):
    """`records` of the questions `shifted_items` makes of each set's answerable ones, asked of the same index
    (their document stays in). Call it after the sets' own records: a set made here caches its own vectors."""
    from types import SimpleNamespace

    for qs in sets:
        texts = [doc.text for doc in qs.retriever.snapshot.documents.values()]
        made = shifted_items(qs.items, texts, places=places and qs.name != "viquad")
        print(f"{qs.name}: {len(made)} shifted questions", file=sys.stderr)
        for condition in ("shifted_year", "shifted_place"):
            mine = [i for i in made if i.tags == (condition,)]
            if mine:
                shifted = QuestionSet(qs.name, SimpleNamespace(_retriever=qs.retriever), mine, qs.group,
                                      CACHE / f"qvec-shifted-{qs.name}.npz" if vectors else None)
                yield from records(shifted, qs.name == "viquad", condition)


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def write_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")


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
    """The lowest threshold at which at most `false_answers` of the unanswerable rows get an answer: the sets' own
    and those made by taking the document out. The shifted questions stay out of this count (the place and year
    rules withhold nearly all of them, so counting them would loosen the threshold for the others)."""
    unanswerable = np.sort([pi for pi, r in zip(p, rows) if not r["answerable"]
                            and not r.get("condition", "").startswith("shifted_")])[::-1]
    allowed = int(np.floor(false_answers * len(unanswerable)))
    return float(unanswerable[allowed]) + 1e-6 if allowed < len(unanswerable) else 0.0


def report(rows: list[dict], answered: np.ndarray) -> dict:
    """Per set: answerable questions answered right and wrongly withheld; unanswerable ones withheld (the sets'
    own, those made by taking the document out, and those made by moving the year or the province: with how many of
    these the rules let through to the model)."""
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
        for kind in ("year", "place"):  # and how many of them the place and year rules left to the model
            condition = f"shifted_{kind}"
            withheld = share(lambda r: r["condition"] == condition, lambda i: not answered[i])
            if withheld:
                out[name][f"{kind}_shifted_withheld"] = withheld
                out[name][f"{kind}_shifted_reach_model"] = sum(r["set"] == name and r["condition"] == condition
                                                               and r["picked"] for r in rows)
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
    ap.add_argument("--shifted", action=argparse.BooleanOptionalAction, default=False,
                    help="fit also on the unanswerable questions made by moving an answerable one's year or province "
                         "(shifted_items; they are reported either way)")
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

    shifted_file = args.records.with_name(args.records.stem + "-shifted.jsonl")
    sets = None

    def open_sets():
        return question_sets(args, lambda paths, index_dir: _open(paths, index_dir, args.lexical), corpus_index,
                             vectors=not args.lexical)

    if args.reuse and args.records.is_file():
        rows = read_rows(args.records)
        model_name = rows[0].pop("_model", None) if rows else None
    else:
        sets = open_sets()
        seeds = sets[0].retriever
        rows = [row for qs in sets for row in records(qs, qs.name == "viquad")]
        model_name = (seeds.snapshot.manifest.get("model") or {}).get("name") if seeds.mode == "dense" else None
        write_rows(args.records, [{**r, "_model": model_name} if i == 0 else r for i, r in enumerate(rows)])
        print(f"collected {len(rows)} rows: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    # the shifted questions are always collected and reported; `--shifted` also fits on them
    if args.reuse and sets is None and shifted_file.is_file():
        shifted = read_rows(shifted_file)
    else:
        shifted = list(shifted_records(sets or open_sets(), places=True, vectors=not args.lexical))
        write_rows(shifted_file, shifted)
        print(f"collected {len(shifted)} shifted rows: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    fold_of_group = folds_of([r["group"] for r in rows], args.folds)  # the same folds with or without them
    rows += shifted
    used = [args.shifted or not r["condition"].startswith("shifted_") for r in rows]
    fold = np.array([fold_of_group[r["group"]] for r in rows])
    p = np.zeros(len(rows))
    thresholds = []
    for f in range(args.folds):
        train = [r for r, fi, u in zip(rows, fold, used) if fi != f and u]
        model = fit(train)
        thresholds.append(threshold_for(probabilities(model, train), train, args.false_answers))
        mine = np.flatnonzero(fold == f)
        p[mine] = probabilities(model, [rows[i] for i in mine])
    answered_cv = p >= np.array([thresholds[f] for f in fold])
    answered_rule = np.array([not r["rule_abstained"] for r in rows])
    rule_rows = [{**r, "right": r["rule_right"]} for r in rows]

    fitted_on = [r for r, u in zip(rows, used) if u]
    model = fit(fitted_on)
    threshold = threshold_for(probabilities(model, fitted_on), fitted_on, args.false_answers)
    picked = np.array(used) & (p >= 0)
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
        "rows": len(fitted_on), "unanswerable": int(sum(not r["answerable"] for r in fitted_on)),
        "shifted": int(sum(r["condition"].startswith("shifted_") for r in fitted_on)), "folds": args.folds,
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
