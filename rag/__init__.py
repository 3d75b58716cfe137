"""rag: Vietnamese document question answering with cited, exact answers.

    from rag import RAG
    rag = RAG.open("index/")
    hits = rag.search("Tỷ lệ hộ nghèo Huế 2023?")
"""

__version__ = "0.1.0"

from .api import RAG  # noqa: E402

__all__ = ["RAG", "__version__"]
