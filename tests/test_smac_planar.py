"""The point helpers the SMAC simulator's hot loop uses equal the plain torch expressions."""

import pytest
import torch

from marl.envs.smac.planar import SHAPES_KEPT, PointConstant, gather_points, length, where_points


def test_length_equals_norm_up_to_rounding() -> None:
    v = torch.randn(4096, 6, 2, generator=torch.Generator().manual_seed(0)) * 30
    torch.testing.assert_close(length(v), v.norm(dim=-1), rtol=1e-6, atol=0)
    assert length(torch.tensor([[3.0, 4.0], [0.0, 0.0]])).tolist() == [5.0, 0.0]


def test_where_points_equals_the_broadcast_where() -> None:
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(64, 5, 2, generator=gen), torch.randn(64, 5, 2, generator=gen)
    mask = torch.rand(64, 5, generator=gen) > 0.5
    assert torch.equal(where_points(mask, a, b), torch.where(mask[..., None], a, b))
    # slices (the allies' points), a broadcast mask, layouts no 64-bit view can take
    sub = a[:, 1:4]
    assert torch.equal(where_points(mask[:, 1:4], sub, b[:, 1:4]),
                       torch.where(mask[:, 1:4, None], sub, b[:, 1:4]))
    walker = torch.tensor([True, False, True, True, False])
    assert torch.equal(where_points(walker, a, b), torch.where(walker[:, None], a, b))
    odd = a.flatten()[1:].as_strided((64, 4, 2), (10, 2, 1))  # at an odd offset
    apart = a.permute(2, 0, 1).contiguous().permute(1, 2, 0)[:, :4]  # x and y 320 apart
    assert not apart.is_contiguous() and torch.equal(apart, a[:, :4])
    for p in (odd, apart):
        assert torch.equal(where_points(mask[:, :4], p, b[:, :4]),
                           torch.where(mask[:, :4, None], p, b[:, :4]))
    with pytest.raises(ValueError, match="float32"):
        where_points(mask, a.double(), b.double())


def test_gather_points_equals_the_expanded_gather() -> None:
    gen = torch.Generator().manual_seed(2)
    points = torch.randn(32, 6, 2, generator=gen)
    index = torch.randint(0, 6, (32, 4), generator=gen)
    expected = points.gather(1, index.unsqueeze(-1).expand(-1, -1, 2))
    assert torch.equal(gather_points(points, index), expected)
    assert torch.equal(gather_points(points[:, 1:5], index.clamp(max=3)),
                       points[:, 1:5].gather(1, index.clamp(max=3)[..., None].expand(-1, -1, 2)))
    with pytest.raises(ValueError, match="float32"):
        gather_points(points.double(), index)


def test_point_constant_at_each_shape_once() -> None:
    far = PointConstant(torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]))
    points = torch.zeros(4, 3, 2)
    full = far.like(points)
    assert full.is_contiguous() and torch.equal(full, far.point.expand(4, 3, 2))
    assert far.like(torch.ones(4, 3, 2)) is full  # cached per shape
    assert far.like(torch.zeros(7, 3, 2)).shape == (7, 3, 2)
    for copies in range(100):  # a run's many copy counts do not pile up
        far.like(torch.zeros(copies, 3, 2))
    assert len(far._at) <= SHAPES_KEPT
