"""Learners learn: greedy test return >= 0.9 on a small LBF task in a fixed, seeded budget.

The task is ``lbf:5x5-2p-1f`` (two agents, one food; return 1 = the food eaten). The budget is
25,000 env steps with 8 copies, a GRU agent of width 32 and faster schedules than EPyMARL's
2M-step defaults (ε over 5k steps, lr 1e-3, target copy every 50 updates, TD(λ=0.6), batches
of 16 episodes), which were measured to reach 0.95 (QMIX) and 0.99 (IQL) here.
"""

from __future__ import annotations

import pytest

from marl.config import load_config
from marl.train import train

FAST = ("epsilon_anneal_time=5000", "use_rnn=true", "hidden_dim=32", "lr=0.001",
        "target_update_interval=50", "td_lambda=0.6", "batch_size=16")


@pytest.mark.parametrize("algo", ["iql", "qmix"])
def test_learns_small_lbf_task(tmp_path, algo):
    cfg = load_config(algo, "lbf:5x5-2p-1f", flags=dict(
        steps=25_000, num_envs=8, seed=1, progress=False, tensorboard=False,
        test_interval=0, test_episodes=100, runs_dir=str(tmp_path), name=algo,
        save_replay=False), overrides=FAST)
    summary = train(cfg)
    assert summary["env_steps"] == 25_000
    assert summary["test_return_mean"] >= 0.9, summary
