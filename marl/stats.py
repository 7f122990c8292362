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

    def update(self, x: torch.Tensor) -> None:
        x = x.detach().to(torch.float64).reshape(-1, *self.shape)
        n = x.shape[0]
        if n == 0:
            return
        batch_mean = x.mean(0)
        batch_var = x.var(0, unbiased=False)
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
