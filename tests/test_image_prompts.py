"""Image prompts: pictures in the conditions, the reference gallery, the selection's picture terms."""

from __future__ import annotations

import io
import json

import pytest
import torch
from PIL import Image

from helpers import ColourScorer, D, tiny_pipeline
from pmg.conditioning.weighting import weighted_parts
from pmg.generation.image_prompts import ImagePromptConfig, load_image_projection, representative, save_image_projection


def _png(colour, size=16) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, "PNG")
    return buf.getvalue()


class CountingScorer(ColourScorer):
    """The colour scorer, counting what it embeds (the gallery's cache must spare it)."""

    def __init__(self):
        self.images = self.texts = 0

    def embed_images(self, images):
        self.images += len(images)
        return super().embed_images(images)

    def embed_texts(self, texts):
        self.texts += len(texts)
        return super().embed_texts(texts)


def picture_pipeline(seed: int = 0):
    """The tiny pipeline with a colour image encoder (2-d embeddings) and a seeded projection into D."""
    from diffusers.models.embeddings import ImageProjection

    pipe = tiny_pipeline(seed)
    torch.manual_seed(seed + 1)
    pipe.image_proj = ImageProjection(2, D, 2).eval()
    pipe.image_encoder = ColourScorer().embed_images
    return pipe


# ------------------------------------------------------------------------------------ pure functions
def test_representative_most_used_then_most_recent():
    assert representative(["a", "b", "a", "c"], 3) == ["a", "c", "b"]
    assert representative(["a", "b", "a", "c"], 1) == ["a"]
    assert representative([], 3) == []


def test_weighted_parts_weights_each_side_and_masks_zeros():
    t, p, it, ip = (torch.full((1, n, 2), v) for n, v in ((2, 1.0), (3, 2.0), (1, 3.0), (2, 4.0)))
    ctx, mask = weighted_parts([(t, "target", 1.0), (p, "preference", 1.0), (it, "target", 0.5), (ip, "preference", 0.5)],
                               [(1, 3), (4, 0)])
    assert ctx.shape == (2, 8, 2)
    # 1:3 -> w_p 1/3, w_t 1; image tokens also times 0.5
    assert ctx[0, :, 0].tolist() == pytest.approx([1, 1, 2 / 3, 2 / 3, 2 / 3, 1.5, 4 / 6, 4 / 6])
    assert mask[0].tolist() == [1] * 8
    assert mask[1].tolist() == [0, 0, 1, 1, 1, 0, 1, 1]  # 4:0 removes the target's keywords and pictures
    _, mask0 = weighted_parts([(t, "target", 1.0), (ip, "preference", 0.0)], [(1, 1)])
    assert mask0[0].tolist() == [1, 1, 0, 0]  # a zero image scale removes the pictures too
    with pytest.raises(ValueError, match="side"):
        weighted_parts([(t, "middle", 1.0)], [(1, 1)])


def test_selection_mixes_picture_similarity():
    from pmg.scoring.select import with_pictures

    img = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=-1)
    d_p, d_t = torch.tensor([0.2, 0.4]), torch.tensor([0.5, 0.5])
    red = torch.tensor([[1.0, 0.0]])
    p, t = with_pictures(img, d_p, d_t, history=red, target=None, weight=0.5)
    assert p.tolist() == pytest.approx([0.6, 0.2])  # 0.5 * 0.2 + 0.5 * 1; 0.5 * 0.4 + 0.5 * 0
    assert t.tolist() == pytest.approx([0.5, 0.5])  # no target pictures: the text term alone
    p, _ = with_pictures(img, None, d_t, history=red, target=None, weight=0.5)
    assert p.tolist() == pytest.approx([1.0, 0.0])  # no preference keywords: the pictures alone


def test_projection_saves_and_loads(tmp_path):
    from diffusers.models.embeddings import ImageProjection

    torch.manual_seed(0)
    proj = ImageProjection(2, D, 2)
    cfg = ImagePromptConfig(2, D, 2, "scorer")
    save_image_projection(proj, cfg, tmp_path)
    loaded_cfg, loaded = load_image_projection(tmp_path)
    assert loaded_cfg == cfg
    x = torch.tensor([[0.6, 0.8]])
    assert torch.allclose(loaded(x), proj(x).detach(), atol=2e-2)  # stored in fp16
    assert load_image_projection(tmp_path / "none") is None


# ------------------------------------------------------------------------------------ gallery
def _gallery_folder(tmp_path):
    folder = tmp_path / "gallery"
    folder.mkdir()
    (folder / "red_apple.png").write_bytes(_png((250, 0, 0)))
    (folder / "blue.png").write_bytes(_png((0, 0, 250)))
    (folder / "blue.txt").write_text("blue whale")
    (folder / "grey.png").write_bytes(_png((120, 120, 120)))
    (folder / "junk.png").write_bytes(b"not a picture at all")
    (folder / "captions.jsonl").write_text(json.dumps({"file": "grey.png", "caption": "a grey stone"}) + "\n")
    return folder


