"""Training on a curriculum: copies play the teacher's tasks, finished levels are scored from
the rollout, held-out tests and task pictures are written, and a run resumes exactly."""

from __future__ import annotations

import json

import pytest
import torch
from test_train_resume import _assert_same, _final

from marl.config import ConfigError, load_config
from marl.curriculum import CurriculumTraining, TaskedEnv
from marl.train import Trainer, train

ENV = "smacv2:protoss_5_vs_5"
SMALL = ("hidden_dim=16", "critic_hidden_dim=16", "rollout_steps=16", "num_minibatches=2",
         "teacher.buffer_size=32", "teacher.min_fill=0.1", "teacher.heldout_repeats=1",
         "teacher.render_tasks=2")


def _config(tmp_path, name: str, steps: int, teacher: str = "plr", save_interval: int = 0,
            extra: tuple[str, ...] = (), env: str = ENV):
    return load_config("mappo", env, flags=dict(
        steps=steps, num_envs=4, progress=False, tensorboard=False, seed=3,
        runs_dir=str(tmp_path), name=name, test_interval=0, test_episodes=4,
        save_interval=save_interval, teacher={"name": teacher}), overrides=SMALL + extra)


class Queue:
    """A scripted teacher: hands out tasks in order, records what it is told."""

    def __init__(self, space, n: int = 64) -> None:
        self.tasks = space.sample(n, torch.Generator().manual_seed(0))
        self.given = 0
        self.updates: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def propose(self, n: int):
        from marl.algos.ued.teachers import Proposal

        rows = self.tasks[self.given:self.given + n]
        self.given += n
        return Proposal(rows, torch.arange(self.given - n, self.given) % 2 == 0)

    def update(self, tokens, scores, returns) -> None:
        self.updates.append((tokens, scores, returns))

    def best_return(self, tokens, returns):
        return returns.double() + 1.0  # a made-up best, to check MaxMC's formula

    def metrics(self) -> dict[str, float]:
        return {}

    def state_dict(self):
        return {}

    def load_state_dict(self, state) -> None:
        return None


def test_copies_play_the_teachers_tasks_in_order_and_levels_are_scored(tmp_path):
    cfg = _config(tmp_path, "queue", 10_000, extra=("rollout_steps=150",))
    trainer = Trainer(cfg)
    data = trainer.data
    assert isinstance(data, CurriculumTraining)
    queue = Queue(trainer.env.task_space)
    data.teacher = data.env.teacher = queue
    trainer.runner.start(cfg.seed)
    first = queue.tasks[:4]
    assert torch.equal(data.env.playing, first) and queue.given == 8  # 4 playing, 4 queued
    assert torch.equal(trainer.env.state.kind, trainer.env.task_space.placement(first)[0])
    from marl.train import Counters

    c = Counters()
    stats = trainer.learner.reward_stats
    stats.update(torch.tensor([0.0, 2.0, 4.0]))  # the critic's units now differ from rewards'
    mean, std = stats.mean.clone(), stats.var.clone().add(1e-8).sqrt()
    data.iterate(c)
    played = torch.stack(data.env.played)  # [T, B, L]
    done = data.buffer["done"]
    for b in range(4):  # each copy's task changes exactly after its episodes end
        ends = done[:, b].nonzero().squeeze(1).tolist()
        switches = [t for t in range(1, played.shape[0])
                    if not torch.equal(played[t, b], played[t - 1, b])]
        assert switches == [t + 1 for t in ends if t + 1 < played.shape[0]]
    learn = data.buffer.learn
    assert torch.equal(learn[0], torch.tensor([True, False, True, False]))
    # MaxMC of every finished episode, recomputed by hand from the rollout: rewards in the
    # critic's units (MAPPO standardises them), returns discounted from the episode's start
    ended = int(done.sum())
    assert ended > 0 and sum(len(u[0]) for u in queue.updates) == ended
    tokens, scores, returns = queue.updates[0]
    team = data.buffer["reward"].sum(-1).double()
    reward = (team - mean) / std
    value = data.buffer["value"].mean(-1).double()
    t_end, b = (done.nonzero()[0]).tolist()
    gamma = trainer.learner.cfg.gamma
    want_return = float(sum(gamma ** t * reward[t, b] for t in range(t_end + 1)))
    assert float(returns[0]) == pytest.approx(want_return)
    want = (want_return + 1.0) - float(value[: t_end + 1, b].mean())
    assert float(scores[0]) == pytest.approx(want)


