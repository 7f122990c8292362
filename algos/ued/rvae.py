"""CLUTR's recurrent VAE over task tokens (Azad et al. 2023, arXiv 2210.10243).

CLUTR learns a latent manifold of tasks before any training of the students: a recurrent VAE
reconstructs random task token sequences (a :class:`~marl.tasks.TaskSpace`'s ``sample``, in
its canonical order: sorting the interchangeable tokens is what makes the manifold learnable),
with no environment interaction. A teacher then picks points of the latent box and the frozen
VAE decodes them into tasks.

:class:`TaskVAE`
    tokens ``[n, L]`` → embedding → bidirectional LSTM → its summary (the last hidden state
    of each direction, as CLUTR, and the mean of its outputs over the positions, which puts
    every token one step from the summary and learns faster) → ``μ``, ``log σ²`` ``[n, D]``.
    The latent is squashed into the box ``[-scale, scale]^D``: training samples
    ``z = scale · tanh(μ + σ ε)`` (the squash is applied to the Gaussian *sample*; the KL term
    is that of the Gaussian before squashing against ``N(0, I)``), and deterministic encoding
    is ``encode_mean = scale · tanh(μ)``. The decoder is an LSTM fed, at every step,
    ``[embedding of the previous token ; z]`` (a start token first); in training, word dropout
    replaces each previous token's embedding by a learned "dropped" embedding with probability
    ``word_dropout``, so the decoder must read more of the task from ``z``. ``decode`` is
    greedy (argmax), batched and deterministic.

Latents
    The decoder only ever sees the squashed range it was trained on: ``decode`` refuses latents
    outside the box, and :meth:`TaskVAE.from_unit` maps a point of ``[0, 1]^D`` (a Beta policy's
    sample) affinely onto the whole box — CLUTR's released code fed its ``[0, 1]`` samples to
    the decoder unscaled, using only a corner of the box.

Training (:func:`train_vae`): fresh random batches every step (``space.sample``; with
``sorted=False``, CLUTR's "unsorted training data" ablation, :func:`training_batch` writes them
in a random order with ``space.shuffle``); Adam; the objective per task is
``L · reconstruction + β · KL`` (``reconstruction`` is the mean cross-entropy per token, so
``L ·`` it is the sequence's negative log-likelihood and ``β = 1`` is the ELBO), ``β`` rising
linearly from 0 to ``kl_weight_max`` over ``kl_anneal_steps`` steps.

Files (:func:`save_vae`, :func:`load_vae`): one ``torch.save`` of plain values and tensors,
loaded with ``weights_only=True``; a file names its task space (``space_id``, ``length``,
``vocab``) and refuses to load for another.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from marl.tasks import TaskSpace

FORMAT = "marl.task_vae/1"  # the file format's name and version


@dataclass
class RVAEConfig:
    """The VAE's sizes and training.

    CLUTR uses embeddings of 300, an encoder LSTM of 600 per direction, a 2-layer decoder LSTM
    of 800, batch 32, lr 5e-5 and 1M steps: out of reach of a CPU. The defaults are sized for
    ``lbf:13x13-2p-3f`` with 40 walls (45 tokens, vocab 677) on 2 CPU cores in under 30
    minutes: embeddings of 64, a decoder LSTM of 256 (the encoder 128 per direction), batch
    64, 10,000 steps at a measured ~6 steps/s on one thread (~28 minutes). Compared over the
    same steps there: a decoder of 384 learned a little more for 1.8x the time, a 2-layer
    decoder (CLUTR's) no more and slower; lr 3e-3 a little faster than 1e-3; word dropout 0.3
    (CLUTR's) slowed reconstruction (a small KL weight already makes the decoder use the
    latent), hence 0; a KL weight of 0.5 held the KL near 10 nats and reconstruction low, 0.1
    let it grow to ~100. Thus configured, the VAE reconstructs 64% of those tokens after
    3,500 steps and 73% after 10,000 (no whole task), still rising slowly: a task holds ~100
    nats, and reconstructing it well takes more than 30 CPU minutes (train on a GPU,
    ``train_vae(..., device=...)``, with more steps).
    """

    latent_dim: int = 64  # D, as CLUTR
    latent_scale: float = 4.0  # the latent box is [-scale, scale]^D (CLUTR: 4 · tanh)
    embed_dim: int = 64  # token embedding, shared by encoder and decoder
    hidden_dim: int = 256  # decoder LSTM; the encoder's has half of it per direction
    word_dropout: float = 0.0  # decoder inputs replaced by "dropped" in training (CLUTR: 0.3)
    kl_weight_max: float = 0.1  # β at the end of annealing
    kl_anneal_steps: int = 2000  # β rises linearly from 0 to kl_weight_max over these steps
    lr: float = 3e-3  # Adam
    batch_size: int = 64  # fresh random tasks per step
    steps: int = 10_000  # optimiser steps
    sorted: bool = True  # False: train on shuffled tokens (CLUTR's unsorted-data ablation)
    log_interval: int = 100  # train_vae calls log every this many steps

    def __post_init__(self) -> None:
        for name, low in (("latent_dim", 1), ("embed_dim", 1), ("hidden_dim", 2),
                          ("batch_size", 1), ("steps", 1), ("log_interval", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"RVAEConfig: {name} must be an integer >= {low}, got {value!r}")
        if not isinstance(self.kl_anneal_steps, int) or self.kl_anneal_steps < 0:
            raise ValueError("RVAEConfig: kl_anneal_steps must be an integer >= 0, got "
                             f"{self.kl_anneal_steps!r}")
        if not 0 <= self.word_dropout < 1:
            raise ValueError(f"RVAEConfig: word_dropout must be in [0, 1), got "
                             f"{self.word_dropout!r}")
        for name in ("latent_scale", "lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"RVAEConfig: {name} must be > 0, got {getattr(self, name)!r}")
        if not self.kl_weight_max >= 0:
            raise ValueError(f"RVAEConfig: kl_weight_max must be >= 0, got "
                             f"{self.kl_weight_max!r}")


class TaskVAE(nn.Module):
    """A recurrent VAE over tasks ``[n, length]`` of tokens in ``[0, vocab)`` (module doc).
    ``seed`` seeds the initial weights (the global RNG is left as it was)."""

    def __init__(self, length: int, vocab: int, cfg: RVAEConfig, seed: int = 0) -> None:
        super().__init__()
        self.length, self.vocab, self.cfg = length, vocab, cfg
        self.start, self.dropped = vocab, vocab + 1  # two extra input tokens
        e, h, d = cfg.embed_dim, cfg.hidden_dim, cfg.latent_dim
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.embed = nn.Embedding(vocab + 2, e)
            self.encoder = nn.LSTM(e, h // 2, batch_first=True, bidirectional=True)
            self.to_mu = nn.Linear(h // 2 * 4, d)
            self.to_logvar = nn.Linear(h // 2 * 4, d)
            self.decoder = nn.LSTM(e + d, h, batch_first=True)
            self.head = nn.Linear(h, vocab)

    # --- encoding ------------------------------------------------------------------------------
    def encode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``μ`` and ``log σ²`` ``[n, D]`` of the Gaussian before squashing."""
        y, (h, _) = self.encoder(self.embed(self._check_tokens(tokens)))
        summary = torch.cat([h[0], h[1], y.mean(1)], dim=-1)  # last states, mean output
        return self.to_mu(summary), self.to_logvar(summary)

    @torch.no_grad()
    def encode_mean(self, tokens: torch.Tensor) -> torch.Tensor:
        """The deterministic latent ``scale · tanh(μ)`` ``[n, D]``, in the box."""
        mu, _ = self.encode(tokens)
        return self.cfg.latent_scale * torch.tanh(mu)

    # --- decoding ------------------------------------------------------------------------------
    def from_unit(self, u: torch.Tensor) -> torch.Tensor:
        """The point of the latent box for each ``u [n, D]`` in ``[0, 1]^D`` (affine)."""
        return self.cfg.latent_scale * (2 * u - 1)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Greedy tokens ``[n, length]`` of the latents ``z [n, D]`` in the box."""
        z = self._check_latents(z)
        n = z.shape[0]
        token = torch.full((n, 1), self.start, dtype=torch.long, device=z.device)
        state = None
        out = []
        for _ in range(self.length):
            x = torch.cat([self.embed(token), z.unsqueeze(1)], dim=-1)
            y, state = self.decoder(x, state)
            token = self.head(y).argmax(-1)
            out.append(token)
        return torch.cat(out, dim=1)

    def _logits(self, tokens: torch.Tensor, z: torch.Tensor,
                generator: torch.Generator) -> torch.Tensor:
        """Teacher-forced next-token logits ``[n, length, vocab]``, with word dropout on the
        previous tokens (drawn by ``generator``)."""
        n = tokens.shape[0]
        previous = torch.cat([torch.full((n, 1), self.start, dtype=torch.long,
                                         device=tokens.device), tokens[:, :-1]], dim=1)
        if self.cfg.word_dropout > 0:
            drop = torch.rand(previous.shape, generator=generator,
                              device=generator.device).to(tokens.device)
            drop[:, 0] = 1.0  # the start token is always seen
            previous = previous.masked_fill(drop < self.cfg.word_dropout, self.dropped)
        x = torch.cat([self.embed(previous), z.unsqueeze(1).expand(-1, self.length, -1)], -1)
        y, _ = self.decoder(x)
        return self.head(y)

    # --- the training loss ---------------------------------------------------------------------
    def loss(self, tokens: torch.Tensor,
             generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``(reconstruction, kl)``: the mean cross-entropy per token of reconstructing
        ``tokens`` from a sampled latent, with word dropout, and the KL divergence of the
        Gaussian before squashing from ``N(0, I)``, averaged over the batch. ``generator``
        draws ``ε`` and the dropped words."""
        mu, logvar = self.encode(tokens)
        eps = torch.randn(mu.shape, generator=generator, device=generator.device)
        z = self.cfg.latent_scale * torch.tanh(mu + torch.exp(0.5 * logvar) * eps.to(mu.device))
        logits = self._logits(tokens, z, generator)
        reconstruction = F.cross_entropy(logits.reshape(-1, self.vocab), tokens.reshape(-1))
        kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(-1).mean()
        return reconstruction, kl

    # --- input checks --------------------------------------------------------------------------
    def _check_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        if (not isinstance(tokens, torch.Tensor) or tokens.dim() != 2
                or tokens.shape[1] != self.length or tokens.dtype != torch.long):
            got = (f"{tokens.dtype} {list(tokens.shape)}" if isinstance(tokens, torch.Tensor)
                   else type(tokens).__name__)
            raise ValueError(f"TaskVAE: tokens must be int64 [n, {self.length}], got {got}")
        if tokens.numel() and not ((tokens >= 0) & (tokens < self.vocab)).all():
            raise ValueError(f"TaskVAE: tokens must be in [0, {self.vocab}), got "
                             f"[{int(tokens.min())}, {int(tokens.max())}]")
        return tokens

    def _check_latents(self, z: torch.Tensor) -> torch.Tensor:
        d, scale = self.cfg.latent_dim, self.cfg.latent_scale
        if (not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != d
                or not z.dtype.is_floating_point):
            got = (f"{z.dtype} {list(z.shape)}" if isinstance(z, torch.Tensor)
                   else type(z).__name__)
            raise ValueError(f"TaskVAE: latents must be floats [n, {d}], got {got}")
        z = z.to(self.head.weight.dtype)
        outside = z[~(z.abs() <= scale)]
        if outside.numel():
            raise ValueError(f"TaskVAE: latents must lie in the box [-{scale}, {scale}]^{d} the "
                             "decoder was trained on (use from_unit for points of [0, 1]^D), "
                             f"got {float(outside[0]):.4g}")
        return z


def training_batch(space: TaskSpace, cfg: RVAEConfig, generator: torch.Generator) -> torch.Tensor:
    """``cfg.batch_size`` random tasks as the VAE trains on them: canonical, or shuffled within
    each group of interchangeable tokens when ``cfg.sorted`` is False."""
    tokens = space.sample(cfg.batch_size, generator)
    return tokens if cfg.sorted else space.shuffle(tokens, generator)


def train_vae(space: TaskSpace, cfg: RVAEConfig, seed: int = 0, *,
              log: Callable[[int, dict[str, float]], None] | None = None,
              device: str | torch.device = "cpu") -> tuple[TaskVAE, dict[str, float]]:
    """A VAE trained on ``space``'s random tasks (on ``device``), in eval mode, and its
    :func:`vae_metrics`. ``log(step, metrics)`` (if given) gets the batch's losses every
    ``cfg.log_interval`` steps. On the CPU, the same ``seed`` gives the same weights."""
    vae = TaskVAE(space.length, space.vocab, cfg, seed=seed).to(device)
    data_seed, noise_seed = torch.randint(
        2**62, (2,), generator=torch.Generator().manual_seed(seed)).tolist()
    data = torch.Generator().manual_seed(data_seed)  # the tasks
    noise = torch.Generator(device=device).manual_seed(noise_seed)  # ε and word dropout
    optimiser = torch.optim.Adam(vae.parameters(), lr=cfg.lr)
    vae.train()
    for step in range(1, cfg.steps + 1):
        beta = cfg.kl_weight_max * min(1.0, step / max(cfg.kl_anneal_steps, 1))
        tokens = training_batch(space, cfg, data).to(device)
        reconstruction, kl = vae.loss(tokens, noise)
        objective = space.length * reconstruction + beta * kl
        optimiser.zero_grad()
        objective.backward()
        optimiser.step()
        if log is not None and step % cfg.log_interval == 0:
            log(step, {"reconstruction": reconstruction.item(), "kl": kl.item(),
                       "kl_weight": beta, "objective": objective.item()})
    vae.eval()
    return vae, vae_metrics(vae, space)


@torch.no_grad()
def vae_metrics(vae: TaskVAE, space: TaskSpace, n: int = 1000,
                seed: int = 1_000_003) -> dict[str, float]:
    """How well ``vae`` covers ``space``, from ``n`` fresh random tasks and ``n`` random latents.

    - ``token_accuracy`` / ``task_accuracy``: tokens / whole tasks that ``decode(encode_mean(t))``
      gives back, for random tasks ``t`` written as the VAE trained on them (shuffled under
      ``sorted=False``);
    - ``layout_accuracy``: tasks whose decoded layout (canonical form) is the task's;
    - ``legal_share``: latents drawn uniformly from the box whose decoded tokens are already
      canonical (the task space has nothing to repair);
    - ``distinct_share``: distinct layouts (canonical forms) among those ``n`` decodes, over ``n``.
    """
    g, device = torch.Generator().manual_seed(seed), vae.head.weight.device
    tasks = training_batch(space, dataclasses.replace(vae.cfg, batch_size=n), g)
    back = vae.decode(vae.encode_mean(tasks.to(device))).cpu()
    same = back == tasks
    layouts = space.canonical(back) == space.canonical(tasks)
    z = vae.from_unit(torch.rand(n, vae.cfg.latent_dim, generator=g))
    free = vae.decode(z.to(device)).cpu()
    fixed = space.canonical(free)
    return {
        "token_accuracy": same.float().mean().item(),
        "task_accuracy": same.all(1).float().mean().item(),
        "layout_accuracy": layouts.all(1).float().mean().item(),
        "legal_share": (fixed == free).all(1).float().mean().item(),
        "distinct_share": fixed.unique(dim=0).shape[0] / n,
    }


def save_vae(path: str | Path, vae: TaskVAE, space_id: str, metrics: dict[str, float]) -> None:
    """Write ``vae`` (weights, config, its task space's ``space_id``, ``length`` and ``vocab``)
    and its ``metrics`` to one file."""
    torch.save({
        "format": FORMAT,
        "space_id": space_id,
        "length": vae.length,
        "vocab": vae.vocab,
        "config": dataclasses.asdict(vae.cfg),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "weights": {k: v.detach().cpu() for k, v in vae.state_dict().items()},
    }, path)


def load_vae(path: str | Path, space: TaskSpace, space_id: str) -> TaskVAE:
    """The VAE saved at ``path`` (eval mode, on the CPU); ``ValueError`` if the file is not a
    task VAE or was trained for another task space (``space_id``, ``length`` or ``vocab``)."""
    data: Any = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a task VAE file ({FORMAT})")
    ours = (space_id, space.length, space.vocab)
    theirs = (data["space_id"], data["length"], data["vocab"])
    if ours != theirs:
        raise ValueError(f"{path}: the VAE was trained for task space {theirs[0]!r} (length "
                         f"{theirs[1]}, vocab {theirs[2]}), not {ours[0]!r} (length {ours[1]}, "
                         f"vocab {ours[2]})")
    known = {f.name for f in dataclasses.fields(RVAEConfig)}
    unknown = sorted(set(data["config"]) - known)
    if unknown:
        raise ValueError(f"{path}: unknown VAE config keys {unknown}; known: {sorted(known)}")
    vae = TaskVAE(space.length, space.vocab, RVAEConfig(**data["config"]))
    vae.load_state_dict(data["weights"])
    return vae.eval()
