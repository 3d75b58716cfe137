"""Vietnamese BM25 over several token fields, with bm25s.

Fields (each its own bm25s index, scores summed with weights, BM25F-style):
- ``syl``:  lowercased syllables and numbers ("tỷ", "lệ", "2,27%")
- ``bi``:   syllable bigrams ("tỷ_lệ", "hộ_nghèo"), a cheap stand-in for compound words
- ``fsyl``, ``fbi``: the same with diacritics folded, so "ty le ho ngheo hue" finds "Tỷ lệ hộ nghèo … Huế"

A query typed with diacritics is scored on all four (the folded fields weigh less); a query
typed without diacritics only on the folded ones.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .text import bigrams, fold, syllables

FIELDS = ("syl", "bi", "fsyl", "fbi")


def _bm25s():
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets DEBUG on import and logs every build
    return bm25s


@dataclass(frozen=True)
class LexicalConfig:
    k1: float = 1.2
    b: float = 0.75
    # field weights for a query with diacritics, and for one without
    accented: dict[str, float] = field(default_factory=lambda: {"syl": 1.0, "bi": 0.5})
    unaccented: dict[str, float] = field(default_factory=lambda: {"fsyl": 1.0, "fbi": 1.0})


# Question words: frequent in questions, absent from the passages that answer them.
_QUESTION = "gì nào ai bao nhiêu đâu sao mấy giờ không hay thế vậy".split()
QUESTION_WORDS = frozenset(_QUESTION + [fold(w) for w in _QUESTION])


def tokenize(text: str, query: bool = False) -> dict[str, list[str]]:
    """Tokens of every field; a query drops question words ("bao nhiêu", "gì").

    >>> tokenize("Hộ nghèo Huế")["fbi"]
    ['ho_ngheo', 'ngheo_hue']
    """
    syl = syllables(text)
    fsyl = [fold(t) for t in syl]
    fields = {"syl": syl, "bi": bigrams(syl), "fsyl": fsyl, "fbi": bigrams(fsyl)}
    if query and any(t not in QUESTION_WORDS for t in syl):
        fields = {
            name: [t for t in toks if not QUESTION_WORDS.intersection(t.split("_"))]
            for name, toks in fields.items()
        }
    return fields


class LexicalIndex:
    """One bm25s index per field over the same list of chunks."""

    def __init__(self, fields: dict, config: LexicalConfig, size: int) -> None:
        self.fields = fields  # name -> bm25s.BM25
        self.config = config
        self.size = size

    @classmethod
    def build(cls, texts: list[str], config: LexicalConfig = LexicalConfig()) -> LexicalIndex:
        bm25s = _bm25s()
        tokens = [tokenize(t) for t in texts]
        fields = {}
        for name in FIELDS:
            bm25 = bm25s.BM25(k1=config.k1, b=config.b)
            # bm25s needs at least one token per document: an empty chunk gets a placeholder
            bm25.index([tok[name] or ["∅"] for tok in tokens], show_progress=False)
            fields[name] = bm25
        return cls(fields, config, len(texts))

    def scores(self, query: str, folded: bool | None = None) -> np.ndarray:
        """BM25F-style score of every chunk for `query` (0 where nothing matches)."""
        tokens = tokenize(query, query=True)
        if folded is None:
            folded = tokens["syl"] == tokens["fsyl"]
        weights = self.config.unaccented if folded else self.config.accented
        total = np.zeros(self.size, dtype=np.float32)
        for name, weight in weights.items():
            bm25 = self.fields[name]
            ids = bm25.get_tokens_ids(tokens[name])
            if ids and weight:
                total += weight * bm25.get_scores_from_ids(ids)
        return total

    def idf(self, tokens: list[str], field: str = "syl") -> dict[str, float]:
        """BM25 idf of each token in a field (0 for tokens the corpus lacks)."""
        bm25 = self.fields[field]
        indptr = bm25.scores["indptr"]
        out = {}
        for tok in tokens:
            tid = bm25.vocab_dict.get(tok)
            df = int(indptr[tid + 1] - indptr[tid]) if tid is not None else 0
            out[tok] = float(np.log(1 + (self.size - df + 0.5) / (df + 0.5))) if df else 0.0
        return out

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, bm25 in self.fields.items():
            bm25.save(folder / name, show_progress=False)
        (folder / "lexical.json").write_text(
            json.dumps({"config": asdict(self.config), "size": self.size}, ensure_ascii=False), "utf-8"
        )

    @classmethod
    def load(cls, folder: Path, mmap: bool = False) -> LexicalIndex:
        bm25s = _bm25s()
        info = json.loads((folder / "lexical.json").read_text("utf-8"))
        config = LexicalConfig(**info["config"])
        fields = {
            name: bm25s.BM25.load(folder / name, mmap=mmap, show_progress=False, verbosity=0)
            for name in FIELDS
        }
        return cls(fields, config, int(info["size"]))
