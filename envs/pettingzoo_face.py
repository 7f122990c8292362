"""One copy of a batched environment as a PettingZoo ``ParallelEnv``.

Action masks: ``infos[agent]["action_mask"]`` is an ``int8`` array of length ``n_actions``
(1 = available), after ``reset`` and after every ``step``; observations stay plain arrays so
other projects' code that expects a ``Box`` works unchanged. Masked-out actions are not an
error here (PettingZoo's checkers sample uniformly): the environment treats them as its
``validate=False`` rule says (for LBF: as NONE, like ``lbforaging``).

When an episode ends, the observation returned is its final one and ``agents`` becomes empty
until the next ``reset``, as PettingZoo expects; the batched environment's autoreset is
switched off, so ``render()`` after the last step shows the state the episode ended in.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv

from marl.batched_env import BatchedEnv
from marl.spec import Obs


class PettingZooEnv(ParallelEnv):
    """PettingZoo face over a one-copy :class:`~marl.batched_env.BatchedEnv`."""

    def __init__(self, env: BatchedEnv, name: str, render_mode: str | None = None) -> None:
        if env.num_envs != 1:
            raise ValueError(f"the PettingZoo face steps one copy, got num_envs={env.num_envs}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        env.validate = False
        self.env = env
        env.autoreset = False  # one episode at a time: render() shows the final state
        self.render_mode = render_mode
        self.metadata = {"name": name, "render_modes": ["rgb_array"], "is_parallelizable": True}
        spec = env.spec
        self.possible_agents = list(spec.agent_names)
        self.agents: list[str] = []
        self.state_space = spaces.Box(-np.inf, np.inf, spec.state_shape, np.float32)
        self._obs_space = spaces.Box(-np.inf, np.inf, spec.obs_shape, np.float32)
        self._action_space = spaces.Discrete(spec.n_actions)
        self._last: Obs | None = None

    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs_space  # the same object every time, as PettingZoo's seeding needs

    def action_space(self, agent: str) -> spaces.Space:
        return self._action_space

    def reset(
        self, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        self._last = self.env.reset(seed=seed)
        self.agents = list(self.possible_agents)
        return self._agent_obs(self._last), self._infos(self._last)

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise RuntimeError("step() called after the episode ended; call reset()")
        joint = torch.tensor(
            [joint_action(actions, self.agents, self.env.spec.n_actions)], device=self.env.device
        )
        step = self.env.step(joint)
        final = step.final_obs
        obs = self._agent_obs(final)
        rewards = dict(zip(self.agents, step.reward[0].tolist(), strict=True))
        term, trunc = bool(step.terminated[0]), bool(step.truncated[0])
        terminations = dict.fromkeys(self.agents, term)
        truncations = dict.fromkeys(self.agents, trunc)
        infos = self._infos(final)
        self._last = final
        if term or trunc:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        if self._last is None:
            raise RuntimeError("state() called before reset()")
        return self._last.state[0].cpu().numpy()

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            return None
        return self.env.render(0)

    def close(self) -> None:
        self.env.close()

    def _agent_obs(self, o: Obs) -> dict[str, np.ndarray]:
        obs = o.obs[0].cpu().numpy()
        return {a: obs[i] for i, a in enumerate(self.possible_agents)}

    def _infos(self, o: Obs) -> dict[str, dict]:
        mask = o.avail[0].cpu().numpy().astype(np.int8)
        return {a: {"action_mask": mask[i]} for i, a in enumerate(self.possible_agents)}


def joint_action(actions: dict[str, Any], agents: list[str], n_actions: int) -> list[int]:
    """The actions of ``agents``, in order, from a PettingZoo action dict; ``ValueError`` names
    a missing or unknown agent or an action that is not an integer in ``[0, n_actions)``."""
    missing = [a for a in agents if a not in actions]
    if missing:
        raise ValueError(f"no action given for agent(s) {missing}")
    unknown = [a for a in actions if a not in agents]
    if unknown:
        raise ValueError(f"actions given for unknown or finished agent(s) {unknown}")
    for agent, action in actions.items():
        if not (isinstance(action, (int, np.integer)) and 0 <= action < n_actions):
            raise ValueError(
                f"agent {agent}: action {action!r} is not an integer in [0, {n_actions})"
            )
    return [int(actions[a]) for a in agents]
