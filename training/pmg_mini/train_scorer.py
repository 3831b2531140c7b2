"""Train pmg-mini's scorer/tagger (mini-CLIP) contrastively against frozen MiniLM sentence features.

Image tower ``alexnet`` (default): the frozen ImageNet AlexNet convolutions from the LPIPS weights and a
trained head; the frozen features of ``views`` augmented copies of every image are computed once
(cached in ``RUN/features.pt``), so a step only runs the head. ``cnn``: the small from-scratch CNN
of the first pmg-mini scorer.

Garments (``--fresh-garments FOLDER``, cnn tower): every step renders a new batch from all of
Fashion-MNIST's train shapes instead of reading the data folder's images (which still give the captions
and the held-out check).

Each image has a fixed set of caption variants (label, label + style, style alone, tags...); their
MiniLM features are computed once. The scorer trains on the ``"train"`` split and, by default, on the
scorer-only art styles (split ``"scorer"``, see ``build_data``); the held-out (concept, style) pairs
are never trained on. Captions with identical text in a batch count as positives of
every image they describe (so "twemoji style" does not fight itself).

    python -m training.pmg_mini.train_scorer --data data/pmg-mini --run runs/scorer --steps 3000
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pmg.scoring.mini_clip import MiniCLIP, MiniCLIPConfig, mean_pool
from pmg.generation.text_encoders import load_minilm
from pmg.io.atomic import torch_save_atomic
from training.pmg_mini.common import config_from_cli
from training.pmg_mini.train_generator import load_data, read_threads


@dataclass
class ScorerConfig:
    data: str = "data/pmg-mini"
    run: str = "runs/scorer"
    steps: int = 3000  # the shipped scorer
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    image_tower: str = "alexnet"  # or "cnn" / "convnet" (from scratch; garments: "convnet")
    width: int = 48  # cnn tower
    head_width: int = 512  # alexnet tower
    dropout: float = 0.0  # on the pooled image features
    image_size: int = 32  # images are resized to this (64 for garments: their shapes need the detail)
    tower_size: int = 128  # alexnet tower: input size the image is upsampled to
    views: int = 8  # alexnet tower: cached views per image (the first clean, the rest augmented)
    gray_p: float = 0.0  # share of augmented views turned to greyscale
    splits: str = "train,scorer"  # comma list of the data splits to train on ("heldout" is refused)
    fresh_garments: str = ""  # a Fashion-MNIST folder: every step renders new garments from its 60,000 train shapes
    # garments: share of the captions that are keyword lists as the keyword stage writes them for shop items
    # (``fashion.shop_keyword_lists``: a type's target lists, a colour and pattern's preference lists)
    shop_lists: float = 0.0
    attribute_loss: float = 0.0  # garments: weight of a cross-entropy over all types / colours / patterns by name
    attribute_weights: str = "1,1,1"  # their shares (type, colour, pattern); "2,0.5,0.5": type first (colour is easy)
    logit_scale_init: float = 2.659  # log of the starting temperature (CLIP's: log(1/0.07)); garments: log(50)
    seed: int = 0
    threads: int = 1
    log_every: int = 50
    ckpt_every: int = 250
    export_only: int = 0  # 1: export the latest checkpoint (and its metrics) without training


def caption_variants(m: dict) -> list[str]:
    if "captions" in m:  # garments (training.pmg_mini.fashion) carry their own
        return list(m["captions"])
    tags = m["tags"][:3]
    style = f"{m['style']} style"
    out = [m["label"], f"{m['label']}, {style}", style, ", ".join([m["label"], *tags, style])]
    if tags:
        out.append(", ".join(tags))
    return out


@torch.no_grad()
def sentence_features(tokenizer, encoder, texts: list[str], batch: int = 256) -> torch.Tensor:
    feats = []
    for i in range(0, len(texts), batch):
        tok = tokenizer(texts[i : i + batch], padding=True, truncation=True, max_length=64, return_tensors="pt")
        states = encoder(**tok).last_hidden_state
        feats.append(mean_pool(states, tok["attention_mask"]))
    return torch.cat(feats)


def augment(x: torch.Tensor, gen: torch.Generator, gray_p: float = 0.0) -> torch.Tensor:
    """Small shifts, blur and noise: generated images are softer than the art they imitate; with
    probability ``gray_p`` a copy loses its colour (the concept must be told by its shape too)."""
    b = x.shape[0]
    pad = F.pad(x, (2, 2, 2, 2), value=1.0)
    dx, dy = torch.randint(0, 5, (2,), generator=gen).tolist()
    x = pad[:, :, dy : dy + x.shape[2], dx : dx + x.shape[3]]
    blur = torch.rand(b, 1, 1, 1, generator=gen) < 0.3
    soft = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)
    x = torch.where(blur, 0.5 * x + 0.5 * soft, x)
    noise = (torch.rand(b, 1, 1, 1, generator=gen) < 0.3) * 0.08
    x = (x + noise * torch.randn(x.shape, generator=gen)).clamp(-1, 1)
    if gray_p > 0:
        luma = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True).expand_as(x)
        x = torch.where(torch.rand(b, 1, 1, 1, generator=gen) < gray_p, luma, x)
    return x


class FreshGarments:
    """Garment batches rendered on the fly (allowed combinations only, every Fashion-MNIST train shape):
    the 16 shapes per combination of a fixed data folder are too few for the types to generalise."""

    def __init__(self, mnist: str, image_size: int, seed: int):
        import random

        from pmg.evaluation.benchmarks.garments import load_fashion_mnist
        from training.pmg_mini.fashion import COLOUR_NAMES, CLASSES, PATTERNS, GarmentRenderer

        self.renderer = GarmentRenderer(*load_fashion_mnist(mnist, "train"))
        self.rng, self.image_size = random.Random(seed), image_size
        self.choices = (len(CLASSES), COLOUR_NAMES, PATTERNS)

    def __call__(self, n: int) -> tuple[torch.Tensor, list[list[str]], list]:
        from training.pmg_mini.fashion import Garment, garment_captions, is_heldout

        kinds, colours, patterns = self.choices
        garments = []
        while len(garments) < n:
            g = Garment(self.rng.randrange(kinds), self.rng.choice(colours), self.rng.choice(patterns))
            if not is_heldout(g.kind, g.colour, g.pattern):
                garments.append(g)
        x = torch.from_numpy(self.renderer(garments, self.rng)).permute(0, 3, 1, 2).float() / 127.5 - 1
        if x.shape[-1] != self.image_size:
            x = F.interpolate(x, size=self.image_size, mode="bilinear", antialias=True, align_corners=False)
        return x.clamp(-1, 1), [garment_captions(g) for g in garments], garments


def param_groups(model: MiniCLIP, weight_decay: float) -> list[dict]:
    """open_clip's split: no weight decay on the temperature, biases and norm gains (decayed with the
    weights, the temperature never left CLIP's start)."""
    trained = {id(p) for p in model.trainable_parameters()}
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if id(p) in trained:
            (no_decay if p.ndim < 2 or name == "logit_scale" else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def attribute_names() -> dict[str, list[str]]:
    """The words the held-out check asks about: every garment type, colour and pattern."""
    from pmg.evaluation.benchmarks.garments import CLASSES, COLOURS, PATTERN_WORDS, PATTERNS

    return {"type": list(CLASSES), "colour": sorted(COLOURS), "pattern": [PATTERN_WORDS[p][0] for p in PATTERNS]}


def attribute_shares(weights: str) -> dict[str, float]:
    """"type,colour,pattern" weights -> shares summing to 1."""
    try:
        w = [float(x) for x in weights.split(",")]
    except ValueError:
        w = []
    if len(w) != 3 or min(w) < 0 or sum(w) <= 0:
        raise SystemExit(f"--attribute-weights needs three non-negative numbers (type,colour,pattern), got {weights!r}")
    return {k: x / sum(w) for k, x in zip(("type", "colour", "pattern"), w)}


def attribute_targets(garments) -> dict[str, torch.Tensor]:
    from pmg.evaluation.benchmarks.garments import COLOURS, PATTERNS

    colours, patterns = sorted(COLOURS), list(PATTERNS)
    return {"type": torch.tensor([g.kind for g in garments]), "colour": torch.tensor([colours.index(g.colour) for g in garments]),
            "pattern": torch.tensor([patterns.index(g.pattern) for g in garments])}


@torch.no_grad()
def cached_views(model, x: torch.Tensor, cfg: ScorerConfig, path: Path) -> tuple[torch.Tensor, ...]:
    """Frozen-backbone features of ``cfg.views`` copies of every image (view 0 clean), fp16, cached on disk."""
    if path.exists():
        return torch.load(path)
    from tqdm import tqdm

    gen = torch.Generator().manual_seed(cfg.seed + 1)
    outs = []
    for v in tqdm(range(cfg.views), desc="frozen features", unit="view"):
        chunks = [model.backbone(augment(x[i : i + 64], gen, cfg.gray_p) if v else x[i : i + 64]) for i in range(0, len(x), 64)]
        outs.append([torch.cat(parts).half() for parts in zip(*chunks)])
    feats = tuple(torch.stack(parts) for parts in zip(*outs))  # each (views, N, ...)
    torch_save_atomic(feats, path)
    return feats


def clip_loss(img: torch.Tensor, txt: torch.Tensor, same_text: torch.Tensor, scale: torch.Tensor):
    """Symmetric InfoNCE with multi-positives: ``same_text[i, j]`` marks caption j as true for image i."""
    logits = scale.exp().clamp(max=100) * img @ txt.T
    target = same_text.float() / same_text.float().sum(1, keepdim=True)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target.T))


