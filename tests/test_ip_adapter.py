"""Stable Diffusion 1.x with an IP-Adapter (``pmg.generation.ip_adapter``), on a tiny random SD folder with a
tiny IP-Adapter and CLIP vision encoder saved in diffusers' and transformers' layouts."""

import json
import shutil

import pytest
import torch
from helpers import save_tiny_ip_adapter, save_tiny_sd
from PIL import Image

from pmg.errors import ModelLoadError
from pmg.generation.loading import load_generator

GRID = [(0, 4), (2, 2), (4, 0)]
PICTURES = [Image.new("RGB", (40, 40), c) for c in ("red", "blue", "green", "yellow")]


@pytest.fixture(scope="module")
def sd_folders(tmp_path_factory):
    """(the tiny SD folder, the same folder with an IP-Adapter)."""
    root = tmp_path_factory.mktemp("sd")
    plain = save_tiny_sd(root / "plain")
    shutil.copytree(plain, root / "ip")
    return plain, save_tiny_ip_adapter(root / "ip")


@pytest.fixture(scope="module")
def pipe(sd_folders):
    return load_generator(sd_folders[1])


def _run(pipe, target=None, history=None, seed=0, weights=GRID, **kw):
    return pipe(["happy"], ["cat", "twemoji"], weights=weights, target_image_embeds=target, preference_image_embeds=history,
                generator=torch.Generator().manual_seed(seed), num_inference_steps=2, output_type="pt", **kw).images


def test_loads_offline_from_local_folders(sd_folders, pipe, monkeypatch):
    from pmg.generation.ip_adapter import CLIPImageEmbedder, ImageTokensAttnProcessor

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert pipe.takes_images and pipe.ip_adapter
    assert isinstance(pipe.image_encoder, CLIPImageEmbedder)
    procs = [p for name, p in pipe.unet.attn_processors.items() if name.endswith("attn2.processor")]
    assert procs and all(isinstance(p, ImageTokensAttnProcessor) for p in procs)
    assert pipe.unet.encoder_hid_proj is None  # the projection is PMG's, before the weighting
    embeds = pipe.encode_images(PICTURES[:3])
    assert embeds.shape == (3, 16) and embeds.dtype == torch.float32
    assert pipe.image_tokens(embeds).shape == (1, 3 * 4, 32)  # 4 tokens per picture
    assert not load_generator(sd_folders[0]).takes_images  # no ip_adapter/: no pictures
    # the image encoder may sit in the SD folder itself, as diffusers' load_ip_adapter also allows
    moved = sd_folders[1].parent / "encoder_in_root"
    shutil.copytree(sd_folders[1], moved)
    shutil.move(moved / "ip_adapter" / "image_encoder", moved / "image_encoder")
    torch.testing.assert_close(load_generator(moved).encode_images(PICTURES[:3]), embeds)


def test_no_pictures_is_stable_diffusion_without_the_adapter(sd_folders, pipe):
    plain = load_generator(sd_folders[0])
    assert torch.equal(_run(pipe), _run(plain))


def test_pictures_change_the_images(pipe):
    e = pipe.encode_images(PICTURES)
    none, both = _run(pipe), _run(pipe, e[:1], e[1:3])
    diff = (both - none).abs().amax(dim=(1, 2, 3))
    assert bool((diff > 0.05).all())  # every weighting has pictures on at least one side
    other = _run(pipe, e[3:], e[1:3])  # another target picture: another image where w_t > 0
    assert (other - both).abs().amax(dim=(1, 2, 3))[:2].min() > 0.05
    assert torch.equal(other[2], both[2])  # 4:0: the target (and its picture) removed


def test_zero_weight_removes_that_sides_pictures(pipe):
    e = pipe.encode_images(PICTURES)
    both = _run(pipe, e[:1], e[1:3])
    target_only, history_only = _run(pipe, e[:1], None), _run(pipe, None, e[1:3])
    torch.testing.assert_close(both[0], target_only[0], rtol=0, atol=1e-5)  # 0:4: the history's pictures removed
    torch.testing.assert_close(both[2], history_only[2], rtol=0, atol=1e-5)  # 4:0: the target's picture removed
    assert (both[1] - target_only[1]).abs().max() > 0.05 and (both[1] - history_only[1]).abs().max() > 0.05


def test_image_scale_zero_is_no_pictures(pipe):
    e = pipe.encode_images(PICTURES)
    torch.testing.assert_close(_run(pipe, e[:1], e[1:3], image_scale=0.0), _run(pipe), rtol=0, atol=1e-6)
    assert (_run(pipe, e[:1], e[1:3], image_scale=0.5) - _run(pipe, e[:1], e[1:3])).abs().max() > 0.01


def test_users_batched_together_get_their_own_images(pipe):
    """Image tokens of different lengths (and none) are padded with zero tokens, which the attention leaves out."""
    e = pipe.encode_images(PICTURES)
    users = [dict(target_image_embeds=e[:1], preference_image_embeds=e[1:4], seed=1),  # 4 pictures
             dict(target_image_embeds=None, preference_image_embeds=e[3:], seed=2),  # 1
             dict(target_image_embeds=None, preference_image_embeds=None, seed=3)]  # none
    grids, alone = [], []
    for u in users:
        kw = dict(weights=GRID, generator=torch.Generator().manual_seed(u["seed"]),
                  target_image_embeds=u["target_image_embeds"], preference_image_embeds=u["preference_image_embeds"])
        grids.append(pipe.prepare_grid(["happy"], ["cat"], **kw))
        kw["generator"] = torch.Generator().manual_seed(u["seed"])
        alone.append(pipe(["happy"], ["cat"], num_inference_steps=2, output_type="pt", **kw).images)
    assert [None if g.image_cond is None else g.image_cond.shape[1] for g in grids] == [16, 4, None]
    together = pipe.denoise_grids(grids, num_inference_steps=2, output_type="pt")
    for a, b in zip(alone, together):
        torch.testing.assert_close(b.images, a, rtol=0, atol=1e-5)


