"""pmg-mini's data build: the Iconify art sets that train the scorer, and the scorer's split guard."""

import json

import numpy as np
import pytest
import torch

from training.pmg_mini.build_data import IconifySet, _slug

RED_SQUARE = '<rect x="0" y="0" width="8" height="16" fill="#ff0000"/>'  # left half red


def _iconify(tmp_path, chars: bool):
    icons = {"grinning-face": {"body": RED_SQUARE}, "backhand-index-pointing-left": {"body": RED_SQUARE},
             "cat-face": {"body": RED_SQUARE, "width": 32, "height": 32}}
    data = {"prefix": "t", "icons": icons, "width": 16, "height": 16,
            "aliases": {"backhand-index-pointing-right": {"parent": "backhand-index-pointing-left", "hFlip": True}}}
    (tmp_path / "icons.json").write_text(json.dumps(data))
    if chars:
        (tmp_path / "chars.json").write_text(json.dumps({"1f600": "grinning-face", "261d": "cat-face"}))
    return IconifySet(tmp_path)


def test_slug_matches_iconify_names():
    assert _slug("1st place medal") == "1st-place-medal"
    assert _slug("Grinning Cat Face: With Smiling Eyes!") == "grinning-cat-face-with-smiling-eyes"


def test_iconify_icons_are_found_by_codepoints_when_the_set_maps_them(tmp_path):
    icons = _iconify(tmp_path, chars=True)
    assert icons.name_for({"hexcode": "1F600", "emoji": "\U0001F600", "label": "anything"}) == "grinning-face"
    # FE0F (emoji presentation) is dropped when the set's keys lack it
    assert icons.name_for({"hexcode": "261D-FE0F", "emoji": "\u261d\ufe0f", "label": "x"}) == "cat-face"
    # with a codepoint map, names are not guessed
    assert icons.name_for({"hexcode": "1F63A", "emoji": "\U0001F63A", "label": "cat face"}) is None


def test_iconify_icons_are_found_by_label_or_unicode_name(tmp_path):
    icons = _iconify(tmp_path, chars=False)
    assert icons.name_for({"hexcode": "1F600", "emoji": "\U0001F600", "label": "grinning face"}) == "grinning-face"
    # emojibase's label "grinning cat" differs; the Unicode name "CAT FACE" is tried next
    assert icons.name_for({"hexcode": "1F431", "emoji": "\U0001F431", "label": "cat"}) == "cat-face"
    assert icons.name_for({"hexcode": "1F449", "emoji": "\U0001F449",
                           "label": "backhand index pointing right"}) == "backhand-index-pointing-right"
    assert icons.name_for({"hexcode": "1F98A", "emoji": "\U0001F98A", "label": "fox"}) is None


def _cairosvg():
    """cairosvg, or a skip: it is a training-only extra and needs the system's libcairo."""
    try:
        import cairosvg
    except (ImportError, OSError) as err:  # cairocffi raises OSError when libcairo is missing
        pytest.skip(f"cairosvg unavailable: {err}")
    return cairosvg


def test_iconify_render_uses_the_view_box_and_mirrors_aliases(tmp_path):
    _cairosvg()
    icons = _iconify(tmp_path, chars=False)
    left = icons.render("backhand-index-pointing-left", size=32).convert("RGBA")
    right = icons.render("backhand-index-pointing-right", size=32).convert("RGBA")
    assert left.getpixel((4, 16))[:3] == (255, 0, 0) and left.getpixel((28, 16))[3] == 0
    assert right.getpixel((28, 16))[:3] == (255, 0, 0) and right.getpixel((4, 16))[3] == 0
    # the icon's own 32-unit view box: the 8-unit rectangle fills a quarter of the width
    cat = icons.render("cat-face", size=32).convert("RGBA")
    assert cat.getpixel((6, 4))[:3] == (255, 0, 0) and cat.getpixel((12, 4))[3] == 0


