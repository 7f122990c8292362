"""Teachers and level scores: PLR's replay distribution against a loop reference, the buffer's
rules, ACCEL's mutations, exact resume, and the scores on hand-made numbers."""

from __future__ import annotations

import torch

from marl.algos.ued.scores import max_mc, paired_regret, positive_value_loss
from marl.algos.ued.teachers import (
    DomainRandomisation,
    PrioritisedReplay,
    ReplayConfig,
    replay_distribution,
)


class Digits:
    """A toy task space: 4 digits in [0, 5), canonical = sorted; any integer decodes mod 5."""

    length, vocab = 4, 5

    def sample(self, n, generator):
        return self.canonical(torch.randint(0, 5, (n, 4), generator=generator))

    def encode(self, layouts):
        return self.canonical(torch.tensor([list(x) for x in layouts]))

    def decode(self, tokens):
        return [tuple(sorted(int(t) % 5 for t in row)) for row in tokens]

    def canonical(self, tokens):
        return torch.sort(tokens.remainder(5), dim=-1).values

    def mutate(self, tokens, k, generator):
        out = tokens.clone()
        for row in out:
            for j in torch.randperm(4, generator=generator)[:k]:
                row[j] = int(torch.randint(0, 5, (1,), generator=generator))
        return self.canonical(out)


def reference_distribution(scores, last_seen, filled, clock, temperature, staleness):
    slots = [i for i in range(len(scores)) if filled[i]]
    ranked = sorted(slots, key=lambda i: (-float(scores[i]), i))
    rank = {i: r + 1 for r, i in enumerate(ranked)}
    h = {i: (1.0 / rank[i]) ** (1.0 / temperature) for i in slots}
    stale = {i: max(clock - int(last_seen[i]), 0) for i in slots}
    total_h, total_s = sum(h.values()), sum(stale.values())
    out = [0.0] * len(scores)
    for i in slots:
        p_stale = stale[i] / total_s if total_s else 1.0 / len(slots)
        out[i] = (1 - staleness) * h[i] / total_h + staleness * p_stale
    return out


def test_replay_distribution_equals_a_loop_reference():
    g = torch.Generator().manual_seed(0)
    for trial in range(50):
        size = int(torch.randint(1, 12, (1,), generator=g))
        scores = torch.randint(0, 4, (size,), generator=g).double()  # ties on purpose
        last_seen = torch.randint(0, 20, (size,), generator=g)
        filled = torch.rand(size, generator=g) < 0.7
        clock = 20 if trial % 5 else 0  # clock 0: nobody stale
        temp, rho = [0.1, 0.3, 1.0][trial % 3], [0.0, 0.3, 1.0][trial % 3]
        got = replay_distribution(scores, last_seen, filled, clock, temp, rho)
        want = reference_distribution(scores, last_seen, filled, clock, temp, rho)
        assert torch.allclose(got, torch.tensor(want, dtype=torch.float64), atol=1e-12)
        if filled.any():
            assert abs(float(got.sum()) - 1.0) < 1e-9


def test_robust_plr_scores_new_levels_then_replays_the_best():
    space = Digits()
    teacher = PrioritisedReplay(space, ReplayConfig(buffer_size=8, replay_prob=0.5,
                                                    min_fill=0.5), seed=0)
    first = teacher.propose(4)
    assert not first.learn.any()  # buffer below min_fill: new levels, only scored
    teacher.update(first.tokens, torch.tensor([0.1, 0.2, 0.3, 0.4]), torch.zeros(4))
    assert int(teacher.filled.sum()) == len({tuple(r.tolist()) for r in first.tokens})
    later = teacher.propose(400)
    assert 0.4 < later.learn.float().mean().item() < 0.6  # replay_prob 0.5
    replayed = later.tokens[later.learn]
    buffered = {tuple(r.tolist()) for r in teacher.tokens[teacher.filled]}
    assert all(tuple(r.tolist()) in buffered for r in replayed)
    # a full buffer keeps the highest scores: a better new level replaces the lowest one
    teacher = PrioritisedReplay(space, ReplayConfig(buffer_size=2, min_fill=1.0), seed=1)
    levels = space.encode([(0, 0, 0, 0), (1, 1, 1, 1), (2, 2, 2, 2), (3, 3, 3, 3)])
    teacher.update(levels[:2], torch.tensor([1.0, 2.0]), torch.zeros(2))
    teacher.update(levels[2:], torch.tensor([0.5, 3.0]), torch.zeros(2))
    kept = {tuple(r.tolist()): float(s) for r, s in zip(teacher.tokens, teacher.scores,
                                                         strict=True)}
    assert kept == {(1, 1, 1, 1): 2.0, (3, 3, 3, 3): 3.0}


