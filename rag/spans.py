"""The answer span inside a sentence, for questions that expect no typed value ("Vì sao…", "… là gì?").

A log-linear model over every span of the sentence's words (at most `MAX_LEN` long): a span's score is the
score of its first word as a start, of its last word as an end, of its length for the question's kind, and of
what it holds (the question's own words, commas, capitals). The features are about the question and the
sentence, never about one topic: whether a word is one of the question's, how far the nearest question word
is, whether the words before the span are the words before the question's wh-word ("được thành lập vào |năm
nào|" ↔ "được thành lập vào |năm 1911|"), capitals and digits, the sentence's punctuation, and the identity of
the few hundred most frequent words (fitted, not listed by hand). The weights are fitted on UIT-ViQuAD by
`eval/train_spans.py` and live in `rag/data/span_model.json`.

>>> model = SpanModel.load()
>>> s = "Trường Đại học Bách khoa Hà Nội được thành lập vào năm 1956 theo quyết định của Chính phủ."
>>> a, b = model.best("Trường Đại học Bách khoa Hà Nội được thành lập vào năm nào?", s)
>>> s[a:b]
'năm 1956'
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .lexicon import HOW_FOLDED, WHY_FOLDED
from .text import fold, nfc

MODEL_PATH = Path(__file__).with_name("data") / "span_model.json"
MAX_LEN = 40  # words in a span, at most
TOP = 60  # the likeliest spans the decoding weighs
_TOKEN = re.compile(r"\d+(?:[.,/]\d+)*%?|[^\W\d_]+|[^\w\s]")
# The kinds of question by their wh-word, matched in order on the folded question. Grammar, not topic.
WH: tuple[tuple[str, str], ...] = (
    ("why", WHY_FOLDED),
    ("how", HOW_FOLDED),
    ("duration", r"\bbao lau\b"),
    ("quantity", r"\b(?:bao nhieu|may)\b"),
    ("when", r"\b(?:khi nao|bao gio|luc nao|(?:nam|thang|ngay|the ky|thoi ky|thoi diem|thoi gian|giai doan|nien dai|mua) nao)\b"),
    ("where", r"\b(?:o dau|tai dau|tu dau|den dau|noi nao|cho nao|dau)\b"),
    ("who", r"\b(?:ai|nguoi nao)\b"),
    ("what", r"\bgi\b"),
    ("which", r"\bnao\b"),
    ("yesno", r"\b(?:co phai|hay khong|co khong|phai khong)\b"),
)
KINDS = ("other",) + tuple(k for k, _ in WH)
_WH_RES = [re.compile(p) for _, p in WH]
LENGTHS = (1, 2, 3, 4, 6, 9, 14, 20, 30, MAX_LEN)  # upper bounds of the length buckets
_BUCKET = np.searchsorted(np.array(LENGTHS), np.arange(1, MAX_LEN + 1))  # length → bucket
DISTANCES = (1, 2, 4, 8, 10_000)  # upper bounds of the distance buckets (and one for "none")
START = ("in_q", "in_q_rare", "prev_in_q", "prev2_in_q", "prev_word_in_q", "after_break", "capital", "digit", "prev_capital",
         "align", "align_next", *(f"left_d{d}" for d in (*DISTANCES, "none")),
         *(f"right_d{d}" for d in (*DISTANCES, "none")), "position")
END = ("in_q", "in_q_rare", "next_in_q", "next2_in_q", "next_word_in_q", "before_break", "capital", "next_capital", "digit",
       "align", "align_next", *(f"left_d{d}" for d in (*DISTANCES, "none")),
       *(f"right_d{d}" for d in (*DISTANCES, "none")), "position")
INSIDE = ("q_share", "q_any", "commas", "capital_share", "digits", "parens")


@dataclass(frozen=True)
class Words:
    """A sentence's tokens with their offsets and folded lowercase forms."""
    spans: list[tuple[int, int]]
    folded: list[str]
    raw: list[str]

    @classmethod
    def of(cls, text: str) -> "Words":
        found = list(_TOKEN.finditer(text))
        return cls([m.span() for m in found], [fold(m.group()).lower() or m.group() for m in found], [m.group() for m in found])

    def __len__(self) -> int:
        return len(self.spans)


def kind_of(question: str) -> tuple[str, int, int]:
    """The question's kind and where its wh-word is, in the question's token positions (start, end)."""
    words = Words.of(nfc(question))
    folded = " ".join(words.folded)
    for (kind, _), pattern in zip(WH, _WH_RES):
        m = pattern.search(folded)
        if m:
            start = folded[:m.start()].count(" ")
            return kind, start, start + m.group().count(" ") + 1
    return "other", len(words), len(words)


