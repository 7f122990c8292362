"""Native spawning draws from the same distribution as ``lbforaging``'s ``reset``."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("lbforaging")
stats = pytest.importorskip("scipy.stats")

from marl.envs.lbf import LBFEnv  # noqa: E402

REF_RESETS, NATIVE_COPIES = 3000, 20000


def _same_distribution(ref: np.ndarray, native: np.ndarray, what: str) -> None:
    values = np.union1d(ref, native)
    table = np.stack([(ref[:, None] == values).sum(0), (native[:, None] == values).sum(0)])
    table = table[:, table.sum(0) > 0]
    if table.shape[1] < 2:
        assert np.array_equal(np.unique(ref), np.unique(native)), what
        return
    p = stats.chi2_contingency(table).pvalue
    assert p > 1e-3, f"{what}: chi-square p = {p:.2g}\n{table}"


@pytest.mark.parametrize(
    "size,players,food,coop",
    [pytest.param(6, 3, 3, False, marks=pytest.mark.slow), (8, 2, 3, True),
     pytest.param(10, 4, 4, False, marks=pytest.mark.slow)],
)
def test_spawn_matches_lbforaging(size, players, food, coop, foraging_env):
    ref = foraging_env(size, players, food, coop, size)
    ref.reset(seed=123)
    r_player_lvl, r_player_cell, r_count, r_food_lvl, r_food_cell = [], [], [], [], []
    for _ in range(REF_RESETS):
        ref.reset()
        r_player_lvl += [p.level for p in ref.players]
        r_player_cell += [p.position[0] * size + p.position[1] for p in ref.players]
        rows, cols = np.nonzero(ref.field)
        r_count.append(len(rows))
        r_food_lvl += ref.field[rows, cols].tolist()
        r_food_cell += (rows * size + cols).tolist()

    native = LBFEnv(
        NATIVE_COPIES,
        players=players,
        field_size=size,
        max_num_food=food,
        force_coop=coop,
        seed=321,
    )
    native.reset()
    s = native.state
    alive = s.food_level > 0
    pos = s.player_pos.numpy()
    fpos = s.food_pos[alive].numpy()

    _same_distribution(np.array(r_player_lvl), s.player_level.flatten().numpy(), "player level")
    _same_distribution(
        np.array(r_player_cell), (pos[..., 0] * size + pos[..., 1]).ravel(), "player cell"
    )
    _same_distribution(np.array(r_count), alive.sum(1).numpy(), "food count")
    _same_distribution(np.array(r_food_lvl), s.food_level[alive].numpy(), "food level")
    _same_distribution(np.array(r_food_cell), fpos[:, 0] * size + fpos[:, 1], "food cell")
    # The rules themselves, on every native copy: food off the border, off players, apart.
    assert (fpos >= 1).all() and (fpos <= size - 2).all()
    for b in range(200):
        f = s.food_pos[b][s.food_level[b] > 0]
        d = (f[:, None] - f[None]).abs()
        apart = ((d[..., 0] > 1) | (d[..., 1] > 1)) & ~(
            (d.min(-1).values == 0) & (d.max(-1).values <= 2)
        )
        off_diagonal = ~np.eye(len(f), dtype=bool)
        assert apart.numpy()[off_diagonal].all()
        assert not (f[:, None] == s.player_pos[b][None]).all(-1).any()