def test_an_icon_cairo_cannot_draw_is_skipped_with_its_name(tmp_path, monkeypatch, capsys):
    cairosvg = _cairosvg()
    icons = _iconify(tmp_path, chars=False)

    def out_of_memory(**kwargs):
        raise MemoryError("cairo returned CAIRO_STATUS_NO_MEMORY")

    monkeypatch.setattr(cairosvg, "svg2png", out_of_memory)
    assert icons.render("grinning-face") is None
    assert "skipped t:grinning-face: cairo returned CAIRO_STATUS_NO_MEMORY" in capsys.readouterr().err


def test_scorer_training_refuses_the_held_out_split(tmp_path):
    from training.pmg_mini.train_scorer import ScorerConfig, train

    with pytest.raises(SystemExit, match="heldout"):
        train(ScorerConfig(run=str(tmp_path / "run"), splits="train,heldout"))


def test_benchmark_train_users_become_composition_and_history_rows(tmp_path):
    """``train_generator --bench-examples``: the LLM's real keywords for a train user, paired with its
    ground-truth emoji at a composing ratio or with one of its history emoji at 4:0; users whose emoji
    are not in the training data are skipped."""
    import random

    from training.pmg_mini.bench_examples import emoji_key
    from training.pmg_mini.compose import EmojiIndex
    from training.pmg_mini.train_generator import bench_row, load_bench_examples

    metas = [{"hexcode": h, "label": lab, "tags": [], "group": "g", "subgroup": "s", "style": "noto", "split": "train"}
             for h, lab in (("1F63A", "grinning cat"), ("1F431", "cat face"), ("1F408", "cat"))]
    index = EmojiIndex(metas)
    assert emoji_key("../images/1F63A_noto.png") == ("1F63A", "noto")
    path = tmp_path / "bench.jsonl"
    path.write_text(json.dumps({"user_id": "u1", "target": ["happy", "smile"], "preference": ["cat", "noto style"],
                                "truth": ["1F63A", "noto"], "history": [["1F431", "noto"], ["1F408", "noto"]]}) + "\n"
                    + json.dumps({"user_id": "u2", "target": ["sad"], "preference": ["dog"], "truth": ["1F436", "noto"],
                                  "history": [["1F431", "noto"]]}) + "\n")
    rows = load_bench_examples(str(path), index)
    assert [r["user_id"] for r in rows] == ["u1"] and rows[0]["truth_row"] == 0 and rows[0]["history_rows"] == [1, 2]
    rng = random.Random(0)
    made = [bench_row(rows[0], rng) for _ in range(200)]
    compose = [m for m in made if m[3] == 0]
    history = [m for m in made if m[3] in (1, 2)]
    assert len(compose) + len(history) == 200 and 0.6 < len(compose) / 200 < 0.8
    assert all(m[0] == "happy, smile" and m[1] == "cat, noto style" for m in made)
    assert all(0.35 <= m[2][0] / (m[2][0] + m[2][1]) <= 0.65 for m in compose)  # (w_p, w_t) in the compose band
    assert all(m[2] == (1.0, 0.0) for m in history)
    garments = tmp_path / "garments.jsonl"  # a clothing benchmark's rows given to the emoji training
    garments.write_text(json.dumps({"user_id": "s0001", "target": ["tee"], "preference": ["red"],
                                    "truth_image": "t.png", "history_images": []}) + "\n")
    with pytest.raises(ValueError, match="'s0001'.*--dataset fashion"):
        load_bench_examples(str(garments), index)


