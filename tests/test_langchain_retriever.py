"""RagRetriever: our hybrid search as a LangChain retriever."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from rag.api import RAG
from rag.errors import UsageError
from rag.langchain_retriever import RagRetriever

HUE_DOC = "004_1400c37e89a2c6fc"


@pytest.fixture(scope="module")
def rag(seeds_index) -> RAG:
    return RAG.open(seeds_index)


def test_documents_are_chunks_with_their_offsets(rag):
    retriever = RagRetriever(rag=rag, k=3)
    assert isinstance(retriever, BaseRetriever)
    docs = retriever.invoke("Tỷ lệ hộ nghèo Huế 2023?")
    assert 1 <= len(docs) <= 3 and all(isinstance(d, Document) for d in docs)
    top = docs[0]
    meta = top.metadata
    assert set(meta) == {"doc_id", "source", "chunk_id", "start", "end", "score", "rank", "title"}
    assert meta["doc_id"] == HUE_DOC and "2,27%" in top.page_content
    assert rag.documents[HUE_DOC].text[meta["start"]:meta["end"]] == top.page_content
    assert meta["source"].endswith(f"{HUE_DOC}.txt") and meta["title"] == rag.documents[HUE_DOC].meta.title
    assert [d.metadata["rank"] for d in docs] == list(range(1, len(docs) + 1))
    assert top.id == meta["chunk_id"]


def test_same_ranking_as_search(rag):
    query = "xuất khẩu lao động Nghệ An 2023"
    docs = RagRetriever(rag=rag, k=5).invoke(query)
    hits = rag.search(query, 5)
    assert [d.metadata["chunk_id"] for d in docs] == [h.chunk.id for h in hits]
    assert [d.metadata["score"] for d in docs] == [h.score for h in hits]


def test_filters(rag):
    docs = RagRetriever(rag=rag, k=10, province="Thừa Thiên Huế", year=2023).invoke("hộ nghèo")
    assert docs and {d.metadata["doc_id"] for d in docs} == {HUE_DOC}


async def _ainvoke(retriever, query):
    return await retriever.ainvoke(query)


def test_batch_and_async(rag):
    import asyncio

    retriever = RagRetriever(rag=rag, k=2)
    batch = retriever.batch(["hộ nghèo Huế", "ty le ho ngheo hue 2023"])
    assert [len(b) for b in batch] == [2, 2]
    docs = asyncio.run(_ainvoke(retriever, "hộ nghèo Huế"))
    assert docs[0].metadata["chunk_id"] == batch[0][0].metadata["chunk_id"]


def test_bad_input(rag):
    with pytest.raises(UsageError):
        RagRetriever(rag=rag).invoke("   ")
    with pytest.raises(ValueError):
        RagRetriever(rag=rag, k=0)
