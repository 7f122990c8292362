"""SMAC's ``StarCraft2Env`` interface over the built-in simulator, for PyMARL and EPyMARL.

PyMARL and EPyMARL build SMAC as ``StarCraft2Env(**env_args)`` (their ``sc2.yaml``) and drive
it through ``get_env_info``, ``reset``, ``get_obs`` / ``get_state`` / ``get_avail_actions``,
``step(actions) -> (reward, terminated, info)``, ``get_stats`` and ``close``. This class has
that interface, so they run our SMAC unchanged but for one import::

    from marl.envs.smac.starcraft2 import StarCraft2Env   # instead of smac.env's

One battle of ``map_name``: any SMAC map (``marl.envs.smac.MAPS``) or a SMACv2-style
``<race>_<n>_vs_<m>`` (e.g. ``protoss_5_vs_5``), simulated (``smac:`` / ``smacv2:`` ids; the
docs say what the simulator does differently from the game).

As in SMAC: ``reset()`` returns ``(observations, state)``; ``step`` takes one action per agent
(a list, array or tensor of integers), raises ``ValueError`` naming the agent for an
unavailable action (SMAC asserts), and returns the team's reward (SMAC's scaled
``reward_only_positive`` reward), ``terminated`` (also at the time limit) and
``info = {"battle_won", "dead_allies", "dead_enemies"}``, plus ``"episode_limit": True`` at
the time limit when ``continuing_episode=True``. Dead agents have only no-op (0) available.
``get_stats()`` counts battles, wins and timeouts.

SMAC's keyword arguments are all accepted. Those that only concern the game process
(``game_version``, ``replay_dir``, ``replay_prefix``, ``window_size_x``, ``window_size_y``,
``debug``) have no effect. ``seed``, ``continuing_episode``, ``obs_instead_of_state``,
``obs_timestep_number``, ``state_last_action`` and ``state_timestep_number`` work as in SMAC.
The others must keep SMAC's defaults (the values PyMARL's and EPyMARL's configs use); another
value raises ``ValueError`` saying so.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from marl.envs.registry import UnknownEnvId
from marl.envs.smac import MAPS, SMACEnv, make_generated
from marl.envs.smac import make as make_map

# SMAC's defaults for the arguments whose other values the simulator does not implement
_FIXED = {
    "step_mul": (8, None), "move_amount": (2,), "difficulty": ("7",),
    "obs_all_health": (True,), "obs_own_health": (True,), "obs_last_action": (False,),
    "obs_pathing_grid": (False,), "obs_terrain_height": (False,), "reward_sparse": (False,),
    "reward_only_positive": (True,), "reward_death_value": (10,), "reward_win": (200,),
    "reward_defeat": (0,), "reward_negative_scale": (0.5,), "reward_scale": (True,),
    "reward_scale_rate": (20,), "heuristic_ai": (False,), "heuristic_rest": (False,),
}


class StarCraft2Env:
    """SMAC's ``StarCraft2Env`` (module docstring) for one simulated battle of ``map_name``."""

    def __init__(
        self,
        map_name: str = "8m",
        step_mul: int | None = 8,
        move_amount: float = 2,
        difficulty: str = "7",
        game_version: str | None = None,
        seed: int | None = None,
        continuing_episode: bool = False,
        obs_all_health: bool = True,
        obs_own_health: bool = True,
        obs_last_action: bool = False,
        obs_pathing_grid: bool = False,
        obs_terrain_height: bool = False,
        obs_instead_of_state: bool = False,
        obs_timestep_number: bool = False,
        state_last_action: bool = True,
        state_timestep_number: bool = False,
        reward_sparse: bool = False,
        reward_only_positive: bool = True,
        reward_death_value: float = 10,
        reward_win: float = 200,
        reward_defeat: float = 0,
        reward_negative_scale: float = 0.5,
        reward_scale: bool = True,
        reward_scale_rate: float = 20,
        replay_dir: str = "",
        replay_prefix: str = "",
        window_size_x: int = 1920,
        window_size_y: int = 1200,
        heuristic_ai: bool = False,
        heuristic_rest: bool = False,
        debug: bool = False,
    ) -> None:
        given = locals()
        for key, allowed in _FIXED.items():
            if given[key] not in allowed or isinstance(given[key], bool) != isinstance(
                    allowed[0], bool):
                raise ValueError(
                    f"StarCraft2Env: {key}={given[key]!r} is not supported by the built-in "
                    f"simulator, which implements SMAC's default {key}={allowed[0]!r}")
        try:
            self.env: SMACEnv = (make_map(map_name, seed=seed) if map_name in MAPS
                                 else make_generated(map_name, seed=seed))
        except UnknownEnvId:
            raise ValueError(f"StarCraft2Env: unknown map_name {map_name!r}; a SMAC map "
                             f"({', '.join(MAPS)}) or <race>_<n>_vs_<m> with race protoss, "
                             "terran or zerg, e.g. protoss_5_vs_5") from None
        self.map_name = map_name
        self.env.autoreset = False  # SMAC: one battle per reset()
        spec = self.env.spec
        self.n_agents, self.n_enemies = self.env.n_agents, self.env.n_enemies
        self.n_actions, self.episode_limit = spec.n_actions, spec.episode_limit
        self.continuing_episode = continuing_episode
        self.obs_instead_of_state = obs_instead_of_state
        self.obs_timestep_number = obs_timestep_number
        self.state_last_action = state_last_action
        self.state_timestep_number = state_timestep_number
        self._seed = seed
        self._reseed = True  # the first reset() uses seed
        self._episode_steps = 0
        self._over = True
        self.battles_won = self.battles_game = self.timeouts = 0
        # what the agents see now: obs [N, obs] float32, state float32, avail int [N, A]
        self._seen: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    # --- episodes ------------------------------------------------------------------------------
    def reset(self) -> tuple[list[np.ndarray], np.ndarray]:
        """Start a battle; returns ``(get_obs(), get_state())``."""
        self._read(self.env.reset(seed=self._seed if self._reseed else None))
        self._reseed = False
        self._episode_steps = 0
        self._over = False
        return self.get_obs(), self.get_state()

    def step(self, actions: Sequence[Any] | np.ndarray | torch.Tensor) -> tuple[
            float, bool, dict[str, Any]]:
        """One step with one action per agent: ``(reward, terminated, info)``."""
        if self._over:
            raise RuntimeError("StarCraft2Env.step() called before reset() or after the battle "
                               "ended; call reset()")
        joint = [int(a) for a in actions]
        if len(joint) != self.n_agents:
            raise ValueError(f"StarCraft2Env: {self.n_agents} actions expected (one per "
                             f"agent), got {len(joint)}")
        step = self.env.step(torch.tensor([joint], dtype=torch.long, device=self.env.device))
        self._episode_steps += 1
        self._read(step.final_obs)
        reward = float(step.reward[0].sum())
        won = bool(step.info["won"][0])
        ended, timeout = bool(step.terminated[0]), bool(step.truncated[0])
        info: dict[str, Any] = {"battle_won": won,
                                "dead_allies": int(step.info["dead_allies"][0]),
                                "dead_enemies": int(step.info["dead_enemies"][0])}
        if ended or timeout:
            self._over = True
            self.battles_game += 1
            self.battles_won += won
        if timeout:
            self.timeouts += 1
            if self.continuing_episode:
                info["episode_limit"] = True
        return reward, ended or timeout, info

    def _read(self, o: Any) -> None:
        self._seen = (o.obs[0].cpu().numpy().astype(np.float32),
                      o.state[0].cpu().numpy().astype(np.float32),
                      o.avail[0].cpu().numpy().astype(np.int64))

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._seen is None:
            raise RuntimeError("call reset() first")
        return self._seen

    # --- what the agents see -------------------------------------------------------------------
    def get_obs(self) -> list[np.ndarray]:
        """Every agent's observation (float32 ``[get_obs_size()]``), in agent order."""
        return [self.get_obs_agent(i) for i in range(self.n_agents)]

    def get_obs_agent(self, agent_id: int) -> np.ndarray:
        obs = self._arrays()[0][agent_id]
        if self.obs_timestep_number:
            obs = np.append(obs, np.float32(self._episode_steps / self.episode_limit))
        return obs.copy()

    def get_obs_size(self) -> int:
        return self.env.spec.obs_shape[0] + int(self.obs_timestep_number)

    def get_state(self) -> np.ndarray:
        """The global state (float32 ``[get_state_size()]``)."""
        if self.obs_instead_of_state:
            return np.concatenate(self.get_obs()).astype(np.float32)
        state = self._arrays()[1]
        if not self.state_last_action:
            state = state[: len(state) - self.n_agents * self.n_actions]
        if self.state_timestep_number:
            state = np.append(state, np.float32(self._episode_steps / self.episode_limit))
        return state.astype(np.float32)

    def get_state_size(self) -> int:
        if self.obs_instead_of_state:
            return self.get_obs_size() * self.n_agents
        size = self.env.spec.state_shape[0]
        if not self.state_last_action:
            size -= self.n_agents * self.n_actions
        return size + int(self.state_timestep_number)

    def get_avail_actions(self) -> list[list[int]]:
        """Each agent's available actions as 0/1 lists (dead agents: only no-op)."""
        return [self.get_avail_agent_actions(i) for i in range(self.n_agents)]

    def get_avail_agent_actions(self, agent_id: int) -> list[int]:
        return self._arrays()[2][agent_id].tolist()

    def get_total_actions(self) -> int:
        return self.n_actions

    def get_env_info(self) -> dict[str, Any]:
        """What PyMARL's and EPyMARL's ``run`` read: sizes, agents, actions, episode limit."""
        return {"state_shape": self.get_state_size(), "obs_shape": self.get_obs_size(),
                "n_actions": self.get_total_actions(), "n_agents": self.n_agents,
                "episode_limit": self.episode_limit}

    def get_stats(self) -> dict[str, Any]:
        """Battles played and won so far (SMAC's keys)."""
        return {"battles_won": self.battles_won, "battles_game": self.battles_game,
                "battles_draw": self.timeouts,
                "win_rate": self.battles_won / self.battles_game if self.battles_game else 0.0,
                "timeouts": self.timeouts, "restarts": 0}

    # --- the rest of SMAC's interface ------------------------------------------------------------
    def seed(self, seed: int | None = None) -> int | None:
        """SMAC's ``seed()`` returns the seed; given one, the next ``reset()`` starts from it."""
        if seed is not None:
            self._seed, self._reseed = seed, True
        return self._seed

    def render(self, mode: str = "rgb_array") -> np.ndarray:
        """An RGB picture ``[H, W, 3]`` uint8 of the battle."""
        self._arrays()
        return self.env.render(0)

    def save_replay(self) -> None:
        """SMAC saves a StarCraft II replay; the simulator has none (``marl render`` draws
        episodes)."""
        warnings.warn("StarCraft2Env.save_replay(): the built-in simulator writes no "
                      "StarCraft II replays", stacklevel=2)

    def close(self) -> None:
        self.env.close()