def test_named_preference_windows_say_the_theme_as_the_keyword_stage_does():
    """``--p-named``: a simulated user's preference window carries the theme words the keyword stage finds
    without the LLM (a word the labels share; else the annotation words the items share), the art style
    and a few labels, never a theme word that only one item supports."""
    import random

    from training.pmg_mini.compose import EmojiIndex

    def meta(h, label, tags, sub):
        return {"hexcode": h, "label": label, "tags": tags, "group": "g", "subgroup": sub, "style": "noto", "split": "train"}

    metas = [meta("1F63A", "grinning cat", ["cat", "happy"], "cat"), meta("1F431", "cat face", ["cat", "pet"], "cat"),
             meta("1F408", "cat", ["pet"], "cat"), meta("2648", "aries", ["ram", "zodiac"], "zodiac"),
             meta("264C", "leo", ["lion", "zodiac"], "zodiac"), meta("2653", "pisces", ["fish", "zodiac"], "zodiac")]
    index = EmojiIndex(metas, p_named=1.0)
    assert index.shared_words(["1F63A", "1F431", "1F408"])[0] == "cat"
    zodiac = index.shared_words(["2648", "264C", "2653"])
    assert "zodiac" in zodiac and not {"ram", "lion", "fish"} & set(zodiac)
    rng = random.Random(0)
    windows = [index.preference_words("sub:zodiac", ["2648", "264C", "2653", "2648"], "noto", rng) for _ in range(200)]
    assert all(zodiac[0] in w for w in windows)  # the strongest theme word always ("constellation" with WordNet)
    assert sum("zodiac" in w for w in windows) / 200 > 0.5
    assert 0.8 < sum("noto style" in w for w in windows) / 200 < 0.97
    assert 0.5 < sum("aries" in w for w in windows) / 200 < 0.9  # the most used item's label, often
    plain = EmojiIndex(metas, p_named=0.0)  # the labels-and-tags windows
    assert all("aries" in plain.preference_words("sub:zodiac", ["2648"] * 4, "noto", rng) for _ in range(50))


def test_generator_learning_rate_warms_up_holds_and_decays():
    from training.pmg_mini.train_generator import TrainConfig, learning_rate

    flat = TrainConfig(lr=1e-3, warmup=100, steps=1000)
    assert learning_rate(flat, 0) == 1e-5 and learning_rate(flat, 99) == 1e-3 and learning_rate(flat, 999) == 1e-3
    decay = TrainConfig(lr=1e-3, warmup=100, steps=1000, decay_start=600)
    assert learning_rate(decay, 599) == 1e-3 and learning_rate(decay, 600) == 1e-3
    assert abs(learning_rate(decay, 800) - 0.5e-3) < 1e-12 and learning_rate(decay, 1000) < 1e-12


def test_scorer_attribute_weights_become_shares_or_name_the_bad_value():
    from training.pmg_mini.train_scorer import attribute_shares

    assert attribute_shares("2,0.5,0.5") == {"type": 2 / 3, "colour": 1 / 6, "pattern": 1 / 6}
    assert attribute_shares("1,1,1") == {"type": 1 / 3, "colour": 1 / 3, "pattern": 1 / 3}
    for bad in ("1,x,1", "1,1", "-1,1,1", "0,0,0"):
        with pytest.raises(SystemExit, match=f"got {bad!r}"):
            attribute_shares(bad)


def test_scorer_shop_lists_need_garments_and_a_share():
    from training.pmg_mini.train_scorer import ScorerConfig, shop_lists

    assert shop_lists(ScorerConfig()) is None
    assert len(shop_lists(ScorerConfig(fresh_garments="fm", image_tower="convnet", shop_lists=0.5))["type:coat"]) == 60
    for bad in (ScorerConfig(shop_lists=0.5), ScorerConfig(fresh_garments="fm", image_tower="convnet", shop_lists=1.5)):
        with pytest.raises(SystemExit, match=f"got {bad.shop_lists!r}"):
            shop_lists(bad)


