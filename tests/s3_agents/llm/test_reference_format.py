"""The reference prompt format (spec 1.1-1.4) on SmolLM2's chat template: exact strings and exact token ids.

The released checkpoint (``pat-jj/s3-8-3-3-20steps``) cannot be downloaded here, so this is tested on the
format, with SmolLM2's tokenizer and template, not on those weights.
"""

from __future__ import annotations

import pytest

from s3_agents import FaissRetriever, OpenAICompatClient, S3Searcher, SearchConfig, load_demo_corpus
from s3_agents.llm import ReferenceFormatClient, smollm2_gguf_path
from s3_agents.protocol import REFERENCE_FEEDBACK, START_MARKER, format_observation, prompt_question, searcher_prompt
from s3_agents.testing import ScriptedClient

QUESTION = "What is the currency of Ketroul"   # normalised to end in "?", as the reference did
SMOLLM2_HEAD = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                "<|im_start|>user\n")
OUTPUTS = [
    "I think I should look it up.",                                        # invalid: no tag at all
    '{"query": "Ketroul currency"}</query>\nand text after the query',     # closes the opened <query>
    "<important_info>[1, 3]</important_info><search_complete>True</search_complete>",
]


@pytest.fixture(scope="module")
def tokenizer():
    from s3_agents.llm import load_tokenizer

    return load_tokenizer(smollm2_gguf_path())


@pytest.fixture(scope="module")
def retriever() -> FaissRetriever:
    from s3_agents import HashingEmbedder

    return FaissRetriever.from_passages(load_demo_corpus().passages, HashingEmbedder(dim=256))


@pytest.fixture(scope="module")
def episode(tokenizer, retriever):
    inner = ScriptedClient(OUTPUTS)
    state = S3Searcher(ReferenceFormatClient(inner, tokenizer), retriever,
                       SearchConfig.from_name("8-3-3", prompt_format="reference")).search(QUESTION)
    return state, inner.prompts


def test_first_prompt_is_one_user_turn_through_the_template(episode, tokenizer, retriever) -> None:
    state, prompts = episode
    initial = retriever.search([QUESTION + "?"], 3)[0]
    docs = "\n".join(f'Doc {i} (Title: "{p.title}") {p.text}' for i, p in enumerate(initial, 1))
    user = searcher_prompt(QUESTION + "?", f"<information>\n{docs}\n</information>", max_select=3, max_turns=3)
    assert user.endswith(f"{START_MARKER}\n<question>\n{QUESTION}?\n</question>\n<information>\n{docs}\n"
                         "</information>")
    assert tokenizer.decode(prompts[0]) == SMOLLM2_HEAD + user + "<|im_end|>\n<|im_start|>assistant\n"
    assert prompts[0] == tokenizer.apply_chat_template([{"role": "user", "content": user}],
                                                       add_generation_prompt=True, tokenize=True, return_dict=False)
    assert prompt_question(user) == QUESTION + "?"
    assert prompt_question(docs) is None


def test_the_episode_grows_one_assistant_turn_piece_by_piece(episode, tokenizer) -> None:
    state, prompts = episode
    (search,) = [b for b in state["blocks"] if b["turn"] == 1]
    observation = "\n\n<information>" + "".join(
        f"Doc {i}(Title: {p.title}) {p.text}\n" for i, p in enumerate(search["passages"], 1)) + "</information>\n\n"
    assert format_observation(search["passages"], "reference") == observation
    kept = '<query>\n{"query": "Ketroul currency"}</query>'                # cut after </query>, <query> put back
    assert state["outputs"] == [OUTPUTS[0], kept, OUTPUTS[2]]
    assert REFERENCE_FEEDBACK.endswith("\n<query>\n")

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False)

    assert prompts[1] == prompts[0] + encode(OUTPUTS[0]) + encode(REFERENCE_FEEDBACK)
    assert prompts[2] == prompts[1] + encode(kept) + encode(observation)
    # No chat boundary after the first user turn: <|im_end|> only closes the system line and the user prompt.
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert prompts[2].count(im_end) == 2 and prompts[2][:len(prompts[0])] == prompts[0]
    text = tokenizer.decode(prompts[2])
    assert text.endswith("<|im_start|>assistant\n" + OUTPUTS[0] + REFERENCE_FEEDBACK + kept + observation)
    assert state["queries"] == ["Ketroul currency"] and state["stop_reason"] == "complete"
    assert [p.id for p in state["context"]][:2] == [search["passages"][0].id, search["passages"][2].id]


