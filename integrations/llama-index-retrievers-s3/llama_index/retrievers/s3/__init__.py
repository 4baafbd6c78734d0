"""The s3 searcher for LlamaIndex: ``from llama_index.retrievers.s3 import S3Retriever``.

``llama_index`` and ``llama_index.retrievers`` are namespace packages (no ``__init__.py``), as in LlamaIndex's
own integration distributions, so this one installs beside ``llama-index-core`` and the others.
"""

from llama_index.retrievers.s3.base import (
    LlamaIndexBackend,
    S3Retriever,
    llamaindex_embedding,
    openai_compatible_llm,
    passage_to_node,
)

__all__ = ["S3Retriever", "LlamaIndexBackend", "llamaindex_embedding", "openai_compatible_llm", "passage_to_node"]
