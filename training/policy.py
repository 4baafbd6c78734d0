"""The searcher's policy during training: a chat client over verl's token-in/token-out rollout server.

The search graph talks to its policy in chat messages; verl trains on token ids. :class:`VerlPolicy`
sits between the two. It keeps the running token stream of the episode and, for each graph turn,
appends only what is new: the environment's messages (retrieved documents, invalid-action
feedback) rendered by verl's Continuous Token builder with mask 0, then the ids the rollout server
generated, as generated, with mask 1. Model ids never round-trip through text; the decoded text is
only what the graph parses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any
from uuid import uuid4

from s3_agents.llm.base import Completion, Message

__all__ = ["ResponseBudgetSpent", "VerlPolicy", "turn_closing_ids"]


class ResponseBudgetSpent(Exception):
    """The episode's response tokens reached ``response_length``: no room for another generation."""


def turn_closing_ids(tokenizer: Any, chat_template_kwargs: dict[str, Any] | None = None) -> list[int]:
    """Token ids the chat template writes after an assistant message (ChatML: ``<|im_end|>``, newline).

    Generation that stops on a stop string (``</query>``) does not write them; the policy appends them
    (mask 0) so the next message starts where the chat template would start it.
    """
    marker = "S3_CLOSING_MARKER"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": marker}],
        tokenize=False, **(chat_template_kwargs or {}))
    suffix = text[text.rindex(marker) + len(marker):]
    return list(tokenizer.encode(suffix, add_special_tokens=False)) if suffix else []


