"""Training on a curriculum: a teacher picks the task every copy of the environment plays.

``marl train --algo mappo --env lbf:13x13-2p-3f --teacher plr`` (``dr``, ``plr``, ``accel``;
settings under ``teacher.*``). The environment must offer tasks (``env.task_space``,
``env.set_tasks``: :mod:`marl.tasks`) and the learner must learn from rollouts (IPPO, MAPPO).

How a run goes (:class:`CurriculumTraining`):

- :class:`TaskedEnv` keeps, for every copy, the task it plays and the one queued for its next
  episode (a copy plays a task from its next reset): when a copy's episode ends, the queued
  task starts and the teacher proposes the next one. Each step records which task every copy
  played and whether the student learns from it (robust PLR: not from new tasks).
- After each rollout, every episode that ended in it gets its **level score** from the rollout
  (the team's reward and value: the agents' sum of rewards, the mean of their values; GAE with
  the learner's γ and λ over the rollout, bootstrapped at its end): MaxMC (default) or the
  positive value loss (:mod:`marl.algos.ued.scores`). Rewards enter in the critic's units
  (``learner.critic_reward``: standardised as the learner standardises them), and MaxMC's
  returns are discounted from the episode's start, so that rewards, returns and values
  compare like with like. The teacher takes the scores and these returns; the learner
  updates on the rollout with the steps it may not learn from masked
  (``RolloutBuffer.learn``).
- At every test, the student also plays the **held-out tasks** (fixed, never trained on):
  ``teacher.heldout_repeats`` greedy episodes of each, logged as ``heldout/return_mean``,
  ``heldout/solved_rate`` and per task; a task is solved when the episode is won (SMAC) or
  ends before its time limit (LBF: every food collected). ``teacher.render_tasks`` of the tasks
  the copies play are drawn to ``<run>/tasks/``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from marl.config import TeacherConfig
from marl.logger import RunLogger, register_tags
from marl.returns import gae
from marl.rollout import RolloutBuffer
from marl.runner import RolloutRunner, evaluate
from marl.spec import Obs, Step


def make_teacher(cfg: TeacherConfig, space: Any, seed: int) -> Any:
    """The teacher ``cfg.name`` over the task space ``space``."""
    from marl.algos.ued.teachers import DomainRandomisation, PrioritisedReplay, ReplayConfig

    if cfg.name == "dr":
        return DomainRandomisation(space, seed)
    if cfg.name in ("paired", "clutr"):
        raise ValueError(f"{cfg.name}'s teacher is a policy: PairedTraining builds it")
    replay = ReplayConfig(buffer_size=cfg.buffer_size, replay_prob=cfg.replay_prob,
                          staleness=cfg.staleness, temperature=cfg.temperature,
                          min_fill=cfg.min_fill, robust=cfg.robust,
                          mutations=cfg.mutations if cfg.name == "accel" else 0)
    return PrioritisedReplay(space, replay, seed)


def check_tasks(env: Any) -> None:
    """Raise ``ValueError`` unless ``env`` offers tasks (``task_space``, ``set_tasks``)."""
    if not hasattr(env, "set_tasks") or getattr(env, "task_space", None) is None:
        raise ValueError(f"{type(env).__name__} has no tasks (task_space, set_tasks): a "
                         "curriculum needs an environment that offers them, e.g. "
                         "lbf:<size>-<N>p-<F>f or smacv2:<race>_<n>_vs_<m>")


class TaskedEnv:
    """A batched environment whose copies play the teacher's tasks (see the module card)."""

    def __init__(self, env: Any, teacher: Any) -> None:
        check_tasks(env)
        self.env, self.teacher = env, teacher
        self.spec, self.num_envs, self.device = env.spec, env.num_envs, env.device
        b, length = env.num_envs, env.task_space.length
        self.playing = torch.zeros(b, length, dtype=torch.long)
        self.learning = torch.ones(b, dtype=torch.bool)
        self.queued = torch.zeros(b, length, dtype=torch.long)
        self.queued_learn = torch.ones(b, dtype=torch.bool)
        self.played: list[torch.Tensor] = []  # per step of the rollout: each copy's task
        self.learned: list[torch.Tensor] = []  # per step: whether the student learns from it

    def reset(self, *, seed: int | None = None) -> Obs:
        first = self.teacher.propose(self.num_envs)
        self.playing, self.learning = first.tokens, first.learn
        self.env.set_tasks(self.playing)
        obs = self.env.reset(seed=seed)
        queued = self.teacher.propose(self.num_envs)
        self.queued, self.queued_learn = queued.tokens, queued.learn
        self.env.set_tasks(self.queued)
        return obs

    def step(self, actions: torch.Tensor) -> Step:
        self.played.append(self.playing.clone())
        self.learned.append(self.learning.clone())
        step = self.env.step(actions)
        ids = step.done.cpu().nonzero().squeeze(1)
        if ids.numel():
            self.playing[ids], self.learning[ids] = self.queued[ids], self.queued_learn[ids]
            fresh = self.teacher.propose(ids.numel())
            self.queued[ids], self.queued_learn[ids] = fresh.tokens, fresh.learn
            self.env.set_tasks(self.queued)
        return step

    def __getattr__(self, name: str) -> Any:  # render, close, validate, episode_figures, ...
        return getattr(self.env, name)

    def state_dict(self) -> dict[str, Any]:
        return {"env": self.env.state_dict(), "playing": self.playing.clone(),
                "learning": self.learning.clone(), "queued": self.queued.clone(),
                "queued_learn": self.queued_learn.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_state_dict(state["env"])
        for key in ("playing", "learning", "queued", "queued_learn"):
            getattr(self, key).copy_(state[key])
        self.env.set_tasks(self.queued)


class CurriculumTraining:
    """On-policy data on a curriculum: a rollout, the finished levels' scores to the teacher,
    and one update without the steps the student may not learn from."""

    def __init__(self, cfg: Any, env: Any, learner: Any, device: torch.device) -> None:
        self.cfg, self.learner, self.device = cfg, learner, device
        check_tasks(env)
        self.teacher = make_teacher(cfg.teacher, env.task_space, cfg.seed + 3)
        self.env = TaskedEnv(env, self.teacher)
        self.buffer = RolloutBuffer(learner.rollout_fields(), learner.rollout_steps(env.num_envs),
                                    env.num_envs, device=device)
        self.runner = RolloutRunner(self.env, learner, self.buffer, device)
        b = env.num_envs
        self.gamma = float(getattr(learner.cfg, "gamma", 0.99))
        self.lam = float(getattr(learner.cfg, "gae_lambda", 0.95))
        # running sums of the episodes in progress (they span rollouts)
        self.sums = {k: torch.zeros(b, dtype=torch.float64)
                     for k in ("positive_advantage", "value", "steps", "return")}

    def iterate(self, c: Any) -> list[dict[str, torch.Tensor]]:
        self.env.played, self.env.learned = [], []
        c.episodes += self.runner.collect(c.t_env)
        c.t_env += self.buffer.steps * self.buffer.num_envs
        self.buffer.learn.copy_(torch.stack(self.env.learned).to(self.device))
        self._score_levels(torch.stack(self.env.played))
        c.updates += 1
        metrics = self.learner.update(self.buffer)
        metrics.update({f"teacher_{k}": torch.tensor(v)
                        for k, v in self.teacher.metrics().items()})
        metrics["teacher_learn_fraction"] = self.buffer.learn.float().mean()
        return [metrics]

    @torch.no_grad()
    def _score_levels(self, played: torch.Tensor) -> None:
        """Score every episode that ended in the rollout; ``played [T, B, L]``."""
        buf = self.buffer
        team = buf["reward"].sum(-1, keepdim=True)  # team reward [T, B, 1]
        # the scores compare rewards with the critic's values: in the critic's units
        reward = self.learner.critic_reward(team).double().cpu()
        values = buf["value"].mean(-1, keepdim=True).double().cpu()  # team value [T+1, B, 1]
        final = buf["final_value"].mean(-1, keepdim=True).double().cpu()
        done, terminated = buf["done"].cpu(), buf["terminated"].cpu()
        next_values = torch.where(done.unsqueeze(-1), final, values[1:])
        advantages, _ = gae(reward, values[:-1], next_values, terminated.unsqueeze(-1),
                            done.unsqueeze(-1), self.gamma, self.lam)
        s = self.sums
        ended_tokens, ended_scores, ended_returns = [], [], []
        for t in range(buf.steps):
            s["positive_advantage"] += advantages[t, :, 0].clamp(min=0.0)
            s["value"] += values[t, :, 0]
            s["return"] += reward[t, :, 0] * self.gamma ** s["steps"]  # discounted, from 0
            s["steps"] += 1
            ids = done[t].nonzero().squeeze(1)
            if not ids.numel():
                continue
            tokens, returns, steps = played[t, ids], s["return"][ids], s["steps"][ids]
            if self.cfg.teacher.score == "positive_value_loss":
                scores = s["positive_advantage"][ids] / steps
            else:  # MaxMC: mean over the episode of (best return on the level - V(s_t))
                best = self.teacher.best_return(tokens, returns)
                scores = best - s["value"][ids] / steps
            ended_tokens.append(tokens)
            ended_scores.append(scores)
            ended_returns.append(returns)
            for v in s.values():
                v[ids] = 0.0
        if ended_tokens:
            self.teacher.update(torch.cat(ended_tokens), torch.cat(ended_scores),
                                torch.cat(ended_returns))

    def state_dict(self) -> dict[str, Any]:
        """The runner's state holds the environment's and the tasks in play (TaskedEnv)."""
        return {"runner": self.runner.state_dict(), "teacher": self.teacher.state_dict(),
                "level_sums": {k: v.clone() for k, v in self.sums.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> bool:
        self.teacher.load_state_dict(state["teacher"])
        for k, v in state["level_sums"].items():
            self.sums[k].copy_(v)
        return self.runner.load_state_dict(state["runner"])


def _completed_returns(buffer: RolloutBuffer) -> list[list[float]]:
    """Each copy's team returns of the episodes that ended in the rollout (in order)."""
    reward = buffer["reward"].sum(-1).double().cpu()  # [T, B]
    done = buffer["done"].cpu()
    running = torch.zeros(buffer.num_envs, dtype=torch.float64)
    out: list[list[float]] = [[] for _ in range(buffer.num_envs)]
    for t in range(buffer.steps):
        running += reward[t]
        for b in done[t].nonzero().squeeze(1).tolist():
            out[b].append(float(running[b]))
        running[done[t]] = 0.0
    return out


class PairedTraining:
    """PAIRED and CLUTR: a teacher policy proposes one task per copy (PAIRED's writes it token
    by token, CLUTR's picks a point of a task VAE's latent space); a protagonist team (the
    run's learner) and an antagonist team (a second learner of the same algorithm) each play
    one rollout on those tasks (every copy starts anew on its task and replays it when an
    episode ends); the teacher learns from the regret, each team from its own rollout. The
    run's env steps count the protagonist's steps; the antagonist's are logged apart
    (``learner/teacher_antagonist_env_steps``). Rollouts must hold a whole episode
    (``rollout_steps`` at least the episode limit), so every task has a finished episode of
    each team. CLUTR with ``teacher.clutr_score=max_mc`` (an ablation) has no antagonist: the
    reward is the protagonist's MaxMC on the task (its best finished return there minus its
    mean value over the rollout)."""

    def __init__(self, cfg: Any, env: Any, learner: Any, device: torch.device,
                 build_env: Any, build_learner: Any) -> None:
        check_tasks(env)
        steps = learner.rollout_steps(env.num_envs)
        if steps < env.spec.episode_limit:
            raise ValueError(f"PAIRED needs rollouts of a whole episode: rollout_steps={steps} "
                             f"is under the episode limit ({env.spec.episode_limit})")
        self.cfg, self.learner, self.device = cfg, learner, device
        self.regret = not (cfg.teacher.name == "clutr" and cfg.teacher.clutr_score == "max_mc")
        self.antagonist = build_learner(replace(cfg, seed=cfg.seed + 7), env.spec, device)
        self.antagonist_env = build_env(cfg, env.num_envs, device)
        self.envs = (env, self.antagonist_env)
        self.buffers = tuple(RolloutBuffer(m.rollout_fields(), steps, env.num_envs,
                                           device=device) for m in (learner, self.antagonist))
        self.runner = RolloutRunner(env, learner, self.buffers[0], device)
        self.antagonist_runner = RolloutRunner(self.antagonist_env, self.antagonist,
                                               self.buffers[1], device)
        self.writer = make_writer(cfg, env.task_space)
        self.antagonist_steps = 0

    def iterate(self, c: Any) -> list[dict[str, torch.Tensor]]:
        written = self.writer.write(self.envs[0].num_envs)
        returns = []
        runners = (self.runner, self.antagonist_runner) if self.regret else (self.runner,)
        for i, (env, runner) in enumerate(zip(self.envs, runners, strict=False)):
            env.set_tasks(written.tokens)
            runner.start(self.cfg.seed * 1_000_003 + c.t_env + i)
            finished = runner.collect(c.t_env)
            if i == 0:  # the run counts the protagonist's episodes and steps
                c.episodes += finished
            returns.append(_completed_returns(runner.buffer))
        from marl.algos.ued.scores import paired_regret

        protagonist = torch.tensor([sum(r) / len(r) for r in returns[0]])
        steps = self.buffers[0].steps * self.buffers[0].num_envs
        c.t_env += steps
        c.updates += 1
        metrics = self.learner.update(self.buffers[0])
        if self.regret:
            antagonist = torch.tensor([max(r) for r in returns[1]])
            reward = paired_regret(antagonist[:, None], protagonist[:, None])
            self.antagonist_steps += steps
            antagonist_metrics = self.antagonist.update(self.buffers[1])
            metrics["teacher_antagonist_return"] = antagonist.float().mean()
            metrics["teacher_antagonist_policy_loss"] = antagonist_metrics["policy_loss"]
            metrics["teacher_antagonist_env_steps"] = torch.tensor(
                float(self.antagonist_steps))
        else:  # MaxMC: the best finished return minus the mean team value over the rollout
            best = torch.tensor([max(r) for r in returns[0]])
            value = self.buffers[0]["value"][:-1].mean(-1).mean(0).double().cpu()
            reward = best.double() - value
        metrics.update({f"teacher_{k}": v for k, v in self.writer.update(written,
                                                                         reward).items()})
        return [metrics]

    def state_dict(self) -> dict[str, Any]:
        """Every iteration starts its episodes anew (seeded), so the learners, the writer
        and the step count are the whole state."""
        return {"antagonist": self.antagonist.state_dict(),
                "writer": self.writer.state_dict_all(),
                "antagonist_steps": self.antagonist_steps}

    def load_state_dict(self, state: dict[str, Any]) -> bool:
        self.antagonist.load_state_dict(state["antagonist"])
        self.writer.load_state_dict_all(state["writer"])
        self.antagonist_steps = state["antagonist_steps"]
        self.runner.start(self.cfg.seed)  # ready to test and draw; iterate starts anew anyway
        return True


def curriculum_training(cfg: Any, env: Any, learner: Any, device: torch.device,
                        build_env: Any, build_learner: Any) -> Any:
    """The trainer's data source for ``cfg.teacher.name``: the teachers that write tasks with
    a policy against two teams (PAIRED, CLUTR), or the ones that pick them (DR, PLR⊥, ACCEL)."""
    if cfg.teacher.name in ("paired", "clutr"):
        return PairedTraining(cfg, env, learner, device, build_env, build_learner)
    return CurriculumTraining(cfg, env, learner, device)


def make_writer(cfg: Any, space: Any) -> Any:
    """PAIRED's token writer, or CLUTR's latent teacher over the run's task VAE."""
    from marl.algos.ued.clutr import LatentTeacher
    from marl.algos.ued.paired import TokenWriter
    from marl.algos.ued.rvae import RVAEConfig, TaskVAE, load_vae

    t = cfg.teacher
    if t.name == "paired":
        return TokenWriter(space.length, space.vocab, seed=cfg.seed + 3)
    if t.vae_joint:
        vae = TaskVAE(space.length, space.vocab, RVAEConfig(), seed=cfg.seed + 5)
    else:
        vae = load_vae(t.vae or shipped_vae(cfg.env), space, cfg.env)
        vae.requires_grad_(False)
    return LatentTeacher(vae, space, seed=cfg.seed + 3, joint=t.vae_joint)


def shipped_vae(env_id: str) -> Path:
    """The task VAE shipped for ``env_id`` (``marl ued pretrain`` makes one for any other)."""
    from importlib import resources

    path = Path(str(resources.files("marl.algos.ued").joinpath("vaes").joinpath(
        f"{env_id.replace(':', '-')}.pt")))
    if not path.is_file():
        raise ValueError(f"no task VAE is shipped for {env_id}: train one with "
                         f"`marl ued pretrain --task-space {env_id} --out FILE` and pass "
                         "teacher.vae=FILE")
    return path


def draw_tasks(env: Any, count: int, prefix: Any) -> None:
    """PNGs of the first ``count`` copies of ``env`` as they play now (``<prefix>_<i>.png``)."""
    from marl.render import save_png

    for i in range(min(count, env.num_envs)):
        prefix.parent.mkdir(parents=True, exist_ok=True)
        save_png(env.render(i), prefix.parent / f"{prefix.name}_copy{i}.png")


class HeldOut:
    """Zero-shot tests on the held-out tasks of the training environment's id."""

    def __init__(self, cfg: Any, build_env: Any, device: torch.device) -> None:
        from marl.tasks import heldout_tasks

        self.cfg = cfg
        names, layouts = heldout_tasks(cfg.env)
        repeats = cfg.teacher.heldout_repeats
        self.names = names
        self.env = build_env(cfg, len(names) * repeats, device)
        self.tokens = self.env.task_space.encode(layouts).repeat(repeats, 1)
        register_tags({f"heldout/{n}_return": f"mean greedy return on the held-out task {n}"
                       for n in names})
        register_tags({f"heldout/{n}_solved": f"solved rate on the held-out task {n}"
                       for n in names})

    def test(self, learner: Any, seed: int, logger: RunLogger | None,
             t_env: int) -> dict[str, float]:
        self.env.set_tasks(self.tokens)
        result = evaluate(self.env, learner, self.tokens.shape[0], seed=seed)
        returns = result["return"].double().cpu()
        if "won" in result:
            solved = result["won"].double().cpu()
        else:
            solved = (result["length"] < self.env.spec.episode_limit).double().cpu()
        k = len(self.names)
        by_task = {}
        for i, name in enumerate(self.names):
            by_task[f"{name}_return"] = float(returns[i::k].mean())
            by_task[f"{name}_solved"] = float(solved[i::k].mean())
        figures = {"return_mean": float(returns.mean()), "solved_rate": float(solved.mean()),
                   **by_task}
        if logger is not None:
            logger.log("heldout", figures, t_env)
        return figures


register_tags({"heldout/return_mean": "mean greedy return on the held-out tasks",
               "heldout/solved_rate": "share of held-out episodes solved (won, or ended "
                                      "before the time limit)"})
for _name in ("buffer_fill", "replay_rate", "score_mean", "mutation_rate",
              "learn_fraction", "writer_policy_loss", "writer_value_loss", "writer_entropy",
              "regret_mean", "antagonist_return", "antagonist_policy_loss",
              "antagonist_env_steps"):
    register_tags({f"learner/teacher_{_name}": f"the curriculum teacher's {_name}"})