@pytest.mark.parametrize("teacher", ["dr", "plr", "accel",
                                     pytest.param("paired", marks=pytest.mark.slow)])
def test_a_curriculum_run_writes_heldout_figures_and_task_pictures(tmp_path, teacher):
    extra = ("rollout_steps=200",) if teacher == "paired" else ()  # whole episodes
    cfg = _config(tmp_path, teacher, 256 if teacher != "paired" else 800, teacher=teacher,
                  extra=extra)
    summary = train(cfg)
    assert 0.0 <= summary["heldout_solved_rate"] <= 1.0
    assert isinstance(summary["heldout_return_mean"], float)
    pictures = sorted((tmp_path / teacher / "tasks").glob("*.png"))
    assert len(pictures) == 2 * 2  # two tests (start, end) × render_tasks
    json.dumps(summary)


def test_curricula_need_tasks_and_rollout_learners(tmp_path):
    with pytest.raises(ConfigError, match="no tasks"):
        Trainer(load_config("mappo", "smac:3m", flags=dict(
            runs_dir=str(tmp_path), progress=False, teacher={"name": "dr"})))
    with pytest.raises(ConfigError, match="rollout learners"):
        Trainer(load_config("qmix", ENV, flags=dict(
            runs_dir=str(tmp_path), progress=False, teacher={"name": "plr"})))
    with pytest.raises(ConfigError, match="teacher.name"):
        load_config("mappo", ENV, overrides=("teacher.name=paired_v2",))


@pytest.mark.slow
@pytest.mark.parametrize("teacher", ["plr", "accel", "paired"])
def test_a_curriculum_run_resumes_exactly(tmp_path, teacher):
    n = 512 if teacher != "paired" else 800
    extra = ("rollout_steps=200",) if teacher == "paired" else ()
    straight = train(_config(tmp_path, "straight", 2 * n, teacher, save_interval=n,
                             extra=extra))
    train(_config(tmp_path, "broken", n, teacher, extra=extra))
    resumed = train(None, resume=tmp_path / "broken", flags={"steps": 2 * n})
    assert resumed["env_steps"] == straight["env_steps"] == 2 * n
    a, b = _final(tmp_path / "straight"), _final(tmp_path / "broken")
    parts = (("learner", "antagonist", "writer", "antagonist_steps") if teacher == "paired"
             else ("learner", "runner", "teacher", "level_sums"))
    for part in parts:
        _assert_same(a[part], b[part], part)
    assert resumed["heldout_return_mean"] == straight["heldout_return_mean"]


def test_paired_regret_drives_the_writer():
    """The writer learns to write what earns regret: with regret 1 for token 0 in the first
    position and 0 otherwise, token 0 becomes likely there."""
    from marl.algos.ued.paired import TokenWriter, WriterConfig

    writer = TokenWriter(3, 4, WriterConfig(hidden_dim=16, noise_dim=4, lr=3e-3,
                                            entropy_coef=0.0), seed=0)
    for _ in range(60):
        written = writer.write(64)
        writer.update(written, (written.tokens[:, 0] == 0).float())
    assert (writer.write(256).tokens[:, 0] == 0).float().mean() > 0.8


def test_tasked_env_refuses_an_env_without_tasks():
    from marl.envs import make

    with pytest.raises(ValueError, match="no tasks"):
        TaskedEnv(make("smac:3m"), teacher=None)