@torch.no_grad()
def attribute_accuracy(model, x, metas, tokenizer, encoder) -> dict:
    """Garments: is the right type / colour / pattern the nearest of its kind of caption?"""
    from pmg.evaluation.benchmarks.garments import CLASSES, COLOURS, PATTERN_WORDS, PATTERNS

    im = model.encode_image(x)
    out = {"n_images": len(metas)}
    for name, values, words in (("type", list(CLASSES), list(CLASSES)), ("colour", sorted(COLOURS), sorted(COLOURS)),
                                ("pattern", list(PATTERNS), [PATTERN_WORDS[p][0] for p in PATTERNS])):
        tf = model.encode_text_features(sentence_features(tokenizer, encoder, words))
        pred = (im @ tf.T).argmax(1)
        want = torch.tensor([values.index(m["kind" if name == "type" else name]) for m in metas])
        out[f"{name}_acc"] = (pred == want).float().mean().item()
    return out


@torch.no_grad()
def retrieval_top5(model, x, metas, tokenizer, encoder) -> dict:
    """Held-out images against the labels of all held-out concepts, and against the 3 styles."""
    if metas and "kind" in metas[0]:
        return attribute_accuracy(model, x, metas, tokenizer, encoder)
    labels = sorted({m["label"] for m in metas})
    lf = model.encode_text_features(sentence_features(tokenizer, encoder, labels))
    styles = ["noto style", "twemoji style", "openmoji style"]
    sf = model.encode_text_features(sentence_features(tokenizer, encoder, styles))
    im = model.encode_image(x)
    top5 = (im @ lf.T).topk(min(5, len(labels)), dim=1).indices
    want = torch.tensor([labels.index(m["label"]) for m in metas])
    style_pred = (im @ sf.T).argmax(1)
    style_want = torch.tensor([styles.index(f"{m['style']} style") for m in metas])
    return {
        "label_top5": (top5 == want[:, None]).any(1).float().mean().item(),
        "label_top1": (top5[:, 0] == want).float().mean().item(),
        "style_acc": (style_pred == style_want).float().mean().item(),
        "n_images": len(metas),
        "n_labels": len(labels),
    }


