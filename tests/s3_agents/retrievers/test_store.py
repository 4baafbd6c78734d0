"""The writer thread that overlaps index writes with embedding (``feeding``), and resumable embedding's chunks."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from s3_agents.retrievers._store import IndexStore, feeding


def test_blocks_reach_the_consumer_in_order_in_another_thread() -> None:
    seen, threads = [], set()

    def consume(blocks):
        for block in blocks:
            threads.add(threading.current_thread().name)
            seen.append(int(block[0, 0]))

    with feeding(consume) as feed:
        for i in range(20):
            feed(np.full((2, 3), i))
    assert seen == list(range(20)) and threads == {"index-writer"}


def test_a_failing_consumer_stops_the_producer_with_its_error() -> None:
    fed = []

    def consume(blocks):
        for i, _ in enumerate(blocks):
            if i == 2:
                raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), feeding(consume, depth=1) as feed:
        for i in range(1000):
            feed(np.zeros((1, 1)))
            fed.append(i)
    assert len(fed) < 10                                          # it stopped soon, and nothing hung


def test_a_failing_producer_stops_the_consumer() -> None:
    finished = []

    def consume(blocks):
        for _ in blocks:
            pass
        finished.append(True)                                     # only on a normal end

    with pytest.raises(KeyboardInterrupt), feeding(consume) as feed:
        feed(np.zeros((1, 1)))
        raise KeyboardInterrupt
    assert finished == []


def test_distributed_chunks_must_come_back_in_order_and_whole(tmp_path, hashing) -> None:
    """``embed_chunks`` (a Ray cluster's embedding) yields (number, vectors); a chunk out of turn or short is refused
    before it is saved, and the chunks saved before it are reused by the next run."""
    texts = [f"passage number {i}" for i in range(10)]

    def cluster(swap: bool = False, short: bool = False):
        def embed_chunks(missing):
            out = [(i, hashing.embed_passages(chunk)) for i, chunk in missing]
            if swap:
                out[1], out[2] = out[2], out[1]
            if short:                       # the first chunk not saved yet
                out[0] = (out[0][0], out[0][1][:-1])
            yield from out
        return embed_chunks

    store = IndexStore(tmp_path / "idx")
    with pytest.raises(RuntimeError, match="returned chunk 2 where chunk 1 was due"):
        store.embed_resumable(texts, hashing.embed_passages, fingerprint="fp", chunk_size=3, show_progress=False,
                              embed_chunks=cluster(swap=True))
    assert sorted(p.name for p in (tmp_path / "idx" / ".partial").glob("chunk-*")) == ["chunk-000000.npy"]
    with pytest.raises(RuntimeError, match="returned 2 vectors for chunk 1 of 3 texts"):
        store.embed_resumable(texts, hashing.embed_passages, fingerprint="fp", chunk_size=3, show_progress=False,
                              embed_chunks=cluster(short=True))
    vectors, reused = store.embed_resumable(texts, hashing.embed_passages, fingerprint="fp", chunk_size=3,
                                            show_progress=False, embed_chunks=cluster())
    assert reused == 1
    np.testing.assert_array_equal(vectors.to_array(), hashing.embed_passages(texts))
