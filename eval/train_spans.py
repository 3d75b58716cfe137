"""Fit the answer-span model (rag/spans.py) on UIT-ViQuAD, cross-validated by article.

Each question's training example is the sentence of its context that holds the gold answer, with every
annotator's answer as a right span. The model is a log-linear one over all spans of the sentence (a softmax per
question), fitted with L-BFGS in torch; `rag/spans.py` scores with numpy alone.

    python eval/train_spans.py                 # 5 folds grouped by article: out-of-fold F1, nothing written
    python eval/train_spans.py --write         # … then fit on every question and write rag/data/span_model.json

Out-of-fold figures: the span F1 and exact match in the gold sentence, and, when `--picks` names the answerer's
picks (JSON lines with the question id, the chosen sentence and its answer), the F1 of the span the model takes
from the sentence the answerer chose, beside the answer it gave.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag import spans  # noqa: E402
from rag.evaluation import exact_match, f1  # noqa: E402
from rag.text import nfc, sentence_spans  # noqa: E402

SQUAD = ROOT.parent / "shared" / "benchdata" / "uit-viquad-1.0" / "dev_ViQuAD.json"
VOCABULARY = int(os.environ.get("SPAN_VOCABULARY", 300))  # the commonest folded words that get their own weights
L2 = float(os.environ.get("SPAN_L2", 3e-4))  # per question, on every weight


def examples(path: Path) -> list[dict]:
    """One example per question: its article, the sentence holding the answer and the answers' word spans."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    out = []
    for article_n, article in enumerate(data):
        for para in article["paragraphs"]:
            context = nfc(para["context"])
            sentences = sentence_spans(context)
            for qa in para["qas"]:
                answers = [a for a in qa.get("answers", []) if a.get("text")]
                if not answers:
                    continue
                a0 = answers[0]["answer_start"]
                s0, e0 = next(((s, e) for s, e in sentences if s <= a0 < e), (0, 0))
                text = context[s0:e0]
                words = spans.Words.of(text)
                gold = set()
                for a in answers:
                    a_start, a_end = a["answer_start"] - s0, a["answer_start"] + len(a["text"]) - s0
                    if a_start < 0 or a_end > len(text) + 1:
                        continue
                    inside = [n for n, (x, y) in enumerate(words.spans) if y > a_start and x < a_end
                              and words.raw[n][0].isalnum()]
                    if inside and inside[-1] - inside[0] < spans.MAX_LEN:
                        gold.add((inside[0], inside[-1]))
                out.append({"id": qa["id"], "group": article_n, "question": nfc(qa["question"]), "sentence": text,
                            "gold": sorted(gold), "answers": [nfc(a["text"]) for a in answers]})
    return out


def vocabulary_of(items: list[dict]) -> list[str]:
    counts = Counter(w for it in items for w in spans.Words.of(it["sentence"]).folded)
    return [w for w, _ in counts.most_common(VOCABULARY)]


