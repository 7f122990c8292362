"""EpisodeReplay integrity: ring writes, gather/sample contents, padding, errors, state dicts."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import chisquare

from marl.replay import EpisodeBatch, EpisodeReplay, Field

N, D, A, S, T = 3, 4, 5, 6, 7  # agents, obs width, actions, state width, episode limit
ID = (0, 0, 0)  # obs[step 0, agent 0, feature 0] holds the episode's unique id (1, 2, ...)


def make_fields() -> dict[str, Field]:
    return {
        "obs": Field((N, D), torch.float32, per_state=True),
        "state": Field((S,), torch.float32, per_state=True),
        "avail": Field((N, A), torch.bool, per_state=True),
        "actions": Field((N,), torch.long),
        "reward": Field((N,), torch.float32),
        "terminated": Field((), torch.bool),
    }


def make_episodes(k: int, first_id: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """``k`` random episodes of lengths 1..T, zero at every step at or past their length.

    Per-state fields keep index ``length`` (the observation the episode ended on).
    """
    length = torch.randint(1, T + 1, (k,), generator=gen)
    eps = {
        "obs": torch.randn(k, T + 1, N, D, generator=gen),
        "state": torch.randn(k, T + 1, S, generator=gen),
        "avail": torch.rand(k, T + 1, N, A, generator=gen) < 0.7,
        "actions": torch.randint(0, A, (k, T, N), generator=gen),
        "reward": torch.randn(k, T, N, generator=gen),
        "terminated": torch.zeros(k, T, dtype=torch.bool),
        "length": length,
    }
    last = torch.rand(k, generator=gen) < 0.5
    eps["terminated"][torch.arange(k), length - 1] = last
    eps["obs"][:, 0, 0, 0] = torch.arange(first_id, first_id + k, dtype=torch.float32)
    state_steps = torch.arange(T + 1)[None, :] <= length[:, None]  # [k, T + 1]
    step_steps = torch.arange(T)[None, :] < length[:, None]  # [k, T]
    for name, f in make_fields().items():
        keep = state_steps if f.per_state else step_steps
        keep = keep.reshape(*keep.shape, *([1] * len(f.shape)))
        eps[name] = eps[name] * keep if f.dtype != torch.bool else eps[name] & keep
    return eps


def episode_at(eps: dict[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
    return {name: value[i] for name, value in eps.items()}


def fill(capacity: int, sizes: list[int], seed: int = 0):
    """A replay filled by ``insert`` calls of the given sizes; also every episode, in order."""
    gen = torch.Generator().manual_seed(seed)
    replay = EpisodeReplay(make_fields(), capacity, T)
    written: list[dict[str, torch.Tensor]] = []
    for k in sizes:
        eps = make_episodes(k, len(written) + 1, gen)
        slots = replay.insert(eps)
        expected = (torch.arange(len(written), len(written) + k)) % capacity
        assert torch.equal(slots, expected)
        written += [episode_at(eps, i) for i in range(k)]
    return replay, written


def assert_episode_equal(row: dict[str, torch.Tensor], ep: dict[str, torch.Tensor]) -> None:
    """``row`` (possibly cut to some length >= the episode's) holds episode ``ep`` then zeros."""
    length = int(ep["length"])
    assert int(row["length"]) == length
    for name, f in make_fields().items():
        got, want = row[name], ep[name]
        assert got.dtype == f.dtype
        n = got.shape[0]
        real = length + 1 if f.per_state else length
        assert n >= real
        assert torch.equal(got, want[:n]), name
        assert not got[real:].any(), f"{name}: nonzero padding"


SIZES = [1, 3, 4, 2, 7, 5, 1, 6, 3, 4, 2, 7]  # 45 episodes into a ring of 10


def test_ring_holds_last_written_episode_per_slot() -> None:
    capacity = 10
    replay, written = fill(capacity, SIZES)
    total = sum(SIZES)
    assert total > 2 * capacity  # wraps around more than once
    assert len(replay) == min(total, capacity) == replay.size
    assert replay.episodes_written == total
    assert replay.pos == total % capacity
    for slot in range(capacity):
        last = max(g for g in range(total) if g % capacity == slot)
        ep = written[last]
        row = {name: replay.data[name][slot] for name in [*make_fields(), "length"]}
        assert_episode_equal(row, ep)
        one = replay.gather(torch.tensor([slot]))
        assert one.max_len == int(ep["length"])  # cut to this episode
        assert_episode_equal({k: v[0] for k, v in one.items()}, ep)
    steps = torch.arange(T)
    assert torch.equal(replay.data["filled"], steps[None, :] < replay.data["length"][:, None])


def test_partial_fill_size_and_filled() -> None:
    replay, written = fill(10, [2, 1, 3])
    assert len(replay) == 6 and replay.pos == 6 and replay.episodes_written == 6
    for slot, ep in enumerate(written):
        assert int(replay.data["length"][slot]) == int(ep["length"])
    assert not replay.data["filled"][6:].any()
    assert not replay.data["length"][6:].any()


def test_gather_cuts_to_longest_and_pads_with_zeros() -> None:
    capacity = 10
    replay, written = fill(capacity, SIZES, seed=1)
    by_id = {int(ep["obs"][ID]): ep for ep in written}
    gen = torch.Generator().manual_seed(2)
    for _ in range(20):
        k = int(torch.randint(1, capacity + 1, (1,), generator=gen))
        slots = torch.randperm(capacity, generator=gen)[:k]
        batch = replay.gather(slots)
        assert isinstance(batch, EpisodeBatch)
        lengths = replay.data["length"][slots]
        cut = int(lengths.max())
        assert batch.size == k and batch.max_len == cut
        assert torch.equal(batch["length"], lengths)
        for name, f in make_fields().items():
            assert batch[name].shape == (k, cut + 1 if f.per_state else cut, *f.shape)
        assert torch.equal(batch["filled"], torch.arange(cut)[None, :] < lengths[:, None])
        for i in range(k):
            row = {name: value[i] for name, value in batch.items()}
            assert_episode_equal(row, by_id[int(row["obs"][ID])])


def test_sample_distinct_stored_and_uniform() -> None:
    capacity = 10
    replay, written = fill(capacity, SIZES, seed=3)
    total = sum(SIZES)
    stored = {int(replay.data["obs"][(slot, *ID)]): slot for slot in range(capacity)}
    assert set(stored) == set(range(total - capacity + 1, total + 1))  # the newest episodes
    by_id = {int(ep["obs"][ID]): ep for ep in written}
    gen = torch.Generator().manual_seed(4)
    counts = torch.zeros(capacity, dtype=torch.long)
    draws, batch_size = 1500, 4
    for _ in range(draws):
        batch = replay.sample(batch_size, gen)
        ids = [int(x) for x in batch["obs"][:, 0, 0, 0]]
        assert len(set(ids)) == batch_size  # without replacement within a batch
        for i, ep_id in enumerate(ids):
            assert ep_id in stored
            assert_episode_equal({k: v[i] for k, v in batch.items()}, by_id[ep_id])
            counts[stored[ep_id]] += 1
    assert (counts > 0).all()
    assert chisquare(counts.numpy()).pvalue > 1e-4


def test_sample_from_partial_replay_only_sees_stored() -> None:
    replay, _ = fill(10, [2, 1])
    gen = torch.Generator().manual_seed(5)
    for _ in range(50):
        batch = replay.sample(3, gen, device="cpu")
        assert {int(x) for x in batch["obs"][:, 0, 0, 0]} == {1, 2, 3}
    with pytest.raises(ValueError, match="cannot sample 4"):
        replay.sample(4, gen)


def test_sample_same_generator_seed_is_reproducible() -> None:
    replay, _ = fill(10, SIZES, seed=6)
    a = replay.sample(5, torch.Generator().manual_seed(7))
    b = replay.sample(5, torch.Generator().manual_seed(7))
    for key in a:
        assert torch.equal(a[key], b[key])


def test_insert_errors() -> None:
    gen = torch.Generator().manual_seed(8)
    replay = EpisodeReplay(make_fields(), 4, T)
    eps = make_episodes(2, 1, gen)
    for missing in ("reward", "length"):
        bad = {k: v for k, v in eps.items() if k != missing}
        with pytest.raises(ValueError, match=missing):
            replay.insert(bad)
    assert len(replay) == 0 and replay.episodes_written == 0
    with pytest.raises(ValueError, match="exceed capacity"):
        replay.insert(make_episodes(5, 1, gen))
    with pytest.raises(ValueError):
        replay.sample(1, gen)


def test_constructor_errors() -> None:
    with pytest.raises(ValueError):
        EpisodeReplay(make_fields(), 0, T)
    with pytest.raises(ValueError):
        EpisodeReplay(make_fields(), 4, 0)
    with pytest.raises(ValueError, match="reserved"):
        EpisodeReplay({**make_fields(), "filled": Field((), torch.bool)}, 4, T)


@pytest.mark.parametrize("sizes", [SIZES, [2, 3]], ids=["wrapped", "partial"])
def test_state_dict_round_trip(sizes: list[int]) -> None:
    capacity = 10
    replay, _ = fill(capacity, sizes, seed=9)
    state = replay.state_dict()
    fresh = EpisodeReplay(make_fields(), capacity, T)
    fresh.load_state_dict(state)
    assert (fresh.pos, fresh.size, fresh.episodes_written) == (
        replay.pos, replay.size, replay.episodes_written)
    slots = torch.arange(len(replay))
    a, b = replay.gather(slots), fresh.gather(slots)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # both continue identically
    gen_a, gen_b = torch.Generator().manual_seed(10), torch.Generator().manual_seed(10)
    more = make_episodes(3, 1000, torch.Generator().manual_seed(11))
    assert torch.equal(replay.insert(more), fresh.insert(more))
    x, y = replay.sample(len(replay), gen_a), fresh.sample(len(fresh), gen_b)
    for key in x:
        assert torch.equal(x[key], y[key]), key


def test_load_state_dict_rejects_mismatch() -> None:
    replay, _ = fill(10, SIZES)
    small = EpisodeReplay(make_fields(), 5, T)
    with pytest.raises(ValueError):
        small.load_state_dict(replay.state_dict())
    other = EpisodeReplay(make_fields(), 10, T + 1)
    with pytest.raises(ValueError, match="does not match"):
        other.load_state_dict(replay.state_dict())


def test_a_replay_the_device_cannot_hold_is_refused_before_anything_runs(monkeypatch,
                                                                          tmp_path) -> None:
    import marl.replay
    from marl.cli import main
    from marl.replay import ReplayTooLarge, episode_bytes

    fields = {"obs": Field((3, 4), torch.float32, per_state=True),
              "actions": Field((3,), torch.long)}
    per = episode_bytes(fields, 10)
    assert per == 11 * 12 * 4 + 10 * 3 * 8 + 10 + 8  # obs, actions, filled, length
    monkeypatch.setattr(marl.replay, "free_memory", lambda device: 100 * per)
    EpisodeReplay(fields, 100, 10)  # fits exactly
    with pytest.raises(ReplayTooLarge, match=r"101 episodes .*\(at most 100 episodes fit\)"):
        EpisodeReplay(fields, 101, 10)
    monkeypatch.setattr(marl.replay, "free_memory", lambda device: 10**6)
    assert main(["train", "--algo", "qmix", "--env", "lbf:5x5-2p-1f", "--steps", "100",
                 "--runs-dir", str(tmp_path / "runs")]) == 2
    assert not (tmp_path / "runs").exists()  # nothing made


def test_a_checkpoint_of_a_partly_filled_replay_holds_its_episodes_without_copying_them(
        tmp_path) -> None:
    from marl.checkpoint import load_checkpoint, save_checkpoint

    capacity = 200
    replay, _ = fill(capacity, [2, 3])
    state = replay.state_dict()
    for name, value in state["data"].items():  # the replay's own memory, cut to 5 rows
        assert value.shape[0] == 5 and value.data_ptr() == replay.data[name].data_ptr(), name
    path = save_checkpoint(tmp_path / "partial.pt", {"replay": state}, identity={})
    full = save_checkpoint(tmp_path / "all.pt", {"replay": {
        "data": {k: v[:5] for k, v in replay.data.items()}}}, identity={})
    assert path.stat().st_size * 10 < full.stat().st_size  # 5 rows written, not 200
    fresh = EpisodeReplay(make_fields(), capacity, T)
    fresh.load_state_dict(load_checkpoint(path)["replay"])
    slots = torch.arange(5)
    a, b = replay.gather(slots), fresh.gather(slots)
    for key in a:
        assert torch.equal(a[key], b[key]), key
