"""The clothing scenario offline: garment rendering, the POG-format benchmark, the fashion training source."""

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pytest

from pmg.evaluation.benchmarks.clothing import build_clothing_benchmark
from pmg.evaluation.benchmarks.garments import (
    CLASS_WORDS, CLASSES, COLOURS, PATTERN_WORDS, PATTERNS, caption, load_fashion_mnist, render_garment,
)


def _write_idx(path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes())


@pytest.fixture
def mnist(tmp_path):
    """A Fashion-MNIST-format folder: blobs of a different size per class (train 200, test 50)."""
    d = tmp_path / "fmnist"
    d.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 200), ("t10k", 50)):
        labels = np.arange(n) % 10
        y, x = np.mgrid[0:28, 0:28]
        imgs = np.stack([(((y - 14) ** 2 + (x - 14) ** 2) < (4 + c) ** 2) * rng.integers(120, 255) for c in labels])
        _write_idx(d / f"{prefix}-images-idx3-ubyte.gz", imgs)
        _write_idx(d / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return d


def test_idx_reader_and_missing_data_message(mnist, tmp_path):
    x, y = load_fashion_mnist(mnist, "test")
    assert x.shape == (50, 28, 28) and y.tolist()[:3] == [0, 1, 2]
    with pytest.raises(Exception, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "nowhere")


def test_render_applies_colour_pattern_and_outline(mnist):
    x, _ = load_fashion_mnist(mnist)
    shape = x[9]  # the largest blob
    plain = render_garment(shape, "red", "plain").astype(int)
    inside = plain[24:40, 24:40].reshape(-1, 3).mean(0)
    assert inside[0] > 150 and inside[1] < 80 and inside[2] < 80  # red
    assert (plain[0, 0] == 255).all()  # white background
    for pattern in PATTERNS[1:]:
        patterned = render_garment(shape, "red", pattern).astype(int)
        assert (np.abs(patterned - plain).sum(-1) > 100).mean() > 0.03, pattern  # the pattern is drawn
    white = render_garment(shape, "white", "plain").astype(int)
    assert (white.sum(-1) < 400).sum() > 20  # the outline keeps a white garment visible
    assert caption("t-shirt", "red", "striped") == "a red striped t-shirt" and caption("bag", "orange", "plain") == "an orange bag"


def test_benchmark_is_deterministic_and_personal(mnist, tmp_path):
    a = build_clothing_benchmark(tmp_path / "a", n_users=40, seed=0, mnist=mnist)
    build_clothing_benchmark(tmp_path / "b", n_users=40, seed=0, mnist=mnist)
    assert a["split"] == {"val": 4, "test": 4, "train": 32}
    for f in ("ground_truth.json", "split.json", "users/s0007.json"):
        assert (tmp_path / "a" / f).read_text() == (tmp_path / "b" / f).read_text()
    truth = json.loads((tmp_path / "a" / "ground_truth.json").read_text())
    colour_words, in_colour = set(COLOURS), []
    for uid, t in truth.items():
        user = json.loads((tmp_path / "a" / "users" / f"{uid}.json").read_text())
        assert user["scenario"] == "clothing" and 6 <= len(user["history"]) <= 10
        title = user["target"]["item"]["title"].lower()
        assert not (set(title.split()) & colour_words)  # the target names no colour: it must come from the user
        assert not any(w in title for p in PATTERNS[1:] for w in PATTERN_WORDS[p])
        in_colour += [any(c in it["title"].lower().split() for c in t["colours"]) for it in user["history"]]
        assert (tmp_path / "a" / t["target_image"]).is_file() and t["colour"] == t["colours"][0]
    assert np.mean(in_colour) > 0.6  # histories mostly in the user's colours


def test_fashion_training_source_keeps_heldout_combinations_out():
    from training.pmg_mini.fashion import GarmentSource, is_heldout

    held = sum(is_heldout(k, c, p) for k in range(len(CLASSES)) for c in COLOURS for p in PATTERNS)
    assert 30 <= held <= 90  # about one combination in ten
    src, rng = GarmentSource(), random.Random(0)
    bands = {}
    for _ in range(2000):
        ex = src.sample(rng)
        if ex is None:
            continue
        g = ex.garment
        assert not is_heldout(g.kind, g.colour, g.pattern)
        assert 1 <= len(ex.target) <= 5 and len(ex.preference) <= 10
        bands[ex.band] = bands.get(ex.band, 0) + 1
        if ex.band == "compose":  # the composition: the target's type in the user's main colour
            assert g.colour in ex.preference and set(PATTERN_WORDS[g.pattern]) & set(ex.preference)
    assert set(bands) == {"target", "style", "compose", "favourite", "history"}


def test_shop_keyword_lists_name_their_type_or_look_and_are_fixed_by_seed():
    """The scorer's keyword lists (``--shop-lists``): a type's lists name it inside shop phrasing, a look's
    lists name its colour and a word of its pattern; the same seed gives the same pools."""
    from training.pmg_mini.fashion import shop_keyword_lists

    pools = shop_keyword_lists(per_key=20, seed=3)
    assert len(pools) == len(CLASSES) + len(COLOURS) * len(PATTERNS) and all(len(p) == 20 for p in pools.values())
    for kind in CLASSES:
        for text in pools[f"type:{kind}"]:
            assert any(w.replace("-", " ") in text.replace("-", " ") for w in CLASS_WORDS[kind]), (kind, text)
    for colour in COLOURS:
        for pattern in PATTERNS:
            for text in pools[f"look:{colour}|{pattern}"]:
                words = text.split(", ")
                assert colour in words and set(words) & set(PATTERN_WORDS[pattern]), (colour, pattern, text)
    lists = [t for p in pools.values() for t in p]
    assert any("," in t and len(t.split(", ")) >= 3 for t in lists)  # lists, not bare names
    assert shop_keyword_lists(per_key=20, seed=3) == pools and shop_keyword_lists(per_key=20, seed=4) != pools


def test_scorer_captions_mix_shop_lists_and_mark_every_true_one():
    """``fresh_captions``: without pools a garment's own caption variants (as before); with
    ``p_list = 1`` each caption is a list of the garment's type or look, and caption j counts as true for
    garment i exactly when it is one of i's variants or one of the lists of i's type or look."""
    import torch

    from training.pmg_mini.fashion import Garment, garment_captions, shop_keyword_lists
    from training.pmg_mini.train_scorer import fresh_captions

    garments = [Garment(7, "red", "striped"), Garment(7, "blue", "plain"), Garment(0, "red", "striped")]
    caps = [garment_captions(g) for g in garments]
    chosen, same = fresh_captions(garments, caps, torch.Generator().manual_seed(0))
    assert all(c in v for c, v in zip(chosen, caps))
    assert same.tolist() == [[c in set(v) for c in chosen] for v in caps]
    pools = shop_keyword_lists(per_key=10)
    chosen, same = fresh_captions(garments, caps, torch.Generator().manual_seed(0), pools, 1.0)
    own = [set(pools[f"type:{CLASSES[g.kind]}"]) | set(pools[f"look:{g.colour}|{g.pattern}"]) for g in garments]
    assert all(c in o for c, o in zip(chosen, own))
    assert same.tolist() == [[c in o or c in v for c in chosen] for o, v in zip(own, caps)]


def test_composition_check_selects_among_noises_as_pmg_does(tiny_pipe):
    """``evaluate_fashion.composed``: one noise gives the 2:2 image itself; with the model's noises, the one
    with the highest z = a log d_p + (1 - a) log d_t against the two windows (``PMG.generate``'s choice)."""
    import math

    import torch
    from helpers import ColourScorer

    from training.pmg_mini.evaluate_fashion import composed

    scorer, pixels = ColourScorer(), lambda im: np.asarray(im, dtype=int)
    images = tiny_pipe("blue tee", "red, striped", weights=[(2.0, 2.0)], noises=3, generator=torch.Generator().manual_seed(4)).images
    assert (pixels(composed(tiny_pipe, scorer, "blue tee", "red, striped", seed=4)) == pixels(images[0])).all()
    e = scorer.embed_images(images)
    t, p = scorer.embed_texts(["blue tee", "red, striped"])
    z = [0.3 * math.log(max(float(e[i] @ p), 1e-4)) + 0.7 * math.log(max(float(e[i] @ t), 1e-4)) for i in range(3)]
    best = composed(tiny_pipe, scorer, "blue tee", "red, striped", seed=4, noises=3, alpha=0.3)
    assert (pixels(best) == pixels(images[z.index(max(z))])).all()


def test_fashion_keep_type_dresses_the_target_at_three_to_one():
    """``keep_type`` (the shipped fine-tune): at 3:1 the target's type in the shopper's colour and
    pattern; without it, the shopper's favourite type (which is the target's only by chance)."""
    from training.pmg_mini.compose import ratio_band
    from training.pmg_mini.fashion import GarmentSource

    def favourites(keep_type):
        src, rng = GarmentSource(keep_type), random.Random(1)
        out = []
        while len(out) < 200:
            ex = src.sample(rng)
            if ex is not None and ex.band == "favourite":
                assert ratio_band(ex.r) == "favourite"
                named = any(w in ex.target for w in CLASS_WORDS[CLASSES[ex.garment.kind]])
                out.append((named, ex.garment.colour in ex.preference))
        return out

    kept, old = favourites(True), favourites(False)
    # the target window names the garment drawn (its class name or a synonym) nearly always with keep_type
    assert np.mean([n for n, _ in kept]) > 0.95 > np.mean([n for n, _ in old]) + 0.2
    assert np.mean([c for _, c in kept]) > 0.95  # and it is in the shopper's main colour


def test_fashion_band_shares_are_configurable_and_checked():
    from collections import Counter

    from training.pmg_mini.compose import BAND_PROBS, parse_band_probs
    from training.pmg_mini.fashion import GarmentSource

    assert parse_band_probs("") == BAND_PROBS
    probs = parse_band_probs("favourite=0.5, target=0")
    assert probs["favourite"] == 0.5 and probs["target"] == 0 and probs["compose"] == BAND_PROBS["compose"]
    for bad, msg in (("favorite=0.3", "band 'favorite' is not one of"), ("compose=lots", "'compose=lots' is not NAME=NUMBER"),
                     ("style=-1", "'style=-1' must be >= 0"),
                     ("target=0,style=0,compose=0,favourite=0,history=0", "sum to 0")):
        with pytest.raises(ValueError, match=msg):
            parse_band_probs(bad)
    from training.pmg_mini.train_generator import TrainConfig, batch_source

    with pytest.raises(ValueError, match="only --dataset fashion takes band shares"):
        batch_source(TrainConfig(dataset="emoji", band_probs="favourite=0.5"))
    src, rng = GarmentSource(True, band_probs=parse_band_probs("target=0,style=0,compose=1,favourite=1,history=0")), random.Random(3)
    bands = Counter(ex.band for ex in (src.sample(rng) for _ in range(400)) if ex is not None)
    assert set(bands) == {"compose", "favourite"} and 0.4 < bands["favourite"] / sum(bands.values()) < 0.6


def test_fashion_rich_words_name_the_type_inside_shop_phrases():
    """``rich_words``: target windows as the LLM writes them for shop items ("slim fit jeans",
    "classic t shirt", "weekend, relaxed"); the garment's type is still named in every window that
    shows the target."""
    from training.pmg_mini.fashion import OFF_TOPIC, GarmentSource

    src, rng = GarmentSource(keep_type=True, rich_words=True), random.Random(2)
    phrases = off_topic = n = 0
    for _ in range(600):
        ex = src.sample(rng)
        if ex is None or ex.band == "history":
            continue
        n += 1
        names = {w.replace("-", " ") for w in CLASS_WORDS[CLASSES[ex.garment.kind]]} | set(CLASS_WORDS[CLASSES[ex.garment.kind]])
        assert any(k == w or k.endswith(" " + w) for k in ex.target for w in names), (ex.target, ex.garment)
        phrases += any(" " in k and k.split(" ", 1)[1] in names and k not in names for k in ex.target)
        off_topic += bool(set(ex.preference) & set(OFF_TOPIC))
    assert n > 400 and 0.3 < phrases / n < 0.8 and 0.1 < off_topic / n < 0.5


def test_fashion_shop_words_cover_the_benchmark_vocabulary():
    """The training's shop words include every title extra and description word the clothing benchmark
    writes (the model card says so: shop text worded otherwise may gain less)."""
    from pmg.evaluation.benchmarks.clothing import DESCRIPTIONS, TITLE_EXTRAS
    from training.pmg_mini.fashion import SHOP_WORDS, TITLE_WORDS

    bench = {w for w in TITLE_EXTRAS if w} | {w.strip() for d in DESCRIPTIONS for w in d.split(",")}
    assert bench <= set(SHOP_WORDS)
    assert {w for w in TITLE_EXTRAS if w} <= set(TITLE_WORDS)


class _OracleScorer:
    """Reads a garment's attributes from the first pixel (type, colour, pattern indices, modulo their counts)."""

    name = "oracle"

    def __init__(self):
        from pmg.evaluation.benchmarks.garments import CLASSES, COLOURS, PATTERN_WORDS, PATTERNS

        self.words = list(CLASSES) + sorted(COLOURS) + [PATTERN_WORDS[p][0] for p in PATTERNS]

    def embed_images(self, images):
        import torch

        v = torch.zeros(len(images), len(self.words))
        for i, im in enumerate(images):
            t, c, p = im.getpixel((0, 0))
            v[i, t % 10] = v[i, 10 + c % 12] = v[i, 22 + p % 5] = 1.0
        return v

    def embed_texts(self, texts):
        import torch

        rows = [[1.0 if w == t or w in t.split(", ") else 0.01 for w in self.words] for t in texts]  # keyword lists: their words
        return torch.tensor(rows)


def test_garments_are_read_back_by_name():
    from PIL import Image

    from pmg.evaluation.benchmarks.garments import classify_garments

    images = [Image.new("RGB", (8, 8), (6, 11, 1)), Image.new("RGB", (8, 8), (0, 0, 4))]
    seen = classify_garments(_OracleScorer(), images)
    assert seen["type"] == ["shirt", "t-shirt"] and seen["colour"] == [sorted(COLOURS)[11], sorted(COLOURS)[0]]
    assert seen["pattern"] == [PATTERNS[1], PATTERNS[4]]


def test_clothing_eval_reports_colour_pattern_and_type(mnist, tmp_path, tiny_pipe):
    from helpers import ScriptedLLM

    from pmg.api import PMG, GenerationConfig
    from pmg.evaluation.run import evaluate_split, write_tables
    from pmg.keywords.extract import KeywordExtractor

    bench = tmp_path / "bm"
    build_clothing_benchmark(bench, n_users=40, seed=0, mnist=mnist)
    llm = ScriptedLLM(lambda t: "shirt; 2. top" if "item" in t.lower() and "liked" not in t.lower() else "red; 2. striped")
    pmg = PMG(KeywordExtractor(llm), tiny_pipe, _OracleScorer())
    records = evaluate_split(pmg, bench, "test", GenerationConfig(num_inference_steps=1), progress=False)
    truth = json.loads((bench / "ground_truth.json").read_text())
    assert records and all(r["garment_colour_ok"] == float(r["garment_seen"]["colour"] == truth[r["user_id"]]["colour"])
                           for r in records)
    # PMG's records also carry the reading of the real target image (white corner: the oracle reads type 255 % 10)
    pmg_rows = [r for r in records if r["variant"] == "PMG"]
    assert all("garment_truth" not in r for r in records if r["variant"] != "PMG")
    assert [r["garment_truth"]["garment_type_ok"] for r in pmg_rows] == [
        float(truth[r["user_id"]]["type"] == CLASSES[255 % 10]) for r in pmg_rows]
    table = write_tables(records, tmp_path / "res", bench)
    assert "user's main colour" in table and "target's type" in table
    truth_row = next(line for line in table.splitlines() if line.startswith("| ground truth (real garment) |"))
    share = 100 * np.mean([r["garment_truth"]["garment_type_ok"] for r in pmg_rows])
    assert truth_row.split(" | ")[-1].startswith(f"{share:.1f} [")  # the last column: the target's type


def test_fashion_generator_training_runs_exports_and_resumes(mnist, tmp_path, capsys):
    """``train_generator --dataset fashion`` end to end on a tiny U-Net: two steps, a checkpoint, an
    fp16 export, then a resumed third step that continues from the checkpoint (log and export say 3)."""
    from training.pmg_mini.train_generator import TrainConfig, train

    unet_cfg = json.loads((Path(__file__).parents[1] / "training/pmg_mini/configs/unet.json").read_text())
    unet_cfg.update(block_out_channels=[32, 32, 32], norm_num_groups=8, attention_head_dim=4)
    cfg_path = tmp_path / "unet.json"
    cfg_path.write_text(json.dumps(unet_cfg))
    run = tmp_path / "run"
    common = dict(dataset="fashion", data=str(mnist), run=str(run), unet_config=str(cfg_path), batch_size=4,
                  warmup=1, ckpt_every=2, export_every=2, log_every=1, keep_type=True, rich_words=True, threads=1)
    train(TrainConfig(steps=2, **common))
    assert json.loads((run / "export/unet/train_step.json").read_text()) == {"step": 2}
    from safetensors.torch import load_file

    weights = load_file(run / "export/unet/diffusion_pytorch_model.safetensors")
    assert {str(t.dtype) for t in weights.values()} == {"torch.float16"}
    train(TrainConfig(steps=3, **common))
    assert "resumed from" in capsys.readouterr().out
    steps = [int(line.split(",")[0]) for line in (run / "log.csv").read_text().splitlines()[1:]]
    assert steps == [1, 2, 3]
    assert json.loads((run / "export/unet/train_step.json").read_text()) == {"step": 3}
    assert json.loads((run / "config.json").read_text())["keep_type"] is True


def test_clothing_train_shoppers_become_generator_examples(mnist, tmp_path):
    """``bench_examples`` on a clothing benchmark: a train shopper's real keywords with the paths of its
    ground truth and history garments; another benchmark's val/test users are excluded. In training
    (``ShopperExamples``, ``compose_fashion`` with ``p_bench``) the truth is drawn at 0:4 or at a ratio
    the model grid composes at, a history garment at 4:0, each with its own loaded image."""
    from types import SimpleNamespace

    from pmg.behaviours.schema import load_user
    from training.pmg_mini.bench_examples import example_row, held_out_ids
    from training.pmg_mini.fashion import GarmentRenderer, GarmentSource, ShopperExamples
    from training.pmg_mini.train_generator import TrainConfig, compose_fashion

    bench = tmp_path / "bench"
    build_clothing_benchmark(bench, n_users=20, seed=0, mnist=mnist)
    split = json.loads((bench / "split.json").read_text())
    assert held_out_ids([bench]) == set(split["val"]) | set(split["test"])
    truth = json.loads((bench / "ground_truth.json").read_text())
    uid = split["train"][0]
    user = load_user(bench / "users" / f"{uid}.json")
    kw = SimpleNamespace(target=["casual sneakers", "everyday"], preference=["red", "striped", "plants"])
    row = example_row(uid, user, kw, truth[uid], bench)
    assert Path(row["truth_image"]) == (bench / truth[uid]["target_image"]).resolve()
    assert len(row["history_images"]) == len(user.recent().history) and all(Path(p).is_file() for p in row["history_images"])
    empty = {**row, "user_id": "x", "target": []}  # a shopper the LLM gave no target keywords is skipped
    path = tmp_path / "shoppers.jsonl"
    path.write_text(json.dumps(row) + "\n" + json.dumps(empty) + "\n")
    shoppers = ShopperExamples(path, size=64)
    assert [r["user_id"] for r in shoppers.rows] == [uid]
    rng = random.Random(0)
    made = [shoppers.sample(rng) for _ in range(300)]
    assert all(m[0] == "casual sneakers, everyday" and m[1] == "red, striped, plants" for m in made)
    truth_image = shoppers.images[row["truth_image"]]
    target = [m for m in made if m[2] == 0.0]
    history = [m for m in made if m[2] == 1.0]
    compose = [m for m in made if 0 < m[2] < 1]
    assert 0.08 < len(target) / 300 < 0.22 and 0.13 < len(history) / 300 < 0.27
    assert all(0.35 <= m[2] <= 0.9 for m in compose)
    assert all(m[3] is truth_image for m in target + compose)
    assert all(any(m[3] is shoppers.images[p] for p in row["history_images"]) for m in history)
    assert truth_image.shape == (64, 64, 3) and truth_image.dtype == np.uint8

    cfg = TrainConfig(dataset="fashion", batch_size=8, p_uncond=0.0, p_plain=0.0, p_bench=0.5)
    renderer = GarmentRenderer(*load_fashion_mnist(mnist, "train"))
    rows, x = compose_fashion(GarmentSource(), renderer, random.Random(1), cfg, shoppers)
    assert x.shape == (8, 3, 64, 64) and len(rows) == 8
    mine = [i for i, r in enumerate(rows) if r[0] == "casual sneakers, everyday"]
    assert 0 < len(mine) < 8  # a mix of real shoppers and simulated ones
    loaded = [(np.asarray(im, dtype=np.float32) / 127.5 - 1) for im in shoppers.images.values()]
    for i in mine:
        img = x[i].permute(1, 2, 0).numpy()
        assert any(np.allclose(img, ref, atol=1e-6) for ref in loaded)
    with pytest.raises(ValueError, match="no clothing rows"):
        ShopperExamples(_write(tmp_path / "e.jsonl", empty), size=64)


def _write(path: Path, row: dict) -> Path:
    path.write_text(json.dumps(row) + "\n")
    return path
