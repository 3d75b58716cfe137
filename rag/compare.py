"""Comparison questions across places: "Tỉnh nào có tỷ lệ hộ nghèo năm 2023 thấp hơn, Hòa Bình hay Huế?"

Each place is asked on its own ("tỷ lệ hộ nghèo năm 2023 Hòa Bình": `Query.comparison.base`, read by
`rag/query.py`), the values found are compared, and the answer cites every side. When one side is not
in the documents, the answer abstains and says which.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import extract
from .query import analyse
from .types import Query

if TYPE_CHECKING:
    from .answer import Answer, Answerer


def is_comparison(query: Query) -> bool:
    return query.comparison is not None


def answer(answerer: Answerer, query: Query, k: int, year: int | None, timings: dict) -> Answer:
    from .answer import Answer, abstain, _citation

    asked = query.comparison
    if asked is None:
        raise ValueError(f"not a question comparing places: {query.text!r}")
    sides = []
    for place in query.places:
        sub = analyse(f"{asked.base} {place}")
        hits = answerer._search(sub, k, None, year, timings)
        pick, reason, _ = answerer.choose(sub, hits)
        number = extract.value(pick[1]) if pick else None
        if pick is None or number is None:
            return abstain(query, f"không tìm thấy số liệu của {place}" + (f" ({reason})" if reason else ""))
        sides.append((place, pick[0], pick[1], number))
    winner = (max if asked.more else min)(sides, key=lambda side: side[3])
    parts = [f"{place}: {span} [{n}]" for n, (place, _, span, _) in enumerate(sides, 1)]
    answer_text = f"{winner[0]} {asked.word} ({'; '.join(parts)})."
    citations = tuple(_citation(n, sent, answerer.retriever.snapshot.documents)
                      for n, (_, sent, _, _) in enumerate(sides, 1))
    return Answer(query.text, winner[0] if asked.which else winner[2], False, answer_text, citations)
