"""The writer thread that overlaps index writes with embedding (``feeding``)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from s3_agents.retrievers._store import feeding


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
