"""One client across event loops and threads; blocking APIs inside a running loop; a batch with a failing episode."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from s3_agents import FaissRetriever, S3Searcher
from s3_agents._tasks import gather_bounded, run_sync
from s3_agents.errors import BatchError, LLMUnavailableError
from s3_agents.llm.base import Completion, ThreadedClient
from s3_agents.testing import ScriptedClient

STOP = "<search_complete>True</search_complete>"


class SlowModel(ThreadedClient):
    """A sync model that takes a while and records whether two calls ever overlapped."""

    model = "slow"

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self.running = 0
        self.overlapped = False
        self.calls = 0

    def chat(self, messages, **kwargs) -> Completion:
        with self._guard:
            self.running += 1
            self.overlapped |= self.running > 1
            time.sleep(0.01)
            self.calls += 1
            self.running -= 1
        return Completion(text=STOP)


def test_threaded_client_serves_many_loops_and_threads_one_call_at_a_time() -> None:
    client = SlowModel()

    async def burst() -> list[Completion]:
        return await asyncio.gather(*(client.achat([{"role": "user", "content": "q"}]) for _ in range(4)))

    assert len(asyncio.run(burst())) == 4
    assert len(asyncio.run(burst())) == 4            # a second loop: this raised "bound to a different event loop"
    threads = [threading.Thread(target=lambda: asyncio.run(burst())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert client.calls == 20 and not client.overlapped


@pytest.fixture(scope="module")
def retriever(demo_corpus, hashing_module):
    return FaissRetriever.from_passages(demo_corpus.passages, hashing_module)


@pytest.fixture(scope="module")
def hashing_module():
    from s3_agents.embedders import HashingEmbedder

    return HashingEmbedder(dim=256)


def test_batch_works_inside_a_running_loop(retriever) -> None:
    searcher = S3Searcher(ScriptedClient(lambda messages: STOP), retriever)

    async def notebook_cell() -> list:
        return searcher.batch(["Who founded Seloun Guild?", "What is the currency of Ketroul?"])  # no await

    states = asyncio.run(notebook_cell())
    assert [s["stop_reason"] for s in states] == ["complete", "complete"]
    assert run_sync(asyncio.sleep(0, result=7)) == 7


class FailsOn(ScriptedClient):
    """Stops at once, except on one question, where the endpoint is down."""

    def __init__(self, bad: str) -> None:
        super().__init__(lambda messages: STOP)
        self.bad = bad

    async def achat(self, messages, **kwargs) -> Completion:
        if any(self.bad in m["content"] for m in messages):
            raise LLMUnavailableError("endpoint down", url="http://127.0.0.1:9/v1")
        await asyncio.sleep(0.01)
        return await super().achat(messages, **kwargs)


def test_abatch_with_a_failing_episode_keeps_the_others_and_leaves_no_task(retriever) -> None:
    questions = ["Who founded Seloun Guild?", "Which river flows through Gritia?", "What is the currency of Ketroul?"]
    searcher = S3Searcher(FailsOn(questions[1]), retriever)

    async def run() -> BatchError:
        with pytest.raises(BatchError) as caught:
            await searcher.abatch(questions, concurrency=2)
        assert asyncio.all_tasks() == {asyncio.current_task()}     # nothing left running
        return caught.value

    error = asyncio.run(run())
    assert list(error.errors) == [1] and isinstance(error.errors[1], LLMUnavailableError)
    assert isinstance(error.__cause__, LLMUnavailableError) and "1 of 3 episodes failed" in str(error)
    assert error.results[1] is None
    assert [s["question"] for s in (error.results[0], error.results[2])] == [questions[0], questions[2]]

    mixed = searcher.batch(questions, return_exceptions=True)
    assert isinstance(mixed[1], LLMUnavailableError) and mixed[2]["stop_reason"] == "complete"


def test_gather_bounded_cancels_the_rest_on_a_failure_and_bounds_concurrency() -> None:
    started, finished, running, peak = [], [], [0], [0]

    async def job(i: int) -> int:
        started.append(i)
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        try:
            await asyncio.sleep(0.01 if i != 1 else 0)
            if i == 1:
                raise ValueError("job 1 failed")
            await asyncio.sleep(10)
            finished.append(i)
            return i
        finally:
            running[0] -= 1

    async def run() -> None:
        with pytest.raises(ValueError, match="job 1 failed"):          # itself, not an exception group
            await gather_bounded((job(i) for i in range(6)), concurrency=3)
        assert asyncio.all_tasks() == {asyncio.current_task()}

    asyncio.run(run())
    assert finished == [] and peak[0] <= 3 and running[0] == 0
    assert asyncio.run(gather_bounded([asyncio.sleep(0, result=i) for i in range(5)], concurrency=2)) == list(range(5))
    with pytest.raises(ValueError, match="concurrency"):
        asyncio.run(gather_bounded([], concurrency=0))


@pytest.mark.slow
def test_llama_cpp_and_transformers_clients_across_two_asyncio_runs() -> None:
    from s3_agents.llm import LlamaCppClient, TransformersClient, smollm2_gguf_path

    messages = [{"role": "user", "content": "Name a colour."}]
    path = smollm2_gguf_path()
    for client in (LlamaCppClient(n_ctx=512), TransformersClient(str(path.parent), gguf_file=path.name)):
        first = asyncio.run(client.achat(messages, max_tokens=4))
        second = asyncio.run(client.achat(messages, max_tokens=4))        # failed before: lock bound to loop one
        assert first.text and first.text == second.text                    # greedy: the same answer
        client.close()


def test_openai_compat_client_across_two_asyncio_runs_leaves_no_failing_close(llama_server, caplog) -> None:
    import gc

    from s3_agents.llm import OpenAICompatClient

    client = OpenAICompatClient(llama_server.url, llama_server.model)
    messages = [{"role": "user", "content": "Name a colour."}]

    async def twice() -> list[str]:                  # the second loop drops the first loop's HTTP client
        replies = [await client.achat(messages, max_tokens=4)]
        gc.collect()
        await asyncio.sleep(0.05)
        return [r.text for r in replies]

    with caplog.at_level("ERROR", logger="asyncio"):
        first = asyncio.run(twice())
        second = asyncio.run(twice())
        gc.collect()
    assert first == second
    assert not [r for r in caplog.records if "Event loop is closed" in r.getMessage() + str(r.exc_info)]
    client.close()