def test_accel_plays_mutations_of_replayed_levels():
    space = Digits()
    cfg = ReplayConfig(buffer_size=4, replay_prob=1.0, min_fill=0.25, mutations=1)
    teacher = PrioritisedReplay(space, cfg, seed=0)
    parent = space.encode([(0, 1, 2, 3)])
    teacher.update(parent, torch.tensor([1.0]), torch.zeros(1))
    replay = teacher.propose(1)
    assert replay.learn.all() and torch.equal(replay.tokens, parent)
    # a copy that does not replay plays a child of a buffered level (the only one here)
    teacher.cfg.replay_prob = 0.5
    children = []
    for _ in range(200):
        before = teacher.mutants
        p = teacher.propose(1)
        if teacher.mutants > before:
            assert not p.learn.any()
            children.append(p.tokens[0])
    assert len(children) > 20
    for child in children:  # one token edited: at most two digit counts differ
        assert sum((sorted(child.tolist()).count(d) != sorted(parent[0].tolist()).count(d))
                   for d in range(5)) <= 2


def test_accel_shares_replays_children_and_random_levels():
    """Replays ``p``; of the rest, children ``p`` and random levels ``1 − p`` (ACCEL's ratio);
    a child never spawns children of its own, whatever it equals."""
    space = Digits()
    teacher = PrioritisedReplay(space, ReplayConfig(buffer_size=8, replay_prob=0.6,
                                                    min_fill=0.5, mutations=1), seed=4)
    g = torch.Generator().manual_seed(1)
    for _ in range(400):
        p = teacher.propose(5)
        teacher.update(p.tokens, torch.rand(5, generator=g), torch.rand(5, generator=g))
    metrics = teacher.metrics()
    assert abs(metrics["replay_rate"] - 0.6) < 0.03
    assert abs(metrics["mutation_rate"] - 0.4 * 0.6) < 0.03
    plr = PrioritisedReplay(space, ReplayConfig(buffer_size=8, replay_prob=0.6, min_fill=0.5),
                            seed=4)
    plr.propose(50)
    assert plr.metrics()["mutation_rate"] == 0.0


def test_teachers_resume_exactly():
    space = Digits()
    for make in (lambda: DomainRandomisation(space, seed=3),
                 lambda: PrioritisedReplay(space, ReplayConfig(buffer_size=6, min_fill=0.3,
                                                               mutations=2), seed=3)):
        a = make()
        g = torch.Generator().manual_seed(0)
        for _ in range(5):
            p = a.propose(3)
            a.update(p.tokens, torch.rand(3, generator=g), torch.rand(3, generator=g))
        b = make()
        b.load_state_dict(a.state_dict())
        for _ in range(5):
            pa, pb = a.propose(3), b.propose(3)
            assert torch.equal(pa.tokens, pb.tokens) and torch.equal(pa.learn, pb.learn)
            s, r = torch.rand(3, generator=g), torch.rand(3, generator=g)
            a.update(pa.tokens, s, r)
            b.update(pb.tokens, s, r)
        assert a.metrics() == b.metrics()


def test_level_scores_on_hand_made_numbers():
    adv = torch.tensor([[1.0, -2.0], [-1.0, 4.0], [3.0, 0.0]])
    mask = torch.tensor([[1, 1], [1, 1], [1, 0]])
    assert torch.allclose(positive_value_loss(adv, mask), torch.tensor([4 / 3, 2.0]))
    values = torch.tensor([[0.5, 1.0], [1.0, 2.0], [2.0, 9.0]])
    assert torch.allclose(max_mc(values, mask, torch.tensor([2.0, 3.0])),
                          torch.tensor([(1.5 + 1.0 + 0.0) / 3, (2.0 + 1.0) / 2]))
    antagonist = torch.tensor([[1.0, 3.0], [0.0, 0.5]])
    protagonist = torch.tensor([[1.0, 2.0], [1.0, 1.0]])
    assert torch.allclose(paired_regret(antagonist, protagonist), torch.tensor([1.5, 0.0]))
