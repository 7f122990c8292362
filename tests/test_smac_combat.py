"""SC2 damage rules: per-hit damage with bonuses, shields before armour, hand-counted kills."""

from __future__ import annotations

import pytest
import torch

from marl.envs.smac.combat import MIN_HIT, hit_table, land_hits, land_unshielded_hits
from marl.envs.smac.units import UNITS


def one_hit_at_a_time(health, shield, armour, size, hits):
    """SC2's rule, hit by hit."""
    for _ in range(hits):
        if shield >= size:
            shield -= size
        else:
            health -= max(size - shield - armour, MIN_HIT)
            shield = 0.0
    return health, shield


def hits_to_kill(attacker: str, target: str) -> int:
    a, t = UNITS[attacker], UNITS[target]
    size = float(hit_table([a], [t])[0, 0])
    health, shield = torch.tensor(t.health), torch.tensor(t.shield)
    n = 0
    while health > 0:
        health, shield = land_hits(health, shield, torch.tensor(t.armour), torch.tensor(size),
                                   torch.tensor(1))
        n += 1
    return n


def test_hit_table_adds_bonuses_against_attributes():
    names = ["marine", "marauder", "stalker", "zealot", "colossus", "baneling", "medivac"]
    units = [UNITS[n] for n in names]
    table = dict(zip(names, hit_table(units, units).tolist(), strict=True))
    col = {n: i for i, n in enumerate(names)}
    assert table["marauder"][col["stalker"]] == 20  # +10 vs armoured
    assert table["marauder"][col["marine"]] == 10
    assert table["stalker"][col["marauder"]] == 18  # +5 vs armoured
    assert table["colossus"][col["zealot"]] == 15 and table["colossus"][col["stalker"]] == 10
    assert table["baneling"][col["marine"]] == 35  # +19 vs light
    assert table["medivac"] == [0.0] * len(names)  # heals, never hits


@pytest.mark.parametrize(("attacker", "target", "hits"), [
    ("marine", "marine", 8),  # 45 health, 6 per hit
    ("zealot", "marine", 6),  # 8 per hit, two hits per attack: three attacks
    ("marauder", "stalker", 9),  # 4 hits take the 80 shields, 5 more at 20 - 1 armour
    ("marine", "stalker", 30),  # 13 whole hits on shields, a breaking hit, 16 at 6 - 1
    ("stalker", "zealot", 13),  # 3 whole hits on 50 shields, a breaking hit (1 spills),
    #                             then 99 health at 13 - 1 per hit: 9 more
])
def test_hand_counted_kills(attacker, target, hits):
    assert hits_to_kill(attacker, target) == hits


def test_many_equal_hits_at_once_equal_one_at_a_time():
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        health = float(torch.rand((), generator=g)) * 200 + 1
        shield = float(torch.randint(0, 3, (), generator=g) * torch.rand((), generator=g)) * 50
        armour = float(torch.randint(0, 3, (), generator=g))
        size = float(torch.rand((), generator=g)) * 30 + 0.1
        hits = int(torch.randint(0, 6, (), generator=g))
        h, s = land_hits(torch.tensor(health, dtype=torch.float64),
                         torch.tensor(shield, dtype=torch.float64),
                         torch.tensor(armour, dtype=torch.float64),
                         torch.tensor(size * hits, dtype=torch.float64), torch.tensor(hits))
        ref = one_hit_at_a_time(health, shield, armour, size, hits)
        assert (float(h), float(s)) == pytest.approx(ref), (health, shield, armour, size, hits)


def test_land_hits_is_batched():
    health = torch.tensor([[45.0, 80.0], [100.0, 45.0]])
    shield = torch.tensor([[0.0, 80.0], [50.0, 0.0]])
    armour = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    raw = torch.tensor([[12.0, 0.0], [16.0, 6.0]])
    hits = torch.tensor([[2, 0], [2, 1]])
    h, s = land_hits(health, shield, armour, raw, hits)
    assert h.tolist() == [[33.0, 80.0], [100.0, 39.0]]
    assert s.tolist() == [[0.0, 80.0], [34.0, 0.0]]


def test_unshielded_hits_land_as_land_hits_with_no_shields():
    g = torch.Generator().manual_seed(1)
    health = torch.rand(4096, generator=g) * 200 + 1
    armour = torch.randint(0, 3, (4096,), generator=g).float()
    hits = torch.randint(0, 6, (4096,), generator=g)
    raw = torch.randint(1, 80, (4096,), generator=g) * 0.5 * hits  # whole and half hit sizes
    want, shield = land_hits(health, torch.zeros(4096), armour, raw, hits)
    assert torch.equal(land_unshielded_hits(health, armour, raw, hits), want)
    assert not shield.any()
