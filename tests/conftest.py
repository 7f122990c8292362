"""Shared fixtures."""

from __future__ import annotations

from typing import Any

import pytest
import torch


@pytest.fixture
def foraging_env():
    """A factory of ``lbforaging.ForagingEnv`` with the settings its gymnasium ids use."""
    environment = pytest.importorskip("lbforaging.foraging.environment")

    def build(size: int, players: int, food: int, coop: bool, sight: int, **extra: Any):
        kwargs = dict(
            players=players,
            min_player_level=1,
            max_player_level=2,
            field_size=(size, size),
            min_food_level=1,
            max_food_level=None,
            max_num_food=food,
            sight=sight,
            max_episode_steps=50,
            force_coop=coop,
        )
        return environment.ForagingEnv(**{**kwargs, **extra})

    return build


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread is fastest and is not slowed by a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
