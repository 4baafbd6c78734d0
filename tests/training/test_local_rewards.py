"""`s3 train local`: an episode's reward goes to the generator while the next episodes roll out."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from s3_agents._tasks import run_sync
from s3_agents.training import reward
from s3_agents.training.local import LocalRun, LocalSettings


class _InFlight:
    """Counts concurrent calls of one kind, and the most seen at once."""

    def __init__(self) -> None:
        self.now = self.most = 0

    async def hold(self, seconds: float) -> None:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.now -= 1


def test_rewards_overlap_the_next_rollouts_and_have_their_own_bound(tmp_path, monkeypatch) -> None:
    rollouts, rewards = _InFlight(), _InFlight()
    overlapped: list[bool] = []

    class Loop:
        async def run(self, sampling: dict[str, Any], **row: Any) -> Any:
            await rollouts.hold(0.02)
            return SimpleNamespace(extra_fields={"s3_question": row["q"]})

    async def fake_score(data_source: str, solution: str, truth: Any, info: dict[str, Any], **kwargs: Any
                         ) -> dict[str, float]:
        overlapped.append(rollouts.now > 0)
        await rewards.hold(0.2)                          # the generator is slower than a rollout here
        return {"score": float(info["s3_question"])}

    monkeypatch.setattr(reward, "compute_score", fake_score)
    rows = [{"q": i, "reward_model": {"ground_truth": {"target": ["x"]}}} for i in range(8)]
    run = LocalRun(tmp_path, rows, object(), {}, LocalSettings(engine="transformers", contexts=2,
                                                                reward_concurrency=3, batch_size=8))
    episodes = run_sync(run._episodes(Loop(), run._batch(0), 2))

    assert rollouts.most == 2                            # the engine's contexts
    assert rewards.most == 3                             # the generator's slots, not the rollout slots
    assert any(overlapped)                               # a reward was asked while episodes still rolled out
    assert [score["score"] for _, score in episodes] == [float(row["q"]) for _, row in run._batch(0)]
    assert all(score["reward_seconds"] >= 0.2 for _, score in episodes)


def test_reward_concurrency_is_checked(tmp_path) -> None:
    with pytest.raises(ValueError, match="reward_concurrency"):
        LocalRun(tmp_path, [{"q": 1}], object(), {}, LocalSettings(engine="transformers", reward_concurrency=0))
