import pytest
import torch

from pmg.conditioning.weighting import DEFAULT_GRID, normalize_weights, pad_uncond, parse_grid, weighted_context


def test_normalize_weights_average_one():
    assert normalize_weights(2, 2) == (1.0, 1.0)
    assert normalize_weights(0, 4) == (0.0, 2.0)
    assert normalize_weights(3, 1) == (1.5, 0.5)
    with pytest.raises(ValueError):
        normalize_weights(0, 0)


def test_parse_grid_and_errors():
    assert parse_grid("0:4, 1:3,2:2") == ((0, 4), (1, 3), (2, 2))
    with pytest.raises(ValueError, match="'1-3'"):
        parse_grid("1-3")
    with pytest.raises(ValueError, match="'-1:3'"):
        parse_grid("-1:3")


def test_weighting_scales_the_right_slices():
    torch.manual_seed(0)
    tgt, pref, soft = torch.randn(1, 5, 8), torch.randn(1, 7, 8), torch.randn(1, 4, 8)
    ctx = weighted_context(tgt, pref, DEFAULT_GRID, soft)
    assert ctx.shape == (5, 5 + 7 + 4, 8)
    for k, (wp, wt) in enumerate(DEFAULT_GRID):
        np_, nt = 2 * wp / (wp + wt), 2 * wt / (wp + wt)
        torch.testing.assert_close(ctx[k, :5], nt * tgt[0])
        torch.testing.assert_close(ctx[k, 5:12], np_ * pref[0])
        torch.testing.assert_close(ctx[k, 12:], np_ * soft[0])
    # 0:4 removes the preference entirely and doubles the target
    assert ctx[0, 5:].abs().max() == 0
    torch.testing.assert_close(ctx[0, :5], 2 * tgt[0])


def test_weighting_without_preference():
    tgt = torch.ones(1, 3, 2)
    ctx = weighted_context(tgt, None, [(1, 3)])
    assert ctx.shape == (1, 3, 2)
    torch.testing.assert_close(ctx, 1.5 * tgt)


def test_pad_uncond_tiles_to_length():
    e = torch.arange(6.0).view(1, 3, 2)
    out = pad_uncond(e, 7)
    assert out.shape == (1, 7, 2)
    torch.testing.assert_close(out[0, 3:6], e[0])
    torch.testing.assert_close(out[0, 6], e[0, 0])