def test_gallery_indexes_captions_skips_junk_and_caches(tmp_path):
    from pmg.pictures.gallery import Gallery

    folder, cache = _gallery_folder(tmp_path), tmp_path / "cache"
    sc = CountingScorer()
    with pytest.warns(UserWarning, match=r"1 file\(s\) skipped, no readable picture: junk.png"):
        g = Gallery.index(folder, sc, cache, progress=False)
    assert [f.name for f in g.files] == ["blue.png", "grey.png", "red_apple.png"]
    assert g.captions == ["blue whale", "a grey stone", "red apple"]
    assert g.skipped == ["junk.png"]
    assert (sc.images, sc.texts) == (3, 3)
    red = sc.embed_texts(["red"])[0]
    assert g.files[g.search(red, 1, by="image")[0]].name == "red_apple.png"
    assert g.files[g.search(sc.embed_texts(["blue"])[0], 1)[0]].name == "blue.png"

    again = CountingScorer()
    with pytest.warns(UserWarning):
        g2 = Gallery.index(folder, again, cache, progress=False)  # read back from the cache
    assert (again.images, again.texts) == (0, 0)
    assert torch.equal(g2.image_embeds, g.image_embeds)
    (folder / "grey.png").write_bytes(_png((10, 10, 240)))  # a changed file is embedded again
    third = CountingScorer()
    with pytest.warns(UserWarning):
        Gallery.index(folder, third, cache, progress=False)
    assert (third.images, third.texts) == (1, 1)


def test_gallery_refuses_what_is_not_one(tmp_path):
    from pmg.errors import InputError
    from pmg.pictures.gallery import Gallery, gallery_folder

    with pytest.raises(InputError, match="not a folder"):
        Gallery.index(tmp_path / "missing", ColourScorer())
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.png").write_bytes(b"junk")
    with pytest.raises(InputError, match="no readable pictures .1 skipped"):
        Gallery.index(tmp_path / "empty", ColourScorer(), progress=False)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "captions.jsonl").write_text("{oops\n")
    with pytest.raises(InputError, match=r"captions.jsonl:1"):
        Gallery.index(tmp_path / "bad", ColourScorer(), progress=False)
    assert gallery_folder("none", "pmg-mini") is None
    with pytest.raises(InputError, match="not a folder"):
        gallery_folder(tmp_path / "nope", "pmg-mini")


# ------------------------------------------------------------------------------------ choosing pictures
def _user(history_images, target=None, scenario="emoticon"):
    from pmg.behaviours.schema import Item, Target, UserBehaviours

    items = [Item(title=f"item {i}").with_image_data(data) if data is not None else Item(title=f"item {i}")
             for i, data in enumerate(history_images)]
    return UserBehaviours(scenario=scenario, history=items,
                          target=Target(message="so happy") if target is None else Target(item=target))


def test_history_pictures_most_representative_and_bad_ones_named():
    from pmg.pictures.prompts import choose_pictures

    red, blue, green = _png((250, 0, 0)), _png((0, 0, 250)), _png((0, 250, 0))
    user = _user([red, blue, None, red, b"\x89PNG broken", green, blue, red])
    pics = choose_pictures(user, ["happy"], k=2, history=True, target=False)
    assert [r["source"] for r in pics.records] == ["history[7]", "history[6]"]  # red 3x, then blue 2x (latest use)
    assert [im.getpixel((0, 0)) for im in pics.history] == [(250, 0, 0), (0, 0, 250)]
    assert pics.records[0]["sha256_16"] != pics.records[1]["sha256_16"]
    bad = choose_pictures(user, ["happy"], k=4, history=True, target=False)
    assert any("history[4].image skipped" in w for w in bad.warnings)  # named, never a traceback
    assert len(bad.history) == 3
    assert not choose_pictures(user, ["happy"], k=3, history=False, target=False)


def test_target_picture_own_or_gallery_exemplar(tmp_path):
    from pmg.behaviours.schema import Item
    from pmg.pictures.gallery import Gallery
    from pmg.pictures.prompts import choose_pictures

    shirt = Item(title="shirt").with_image_data(_png((0, 0, 250)))
    own = choose_pictures(_user([], target=shirt, scenario="clothing"), ["shirt"], k=3, history=True, target=True)
    assert [r["source"] for r in own.records] == ["target.item"]
    sc = ColourScorer()
    with pytest.warns(UserWarning):
        g = Gallery.index(_gallery_folder(tmp_path), sc, None, progress=False)
    ex = choose_pictures(_user([]), ["red", "happy"], k=3, history=True, target=True, gallery=g, embed_text=sc.embed_texts)
    assert ex.records[0]["source"] == "gallery:red_apple.png" and ex.records[0]["caption"] == "red apple"


