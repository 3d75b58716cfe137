"""Fit the answer scorer (rag/data/answer_scorer.json): a logistic regression over candidate sentences.

    python eval/train_answerer.py [--squad dev_ViQuAD.json] [--squad-index DIR] [--seeds-index DIR] [--write]

Data: every sentence of the top `k` hits the product retrieves (`Answerer.candidates`) for each
question of UIT-ViQuAD dev (`--squad`, its passages indexed in `--squad-index`, built with the default
model if missing), of eval/gold.jsonl and of eval/heldout.jsonl (the seeds, `--seeds-index`). A
sentence is positive when it holds a gold answer (`evaluation.contains_answer`); every sentence of an
unanswerable question is negative. Cross-validation: 5 folds grouped by document (a ViQuAD article,
a seed document; the unanswerable seed questions are one group), so no figure comes from a model
fitted on the same document. Reported per set, out of fold, through the real answerer (its span
choice and hard abstention rules included): answer_text_contains, F1, abstention accuracy…

The abstention threshold is the highest probability at which, on the out-of-fold answers, at most
`--max-lost` of the answers whose sentence was right would be withheld, so it only removes answers
that are mostly wrong; for the per-fold figures it is chosen on the other folds' answers only.
The final model is fitted on everything and written with its feature names, the threshold and the
figures. Deterministic: same data, same file (lbfgs, no sampling, rounded weights).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag import RAG  # noqa: E402
from rag.answer import AnswerConfig, Answerer  # noqa: E402
from rag.answer_scorer import FEATURES, TYPED, WEIGHTS_FILE, AnswerScorer  # noqa: E402
from rag.evaluation import GoldItem, Prediction, answer_metrics, contains_answer, load_gold, load_squad  # noqa: E402
from rag.query import analyse  # noqa: E402

SQUAD = Path("/work/shared/benchdata/uit-viquad-1.0/dev_ViQuAD.json")
CACHE = ROOT / ".cache" / "train_answerer"  # question vectors (gitignored)
K = 6  # passages the answerer reads (AnswerConfig.k)
C = 1.0


def fit(X: np.ndarray, y: np.ndarray, C: float = C, weight: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Weights and bias of an L2 logistic regression (sklearn, lbfgs: deterministic)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, max_iter=2000)
    model.fit(X, y, sample_weight=weight)
    return model.coef_[0].astype(float), float(model.intercept_[0])


def fit_pairwise(X: np.ndarray, y: np.ndarray, question: np.ndarray, C: float = C,
                 weight: np.ndarray | None = None, negatives: int = 30) -> tuple[np.ndarray, float]:
    """Weights that rank a question's sentences holding the answer above those that do not: a logistic
    regression without intercept on the differences (positive − negative) of the same question's
    candidates, each pair once each way; per question, the `negatives` with the highest hand score.
    The logit's level is left to the calibration (bias 0)."""
    from sklearn.linear_model import LogisticRegression

    hand = X @ np.array(AnswerScorer.hand().weights)
    diffs, pair_w = [], []
    order = np.lexsort((-hand, question))
    bounds = np.flatnonzero(np.diff(question[order])) + 1
    for idx in np.split(order, bounds):
        pos, neg = idx[y[idx] == 1], idx[y[idx] == 0][:negatives]
        if not len(pos) or not len(neg):
            continue
        d = (X[pos][:, None, :] - X[neg][None, :, :]).reshape(-1, X.shape[1])
        diffs.append(d)
        pair_w.append(np.full(len(d), (1.0 if weight is None else weight[pos[0]]) / len(d)))
    D = np.concatenate(diffs)
    W = np.concatenate(pair_w)
    model = LogisticRegression(C=C, max_iter=5000, fit_intercept=False)
    model.fit(np.r_[D, -D], np.r_[np.ones(len(D)), np.zeros(len(D))], sample_weight=np.r_[W, W])
    return model.coef_[0].astype(float), 0.0


DENSE_GRID = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0)


