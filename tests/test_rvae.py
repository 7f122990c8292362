"""CLUTR's recurrent task VAE: training reconstructs tasks, decoding is deterministic and stays
in range over the whole latent box, files round-trip and name their task space, the unsorted
ablation trains on shuffled tokens."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch

from marl.algos.ued.rvae import (
    RVAEConfig,
    TaskVAE,
    load_vae,
    save_vae,
    train_vae,
    training_batch,
    vae_metrics,
)
from marl.envs.lbf import LBFTaskSpace

pytestmark = pytest.mark.usefixtures("one_thread")


class Multisets:
    """A tiny task space: ``length`` tokens in ``[0, vocab)``, a task is their multiset, the
    canonical order ascending (what the VAE needs of a space: sample, canonical, shuffle)."""

    def __init__(self, length: int = 5, vocab: int = 8) -> None:
        self.length, self.vocab = length, vocab

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randint(0, self.vocab, (n, self.length), generator=generator).sort(1).values

    def canonical(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens.remainder(self.vocab).sort(1).values

    def shuffle(self, tokens: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        order = torch.rand(tokens.shape, generator=generator).argsort(1)
        return self.canonical(tokens).gather(1, order)


SPACE = Multisets()
# Small enough to train in a few seconds on one thread; CLUTR's word dropout, so that training
# runs through it.
CFG = RVAEConfig(latent_dim=8, embed_dim=16, hidden_dim=64, word_dropout=0.3,
                 kl_weight_max=0.1, kl_anneal_steps=100, lr=3e-3, batch_size=64, steps=200,
                 log_interval=100)


@pytest.fixture(scope="module")
def trained() -> tuple[TaskVAE, dict[str, float]]:
    return train_vae(SPACE, CFG, seed=0)


def test_a_short_run_reconstructs_held_out_tasks(trained):
    """792 multisets behind 8 latent dimensions: 200 steps reconstruct 0.993-0.997 of the
    tokens (seeds 0-3; 0.97-0.98 of whole tasks); with the latent unused (posterior collapse
    under a KL weight of 30) the same run reaches 0.22. So 0.95 has room and still needs the
    latent."""
    vae, metrics = trained
    assert not vae.training
    assert metrics["token_accuracy"] >= 0.95
    assert metrics["task_accuracy"] >= 0.8
    assert metrics == vae_metrics(vae, SPACE)  # the returned metrics are vae_metrics'


def test_metrics_keys_and_ranges(trained):
    vae, _ = trained
    metrics = vae_metrics(vae, SPACE, n=200, seed=3)
    assert set(metrics) == {"token_accuracy", "task_accuracy", "layout_accuracy", "legal_share",
                            "distinct_share"}
    assert all(0.0 <= v <= 1.0 for v in metrics.values())
    assert metrics["task_accuracy"] <= metrics["layout_accuracy"]
    assert metrics["task_accuracy"] <= metrics["token_accuracy"]
    assert metrics["distinct_share"] > 0.1  # random latents decode to many tasks


def test_training_is_reproducible_and_logs():
    cfg = dataclasses.replace(CFG, steps=20, log_interval=10)
    logged: list[tuple[int, dict[str, float]]] = []
    a, _ = train_vae(SPACE, cfg, seed=4, log=lambda step, m: logged.append((step, m)))
    b, _ = train_vae(SPACE, cfg, seed=4)
    c, _ = train_vae(SPACE, cfg, seed=5)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
    assert any(not torch.equal(x, z) for x, z in zip(a.state_dict().values(),
                                                     c.state_dict().values(), strict=True))
    assert [step for step, _ in logged] == [10, 20]
    assert set(logged[0][1]) == {"reconstruction", "kl", "kl_weight", "objective"}
    assert logged[0][1]["kl_weight"] == pytest.approx(0.1 * 10 / 100)


def test_decode_is_deterministic_and_batch_independent(trained):
    vae, _ = trained
    z = vae.from_unit(torch.rand(50, CFG.latent_dim, generator=torch.Generator().manual_seed(1)))
    tokens = vae.decode(z)
    assert tokens.shape == (50, SPACE.length) and tokens.dtype == torch.long
    assert torch.equal(vae.decode(z), tokens)
    assert torch.equal(torch.cat([vae.decode(z[i:i + 1]) for i in range(50)]), tokens)
    vae.train()  # decoding never drops words or samples, whatever the mode
    try:
        assert torch.equal(vae.decode(z), tokens)
    finally:
        vae.eval()


def test_the_latent_box(trained):
    vae, _ = trained
    scale = CFG.latent_scale
    tasks = SPACE.sample(500, torch.Generator().manual_seed(2))
    z = vae.encode_mean(tasks)
    assert z.shape == (500, CFG.latent_dim) and (z.abs() <= scale).all()
    corners = torch.tensor(list(itertools.product((-scale, scale), repeat=CFG.latent_dim)))
    assert torch.equal(vae.from_unit((corners > 0).float()), corners)
    tokens = vae.decode(corners)  # all 256 corners
    assert ((tokens >= 0) & (tokens < SPACE.vocab)).all()
    with pytest.raises(ValueError, match=r"box \[-4.0, 4.0\]\^8 .* got -4.04"):
        vae.decode(corners * 1.01)
    with pytest.raises(ValueError, match="box.*got nan"):
        vae.decode(torch.full((1, CFG.latent_dim), float("nan")))
    with pytest.raises(ValueError, match=r"latents must be floats \[n, 8\]"):
        vae.decode(torch.zeros(2, 7))
    with pytest.raises(ValueError, match=r"tokens must be in \[0, 8\)"):
        vae.encode_mean(tasks + 1)
    with pytest.raises(ValueError, match=r"int64 \[n, 5\]"):
        vae.encode_mean(tasks[:, :4])


def test_save_and_load(trained, tmp_path):
    vae, metrics = trained
    path = tmp_path / "vae.pt"
    save_vae(path, vae, "multisets:5x8", metrics)
    assert set(torch.load(path, weights_only=True)) >= {"weights", "config", "metrics", "length",
                                                        "vocab", "space_id"}
    loaded = load_vae(path, SPACE, "multisets:5x8")
    assert not loaded.training and loaded.cfg == vae.cfg
    z = vae.from_unit(torch.rand(100, CFG.latent_dim, generator=torch.Generator().manual_seed(3)))
    assert torch.equal(loaded.decode(z), vae.decode(z))
    with pytest.raises(ValueError, match="'multisets:5x8'.*'multisets:other'"):
        load_vae(path, SPACE, "multisets:other")
    for other in (Multisets(length=6), Multisets(vocab=9)):
        with pytest.raises(ValueError, match=r"length 5, vocab 8\), not 'multisets:5x8' "
                                             rf"\(length {other.length}, vocab {other.vocab}"):
            load_vae(path, other, "multisets:5x8")
    torch.save({"weights": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a task VAE file"):
        load_vae(tmp_path / "other.pt", SPACE, "multisets:5x8")


def test_unsorted_ablation_trains_on_shuffled_tasks(monkeypatch):
    """``sorted=False`` feeds the VAE the same layouts in shuffled token order."""
    space = LBFTaskSpace(5, 5, 2, 2, max_walls=8)
    fed: list[torch.Tensor] = []
    loss = TaskVAE.loss
    monkeypatch.setattr(TaskVAE, "loss", lambda self, tokens, g: fed.append(tokens)
                        or loss(self, tokens, g))
    small = dataclasses.replace(CFG, steps=3, batch_size=100)
    for unsorted in (False, True):
        fed.clear()
        train_vae(space, dataclasses.replace(small, sorted=not unsorted), seed=0)
        tokens = torch.cat(fed)
        assert tokens.shape == (300, space.length)
        canonical = space.canonical(tokens)
        reordered = (canonical != tokens).any(1).float().mean().item()
        assert reordered > 0.5 if unsorted else reordered == 0.0


def test_training_batch_and_config_checks():
    g = torch.Generator().manual_seed(0)
    assert torch.equal(training_batch(SPACE, CFG, g), SPACE.sample(64, torch.Generator()
                                                                   .manual_seed(0)))
    with pytest.raises(ValueError, match="hidden_dim must be an integer >= 2"):
        RVAEConfig(hidden_dim=1)
    with pytest.raises(ValueError, match=r"word_dropout must be in \[0, 1\)"):
        RVAEConfig(word_dropout=1.0)
