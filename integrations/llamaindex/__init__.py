"""LlamaIndex integration of s3-agents (layout of LlamaIndex's own retriever integrations: ``base.py``)."""

from integrations.llamaindex.base import (
    LlamaIndexBackend,
    S3Retriever,
    llamaindex_embedding,
    openai_compatible_llm,
    passage_to_node,
)

__all__ = ["S3Retriever", "LlamaIndexBackend", "llamaindex_embedding", "openai_compatible_llm", "passage_to_node"]
