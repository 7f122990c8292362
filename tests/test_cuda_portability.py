"""What broke only on CUDA, caught on a CPU: integer matrix products, and an env's state left
on the CPU when a run resumes.

CUDA has no integer ``matmul``/``mm``/``mv``/``addmm``/``einsum`` (``"addmv_impl_cuda" not
implemented for 'Long'``), while the CPU computes them. LBF's cell numbers were such a product
and failed the first GPU check; these tests step the environments and train briefly under a
torch function mode that refuses any matrix product of integer tensors.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode

from marl.config import load_config
from marl.envs import make
from marl.train import Trainer

MATRIX_PRODUCTS = {
    torch.matmul, torch.mm, torch.mv, torch.bmm, torch.addmm, torch.addmv, torch.addbmm,
    torch.baddbmm, torch.einsum, torch.tensordot, torch.inner,
    torch.Tensor.matmul, torch.Tensor.__matmul__, torch.Tensor.__rmatmul__, torch.Tensor.mm,
    torch.Tensor.mv, torch.Tensor.bmm, torch.Tensor.addmm, torch.Tensor.addmm_,
    torch.Tensor.addmv, torch.Tensor.addmv_, torch.Tensor.baddbmm,
}


class NoIntegerMatrixProducts(TorchFunctionMode):
    def __torch_function__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        if func in MATRIX_PRODUCTS:
            tensors = [a for a in (*args, *(kwargs or {}).values()) if isinstance(a, torch.Tensor)]
            if any(not (t.is_floating_point() or t.is_complex()) for t in tensors):
                raise AssertionError(f"{func.__name__} of {[t.dtype for t in tensors]}: CUDA "
                                     "has no integer matrix products")
        return func(*args, **(kwargs or {}))


def test_the_guard_refuses_an_integer_product():
    with NoIntegerMatrixProducts(), pytest.raises(AssertionError, match="integer matrix"):
        torch.tensor([[1, 2]]) @ torch.tensor([3, 4])


@pytest.mark.parametrize("env_id", [
    "lbf:8x8-2p-3f", "lbf:2s-10x10-3p-3f-coop", "lbf:grid-2s-8x8-2p-2f", "smac:3m",
    "smac:2s3z", "smacv2:protoss_5_vs_5",
])
def test_environments_step_without_integer_products(env_id):
    _play_randomly(make(env_id, num_envs=8, seed=0))


def test_walled_lbf_steps_without_integer_products():
    _play_randomly(make("lbf:8x8-2p-2f", num_envs=4, seed=0, walls=[[0, 3], [1, 3], [5, 5]]))


def _play_randomly(env: Any, steps: int = 30) -> None:
    """Random available actions under the guard, from the reset on."""
    gen = torch.Generator().manual_seed(0)
    with NoIntegerMatrixProducts():
        obs = env.reset(seed=0)
        for _ in range(steps):
            noise = torch.rand(obs.avail.shape, generator=gen)
            obs = env.step(noise.masked_fill(~obs.avail, -1).argmax(-1)).obs


@pytest.mark.parametrize("algo", ["qmix", "mappo"])
def test_training_without_integer_products(algo, tmp_path):
    cfg = load_config(algo, "lbf:5x5-2p-1f", flags=dict(
        steps=400, num_envs=4, seed=1, progress=False, tensorboard=False, test_interval=0,
        test_episodes=2, save_interval=0, save_replay=False, runs_dir=str(tmp_path)))
    with NoIntegerMatrixProducts():
        Trainer(cfg).run()


def test_an_env_state_is_put_on_the_envs_device_but_its_generator_state():
    """Checkpoints load on the CPU; a CUDA env must take its state onto its own device (a
    resumed run on CUDA failed on it), while a generator's state stays a CPU tensor."""
    from marl.batched_env import state_on_device

    env = make("lbf:8x8-2p-3f", num_envs=4, seed=0)
    env.reset(seed=0)
    sd = env.state_dict()
    moved = state_on_device(sd, torch.device("meta"))
    assert moved["rng"] is sd["rng"]
    tensors = [moved["state"], moved["last_obs"]]
    assert all(t.device.type == "meta" for part in tensors for t in part.values())
    assert moved.keys() == sd.keys()
