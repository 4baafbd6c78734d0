"""LLM clients behind one protocol: OpenAI-compatible endpoints, llama.cpp and transformers in-process."""

from s3_agents.llm.base import AsyncChatClient, ChatClient, Completion, Message, truncate_at_stop
from s3_agents.llm.gguf_cache import gguf_transformers_dir
from s3_agents.llm.gguf_lora import gguf_lora_for, write_gguf_lora
from s3_agents.llm.llama_server import LocalLlamaServer, find_llama_server
from s3_agents.llm.local import LlamaCppClient, TransformersClient, smollm2_gguf_path
from s3_agents.llm.openai_compat import OpenAICompatClient
from s3_agents.llm.reference import ReferenceFormatClient, load_tokenizer

__all__ = [
    "AsyncChatClient",
    "ChatClient",
    "Completion",
    "Message",
    "OpenAICompatClient",
    "LlamaCppClient",
    "TransformersClient",
    "ReferenceFormatClient",
    "load_tokenizer",
    "LocalLlamaServer",
    "find_llama_server",
    "smollm2_gguf_path",
    "write_gguf_lora",
    "gguf_lora_for",
    "gguf_transformers_dir",
    "truncate_at_stop",
]
