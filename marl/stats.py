"""Running statistics used to standardise rewards and returns."""

from __future__ import annotations

import torch


class RunningMeanStd:
    """Mean and variance of every value seen so far (Chan et al.'s parallel update).

    ``shape`` is the shape of one value; :meth:`update` takes a batch ``[..., *shape]``
    whose leading dims are all samples. Kept on ``device`` so updates never sync.
    """

    def __init__(self, shape: tuple[int, ...] = (), *, device: str | torch.device = "cpu",
                 epsilon: float = 1e-4) -> None:
        self.mean = torch.zeros(shape, dtype=torch.float64, device=device)
        self.var = torch.ones(shape, dtype=torch.float64, device=device)
        self.count = torch.tensor(epsilon, dtype=torch.float64, device=device)
        self.shape = tuple(shape)

    def update(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Add the samples of ``x [..., *shape]``; only those where the bool ``mask``
        (``x``'s leading dims) is set, when given. No host sync: an empty batch is a no-op
        by arithmetic, not by a branch."""
        x = x.detach().to(torch.float64).reshape(-1, *self.shape)
        w = (torch.ones(x.shape[0], dtype=torch.float64, device=x.device) if mask is None
             else mask.reshape(-1).to(torch.float64))
        w = w.reshape(-1, *([1] * len(self.shape)))
        n = w.sum(0)
        batch_mean = (x * w).sum(0) / n.clamp(min=1)
        batch_var = ((x - batch_mean).square() * w).sum(0) / n.clamp(min=1)
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean = self.mean + delta * n / total
        m2 = self.var * self.count + batch_var * n + delta.square() * self.count * n / total
        self.var = m2 / total
        self.count = total

    def standardise(self, x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
        """``(x - mean) / sqrt(var + eps)``, in ``x``'s dtype."""
        return ((x - self.mean) / torch.sqrt(self.var + eps)).to(x.dtype)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.mean = state["mean"].to(self.mean.device)
        self.var = state["var"].to(self.var.device)
        self.count = state["count"].to(self.count.device)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the entries where the bool ``mask`` (broadcast to ``x``) is set."""
    mask = mask.expand_as(x).to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp(min=1)
