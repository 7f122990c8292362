"""Any PettingZoo ``ParallelEnv`` as a batched :class:`~marl.spec.VecEnv`: ``ParallelVecEnv``.

Outside environments (the real ``lbforaging`` package, MPE, a real StarCraft II) train with the
same trainers as the native ones through this adapter. It builds ``num_envs`` copies from a
zero-argument factory and steps them one after another, either in this process or spread over
worker processes (``workers="subprocess"``, each worker holding a contiguous slice of copies).

What it reads from the copies:

- **Spec** (from the first copy): agents = ``possible_agents``; ``obs_shape`` from
  ``observation_space(agent)`` (its ``"observation"`` entry when it is a ``Dict``); ``n_actions``
  from the ``Discrete`` ``action_space(agent)``; ``state_shape`` from ``state_space`` when the
  environment has one, else all agents' flattened observations side by side; ``episode_limit``
  from the argument, else the environment's ``max_episode_steps`` or ``episode_limit``.
  Every agent must share one observation shape and one number of actions.
- **Available actions**: ``infos[agent]["action_mask"]``, else ``obs[agent]["action_mask"]`` for
  dict observations, else all available.
- **Absent agents** (dead or finished, missing from the dicts): zero observation, only action 0
  available (so with validation their action must be 0; it is not sent to the environment),
  reward 0.
- **Episode end**: a copy whose live agents all terminated or truncated (or whose ``agents`` is
  empty) resets inside ``step``. ``terminated`` when one of the agents that ended it terminated,
  otherwise ``truncated`` (an agent that died earlier does not make a time limit a termination).
- **Episode figures**: numbers in ``infos[agent]["episode"]`` at the step an episode ends
  (e.g. Crafter's achievements) are averaged over the agents reporting them and passed on as
  ``Step.info["episode_<name>"]`` (``[B]``, 0 for copies that did not finish); the trainers
  average them over finished episodes. ``episode_figures`` (optional) derives more figures
  from those averages (e.g. Crafter's score).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import gymnasium
import numpy as np
import torch

from marl.batched_env import check_actions
from marl.devices import available_device
from marl.spec import EnvSpec, Obs, Step

WORKER_KINDS = ("inprocess", "subprocess")
_CLOSE_TIMEOUT_S = 5.0


def _obs_space(space: gymnasium.spaces.Space) -> gymnasium.spaces.Space:
    if isinstance(space, gymnasium.spaces.Dict) and "observation" in space.spaces:
        return space["observation"]
    return space


def _spec_of(env: Any, episode_limit: int | None) -> EnvSpec:
    """The batched spec of a ``ParallelEnv`` copy (see the module docstring)."""
    names = tuple(env.possible_agents)
    if not names:
        raise ValueError("ParallelVecEnv: the environment has no possible_agents")
    spaces = [_obs_space(env.observation_space(a)) for a in names]
    if any(space.shape is None for space in spaces):
        raise ValueError(
            "ParallelVecEnv needs array observations (or a Dict with an 'observation' array), "
            f"got {[str(space) for space in spaces]}"
        )
    obs_shapes = {tuple(space.shape or ()) for space in spaces}
    actions = [env.action_space(a) for a in names]
    if not all(isinstance(s, gymnasium.spaces.Discrete) for s in actions):
        raise ValueError(
            f"ParallelVecEnv needs Discrete action spaces, got {[str(s) for s in actions]}"
        )
    n_actions = {int(s.n) for s in actions}
    if len(obs_shapes) != 1 or len(n_actions) != 1:
        raise ValueError(
            "ParallelVecEnv needs every agent to share one observation shape and one number of "
            f"actions, got observation shapes {sorted(obs_shapes)} and actions {sorted(n_actions)}"
        )
    (obs_shape,), (n,) = obs_shapes, n_actions
    state_space = getattr(env, "state_space", None)
    if state_space is not None:
        state_shape = tuple(state_space.shape)
    else:
        state_shape = (len(names) * int(np.prod(obs_shape)),)
    if episode_limit is None:
        for attr in ("max_episode_steps", "episode_limit"):
            episode_limit = getattr(env, attr, None)
            if episode_limit is not None:
                break
        else:
            raise ValueError(
                f"ParallelVecEnv: {type(env).__name__} exposes neither max_episode_steps nor "
                "episode_limit; pass episode_limit=<the longest episode in steps>"
            )
    return EnvSpec(
        n_agents=len(names),
        obs_shape=obs_shape,
        state_shape=state_shape,
        n_actions=n,
        episode_limit=int(episode_limit),
        agent_names=names,
    )


def _episode_figures(infos: dict[str, Any]) -> dict[str, float]:
    """The mean over agents of the numbers in ``infos[agent]["episode"]``."""
    sums: dict[str, list[float]] = {}
    for info in infos.values():
        for name, value in ((info or {}).get("episode") or {}).items():
            sums.setdefault(name, []).append(float(value))
    return {name: sum(values) / len(values) for name, values in sums.items()}


class _Copies:
    """A slice of copies stepped one after another. It speaks numpy only, so the same code runs
    in this process and in a worker, which is what makes both give identical results."""

    def __init__(self, env_fn: Callable[[], Any], count: int, episode_limit: int | None) -> None:
        self.envs = [env_fn() for _ in range(count)]
        self.spec = _spec_of(self.envs[0], episode_limit)
        self._env_state = getattr(self.envs[0], "state_space", None) is not None
        self._index = {agent: i for i, agent in enumerate(self.spec.agent_names)}

    def _empty(self) -> dict[str, np.ndarray]:
        b, s = len(self.envs), self.spec
        return {
            "obs": np.zeros((b, s.n_agents, *s.obs_shape), np.float32),
            "state": np.zeros((b, *s.state_shape), np.float32),
            "avail": np.zeros((b, s.n_agents, s.n_actions), bool),
        }

    def _write(self, out: dict[str, np.ndarray], b: int, env: Any, obs: dict, infos: dict) -> None:
        for i, agent in enumerate(self.spec.agent_names):
            if agent not in obs:
                out["avail"][b, i, 0] = True
                continue
            o = obs[agent]
            mask = (infos.get(agent) or {}).get("action_mask")
            if isinstance(o, dict):
                mask = o.get("action_mask") if mask is None else mask
                o = o["observation"]
            out["obs"][b, i] = np.asarray(o, np.float32).reshape(self.spec.obs_shape)
            out["avail"][b, i] = True if mask is None else np.asarray(mask).astype(bool)
        if self._env_state:
            out["state"][b] = np.asarray(env.state(), np.float32).reshape(self.spec.state_shape)
        else:
            out["state"][b] = out["obs"][b].reshape(-1)

    def reset(self, seeds: Sequence[int | None]) -> dict[str, np.ndarray]:
        out = self._empty()
        for b, (env, seed) in enumerate(zip(self.envs, seeds, strict=True)):
            obs, infos = env.reset(seed=seed)
            self._write(out, b, env, obs, infos)
        return out

    def step(self, actions: np.ndarray) -> dict[str, np.ndarray]:
        index, b_count = self._index, len(self.envs)
        nxt, final = self._empty(), self._empty()
        reward = np.zeros((b_count, self.spec.n_agents), np.float32)
        terminated = np.zeros(b_count, bool)
        truncated = np.zeros(b_count, bool)
        episode = np.full(b_count, None, object)  # the figures of the episodes that ended
        for b, env in enumerate(self.envs):
            live = list(env.agents)
            obs, rew, term, trunc, infos = env.step({a: int(actions[b, index[a]]) for a in live})
            for a, r in rew.items():
                if a in index:
                    reward[b, index[a]] = r
            self._write(final, b, env, obs, infos)
            if env.agents and not all(term.get(a) or trunc.get(a) for a in live):
                for key in nxt:
                    nxt[key][b] = final[key][b]
                continue
            terminated[b] = any(term.get(a) for a in live)
            truncated[b] = not terminated[b]
            episode[b] = _episode_figures(infos)
            obs, infos = env.reset()
            self._write(nxt, b, env, obs, infos)
        out = {f"final_{k}": v for k, v in final.items()}
        out.update(nxt, reward=reward, terminated=terminated, truncated=truncated,
                   episode=episode)
        return out

    def render(self, i: int) -> Any:
        return self.envs[i].render()

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _worker(conn: Connection, env_fn: Callable[[], Any], count: int, limit: int | None) -> None:
    """A worker process: build the copies, then answer reset/step/close until told to close.
    Every answer is ``("ok", result)`` or ``("error", traceback)``."""
    try:
        try:
            copies = _Copies(env_fn, count, limit)
        except Exception:
            conn.send(("error", traceback.format_exc()))
            return
        conn.send(("ok", copies.spec))
        while True:
            cmd, arg = conn.recv()
            try:
                result = None
                if cmd == "close":
                    copies.close()
                else:
                    result = getattr(copies, cmd)(arg)
            except Exception:
                conn.send(("error", traceback.format_exc()))
            else:
                conn.send(("ok", result))
            if cmd == "close":
                return
    except (KeyboardInterrupt, EOFError):
        pass  # the user interrupted the run, or the main process went away
    finally:
        conn.close()


class ParallelVecEnv:
    """``num_envs`` copies of a PettingZoo ``ParallelEnv`` as one ``VecEnv`` on ``device``.

    ``env_fn`` builds one copy; for ``workers="subprocess"`` it must be picklable (e.g. a
    ``functools.partial`` of an importable class), as workers are started with "spawn".
    ``num_workers`` defaults to one per copy, at most one per CPU. ``reset(seed=s)`` resets copy
    ``i`` with seed ``s + i``. Close it (or use it as a context manager) to stop the workers.
    """

    def __init__(
        self,
        env_fn: Callable[[], Any],
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        *,
        workers: str = "inprocess",
        num_workers: int | None = None,
        episode_limit: int | None = None,
        validate: bool = True,
        episode_figures: Callable[[dict[str, float]], dict[str, float]] | None = None,
    ) -> None:
        self._closed = False
        self._derive = episode_figures
        self._local: _Copies | None = None
        self._conns: list[Connection] = []
        self._procs: list[BaseProcess] = []
        self._bounds: list[tuple[int, int]] = []
        self._last_obs: Obs | None = None
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if workers not in WORKER_KINDS:
            raise ValueError(f"workers must be one of {WORKER_KINDS}, got {workers!r}")
        self.num_envs = num_envs
        self.device = available_device(device)
        self.validate = validate
        if workers == "inprocess":
            if num_workers is not None:
                raise ValueError("num_workers applies to workers='subprocess' only")
            self._local = _Copies(env_fn, num_envs, episode_limit)
            self.spec = self._local.spec
        else:
            self.spec = self._start(env_fn, num_workers, episode_limit)

    def _start(
        self, env_fn: Callable[[], Any], num_workers: int | None, episode_limit: int | None
    ) -> EnvSpec:
        if num_workers is None:
            num_workers = min(self.num_envs, os.cpu_count() or 1)
        if not isinstance(num_workers, int) or not 1 <= num_workers <= self.num_envs:
            raise ValueError(
                f"num_workers must be an integer in [1, num_envs={self.num_envs}], "
                f"got {num_workers!r}"
            )
        try:
            pickle.dumps(env_fn)
        except Exception as e:
            raise ValueError(
                "workers='subprocess' needs a picklable env_fn, such as a functools.partial of "
                f"an importable class; pickling {env_fn!r} failed: {e}"
            ) from e
        sizes = [len(part) for part in np.array_split(np.arange(self.num_envs), num_workers)]
        ctx = mp.get_context("spawn")
        try:
            lo = 0
            for w, size in enumerate(sizes):
                parent, child = ctx.Pipe()
                proc = ctx.Process(
                    target=_worker,
                    args=(child, env_fn, size, episode_limit),
                    name=f"ParallelVecEnv-worker-{w}",
                    daemon=True,
                )
                proc.start()
                child.close()  # so that the worker's death reaches this end as EOF
                self._conns.append(parent)
                self._procs.append(proc)
                self._bounds.append((lo, lo + size))
                lo += size
            return self._gather("start", range(num_workers))[0]
        except BaseException:
            self.close()
            raise

    # --- talking to the workers ------------------------------------------------------------
    def _failure(self, w: int, cmd: str, detail: str | None) -> str:
        lo, hi = self._bounds[w]
        where = f"ParallelVecEnv worker {w} (copies {lo}..{hi - 1})"
        if detail is not None:
            return f"{where} raised during '{cmd}':\n{detail}"
        proc = self._procs[w]
        proc.join(timeout=1.0)
        return f"{where} died during '{cmd}' (exit code {proc.exitcode})"

    def _gather(self, cmd: str, workers: Sequence[int], failures: list[str] | None = None) -> list:
        """Receive one answer from each of ``workers`` (all of them, so none is left unread),
        then raise ``RuntimeError`` if any failed."""
        failures = [] if failures is None else failures
        results = []
        for w in workers:
            try:
                status, value = self._conns[w].recv()
            except (EOFError, OSError):
                failures.append(self._failure(w, cmd, None))
                continue
            if status == "ok":
                results.append(value)
            else:
                failures.append(self._failure(w, cmd, value))
        if failures:
            raise RuntimeError("\n".join(failures))
        return results

    def _request(self, cmd: str, args: Sequence[Any]) -> dict[str, np.ndarray]:
        failures, sent = [], []
        for w, arg in enumerate(args):
            try:
                self._conns[w].send((cmd, arg))
                sent.append(w)
            except OSError:
                failures.append(self._failure(w, cmd, None))
        parts = self._gather(cmd, sent, failures)
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}

    def _run(self, cmd: str, arg: Sequence[Any] | np.ndarray) -> dict[str, np.ndarray]:
        if self._closed:
            raise RuntimeError(f"ParallelVecEnv.{cmd}() called after close()")
        if self._local is not None:
            return getattr(self._local, cmd)(arg)
        return self._request(cmd, [arg[lo:hi] for lo, hi in self._bounds])

    # --- the protocol ----------------------------------------------------------------------
    def _obs(self, arrays: dict[str, np.ndarray], prefix: str = "") -> Obs:
        def tensor(key: str) -> torch.Tensor:
            return torch.from_numpy(arrays[prefix + key]).to(self.device)

        return Obs(obs=tensor("obs"), state=tensor("state"), avail=tensor("avail"))

    def reset(self, *, seed: int | None = None) -> Obs:
        """Start a new episode in every copy; copy ``i`` is reset with seed ``seed + i``."""
        seeds = [None if seed is None else seed + i for i in range(self.num_envs)]
        self._last_obs = self._obs(self._run("reset", seeds))
        return self._last_obs

    def step(self, actions: torch.Tensor) -> Step:
        """Advance every copy by one step; finished copies start a new episode at once."""
        if self._last_obs is None:
            raise RuntimeError("ParallelVecEnv.step() called before reset()")
        if self.validate:
            actions = check_actions(
                actions, self.spec, self.num_envs, self.device, self._last_obs.avail
            )
        out = self._run("step", actions.detach().to("cpu", torch.int64).numpy())
        self._last_obs = self._obs(out)

        def tensor(key: str) -> torch.Tensor:
            return torch.from_numpy(out[key]).to(self.device)

        ended = [(b, figures) for b, figures in enumerate(out["episode"]) if figures]
        info = {}
        for name in sorted({name for _, figures in ended for name in figures}):
            column = np.zeros(self.num_envs, np.float32)
            for b, figures in ended:
                column[b] = figures.get(name, 0.0)
            info[f"episode_{name}"] = torch.from_numpy(column).to(self.device)
        return Step(
            obs=self._last_obs,
            reward=tensor("reward"),
            terminated=tensor("terminated"),
            truncated=tensor("truncated"),
            final_obs=self._obs(out, "final_"),
            info=info,
        )

    def render(self, i: int) -> np.ndarray:
        """Copy ``i``'s frame ``[H, W, 3]`` uint8, drawn by its own ``render()`` (the copies
        must be built with a ``render_mode`` that returns frames)."""
        if not 0 <= i < self.num_envs:
            raise IndexError(f"copy {i} does not exist: num_envs={self.num_envs}")
        if self._local is not None:
            frame = self._local.render(i)
        else:
            w = next(w for w, (lo, hi) in enumerate(self._bounds) if lo <= i < hi)
            self._conns[w].send(("render", i - self._bounds[w][0]))
            frame = self._gather("render", [w])[0]
        if frame is None:
            raise ValueError("the copies draw no frames: build them with "
                             "render_mode='rgb_array'")
        return np.asarray(frame, np.uint8)

    def episode_figures(self, means: dict[str, float]) -> dict[str, float]:
        """Figures derived from the means of the episode figures (none without a deriver)."""
        return self._derive(means) if self._derive is not None else {}

    @property
    def last_obs(self) -> Obs:
        """The observation the next ``step`` acts on."""
        if self._last_obs is None:
            raise RuntimeError("ParallelVecEnv.last_obs read before reset()")
        return self._last_obs

    def close(self) -> None:
        """Close every copy and join the workers (terminating any that do not stop)."""
        if self._closed:
            return
        self._closed = True
        if self._local is not None:
            self._local.close()
        for conn, proc in zip(self._conns, self._procs, strict=True):
            if proc.is_alive():
                try:
                    conn.send(("close", None))
                except OSError:
                    pass  # it died in the meantime; joined below
        for conn, proc in zip(self._conns, self._procs, strict=True):
            try:
                if conn.poll(_CLOSE_TIMEOUT_S):
                    conn.recv()
            except (EOFError, OSError):
                pass
            proc.join(timeout=_CLOSE_TIMEOUT_S)
            if proc.is_alive():
                proc.terminate()
                proc.join()
            conn.close()

    def __enter__(self) -> ParallelVecEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass  # the interpreter may be shutting down; nothing left to release then
