"""SMACv2-style generated scenarios: random unit types and random starts, every episode.

SMACv2 (``10gen_protoss``/``10gen_terran``/``10gen_zerg`` with its published configs) draws each
episode's teams and starting positions:

- **Teams** (``weighted_teams``): every ally's type is drawn independently with the race's
  weights (Protoss stalker/zealot/colossus 0.45/0.45/0.1, Terran marine/marauder/medivac
  0.45/0.45/0.1, Zerg zergling/baneling/hydralisk 0.45/0.1/0.45), again if the whole team came
  out of "exception" types (Terran: all Medivacs; Zerg: all Banelings). The enemies mirror the
  allies' types one for one; extra enemies (``10_vs_11``, ``20_vs_23``) are drawn the same way.
- **Starts** (``surrounded_and_reflect``, p = 0.5 each):
  *reflect*: allies uniform in ``[0, 15] × [0, 32]``, the matching enemies at the mirror image
  ``x → 32 − x``, extra enemies uniform in ``[16, 32] × [0, 32]``;
  *surrounded*: allies at the centre, enemies in 1–4 groups (equally likely), each group on its
  own diagonal at a uniform point between the corner and 2 units off the centre, each enemy in
  a group chosen uniformly (SMACv2 draws the group sizes multinomially: the same law).
  Every unit is then jittered by ±0.5 so that units spawned on one point can be pushed apart
  (the game spreads them itself).

The interface is SMACv2's configured one: the agents' own position is in their features
(``obs_own_pos``), each agent sees its type's sight range and may attack within its weapon
range, at least 2 (``use_unit_ranges``, ``min_attack_range``); the type one-hot has the race's
three types; episode limit 200. Shields in the features only for Protoss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from marl.envs.smac.maps import ScenarioLayout
from marl.envs.smac.units import UNITS, UnitType

MAP_SIZE = 32.0
LIMIT = 200
CENTRE_OFFSET = 2.0  # surrounded starts: groups stop this far (per axis) off the centre
MIN_SHOOT = 2.0  # SMACv2's min_attack_range

# race: (unit types in one-hot order, weights, types that may not make up a whole team)
RACES: dict[str, tuple[tuple[str, ...], tuple[float, ...], tuple[str, ...]]] = {
    "protoss": (("stalker", "zealot", "colossus"), (0.45, 0.45, 0.1), ()),
    "terran": (("marine", "marauder", "medivac"), (0.45, 0.45, 0.1), ("medivac",)),
    "zerg": (("zergling", "baneling", "hydralisk"), (0.45, 0.1, 0.45), ("baneling",)),
}
SIZES = ((5, 5), (10, 10), (20, 20), (10, 11), (20, 23))  # SMACv2's published scenarios


def jittered(pos: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Starting positions ``pos [b, U, 2]`` each moved by up to ±0.5 per axis and kept on the
    map, so that units spawned on one point can be pushed apart."""
    jitter = torch.rand(pos.shape, generator=generator, device=pos.device) - 0.5
    return (pos + jitter).clamp(0.0, MAP_SIZE)


