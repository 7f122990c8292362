"""The shipped checkers (``marl.envs.testing``) pass a correct environment and name what a
broken one breaks, also under ``python -O`` (they raise, they do not ``assert``)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from marl.envs.testing import ProtocolError, check_parallel_env, check_vec_env
from marl.spec import EnvSpec, Obs, Step

# each way TinyEnv can break the protocol, and what the checker's error must say
BROKEN = {
    "avail_dtype": "reset: avail has dtype torch.float32, not torch.bool",
    "no_action": "reset: an agent has no available action",
    "obs_shape": "step 0: obs has shape [4, 2, 2], not (4, 2, 3)",
    "reward_shape": "step 0: reward shape [4], not (4, 2)",
    "flag_dtype": "step 0: truncated has dtype torch.int64",
    "both_flags": "a copy is both terminated and truncated",
    "final_obs": "obs and final_obs differ for a copy that did not finish",
    "info": "info['won'] is not batched",
    "mutates_actions": "step() modified the caller's actions",
    "unseeded": "the same seed and actions gave different results",
    "never_ends": "no episode ended in 20 steps though episode_limit is 5",
}


class TinyEnv:
    """``num_envs`` copies of two agents with random observations, whose episodes end after
    5 steps (truncated) or when both agents pick action 0 (terminated); ``broken`` names one
    protocol rule (a key of ``BROKEN``) it breaks."""

    def __init__(self, num_envs: int = 4, broken: str | None = None) -> None:
        self.spec = EnvSpec(n_agents=2, obs_shape=(3,), state_shape=(4,), n_actions=3,
                            episode_limit=5, agent_names=("a", "b"))
        self.num_envs, self.device, self.broken = num_envs, torch.device("cpu"), broken
        self.gen = torch.Generator()
        self.t = torch.zeros(num_envs, dtype=torch.long)

    def _observe(self, obs: torch.Tensor) -> Obs:
        b = self.num_envs
        avail = torch.ones(b, 2, 3, dtype=torch.bool)
        if self.broken == "no_action":
            avail[:, 1] = False
        if self.broken == "avail_dtype":
            avail = avail.float()
        return Obs(obs, obs.flatten(1)[:, :4].clone(), avail)

    def _draw(self, n: int) -> torch.Tensor:
        dim = 2 if self.broken == "obs_shape" and self.t.any() else 3
        if self.broken == "unseeded":
            return torch.rand(n, 2, dim)
        return torch.rand(n, 2, dim, generator=self.gen)

    def reset(self, *, seed: int | None = None) -> Obs:
        if seed is not None:
            self.gen.manual_seed(seed)
        self.t = torch.zeros(self.num_envs, dtype=torch.long)
        self.obs = self._draw(self.num_envs)
        return self._observe(self.obs)

    def step(self, actions: torch.Tensor) -> Step:
        self.t = self.t + 1
        reward = (actions == 1).float()
        terminated = (actions == 0).all(-1)
        truncated = (self.t >= self.spec.episode_limit) & ~terminated
        if self.broken == "never_ends":
            terminated, truncated = torch.zeros_like(terminated), torch.zeros_like(truncated)
        if self.broken == "both_flags":
            truncated = self.t >= self.spec.episode_limit
            terminated = terminated | truncated
        done = terminated | truncated
        final = self._draw(self.num_envs)
        self.obs = torch.where(done[:, None, None], self._draw(self.num_envs), final)
        self.t = self.t.masked_fill(done, 0)
        final_obs = self._observe(final + 1.0 if self.broken == "final_obs" else final)
        info = {"won": terminated.clone()}
        if self.broken == "reward_shape":
            reward = reward.sum(-1)
        if self.broken == "flag_dtype":
            truncated = truncated.long()
        if self.broken == "info":
            info["won"] = terminated.any()
        if self.broken == "mutates_actions":
            actions.fill_(2)
        return Step(self._observe(self.obs), reward, terminated, truncated, final_obs, info)


def check_all() -> dict[str, str]:
    """Runs ``check_vec_env`` on the correct and on every broken ``TinyEnv``, and
    ``check_parallel_env``; what each raised (``"passed"`` when nothing)."""
    out = {}
    for broken in (None, *BROKEN):
        try:
            check_vec_env(TinyEnv(broken=broken), steps=20)
            out[str(broken)] = "passed"
        except ProtocolError as e:
            out[str(broken)] = f"ProtocolError: {e}"
    try:
        check_parallel_env(lambda: None)
    except RuntimeError as e:
        out["parallel"] = f"{type(e).__name__}: {e}"
    return out


def test_a_correct_env_passes():
    check_vec_env(TinyEnv(), steps=20)
    check_vec_env(TinyEnv(num_envs=1), steps=20)


@pytest.mark.parametrize("broken", list(BROKEN))
def test_each_broken_rule_is_named(broken):
    with pytest.raises(ProtocolError, match=re.escape(BROKEN[broken])) as caught:
        check_vec_env(TinyEnv(broken=broken), steps=20)
    assert isinstance(caught.value, AssertionError)  # test runners report it as a failed check


@pytest.mark.slow  # a subprocess (imports torch again)
def test_the_checkers_still_check_under_python_optimize(tmp_path):
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import test_env_checkers as t; "
            "assert False, 'assert statements run: this is not python -O'; "
            "print(json.dumps(t.check_all()))")
    # run outside the repository: `python -c` puts the working folder first on sys.path, where
    # the source folder marl/ would shadow the installed package (which maps envs/ to marl.envs)
    run = subprocess.run([sys.executable, "-O", "-c", code, str(Path(__file__).parent)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout.splitlines()[-1])
    assert results.pop("None") == "passed"
    assert results.pop("parallel").startswith("RuntimeError: check_parallel_env runs")
    for broken, message in BROKEN.items():
        assert results[broken].startswith("ProtocolError: "), (broken, results[broken])
        assert message in results[broken], (broken, results[broken])
