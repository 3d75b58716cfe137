"""Evaluation of the real pipeline: retrieval, answers, citations, abstentions and latency.

    rag eval --gold eval/gold.jsonl [--baselines] [--report DIR] [--json]
    rag eval --squad dev_ViQuAD.json [--limit N] [--baselines] [--report DIR] [--json]

Definitions (rates are fractions in [0, 1]; "answerable" questions have a gold document):

- retrieval (answerable questions): the ranking is the unique doc_ids of `rag.search(question, k)`
  in hit order; the one relevant document is the question's `doc`. recall@k, mrr@10 and ndcg@10
  come from ranx; with one relevant document recall@k is "the gold document is in the top k".
- answer_accuracy (answerable): not abstained, the normalised `answer` contains a normalised gold
  answer as a run of whole tokens, and a citation points to `doc`.
- citation_accuracy (answerable): some citation points to `doc`; an abstention cites nothing and
  counts as a miss. citation_accuracy_answered: the same over the answered questions only.
- abstention_accuracy (unanswerable): abstained. false_abstention_rate (answerable): abstained.
- exact_match, f1 (answerable): SQuAD-style, best over the gold answers; an abstention predicts "".
- answer_text_contains (answerable): the normalised `answer_text` contains a gold answer.
- latency: wall time of one `rag.ask` call.

Normalisation (`normalize_answer`): NFC, modern tone placement, lowercase, punctuation and symbols
dropped except "." "," "/" between digits ("2,27", "17.034", "31/7") and "%" (kept as a token),
whitespace collapsed. "2,27%" and "2,27 %" are equal; "2,27" and "2.27" are not.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import tempfile
import time
import unicodedata
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import IndexCorrupt, IndexNotFound, UsageError
from .text import fold, modern_tone, nfc

RETRIEVAL_KEYS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")
ANSWER_KEYS = (
    "answer_accuracy", "citation_accuracy", "citation_accuracy_answered", "abstention_accuracy",
    "false_abstention_rate", "exact_match", "f1", "answer_text_contains",
)
GOLD_KEYS = ("id", "question", "answers", "doc", "evidence", "type", "answerable")
CURVE = range(1, 11)
SEEDS_DIRS = (Path("seeds"), Path(__file__).resolve().parents[1] / "seeds")


# ---------------------------------------------------------------- questions


@dataclass(frozen=True)
class GoldItem:
    """One question with its gold answers and the document that holds them (None when unanswerable)."""

    id: str
    question: str
    answers: tuple[str, ...]
    doc: str | None
    type: str = "other"
    answerable: bool = True
    tags: tuple[str, ...] = ()


def load_gold(path: Path) -> list[GoldItem]:
    """Read and check a gold JSONL file; a bad line raises UsageError naming its number."""
    items: list[GoldItem] = []
    seen: set[str] = set()
    for lineno, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        where = f"Line {lineno} of {path}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{where} is not valid JSON ({exc.msg}).") from None
        if not isinstance(row, dict):
            raise UsageError(f"{where} is not a JSON object.")
        missing = [k for k in GOLD_KEYS if k not in row]
        if missing:
            raise UsageError(f"{where} lacks the key{'s' if len(missing) > 1 else ''} {', '.join(missing)}.")
        item = _gold_item(row, where)
        if item.id in seen:
            raise UsageError(f"{where} repeats the id {item.id!r}.")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise UsageError(f"{path} holds no questions.")
    return items


def _gold_item(row: dict, where: str) -> GoldItem:
    question, answers, answerable, doc = row["question"], row["answers"], row["answerable"], row["doc"]
    if not isinstance(question, str) or not question.strip():
        raise UsageError(f'{where} needs a non-empty string "question".')
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise UsageError(f'{where} needs "answers" to be a list of strings.')
    if not isinstance(answerable, bool):
        raise UsageError(f'{where} needs "answerable" to be true or false.')
    if answerable and (not isinstance(doc, str) or not doc or not answers):
        raise UsageError(f'{where} is answerable, so it needs a "doc" id and at least one answer.')
    tags = row.get("tags") or []
    return GoldItem(
        id=str(row["id"]), question=question, answers=tuple(answers), doc=doc if answerable else None,
        type=str(row["type"] or "other"), answerable=answerable,
        tags=tuple(map(str, tags)) if isinstance(tags, list) else (),
    )


def load_squad(path: Path) -> tuple[dict[str, str], list[GoldItem]]:
    """Passages keyed by a stable id ("p003_012": article 3, paragraph 12) and their questions."""
    try:
        data = json.loads(_read_text(path))["data"]
        passages: dict[str, str] = {}
        items: list[GoldItem] = []
        for a, article in enumerate(data):
            for p, para in enumerate(article["paragraphs"]):
                pid = f"p{a:03d}_{p:03d}"
                passages[pid] = para["context"]
                for qa in para["qas"]:
                    answers = tuple(x["text"] for x in qa.get("answers", []))
                    answerable = bool(answers) and not qa.get("is_impossible", False)
                    items.append(GoldItem(str(qa["id"]), qa["question"], answers, pid, "squad", answerable))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}).") from None
    except (KeyError, TypeError, IndexError):
        raise UsageError(f'{path} is not a SQuAD file ({{"data": [{{"paragraphs": [{{"context", "qas"}}]}}]}}).') from None
    if not items:
        raise UsageError(f"{path} holds no questions.")
    return passages, items


def _read_text(path: Path) -> str:
    try:
        return Path(path).read_text("utf-8")
    except OSError as exc:
        raise UsageError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text.") from None


# ---------------------------------------------------------------- answer metrics

_NUM_SEP = re.compile(r"(?<=\d)([.,/])(?=\d)")
_PROTECTED = {".": "\ue000", ",": "\ue001", "/": "\ue002"}


def normalize_answer(text: str | None) -> str:
    """Comparable form of an answer.

    >>> normalize_answer("  Tỷ lệ: 2,27%. ")
    'tỷ lệ 2,27 %'
    >>> normalize_answer("17.034 người (hoà)")
    '17.034 người hòa'
    """
    text = modern_tone(nfc(text or "")).lower()
    text = _NUM_SEP.sub(lambda m: _PROTECTED[m.group(1)], text).replace("%", " % ")
    text = "".join(" " if unicodedata.category(c)[0] in "PS" and c != "%" else c for c in text)
    for sep, mark in _PROTECTED.items():
        text = text.replace(mark, sep)
    return " ".join(text.split())


def exact_match(prediction: str | None, golds: Sequence[str]) -> float:
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in golds)) if golds else float(not pred)


def f1(prediction: str | None, golds: Sequence[str]) -> float:
    """Token F1, the best over the gold answers (SQuAD's definition, with `normalize_answer`)."""
    if not golds:
        return float(not normalize_answer(prediction))
    pred = normalize_answer(prediction).split()
    best = 0.0
    for gold in golds:
        ref = normalize_answer(gold).split()
        if not pred or not ref:
            best = max(best, float(pred == ref))
            continue
        same = sum((Counter(pred) & Counter(ref)).values())
        if same:
            precision, recall = same / len(pred), same / len(ref)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def contains_answer(text: str | None, golds: Sequence[str]) -> bool:
    """Some gold answer occurs in `text` as a run of whole normalised tokens."""
    tokens = normalize_answer(text).split()
    for gold in golds:
        ref = normalize_answer(gold).split()
        if ref and any(tokens[i:i + len(ref)] == ref for i in range(len(tokens) - len(ref) + 1)):
            return True
    return False


# ---------------------------------------------------------------- running the pipeline


@dataclass(frozen=True)
class Prediction:
    id: str
    answer: str | None
    answer_text: str
    abstained: bool
    cited_docs: tuple[str, ...]
    ranking: tuple[str, ...]  # unique doc ids of rag.search(question, k), in hit order
    latency_ms: float  # one rag.ask call
    search_ms: float

    def to_json(self) -> dict:
        return {"id": self.id, "answer": self.answer, "answer_text": self.answer_text, "abstained": self.abstained,
                "cited_docs": list(self.cited_docs), "ranking": list(self.ranking), "latency_ms": self.latency_ms}


def doc_ranking(doc_ids: Iterable[str], k: int = 10) -> list[str]:
    """Unique document ids in first-seen order, at most k."""
    return list(dict.fromkeys(doc_ids))[:k]


def predict(rag, items: Sequence[GoldItem], *, k: int = 10, progress: bool = False, desc: str = "") -> list[Prediction]:
    """Ask and search every question through the real pipeline."""
    from tqdm import tqdm

    out = []
    for item in tqdm(items, desc=desc or "questions", disable=not progress, file=sys.stderr, unit="q"):
        t0 = time.perf_counter()
        answer = rag.ask(item.question)
        t1 = time.perf_counter()
        hits = rag.search(item.question, k)
        t2 = time.perf_counter()
        out.append(Prediction(
            id=item.id, answer=None if answer.abstained else answer.answer, answer_text=answer.answer_text,
            abstained=answer.abstained, cited_docs=tuple(dict.fromkeys(c.doc_id for c in answer.citations)),
            ranking=tuple(doc_ranking((h.chunk.doc_id for h in hits), k)),
            latency_ms=round((t1 - t0) * 1000, 2), search_ms=round((t2 - t1) * 1000, 2),
        ))
    return out


# ---------------------------------------------------------------- scoring


def retrieval_metrics(items: Sequence[GoldItem], rankings: Sequence[Sequence[str]], *, curve: bool = False) -> dict:
    """recall@1/5/10, mrr@10, ndcg@10 (and recall@1..10 as "recall_curve") over the answerable items, by ranx."""
    pairs = [(i, r) for i, r in zip(items, rankings) if i.answerable]
    if not pairs:
        return {key: None for key in RETRIEVAL_KEYS}
    from ranx import Qrels, Run, evaluate

    qrels = Qrels({i.id: {i.doc: 1} for i, _ in pairs})
    run = Run({i.id: {d: 1.0 / (n + 1) for n, d in enumerate(r[:10])} for i, r in pairs})
    names = list(dict.fromkeys(list(RETRIEVAL_KEYS) + ([f"recall@{k}" for k in CURVE] if curve else [])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's type-safety notes
        scores = evaluate(qrels, run, names, make_comparable=True)
    out = {key: round(float(scores[key]), 4) for key in RETRIEVAL_KEYS}
    if curve:
        out["recall_curve"] = [round(float(scores[f"recall@{k}"]), 4) for k in CURVE]
    return out


@dataclass(frozen=True)
class Judgement:
    correct: bool  # answer_accuracy's test
    cites_doc: bool
    em: float
    f1: float
    text_contains: bool


def judge(item: GoldItem, pred: Prediction) -> Judgement:
    if not item.answerable:
        return Judgement(pred.abstained, False, float(pred.abstained), float(pred.abstained), False)
    cites = item.doc in pred.cited_docs
    answer = None if pred.abstained else pred.answer
    return Judgement(
        correct=answer is not None and contains_answer(answer, item.answers) and cites,
        cites_doc=cites, em=exact_match(answer, item.answers), f1=f1(answer, item.answers),
        text_contains=not pred.abstained and contains_answer(pred.answer_text, item.answers),
    )


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return round(sum(values) / len(values), 4) if values else None


def answer_metrics(items: Sequence[GoldItem], preds: Sequence[Prediction]) -> dict:
    rows = [(i, p, judge(i, p)) for i, p in zip(items, preds)]
    ans = [(p, j) for i, p, j in rows if i.answerable]
    answered = [j for p, j in ans if not p.abstained]
    return {
        "answer_accuracy": _mean(j.correct for _, j in ans),
        "citation_accuracy": _mean(j.cites_doc for _, j in ans),
        "citation_accuracy_answered": _mean(j.cites_doc for j in answered),
        "abstention_accuracy": _mean(p.abstained for i, p, _ in rows if not i.answerable),
        "false_abstention_rate": _mean(p.abstained for p, _ in ans),
        "exact_match": _mean(j.em for _, j in ans),
        "f1": _mean(j.f1 for _, j in ans),
        "answer_text_contains": _mean(j.text_contains for _, j in ans),
    }


def summarize(items: Sequence[GoldItem], preds: Sequence[Prediction]) -> dict:
    """All metrics of one run, flat, plus the recall curve and latency percentiles."""
    import numpy as np

    latency = np.array([p.latency_ms for p in preds] or [0.0])
    search = np.array([p.search_ms for p in preds] or [0.0])
    return {
        "n_questions": len(items), "n_answerable": sum(i.answerable for i in items),
        **retrieval_metrics(items, [p.ranking for p in preds], curve=True),
        **answer_metrics(items, preds),
        "latency_p50_ms": round(float(np.percentile(latency, 50)), 2),
        "latency_p95_ms": round(float(np.percentile(latency, 95)), 2),
        "search_p50_ms": round(float(np.percentile(search, 50)), 2),
    }


def breakdown(items: Sequence[GoldItem], preds: Sequence[Prediction], key) -> dict[str, dict]:
    """Metrics per group (`key(item)` gives one group name or a list of them)."""
    groups: dict[str, list[int]] = {}
    for n, item in enumerate(items):
        names = key(item)
        for name in [names] if isinstance(names, str) else names:
            groups.setdefault(name, []).append(n)
    out = {}
    for name in sorted(groups, key=lambda g: (-len(groups[g]), g)):
        sub_i = [items[n] for n in groups[name]]
        sub_p = [preds[n] for n in groups[name]]
        out[name] = {"count": len(sub_i), **answer_metrics(sub_i, sub_p), **retrieval_metrics(sub_i, [p.ranking for p in sub_p])}
    return out


def failures(items: Sequence[GoldItem], preds: Sequence[Prediction]) -> list[dict]:
    """The questions answer_accuracy (or abstention_accuracy) counts as wrong, with what came back."""
    out = []
    for item, pred in zip(items, preds):
        j = judge(item, pred)
        if j.correct:
            continue
        if not item.answerable:
            reason = "answered an unanswerable question"
        elif pred.abstained:
            reason = "abstained"
        elif not contains_answer(pred.answer, item.answers):
            reason = "wrong answer" if j.cites_doc else "wrong answer and wrong document"
        else:
            reason = "right answer, wrong document cited"
        rank = pred.ranking.index(item.doc) + 1 if item.doc in pred.ranking else None
        out.append({
            "id": item.id, "question": item.question, "type": item.type, "expected": list(item.answers),
            "doc": item.doc, "got": pred.answer, "answer_text": pred.answer_text, "cited_docs": list(pred.cited_docs),
            "abstained": pred.abstained, "doc_rank": rank, "reason": reason,
        })
    return out


# ---------------------------------------------------------------- the two evaluations


@dataclass(frozen=True)
class EvalOptions:
    k: int = 10
    limit: int = 0
    model: str | None = None  # for indexes built here
    baselines: bool = False
    progress: bool = True


def evaluate_gold(rag, items: Sequence[GoldItem], options: EvalOptions = EvalOptions()) -> dict:
    """Run a gold file through `rag` (an opened RAG) and score it."""
    t0 = time.perf_counter()
    preds = predict(rag, items, k=options.k, progress=options.progress, desc="gold")
    result = {
        "kind": "gold", "mode": rag.mode, "model": rag.model, "index_dir": str(rag.index_dir),
        "n_unanswerable": sum(not i.answerable for i in items),
        **summarize(items, preds),
        "per_type": breakdown(items, preds, lambda i: i.type),
        "per_tag": breakdown(items, preds, lambda i: list(i.tags)),
        "latencies_ms": [p.latency_ms for p in preds],
        "failures": failures(items, preds),
        "predictions": [p.to_json() for p in preds],
    }
    if options.baselines:
        corpus = {doc_id: doc.text for doc_id, doc in rag.documents.items()}
        result["baselines"] = _baselines(corpus, {"": items}, rag.model, options)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def evaluate_squad(path: Path, options: EvalOptions = EvalOptions()) -> dict:
    """Index a SQuAD file's passages in a temporary index and score its questions, as written and unaccented."""
    from .api import RAG
    from .query import analyse

    t0 = time.perf_counter()
    passages, items = load_squad(path)
    if options.limit:
        items = items[: options.limit]
    items = [replace(i, type=analyse(i.question).expects or "other") for i in items]
    unaccented = [replace(i, question=fold(i.question)) for i in items]
    with tempfile.TemporaryDirectory(prefix="rag-eval-") as tmp:
        corpus_dir = Path(tmp) / "corpus"
        corpus_dir.mkdir()
        for pid, text in passages.items():
            (corpus_dir / f"{pid}.txt").write_text(text, "utf-8")
        t_build = time.perf_counter()
        rag, report = RAG.build([corpus_dir], Path(tmp) / "index", model=options.model, progress=options.progress)
        build_s = time.perf_counter() - t_build
        preds = predict(rag, items, k=options.k, progress=options.progress, desc="squad")
        preds_u = predict(rag, unaccented, k=options.k, progress=options.progress, desc="squad, unaccented")
        fails = failures(items, preds)
        result = {
            "kind": "squad", "mode": rag.mode, "model": rag.model, "n_passages": len(passages),
            "n_chunks": rag.chunk_count, "index_seconds": round(build_s, 1),
            **summarize(items, preds),
            "per_type": breakdown(items, preds, lambda i: i.type),
            "unaccented": summarize(unaccented, preds_u),
            "latencies_ms": [p.latency_ms for p in preds],
            "n_failures": len(fails), "failures": fails[:200],
            "predictions": [p.to_json() for p in preds],
        }
        if options.baselines:
            corpus = {doc_id: doc.text for doc_id, doc in rag.documents.items()}
            result["baselines"] = _baselines(corpus, {"": items, "unaccented": unaccented}, rag.model, options)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def _baselines(corpus: dict[str, str], question_sets: dict[str, Sequence[GoldItem]], index_model, options) -> dict:
    """Each baseline's retrieval metrics on each question set ("" = as written)."""
    from .baselines import run_baselines

    runs = run_baselines(corpus, {name: [i.question for i in s] for name, s in question_sets.items()},
                         k=options.k, index_model=index_model, progress=options.progress)
    out = {}
    for system, run in runs.items():
        entry = {key: value for key, value in run.items() if key != "rankings"}
        for name, rankings in run.get("rankings", {}).items():
            metrics = retrieval_metrics(question_sets[name], rankings, curve=True)
            if name:
                entry[name] = metrics
            else:
                entry.update(metrics)
        out[system] = entry
    return out


def open_gold_index(items: Sequence[GoldItem], index_dir: Path | None, docs: Path | None, model: str | None,
                    stack: contextlib.ExitStack, progress: bool = True):
    """The index to evaluate on: `index_dir` when it holds the gold documents, else a temporary one.

    The temporary index is built from `docs`, or from seeds/ when that folder holds the documents.
    """
    from .api import RAG

    needed = {i.doc for i in items if i.answerable}
    if docs is None:
        try:
            rag = RAG.open(index_dir)
            missing = needed - set(rag.documents)
            if not missing:
                return rag
            why = f"the index in {rag.index_dir} lacks {len(missing)} of the gold file's {len(needed)} documents"
        except (IndexNotFound, IndexCorrupt) as exc:
            why = str(exc).rstrip(".")
        docs = next((d for d in SEEDS_DIRS if d.is_dir() and needed <= {p.stem for p in d.iterdir()}), None)
        if docs is None:
            raise UsageError(f"Cannot evaluate: {why}; index the documents with `rag index DIR` or pass --docs DIR.")
        print(f"Evaluating on a temporary index of {docs}/ ({why}).", file=sys.stderr)
    if not Path(docs).exists():
        raise UsageError(f"No such folder: {docs}.")
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rag-eval-")))
    rag, _ = RAG.build([docs], tmp / "index", model=model, progress=progress)
    missing = needed - set(rag.documents)
    if missing:
        raise UsageError(f"{docs} lacks {len(missing)} of the gold file's documents (e.g. {sorted(missing)[0]}).")
    return rag


# ---------------------------------------------------------------- the command


def run_eval(args) -> int:
    """`rag eval`: evaluate, print a table or one JSON object, write the report."""
    if not 1 <= args.k <= 1000:
        raise UsageError(f"--k must be between 1 and 1000, got {args.k}.")
    if args.limit < 0:
        raise UsageError(f"--limit must be 0 or more, got {args.limit}.")
    options = EvalOptions(k=args.k, limit=args.limit, model=args.model, baselines=args.baselines,
                          progress=not args.quiet)
    if args.squad:
        if args.docs:
            raise UsageError("--docs goes with --gold; a SQuAD file brings its own passages.")
        result = evaluate_squad(args.squad, options)
        result["source"] = str(args.squad)
    else:
        items = load_gold(args.gold)
        if args.limit:
            items = items[: args.limit]
        with contextlib.ExitStack() as stack:
            rag = open_gold_index(items, args.index_dir, args.docs, args.model, stack, options.progress)
            result = evaluate_gold(rag, items, options)
        result["source"] = str(args.gold)
    if args.report:
        write_report(result, args.report)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(render_markdown(result, max_failures=30))
        if args.report:
            print(f"Report: {args.report / 'report.md'}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- tables and plots

DEFINITIONS = """\
- **Retrieval** (answerable questions): the ranking is the unique documents of `rag.search(question, k=10)` in hit
  order (for a baseline, of its top 10 chunks); the relevant document is the question's `doc`. Computed with ranx;
  with one relevant document recall@k is the share of questions whose document is in the top k.
- **answer_accuracy** (answerable): not abstained, `answer` contains a gold answer (normalised, whole tokens) and a
  citation points to `doc`. **citation_accuracy** (answerable): some citation points to `doc` (abstentions count as
  misses); *citation_accuracy_answered* is the same over the answered questions only.
- **abstention_accuracy**: unanswerable questions abstained on. **false_abstention_rate**: answerable ones abstained on.
- **exact_match / f1** (answerable): SQuAD-style, best over gold answers; an abstention predicts "". Normalisation:
  NFC, modern tone placement, lowercase, punctuation dropped except `.` `,` `/` inside numbers and `%`, spaces
  collapsed. **answer_text_contains**: the shown sentence contains a gold answer.
- **latency**: wall time of one `rag.ask` call (retrieval + answer) on this machine."""


def _f(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _cell(text) -> str:
    text = "" if text is None else ", ".join(map(str, text)) if isinstance(text, list) else str(text)
    return " ".join(text.split()).replace("|", "\\|")


def _table(header: Sequence[str], rows: Iterable[Sequence]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(_f(v)) for v in row) + " |" for row in rows]
    return lines + [""]


def _systems(result: dict) -> list[tuple[str, dict]]:
    """(name, metrics) for the product and each baseline that ran."""
    systems = [("product (rag)", result)]
    for name, entry in (result.get("baselines") or {}).items():
        if "error" not in entry:
            systems.append((name, entry))
    return systems


def render_markdown(result: dict, *, max_failures: int | None = None, images: bool = False) -> str:
    squad = result["kind"] == "squad"
    out = [f"# Evaluation of {result.get('source', '')}", ""]
    extra = f", {result['n_unanswerable']} unanswerable" if not squad else f"; {result['n_passages']} passages indexed"
    out += [f"{result['n_questions']} questions ({result['n_answerable']} answerable{extra}); retrieval mode "
            f"**{result['mode']}** (model: {result['model'] or 'none'}); {result['seconds']} s in all.", ""]
    out += ["## Summary", ""]
    keys = [*RETRIEVAL_KEYS, *ANSWER_KEYS, "latency_p50_ms", "latency_p95_ms", "search_p50_ms"]
    if squad:
        out += _table(["metric", "questions as written", "diacritics stripped"],
                      [(k, result.get(k), result["unaccented"].get(k)) for k in keys])
    else:
        out += _table(["metric", "value"], [(k, result.get(k)) for k in keys])
    if result.get("baselines"):
        out += ["## Retrieval: product vs baselines", ""]
        header = ["system", "R@1", "R@5", "R@10", "MRR@10", "nDCG@10"]
        header += ["unaccented R@1", "unaccented R@10", "unaccented MRR@10"] if squad else []
        rows = []
        for name, m in _systems(result):
            row = [name, *(m.get(k) for k in RETRIEVAL_KEYS)]
            if squad:
                u = m.get("unaccented") or {}
                row += [u.get("recall@1"), u.get("recall@10"), u.get("mrr@10")]
            rows.append(row)
        out += _table(header, rows)
        for name, entry in result["baselines"].items():
            if "error" in entry:
                out.append(f"- {name}: not run ({entry['error']})")
            else:
                out.append(f"- {name}: {entry['description']}; index {entry['index_seconds']} s, "
                           f"{entry['query_ms']} ms per query.")
        out.append("")
    if result.get("per_type"):
        out += [f"## Per {'expected answer type (query analyser)' if squad else 'question type'}", ""]
        cols = ["count", "answer_accuracy", "citation_accuracy", "exact_match", "f1", "recall@1", "recall@5",
                "false_abstention_rate", "abstention_accuracy"]
        out += _table(["type", *cols], [(t, *(m.get(c) for c in cols)) for t, m in result["per_type"].items()])
    if result.get("per_tag"):
        out += ["## Per tag", ""]
        cols = ["count", "answer_accuracy", "recall@1", "recall@5", "false_abstention_rate", "abstention_accuracy"]
        out += _table(["tag", *cols], [(t, *(m.get(c) for c in cols)) for t, m in result["per_tag"].items()])
    fails = result["failures"]
    total = result.get("n_failures", len(fails))
    shown = fails if max_failures is None else fails[:max_failures]
    out += [f"## Failures ({total})", ""]
    out += _table(["id", "type", "question", "expected", "got", "cited", "doc rank", "reason"],
                  [(f["id"], f["type"], f["question"], f["expected"], "(abstained)" if f["abstained"] else f["got"],
                    f["cited_docs"], f["doc_rank"], f["reason"]) for f in shown])
    if len(shown) < total:
        out += [f"… and {total - len(shown)} more (see results.json).", ""]
    out += ["## Definitions", "", DEFINITIONS, ""]
    if images:
        out += ["## Plots", "", "![recall@k](recall_at_k.png)", "", "![accuracy per type](accuracy_by_type.png)", "",
                "![latency](latency_ms.png)", ""]
    return "\n".join(out)


def write_report(result: dict, folder: Path) -> None:
    """folder/report.md, folder/results.json and three PNG plots."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "results.json").write_text(json.dumps(result, ensure_ascii=False, indent=1), "utf-8")
        (folder / "report.md").write_text(render_markdown(result, max_failures=None if result["kind"] == "gold"
                                                           else 100, images=True), "utf-8")
    except OSError as exc:
        raise UsageError(f"Cannot write the report to {folder}: {exc.strerror or exc}.") from None
    _plot_recall(result, folder / "recall_at_k.png")
    _plot_types(result, folder / "accuracy_by_type.png")
    _plot_latency(result, folder / "latency_ms.png")


def _figure(width: float = 8, height: float = 5):
    from matplotlib.figure import Figure  # no pyplot: no global backend state, Agg for PNG

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    return fig, fig.add_subplot()


def _plot_recall(result: dict, path: Path) -> None:
    fig, ax = _figure(9.5, 5)
    ks = list(CURVE)
    for n, (name, m) in enumerate(_systems(result)):
        color = f"C{n}"
        if m.get("recall_curve"):
            ax.plot(ks, m["recall_curve"], marker="o", color=color, label=name)
        if (m.get("unaccented") or {}).get("recall_curve"):
            ax.plot(ks, m["unaccented"]["recall_curve"], marker=".", ls="--", color=color, label=f"{name}, unaccented")
    ax.set(xlabel="k (documents)", ylabel="recall@k", xticks=ks, ylim=(0, 1.02),
           title=f"Document recall@k — {Path(str(result.get('source', ''))).name}")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.savefig(path)


def _plot_types(result: dict, path: Path) -> None:
    types = list(result.get("per_type") or {})
    fig, ax = _figure(max(8.0, 0.8 * len(types) + 2))
    acc = [m["answer_accuracy"] if m["answer_accuracy"] is not None else (m["abstention_accuracy"] or 0.0)
           for m in result["per_type"].values()]
    r5 = [m["recall@5"] or 0.0 for m in result["per_type"].values()]
    xs = range(len(types))
    bars = ax.bar([x - 0.2 for x in xs], acc, 0.4, label="answer accuracy (abstention accuracy if unanswerable)")
    ax.bar([x + 0.2 for x in xs], r5, 0.4, label="recall@5", alpha=0.7)
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(list(xs), [f"{t}\n(n={m['count']})" for t, m in result["per_type"].items()], fontsize=8)
    kind = "expected answer type (query analyser)" if result["kind"] == "squad" else "question type"
    ax.set(ylabel="fraction", ylim=(0, 1.25), title=f"Accuracy and recall@5 per {kind}")
    ax.legend(loc="upper left", fontsize=8, ncols=2)
    fig.savefig(path)


def _plot_latency(result: dict, path: Path) -> None:
    import numpy as np

    fig, ax = _figure()
    values = np.array(result.get("latencies_ms") or [0.0])
    top = max(float(np.percentile(values, 99)) * 1.2, result["latency_p95_ms"] * 1.5)
    beyond = int((values > top).sum())
    ax.hist(np.minimum(values, top), bins=min(80, max(20, len(values) // 4)), color="C0", alpha=0.8)
    for key, style in (("latency_p50_ms", "-"), ("latency_p95_ms", "--")):
        ax.axvline(result[key], color="C3", ls=style, label=f"{key.split('_')[1]} = {result[key]:.1f} ms")
    ax.set(xlabel="rag.ask latency (ms)", ylabel="questions", title=f"Latency per question ({len(values)} questions"
           + (f"; {beyond} slower than {top:.0f} ms drawn in the last bin)" if beyond else ")"))
    ax.legend()
    fig.savefig(path)
