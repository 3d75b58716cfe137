"""The failure the shifted questions of eval/fit_abstention.py cannot teach: a year the documents *do* write.

Each answerable seed question asking one year for a figure (a percentage, a count, an amount) is asked again with that year moved by -1, +1, -2 or +2, kept inside
the years the seed reports cover (2019-2025), of the same index. Whether the document holds a figure of the new year
is unknown, so only one kind of answer is certainly wrong: the source question's own gold answer (the figure of the
year first asked; for a date or a person the same answer may be right, so those questions are left out). The probe counts those, says which year rule let each through (the document is dated to the year
asked, or the chunk writes it somewhere), and shows the picked sentence's year features beside the source question's:
where they are the same, the learned abstention cannot tell the two questions apart.

    python eval/probe_year_shift.py [--index-dir .cache/seeds-dense] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval.fit_abstention import _YEAR  # noqa: E402
from rag import RAG  # noqa: E402
from rag.answer import Answerer  # noqa: E402
from rag.evaluation import contains_answer, load_gold  # noqa: E402
from rag.query import analyse  # noqa: E402

SEED_YEARS = range(2019, 2026)
MOVES = (-1, 1, -2, 2)
YEAR_FEATURES = ("year_own", "year_para", "year_other")
FIGURES = ("percent", "count", "money", "number")  # gold types whose value differs from one year to the next


def move_year(question: str, year: int, d: int) -> str:
    """The question with `year` (as typed) moved by `d`; its other numbers kept."""
    return _YEAR.sub(lambda m: str(int(m.group()) + d) if int(m.group()) == year else m.group(), question)


def year_features(answerer: Answerer, question: str):
    """The picked sentence (or None) and its year features."""
    query = analyse(question)
    hits = answerer.retriever.search(query, answerer.config.k)
    pick, _ = answerer.pick(query, hits)
    return pick[0] if pick else None, tuple(pick[0].features[n] for n in YEAR_FEATURES) if pick else None


def probe(answerer: Answerer, sets: list[Path]) -> dict:
    asked = answered = 0
    wrong, why, features = [], Counter(), Counter()
    documents = answerer.retriever.snapshot.documents
    for path in sets:
        for item in load_gold(path):
            years = set(analyse(item.question).years)
            if not item.answerable or item.type not in FIGURES or len(years) != 1:
                continue
            year = years.pop()
            for d in MOVES:
                if year + d not in SEED_YEARS:
                    continue
                question = move_year(item.question, year, d)
                answer = answerer.ask(question)
                asked += 1
                answered += not answer.abstained
                if answer.abstained or not contains_answer(answer.answer or "", item.answers):
                    continue
                sentence, moved = year_features(answerer, question)
                _, source = year_features(answerer, item.question)
                dated = sentence is not None and documents[sentence.hit.chunk.doc_id].meta.year == year + d
                why["the document is dated to the year asked" if dated else "the chunk writes the year asked"] += 1
                features["the same as the source's" if moved == source else "not the same"] += 1
                wrong.append({"id": item.id, "question": question, "answer": answer.answer,
                              "confidence": round(answer.confidence, 3), "year_features": moved})
    return {"asked": asked, "answered": answered, "answered_with_the_source_answer": len(wrong),
            "let_through_by": dict(why), "year_features": dict(features), "examples": wrong}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index-dir", type=Path, default=ROOT / ".cache" / "seeds-dense")
    ap.add_argument("--json", action="store_true", help="print the examples too")
    args = ap.parse_args(argv)
    answerer = Answerer(RAG.open(args.index_dir)._retriever)
    out = probe(answerer, [ROOT / "eval" / "gold.jsonl", ROOT / "eval" / "heldout.jsonl"])
    if not args.json:
        out.pop("examples")
    print(json.dumps(out, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
