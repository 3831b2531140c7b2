import pytest
import torch

from pmg.conditioning.weighting import DEFAULT_GRID


def _run(pipe, seed=0, **kw):
    return pipe(["happy", "smiling"], ["cat", "twemoji style"], generator=torch.Generator().manual_seed(seed),
                num_inference_steps=3, output_type="pt", **kw)


def test_grid_is_one_batched_pass_from_shared_latents(tiny_pipe):
    calls = []
    orig = tiny_pipe.unet.forward

    def spy(sample, t, **kw):
        calls.append(sample.clone())
        return orig(sample, t, **kw)

    tiny_pipe.unet.forward = spy
    try:
        out = _run(tiny_pipe)
    finally:
        tiny_pipe.unet.forward = orig
    k = len(DEFAULT_GRID)
    assert len(calls) == 3  # one U-Net call per step for the whole grid (CFG included)
    first = calls[0]
    assert first.shape[0] == 2 * k
    for i in range(1, 2 * k):
        torch.testing.assert_close(first[i], first[0])  # every candidate starts from the same latents
    assert out.images.shape == (k, 3, 16, 16)
    assert out.latents.shape == (1, 12, 8, 8)


def test_candidates_differ_only_by_weights(tiny_pipe):
    out = _run(tiny_pipe, weights=[(1, 1), (2, 2), (1, 3)])
    torch.testing.assert_close(out.images[0], out.images[1])  # same normalised weights -> same image
    assert (out.images[0] - out.images[2]).abs().max() > 1e-4


def test_seed_is_deterministic_and_matters(tiny_pipe):
    a, b, c = _run(tiny_pipe, 1), _run(tiny_pipe, 1), _run(tiny_pipe, 2)
    torch.testing.assert_close(a.images, b.images)
    assert (a.images - c.images).abs().max() > 1e-3


def test_precomputed_embeddings_equal_keywords(tiny_pipe):
    t = tiny_pipe.encode_keywords(["happy", "smiling"])
    p = tiny_pipe.encode_keywords(["cat", "twemoji style"])
    a = _run(tiny_pipe)
    b = tiny_pipe(target_embeds=t, preference_embeds=p, generator=torch.Generator().manual_seed(0),
                  num_inference_steps=3, output_type="pt")
    torch.testing.assert_close(a.images, b.images)


def test_soft_embeddings_extend_the_context(tiny_pipe):
    soft = torch.randn(1, 4, tiny_pipe.embed_dim)
    out = _run(tiny_pipe, soft_embeds=soft)
    assert out.context_tokens == 16 + 16 + 4
    with pytest.raises(ValueError, match=r"soft embeddings must have shape \(1, T, 32\)"):
        _run(tiny_pipe, soft_embeds=torch.randn(1, 4, 7))


def test_bad_arguments_are_named(tiny_pipe):
    with pytest.raises(ValueError, match="num_inference_steps"):
        tiny_pipe(["x"], num_inference_steps=0)
    with pytest.raises(ValueError, match="target"):
        tiny_pipe(None, ["cat"])
    with pytest.raises(ValueError, match="latents must have shape"):
        tiny_pipe(["x"], latents=torch.randn(1, 3, 8, 8), num_inference_steps=1)


def test_zero_weight_removes_the_condition(tiny_pipe):
    """0:4 is exactly the target-only image for the same seed: a zero weight masks its tokens out."""
    import numpy as np

    kw = dict(num_inference_steps=3, guidance_scale=3.0)
    both = tiny_pipe(["happy"], ["cat", "twemoji"], weights=[(0, 4), (4, 0), (2, 2)], generator=torch.Generator().manual_seed(1), **kw)
    alone = tiny_pipe(["happy"], None, weights=[(0, 1)], generator=torch.Generator().manual_seed(1), **kw)
    a, b = np.asarray(both.images[0], dtype=int), np.asarray(alone.images[0], dtype=int)
    assert np.abs(a - b).max() <= 1  # equal up to float summation order (1/255)
    assert not np.array_equal(np.asarray(both.images[2]), np.asarray(alone.images[0]))  # the preference does act
    from pmg.conditioning.weighting import context_mask

    assert context_mask(2, 3, 1, [(0, 4), (1, 0), (1, 1)]).tolist() == [
        [1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]]


def test_grids_of_several_users_in_one_pass_equal_their_own(tiny_pipe):
    """Batching users (the service) pads shorter contexts with masked tokens: same images as alone."""
    import numpy as np

    users = [(["happy"], ["cat", "twemoji"], 1), (["sad", "crying", "tears"], None, 2),
             (["angry"], ["dog, " * 20 + "openmoji"], 3)]  # one, none and two preference windows
    alone = [tiny_pipe(t, p, generator=torch.Generator().manual_seed(s), num_inference_steps=3) for t, p, s in users]
    grids = [tiny_pipe.prepare_grid(t, p, generator=torch.Generator().manual_seed(s)) for t, p, s in users]
    together = tiny_pipe.denoise_grids(grids, num_inference_steps=3)
    assert len({g.cond.shape[1] for g in grids}) > 1  # really different lengths
    for a, b in zip(alone, together):
        x, y = np.stack([np.asarray(i, dtype=int) for i in a.images]), np.stack([np.asarray(i, dtype=int) for i in b.images])
        diff = np.abs(x - y)
        assert diff.max() <= 1 and (diff > 0).mean() <= 0.001