@dataclass
class Features:
    """What the model reads of one (question, sentence) pair."""
    kind: int
    start: np.ndarray  # words × START
    end: np.ndarray  # words × END
    start_words: np.ndarray  # words × 2: vocabulary ids of the word before and of the word itself
    end_words: np.ndarray  # words × 2: of the word itself and of the word after
    inside: np.ndarray  # (words+1) × INSIDE: prefix sums of the per-word inside features
    allowed: np.ndarray  # words: a span may start or end here (not punctuation)


def features(question: str, sentence: str, vocabulary: dict[str, int]) -> tuple[Features, Words]:
    q = Words.of(nfc(question))
    s = Words.of(sentence)
    kind, wh_start, wh_end = kind_of(question)
    asked = {w for w in q.folded[:wh_start] + q.folded[wh_end:] if w[0].isalnum()}
    left = [w for w in q.folded[max(0, wh_start - 3):wh_start] if w[0].isalnum()]
    right = [w for w in q.folded[wh_end:wh_end + 3] if w[0].isalnum()]
    n = len(s)
    punct = np.array([not w[0].isalnum() for w in s.raw], dtype=bool)
    in_q = np.array([w in asked for w in s.folded], dtype=float)
    common = len(vocabulary) // 3  # the commonest third of the vocabulary: function words, mostly
    rare = np.array([w in asked and vocabulary.get(w, common) >= common for w in s.folded], dtype=float)
    capital = np.array([w[:1].isupper() for w in s.raw], dtype=float)
    digit = np.array([w[:1].isdigit() for w in s.raw], dtype=float)

    def pad(a: np.ndarray, k: int) -> np.ndarray:
        """`a` shifted k places right (k < 0: left), zeros where nothing comes in: each word sees its k-th neighbour."""
        out = np.zeros(n)
        if abs(k) < n:
            if k > 0:
                out[k:] = a[:n - k]
            else:
                out[:n + k] = a[-k:]
        return out

    # distance from each word to the nearest question word on its left and on its right
    last, left_d = None, np.full(n, -1)
    for i in range(n):
        left_d[i] = -1 if last is None else i - last
        if in_q[i]:
            last = i
    nxt, right_d = None, np.full(n, -1)
    for i in range(n - 1, -1, -1):
        right_d[i] = -1 if nxt is None else nxt - i
        if in_q[i]:
            nxt = i

    def buckets(d: np.ndarray) -> np.ndarray:
        out = np.zeros((n, len(DISTANCES) + 1))
        idx = np.where(d < 0, len(DISTANCES), np.searchsorted(np.array(DISTANCES), np.maximum(d, 1)))
        out[np.arange(n), idx] = 1.0
        return out

    def aligned(i: int, context: list[str], step: int) -> tuple[float, float]:
        """How many of the question's words beside its wh-word stand beside word i (before: step -1)."""
        count = 0
        words = context[::-1] if step < 0 else context
        j = i + step
        for w in words:
            while 0 <= j < n and punct[j]:
                j += step
            if not 0 <= j < n or s.folded[j] != w:
                break
            count += 1
            j += step
        return count / 3, float(count > 0)

    def nearest_word(step: int) -> np.ndarray:
        """Whether the nearest word before (step -1) or after (+1) each word, punctuation skipped, is the question's."""
        out, seen = np.zeros(n), 0.0
        for i in (range(n) if step < 0 else range(n - 1, -1, -1)):
            out[i] = seen
            if not punct[i]:
                seen = in_q[i]
        return out

    after_break = np.array([i == 0 or punct[i - 1] for i in range(n)], dtype=float)
    before_break = np.array([i == n - 1 or punct[i + 1] for i in range(n)], dtype=float)
    position = np.arange(n) / max(n - 1, 1)
    start = np.column_stack([
        in_q, rare, pad(in_q, 1), pad(in_q, 2), nearest_word(-1), after_break, capital * (after_break == 0), digit, pad(capital, 1),
        np.array([aligned(i, left, -1) for i in range(n)]).reshape(n, 2), buckets(left_d), buckets(right_d), position,
    ]) if n else np.zeros((0, len(START)))
    end = np.column_stack([
        in_q, rare, pad(in_q, -1), pad(in_q, -2), nearest_word(+1), before_break, capital, pad(capital, -1), digit,
        np.array([aligned(i, right, +1) for i in range(n)]).reshape(n, 2), buckets(left_d), buckets(right_d), position,
    ]) if n else np.zeros((0, len(END)))
    oov = len(vocabulary)
    ids = np.array([vocabulary.get(w, oov) for w in s.folded] or [oov], dtype=np.int64)[:n]
    before = np.concatenate([[oov + 1], ids[:-1]]) if n else ids
    after = np.concatenate([ids[1:], [oov + 1]]) if n else ids
    per_word = np.column_stack([in_q, in_q, np.array([w == "," for w in s.raw], dtype=float), capital, digit,
                                np.array([w in "()" for w in s.raw], dtype=float)]) if n else np.zeros((0, len(INSIDE)))
    inside = np.vstack([np.zeros((1, len(INSIDE))), np.cumsum(per_word, axis=0)])
    return Features(KINDS.index(kind), start, end, np.column_stack([before, ids]) if n else np.zeros((0, 2), np.int64),
                    np.column_stack([ids, after]) if n else np.zeros((0, 2), np.int64), inside, ~punct), s