def fit(items: list[dict], vocabulary: list[str], iterations: int = 150):
    """The weights fitted on `items` (torch, full-batch L-BFGS on the summed per-question log-likelihood)."""
    import torch

    index = {w: n for n, w in enumerate(vocabulary)}
    V = len(vocabulary) + 2
    K = len(spans.KINDS)
    rows = {"start": [], "end": [], "sw": [], "ew": [], "kind_tok": []}
    cand = {"i": [], "j": [], "q": [], "len": [], "kind": [], "inside": [], "gold": []}
    offset = 0
    used = 0
    for it in items:
        if not it["gold"]:
            continue
        f, _ = spans.features(it["question"], it["sentence"], index)
        n = len(f.allowed)
        i, j, length, inside = spans.candidates(f)
        gold = np.zeros(len(i), dtype=bool)
        for a, b in it["gold"]:
            gold |= (i == a) & (j == b)
        if not gold.any():
            continue
        rows["start"].append(f.start); rows["end"].append(f.end)
        rows["sw"].append(f.start_words); rows["ew"].append(f.end_words)
        rows["kind_tok"].append(np.full(n, f.kind))
        cand["i"].append(i + offset); cand["j"].append(j + offset); cand["q"].append(np.full(len(i), used))
        cand["len"].append(spans._BUCKET[length - 1]); cand["kind"].append(np.full(len(i), f.kind))
        cand["inside"].append(inside); cand["gold"].append(gold)
        offset += n
        used += 1
    T = lambda x, dt=torch.float64: torch.tensor(np.concatenate(x), dtype=dt)
    start, end = T(rows["start"]), T(rows["end"])
    sw, ew, kt = T(rows["sw"], torch.long), T(rows["ew"], torch.long), T(rows["kind_tok"], torch.long)
    ci, cj, cq = T(cand["i"], torch.long), T(cand["j"], torch.long), T(cand["q"], torch.long)
    clen, ckind, cin, cgold = T(cand["len"], torch.long), T(cand["kind"], torch.long), T(cand["inside"]), T(cand["gold"], torch.bool)
    params = {
        "start": torch.zeros((K, len(spans.START)), dtype=torch.float64, requires_grad=True),
        "end": torch.zeros((K, len(spans.END)), dtype=torch.float64, requires_grad=True),
        "start_words": torch.zeros((K, V, 2), dtype=torch.float64, requires_grad=True),
        "end_words": torch.zeros((K, V, 2), dtype=torch.float64, requires_grad=True),
        "length": torch.zeros((K, len(spans.LENGTHS)), dtype=torch.float64, requires_grad=True),
        "inside": torch.zeros((K, len(spans.INSIDE)), dtype=torch.float64, requires_grad=True),
    }
    opt = torch.optim.LBFGS(list(params.values()), max_iter=iterations, history_size=20, line_search_fn="strong_wolfe")

    def segment_lse(x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        top = torch.full((used,), -1e30, dtype=x.dtype).scatter_reduce(0, seg, x, "amax")
        return top + torch.log(torch.zeros(used, dtype=x.dtype).index_add(0, seg, torch.exp(x - top[seg])))

    def loss_fn():
        opt.zero_grad()
        s = (start * params["start"][kt]).sum(1) + params["start_words"][kt, sw[:, 0], 0] + params["start_words"][kt, sw[:, 1], 1]
        e = (end * params["end"][kt]).sum(1) + params["end_words"][kt, ew[:, 0], 0] + params["end_words"][kt, ew[:, 1], 1]
        score = s[ci] + e[cj] + params["length"][ckind, clen] + (cin * params["inside"][ckind]).sum(1)
        nll = (segment_lse(score, cq) - segment_lse(score[cgold], cq[cgold])).sum()
        reg = sum((p ** 2).sum() for p in params.values())
        loss = (nll + L2 * used * reg) / used
        loss.backward()
        return loss

    opt.step(loss_fn)
    return {k: v.detach().numpy().copy() for k, v in params.items()}, used


def model_of(items: list[dict]) -> spans.SpanModel:
    vocabulary = vocabulary_of(items)
    weights, used = fit(items, vocabulary)
    return spans.SpanModel(weights, vocabulary, {"questions": used, "l2": L2, "vocabulary_size": VOCABULARY})


def answerer_picks(args) -> dict[str, dict]:
    """For each ViQuAD question, what the answerer (with the trimmed-sentence spans) picks: the sentence, its
    answer, whether it abstained, and the question's expected type."""
    sys.path.insert(0, str(ROOT / "eval"))
    from train_answerer import question_sets

    from rag.answer import AnswerConfig, Answerer

    args.limit = 0
    out = {}
    for qs in question_sets(args):
        if qs.name != "viquad":
            continue
        answerer = Answerer(qs.retriever, AnswerConfig(span_by="trim"))
        for item, query, hits in zip(qs.items, qs.queries, qs.hits):
            pick, _, _ = answerer.choose(query, hits)
            chosen = pick or answerer.pick(query, hits)[0]  # withheld: the pick set aside
            out[item.id] = {"sent": chosen[0].text if chosen else "", "span": chosen[1] if chosen else "",
                            "abstained": pick is None, "expects": query.expects, "question": item.question}
    return out


def folds(groups: list[int], n: int = 5) -> list[int]:
    order = sorted(set(groups))
    return [order.index(g) % n for g in groups]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--squad", type=Path, default=SQUAD)
    ap.add_argument("--pipeline", action="store_true",
                    help="also score the spans in the sentences the answerer picks (ViQuAD's index, see --squad-index)")
    ap.add_argument("--reuse", action="store_true", help="reuse the answerer's picks of the last --pipeline run")
    ap.add_argument("--squad-index", type=Path, default=ROOT / ".cache" / "viquad-dev-index")
    ap.add_argument("--seeds-index", type=Path, default=ROOT / ".cache" / "seeds-dense")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--write", action="store_true", help="fit on every question and write rag/data/span_model.json")
    args = ap.parse_args(argv)
    if not args.squad.is_file():
        ap.error(f"{args.squad}: no such file (UIT-ViQuAD dev JSON)")
    items = examples(args.squad)
    picks = {}
    if args.pipeline:
        cache = ROOT / ".cache" / "train_spans" / "picks.json"
        if args.reuse and cache.is_file():
            picks = json.loads(cache.read_text(encoding="utf-8"))
        else:
            picks = answerer_picks(args)
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(picks, ensure_ascii=False), encoding="utf-8")
    fold = folds([it["group"] for it in items], args.folds)
    rows = []
    for k in range(args.folds):
        model = model_of([it for it, f in zip(items, fold) if f != k])
        for it, f in zip(items, fold):
            if f != k:
                continue
            a, b = model.best(it["question"], it["sentence"]) or (0, 0)
            row = {"id": it["id"], "kind": spans.kind_of(it["question"])[0], "scored": bool(it["gold"]),
                   "f1": f1(it["sentence"][a:b], it["answers"]),
                   "em": exact_match(it["sentence"][a:b], it["answers"])}
            pick = picks.get(it["id"])
            if pick:  # an abstention scores 0 either way
                ab = model.best(it["question"], pick["sent"]) if pick["sent"] else None
                span = pick["sent"][ab[0]:ab[1]] if ab else ""
                row["pipeline_f1"] = 0.0 if pick["abstained"] else f1(span, it["answers"])
                row["pipeline_before"] = 0.0 if pick["abstained"] else f1(pick["span"], it["answers"])
                row["expects"] = pick.get("expects")
            rows.append(row)
        print(f"fold {k}: {sum(f == k for f in fold)} questions", file=sys.stderr)
    scored = [r for r in rows if r["scored"]]
    report = {"questions": len(scored), "gold_sentence_f1": np.mean([r["f1"] for r in scored]),
              "gold_sentence_em": np.mean([r["em"] for r in scored]), "by_kind": {}}
    for kind in spans.KINDS:
        sel = [r for r in scored if r["kind"] == kind]
        if sel:
            report["by_kind"][kind] = {"n": len(sel), "f1": round(float(np.mean([r["f1"] for r in sel])), 3)}
    piped = [r for r in rows if "pipeline_f1" in r]
    if piped:
        for name, sel in (("all", piped), ("open", [r for r in piped if r["expects"] is None]),
                          ("typed", [r for r in piped if r["expects"] is not None])):
            if sel:
                report[f"pipeline_{name}"] = {"n": len(sel), "model": round(float(np.mean([r["pipeline_f1"] for r in sel])), 4),
                                              "answerer": round(float(np.mean([r["pipeline_before"] for r in sel])), 4)}
        for expects in sorted({str(r["expects"]) for r in piped}):
            sel = [r for r in piped if str(r["expects"]) == expects]
            report.setdefault("pipeline_by_expects", {})[expects] = {
                "n": len(sel), "model": round(float(np.mean([r["pipeline_f1"] for r in sel])), 3),
                "answerer": round(float(np.mean([r["pipeline_before"] for r in sel])), 3)}
        for name, kinds in (("open", {"None"}), ("open+names", {"None", "person", "place", "entity"}),
                            ("all", {str(r["expects"]) for r in piped})):
            report[f"end_to_end_{name}"] = round(float(np.mean([
                r["pipeline_f1"] if str(r["expects"]) in kinds else r["pipeline_before"] for r in piped])), 4)
        report["end_to_end_answerer"] = round(float(np.mean([r["pipeline_before"] for r in piped])), 4)
    print(json.dumps(report, indent=1, default=float))
    if args.write:
        model = model_of(items)
        spans.MODEL_PATH.write_text(json.dumps(model.to_json(), ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {spans.MODEL_PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