def _emoji_data(folder, n=12):
    """A data folder in build_data's layout: images.npy and meta.jsonl, two held-out images."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    np.save(folder / "images.npy", rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8))
    labels = ["cat face", "dog face", "red heart"]
    with open(folder / "meta.jsonl", "w") as f:
        for i in range(n):
            f.write(json.dumps({"label": labels[i % 3], "tags": ["pet", "animal"][: i % 3], "style": ["noto", "twemoji"][i % 2],
                                "split": "heldout" if i >= n - 2 else "train"}) + "\n")
    return folder


def test_scorer_training_runs_exports_and_resumes(tmp_path, capsys, monkeypatch):
    """``train_scorer`` end to end on a tiny from-scratch tower: interrupted right after the step-2
    checkpoint, run again with the same config, it resumes there and finishes (log, metrics and the
    exported scorer agree)."""
    import training.pmg_mini.train_scorer as ts

    from pmg.scoring.mini_clip import MiniCLIP

    save = ts.torch_save_atomic

    def save_then_die(obj, path):
        save(obj, path)
        raise KeyboardInterrupt

    run = tmp_path / "run"
    cfg = ts.ScorerConfig(data=str(_emoji_data(tmp_path / "data")), run=str(run), image_tower="cnn", width=8, batch_size=4,
                          splits="train", steps=4, log_every=1, ckpt_every=2, threads=1)
    monkeypatch.setattr(ts, "torch_save_atomic", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        ts.train(cfg)
    assert not (run / "metrics.json").exists()
    monkeypatch.setattr(ts, "torch_save_atomic", save)
    ts.train(cfg)
    assert "resumed at step 2" in capsys.readouterr().out
    assert [int(r.split(",")[0]) for r in (run / "log.csv").read_text().splitlines()[1:]] == [1, 2, 3, 4]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["step"] == 4 and metrics["n_images"] == 2 and 0.0 <= metrics["label_top1"] <= metrics["label_top5"] == 1.0
    scorer = MiniCLIP.from_pretrained(run / "export" / "scorer")
    assert scorer.config.image_tower == "cnn" and scorer.config.width == 8


def test_emoji_catalogue_drops_flags_and_components_and_sorts_by_group(tmp_path):
    from training.pmg_mini.build_data import emoji_catalogue

    en = tmp_path / "en"
    en.mkdir()
    (en / "messages.json").write_text(json.dumps({
        "groups": [{"order": 0, "key": "smileys-emotion"}, {"order": 1, "key": "component"}, {"order": 2, "key": "flags"}],
        "subgroups": [{"order": 0, "key": "face-smiling"}, {"order": 1, "key": "face-sad"}]}))
    entries = [{"hexcode": "1F622", "group": 0, "subgroup": 1, "order": 5}, {"hexcode": "1F3FB", "group": 1, "subgroup": 0},
               {"hexcode": "1F1EB-1F1F7", "group": 2}, {"hexcode": "1F600", "group": 0, "subgroup": 0, "order": 1},
               {"hexcode": "1F601", "group": 0, "subgroup": 0, "order": 2}, {"hexcode": "1F47E"}]  # no group: dropped
    (en / "data.json").write_text(json.dumps(entries))
    data, groups, subgroups = emoji_catalogue(tmp_path)
    assert [e["hexcode"] for e in data] == ["1F600", "1F601", "1F622"]
    assert groups[0] == "smileys-emotion" and subgroups[1] == "face-sad"


def test_evaluate_shift_moves_the_sampling_steps_toward_high_noise():
    from diffusers import FlowMatchEulerDiscreteScheduler

    from training.pmg_mini.evaluate import shifted

    base = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000)
    s3 = shifted(base, 3.0)
    base.set_timesteps(10)
    s3.set_timesteps(10)
    plain, moved = base.sigmas[:-1], s3.sigmas[:-1]
    assert moved[0] == plain[0] == 1.0 and (moved.diff() < 0).all()
    # every later step sits at a higher noise level: 5 of 10 steps above 0.75 instead of 3
    assert (moved[1:] > plain[1:]).all() and (moved > 0.75).sum() == 5 and (plain > 0.75).sum() == 3
    assert base.config.shift == 1.0 and s3.config.shift == 3.0  # a copy: the original is left as it was


def _tiny_unet(channels, down, up, factor):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(len(channels))
    return UNet2DConditionModel(sample_size=32 // factor, in_channels=3 * factor**2, out_channels=3 * factor**2,
                                block_out_channels=channels, layers_per_block=1, down_block_types=down,
                                up_block_types=up, cross_attention_dim=16, attention_head_dim=4, norm_num_groups=8,
                                time_embedding_dim=64)


def test_deepen_puts_the_old_unet_inside_a_finer_level():
    """``train_generator --deepen``: a 16x16 U-Net's blocks become the inner levels of one with a
    32x32 level; the time MLP keeps the old features' even frequencies, the new level starts fresh."""
    from training.pmg_mini.train_generator import deepen_map, deepen_unet

    old = _tiny_unet([16, 16], ["DownBlock2D", "CrossAttnDownBlock2D"], ["CrossAttnUpBlock2D", "UpBlock2D"], 4)
    new = _tiny_unet([8, 16, 16], ["DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"],
                     ["CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"], 2)
    before = {k: v.clone() for k, v in new.state_dict().items()}
    copied, fresh = deepen_unet(old, new)
    so, sn = old.state_dict(), new.state_dict()
    assert deepen_map("down_blocks.1.attentions.0.proj_in.weight", 1) == "down_blocks.2.attentions.0.proj_in.weight"
    assert deepen_map("up_blocks.0.resnets.0.conv1.weight", 1) == "up_blocks.0.resnets.0.conv1.weight"
    # the old inner level, its cross-attention and the mid block are in the new U-Net unchanged
    for k in ["down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight", "mid_block.resnets.0.conv1.weight",
              "up_blocks.0.attentions.0.proj_out.weight", "time_embedding.linear_2.weight"]:
        assert torch.equal(sn[deepen_map(k, 1)], so[k]), k
    # 8 sinusoidal features are the old 16's frequencies 0, 2, 4, 6 (cos and sin halves)
    cols = [0, 2, 4, 6, 8, 10, 12, 14]
    assert torch.equal(sn["time_embedding.linear_1.weight"], so["time_embedding.linear_1.weight"][:, cols])
    # the new outer level and the convolutions into and out of pixels keep their fresh init
    for k in ["conv_in.weight", "conv_out.weight", "down_blocks.0.resnets.0.conv1.weight"]:
        assert torch.equal(sn[k], before[k]), k
    total = sum(v.numel() for v in sn.values())
    assert copied + fresh == total and 0 < fresh < copied
    out = new(torch.randn(1, 12, 16, 16), torch.tensor([500.0]), encoder_hidden_states=torch.randn(1, 3, 16)).sample
    assert out.shape == (1, 12, 16, 16) and torch.isfinite(out).all()