@dataclass(frozen=True)
class GeneratedScenario(ScenarioLayout):
    """``<race>_<n_agents>_vs_<n_enemies>`` with teams and starts drawn per episode."""

    race: str
    n_agents: int
    n_enemies: int
    limit: int = LIMIT
    p_reflect: float = 0.5
    walls = ()
    own_pos = True
    fixed = False

    def __post_init__(self) -> None:
        if self.race not in RACES:
            raise ValueError(f"unknown race {self.race!r}; one of {sorted(RACES)}")
        if not 1 <= self.n_agents <= self.n_enemies:
            raise ValueError(f"need 1 <= n_agents <= n_enemies, got {self.n_agents} and "
                             f"{self.n_enemies}")

    @property
    def name(self) -> str:
        return f"{self.race}_{self.n_agents}_vs_{self.n_enemies}"

    @property
    def types(self) -> tuple[str, ...]:  # type: ignore[override]
        return RACES[self.race][0]

    @property
    def kinds(self) -> tuple[UnitType, ...]:
        return tuple(UNITS[t] for t in self.types)

    @property
    def agent_names(self) -> tuple[str, ...]:
        return tuple(f"{self.race}_{i}" for i in range(self.n_agents))

    @property
    def ally_shield(self) -> int:  # type: ignore[override]
        return int(self.race == "protoss")

    @property
    def enemy_shield(self) -> int:  # type: ignore[override]
        return self.ally_shield

    def ranges(self, unit: UnitType) -> tuple[float, float]:
        """SMACv2's ``use_unit_ranges``: the type's sight, its weapon range (at least 2)."""
        return unit.sight, max(unit.range, MIN_SHOOT)

    def draw(self, b: int, generator: torch.Generator,
             device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit types ``[b, U]`` (indices into :attr:`kinds`) and starting positions
        ``[b, U, 2]`` of ``b`` new battles."""
        n, e = self.n_agents, self.n_enemies
        allies = self._team(b, n, generator, device)
        kind = torch.cat([allies, allies, self._team(b, e - n, generator, device)], dim=1)
        reflect = torch.rand(b, generator=generator, device=device) < self.p_reflect
        pos = torch.where(reflect[:, None, None], self._reflected(b, generator, device),
                          self._surrounded(b, generator, device))
        return kind, jittered(pos, generator)

    def _team(self, b: int, k: int, generator: torch.Generator,
              device: torch.device) -> torch.Tensor:
        """``[b, k]`` type indices drawn with the race's weights, each team redrawn while it
        is made only of exception types."""
        _, weights, exceptions = RACES[self.race]
        w = torch.tensor(weights, device=device).expand(b, -1)
        if k == 0:
            return torch.zeros(b, 0, dtype=torch.long, device=device)
        team = torch.multinomial(w, k, replacement=True, generator=generator)
        banned = torch.tensor([t in exceptions for t in self.types], device=device)
        bad = banned[team].all(-1)
        while bool(bad.any()):
            redo = torch.multinomial(w, k, replacement=True, generator=generator)
            team = torch.where(bad[:, None], redo, team)
            bad = banned[team].all(-1)
        return team

    def _reflected(self, b: int, generator: torch.Generator,
                   device: torch.device) -> torch.Tensor:
        n, e = self.n_agents, self.n_enemies
        half = MAP_SIZE / 2
        u = torch.rand(b, e + n, 2, generator=generator, device=device)
        allies = u[:, :n] * torch.tensor([half - 1, MAP_SIZE], device=device)
        mirrored = torch.stack([MAP_SIZE - allies[..., 0], allies[..., 1]], dim=-1)
        extra = u[:, n + n:] * torch.tensor([half, MAP_SIZE], device=device)
        extra = extra + torch.tensor([half, 0.0], device=device)
        return torch.cat([allies, mirrored, extra], dim=1)

    def _surrounded(self, b: int, generator: torch.Generator,
                    device: torch.device) -> torch.Tensor:
        n, e = self.n_agents, self.n_enemies
        c, o = MAP_SIZE / 2, CENTRE_OFFSET
        # the four diagonals: their corner and their point next to the centre
        corner = torch.tensor([[0.0, 0.0], [0.0, MAP_SIZE], [MAP_SIZE, MAP_SIZE],
                               [MAP_SIZE, 0.0]], device=device)
        inner = torch.tensor([[c - o, c - o], [c - o, c + o], [c + o, c + o], [c + o, c - o]],
                             device=device)
        groups = torch.randint(1, 5, (b, 1), generator=generator, device=device)
        diagonal = torch.rand(b, 4, generator=generator, device=device).argsort(-1)
        t = torch.rand(b, 4, 1, generator=generator, device=device)
        where = t * inner[diagonal] + (1 - t) * corner[diagonal]  # [b, group, 2]
        member = (torch.rand(b, e, generator=generator, device=device) * groups).long()
        enemies = where.gather(1, member.unsqueeze(-1).expand(-1, -1, 2))
        allies = torch.full((b, n, 2), c, device=device)
        return torch.cat([allies, enemies], dim=1)