# ------------------------------------------------------------------------------------ the pipeline
def test_pipeline_pictures_join_their_condition():
    pipe = picture_pipeline()
    red = pipe.encode_images([Image.new("RGB", (8, 8), (250, 0, 0))])
    blue = pipe.encode_images([Image.new("RGB", (8, 8), (0, 0, 250))])
    kw = dict(weights=[(0, 4), (2, 2), (4, 0)], num_inference_steps=2, output_type="pt")

    def run(**extra):
        return pipe("happy", "cat", generator=torch.Generator().manual_seed(0), **kw, **extra).images

    plain, with_pics = run(), run(preference_image_embeds=red, target_image_embeds=blue)
    assert not torch.allclose(plain[1], with_pics[1])  # the pictures change the composition
    hist_only = run(preference_image_embeds=red)
    assert torch.allclose(plain[0], hist_only[0], atol=1e-5)  # 0:4 removes the history's pictures exactly
    assert (plain[2] - hist_only[2]).abs().max() > 0.1
    tgt_only = run(target_image_embeds=blue)
    assert torch.allclose(plain[2], tgt_only[2], atol=1e-5)  # 4:0 removes the target's picture exactly
    assert (plain[0] - tgt_only[0]).abs().max() > 0.1
    assert torch.allclose(plain, run(preference_image_embeds=red, target_image_embeds=blue, image_scale=0.0))
    with pytest.raises(ValueError, match="image_scale"):
        run(target_image_embeds=blue, image_scale=9)
    with pytest.raises(ValueError, match="takes no image prompts"):
        tiny_pipeline(0).encode_images([Image.new("RGB", (8, 8))])


def test_pmg_records_pictures_and_their_options(tmp_path):
    from helpers import ScriptedLLM, animal_answer
    from pmg.api import PMG, GenerationConfig
    from pmg.errors import ConfigError
    from pmg.io.output import save_result
    from pmg.keywords.extract import KeywordExtractor

    pmg = PMG(KeywordExtractor(ScriptedLLM(animal_answer)), picture_pipeline(), ColourScorer())
    from pmg.behaviours.schema import Item

    user = _user([_png((250, 0, 0)), _png((250, 0, 0)), _png((0, 0, 250))])
    user.history = [Item(title="cat face", text="a red cat").with_image_data(i.image_bytes()) for i in user.history]
    r = pmg.generate(user, GenerationConfig(seed=0, num_inference_steps=2, weights="0:4,2:2,4:0"))
    assert [p["role"] for p in r.pictures] == ["history", "history"]
    assert r.picture_images[0].getpixel((0, 0)) == (250, 0, 0)
    off = pmg.generate(user, GenerationConfig(seed=0, num_inference_steps=2, weights="0:4,2:2,4:0", history_images=False))
    assert off.pictures == []
    assert off.candidates[0].image.tobytes() == r.candidates[0].image.tobytes()  # 0:4 never sees the history
    assert off.candidates[1].image.tobytes() != r.candidates[1].image.tobytes()
    save_result(r, tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [p["sha256_16"] for p in manifest["pictures"]] == [p["sha256_16"] for p in r.pictures]
    assert manifest["config"]["image_k"] == 3
    for bad, word in (({"image_k": -1}, "image_k"), ({"image_scale": 5.0}, "image_scale"),
                      ({"picture_weight": 2.0}, "picture_weight"), ({"history_images": "yes"}, "history_images")):
        with pytest.raises(ConfigError, match=word):
            GenerationConfig(**bad)


def test_cli_and_service_take_the_picture_options():
    import argparse

    from pmg.cli import _generation_args, _generation_config
    from pmg.errors import ConfigError

    p = argparse.ArgumentParser()
    _generation_args(p)
    cfg = _generation_config(p.parse_args(["--no-history-images", "--image-k", "2", "--image-scale", "0.5"]))
    assert (cfg.history_images, cfg.target_images, cfg.image_k, cfg.image_scale) == (False, True, 2, 0.5)
    with pytest.raises(ConfigError, match="--image-k"):
        _generation_config(p.parse_args(["--image-k", "11"]))
    from pmg.service.schemas import OptionsIn

    schema = OptionsIn.model_json_schema()["properties"]
    assert schema["image_k"]["maximum"] == 10 and "history pictures" in schema["image_k"]["description"]
    assert OptionsIn(history_images=False).to_config().history_images is False
