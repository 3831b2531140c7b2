"""The open-theme emoticon benchmark, WordNet theme naming, and the training side of held-out themes."""

import json
import random

import numpy as np
import pytest
import torch

from pmg.evaluation.benchmarks.open_themes import (build_open_theme_benchmark, ground_truth_emoji, names_theme,
                                                   open_subgroups, split_themes, theme_names)
from pmg.keywords.categories import WORDNET_DIR, WordNetNouns, theme_keywords


def _m(hexcode, label, subgroup, group="objects", tags=(), style="noto", split="train"):
    return {"hexcode": hexcode, "emoji": "x", "label": label, "tags": list(tags), "group": group, "subgroup": subgroup,
            "style": style, "split": split}


def test_ground_truth_is_the_mood_variant_then_shared_words_then_the_favourite():
    concepts = {m["hexcode"]: m for m in [
        _m("1F600", "grinning face", "face-smiling", "smileys-emotion"), _m("1F622", "crying face", "face-concerned", "smileys-emotion"),
        _m("A1", "grinning robot", "robots", tags=["grin"]), _m("A2", "robot arm", "robots", tags=["metal"]),
        _m("B1", "hammer", "tool", tags=["tool"]), _m("B2", "saw", "tool", tags=["cut", "sad"]), _m("B3", "wrench", "tool")]}
    usage = {"B1": 5.0, "B2": 1.0, "B3": 9.0}
    # the theme's own version of the mood: "grinning face" with "face" swapped for the subject
    assert ground_truth_emoji(["A1", "A2"], concepts, "happy", "Best day ever!", ["A2"], usage) == ("A1", "mood variant")
    # no variant: the member whose annotation shares the message's or the mood's words
    assert ground_truth_emoji(["B1", "B2", "B3"], concepts, "sad", "I miss her", ["B1"], usage) == ("B2", "shares the message's words")
    # nothing shared: the user's most used favourite (ties by overall usage)
    assert ground_truth_emoji(["B1", "B2", "B3"], concepts, "happy", "Yay", ["B1", "B3", "B1"], usage) == ("B1", "favourite")
    assert ground_truth_emoji(["B1", "B2", "B3"], concepts, "happy", "Yay", ["B1", "B3"], usage) == ("B3", "favourite")


def test_theme_names_and_naming():
    assert theme_names("hand-fingers-partial") == ["hand", "fingers"]
    assert theme_names("av-symbol") == []  # nothing a person would call the theme
    assert names_theme("musical instruments", theme_names("musical-instrument"))
    assert names_theme("sports", theme_names("person-sport"))
    assert not names_theme("twemoji style", theme_names("tool"))
    assert not names_theme("toolbox", theme_names("tool"))  # whole words and their endings only
    assert names_theme("locked", ["lock"]) and names_theme("musical", ["music"]) and not names_theme("key", ["lock"])


def test_themes_split_apart_and_deterministic():
    themes = [f"t{i}" for i in range(20)]
    a, b = split_themes(themes, 0), split_themes(list(reversed(themes)), 0)
    assert a == b and {k: len(v) for k, v in a.items()} == {"test": 3, "val": 3, "train": 14}
    assert not set(a["test"]) & set(a["val"]) and not set(a["test"]) & set(a["train"])
    assert split_themes(themes, 1) != a


