"""One copy of a batched environment as a PettingZoo ``ParallelEnv``: how other projects use it.

``marl.envs.parallel_env(env_id)`` returns one; TorchRL (``PettingZooWrapper``), RLlib
(``ParallelPettingZooEnv``), SuperSuit and EPyMARL (through :mod:`marl.envs.gymnasium_ids`)
all step this class, so it is kept lean: one tensor in, one conversion out per step.

- **Agents** are the environment's (``agent_0`` …; SMAC names them by unit type, e.g.
  ``stalker_0``, ``zealot_2``). ``agents`` stays the full list until the episode ends, then
  becomes empty until the next ``reset``, as PettingZoo expects. A SMAC unit that dies stays in
  ``agents`` with only no-op (action 0) available until the battle ends; its observation is
  zeros and its reward the team's share, as in SMAC.
- **Action masks** live in ``infos[agent]["action_mask"]``: an ``int8`` array of length
  ``n_actions`` (1 = available), after ``reset`` and after every ``step``. Observations stay
  plain arrays, so code that expects a ``Box`` works unchanged. Masked-out actions are not an
  error here (PettingZoo's checkers sample uniformly): the environment treats them as its
  ``validate=False`` rule says (LBF: as NONE, like ``lbforaging``; SMAC: an order that cannot
  be carried out, e.g. attacking a dead or distant enemy, does nothing or walks to it).
- **Actions**: anything integer-like in ``[0, n_actions)``: ``int``, numpy and torch integer
  scalars, 0-d integer arrays and tensors. Anything else (floats, bools, strings, arrays of
  more than one number) raises ``ValueError`` naming the agent, as does a missing action or an
  action for an agent that is not in ``agents``.
- **Infos** also carry the environment's outcome: on SMAC ``won`` (bool), ``dead_allies`` and
  ``dead_enemies`` (ints), after ``reset`` too (False, 0, 0), so every client sees the same keys
  on every step (TorchRL sizes its info specs on the first reset) and win rates can be read off
  the last step of an episode.
- **Spaces**: ``observation_space(agent)`` and ``state_space`` are ``Box`` es with the finite
  bounds the environment knows (:meth:`~marl.batched_env.BatchedEnv.obs_bounds`; SuperSuit's
  ``normalize_obs`` needs them); ``action_space(agent)`` is ``Discrete(n_actions)``. All agents
  share one observation and one action space (SMAC's unit type is in the observation's
  one-hot), so TorchRL's ``MarlGroupMapType.ALL_IN_ONE_GROUP`` works on every map; TorchRL's
  default grouping splits agents by name before the last ``_``, which on mixed SMAC maps
  gives one group per unit type (``stalker``, ``zealot``).
- **Rendering**: ``render_mode="rgb_array"`` returns ``[H, W, 3]`` uint8 frames;
  ``render_mode="human"`` shows them in a matplotlib window (the ``plot`` extra) at
  ``metadata["render_fps"]``. The batched environment's autoreset is switched off, so
  ``render()`` after the last step shows the state the episode ended in.
"""

from __future__ import annotations

import importlib.util
import operator
from typing import Any

import numpy as np
import torch
from gymnasium import logger, spaces
from pettingzoo import ParallelEnv

from marl.batched_env import BatchedEnv
from marl.spec import Obs

RENDER_MODES = ("human", "rgb_array")
RENDER_FPS = 5