def test_zero_image_tokens_are_absent_in_the_attention():
    """diffusers' processor lets a zero token (zero key, zero value) take a share of the softmax; PMG's leaves it
    out, so a row's output depends on its nonzero tokens only, and a row with none gets no image branch."""
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0, IPAdapterAttnProcessor2_0

    from pmg.generation.ip_adapter import ImageTokensAttnProcessor

    torch.manual_seed(0)
    attn = Attention(16, cross_attention_dim=8, heads=2, dim_head=8)
    theirs = IPAdapterAttnProcessor2_0(16, 8, num_tokens=4)
    ours = ImageTokensAttnProcessor.from_diffusers(theirs)
    x, text, tokens = torch.randn(3, 5, 16), torch.randn(3, 6, 8), torch.randn(3, 4, 8)
    padded = torch.cat([tokens, torch.zeros(3, 2, 8)], 1)
    padded[1, :2] = 0  # row 1: two tokens of four
    padded[2] = 0  # row 2: none
    out = ours(attn, x, (text, [padded]))
    torch.testing.assert_close(out[0], ours(attn, x[:1], (text[:1], [tokens[:1]]))[0])
    torch.testing.assert_close(out[1], ours(attn, x[1:2], (text[1:2], [tokens[1:2, 2:]]))[0])
    torch.testing.assert_close(out[2], AttnProcessor2_0()(attn, x[2:], text[2:])[0])  # plain text attention
    torch.testing.assert_close(ours(attn, x, text), AttnProcessor2_0()(attn, x, text))  # text alone: the same
    assert (theirs(attn, x[:1], (text[:1], [padded[:1]])) - out[:1]).abs().max() > 1e-3  # diffusers': diluted


def test_missing_or_corrupt_weights_name_the_folder(sd_folders, tmp_path):
    folder = shutil.copytree(sd_folders[1], tmp_path / "sd")
    weights = folder / "ip_adapter" / "ip-adapter_sd15.safetensors"
    weights.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match=rf"{weights}: not IP-Adapter weights for this U-Net"):
        load_generator(folder)
    weights.unlink()
    with pytest.raises(ModelLoadError, match=rf"{folder / 'ip_adapter'}: expected ip-adapter_sd15.safetensors .*found none"):
        load_generator(folder)
    from safetensors.torch import save_file

    save_file({"image_proj.proj.weight": torch.zeros(128, 16)}, weights)  # keys missing
    with pytest.raises(ModelLoadError, match=rf"{weights}: not IP-Adapter weights"):
        load_generator(folder)
    shutil.copy(sd_folders[1] / "ip_adapter" / "ip-adapter_sd15.safetensors", weights)
    shutil.rmtree(folder / "ip_adapter" / "image_encoder")
    with pytest.raises(ModelLoadError, match=rf"{folder / 'ip_adapter'}: no image encoder"):
        load_generator(folder)


def test_pmg_uses_the_adapter_with_the_users_pictures(sd_folders, tmp_path, monkeypatch):
    """``PMG.from_names(generator=SD_FOLDER)``: the history's pictures reach the IP-Adapter; 0:4 stays the
    target-only image (an emoticon target has no picture, and there is no gallery)."""
    from helpers import ColourScorer, ScriptedLLM, animal_answer

    from pmg.api import PMG, GenerationConfig
    from pmg.behaviours.schema import load_user
    from pmg.keywords.extract import KeywordExtractor

    monkeypatch.setattr("pmg.scoring.scorers.load_scorer", lambda name: ColourScorer())
    monkeypatch.setattr("pmg.keywords.extract.build_extractor", lambda *a, **k: KeywordExtractor(ScriptedLLM(animal_answer)))
    for i, pic in enumerate(PICTURES[:2]):
        pic.save(tmp_path / f"{i}.png")
    (tmp_path / "user.json").write_text(json.dumps({
        "user_id": "u", "scenario": "emoticon", "target": {"message": "I am so happy today!"},
        "history": [{"title": "grinning cat", "image": "0.png"}, {"title": "cat face", "image": "1.png"}]}))
    user = load_user(tmp_path / "user.json")
    pmg = PMG.from_names(generator=str(sd_folders[1]), scorer="colour", scenario="emoticon", soft="none", gallery="none",
                         captioner=None, cache_dir=tmp_path / "cache", model_cache_dir=tmp_path / "models")
    assert pmg.generator.takes_images and pmg.generator.ip_adapter
    cfg = dict(seed=0, num_inference_steps=2, weights=tuple(GRID))
    with_pics = pmg.generate(user, GenerationConfig(**cfg))
    without = pmg.generate(user, GenerationConfig(**cfg, history_images=False))
    assert [r["role"] for r in with_pics.pictures] == ["history", "history"] and without.pictures == []
    px = [[torch.tensor(list(c.image.getdata()), dtype=torch.int) for c in r.candidates] for r in (with_pics, without)]
    assert (px[0][0] - px[1][0]).abs().max() <= 1  # 0:4: the history's pictures removed
    assert (px[0][1] - px[1][1]).abs().max() > 10  # 2:2: they act
