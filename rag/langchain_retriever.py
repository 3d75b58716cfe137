"""A LangChain retriever over an opened index, for chains and agents.

    >>> from rag import RAG
    >>> from rag.langchain_retriever import RagRetriever
    >>> retriever = RagRetriever(rag=RAG.open("index/"), k=4)             # doctest: +SKIP
    >>> doc = retriever.invoke("Tỷ lệ hộ nghèo Huế 2023?")[0]             # doctest: +SKIP
    >>> doc.metadata["doc_id"], doc.metadata["start"]                      # doctest: +SKIP
    ('004_1400c37e89a2c6fc', 774)

Each `Document` is one chunk: `page_content` is the chunk's text (exactly `document.text[start:end]`)
and `metadata` holds doc_id, source, chunk_id, start, end, score, rank and title.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field


class RagRetriever(BaseRetriever):
    """Hybrid (BM25 + dense when available) retrieval from a `rag.RAG`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    rag: Any = Field(description="an opened rag.RAG")
    k: int = Field(4, ge=1, le=1000, description="passages returned")
    province: str | None = Field(None, description="only documents or passages about this province")
    year: int | None = Field(None, description="only documents or passages about this year")

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self.rag.search(query, self.k, province=self.province, year=self.year)
        documents = self.rag.documents
        out = []
        for hit in hits:
            chunk = hit.chunk
            doc = documents.get(chunk.doc_id)
            out.append(Document(
                page_content=chunk.text,
                id=chunk.id,
                metadata={
                    "doc_id": chunk.doc_id, "source": hit.source, "chunk_id": chunk.id, "start": chunk.start,
                    "end": chunk.end, "score": hit.score, "rank": hit.rank,
                    "title": doc.meta.title if doc is not None else "",
                },
            ))
        return out


__all__ = ["RagRetriever"]