class PettingZooEnv(ParallelEnv):
    """PettingZoo face over a one-copy :class:`~marl.batched_env.BatchedEnv`."""

    def __init__(self, env: BatchedEnv, name: str, render_mode: str | None = None) -> None:
        if env.num_envs != 1:
            raise ValueError(f"the PettingZoo face steps one copy, got num_envs={env.num_envs}")
        if render_mode not in (None, *RENDER_MODES):
            raise ValueError(
                f"render_mode must be None or one of {list(RENDER_MODES)}, got {render_mode!r}"
            )
        if render_mode == "human" and importlib.util.find_spec("matplotlib") is None:
            raise ImportError("render_mode='human' draws with matplotlib: "
                              "pip install matplotlib (or marl-suite[plot])")
        env.validate = False
        env.autoreset = False  # one episode at a time: render() shows the final state
        self.env = env
        self.name = name
        self.render_mode = render_mode
        self.metadata = {"name": name, "render_modes": list(RENDER_MODES),
                         "render_fps": RENDER_FPS, "is_parallelizable": True}
        spec = env.spec
        self.possible_agents = list(spec.agent_names)
        self.agents: list[str] = []
        self.state_space = _box(env, "state_bounds", spec.state_shape)
        self._obs_space = _box(env, "obs_bounds", spec.obs_shape)
        self._action_space = spaces.Discrete(spec.n_actions)
        self._n_actions = spec.n_actions
        self._cpu = env.device.type == "cpu"
        self._last: Obs | None = None
        self._window: _Window | None = None

    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs_space  # the same object every time, as PettingZoo's seeding needs

    def action_space(self, agent: str) -> spaces.Space:
        return self._action_space

    def reset(
        self, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        self._last = last = self.env.reset(seed=seed)
        self.agents = list(self.possible_agents)
        reset_info = getattr(self.env, "reset_info", None)
        extra = self._scalars(reset_info()) if reset_info is not None else {}
        return self._agent_obs(last), self._infos(last, extra)

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        agents = self.agents
        if not agents:
            raise RuntimeError("step() called after the episode ended; call reset()")
        try:
            if len(actions) != len(agents):
                raise KeyError
            joint = [actions[a] for a in agents]
        except KeyError:
            joint_action(actions, agents, self._n_actions)  # raises, naming the agents
            raise
        n = self._n_actions
        for i, a in enumerate(joint):
            if type(a) is not int or not 0 <= a < n:
                joint[i] = as_action(agents[i], a, n)
        sent = torch.from_numpy(np.array([joint], np.int64))
        step = self.env.step(sent if self._cpu else sent.to(self.env.device))
        final = step.final_obs
        term = bool(self._np(step.terminated)[0])
        trunc = bool(self._np(step.truncated)[0])
        rewards = dict(zip(agents, self._np(step.reward)[0].tolist(), strict=True))
        obs, infos = self._agent_obs(final), self._infos(final, self._scalars(step.info))
        self._last = final
        if term or trunc:
            self.agents = []
        return obs, rewards, dict.fromkeys(agents, term), dict.fromkeys(agents, trunc), infos

    def state(self) -> np.ndarray:
        if self._last is None:
            raise RuntimeError("state() called before reset()")
        return np.array(self._np(self._last.state)[0])

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            return None
        draw = getattr(self.env, "render", None)
        if draw is None:
            raise NotImplementedError(f"{self.name} cannot render frames")
        frame = draw(0)
        if self.render_mode == "rgb_array":
            return frame
        if self._window is None:
            self._window = _Window(self.name, RENDER_FPS)
        self._window.show(frame)
        return None

    def close(self) -> None:
        if self._window is not None:
            self._window.close()
            self._window = None
        self.env.close()

    def _np(self, t: torch.Tensor) -> np.ndarray:
        return t.numpy() if self._cpu else t.cpu().numpy()

    def _scalars(self, info: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Copy 0's entries of batched info tensors as Python numbers."""
        return {k: self._np(v)[0].item() for k, v in info.items()}

    def _agent_obs(self, o: Obs) -> dict[str, np.ndarray]:
        return dict(zip(self.possible_agents, np.array(self._np(o.obs)[0]), strict=True))

    def _infos(self, o: Obs, extra: dict[str, Any]) -> dict[str, dict]:
        masks = self._np(o.avail)[0].astype(np.int8)
        if extra:
            return {a: {"action_mask": m, **extra}
                    for a, m in zip(self.possible_agents, masks, strict=True)}
        return {a: {"action_mask": m} for a, m in zip(self.possible_agents, masks, strict=True)}


def _box(env: Any, method: str, shape: tuple[int, ...]) -> spaces.Box:
    """A float32 ``Box`` of ``shape`` with the bounds ``env.<method>()`` gives (±inf for
    environments that do not say)."""
    bounds = getattr(env, method, None)
    if bounds is None:
        return spaces.Box(-np.inf, np.inf, shape, np.float32)
    low, high = bounds()
    return spaces.Box(np.asarray(low, np.float32), np.asarray(high, np.float32), shape,
                      np.float32)


def as_action(agent: str, action: Any, n_actions: int) -> int:
    """``action`` as an ``int`` in ``[0, n_actions)`` if it is integer-like (``int``, numpy or
    torch integer scalars, 0-d integer arrays); otherwise ``ValueError`` naming ``agent``."""
    value = None
    is_bool = isinstance(action, (bool, np.bool_)) or getattr(action, "dtype", None) in (
        np.bool_, torch.bool)
    if not is_bool and getattr(action, "ndim", 0) == 0:
        try:
            value = operator.index(action)
        except TypeError:
            value = None
    if value is None or not 0 <= value < n_actions:
        raise ValueError(f"agent {agent}: action {action!r} is not an integer in "
                         f"[0, {n_actions})")
    return value


def joint_action(actions: dict[str, Any], agents: list[str], n_actions: int) -> list[int]:
    """The actions of ``agents``, in order, from a PettingZoo action dict; ``ValueError`` names
    a missing or unknown agent or an action that is not an integer in ``[0, n_actions)``."""
    missing = [a for a in agents if a not in actions]
    if missing:
        raise ValueError(f"no action given for agent(s) {missing}")
    unknown = [a for a in actions if a not in agents]
    if unknown:
        raise ValueError(f"actions given for unknown or finished agent(s) {unknown}")
    return [as_action(a, actions[a], n_actions) for a in agents]


class _Window:
    """A matplotlib window that shows frames (``render_mode="human"``)."""

    def __init__(self, title: str, fps: float) -> None:
        import matplotlib.pyplot as plt

        self._plt = plt
        self._figure = plt.figure(title)
        self._axes = self._figure.add_axes((0, 0, 1, 1))
        self._axes.set_axis_off()
        self._image: Any = None
        self._interval = 1.0 / fps
        self._shown = self._figure.canvas.required_interactive_framework is not None
        if not self._shown:
            logger.warn(f"render_mode='human': matplotlib's backend "
                        f"{plt.get_backend()!r} cannot show windows; frames are drawn off-screen")

    def show(self, frame: np.ndarray) -> None:
        if self._image is None:
            self._image = self._axes.imshow(frame)
        else:
            self._image.set_data(frame)
        if self._shown:
            self._plt.pause(self._interval)
        else:
            self._figure.canvas.draw()

    def close(self) -> None:
        self._plt.close(self._figure)
