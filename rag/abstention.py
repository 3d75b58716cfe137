"""Whether to answer: the probability that the answer picked is right, and the threshold below which the
answerer says the documents do not hold it.

A logistic regression over the picked sentence's features and the question's best evidence, fitted by
`eval/fit_abstention.py` on answerable questions and on unanswerable ones: the seeds' own, and every answerable
question of the seeds and of UIT-ViQuAD dev asked again of its index *without its document* (a ViQuAD article, a
seed report). The threshold is chosen on that data for a stated false-answer rate (the share of unanswerable
questions that still get an answer). The weights are data (`rag/data/abstention.json`); the probability is the
answer's `confidence`.

    >>> a = Abstention(("support",), (0.5,), (0.25,), (2.0,), 0.0, (0.5,), 0.5)
    >>> round(a.probability({"support": 0.75}), 3)
    0.881
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

WEIGHTS_FILE = Path(__file__).parent / "data" / "abstention.json"

# Of the picked sentence: answer._Sentence.features (documented in answer_scorer.BASE). Of the question: `top_score`
# (the first hit's retrieval score), `best_support` and `best_sent_dense` (the best among all candidate sentences),
# `unknown` (the share of the question's words that no document holds: answer.unknown_share).
FEATURES = (
    "support", "support_own", "pairs", "sent_dense", "dense", "hit_score", "hit_rank", "sent_dense_gap",
    "support_gap", "top_score", "best_support", "best_sent_dense", "typed_question", "year_own", "place", "unknown",
)
DENSE = ("sent_dense", "dense", "sent_dense_gap", "best_sent_dense")  # cosines of the model it was fitted with


@dataclass(frozen=True)
class Abstention:
    features: tuple[str, ...]
    mean: tuple[float, ...]  # standardisation: (value − mean) / scale
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    fill: tuple[float, ...]  # the value of an unknown feature (its training mean)
    threshold: float  # answer when the probability is at least this
    model: str | None = None  # the embedding model whose cosines the dense features are

    @classmethod
    def load(cls, mode: str = "dense", path: Path = WEIGHTS_FILE) -> Abstention | None:
        """The model fitted for a kind of index ("dense" or "lexical": their retrieval scores differ), or None
        when there is none (the answerer then keeps its support floor)."""
        return _load(Path(path), mode)

    @classmethod
    def from_dict(cls, data: dict) -> Abstention:
        names = tuple(data["features"])
        if names != FEATURES:
            raise ValueError(f"abstention weights are for the features {names}, not {FEATURES}: rerun eval/fit_abstention.py")
        return cls(names, *(tuple(float(data[key][n]) for n in names) for key in ("mean", "scale", "weights")),
                   float(data["bias"]), tuple(float(data["fill"][n]) for n in names), float(data["threshold"]),
                   data.get("model"))

    def probability(self, values: dict[str, float | None], model: str | None = None) -> float:
        """P(the answer is right) from the feature values; a missing one (None), or a cosine from another
        embedding model than the one fitted on (`model` given and different), takes its fill value."""
        other = model is not None and self.model is not None and model != self.model
        z = self.bias
        for name, mean, scale, weight, fill in zip(self.features, self.mean, self.scale, self.weights, self.fill):
            value = values.get(name)
            if value is None or (other and name in DENSE):
                value = fill
            z += weight * (float(value) - mean) / scale
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


@lru_cache(maxsize=8)
def _load(path: Path, mode: str) -> Abstention | None:
    if not path.is_file():
        return None
    data = json.loads(path.read_text("utf-8")).get(mode)
    return Abstention.from_dict(data) if data else None
