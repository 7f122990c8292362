"""CLUTR's teacher: the latent box mapping, learning where regret pays, and runs on a VAE."""

from __future__ import annotations

from types import SimpleNamespace

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
