"""mini-CLIP, pmg-mini's scorer: both image towers, saving, the frozen ImageNet backbone."""

import pytest
import torch
from PIL import Image

from pmg.scoring.mini_clip import MiniCLIP, MiniCLIPConfig


def _images(n=3, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("tower,size", [("cnn", 32), ("alexnet", 32), ("convnet", 32), ("convnet", 64)])
def test_save_load_round_trip_and_unit_embeddings(tower, size, tmp_path):
    torch.manual_seed(0)
    m = MiniCLIP(MiniCLIPConfig(image_tower=tower, width=8, head_width=16, embed_dim=24, image_size=size))
    if tower == "convnet":  # BatchNorm: give the running statistics something to hold, then score in eval mode
        m.train().encode_image(_images(8, size, seed=1))
        assert float(m.convnet[1].running_mean.abs().sum()) > 0
    m.eval()
    x = _images(size=size)
    x[1] = torch.linspace(-1, 1, size).view(1, 1, size).expand(3, size, size)  # a gradient, not noise like x[0]
    e = m.encode_image(x)
    assert e.shape == (3, 24)
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    m.save_pretrained(tmp_path / "scorer")
    back = MiniCLIP.from_pretrained(tmp_path / "scorer")
    assert back.config == m.config
    assert torch.allclose(back.encode_image(x), e, atol=5e-3)  # saved in fp16
    assert not torch.allclose(e[0], e[1], atol=1e-3)  # different images, different embeddings


def test_alexnet_tower_is_frozen_and_split_for_caching():
    m = MiniCLIP(MiniCLIPConfig(image_tower="alexnet", head_width=16, embed_dim=8)).eval()
    trained = {id(p) for p in m.trainable_parameters()}
    for name, p in m.named_parameters():
        assert (id(p) in trained) == (not name.startswith("tower.")), name
        assert p.requires_grad == (id(p) in trained), name
    x = _images()
    conv5, stats = m.backbone(x)
    assert conv5.shape == (3, 256, 7, 7) and stats.shape == (3, 2 * (64 + 192))  # 32 px upsampled to 128
    assert torch.allclose(m.encode_backbone_features(conv5, stats), m.encode_image(x))
    # any picture size works: it is first brought to image_size, as the model was trained
    assert m.backbone(_images(2, 64))[0].shape == (2, 256, 7, 7)


def test_imagenet_weights_are_the_lpips_alexnet():
    from pmg.evaluation.lpips import LPIPS

    m = MiniCLIP(MiniCLIPConfig(image_tower="alexnet"))
    m.tower.load_imagenet_weights()
    x = _images(2, 128)
    conv5, _ = m.tower(x)
    assert torch.equal(conv5, LPIPS("alex").features(x)[-1])


@pytest.mark.parametrize("bad, match", [({"image_tower": "vit"}, "image_tower must be 'cnn', 'convnet' or 'alexnet', got 'vit'"),
                                        ({"image_tower": "alexnet", "tower_size": 32}, "tower_size must be at least 64"),
                                        ({"image_size": 30}, "multiple of 8, got 30")])
def test_bad_config_is_refused_with_the_value(bad, match):
    with pytest.raises(ValueError, match=match):
        MiniCLIPConfig(**bad)


def test_old_configs_without_a_tower_load_as_cnn(tmp_path):
    import json

    m = MiniCLIP(MiniCLIPConfig(width=8, embed_dim=16))
    m.save_pretrained(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    for key in ("image_tower", "tower_size", "head_width"):
        raw.pop(key)
    (tmp_path / "config.json").write_text(json.dumps(raw))
    assert MiniCLIP.from_pretrained(tmp_path).config.image_tower == "cnn"


def test_dropout_acts_only_while_training_and_old_configs_have_none(tmp_path):
    import json

    torch.manual_seed(0)
    m = MiniCLIP(MiniCLIPConfig(image_tower="alexnet", head_width=16, embed_dim=8, dropout=0.5))
    feats = m.backbone(_images())
    m.train()
    a, b = m.encode_backbone_features(*feats), m.encode_backbone_features(*feats)
    assert not torch.allclose(a, b)  # a different mask each call
    m.eval()
    assert torch.equal(m.encode_backbone_features(*feats), m.encode_backbone_features(*feats))
    m.save_pretrained(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    assert raw["dropout"] == 0.5
    raw.pop("dropout")
    (tmp_path / "config.json").write_text(json.dumps(raw))
    assert MiniCLIP.from_pretrained(tmp_path).config.dropout == 0.0


def test_scorer_augmentation_greys_out_the_chosen_share():
    from training.pmg_mini.train_scorer import augment

    x = _images(64)
    colour = augment(x, torch.Generator().manual_seed(0))
    assert (colour[:, 0] - colour[:, 1]).abs().amax(dim=(1, 2)).min() > 0.1  # no grey copies by default
    grey = augment(x, torch.Generator().manual_seed(0), gray_p=1.0)
    assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 1], grey[:, 2])
    half = augment(x, torch.Generator().manual_seed(0), gray_p=0.5)
    n_grey = sum(torch.allclose(h[0], h[1]) for h in half)
    assert 16 <= n_grey <= 48


def test_scorer_and_tagger_names_change_with_weights_and_vocabulary(tmp_path):
    """Caption and keyword caches key on these names: new weights or a new vocabulary must miss them."""
    from pmg.captioning.base import TaggerCaptioner
    from pmg.scoring.scorers import MiniCLIPScorer

    cfg = MiniCLIPConfig(width=8, embed_dim=16)
    torch.manual_seed(0)
    MiniCLIP(cfg).save_pretrained(tmp_path / "a" / "scorer")
    MiniCLIP.from_pretrained(tmp_path / "a" / "scorer").save_pretrained(tmp_path / "b" / "scorer")  # same weights
    torch.manual_seed(1)
    MiniCLIP(cfg).save_pretrained(tmp_path / "c" / "scorer")
    a, b, c = (MiniCLIPScorer(tmp_path / d / "scorer") for d in "abc")
    assert a.name.startswith("mini-clip:a/scorer@") and len(a.name.split("@")[1]) == 8
    assert a.name.split("@")[1] == b.name.split("@")[1] != c.name.split("@")[1]
    t1, t2 = TaggerCaptioner(a, ["cat", "dog"]), TaggerCaptioner(a, ["cat", "fox"])
    assert t1.name != t2.name != TaggerCaptioner(c, ["cat", "dog"]).name
    assert t1.name == TaggerCaptioner(a, lambda: ["cat", "dog"]).name and a.name in t1.name
    assert TaggerCaptioner(a, ["cat", "dog"], top_k=5).name != t1.name  # more entries per caption: other captions
    # a vocabulary that cannot be read only fails when an image needs it
    empty = TaggerCaptioner(a, [])
    assert "vocabulary@missing" in empty.name
    with pytest.raises(ValueError, match="non-empty vocabulary"):
        empty.caption([Image.new("RGB", (32, 32))])


def test_tagger_names_the_closest_art_style_when_the_top_k_has_none():
    """With five concept tags ahead of every style, the caption still ends with the closest style."""
    from pmg.captioning.base import TaggerCaptioner

    class Toy:  # images and texts in a 3-d space: red images are "twemoji", blue ones "noto"
        name = "toy"

        def embed_images(self, images):
            return torch.tensor([[1.0, 0.0, 0.5] if im.getpixel((0, 0))[0] > 128 else [1.0, 0.5, 0.0] for im in images])

        def embed_texts(self, texts):
            vec = {"twemoji style": [0.0, 0.0, 1.0], "noto style": [0.0, 1.0, 0.0]}
            return torch.tensor([vec.get(t, [1.0, 0.0, 0.0]) for t in texts])

    vocab = ["cat", "dog", "pizza", "star", "heart", "sun", "noto style", "twemoji style"]
    red, blue = Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))
    caps = TaggerCaptioner(Toy(), vocab, top_k=3).caption([red, blue])
    assert [c.split(", ")[-1] for c in caps] == ["twemoji style", "noto style"]
    assert all(len(c.split(", ")) == 4 for c in caps)
    plain = TaggerCaptioner(Toy(), vocab, top_k=3, style_suffix=None)
    assert all(len(c.split(", ")) == 3 for c in plain.caption([red, blue])) and plain.name != TaggerCaptioner(Toy(), vocab).name
    # a style already among the top k is not repeated
    assert TaggerCaptioner(Toy(), ["cat", "twemoji style"], top_k=2).caption([red]) == ["cat, twemoji style"]


