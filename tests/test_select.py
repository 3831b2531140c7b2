import math

import pytest
import torch

from pmg.scoring.select import select_best, similarity_scores, z_scores


def test_z_picks_the_balanced_candidate():
    # candidate 0: very on-target, unpersonalised; 2: personalised, off-target; 1: balanced
    d_p = torch.tensor([0.05, 0.30, 0.60])
    d_t = torch.tensor([0.70, 0.35, 0.02])
    z = z_scores(d_p, d_t, 0.5)
    assert select_best(z) == 1
    assert z[1].item() == pytest.approx(0.5 * math.log(0.30) + 0.5 * math.log(0.35), rel=1e-6)
    # alpha moves the choice: all preference -> candidate 2, all accuracy -> candidate 0
    assert select_best(z_scores(d_p, d_t, 1.0)) == 2
    assert select_best(z_scores(d_p, d_t, 0.0)) == 0


def test_negative_similarities_are_clamped_not_nan():
    z = z_scores(torch.tensor([-0.2, 0.1]), torch.tensor([0.5, 0.5]))
    assert torch.isfinite(z).all()
    assert select_best(z) == 1


def test_no_preference_uses_accuracy_only():
    z = z_scores(None, torch.tensor([0.2, 0.4]))
    torch.testing.assert_close(z, torch.log(torch.tensor([0.2, 0.4])))


def test_alpha_out_of_range():
    with pytest.raises(ValueError, match="alpha"):
        z_scores(torch.ones(1), torch.ones(1), 1.5)


def test_similarity_scores_are_cosines():
    img = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8]]), dim=-1)
    d_p, d_t = similarity_scores(img, torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(d_t, torch.tensor([1.0, 0.6]))
    torch.testing.assert_close(d_p, torch.tensor([0.0, 0.8]))