def test_pipelines_meet_the_generator_protocol(tiny_pipe):
    from pmg.generation.protocol import Generator

    assert isinstance(tiny_pipe, Generator)
    assert not isinstance(object(), Generator)


def _pixels(images):
    import numpy as np

    return np.stack([np.asarray(i, dtype=int) for i in images])


def test_per_condition_guidance_spans_target_only_to_preference_only(tiny_pipe):
    """weighting="guidance": eps = eps_u + g (w_t (eps_t - eps_u) + w_p (eps_p - eps_u)); its 0:4 is the
    target-only image and its 4:0 the preference-only one (both equal to the paper's weighting there),
    the middle of the grid mixes the two directions and differs from the paper's 2:2."""
    import numpy as np

    grid, kw = [(0, 4), (2, 2), (4, 0)], dict(num_inference_steps=3, guidance_scale=3.0)
    run = lambda w: _pixels(tiny_pipe(["happy"], ["cat", "twemoji"], weights=grid, weighting=w,  # noqa: E731
                                      generator=torch.Generator().manual_seed(1), **kw).images)
    guided, embedded = run("guidance"), run("embedding")
    assert np.abs(guided[[0, 2]] - embedded[[0, 2]]).max() <= 1
    pt = lambda w: tiny_pipe(["happy"], ["cat", "twemoji"], weights=[(2, 2)], weighting=w, output_type="pt",  # noqa: E731
                             generator=torch.Generator().manual_seed(1), **kw).images
    again = pt("guidance")
    assert torch.equal(again, pt("guidance"))  # deterministic, so a difference below is the weighting's
    assert (again - pt("embedding")).abs().mean() > 1e-4
    g = tiny_pipe.prepare_grid(["happy"], ["cat"], weights=grid, weighting="guidance")
    assert g.row_candidate.tolist() == [0, 1, 1, 2] and g.row_coef.tolist() == [1.0, 0.5, 0.5, 1.0]  # no zero rows
    with pytest.raises(ValueError, match="weighting must be one of embedding, guidance; got 'sum'"):
        tiny_pipe.prepare_grid(["happy"], ["cat"], weighting="sum")


def test_guidance_without_cfg_is_the_mean_of_the_two_predictions():
    """g = 1: no unconditional pass; the candidate's prediction is w_t eps_t + w_p eps_p."""
    from pmg.conditioning.weighting import guidance_rows

    rows, cand, coef = guidance_rows([(1, 3), (0, 1)])
    assert rows == [(0.0, 1.0), (1.0, 0.0), (0.0, 1.0)] and cand == [0, 0, 1] and coef == [0.75, 0.25, 1.0]


def test_mixed_weightings_batch_like_alone(tiny_pipe):
    """Users with either weighting share one U-Net pass (the service) and get their own images."""
    import numpy as np

    users = [(["happy"], ["cat", "twemoji"], 1, "guidance"), (["sad"], ["dog"], 2, "embedding"), (["angry"], None, 3, "guidance")]
    for cfg in (3.0, 1.0):
        alone = [tiny_pipe(t, p, generator=torch.Generator().manual_seed(s), num_inference_steps=3, weighting=w,
                           guidance_scale=cfg) for t, p, s, w in users]
        grids = [tiny_pipe.prepare_grid(t, p, generator=torch.Generator().manual_seed(s), weighting=w) for t, p, s, w in users]
        together = tiny_pipe.denoise_grids(grids, num_inference_steps=3, guidance_scale=cfg)
        for a, b in zip(alone, together):
            diff = np.abs(_pixels(a.images) - _pixels(b.images))
            assert diff.max() <= 1 and (diff > 0).mean() <= 0.001


@pytest.mark.parametrize("weighting", ["embedding", "guidance"])
def test_noises_repeat_the_grid_from_further_latents(tiny_pipe, weighting):
    """``noises=3``: every weighting drawn from three initial latents, noise-major; the first K candidates are
    the one-noise grid of the same seed, and each further noise gives other images."""
    weights = [(0, 4), (2, 2), (3, 1)]

    def grid(noises):
        return tiny_pipe.prepare_grid(["happy"], ["cat", "twemoji"], weights=weights, generator=torch.Generator().manual_seed(5),
                                      weighting=weighting, noises=noises)

    one, three = grid(1), grid(3)
    assert three.weights == weights * 3 and three.latents.shape[0] == 9
    torch.testing.assert_close(three.latents[:3], one.latents.expand(3, -1, -1, -1))
    assert (three.latents[3] - three.latents[0]).abs().max() > 0.1 and (three.latents[6] - three.latents[3]).abs().max() > 0.1
    a, b = (tiny_pipe.denoise_grids([g], num_inference_steps=2, output_type="pt")[0].images for g in (one, three))
    assert b.shape[0] == 9
    torch.testing.assert_close(b[:3], a, atol=1e-4, rtol=1e-4)
    for k in range(3):  # the same weighting, another noise: another image
        assert (b[3 + k] - b[k]).abs().max() > 1e-3 and (b[6 + k] - b[3 + k]).abs().max() > 1e-3
