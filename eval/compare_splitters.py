"""How the two sentence splitters differ on an index's documents, and what chunking with the fast one would do.

`rag.chunker.split_sentences` (underthesea, line by line) cuts documents into chunks: chunk ids are its
boundaries. `rag.text.sentence_spans` (a regex that also cuts after ";" and before a capital after ":")
gives the clauses the answerer scores and quotes, and the index stores one vector per such sentence of each
chunk. `rag.lexical.SENTENCE_CUT` (after any ". ! ? ; :" and a space, whatever follows) gives the pieces
whose token starts the lexical index stores for the reranker's best-sentence coverage. Each serves its
role: using one for another would change the chunk ids, the stored sentence rows or the stored starts.

    python eval/compare_splitters.py .cache/seeds-dense
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag import chunker  # noqa: E402
from rag.lexical import SENTENCE_CUT  # noqa: E402
from rag.api import RAG  # noqa: E402
from rag.text import sentence_spans, syllables  # noqa: E402


def _regex_split(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    end = len(text) if end is None else end
    return [(start + s, start + e) for s, e in sentence_spans(text[start:end])]


def _starts(pieces: list[str]) -> list[int]:
    """The token positions where each piece with tokens starts (how the lexical index stores sentences)."""
    out, at = [], 0
    for piece in pieces:
        n = len(syllables(piece))
        if n:
            out.append(at)
            at += n
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("index", type=Path, nargs="?", default=ROOT / ".cache" / "seeds-dense")
    args = ap.parse_args(argv)
    docs = list(RAG.open(args.index, llm=False).documents.values())  # (opened, never written)
    tok = [set(chunker.split_sentences(d.text)) for d in docs]
    reg = [set(sentence_spans(d.text)) for d in docs]
    print(f"{len(docs)} documents: underthesea {sum(map(len, tok))} sentences, regex {sum(map(len, reg))}, "
          f"the same spans {sum(len(a & b) for a, b in zip(tok, reg))}; documents split alike: "
          f"{sum(a == b for a, b in zip(tok, reg))}")
    ids = [c.id for d in docs for c in chunker.chunk_document(d)]
    underthesea, chunker.split_sentences = chunker.split_sentences, _regex_split
    try:
        regex = [c.id for d in docs for c in chunker.chunk_document(d)]
    finally:
        chunker.split_sentences = underthesea
    print(f"chunks: {len(ids)}; chunked with the regex instead: {len(regex)}, of which {len(set(ids) & set(regex))} "
          "keep their id")
    chunks = [c for d in docs for c in chunker.chunk_document(d)]
    alike = sum(_starts([c.text[a:b] for a, b in sentence_spans(c.text)]) == _starts(SENTENCE_CUT.split(c.text))
                for c in chunks)
    print(f"the reranker's sentences (lexical.SENTENCE_CUT) and the answerer's (text.sentence_spans) alike in {alike} "
          f"of {len(chunks)} chunks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