def _tiny_art(root, n_themes=8):
    metas = [_m("1F600", "grinning face", "face-smiling", "smileys-emotion"), _m("1F63A", "grinning cat", "cat-face", "smileys-emotion")]
    metas += [_m("1F602", "face with tears of joy", "face-smiling", "smileys-emotion")]
    metas += [_m(f"{t:02X}{k:02X}", f"thing{t} item{k}", f"theme{t}-stuff", tags=[f"tag{k}"])
              for t in range(n_themes) for k in range(5)]
    rows = [dict(m, style=s) for m in metas for s in ("noto", "twemoji", "openmoji")]
    root.mkdir(parents=True, exist_ok=True)
    (root / "meta.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    np.save(root / "images.npy", np.random.default_rng(0).integers(0, 255, (len(rows), 8, 8, 3), dtype=np.uint8))
    return rows


def test_open_benchmark_users_by_theme_split_and_truth_in_style(tmp_path):
    rows = _tiny_art(tmp_path / "art")
    assert sorted(open_subgroups(rows)) == [f"theme{t}-stuff" for t in range(8)]  # the eight themes' subgroups are closed
    info = build_open_theme_benchmark(tmp_path / "art", tmp_path / "bench", n_users=40, seed=0)
    truth = json.loads((tmp_path / "bench" / "ground_truth.json").read_text())
    split = json.loads((tmp_path / "bench" / "split.json").read_text())
    assert info["users"] == 40 and sum(info["split"].values()) == 40
    for name, ids in split.items():
        assert {truth[u]["theme"] for u in ids} <= set(info["themes"][name])  # a theme's users share its split
    for uid, t in truth.items():
        user = json.loads((tmp_path / "bench" / "users" / f"{uid}.json").read_text())
        assert 3 <= len(user["history"]) <= 8
        assert all(h["image"].endswith(f"_{t['style']}.png") for h in user["history"])
        assert (tmp_path / "bench" / t["target_image"]).is_file() and t["target_image"].endswith(f"_{t['style']}.png")
        assert t["theme_names"] == [t["theme"].split("-")[0], "stuff"]
    again = build_open_theme_benchmark(tmp_path / "art", tmp_path / "bench2", n_users=40, seed=0)
    assert again == info and (tmp_path / "bench2" / "ground_truth.json").read_text() == (tmp_path / "bench" / "ground_truth.json").read_text()


def tiny_wordnet(root):
    """Synsets with hypernym pointers, byte offsets as in WordNet's data.noun."""
    tree = [("entity", None), ("artifact", "entity"), ("tool", "artifact"), ("hand_tool", "tool"), ("hammer", "hand_tool"),
            ("saw", "hand_tool"), ("drill", "tool"), ("food", "entity"), ("pizza", "food"), ("gun_hammer", "artifact")]
    data, offsets = b"  1 licence header\n", {}
    for word, _ in tree:  # fixed-width lines: each offset is known before its line is written
        offsets[word] = len(data)
        data += b"x" * 60 + b"\n"
    lines = [b"  1 licence header\n"]
    for word, parent in tree:
        ptr = f"001 @ {offsets[parent]:08d} n 0000" if parent else "000"
        lines.append(f"{offsets[word]:08d} 06 n 01 {word} 0 {ptr} | g".ljust(60).encode() + b"\n")
    (root / "data.noun").write_bytes(b"".join(lines))
    senses = {"hammer": ["gun_hammer", "hammer"], "saw": ["saw"], "drill": ["drill"], "pizza": ["pizza"], "tool": ["tool"]}
    (root / "index.noun").write_text("  1 licence header\n" + "".join(
        f"{w} n {len(s)} 1 @ {len(s)} 0 {' '.join(f'{offsets[x]:08d}' for x in s)}  \n" for w, s in sorted(senses.items())))
    return WordNetNouns(root)


def test_theme_is_the_hypernym_most_items_share(tmp_path, monkeypatch):
    wn = tiny_wordnet(tmp_path)
    words, ups = wn.synset(wn.senses("saw")[0])
    assert words == ("saw",) and [wn.synset(u)[0] for u in ups] == [("hand_tool",)]
    import pmg.keywords.categories as cat

    monkeypatch.setattr(cat, "_name", lambda words: (words[0].replace("_", " "), 5.0))  # no word frequencies needed
    # hammer's second sense is the tool: any sense of a title's nouns counts, each title once
    assert theme_keywords(["hammer", "saw", "pizza"], wordnet=wn) == {"hand tool": 2 / 3, "tool": 2 / 3}
    assert theme_keywords(["hammer", "drill", "saw"], wordnet=wn, top_k=1) == {"tool": 1.0}
    # one item alone, or a share under 60%, names nothing; abstract hypernyms never
    assert theme_keywords(["hammer", "pizza", "food"], wordnet=wn) == {}
    assert theme_keywords(["pizza", "hammer"], wordnet=wn) == {}


@pytest.mark.skipif(not (WORDNET_DIR / "index.noun").is_file(), reason="Debian's wordnet-base is not installed")
def test_real_wordnet_themes_of_items_that_share_no_word():
    assert "tool" in theme_keywords(["hammer", "wrench", "screwdriver", "saw"])
    assert list(theme_keywords(["house", "castle", "stadium", "office building"])) == ["building"]
    assert list(theme_keywords(["t-shirt", "jeans", "dress", "scarf"]))[0] == "clothing"
    assert list(theme_keywords(["snake", "turtle", "lizard", "crocodile"])) == ["reptile"]
    assert theme_keywords(["hammer", "pizza", "cat face", "rocket"]) == {}  # nothing shared, nothing named
    # food, animals, plants stay category_keywords' words, not repeated here
    assert theme_keywords(["pizza", "banana", "shortcake"]) == {}


def test_annotation_keywords_only_from_keyword_lists():
    from pmg.keywords.categories import annotation_keywords

    texts = ["aries, ram, zodiac", "leo, lion, zodiac", "pisces, fish, zodiac", "taurus, bull, ox"]
    assert annotation_keywords(texts) == {"zodiac": 0.75}
    # prose is no annotation: nothing from film credits
    assert annotation_keywords(["Directed by Ridley Scott. Country: USA.", "Directed by Ang Lee. Country: USA."]) == {}
    assert annotation_keywords(["aries, ram, zodiac"]) == {}  # one item supports nothing
    # an item with one annotation or none still counts: "computer" in 4 of 6 items
    texts = ["electric, plug", "computer, desktop", "", "computer", "computer, laptop, pc", "computer, mouse"]
    assert annotation_keywords(texts) == {"computer": 4 / 6}
    assert annotation_keywords(["computer, desktop", "ram, zodiac"]) == {}  # half of two items is one item
    assert annotation_keywords(["", "computer"]) == {}


@pytest.mark.skipif(not (WORDNET_DIR / "index.noun").is_file(), reason="Debian's wordnet-base is not installed")
def test_a_vague_shared_word_is_named_precisely():
    marks = ["red exclamation mark", "red question mark", "white question mark", "double exclamation mark"]
    assert list(theme_keywords(marks, under="mark", top_k=1)) == ["punctuation"]
    # only kinds of the shared word: a cat is no kind of cat, a heart's other senses are not hearts
    assert theme_keywords(["grinning cat", "cat with tears of joy", "pouting cat"], under="cat") == {}
    assert theme_keywords(["red heart", "broken heart", "sparkling heart", "yellow heart"], under="heart") == {}


def test_held_out_themes_join_no_family_but_stay_targets():
    from training.pmg_mini.compose import EmojiIndex, sample_example

    metas = [_m("1F600", "grinning face", "face-smiling", "smileys-emotion", tags=["happy"])]
    metas += [_m(f"A{k}", f"tool{k}", "tool") for k in range(4)] + [_m(f"B{k}", f"lock{k}", "lock") for k in range(4)]
    index = EmojiIndex(metas, exclude_subgroups=frozenset({"lock"}))
    assert "sub:tool" in index.families and "sub:lock" not in index.families
    assert not {h for fam in index.families.values() for h in fam} & {f"B{k}" for k in range(4)}
    assert {f"B{k}" for k in range(4)} <= set(index.all)  # still drawn as targets and plain captions
    rng = random.Random(0)
    for _ in range(50):
        ex = sample_example(index, rng)
        if ex.band in ("favourite", "history"):
            assert not ex.hexcode.startswith("B")


def test_condition_pool_encodes_once_and_cycles_in_a_seeded_order(tmp_path):
    from training.pmg_mini.pool import ConditionPool

    rng = random.Random(0)
    calls = []

    def sample():
        return [("t", "p", (1.0, 1.0), rng.randrange(100)) for _ in range(4)]

    def encode(rows):
        calls.append(len(rows))
        t = 32 * (1 + len(calls) % 2)  # one or two windows
        return torch.full((len(rows), t, 6), float(len(calls))), torch.ones(len(rows), t)

    pool = ConditionPool.build(tmp_path / "pool", 5, sample, encode, windows=3, progress=False)
    assert len(calls) == 5 and (pool.n, pool.b, pool.t, pool.d) == (5, 4, 96, 6)
    seen = {int(pool.batch(s, seed=0)[0][0, 0, 0]) for s in range(5)}
    assert seen == {1, 2, 3, 4, 5}  # one pass visits every batch once
    ctx, mask, rows = pool.batch(0, seed=0)
    k = int(ctx[0, 0, 0])
    assert mask[0].sum() == 32 * (1 + k % 2) and ctx[0, mask[0] == 0].abs().sum() == 0  # padding masked and zero
    assert pool.order(0, 0) == pool.order(0, 0) != pool.order(1, 0)
    again = ConditionPool.build(tmp_path / "pool", 5, sample, encode, progress=False)  # reused, not re-encoded
    assert len(calls) == 5 and np.array_equal(again.rows, pool.rows)


def test_compact_checkpoint_round_trips_in_fp16(tmp_path):
    from training.pmg_mini.compact import load_compact, save_compact

    g = torch.Generator().manual_seed(0)
    unet = {"w": torch.randn(3, 4, generator=g), "b": torch.randn(4, generator=g)}
    ema = {k: v * 0.5 for k, v in unet.items()}
    path = save_compact(unet, ema, 1234, tmp_path / "r.safetensors", {"lr": 3e-4})
    u2, e2, step, cfg = load_compact(path)
    assert step == 1234 and cfg == {"lr": 3e-4}
    assert u2.keys() == unet.keys() and all(v.dtype == torch.float32 for v in u2.values())
    assert torch.allclose(u2["w"], unet["w"], atol=1e-3) and torch.allclose(e2["b"], ema["b"], atol=1e-3)
    assert not torch.equal(u2["w"], e2["w"])


def test_theme_named_extra_reads_the_preference_keywords():
    from types import SimpleNamespace

    from pmg.evaluation.extras import RecordContext, ThemeNamed, build_extras
    from pmg.scenarios import benchmark

    assert any(isinstance(e, ThemeNamed) for e in build_extras(benchmark("emoticons-open").extras))
    hook = ThemeNamed()

    def ctx(pref, variant="PMG", names=("tool",)):
        res = SimpleNamespace(keywords=SimpleNamespace(preference=pref))
        return RecordContext(None, None, res, {"theme_names": list(names), "theme": "tool"}, None, variant)

    apart = {"twemoji style": 0, "hammer": 1, "tools": 2, "tool": 3}
    hook.embed = lambda texts: torch.eye(4)[[apart[t] for t in texts]]  # no word is near another
    assert hook.record(ctx(["twemoji style", "tools"])) == {"theme_named": 1.0}
    assert hook.record(ctx(["twemoji style", "hammer"])) == {"theme_named": 0.0}
    hook.embed = lambda texts: torch.ones(len(texts), 4) / 2  # every word near the theme's
    assert hook.record(ctx(["twemoji style", "hammer"])) == {"theme_named": 1.0}
    assert hook.record(ctx(["tool"], variant="w/o keywords")) == {}
    assert hook.record(ctx(["tool"], names=())) == {}
    lines = hook.table([{"theme_named": 1.0}, {"theme_named": 0.0}], ["PMG"])
    assert "50.0" in lines[1]


def test_loading_the_art_closes_its_meta_file_and_references_share_the_loader(tmp_path):
    import gc
    import warnings

    from pmg.evaluation.benchmarks.emoticons import load_art
    from pmg.evaluation.extras import EmojiReferences

    rows = _tiny_art(tmp_path / "art")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        meta, images = load_art(tmp_path / "art")
        refs = EmojiReferences(tmp_path / "art")
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert len(meta) == len(rows) == len(images)
    assert sorted(refs.by_style) == ["noto", "openmoji", "twemoji"]


def test_table4_refuses_generation_options_it_would_ignore():
    from pmg.api import GenerationConfig
    from pmg.errors import ConfigError
    from pmg.evaluation.suite import EvalOptions

    EvalOptions(table=4, config=GenerationConfig(seed=3, num_inference_steps=4))  # seed and steps are used
    with pytest.raises(ConfigError, match="--alpha, --guidance"):
        EvalOptions(table=4, config=GenerationConfig(alpha=0.5, guidance_scale=2.0))
    EvalOptions(table=2, config=GenerationConfig(alpha=0.5))  # Table 2 takes them all


def test_wordnet_offset_past_the_end_is_an_error(tmp_path):
    wn = tiny_wordnet(tmp_path)
    with pytest.raises(ValueError, match="no synset line"):
        wn.synset(10_000_000)


def test_emoji_generator_trains_from_a_pool_holds_themes_out_and_resumes_compact(tmp_path, capsys):
    """``train_generator`` on tiny emoji art: conditions from a pool encoded once, a held-out theme, a
    compact fp16 checkpoint, and a new run resumed from it at the same step."""
    from pathlib import Path

    from training.pmg_mini.compact import load_compact, save_compact
    from training.pmg_mini.train_generator import TrainConfig, train

    _tiny_art(tmp_path / "art")
    unet_cfg = json.loads((Path(__file__).parents[1] / "training/pmg_mini/configs/unet.json").read_text())
    unet_cfg.update(block_out_channels=[32, 32, 32], norm_num_groups=8, attention_head_dim=4)
    (tmp_path / "unet.json").write_text(json.dumps(unet_cfg))
    common = dict(data=str(tmp_path / "art"), unet_config=str(tmp_path / "unet.json"), batch_size=4, warmup=2,
                  ckpt_every=2, export_every=2, log_every=1, threads=1, pool_batches=3, exclude_themes="theme0-stuff")
    train(TrainConfig(run=str(tmp_path / "a"), steps=2, **common))
    out = capsys.readouterr().out
    assert "1 themes held out of the simulated users: theme0-stuff" in out
    assert json.loads((tmp_path / "a/pool/info.json").read_text())["shape"][:3] == [3, 4, 96]
    ck = torch.load(tmp_path / "a/ckpt.pt", weights_only=False)
    compact = save_compact(ck["unet"], ck["ema"], ck["step"], tmp_path / "resume.safetensors")
    train(TrainConfig(run=str(tmp_path / "b"), steps=3, resume_compact=str(compact), **common))
    assert "at step 2 (a fresh optimiser)" in capsys.readouterr().out
    assert [int(r.split(",")[0]) for r in (tmp_path / "b/log.csv").read_text().splitlines()[1:]] == [3]
    unet_b, _, step_b, _ = load_compact(save_compact(*(torch.load(tmp_path / "b/ckpt.pt", weights_only=False)[k]
                                                        for k in ("unet", "ema", "step")), tmp_path / "b.safetensors"))
    assert step_b == 3 and not torch.equal(unet_b["conv_in.weight"], load_compact(compact)[0]["conv_in.weight"])
    # a finished run carried in the compact file becomes the layout the model export reads: the EMA, fp16
    from diffusers import UNet2DConditionModel

    from training.pmg_mini.compact import export_compact

    full = save_compact({}, ck["ema"], ck["step"], tmp_path / "c.safetensors", json.loads((tmp_path / "a/config.json").read_text()))
    assert full.stat().st_size < compact.stat().st_size * 0.6  # the EMA alone
    unet_c, ema_c, _, _ = load_compact(full)
    assert unet_c.keys() == ema_c.keys() and torch.equal(unet_c["conv_in.weight"], ema_c["conv_in.weight"])
    assert export_compact(full, tmp_path / "c") == 2
    from safetensors.torch import load_file

    assert json.loads((tmp_path / "c/export/unet/train_step.json").read_text()) == {"step": 2}
    stored = load_file(tmp_path / "c/export/unet/diffusion_pytorch_model.safetensors")
    assert stored["conv_in.weight"].dtype == torch.float16
    assert torch.equal(stored["conv_in.weight"], ck["ema"]["conv_in.weight"].half())
    exported = UNet2DConditionModel.from_pretrained(tmp_path / "c/export", subfolder="unet")
    assert list(exported.config.block_out_channels) == [32, 32, 32]


def test_emoji_generator_trains_with_image_prompts(tmp_path):
    """``--image-prompts``: each pooled row's pictures chosen once (the target's exemplar never the picture
    to learn; the user's history pictures in their style), a projection trained with the U-Net and exported
    where the model folder reads it."""
    from pathlib import Path

    from pmg.generation.image_prompts import load_image_projection
    from training.pmg_mini.train_generator import TrainConfig, load_data, train

    rows = _tiny_art(tmp_path / "art")
    for r in rows[:9]:  # a scorer-only (gallery) set for the faces
        rows.append(dict(r, style="fluent", split="scorer"))
    (tmp_path / "art/meta.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    np.save(tmp_path / "art/images.npy", np.random.default_rng(0).integers(0, 255, (len(rows), 8, 8, 3), dtype=np.uint8))
    unet_cfg = json.loads((Path(__file__).parents[1] / "training/pmg_mini/configs/unet.json").read_text())
    unet_cfg.update(block_out_channels=[32, 32, 32], norm_num_groups=8, attention_head_dim=4)
    (tmp_path / "unet.json").write_text(json.dumps(unet_cfg))
    scorer = Path(__file__).parents[1] / "models/pmg-mini/scorer"
    train(TrainConfig(run=str(tmp_path / "a"), steps=2, data=str(tmp_path / "art"), unet_config=str(tmp_path / "unet.json"),
                      batch_size=4, warmup=2, ckpt_every=2, export_every=2, log_every=1, threads=1, pool_batches=3,
                      image_prompts=True, scorer=str(scorer), image_tokens=2))
    slots = np.load(tmp_path / "a/pool/slots.npy")
    pooled = np.load(tmp_path / "a/pool/rows.npy")
    assert slots.shape == (3, 4, 4)
    _, metas = load_data(str(tmp_path / "art"), 8)
    key = {i: (r["hexcode"], r["style"]) for i, r in enumerate(rows)}
    for k in range(3):
        for b in range(4):
            if slots[k, b, 0] >= 0:  # the exemplar is never the picture to learn
                assert key[int(slots[k, b, 0])] != (metas[pooled[k, b]]["hexcode"], metas[pooled[k, b]]["style"])
    assert (slots[:, :, 0] >= 0).any()
    cfg, proj = load_image_projection(tmp_path / "a/export")
    assert (cfg.num_tokens, cfg.image_embed_dim, cfg.cross_attention_dim) == (2, 256, 384)
    assert "proj" in torch.load(tmp_path / "a/ckpt.pt", weights_only=False)
