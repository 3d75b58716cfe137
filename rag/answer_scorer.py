"""The answer scorer: how likely a candidate sentence is to hold the answer, from its features.

A logistic regression whose weights are data (`rag/data/answer_scorer.json`, written by
`eval/train_answerer.py`, fitted on UIT-ViQuAD dev and the seed question sets, cross-validated by
document); its probability is the answer's `confidence`. `HAND` holds the weights the answerer
used before they were learned (the same features), kept to measure against.

    >>> scorer = AnswerScorer.hand()
    >>> round(scorer.logit(dict(support=1.0, pairs=0.5)), 2)
    1.5
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

WEIGHTS_FILE = Path(__file__).parent / "data" / "answer_scorer.json"

# The features of one candidate sentence (each documented where computed, in answer._Sentence).
BASE = (
    "support",  # idf share of the question's words in the sentence, its chunk's header and its paragraph's heading
    "support_own",  # the same in the sentence's own words only
    "pairs",  # share of the question's word pairs (bigrams) in the sentence
    "support_gap",  # support_own minus the best support_own among the question's candidates (≤ 0)
    "pairs_gap",  # pairs minus the best pairs among the question's candidates (≤ 0)
    "hit_score",  # the chunk's retrieval score / the best hit's
    "hit_rank",  # 1 / the chunk's retrieval rank
    "dense",  # cosine of the question and the chunk (the retriever's stored vector); imputed when lexical
    "sent_dense",  # cosine of the question and the sentence (the index's sentence vectors); imputed when absent
    "sent_dense_gap",  # sent_dense minus the best sent_dense among the question's candidates (≤ 0)
    "length",  # min(1, words / 80)
    "position",  # 1 / (1 + the sentence's index in its chunk)
    "year_own",  # an asked year is in the sentence
    "year_para",  # ... not in it, but in its paragraph
    "year_other",  # the sentence (or its paragraph) dates itself to other years only
    "target_mismatch",  # a target ("mục tiêu") asked and a result found, or the reverse
    "typed_found",  # a typed question (percent, date, person…) and the sentence holds a value of that type
    "typed_missing",  # a typed question and none in the sentence
    "place",  # +1 the chunk is about the asked place, -1 it is not, 0 no place asked
)
# A question that asks for a typed value (a percentage, a date, a name…) weighs the same evidence differently from an
# open one ("vì sao", "như thế nào"): each feature again, times "the question is typed" (0 or 1).
TYPED = "typed_question"
FEATURES = (*BASE, TYPED, *(f"{name}*typed" for name in BASE))

# The hand-set weights of the answerer before issue 13 (PAIR_W, HIT_W, LEN_W, YEAR_W, TARGET_W …).
HAND = {
    "support": 1.0, "pairs": 1.0, "hit_score": 0.6, "length": -0.3, "year_own": 0.25, "year_para": 0.1,
    "year_other": -0.15, "target_mismatch": -0.45, "typed_found": 0.15, "typed_missing": -0.3, "place": 0.4,
}


@dataclass(frozen=True)
class AnswerScorer:
    """A linear score over FEATURES; with `learned`, a logistic model whose probability is calibrated."""

    weights: tuple[float, ...]
    bias: float = 0.0
    fill: tuple[float, ...] = ()  # per feature: the value used when it is unknown (the training mean)
    threshold: float = 0.0  # abstain below this probability
    learned: bool = False
    scale: float = 1.0  # logit → the units of the span bonuses the answerer adds (the hand score's spread)
    calibration: tuple[float, float, float] = (1.0, 0.0, 0.0)  # confidence = σ(a·logit + m·margin + b)
    # the weights of the question–sentence cosine (sent_dense_gap) added to the hand weights, for open questions
    # and for typed ones: the weights of the hand ranking that are fitted (eval/train_answerer.py, cross-validated)
    hand_dense: float = 0.0
    hand_dense_typed: float = 0.0

    @classmethod
    def hand(cls, dense: float = 0.0, typed: float | None = None) -> AnswerScorer:
        """The hand-set weights, plus `dense` × sent_dense_gap for an open question and `typed` × it for a
        typed one (the same as `dense` when not given)."""
        typed = dense if typed is None else typed
        weights = {**HAND, "sent_dense_gap": dense, "sent_dense_gap*typed": typed - dense}
        return cls(tuple(weights.get(name, 0.0) for name in FEATURES))

    def ranking(self) -> AnswerScorer:
        """The hand weights with the fitted cosine weights."""
        return AnswerScorer.hand(self.hand_dense, self.hand_dense_typed)

    @classmethod
    def load(cls, path: Path = WEIGHTS_FILE) -> AnswerScorer:
        return _load(Path(path))

    @classmethod
    def from_dict(cls, data: dict) -> AnswerScorer:
        names = tuple(data["features"])
        if names != FEATURES:
            raise ValueError(f"answer scorer weights are for the features {names}, not {FEATURES}: rerun eval/train_answerer.py")
        return cls(
            weights=tuple(float(data["weights"][n]) for n in names), bias=float(data["bias"]),
            fill=tuple(float(data["fill"][n]) for n in names), threshold=float(data.get("threshold", 0.0)),
            learned=True, scale=float(data.get("scale", 1.0)),
            calibration=tuple(float(data["calibration"][k]) for k in ("logit", "margin", "bias"))
            if "calibration" in data else (1.0, 0.0, 0.0),
            hand_dense=float(data.get("hand_dense", 0.0)),
            hand_dense_typed=float(data.get("hand_dense_typed", data.get("hand_dense", 0.0))),
        )

    def vector(self, features: dict[str, float | None]) -> np.ndarray:
        """The features in FEATURES order; a missing (None) one takes its fill value."""
        fill = self.fill or (0.0,) * len(FEATURES)
        return np.array([fill[i] if features.get(n) is None else float(features[n]) for i, n in enumerate(FEATURES)])

    def logit(self, features: dict[str, float | None]) -> float:
        return float(np.dot(self.weights, self.vector(features)) + self.bias)

    def confidence(self, logit: float, runner_up: float | None) -> float:
        """The calibrated probability that the chosen sentence (`logit`) holds the answer, given the best
        other sentence's logit (`runner_up`, None when there is none)."""
        a, m, b = self.calibration
        margin = min(logit - runner_up, 5.0) if runner_up is not None else 5.0
        return self.probability(a * logit + m * margin + b)

    @staticmethod
    def probability(logit: float) -> float:
        """The logistic function, without overflow."""
        if logit >= 0:
            return 1.0 / (1.0 + math.exp(-logit))
        e = math.exp(logit)
        return e / (1.0 + e)


@lru_cache(maxsize=4)
def _load(path: Path) -> AnswerScorer:
    if not path.is_file():
        return AnswerScorer.hand()
    return AnswerScorer.from_dict(json.loads(path.read_text("utf-8")))
