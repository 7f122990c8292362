"""CLUTR's teacher: the latent box mapping, learning where regret pays, and runs on a VAE."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from marl.algos.ued.clutr import LatentTeacher, LatentTeacherConfig, to_latent


class BoxDecoder(torch.nn.Module):
    """A stand-in VAE: token j is which quarter of the box z[j] falls in."""

    def __init__(self, dims: int = 3, scale: float = 4.0) -> None:
        super().__init__()
        self.cfg = SimpleNamespace(latent_dim=dims, latent_scale=scale)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        scale = self.cfg.latent_scale
        return ((z + scale) / (2 * scale) * 4).floor().clamp(0, 3).long()


def test_the_latent_map_covers_the_whole_box():
    u = torch.tensor([[0.0, 0.5, 1.0]])
    assert torch.equal(to_latent(u, 4.0), torch.tensor([[-4.0, 0.0, 4.0]]))
    teacher = LatentTeacher(BoxDecoder(), space=None, seed=0)
    chosen = teacher.write(512)
    assert set(chosen.tokens.unique().tolist()) == {0, 1, 2, 3}  # every quarter reachable
    assert torch.equal(chosen.tokens, BoxDecoder().decode(to_latent(chosen.u, 4.0)))


def test_the_teacher_moves_its_mass_where_regret_pays():
    teacher = LatentTeacher(BoxDecoder(), space=None, seed=1,
                            cfg=LatentTeacherConfig(hidden_dim=32, noise_dim=4, lr=3e-3))
    before = (teacher.write(1024).u[:, 0] > 0.75).float().mean()
    for _ in range(80):
        chosen = teacher.write(128)
        teacher.update(chosen, (chosen.tokens[:, 0] == 3).float())  # the last quarter pays
    after = (teacher.write(1024).u[:, 0] > 0.75).float().mean()
    assert before < 0.4 and after > 0.8


def test_the_teacher_resumes_exactly():
    a = LatentTeacher(BoxDecoder(), space=None, seed=2)
    for _ in range(3):
        c = a.write(16)
        a.update(c, c.u[:, 1])
    b = LatentTeacher(BoxDecoder(), space=None, seed=9)
    b.load_state_dict_all(a.state_dict_all())
    ca, cb = a.write(16), b.write(16)
    assert torch.equal(ca.u, cb.u) and torch.equal(ca.tokens, cb.tokens)


def _tiny_vae(tmp_path, env_id: str = "smacv2:protoss_5_vs_5"):
    from marl.algos.ued.rvae import RVAEConfig, save_vae, train_vae
    from marl.envs import make

    space = make(env_id, num_envs=1).task_space
    cfg = RVAEConfig(latent_dim=8, embed_dim=8, hidden_dim=16, steps=20, batch_size=16,
                     kl_anneal_steps=10, log_interval=10)
    vae, metrics = train_vae(space, cfg, seed=0)
    path = tmp_path / "vae.pt"
    save_vae(path, vae, env_id, metrics)
    return path


@pytest.mark.parametrize("variant", [
    (), pytest.param(("teacher.clutr_score=max_mc",), marks=pytest.mark.slow),
    pytest.param(("teacher.vae_joint=true",), marks=pytest.mark.slow)])
def test_a_clutr_run_plays_decoded_tasks_and_tests_on_the_heldout_set(tmp_path, variant):
    from test_curriculum import _config

    from marl.train import train

    path = _tiny_vae(tmp_path)
    extra = ("rollout_steps=200", f"teacher.vae={path}", *variant)
    summary = train(_config(tmp_path, "clutr", 800, teacher="clutr", extra=extra))
    assert summary["env_steps"] == 800 and 0.0 <= summary["heldout_solved_rate"] <= 1.0


def test_a_vae_for_another_task_space_is_refused(tmp_path):
    from test_curriculum import _config

    from marl.config import ConfigError
    from marl.train import Trainer

    path = _tiny_vae(tmp_path, "smacv2:terran_5_vs_5")
    with pytest.raises(ConfigError, match="teacher.name"):
        Trainer(_config(tmp_path, "wrong", 800, teacher="clutr",
                        extra=("rollout_steps=200", f"teacher.vae={path}")))
    with pytest.raises(ConfigError, match="marl ued pretrain"):  # none shipped for zerg
        Trainer(_config(tmp_path, "none", 800, teacher="clutr", extra=("rollout_steps=200",),
                        env="smacv2:zerg_5_vs_5"))


@pytest.mark.slow
def test_a_clutr_run_resumes_exactly(tmp_path):
    from test_curriculum import _config
    from test_train_resume import _assert_same, _final

    from marl.train import train

    path = _tiny_vae(tmp_path)
    extra = ("rollout_steps=200", f"teacher.vae={path}")
    straight = train(_config(tmp_path, "straight", 1600, "clutr", save_interval=800,
                             extra=extra))
    train(_config(tmp_path, "broken", 800, "clutr", extra=extra))
    resumed = train(None, resume=tmp_path / "broken", flags={"steps": 1600})
    assert resumed["env_steps"] == straight["env_steps"] == 1600
    a, b = _final(tmp_path / "straight"), _final(tmp_path / "broken")
    for part in ("learner", "antagonist", "writer", "antagonist_steps"):
        _assert_same(a[part], b[part], part)


def test_marl_ued_pretrain_writes_a_vae_that_loads(tmp_path, capsys):
    import json

    from marl.algos.ued.rvae import load_vae
    from marl.cli import main
    from marl.envs import make

    out = tmp_path / "lbf.pt"
    assert main(["ued", "pretrain", "--task-space", "lbf:5x5-2p-1f", "--out", str(out),
                 "--steps", "5"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"token_accuracy", "task_accuracy", "legal_share", "distinct_share"} <= set(line)
    load_vae(out, make("lbf:5x5-2p-1f").task_space, "lbf:5x5-2p-1f")
    assert main(["ued", "pretrain", "--task-space", "smac:3m", "--out", str(out)]) == 2


@pytest.mark.parametrize("env_id", ["lbf:13x13-2p-3f", "smacv2:protoss_5_vs_5"])
def test_the_shipped_task_vae_loads_for_its_space_and_decodes_distinct_legal_tasks(env_id):
    from marl.algos.ued.rvae import load_vae
    from marl.curriculum import shipped_vae
    from marl.envs import make

    env = make(env_id, num_envs=1)
    vae = load_vae(shipped_vae(env_id), env.task_space, env_id)
    u = torch.rand(64, vae.cfg.latent_dim, generator=torch.Generator().manual_seed(0))
    z = vae.from_unit(u)
    tokens = env.task_space.canonical(vae.decode(z))
    layouts = env.task_space.decode(tokens)
    assert len({str(x) for x in layouts}) == 64  # distinct tasks from distinct latents
    assert torch.equal(env.task_space.encode(layouts), tokens)  # each one legal
    with pytest.raises(ValueError, match="no task VAE is shipped for lbf:8x8-2p-3f"):
        shipped_vae("lbf:8x8-2p-3f")


def test_the_shipped_smacv2_task_vae_reconstructs_random_tasks():
    """Its file says token accuracy 0.96 on 1,000 held-out random tasks; 0.9 leaves room for
    the sampling noise of 256 tasks."""
    from marl.algos.ued.rvae import load_vae
    from marl.curriculum import shipped_vae
    from marl.envs import make

    env_id = "smacv2:protoss_5_vs_5"
    space = make(env_id, num_envs=1).task_space
    vae = load_vae(shipped_vae(env_id), space, env_id)
    tokens = space.sample(256, torch.Generator().manual_seed(7))
    with torch.no_grad():
        decoded = vae.decode(vae.encode_mean(tokens))
    assert (decoded == tokens).double().mean() > 0.9