def fit_hand_dense(X: np.ndarray, y: np.ndarray, question: np.ndarray, report: np.ndarray) -> tuple[float, float]:
    """The weights of sent_dense_gap added to the hand weights, for open and for typed questions: the grid value
    putting a sentence holding the answer first for the most questions of that kind (the smallest of equals).
    Open questions: all sets pooled. Typed questions: the report questions only (`report`, the seeds' sets), the
    product's kind of document: pooled, ViQuAD's typed questions (868 against 187) choose 6–12, which takes the
    seeds' typed top-1 from 0.902 to 0.864 (cross-validated)."""
    typed = X[:, FEATURES.index(TYPED)] > 0
    out = []
    for kind in (~typed, typed & report):
        best, best_w = -1, 0.0
        for w in DENSE_GRID:
            hits = _top1_hits(X[kind] @ np.array(AnswerScorer.hand(w).weights), y[kind], question[kind])
            if hits > best:
                best, best_w = hits, w
        out.append(best_w)
    return out[0], out[1]


def _top1_hits(scores: np.ndarray, y: np.ndarray, question: np.ndarray) -> int:
    order = np.lexsort((-scores, question))  # per question, best first
    first = order[np.r_[True, question[order][1:] != question[order][:-1]]]
    return int(y[first].sum())


def scorer_from(weights: np.ndarray, bias: float, fill: np.ndarray, scale: float = 1.0,
                calibration=(1.0, 0.0, 0.0), threshold: float = 0.0) -> AnswerScorer:
    return AnswerScorer(tuple(round(float(w), 6) for w in weights), round(bias, 6),
                        tuple(round(float(f), 6) for f in fill), round(threshold, 4), learned=True,
                        scale=round(scale, 6), calibration=tuple(round(float(v), 6) for v in calibration))


def scale_of(X: np.ndarray, weights: np.ndarray, bias: float) -> float:
    """The hand score's spread over the learned logit's, on the same candidates: the span bonuses the
    answerer adds to a sentence's score (hand units) keep their weight against it."""
    hand = X @ np.array(AnswerScorer.hand().weights)
    return float(np.std(hand) / max(np.std(X @ weights + bias), 1e-9))


