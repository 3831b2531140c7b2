import pytest
import torch

from pmg.conditioning.weighting import DEFAULT_GRID, normalize_weights, pad_uncond, parse_grid, weighted_context


def test_normalize_weights_by_the_larger():
    assert normalize_weights(2, 2) == (1.0, 1.0)
    assert normalize_weights(0, 4) == (0.0, 1.0)
    assert normalize_weights(3, 1) == (1.0, 1 / 3)
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
        np_, nt = wp / max(wp, wt), wt / max(wp, wt)
        torch.testing.assert_close(ctx[k, :5], nt * tgt[0])
        torch.testing.assert_close(ctx[k, 5:12], np_ * pref[0])
        torch.testing.assert_close(ctx[k, 12:], np_ * soft[0])
    # 0:4 removes the preference entirely and leaves the target as encoded
    assert ctx[0, 5:].abs().max() == 0
    torch.testing.assert_close(ctx[0, :5], tgt[0])


def test_weighting_without_preference():
    tgt = torch.ones(1, 3, 2)
    ctx = weighted_context(tgt, None, [(3, 1)])
    assert ctx.shape == (1, 3, 2)
    torch.testing.assert_close(ctx, tgt / 3)


def test_pad_uncond_tiles_to_length():
    e = torch.arange(6.0).view(1, 3, 2)
    out = pad_uncond(e, 7)
    assert out.shape == (1, 7, 2)
    torch.testing.assert_close(out[0, 3:6], e[0])
    torch.testing.assert_close(out[0, 6], e[0, 0])