def candidates(f: Features) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every span that may be an answer (it starts and ends on a word, at most MAX_LEN long): its first and last
    word, its length, and its INSIDE features."""
    n = len(f.allowed)
    i, j = np.triu_indices(n)
    length = j - i + 1
    ok = (length <= MAX_LEN) & f.allowed[i] & f.allowed[j]
    i, j, length = i[ok], j[ok], length[ok]
    count = f.inside[j + 1] - f.inside[i]  # per span, the per-word counts summed
    capped = np.minimum(count, 3) / 3
    inside = np.column_stack([count[:, 0] / length, count[:, 1] > 0, capped[:, 2], count[:, 3] / length,
                              capped[:, 4], capped[:, 5]])  # the order of INSIDE
    return i, j, length, inside


def span_scores(f: Features, weights: dict[str, np.ndarray]) -> np.ndarray:
    """Every span's score (words × words; -inf where no span may be), numpy."""
    n = len(f.allowed)
    k = f.kind
    s = f.start @ weights["start"][k] + weights["start_words"][k, f.start_words[:, 0], 0] \
        + weights["start_words"][k, f.start_words[:, 1], 1]
    e = f.end @ weights["end"][k] + weights["end_words"][k, f.end_words[:, 0], 0] \
        + weights["end_words"][k, f.end_words[:, 1], 1]
    i, j, length, inside = candidates(f)
    out = np.full((n, n), -np.inf)
    out[i, j] = s[i] + e[j] + weights["length"][k, _BUCKET[length - 1]] + inside @ weights["inside"][k]
    return out


class SpanModel:
    """The fitted weights, and the best span of a sentence for a question."""

    def __init__(self, weights: dict[str, np.ndarray], vocabulary: list[str], meta: dict | None = None) -> None:
        self.weights = weights
        self.vocabulary = {w: n for n, w in enumerate(vocabulary)}
        self.words = vocabulary
        self.meta = meta or {}

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> "SpanModel":
        return _load(str(path))

    def to_json(self) -> dict:
        return {"version": 1, **self.meta, "vocabulary": self.words,
                "weights": {k: np.round(v, 4).tolist() for k, v in self.weights.items()}}

    def best(self, question: str, sentence: str) -> tuple[int, int] | None:
        """The character offsets of the best span in `sentence`, or None when it has no word."""
        f, words = features(question, sentence, self.vocabulary)
        if not f.allowed.any():
            return None
        i, j = decode(span_scores(f, self.weights))
        return words.spans[i][0], words.spans[j][1]


def decode(scores: np.ndarray, top: int = TOP) -> tuple[int, int]:
    """The span with the highest expected word F1 against the model's distribution over the `top` likeliest
    spans (minimum Bayes risk): where the model hesitates between nested spans, the one that overlaps them most."""
    flat = scores.ravel()
    order = np.argsort(-flat)[:top]
    order = order[np.isfinite(flat[order])]
    p = np.exp(flat[order] - flat[order[0]])
    p /= p.sum()
    i, j = np.unravel_index(order, scores.shape)
    overlap = np.maximum(0, np.minimum(j[:, None], j[None, :]) - np.maximum(i[:, None], i[None, :]) + 1)
    length = j - i + 1
    expected = (2 * overlap / (length[:, None] + length[None, :])) @ p
    best = int(np.argmax(expected))
    return int(i[best]), int(j[best])


@lru_cache(maxsize=2)
def _load(path: str) -> SpanModel:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    weights = {k: np.array(v, dtype=float) for k, v in data.pop("weights").items()}
    return SpanModel(weights, data.pop("vocabulary"), data)