class CaptionIndex:
    """Every image's caption variants, their MiniLM features (computed once, cached in the run) and, when
    small enough (garments), the image x caption membership as a matrix: no Python loop per step."""

    def __init__(self, metas: list[dict], tokenizer, encoder, cache: Path, extra: tuple[str, ...] = ()):
        variants = [caption_variants(m) for m in metas]
        texts = sorted({t for v in variants for t in v} | set(extra))
        self.text_id = {t: i for i, t in enumerate(texts)}
        if cache.exists():
            self.feats = torch.load(cache)
        else:
            print(f"encoding {len(texts)} captions")
            self.feats = sentence_features(tokenizer, encoder, texts)
            torch.save(self.feats, cache)
        self.var_ids = [[self.text_id[t] for t in v] for v in variants]
        self.member = None
        if len(self.var_ids) * len(texts) <= 50_000_000:
            self.member = torch.zeros(len(self.var_ids), len(texts), dtype=torch.bool)
            for i, v in enumerate(self.var_ids):
                self.member[i, v] = True

    def same_text(self, idx: list[int], tids: torch.Tensor) -> torch.Tensor:
        """[i, j]: caption ``tids[j]`` is one of image ``idx[i]``'s variants."""
        if self.member is not None:
            return self.member[idx][:, tids]
        sets = [set(self.var_ids[i]) for i in idx]
        return torch.tensor([[t in s for t in tids.tolist()] for s in sets])