def test_deepen_refuses_inner_levels_that_do_not_match():
    from training.pmg_mini.train_generator import deepen_unet

    old = _tiny_unet([16, 16], ["DownBlock2D", "CrossAttnDownBlock2D"], ["CrossAttnUpBlock2D", "UpBlock2D"], 4)
    other = _tiny_unet([8, 8, 16], ["DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"],
                       ["CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"], 2)
    with pytest.raises(ValueError, match=r"cannot deepen \[16, 16\] into \[8, 8, 16\]"):
        deepen_unet(old, other)


def test_generator_extra_splits_add_other_styles_of_training_concepts_only(tmp_path):
    """``train_generator --extra-splits scorer``: the scorer's art sets join the plain captions after
    the training rows, for concepts the training split has; a concept seen only held out stays out."""
    from training.pmg_mini.train_generator import load_data

    rows = [("1F431", "noto", "train"), ("1F436", "noto", "train"), ("1F431", "blob", "scorer"),
            ("2B50", "blob", "scorer"), ("1F436", "twemoji", "heldout"), ("2B50", "twemoji", "heldout"),
            ("1F436", "fluent", "scorer")]
    folder = tmp_path / "data"
    folder.mkdir()
    np.save(folder / "images.npy", np.arange(len(rows), dtype=np.uint8)[:, None, None, None].repeat(8, 1).repeat(8, 2).repeat(3, 3))
    (folder / "meta.jsonl").write_text("".join(json.dumps({"hexcode": h, "style": s, "split": sp}) + "\n" for h, s, sp in rows))
    x, metas = load_data(str(folder), 8, extra_splits="scorer")
    assert [(m["hexcode"], m["style"]) for m in metas] == [("1F431", "noto"), ("1F436", "noto"), ("1F431", "blob"), ("1F436", "fluent")]
    assert torch.allclose((x[:, 0, 0, 0] + 1) * 127.5, torch.tensor([0.0, 1, 2, 6]), atol=1e-3)  # the rows' own images
    assert len(load_data(str(folder), 8)[1]) == 2
    for bad in ("heldout", "scorer,shop"):
        with pytest.raises(ValueError, match="extra splits"):
            load_data(str(folder), 8, extra_splits=bad)