def test_the_format_is_a_pair_of_client_and_config(tokenizer, retriever) -> None:
    with pytest.raises(ValueError, match="reference format is a pair"):
        S3Searcher(ScriptedClient(OUTPUTS), retriever, SearchConfig(prompt_format="reference"))
    with pytest.raises(ValueError, match="reference format is a pair"):
        S3Searcher(ReferenceFormatClient(ScriptedClient(OUTPUTS), tokenizer), retriever, SearchConfig())
    with pytest.raises(ValueError, match="no constrained decoding"):
        SearchConfig(prompt_format="reference", constrained=True)
    with pytest.raises(ValueError, match="'chat' or 'reference'"):
        SearchConfig(prompt_format="qwen")


def test_the_completions_request_carries_the_ids(tokenizer) -> None:
    """To an OpenAI-compatible server the prompt goes as a list of token ids (vLLM's /v1/completions takes it)."""
    import json

    import httpx

    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"choices": [{"text": "<search_complete>True</search_complete>",
                                                      "finish_reason": "stop", "index": 0}]})

    client = OpenAICompatClient("http://llm.test/v1", "pat-jj/s3-8-3-3-20steps",
                                http_client=httpx.Client(transport=httpx.MockTransport(handler)))
    policy = ReferenceFormatClient(client, tokenizer)
    messages = [{"role": "user", "content": "question"}, {"role": "assistant", "content": "<query>x</query>"},
                {"role": "user", "content": format_observation([], "reference")}]
    assert policy.chat(messages, max_tokens=8, stop=None).text == "<search_complete>True</search_complete>"
    assert seen[0]["prompt"] == policy.prompt_ids(messages) and "stop" not in seen[0]
    assert seen[0]["model"] == "pat-jj/s3-8-3-3-20steps"


@pytest.mark.slow
def test_a_real_model_reads_the_ids(tokenizer, retriever) -> None:
    """SmolLM2 in process (llama.cpp) generates from the very ids: it counts exactly our prompt."""
    from s3_agents.llm import LlamaCppClient

    policy = ReferenceFormatClient(LlamaCppClient(n_ctx=8192), tokenizer)
    messages = [{"role": "user", "content": searcher_prompt("Who founded Seloun Guild?", "", max_select=3,
                                                            max_turns=3)}]
    reply = policy.chat(messages, max_tokens=8)
    assert reply.prompt_tokens == len(policy.prompt_ids(messages))
    config = SearchConfig.from_name("8-3-1", prompt_format="reference", max_new_tokens=48)
    state = S3Searcher(policy, retriever, config).search("Who founded Seloun Guild?")
    assert state["outputs"] and state["stop_reason"] in ("complete", "max_turns", "max_generations")
    policy.close()


def test_s3_eval_method_runs_the_reference_format(tokenizer, retriever) -> None:
    """`S3Method` counts tokens below the format (where the ids go), so the pair survives its wrapping."""
    import asyncio

    from s3_agents import Generator
    from s3_agents.evaluation import S3Method

    policy = ReferenceFormatClient(ScriptedClient(["<search_complete>True</search_complete>"]), tokenizer)
    method = S3Method(policy, retriever, Generator(ScriptedClient(lambda messages: "mobroun")),
                      SearchConfig(prompt_format="reference"))
    result = asyncio.run(method.arun(QUESTION))
    assert result.turns == 1 and result.extra["stop_reason"] == "complete" and result.answer == "mobroun"
    # `s3 eval --format reference`: only the s3 method gets the format; the baselines keep plain chat.
    from s3_agents.evaluation import build_methods

    plain = ScriptedClient(["x"])
    built = build_methods(["s3", "query-rewrite"], policy=plain, retriever=retriever, generator=None,
                          config=SearchConfig(prompt_format="reference"), s3_policy=policy)
    assert built[0].policy is policy and built[1].rewriter is plain


@pytest.mark.slow
def test_s3_search_format_reference_cli(s3, tmp_path) -> None:
    import json

    code, out, err = s3("search", "Who founded Seloun Guild?", "--format", "reference", "--config", "8-3-0",
                        "--no-answer", "--json", "--html", str(tmp_path / "episode.html"))
    assert code == 0, err
    state = json.loads(out)
    assert state["outputs"] and state["transcript"][0]["text"].endswith("</information>")
    assert (tmp_path / "episode.html").stat().st_size > 1000
    code, _, err = s3("search", "q", "--policy-tokenizer", "x")
    assert code == 2 and "--policy-tokenizer goes with --format reference" in err
    code, _, err = s3("search", "q", "--format", "qwen")
    assert code == 2 and "'qwen' is not one of 'chat', 'reference'" in err
