"""SMACv2 tasks: the token space's rules, held-out sets, and set_tasks on the batched env."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
import torch

from marl.envs import make
from marl.envs.smac.tasks import CELLS, SMACv2Layout, SMACv2TaskSpace, heldout_tasks
from marl.envs.testing import check_vec_env
from marl.tasks import TaskSpace

pytestmark = pytest.mark.usefixtures("one_thread")
RACES = ("protoss", "terran", "zerg")


def space(name: str) -> SMACv2TaskSpace:
    return make(f"smacv2:{name}", num_envs=1, seed=0).task_space


def is_legal(sp: SMACv2TaskSpace, layout: SMACv2Layout) -> bool:
    try:
        sp.check_layout(layout, "layout")
    except ValueError:
        return False
    return True


def changed_units(sp: SMACv2TaskSpace, before: torch.Tensor, after: torch.Tensor) -> list[int]:
    """Per task: the units of each team of ``before`` missing from that team of ``after``
    (multisets of tokens), summed over the two teams."""
    n = sp.n_agents
    out = []
    for b, a in zip(before.tolist(), after.tolist(), strict=True):
        out.append(sum((Counter(b[part]) - Counter(a[part])).total()
                       for part in (slice(0, n), slice(n, None))))
    return out


@pytest.mark.parametrize("name", [f"{r}_5_vs_5" for r in RACES] + ["terran_3_vs_4"])
def test_sampled_and_heldout_layouts_round_trip(name):
    sp = space(name)
    assert isinstance(sp, TaskSpace) and (sp.length, sp.vocab) == (sp.n_agents + sp.n_enemies,
                                                                    3 * 64)
    tokens = sp.sample(64, torch.Generator().manual_seed(0))
    layouts = sp.decode(tokens)
    assert torch.equal(sp.encode(layouts), tokens)
    assert sp.decode(sp.encode(layouts)) == layouts
    assert torch.equal(sp.canonical(tokens), tokens)
    if name.endswith("5_vs_5"):
        held = list(heldout_tasks(f"smacv2:{name}").values())
        assert sp.decode(sp.encode(held)) == held


def test_sample_draws_smacv2s_teams_and_starts_snapped_to_cells():
    sp = space("protoss_5_vs_5")
    tokens = sp.sample(2000, torch.Generator().manual_seed(0))
    kind = tokens // CELLS
    assert torch.equal(kind[:, :5], kind[:, 5:])  # the enemies mirror the allies' types
    share = torch.bincount(kind[:, :5].flatten(), minlength=3).double() / kind[:, :5].numel()
    assert share.tolist() == pytest.approx([0.45, 0.45, 0.1], abs=0.02)
    col = tokens % CELLS % 8
    # reflected battles: allies in the west half, enemies in the east half; surrounded ones:
    # allies in the four middle cells
    west = (col[:, :5] <= 3).all(-1) & (col[:, 5:] >= 4).all(-1)
    centre = ((tokens[:, :5] % CELLS).unsqueeze(-1) == torch.tensor([27, 28, 35, 36])).any(-1)
    assert (west | centre.all(-1)).all()


def test_sampled_layouts_reproduce_under_a_seed():
    sp = space("zerg_5_vs_5")
    draw = [sp.sample(8, torch.Generator().manual_seed(3)) for _ in range(2)]
    assert torch.equal(*draw)


@pytest.mark.parametrize("name", ["protoss_5_vs_5", "terran_5_vs_5", "zerg_5_vs_5",
                                  "terran_1_vs_2"])
def test_any_integers_decode_to_legal_canonical_layouts(name):
    sp = space(name)
    tokens = torch.randint(-100, sp.vocab + 100, (256, sp.length),
                           generator=torch.Generator().manual_seed(1))
    layouts = sp.decode(tokens)
    assert all(is_legal(sp, x) for x in layouts)
    canon = sp.canonical(tokens)
    assert torch.equal(canon, sp.encode(layouts))
    assert torch.equal(sp.canonical(canon), canon)
    assert canon.min() >= 0 and canon.max() < sp.vocab


def test_the_decoding_rules_wrap_tokens_and_repair_a_team_of_exception_types():
    sp = space("terran_2_vs_3")
    medivac = 2 * CELLS
    tokens = torch.tensor([[medivac + 9, medivac + 5 - sp.vocab, 7, 3 + sp.vocab, -1]])
    # allies: two Medivacs; the lower (cell 5) becomes a Marine; enemies: 7, 3 and the
    # last token (a Medivac in cell 63)
    assert sp.canonical(tokens).tolist() == [[5, medivac + 9, 3, 7, medivac + 63]]
    (layout,) = sp.decode(tokens)
    assert layout == SMACv2Layout(allies=((2, 9), (0, 5)), enemies=((2, 63), (0, 3), (0, 7)))
    assert layout.types == (0, 2, 0, 0, 2) and layout.cells == (5, 9, 3, 7, 63)
    zerg = space("zerg_1_vs_1")  # a lone Baneling becomes a Zergling in its cell
    assert zerg.canonical(torch.tensor([[CELLS + 40, CELLS + 41]])).tolist() == [[40, 41]]
    # Protoss has no exception types: nothing to repair
    assert space("protoss_1_vs_1").canonical(torch.tensor([[130, 131]])).tolist() == [[130, 131]]


def test_bad_layouts_and_token_tensors_name_the_problem():
    sp = space("terran_2_vs_2")
    with pytest.raises(ValueError, match="only medivacs"):
        sp.encode([SMACv2Layout(((2, 0), (2, 1)), ((0, 0), (0, 1)))])
    with pytest.raises(ValueError, match="has 2 enemies, the layout 1"):
        sp.encode([SMACv2Layout(((0, 0), (0, 1)), ((0, 0),))])
    with pytest.raises(ValueError, match="out of range"):
        sp.encode([SMACv2Layout(((0, 64), (0, 1)), ((0, 0), (0, 1)))])
    with pytest.raises(ValueError, match=r"shape \[n, length=4\]"):
        sp.decode(torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        sp.canonical(torch.zeros(2, 4))
    assert sp.encode([]).shape == (0, 4)


@pytest.mark.parametrize("name", ["protoss_5_vs_5", "terran_3_vs_4", "zerg_2_vs_2"])
@pytest.mark.parametrize("k", [0, 1, 2, 5])
def test_mutate_edits_at_most_k_units_and_stays_legal_and_canonical(name, k):
    sp = space(name)
    g = torch.Generator().manual_seed(k)
    tokens = sp.sample(300, g)
    mutated = sp.mutate(tokens, k, g)
    assert torch.equal(sp.canonical(mutated), mutated)
    assert all(is_legal(sp, x) for x in sp.decode(mutated))
    changed = changed_units(sp, tokens, mutated)
    assert max(changed) <= k
    if k:
        assert sum(c > 0 for c in changed) >= 0.9 * len(changed)  # edits rarely undone
    # exception-heavy teams: a retype that would leave only Medivacs is undone
    if name.startswith("terran"):
        medivacs = torch.full((300, sp.length), 2 * CELLS + 10)
        medivacs[:, 0] = medivacs[:, sp.n_agents] = 10
        mutated = sp.mutate(medivacs, k, g)
        assert all(is_legal(sp, x) for x in sp.decode(mutated))
        assert max(changed_units(sp, sp.canonical(medivacs), mutated)) <= k


def test_mutate_counts_from_the_canonical_form_of_any_tokens():
    sp = space("zerg_5_vs_5")
    g = torch.Generator().manual_seed(4)
    raw = torch.randint(-500, 500, (200, sp.length), generator=g)
    mutated = sp.mutate(raw, 1, g)
    assert max(changed_units(sp, sp.canonical(raw), mutated)) <= 1
    with pytest.raises(ValueError, match="k must be"):
        sp.mutate(raw, -1, g)


@pytest.mark.parametrize("name", ["protoss_5_vs_5", "terran_3_vs_4"])
def test_shuffle_reorders_each_team_but_keeps_the_layouts(name):
    sp = space(name)
    g = torch.Generator().manual_seed(6)
    tokens = sp.sample(300, g)
    raw = torch.randint(-500, 500, (200, sp.length), generator=g)
    for t in (tokens, raw):
        shuffled = sp.shuffle(t, g)
        assert shuffled.shape == t.shape and torch.equal(sp.canonical(shuffled), sp.canonical(t))
    shuffled = sp.shuffle(tokens, g)
    n = sp.n_agents
    for team in (slice(0, n), slice(n, None)):  # each team: same units, new order
        assert torch.equal(shuffled[:, team].sort(1).values, tokens[:, team])
        assert (shuffled[:, team] != tokens[:, team]).any(1).float().mean() > 0.5


@pytest.mark.parametrize("race", RACES)
def test_heldout_sets_are_legal_named_and_distinct(race):
    tasks = heldout_tasks(f"smacv2:{race}_5_vs_5")
    sp = space(f"{race}_5_vs_5")
    assert 5 <= len(tasks) <= 8
    assert {"surrounded", "split_allies", "adjacent", "long_approach"} <= set(tasks)
    assert all(is_legal(sp, x) for x in tasks.values())
    assert len(set(tasks.values())) == len(tasks)
    # surrounded: an enemy west, east, south and north of the allies' cells
    s = tasks["surrounded"]
    cols = [c % 8 for _, c in s.allies]
    rows = [c // 8 for _, c in s.allies]
    sides = {("w" if c % 8 < min(cols) else "e" if c % 8 > max(cols) else "")
             + ("s" if c // 8 < min(rows) else "n" if c // 8 > max(rows) else "")
             for _, c in s.enemies}
    assert {"w", "e", "s", "n"} <= sides


def test_heldout_of_an_unknown_scenario_lists_the_sets():
    with pytest.raises(ValueError, match="smacv2:protoss_5_vs_5"):
        heldout_tasks("smacv2:protoss_10_vs_10")


# --- set_tasks on the batched environment -----------------------------------------------------

def kill_enemies(env, copies: list[int]) -> None:
    """Every enemy of ``copies`` dead: the next step ends those battles (won)."""
    s = env.state
    dead = torch.zeros_like(s.health, dtype=torch.bool)
    dead[copies, env.n_agents:] = True
    env.set_state(dataclasses.replace(s, health=s.health.masked_fill(dead, 0.0),
                                      shield=s.shield.masked_fill(dead, 0.0)))


def stop_all(env) -> torch.Tensor:
    """Every agent stops (alive agents may always stop; dead ones only no-op)."""
    alive = env.state.health[:, : env.n_agents] > 0
    return alive.long()


def assert_plays(env, copies: torch.Tensor, tokens: torch.Tensor) -> None:
    """Copies ``copies`` hold a fresh battle of ``tokens`` (canonical, one row per copy)."""
    s = env.state
    kind, centre = env.task_space.placement(tokens)
    assert torch.equal(s.kind[copies], kind)
    off = s.pos[copies] - centre
    assert off.abs().max() <= 0.5 + 1e-5 and off.abs().max() > 0.1  # jittered, in the cell
    assert (s.t[copies] == 0).all()
    k = env.table.take(kind)
    assert torch.equal(s.health[copies], k.max_health)


def test_each_copy_plays_its_task_at_reset_and_after_every_autoreset():
    env = make("smacv2:terran_5_vs_5", num_envs=5, seed=0, validate=False)
    sp = env.task_space
    g = torch.Generator().manual_seed(5)
    env.reset(seed=0)
    pos = env.state.pos
    tokens = sp.sample(5, g)
    tokens[:3] = sp.encode(list(heldout_tasks("smacv2:terran_5_vs_5").values())[:3])
    tokens[4] = tokens[3]
    env.set_tasks(tokens)
    assert env.state.pos is pos  # battles under way go on
    env.reset(seed=1)
    assert_plays(env, torch.arange(5), tokens)
    assert not torch.equal(env.state.pos[3], env.state.pos[4])  # one task, two jitters
    # as a curriculum: the copies that finish get new tasks; copy 2's changes while a battle
    # of its old task is ready for it, copy 4's never; some copies finish again and again
    for finishing, retask in (([1, 3], [1, 3, 2]), ([2], [2]), ([0, 4], []), ([0, 1], [0])):
        kind, t = env.state.kind.clone(), env.state.t.clone()
        kill_enemies(env, finishing)
        step = env.step(stop_all(env))
        assert step.terminated[finishing].all() and step.done.sum() == len(finishing)
        ids = torch.tensor(finishing)
        assert_plays(env, ids, tokens[ids])
        rest = torch.ones(5, dtype=torch.bool)
        rest[ids] = False
        assert torch.equal(env.state.kind[rest], kind[rest])  # the others play on
        assert (env.state.t[rest] == t[rest] + 1).all()
        tokens = tokens.clone()
        tokens[retask] = sp.sample(len(retask), g)
        env.set_tasks(tokens)


def test_set_tasks_none_brings_back_smacv2s_random_draws():
    tasked = make("smacv2:protoss_5_vs_5", num_envs=3, seed=0, validate=False)
    tokens = tasked.task_space.encode([heldout_tasks("smacv2:protoss_5_vs_5")["adjacent"]] * 3)
    tasked.set_tasks(tokens)
    tasked.reset(seed=2)
    kill_enemies(tasked, [0])
    tasked.step(stop_all(tasked))  # the pool now holds battles of the tasks
    tasked.set_tasks(None)
    kill_enemies(tasked, [0])
    tasked.step(stop_all(tasked))
    _, centre = tasked.task_space.placement(tokens[:1])
    assert (tasked.state.pos[0] - centre[0]).abs().max() > 0.5  # a random battle again
    plain = make("smacv2:protoss_5_vs_5", num_envs=3, seed=0, validate=False)
    for env in (tasked, plain):
        env.reset(seed=7)
    assert torch.equal(tasked.state.pos, plain.state.pos)
    assert torch.equal(tasked.state.kind, plain.state.kind)


def test_set_tasks_takes_any_integers_and_rejects_bad_shapes_and_fixed_maps():
    env = make("smacv2:zerg_5_vs_5", num_envs=2, seed=0)
    raw = torch.randint(-300, 300, (2, 10), generator=torch.Generator().manual_seed(0))
    env.set_tasks(raw)
    env.reset(seed=0)
    assert_plays(env, torch.arange(2), env.task_space.canonical(raw))
    with pytest.raises(ValueError, match=r"num_envs=2, length=10"):
        env.set_tasks(torch.zeros(3, 10, dtype=torch.long))
    with pytest.raises(ValueError, match=r"shape \[n, length=10\]"):
        env.set_tasks(torch.zeros(2, 9, dtype=torch.long))
    fixed = make("smac:3m", num_envs=2, seed=0)
    with pytest.raises(ValueError, match="fixed map"):
        fixed.set_tasks(torch.zeros(2, 6, dtype=torch.long))
    assert not hasattr(fixed, "task_space")


def test_protocol_with_tasks_set():
    env = make("smacv2:protoss_5_vs_5", num_envs=6, seed=0)
    held = list(heldout_tasks("smacv2:protoss_5_vs_5").values())[:6]
    env.set_tasks(env.task_space.encode(held))
    check_vec_env(env)


def test_state_dict_resumes_a_run_with_tasks():
    env = make("smacv2:terran_5_vs_5", num_envs=3, seed=0, validate=False)
    env.set_tasks(env.task_space.sample(3, torch.Generator().manual_seed(1)))
    env.reset(seed=0)

    def run(steps: int) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(9)
        out = []
        for t in range(steps):
            if t % 4 == 0:
                kill_enemies(env, [t % 3])
            avail = env.last_obs.avail
            actions = torch.rand(avail.shape, generator=g).masked_fill(~avail, -1).argmax(-1)
            out.append(env.step(actions).obs.obs)
        return out

    run(6)
    saved = env.state_dict()
    first = run(12)
    env.set_tasks(None)
    env.load_state_dict(saved)
    again = run(12)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
