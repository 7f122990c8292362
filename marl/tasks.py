"""Task spaces: environment layouts as fixed-length integer token sequences.

Curricula (unsupervised environment design: DR, PLR⊥, ACCEL, PAIRED, CLUTR) choose *tasks* for
the copies of a batched environment. A task is ``length`` integer tokens in ``[0, vocab)`` that
the environment decodes into a layout (walls, starts, levels, unit types). Every environment
that offers tasks has a :class:`TaskSpace` (``env.task_space``) and ``env.set_tasks(tokens)``:
copy ``i`` plays ``tokens[i]`` from its next reset on (autoresets included) until given
another.

Rules every task space keeps:

- ``decode`` accepts *any* token sequence (the teachers' networks write arbitrary tokens): out
  of range, duplicate or conflicting tokens decode to a legal layout by a documented rule, and
  never raise.
- ``encode`` writes a layout in the space's canonical order (e.g. sorted wall cells, as CLUTR
  trains its VAE on), so that one layout has one token sequence; ``decode(encode(x)) == x``.
- ``canonical(tokens) == encode(decode(tokens))``.
- ``mutate(tokens, k, generator)`` makes at most ``k`` edits to each task's layout (ACCEL's
  edits: a wall toggled, a unit or food moved or changed), then returns the canonical form;
  the canonical sort may move tokens, so the edits are counted on the layouts (walls, units
  and food compared as sets), not position by position.
- ``shuffle(tokens, generator)`` writes the same layouts with the tokens of each group of
  interchangeable tokens (walls, food; a team's units) in a random order — what CLUTR's
  unsorted-data ablation trains on; ``canonical(shuffle(t)) == canonical(t)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class TaskSpace(Protocol):
    """Tasks of one environment as ``[n, length]`` int64 token tensors."""

    length: int  # tokens per task
    vocab: int  # every token is in [0, vocab)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` random legal tasks ``[n, length]``, canonical."""
        ...

    def encode(self, layouts: Sequence[Any]) -> torch.Tensor:
        """The canonical tokens ``[n, length]`` of ``layouts``."""
        ...

    def decode(self, tokens: torch.Tensor) -> list[Any]:
        """The layout of every row of ``tokens`` (any integers; see the module rules)."""
        ...

    def mutate(self, tokens: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
        """Each task with at most ``k`` edits to its layout, canonical."""
        ...

    def canonical(self, tokens: torch.Tensor) -> torch.Tensor:
        """``encode(decode(tokens))``."""
        ...

    def shuffle(self, tokens: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The layouts of ``tokens`` with each group of interchangeable tokens in a random
        order (see the module rules)."""
        ...


def heldout_tasks(env_id: str) -> tuple[list[str], list[Any]]:
    """The names and layouts of the held-out tasks (fixed, never trained on) of ``env_id``'s
    family, for ``env_id``'s size: LBF with walls and SMACv2 scenarios have them."""
    family = env_id.partition(":")[0]
    family_tasks: Callable[[str], Mapping[str, Any]]
    if family == "lbf":
        from marl.envs.lbf.tasks import heldout_tasks as family_tasks
    elif family == "smacv2":
        from marl.envs.smac.tasks import heldout_tasks as family_tasks
    else:
        raise ValueError(f"{env_id}: no held-out tasks (lbf:<size>-<N>p-<F>f and "
                         "smacv2:<race>_<n>_vs_<m> have them)")
    tasks = family_tasks(env_id)
    return list(tasks), list(tasks.values())
