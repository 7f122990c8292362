"""``BatchedEnv.compile()``: the compiled step equals the eager one (up to float rounding),
and a run can ask for it (``compile_env=true``)."""

from __future__ import annotations

import pytest
import torch

from marl.envs import make

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.mark.parametrize("env_id", ["smac:3m", "lbf:8x8-2p-3f"])
def test_compiled_step_equals_the_eager_step(env_id):
    eager = make(env_id, num_envs=32, seed=3)
    fast = make(env_id, num_envs=32, seed=3).compile()
    obs_e, obs_f = eager.reset(seed=3), fast.reset(seed=3)
    torch.testing.assert_close(obs_e.obs, obs_f.obs)
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        noise = torch.rand(obs_e.avail.shape, generator=gen)
        actions = noise.masked_fill(~obs_e.avail, -1).argmax(-1)
        a, b = eager.step(actions), fast.step(actions)
        for x, y in ((a.obs.obs, b.obs.obs), (a.obs.state, b.obs.state), (a.reward, b.reward)):
            torch.testing.assert_close(x, y, atol=1e-4, rtol=1e-4)
        assert torch.equal(a.obs.avail, b.obs.avail)
        assert torch.equal(a.terminated, b.terminated) and torch.equal(a.truncated, b.truncated)
        obs_e = a.obs


def test_a_run_can_compile_its_environment(tmp_path, capsys):
    import json

    from marl.cli import main

    assert main(["train", "--algo", "iql", "--env", "lbf:5x5-2p-1f", "--steps", "100",
                 "--num-envs", "2", "--runs-dir", str(tmp_path), "--no-progress",
                 "test_episodes=2", "compile_env=true"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["env_steps"] == 100


def test_the_compiled_lbf_step_compiles_once_while_the_meals_change_size():
    """The meals run in the copies where food was eaten, a count that changes per step; left
    out of the graph (``_left_eager``), they cause no recompile."""
    torch._dynamo.reset()  # this test's compile is the first: others' shapes are not recompiles
    env = make("lbf:8x8-2p-3f", num_envs=32, seed=5).compile()
    obs = env.reset(seed=5)
    gen = torch.Generator().manual_seed(1)
    meals = set()
    with torch._dynamo.config.patch(error_on_recompile=True):
        for _ in range(60):
            noise = torch.rand(obs.avail.shape, generator=gen)
            out = env.step(noise.masked_fill(~obs.avail, -1).argmax(-1))
            meals.add(int((out.reward > 0).any(-1).sum()))
            obs = out.obs
    assert len(meals - {0}) >= 2  # the meals ran over copy counts of at least two sizes


def test_importing_the_environments_does_not_import_the_compiler(tmp_path):
    import subprocess
    import sys

    code = "import sys, marl.envs; print('torch._dynamo' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path)  # the installed package, not a checkout's sources
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