class VerlPolicy:
    """An :class:`~s3_agents.llm.AsyncChatClient` that generates through verl's ``server_manager`` (async only, as
    verl's rollout is: run the graph with ``ainvoke`` / ``astream``).

    One instance serves one episode. Sampling settings come from the trainer (``sampling_params``),
    not from the graph; the graph's ``max_tokens`` is capped by what is left of ``response_length``.

    Args:
        server_manager: verl's ``LLMServerClient`` (or anything with the same ``generate``).
        builder: verl's Continuous Token builder for the tokenizer.
        tokenizer: The policy's tokenizer.
        sampling_params: verl's per-sample sampling parameters (temperature, top_p, logprobs...).
        response_length: Token budget of everything after the prompt (model and environment).
        max_obs_tokens: Cap on an inserted observation's content, in tokens (s3: 1400); longer ones are cut.
        cap_prompt: Applied to the first prompt's ids (verl's prompt-length cap).
        request_id: Sticky-routing id for the rollout server (default: a fresh uuid).

    Example:
        >>> policy = VerlPolicy(server, builder, tokenizer, {"temperature": 0.6},
        ...                     response_length=1024)                                  # doctest: +SKIP
        >>> await S3Searcher(policy, retriever).asearch("Who founded Gritia?")       # doctest: +SKIP
    """

    model = "verl-rollout"

    def __init__(self, server_manager: Any, builder: Any, tokenizer: Any, sampling_params: dict[str, Any], *,
                 response_length: int, max_obs_tokens: int | None = None,
                 cap_prompt: Callable[[list[int]], list[int]] | None = None, request_id: str | None = None) -> None:
        self.server_manager = server_manager
        self.builder = builder
        self.tokenizer = tokenizer
        self.sampling_params = dict(sampling_params)
        self.response_length = response_length
        self.max_obs_tokens = max_obs_tokens
        self.cap_prompt = cap_prompt or (lambda ids: ids)
        self.request_id = request_id or uuid4().hex
        self.closing = turn_closing_ids(tokenizer, getattr(builder, "chat_template_kwargs", None))
        self.prompt_ids: list[int] | None = None
        self.response_ids: list[int] = []
        self.response_mask: list[int] = []
        self.response_logprobs: list[float] = []
        self.generate_seconds = 0.0
        self.truncated_observations = 0
        self._messages: list[Message] = []
        self._with_logprobs = bool(self.sampling_params.get("logprobs"))

    # -- token bookkeeping ---------------------------------------------------------------------
    def _append(self, ids: Sequence[int], *, generated: bool, logprobs: Sequence[float] | None = None) -> None:
        self.response_ids.extend(int(i) for i in ids)
        self.response_mask.extend([1 if generated else 0] * len(ids))
        if self._with_logprobs:
            self.response_logprobs.extend(logprobs if logprobs is not None else [0.0] * len(ids))

    @property
    def remaining(self) -> int:
        """Response tokens still available in this episode."""
        return self.response_length - len(self.response_ids)

    def _cut(self, message: Message) -> Message:
        if self.max_obs_tokens is None:
            return dict(message)
        ids = self.tokenizer.encode(message["content"], add_special_tokens=False)
        if len(ids) <= self.max_obs_tokens:
            return dict(message)
        self.truncated_observations += 1
        return {**message, "content": self.tokenizer.decode(ids[:self.max_obs_tokens]) + " ...(truncated)"}

    def _absorb(self, messages: Sequence[Message]) -> None:
        """Bring the token stream up to ``messages``: the first prompt, or the environment's new messages."""
        if self.prompt_ids is None:
            self._messages = [dict(m) for m in messages]
            self.prompt_ids = self.cap_prompt(list(self.builder.build_initial_tokens(self._messages)))
            return
        if len(messages) <= len(self._messages) or messages[len(self._messages)]["role"] != "assistant":
            raise ValueError("VerlPolicy serves one episode: expected the history it generated plus new messages")
        # The assistant message's tokens are already in the stream (as generated, then closed).
        self._messages.append(dict(messages[len(self._messages)]))
        new = [self._cut(m) for m in messages[len(self._messages):]]
        if new:
            delta = self.builder.tokenize_context_incremental_messages(self._messages, self._messages + new)
            self._append(delta, generated=False)
            self._messages.extend(new)

    # -- AsyncChatClient ----------------------------------------------------------------------------
    async def achat(self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0,
                    stop: Sequence[str] | None = None, seed: int | None = None,
                    grammar: str | None = None) -> Completion:
        """Generate the next assistant turn; the trainer's sampling parameters apply, not ``temperature``.

        A ``grammar`` goes to the rollout server as ``sampling_params["grammar"]``
        (:class:`~s3_agents.training.local_server.TransformersServer` enforces it; verl's vLLM server does not take it).

        Raises:
            ResponseBudgetSpent: When no response tokens are left for this episode.
        """
        self._absorb(messages)
        if self.remaining <= 0:
            raise ResponseBudgetSpent(f"response_length={self.response_length} tokens used up")
        params = {**self.sampling_params, "max_tokens": min(max_tokens, self.remaining)}
        if stop:
            params["stop"] = list(stop)
            params["include_stop_str_in_output"] = True  # the stop string's tokens stay in the trained ids
        if grammar is not None:
            params["grammar"] = grammar
        started = time.perf_counter()
        output = await self.server_manager.generate(self.request_id, prompt_ids=self.prompt_ids + self.response_ids,
                                                    sampling_params=params)
        self.generate_seconds += time.perf_counter() - started
        ids = list(output.token_ids)[:self.remaining]
        logprobs = list(output.log_probs)[:len(ids)] if self._with_logprobs and output.log_probs else None
        self._append(ids, generated=True, logprobs=logprobs)
        ended = bool(ids) and bool(self.closing) and ids[-1] == self.closing[0]
        self._append(self.closing[1:] if ended else self.closing, generated=False)

        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        found = None
        for s in stop or ():
            at = text.find(s)
            if at >= 0 and (found is None or at < text.find(found)):
                found = s
        if found is not None:
            text = text[:text.find(found) + len(found)]
        # A server that drops the stop string's tokens still stopped early: that is a stop, not the token limit.
        finish = "stop" if ended or found or len(ids) < params["max_tokens"] else "length"
        return Completion(text=text, finish_reason=finish, stop=found, prompt_tokens=len(self.prompt_ids),
                          completion_tokens=len(ids))
