"""The PettingZoo face of native environments, and the frame writers."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from marl.envs import make, parallel_env
from marl.envs.testing import check_parallel_env
from marl.render import save_gif, save_png


@pytest.mark.parametrize(
    "env_id", ["lbf:8x8-2p-3f", "lbf:2s-10x10-3p-3f-coop", "lbf:grid-2s-8x8-2p-2f"]
)
def test_pettingzoo_api_and_seed(env_id):
    check_parallel_env(lambda: parallel_env(env_id))


def test_masks_state_and_episode_end():
    env = parallel_env("lbf:5x5-2p-1f", max_episode_steps=4)
    obs, infos = env.reset(seed=3)
    assert set(obs) == {"agent_0", "agent_1"}
    mask = infos["agent_0"]["action_mask"]
    assert mask.dtype == np.int8 and mask.shape == (6,) and mask[0] == 1
    assert env.state().shape == env.state_space.shape == (3 + 6,)
    native = make("lbf:5x5-2p-1f", max_episode_steps=4)
    native_obs = native.reset(seed=3)
    np.testing.assert_array_equal(env.state(), native_obs.state[0].numpy())
    for _ in range(4):
        assert env.agents
        _, rewards, terms, truncs, infos = env.step({a: 0 for a in env.agents})
    assert env.agents == [] and all(truncs.values()) and not any(terms.values())
    assert int(env.env.state.step[0]) == 4  # the final state is kept (render shows it)
    with pytest.raises(RuntimeError, match="reset"):
        env.step({"agent_0": 0, "agent_1": 0})


def test_bad_actions_are_named():
    env = parallel_env("lbf:8x8-2p-3f")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="agent_1"):
        env.step({"agent_0": 0})
    with pytest.raises(ValueError, match="agent_0: action 9"):
        env.step({"agent_0": 9, "agent_1": 0})


def test_render_png_and_gif(tmp_path):
    env = parallel_env("lbf:8x8-2p-3f", render_mode="rgb_array")
    env.reset(seed=0)
    frames = [env.render()]
    for _ in range(3):
        env.step({a: 1 for a in env.agents})
        frames.append(env.render())
    save_png(frames[0], tmp_path / "f.png")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "f.png")), frames[0])
    save_gif(frames, tmp_path / "e.gif")
    assert Image.open(tmp_path / "e.gif").n_frames >= 2
    with pytest.raises(ValueError, match="uint8"):
        save_png(frames[0].astype(np.float32), tmp_path / "bad.png")
    assert parallel_env("lbf:8x8-2p-3f").render() is None