def test_frequent_caption_phrases_are_a_vote():
    from pmg.keywords.parse import frequent_phrases

    caps = ["pizza, slice, noto style", "wine, glass, noto style", "fries, noto style", "beer, mug, twemoji style"]
    assert frequent_phrases(caps) == {"noto style": 0.75}
    assert frequent_phrases(caps[:1]) == {}


def test_scorer_training_does_not_decay_the_temperature_or_biases():
    from training.pmg_mini.train_scorer import param_groups

    for tower in ("cnn", "convnet", "alexnet"):
        m = MiniCLIP(MiniCLIPConfig(image_tower=tower, width=8, head_width=16, embed_dim=24))
        decay, no_decay = param_groups(m, 0.05)
        assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
        assert any(p is m.logit_scale for p in no_decay["params"])
        assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim < 2 for p in no_decay["params"])
        # every trained parameter once, the frozen AlexNet convolutions never
        assert len(decay["params"]) + len(no_decay["params"]) == len(m.trainable_parameters())


def test_tagger_vocabulary_goes_with_the_scorer(tmp_path):
    """pmg-mini-fashion's tagger ranks its own words (garments, colours, patterns): with pmg-mini's emoji
    vocabulary a red plaid overcoat was captioned "mage, application, acceptable, noto style"."""
    from pmg.captioning.vocabulary import default_vocabulary, vocabulary_for

    fashion = vocabulary_for("pmg-mini-fashion")()
    assert {"striped", "red", "coat"} <= set(fashion) and not any(w.endswith(" style") for w in fashion)
    assert vocabulary_for("pmg-mini")() == default_vocabulary()
    model = tmp_path / "model"
    (model / "scorer").mkdir(parents=True)
    (model / "vocabulary.txt").write_text("plaid\nsilk\n")
    assert vocabulary_for(model / "scorer") is default_vocabulary  # no model_index.json: not a model folder
    (model / "model_index.json").write_text("{}")
    assert vocabulary_for(model / "scorer")() == ["plaid", "silk"]
    (model / "scorer" / "vocabulary.txt").write_text("# the scorer's own\nwool\n")
    assert vocabulary_for(model / "scorer")() == ["wool"]
