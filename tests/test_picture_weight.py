"""benchmarks/picture_weight.py: recorded grids re-ranked for another picture weight, as PMG would select."""

import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("picture_weight", Path(__file__).parents[1] / "benchmarks" / "picture_weight.py")
pw = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pw)


def _cand(d_p_text, d_t_text, p_img, t_img, w=0.5):
    return {"d_p": (1 - w) * d_p_text + w * p_img, "d_t": (1 - w) * d_t_text + w * t_img, "p_img": p_img, "t_img": t_img}


def test_text_terms_recovered_and_the_choice_follows_the_weight():
    grid = [_cand(0.3, 0.4, 0.1, 0.1), _cand(0.2, 0.3, 0.9, 0.9)]  # text prefers 0, pictures prefer 1
    assert pw.text_terms(grid[0], 0.5) == pytest.approx((0.3, 0.4))
    assert pw.choose(grid, 0.5, 0.0, 0.3) == 0
    assert pw.choose(grid, 0.5, 0.5, 0.3) == 1
    assert pw.choose(grid, 0.5, 1.0, 0.3) == 1
