"""Vietnamese BM25 over several token fields, with bm25s.

Fields (each its own bm25s index, scores summed with weights, BM25F-style):
- ``syl``:  lowercased syllables and numbers ("tỷ", "lệ", "2,27%")
- ``bi``:   syllable bigrams ("tỷ_lệ", "hộ_nghèo"), a cheap stand-in for compound words
- ``fsyl``, ``fbi``: the same with diacritics folded, so "ty le ho ngheo hue" finds "Tỷ lệ hộ nghèo … Huế"

A query typed with diacritics is scored on all four (the folded fields weigh less); a query
typed without diacritics only on the folded ones.

The index also keeps every chunk's syllables as ids, cut into sentences, for the features that read
which question words stand together in one sentence (`coverage`), without tokenising text per query.
"""

from __future__ import annotations

import json
import logging
import re
from array import array
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .text import bigrams, fold, syllables

FIELDS = ("syl", "bi", "fsyl", "fbi")
# Sentence ends: spaces after . ! ? ; : (the mark goes with them: it is never part of a token there), line
# breaks. No token holds these characters, so the tokens of the pieces are the tokens of the whole text.
SENTENCE_CUT = re.compile(r"[.!?;:]\s+|\n+")
_ARRAYS = ("tokens", "bounds", "body_starts", "sentence_starts", "folded_ids")  # saved as <name>.npy


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
    """One bm25s index per field over the same list of chunks, and the chunks' syllables as ids."""

    def __init__(self, fields: dict, config: LexicalConfig, size: int, arrays: dict[str, np.ndarray]) -> None:
        self.fields = fields  # name -> bm25s.BM25
        self.config = config
        self.size = size
        # tokens: every chunk's syllable ids ("syl" field ids), chunk after chunk; bounds: where each
        # chunk's tokens start (and the end); body_starts: where its body starts, after its header;
        # sentence_starts: where each sentence of a body starts; folded_ids: "syl" id -> "fsyl" id
        self.tokens, self.bounds, self.body_starts, self.sentence_starts, self.folded_ids = (arrays[a] for a in _ARRAYS)

    @classmethod
    def build(cls, texts: Iterable[str | tuple[str, str]], config: LexicalConfig = LexicalConfig()) -> LexicalIndex:
        """The four fields of `texts`, scored exactly as bm25s would index `tokenize(text)[field]`.

        A text may be a (header, body) pair, indexed as "header\\nbody": the body alone is cut into
        sentences for `coverage`.

        Only the syllables are found in Python (one regex per text, one dict lookup per token); the
        folded field, the bigram fields and the BM25 matrices are derived with numpy from the flat
        array of syllable ids. (bm25s's own `index` holds every token of every field as a Python
        string, tens of GB for a million chunks, and loops over the documents in Python.)
        """
        bm25s = _bm25s()
        vocab: defaultdict[str, int] = defaultdict()
        vocab.default_factory = vocab.__len__  # a new syllable gets the next id
        lookup = vocab.__getitem__
        ids, lengths, body_starts, sentence_starts = array("i"), array("i"), array("q"), array("q")
        at = 0  # tokens so far
        for text in texts:
            header, body = ("", text) if isinstance(text, str) else text
            start = at
            if header:
                toks = syllables(header)
                ids.extend(map(lookup, toks))
                at += len(toks)
            body_starts.append(at)
            for piece in SENTENCE_CUT.split(body):
                toks = syllables(piece)
                if toks:
                    sentence_starts.append(at)
                    ids.extend(map(lookup, toks))
                    at += len(toks)
            lengths.append(at - start)
        syl = np.frombuffer(ids, dtype=np.int32) if ids else np.zeros(0, np.int32)
        lens = np.frombuffer(lengths, dtype=np.int32).astype(np.int64) if lengths else np.zeros(0, np.int64)
        words = list(vocab)
        folded_vocab: dict[str, int] = {}
        to_folded = np.fromiter(
            (folded_vocab.setdefault(fold(w), len(folded_vocab)) for w in words), dtype=np.int32, count=len(words)
        )
        fsyl = to_folded[syl]
        folded_words = list(folded_vocab)
        columns = {  # each made only when its field is built (peak memory)
            "syl": lambda: (syl, lens, words),
            "bi": lambda: _bigrams(syl, lens, words),
            "fsyl": lambda: (fsyl, lens, folded_words),
            "fbi": lambda: _bigrams(fsyl, lens, folded_words),
        }
        fields = {name: _bm25_from_ids(bm25s, *columns[name](), config) for name in FIELDS}
        bounds = np.zeros(len(lens) + 1, dtype=np.int64)
        np.cumsum(lens, out=bounds[1:])
        arrays = {
            "tokens": syl, "bounds": bounds, "body_starts": np.array(body_starts, dtype=np.int64),
            "sentence_starts": np.array(sentence_starts, dtype=np.int64), "folded_ids": to_folded,
        }
        return cls(fields, config, len(lens), arrays)

    def scores(self, query: str, folded: bool | None = None, tokens: dict[str, list[str]] | None = None) -> np.ndarray:
        """BM25F-style score of every chunk for `query` (0 where nothing matches); `tokens`: its
        `tokenize(query, query=True)`, when the caller has them."""
        tokens = tokens or tokenize(query, query=True)
        if folded is None:
            folded = tokens["syl"] == tokens["fsyl"]
        weights = self.config.unaccented if folded else self.config.accented
        total = np.zeros(self.size, dtype=np.float32)
        for name, weight in weights.items():
            if not weight:
                continue
            bm25 = self.fields[name]
            matrix = bm25.scores
            indptr, indices, data = matrix["indptr"], matrix["indices"], matrix["data"]
            for tid in bm25.get_tokens_ids(tokens[name]):  # a repeated token counts again, as in bm25s
                start, end = int(indptr[tid]), int(indptr[tid + 1])
                values = data[start:end] if weight == 1 else data[start:end] * np.float32(weight)
                # a token's postings name each document once: both adds give the same float32 sums
                _scatter_add(total, indices[start:end], values)
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

    def coverage(self, rows: list[int], weights: dict[str, float], pairs: set[str], folded: bool) -> tuple[list[float], list[int]]:
        """For each chunk in `rows`: the largest sum of the `weights` of the words found in one sentence
        of its body (each word once, summed in the order of `weights`), and how many of the bigrams
        `pairs` ("a_b") its body holds, across sentences too.

        Words are tokens of the syllable field ("fsyl" when `folded`); the work is a few numpy passes
        over the rows' stored token ids, whatever their number.
        """
        vocab = self.fields["fsyl" if folded else "syl"].vocab_dict
        slots = {w: s for s, w in enumerate(weights)}  # a word's slot: its place in `weights`
        known = sorted((vocab[w], slots[w]) for w in weights if w in vocab)
        if not rows or not known:
            return [0.0] * len(rows), [0] * len(rows)
        query_ids = np.array([t for t, _ in known], dtype=np.int64)
        slot_of = np.array([s for _, s in known], dtype=np.int64)
        # every body token of the rows, as global positions, and which row each belongs to
        rows_a = np.asarray(rows, dtype=np.int64)
        starts, ends = self.body_starts[rows_a], self.bounds[rows_a + 1]
        lens = ends - starts
        n = int(lens.sum())
        owner = np.repeat(np.arange(len(rows)), lens)
        pos = np.arange(n, dtype=np.int64) + np.repeat(starts - (np.cumsum(lens) - lens), lens)
        toks = self.tokens[pos]
        if folded:
            toks = self.folded_ids[toks]
        where = np.minimum(np.searchsorted(query_ids, toks), len(query_ids) - 1)
        hit = np.flatnonzero(query_ids[where] == toks)
        pos, owner, slot = pos[hit], owner[hit], slot_of[where[hit]]
        n_slots, best = len(weights), np.zeros(len(rows), dtype=np.float64)
        found = np.zeros(len(rows), dtype=np.int64)
        if not len(pos):
            return best.tolist(), found.tolist()
        # the sentence of each matched token; a row's tokens come in order and rows share no sentence, so
        # a change of sentence id starts the next sentence: local numbers without sorting
        sentence = np.searchsorted(self.sentence_starts, pos, side="right") - 1
        first = np.ones(len(sentence), dtype=bool)
        first[1:] = sentence[1:] != sentence[:-1]
        local = np.cumsum(first) - 1
        words = np.zeros((int(local[-1]) + 1, n_slots), dtype=bool)  # sentence x word: present
        words[local, slot] = True
        # each sentence's words once, in slot order: their weights summed in that order (bincount adds in
        # order), as `sum(w for w in weights if w in sentence)` would
        which, word = np.nonzero(words)
        w = np.array(list(weights.values()), dtype=np.float64)
        sums = np.bincount(which, weights=w[word], minlength=len(words))
        np.maximum.at(best, owner[first], sums)
        # bigrams: adjacent matched tokens of the same row, each query pair counted once per row
        pair_keys = [slots[a] * n_slots + slots[b] for a, b in (p.split("_", 1) for p in pairs) if a in slots and b in slots]
        if pair_keys and len(pos) > 1:
            pair_of = np.full(n_slots * n_slots, -1, dtype=np.int64)
            pair_of[pair_keys] = np.arange(len(pair_keys))
            nxt = np.flatnonzero((pos[1:] == pos[:-1] + 1) & (owner[1:] == owner[:-1]))
            pair = pair_of[slot[nxt] * n_slots + slot[nxt + 1]]
            inside = pair >= 0
            held = np.zeros((len(rows), len(pair_keys)), dtype=bool)
            held[owner[nxt[inside]], pair[inside]] = True
            found = held.sum(axis=1)
        return best.tolist(), found.tolist()

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, bm25 in self.fields.items():
            bm25.save(folder / name, show_progress=False)
        for name in _ARRAYS:
            np.save(folder / f"{name}.npy", getattr(self, name))
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
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r" if mmap else None) for name in _ARRAYS}
        return cls(fields, config, int(info["size"]), arrays)