def calibrate(logit: np.ndarray, margin: np.ndarray, right: np.ndarray) -> tuple[float, float, float]:
    """Platt scaling of the chosen sentences' logits and margins on answers the model was not fitted on."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, max_iter=2000).fit(np.c_[logit, np.minimum(margin, 5.0)], right)
    return float(model.coef_[0][0]), float(model.coef_[0][1]), float(model.intercept_[0])


def fill_values(rows: list[dict]) -> np.ndarray:
    """Per feature, the mean of its known values (used when a feature is unknown, e.g. dense in a lexical index)."""
    out = []
    for name in FEATURES:
        known = [r[name] for r in rows if r.get(name) is not None]
        out.append(float(np.mean(known)) if known else 0.0)
    return np.array(out)


def matrix(rows: list[dict], fill: np.ndarray) -> np.ndarray:
    return np.array([[fill[i] if r.get(n) is None else r[n] for i, n in enumerate(FEATURES)] for r in rows], dtype=float)


class QuestionSet:
    """Questions of one set with the hits the product retrieves for them (computed once)."""

    def __init__(self, name: str, rag: RAG, items: list[GoldItem], group, cache: Path | None = None) -> None:
        self.name, self.items, self.group = name, items, group
        self.retriever = rag._retriever
        # every question vector kept (and cached on disk between runs): the model runs once per question
        vectors = _load_vectors(cache)
        embed = self.retriever._embed

        def vector(text: str) -> np.ndarray:
            if text not in vectors:
                vectors[text] = embed(text)
            return vectors[text]

        self.retriever._query_vector = vector
        self.queries = [analyse(i.question) for i in items]
        self.hits = [self.retriever.search(q, K) for q in self.queries]
        if cache is not None and self.retriever.embedder is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, texts=np.array(list(vectors), dtype=object), vectors=np.array(list(vectors.values())))

    def candidates(self, scorer: AnswerScorer) -> list[tuple[int, dict, int]]:
        """(item index, features, label) of every candidate sentence."""
        answerer = Answerer(self.retriever, scorer=scorer)
        out = []
        for n, (item, query, hits) in enumerate(zip(self.items, self.queries, self.hits)):
            for sent in answerer.candidates(query, hits):
                label = int(item.answerable and contains_answer(sent.text, item.answers))
                out.append((n, sent.features, label))
        return out

    def answer(self, indices, scorer: AnswerScorer, rank_by: str = "hand") -> dict[int, tuple]:
        """The real answerer's output for the items, with this scorer:
        {index: (Prediction, chosen sentence's logit, its margin over the best other)}."""
        answerer = Answerer(self.retriever, AnswerConfig(rank_by=rank_by), scorer=scorer)
        out = {}
        for n in indices:
            item, query, hits = self.items[n], self.queries[n], self.hits[n]
            sentences = answerer.candidates(query, hits)
            pick, _ = answerer.pick(query, hits, sentences)
            chosen = pick[0] if pick else (sentences[0] if sentences else None)
            other = max((s.logit for s in sentences if s is not chosen), default=None)
            logit = chosen.logit if chosen else -10.0
            out[n] = (prediction(item, answerer._answer(query, hits)), logit,
                      (logit - other) if other is not None else 5.0)
        return out


def data_arguments(ap: argparse.ArgumentParser) -> None:
    """The options naming the question sets and their indexes, shared by the scripts that read them."""
    ap.add_argument("--squad", type=Path, default=SQUAD)
    ap.add_argument("--squad-index", type=Path, default=ROOT / ".cache" / "viquad-dev-index",
                    help="the ViQuAD passages' index (eval/fit_retrieval.py's; built or completed here when needed)")
    ap.add_argument("--seeds-index", type=Path, default=ROOT / ".cache" / "seeds-dense")
    ap.add_argument("--limit", type=int, default=0, help="only the first N ViQuAD questions")


def question_sets(args, opener=None, corpus_index: Path | None = None, vectors: bool = True) -> list[QuestionSet]:
    """The seeds' gold and held-out sets on `args.seeds_index`, and ViQuAD dev (when `args.squad` exists) on
    `args.squad_index`, each opened by `opener(paths, index_dir)` (default: `open_index`); groups: a seed
    document, a ViQuAD article. `corpus_index` is the index the ViQuAD passages' text files sit beside
    (default: `args.squad_index`); `vectors`: cache the question vectors on disk."""
    opener = opener or open_index
    seeds = opener([ROOT / "seeds"], args.seeds_index)
    sets = [QuestionSet(name, seeds, load_gold(ROOT / "eval" / f"{name}.jsonl"), lambda i: f"seed:{i.doc or 'none'}",
                        CACHE / f"qvec-{name}.npz" if vectors else None) for name in ("gold", "heldout")]
    if args.squad.is_file():
        _, items = load_squad(args.squad)
        items = items[: args.limit] if args.limit else items
        index = opener([squad_corpus(args.squad, corpus_index or args.squad_index)], args.squad_index)
        sets.append(QuestionSet("viquad", index, items, lambda i: f"viquad:{i.doc.split('_')[0]}",
                                CACHE / "qvec-viquad.npz" if vectors else None))
    return sets


def prediction(item: GoldItem, answer) -> Prediction:
    """The evaluation's record of an `Answer` to `item` (no latency)."""
    return Prediction(item.id, None if answer.abstained else answer.answer, answer.answer_text, answer.abstained,
                      tuple(dict.fromkeys(c.doc_id for c in answer.citations)), (), 0.0, 0.0)


def open_index(paths: list[Path], index_dir: Path) -> RAG:
    """The index of `paths` in `index_dir`, built with the default model when missing, and given its
    sentences' vectors (an incremental build: the chunks' vectors are kept) when it has none."""
    if (index_dir / "CURRENT").exists():
        rag = RAG.open(index_dir)
        if rag.mode != "dense" or getattr(rag._retriever.snapshot, "sentences", 1) is not None:
            return rag
        print(f"{index_dir}: adding the sentences' vectors", file=sys.stderr)
    RAG.build(paths, index_dir, progress=True)
    return RAG.open(index_dir)


def squad_corpus(squad: Path, index_dir: Path) -> Path:
    """The ViQuAD passages as text files beside the index (eval/fit_retrieval.py's layout)."""
    corpus = index_dir.parent / f"{index_dir.name}-corpus"
    if not corpus.is_dir():
        passages, _ = load_squad(squad)
        corpus.mkdir(parents=True)
        for pid, text in passages.items():
            (corpus / f"{pid}.txt").write_text(text, "utf-8")
    return corpus


def _load_vectors(cache: Path | None) -> dict[str, np.ndarray]:
    if cache is None or not cache.is_file():
        return {}
    data = np.load(cache, allow_pickle=True)
    return dict(zip(data["texts"].tolist(), data["vectors"]))


def ranking_report(sets, rows, y, owner, scores) -> dict:
    """Per set: the share of questions whose best-scored candidate sentence holds the answer (no span
    choice, no abstention), and the share where any candidate does (the ceiling)."""
    best: dict[tuple, tuple] = {}
    typed = {o: r["typed_question"] for o, r in zip(owner, rows)}
    for o, sc, label in zip(owner, scores, y):
        if o not in best or sc > best[o][0]:
            best[o] = (sc, label)
    out = {}
    for s, qs in enumerate(sets):
        mine = [(n, best[(s, n)][1]) for n, it in enumerate(qs.items) if it.answerable and (s, n) in best]
        anyp = {o for o, label in zip(owner, y) if label and o[0] == s}
        n_ans = sum(it.answerable for it in qs.items)
        out[qs.name] = {"top1": round(sum(label for _, label in mine) / n_ans, 3), "ceiling": round(len(anyp) / n_ans, 3)}
        for kind in (0.0, 1.0):  # open and typed questions
            of = [label for n, label in mine if typed.get((s, n)) == kind]
            out[qs.name]["typed" if kind else "open"] = [round(sum(of) / max(len(of), 1), 3), len(of)]
    return out


def folds_of(groups: list[str], n_folds: int) -> dict[str, int]:
    """Groups dealt to folds by size, largest first (GroupKFold's rule, ties by name: deterministic)."""
    sizes: dict[str, int] = {}
    for g in groups:
        sizes[g] = sizes.get(g, 0) + 1
    load = [0] * n_folds
    out = {}
    for g in sorted(sizes, key=lambda g: (-sizes[g], g)):
        f = min(range(n_folds), key=lambda i: (load[i], i))
        out[g] = f
        load[f] += sizes[g]
    return out


def choose_threshold(conf: np.ndarray, right: np.ndarray, max_lost: float) -> float:
    """The highest threshold that withholds at most `max_lost` of the right answers."""
    if not right.any():
        return 0.0
    ok = np.sort(conf[right])
    return float(ok[int(np.floor(max_lost * len(ok)))]) if max_lost > 0 else float(ok[0])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data_arguments(ap)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--max-lost", type=float, default=0.005, help="share of right answers the threshold may withhold")
    ap.add_argument("--seed-weight", type=float, default=1.0, help="sample weight of the seed questions' candidates")
    ap.add_argument("--rank-by", choices=("hand", "hand+cosine", "learned"), default="hand+cosine",
                    help="what orders the sentences in the cross-validated answers (AnswerConfig.rank_by)")
    ap.add_argument("--objective", choices=("pairwise", "pointwise"), default="pairwise")
    ap.add_argument("--ranking-only", action="store_true", help="report the sentence ranking only (fast)")
    ap.add_argument("--write", action="store_true", help=f"write {WEIGHTS_FILE.relative_to(ROOT)}")
    ap.add_argument("--out", type=Path, default=WEIGHTS_FILE)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()

    sets = question_sets(args)
    print(f"retrieved: {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    hand = AnswerScorer.hand()
    rows, labels, owner = [], [], []  # owner: (set index, item index)
    for s, qs in enumerate(sets):
        for n, feats, label in qs.candidates(hand):
            rows.append(feats)
            labels.append(label)
            owner.append((s, n))
    y = np.array(labels)
    groups = {(s, n): qs.group(it) for s, qs in enumerate(sets) for n, it in enumerate(qs.items)}
    fold_of_group = folds_of(list(groups.values()), args.folds)
    fold = np.array([fold_of_group[groups[o]] for o in owner])
    print(f"{len(rows)} candidates, {int(y.sum())} positive, {len(groups)} questions", file=sys.stderr)

    sw = np.array([args.seed_weight if sets[o[0]].name != "viquad" else 1.0 for o in owner])
    X_all = matrix(rows, fill_values(rows))

    qid = np.array([s * 100_000 + n for s, n in owner])

    def learn(X, labels, questions, weight):
        if args.objective == "pairwise":
            return fit_pairwise(X, labels, questions, weight=weight)
        return fit(X, labels, weight=weight)

    X_hand = matrix(rows, np.zeros(len(FEATURES)))
    is_report = np.array([sets[o[0]].name != "viquad" for o in owner])
    dense_w = {f: fit_hand_dense(X_hand[fold != f], y[fold != f], qid[fold != f], is_report[fold != f])
               for f in range(args.folds)}
    hybrid_scores = np.zeros(len(rows))
    for f, w in dense_w.items():
        hybrid_scores[fold == f] = X_hand[fold == f] @ np.array(AnswerScorer.hand(*w).weights)
    print(f"hand + cosine weight per fold: {dense_w}", file=sys.stderr)
    oof_scores = np.zeros(len(rows))
    for f in range(args.folds):
        train = fold != f
        fill = fill_values([r for r, t in zip(rows, train) if t])
        w, b = learn(matrix([r for r, t in zip(rows, train) if t], fill), y[train], qid[train], sw[train])
        oof_scores[~train] = matrix([r for r, t in zip(rows, train) if not t], fill) @ w + b
    ranking = {"hand": ranking_report(sets, rows, y, owner, X_hand @ np.array(hand.weights)),
               "hand_dense_cv": ranking_report(sets, rows, y, owner, hybrid_scores),
               "learned_cv": ranking_report(sets, rows, y, owner, oof_scores)}
    print(json.dumps(ranking), file=sys.stderr)
    if args.ranking_only:
        return 0

    # out-of-fold answers through the real answerer (no threshold yet)
    oof: dict[tuple[int, int], tuple] = {}
    for f in range(args.folds):
        train = fold != f
        fill = fill_values([r for r, t in zip(rows, train) if t])
        X = matrix([r for r, t in zip(rows, train) if t], fill)
        w, b = learn(X, y[train], qid[train], sw[train])
        scorer = replace(scorer_from(w, b, fill, scale_of(X, w, b)), hand_dense=dense_w[f][0],
                         hand_dense_typed=dense_w[f][1])
        for s, qs in enumerate(sets):
            mine = [n for n in range(len(qs.items)) if fold_of_group[groups[(s, n)]] == f]
            oof.update({(s, n): out for n, out in qs.answer(mine, scorer, args.rank_by).items()})

    def right(key) -> bool:
        s, n = key
        item, pred = sets[s].items[n], oof[key][0]
        return item.answerable and not pred.abstained and contains_answer(pred.answer_text, item.answers)

    keys = sorted(oof)
    logit = np.array([oof[k][1] for k in keys])
    margin = np.array([oof[k][2] for k in keys])
    ok = np.array([right(k) for k in keys])
    qfold = np.array([fold_of_group[groups[k]] for k in keys])
    answered = np.array([not oof[k][0].abstained for k in keys])
    conf = np.zeros(len(keys))
    thresholds = {}
    for f in range(args.folds):  # each fold's calibration and threshold from the other folds' answers
        other, mine = answered & (qfold != f), qfold == f
        a, m, b = calibrate(logit[other], margin[other], ok[other])
        sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
        conf[mine] = sig(a * logit[mine] + m * np.minimum(margin[mine], 5.0) + b)
        thresholds[f] = choose_threshold(sig(a * logit[other] + m * np.minimum(margin[other], 5.0) + b),
                                         ok[other], args.max_lost)
    calibration = calibrate(logit[answered], margin[answered], ok[answered])
    a, m, b = calibration
    threshold = choose_threshold(1 / (1 + np.exp(-(a * logit[answered] + m * np.minimum(margin[answered], 5.0) + b))),
                                 ok[answered], args.max_lost)
    oof = {k: (oof[k][0], c) for k, c in zip(keys, conf)}
    CACHE.mkdir(parents=True, exist_ok=True)  # the out-of-fold answers, to study the threshold
    np.savez(CACHE / f"oof-{args.rank_by}.npz", set=np.array([sets[k[0]].name for k in keys]), conf=conf, ok=ok,
             answered=answered, answerable=np.array([sets[k[0]].items[k[1]].answerable for k in keys]))

    report = {}
    for s, qs in enumerate(sets):
        items, before, after = qs.items, [], []
        for n in range(len(items)):
            pred, c = oof[(s, n)]
            before.append(pred)
            if not pred.abstained and c < thresholds[fold_of_group[groups[(s, n)]]]:
                pred = Prediction(pred.id, None, "", True, (), (), 0.0, 0.0)
            after.append(pred)
        report[qs.name] = {
            "questions": len(items),
            "cv_no_threshold": _rounded(answer_metrics(items, before)),
            "cv": _rounded(answer_metrics(items, after)),
        }
    hand_report = {}
    for s, qs in enumerate(sets):
        preds = [out[0] for out in qs.answer(range(len(qs.items)), hand).values()]
        hand_report[qs.name] = _rounded(answer_metrics(qs.items, preds))

    fill = fill_values(rows)
    w, b = learn(X_all, y, qid, sw)
    scale = scale_of(X_all, w, b)
    # calibration of the out-of-fold confidences of the answers given
    bins = []
    for lo in np.arange(0, 1, 0.2):
        m = answered & (conf >= lo) & (conf < lo + 0.2 + (lo >= 0.8))
        if m.any():
            bins.append({"confidence": f"{lo:.1f}-{lo + 0.2:.1f}", "answers": int(m.sum()),
                         "mean_confidence": round(float(conf[m].mean()), 3), "right": round(float(ok[m].mean()), 3)})
    data = {
        "version": 1,
        "model": (f"{args.objective} logistic regression (sklearn, L2, C={C:g}) over candidate sentences "
                  "(pairwise: a question's sentences holding a gold answer against those that do not); "
                  "confidence: Platt scaling of the chosen sentence's logit and margin on out-of-fold answers"),
        "features": list(FEATURES),
        "weights": {n: round(float(v), 6) for n, v in zip(FEATURES, w)},
        "bias": round(b, 6),
        **dict(zip(("hand_dense", "hand_dense_typed"), fit_hand_dense(X_hand, y, qid, is_report))),
        "hand_dense_rule": "the weights of sent_dense_gap added to the hand weights (the default ranking), for open "
                           f"and for typed questions: the grid value {DENSE_GRID} putting a sentence with the answer "
                           "first for the most questions of that kind (typed: the seeds' report questions only)",
        "fill": {n: round(float(v), 6) for n, v in zip(FEATURES, fill)},
        "scale": round(scale, 6),
        "calibration": dict(zip(("logit", "margin", "bias"), (round(v, 6) for v in calibration))),
        "threshold": round(threshold, 4),
        "threshold_rule": f"highest confidence withholding at most {args.max_lost:.1%} of the right answers (out of fold)",
        "trained_on": {qs.name: len(qs.items) for qs in sets},
        "candidates": len(rows), "positives": int(y.sum()), "folds": args.folds,
        "seed_weight": args.seed_weight, "rank_by": args.rank_by, "sentence_ranking": ranking, "cv": report, "hand_weights": hand_report, "reliability": bins,
    }
    text = json.dumps(data, ensure_ascii=False, indent=1) + "\n"
    if args.write:
        args.out.write_text(text, "utf-8")
    print(text)
    print(f"done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


def _rounded(metrics: dict) -> dict:
    return {k: (None if v is None else round(v, 3)) for k, v in metrics.items()}


if __name__ == "__main__":
    raise SystemExit(main())