def fresh_captions(garments, caps: list[list[str]], gen, pools: dict | None = None, p_list: float = 0.0):
    """(one caption per garment, [i, j]: caption j is true for garment i). The caption is one of the
    garment's variants or, with probability ``p_list``, a shop keyword list of its type or of its colour and
    pattern (``pools``); every list of a garment's type and of its look counts as true for it."""
    from pmg.evaluation.benchmarks.garments import CLASSES

    pick = torch.randint(0, 1000, (len(caps),), generator=gen).tolist()
    keys = [(f"type:{CLASSES[g.kind]}", f"look:{g.colour}|{g.pattern}") for g in garments]
    listed = (torch.rand(len(caps), generator=gen) < p_list).tolist() if pools else [False] * len(caps)
    chosen = [pools[k[p % 2]][(p // 2) % len(pools[k[p % 2]])] if lst else c[p % len(c)]
              for c, p, k, lst in zip(caps, pick, keys, listed)]
    true = [set(c) | (set(pools[k[0]]) | set(pools[k[1]]) if pools else set()) for c, k in zip(caps, keys)]
    return chosen, torch.tensor([[t in s for t in chosen] for s in true])


def scorer_batch(model, cfg: ScorerConfig, gen, x, captions: CaptionIndex, cached, fresh, pools=None):
    """One batch: (image embeddings, caption ids, same-text matrix, garments or None). Fresh garments are
    rendered anew (captions: ``fresh_captions``); otherwise images are drawn from the data folder (their cached frozen features with the
    alexnet tower)."""
    if fresh is not None:  # new garments; caption j is true for image i if it is one of i's captions
        xb, caps, garments = fresh(cfg.batch_size)
        chosen, same = fresh_captions(garments, caps, gen, pools, cfg.shop_lists)
        tids = torch.tensor([captions.text_id[t] for t in chosen])
        return model.encode_image(augment(xb, gen, cfg.gray_p)), tids, same, garments
    idx = torch.randint(0, len(x), (cfg.batch_size,), generator=gen)
    pick = torch.randint(0, 1000, (cfg.batch_size,), generator=gen)
    tids = torch.tensor([captions.var_ids[i][p % len(captions.var_ids[i])] for i, p in zip(idx.tolist(), pick.tolist())])
    same = captions.same_text(idx.tolist(), tids)
    if cached is None:
        return model.encode_image(augment(x[idx], gen, cfg.gray_p)), tids, same, None
    view = torch.randint(0, cfg.views, (cfg.batch_size,), generator=gen)
    return model.encode_backbone_features(*(f[view, idx].float() for f in cached)), tids, same, None


def scorer_loss(model, cfg: ScorerConfig, img, txt, same, garments, names: dict, shares: dict) -> torch.Tensor:
    """The contrastive loss, plus (garments, ``attribute_loss``) every type, colour and pattern by name
    against each image: the held-out check's own question."""
    loss = clip_loss(img, txt, same, model.logit_scale)
    if names:
        scale = model.logit_scale.exp().clamp(max=100)
        for key, want in attribute_targets(garments).items():
            logits = scale * img @ model.encode_text_features(names[key]).T
            loss = loss + cfg.attribute_loss * shares[key] * F.cross_entropy(logits, want)
    return loss


def resume_scorer(ckpt_path: Path, model, opt, sched, gen) -> int:
    """Load the run's checkpoint into the model, optimiser, schedule and sampler; its step (0 if none)."""
    if not ckpt_path.exists():
        return 0
    ck = torch.load(ckpt_path, weights_only=False)
    model.load_state_dict(ck["model"]), opt.load_state_dict(ck["opt"]), sched.load_state_dict(ck["sched"])
    gen.set_state(ck["rng"])
    print(f"resumed at step {ck['step']}")
    return ck["step"]


def build_scorer(cfg: ScorerConfig, x: torch.Tensor, run: Path):
    """(mini-CLIP as configured, the cached frozen features of the alexnet tower or None)."""
    model = MiniCLIP(MiniCLIPConfig(image_size=cfg.image_size, image_tower=cfg.image_tower, width=cfg.width, head_width=cfg.head_width,
                                    tower_size=cfg.tower_size, dropout=cfg.dropout))
    model.logit_scale.data.fill_(cfg.logit_scale_init)  # a resumed run loads its own
    if cfg.image_tower != "alexnet":
        return model, None
    model.tower.load_imagenet_weights()
    return model, cached_views(model, x, cfg, run / "features.pt")


def shop_lists(cfg: ScorerConfig) -> dict[str, list[str]] | None:
    """The garment options checked; the shop keyword lists (``--shop-lists`` > 0, garments only), or None."""
    if cfg.fresh_garments and cfg.image_tower == "alexnet":
        raise SystemExit("--fresh-garments renders new images every step: use --image-tower cnn")
    if cfg.attribute_loss and not cfg.fresh_garments:
        raise SystemExit("--attribute-loss needs --fresh-garments")
    if not cfg.shop_lists:
        return None
    if not cfg.fresh_garments or not 0 < cfg.shop_lists <= 1:
        raise SystemExit(f"--shop-lists must be in (0, 1] and needs --fresh-garments, got {cfg.shop_lists!r}")
    from training.pmg_mini.fashion import shop_keyword_lists

    return shop_keyword_lists(seed=cfg.seed)


def load_scorer_data(cfg: ScorerConfig):
    """(train images, their metas, held-out images, their metas) from the data folder."""
    splits = [s for s in cfg.splits.split(",") if s]
    if not splits or "heldout" in splits:
        raise SystemExit(f"--splits must name training splits (not 'heldout'), got {cfg.splits!r}")
    parts = [load_data(cfg.data, cfg.image_size, s) for s in splits]
    return (torch.cat([p[0] for p in parts]), [m for p in parts for m in p[1]], *load_data(cfg.data, cfg.image_size, "heldout"))


def train(cfg: ScorerConfig) -> None:
    run = Path(cfg.run)
    run.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(read_threads(run, cfg.threads))
    torch.manual_seed(cfg.seed)
    x, metas, xv, mv = load_scorer_data(cfg)
    pools, shares = shop_lists(cfg), attribute_shares(cfg.attribute_weights)
    tokenizer, encoder = load_minilm()
    captions = CaptionIndex(metas, tokenizer, encoder, run / "text_features.pt", tuple(t for p in (pools or {}).values() for t in p))
    model, cached = build_scorer(cfg, x, run)
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps, pct_start=max(0.05, 2 / cfg.steps))
    gen = torch.Generator().manual_seed(cfg.seed)
    ckpt_path = run / "ckpt.pt"
    step = resume_scorer(ckpt_path, model, opt, sched, gen)
    n_train = sum(p.numel() for p in model.trainable_parameters())
    print(f"{len(x)} images, {n_train / 1e6:.2f}M trained parameters ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M in all)")
    if cfg.export_only:
        cfg = dataclasses.replace(cfg, steps=step)
    fresh = FreshGarments(cfg.fresh_garments, cfg.image_size, cfg.seed + step) if cfg.fresh_garments else None
    names = {k: sentence_features(tokenizer, encoder, v) for k, v in attribute_names().items()} if cfg.attribute_loss else {}
    with open(run / "log.csv", "a", newline="") as log_f:
        log = csv.writer(log_f)
        if log_f.tell() == 0:
            log.writerow(["step", "loss", "sec_per_step", "time"])
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, unit="step", mininterval=30)
        t0, losses = time.time(), []
        while step < cfg.steps:
            img, tids, same, garments = scorer_batch(model, cfg, gen, x, captions, cached, fresh, pools)
            loss = scorer_loss(model, cfg, img, model.encode_text_features(captions.feats[tids]), same, garments, names, shares)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step(), sched.step()
            step += 1
            losses.append(loss.item())
            bar.update(1)
            if step % cfg.log_every == 0:
                log.writerow([step, f"{np.mean(losses):.4f}", f"{(time.time() - t0) / len(losses):.3f}", int(time.time())])
                log_f.flush()
                bar.set_postfix(loss=f"{np.mean(losses):.3f}")
                t0, losses = time.time(), []
            if step % cfg.ckpt_every == 0 or step == cfg.steps:
                torch_save_atomic({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                                   "step": step, "rng": gen.get_state()}, ckpt_path)
                if fresh is not None:  # garments: held-out composition accuracy as it trains
                    model.eval()
                    bar.write(f"step {step}: {json.dumps(retrieval_top5(model, xv, mv, tokenizer, encoder))}")
                    model.train()
        bar.close()
    model.eval()
    metrics = {**retrieval_top5(model, xv, mv, tokenizer, encoder), "step": step}
    print(json.dumps(metrics, indent=2))
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    model.save_pretrained(run / "export" / "scorer")


def main() -> None:
    train(config_from_cli(ScorerConfig, __doc__))


if __name__ == "__main__":
    main()