def _fancy_add(total: np.ndarray, rows: np.ndarray, values: np.ndarray) -> None:
    total[rows] += values


# numpy >= 1.25 runs ufunc.at without buffering: one pass over the postings, 2-3x faster than a
# fancy-index add (gather, add, scatter) on long postings; older numpy's add.at is far slower.
_scatter_add = np.add.at if np.lib.NumpyVersion(np.__version__) >= "1.25.0" else _fancy_add

EMPTY = "∅"  # the token of a document with none in a field (bm25s needs one per document)


def _bigrams(ids: np.ndarray, lens: np.ndarray, words: list[str]):
    """Adjacent pairs inside each document as keys a·|V| + b, their documents' lengths, and their words."""
    ends = np.cumsum(lens)
    has_next = np.ones(len(ids), dtype=bool)
    has_next[ends[lens > 0] - 1] = False  # a document's last token starts no pair
    first = np.flatnonzero(has_next)
    n_words = max(len(words), 1)
    keys = ids[first].astype(np.int64) * n_words + ids[first + 1]

    def pair_words(pairs: np.ndarray) -> list[str]:
        return [f"{words[k // n_words]}_{words[k % n_words]}" for k in pairs.tolist()]

    return keys, np.maximum(lens - 1, 0), pair_words


def _bm25_from_ids(bm25s, keys: np.ndarray, lens: np.ndarray, words, config: LexicalConfig):
    """A bm25s.BM25 (method "lucene") over documents given as one flat array of token keys and their lengths.

    `words` is the list of the tokens whose ids are the keys, or a function from the distinct keys
    (ascending) to their tokens. The numbers are those of `bm25s.BM25.index`: idf = log(1 + (N - df
    + 0.5) / (df + 0.5)) as float32, tf / (tf + k1 (1 - b + b |d| / avgdl)) as float64, their
    product stored as float32 in a CSC matrix (a column per token, its documents ascending).
    Arrays are sorted and freed in place: a million chunks peak at a few GB, not tens.
    """
    n_docs = len(lens)
    empty = np.flatnonzero(lens == 0)
    placeholder = int(keys.max()) + 1 if len(keys) else 0
    stride = max(n_docs, 1)
    if placeholder >= np.iinfo(np.int64).max // stride - 1:  # key·N + doc would overflow: make the keys dense
        dense_keys, keys = np.unique(keys, return_inverse=True)
        to_word = words if callable(words) else (lambda ks: [words[k] for k in ks.tolist()])
        words = to_word(dense_keys)
        keys, placeholder = keys.reshape(-1), len(dense_keys)
        del dense_keys
    # every (token, document) cell as one int64 key·N + doc; sorted, runs of equal cells are term frequencies
    cells = keys.astype(np.int64)
    cells *= stride
    cells += np.repeat(np.arange(n_docs, dtype=np.int64), lens)
    if len(empty):  # bm25s needs a token in every document: the empty ones get a placeholder
        cells = np.concatenate([cells, placeholder * stride + empty.astype(np.int64)])
        lens = np.where(lens == 0, 1, lens)
    cells.sort()
    starts = np.flatnonzero(np.concatenate([[True], cells[1:] != cells[:-1]])) if len(cells) else np.zeros(0, np.int64)
    tf = np.diff(np.append(starts, len(cells))).astype(np.float64)
    cells = cells[starts]
    del starts
    rows = (cells % stride).astype(np.int32)
    cells //= stride  # now the token key of each cell
    new_token = np.ones(len(cells), dtype=bool)
    new_token[1:] = cells[1:] != cells[:-1]
    cols = np.cumsum(new_token, dtype=np.int32) - 1
    token_keys = cells[new_token]
    del cells, new_token
    real = token_keys[token_keys != placeholder] if len(empty) else token_keys
    names = words(real) if callable(words) else [words[k] for k in real.tolist()]
    if len(empty):
        names.append(EMPTY)  # the placeholder's key is the largest: its column is the last
    n_words = len(names)
    df = np.bincount(cols, minlength=n_words)
    idf = np.log(1 + (n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
    doc_len = lens.astype(np.float64)
    avg = doc_len.mean() if n_docs else 1.0
    k1, b = config.k1, config.b
    tf /= k1 * ((1 - b) + b * doc_len[rows] / avg) + tf  # the term-frequency component, in place
    data = (idf[cols] * tf).astype(np.float32)
    del tf
    indptr = np.zeros(n_words + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    bm25 = bm25s.BM25(k1=k1, b=b)
    bm25.scores = {"data": data, "indices": rows, "indptr": indptr, "num_docs": n_docs}
    bm25.vocab_dict = {w: i for i, w in enumerate(names)}
    bm25.vocab_dict[""] = n_words  # bm25s adds this "empty token" too
    bm25.unique_token_ids_set = set(bm25.vocab_dict.values())
    bm25.nonoccurrence_array = None
    return bm25
