"""Train soft preference embeddings through the frozen generator (paper section 3.3.2).

For each user the behaviour prompt is built from every history item but the last; the last item's
image is the supervision. E^P = [E_k ; E_m] conditions the frozen generator and the loss is its own
denoising loss on the noised image (latents if it has a VAE). Only the prefixes, the L token
embeddings and the mapper receive gradients. (Cross-attention has no positions over the context, so
[E_k ; E_m] and the paper's [E_m ; E_k] are the same condition.)

``target_ratio < 1`` (an option, not the paper's): the last item also gets its own target keywords and
the condition is the one PMG builds at that ratio, [w_t E_t ; w_p E_k ; w_p E_m]. What the target
keywords already say (for clothing, the garment type) need not be carried by E_m, which then learns
what the keywords miss of the user's taste instead of the last item itself.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pmg.behaviours.schema import UserBehaviours
from pmg.conditioning.encode import count_chunks, encode_prompts
from pmg.conditioning.weighting import normalize_weights
from pmg.errors import InputError
from pmg.generation.objective import denoising_loss, is_flow_matching
from pmg.io.atomic import torch_save_atomic
from pmg.soft.model import SoftPreferenceModel, behaviour_prompt

__all__ = ["SoftExample", "SoftTrainConfig", "build_examples", "split_users", "train_soft", "training_condition", "validation_loss"]


@dataclass
class SoftExample:
    user_id: str
    prompt: str
    keywords: list[str]
    image: torch.Tensor  # (3, S, S) in [-1, 1]
    target: list[str] = dataclasses.field(default_factory=list)  # the last item's own target keywords


@dataclass
class SoftTrainConfig:
    steps: int = 300
    batch_size: int = 8
    lr: float = 1e-3  # the paper's 1e-5 is for Llama-2-7B on a V100 for 12 h; small models on a CPU need more
    weight_decay: float = 0.0
    seed: int = 0
    log_every: int = 10
    val_every: int = 50
    ckpt_every: int = 50
    max_windows: int = 2
    keep_best: bool = True  # the adapter saved is the one with the lowest validation loss (early stopping)
    # r = w_p / (w_p + w_t) of the training condition: 1 = the paper's (preference only); < 1 adds the
    # last item's target keywords weighted as PMG weights them at that ratio
    target_ratio: float = 1.0

    def __post_init__(self):
        for name in ("steps", "batch_size", "log_every", "val_every", "ckpt_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 < self.target_ratio <= 1:
            raise ValueError(f"target_ratio must be in (0, 1], got {self.target_ratio}")


def _load_image(path: Path, size: int) -> torch.Tensor:
    im = Image.open(path).convert("RGBA")
    white = Image.new("RGBA", im.size, (255, 255, 255, 255))
    im = Image.alpha_composite(white, im).convert("RGB").resize((size, size), Image.LANCZOS)
    return torch.from_numpy(np.asarray(im, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1


def build_examples(users: list[UserBehaviours], keywords_fn, describe_fn, image_size: int,
                   n_items: int = 10, n_conversations: int = 1, principle: str = "") -> list[SoftExample]:
    """One example per user whose last history item has an image.

    Args:
        keywords_fn: user (history without the last item) -> preference keywords (the paper's E_k), or
            (preference, target) keywords, the target's being the last item's own.
        describe_fn: list of items -> list of behaviour texts (the same describer as inference).
    """
    out = []
    for u in users:
        if len(u.history) < 2:
            raise InputError(f"user {u.user_id!r}: soft-embedding training needs at least 2 history items")
        last = u.history[-1]
        if last.image is None:
            raise InputError(f"user {u.user_id!r}: the last history item ({last.title!r}) has no image to supervise with")
        past = u.model_copy(update={"history": u.history[:-1]}).recent(n_items, n_conversations)
        prompt = behaviour_prompt(describe_fn(past.history), list(past.conversations), principle)
        kws = keywords_fn(past)
        pref, target = kws if isinstance(kws, tuple) else (kws, [])
        out.append(SoftExample(u.user_id, prompt, list(pref), _load_image(last.image, image_size), list(target)))
    return out


def load_training_users(path: Path, split: str | None = None, limit: int | None = None) -> list[UserBehaviours]:
    """Users from a folder or JSONL file; with ``split``, only those ``PATH/../split.json`` lists."""
    import json

    from pmg.behaviours.schema import load_users

    users = load_users(path)
    if split:
        split_file = Path(path).parent / "split.json"
        if not split_file.is_file():
            raise InputError(f"--split {split}: {split_file} not found")
        keep = set(json.loads(split_file.read_text()).get(split, []))
        users = [u for u in users if u.user_id in keep]
    users = users[:limit] if limit else users
    if not users:
        raise InputError("no users to train on")
    return users


def examples_for_users(users: list[UserBehaviours], extractor, image_size: int, cache=None,
                       progress: bool = True, with_target: bool = False) -> list[SoftExample]:
    """One example per user: the behaviour text of all items but the last (described as the keyword
    stage describes them, cached), its preference keywords, and the last item's image; ``with_target``:
    also the last item's target keywords (the keyword stage run with the last item as the target)."""
    from pmg.behaviours.schema import Target
    from pmg.behaviours.to_text import ItemDescriber
    from pmg.keywords.templates import load_prompt_set

    describers: dict[str, ItemDescriber] = {}

    def describe(items, scenario):
        if scenario not in describers:
            describers[scenario] = ItemDescriber(extractor.llm, load_prompt_set(scenario), None, cache)
        return describers[scenario].describe(items)

    def keywords(past, last):
        """Preference keywords of ``past``; with ``with_target`` also the last item's target keywords."""
        if not with_target:
            return extractor(past).preference
        res = extractor(past.model_copy(update={"target": Target(item=last)}))
        return res.preference, res.target

    if progress:
        import sys

        from tqdm import tqdm

        users = tqdm(users, desc="users", unit="user", file=sys.stderr)
    examples = []
    for u in users:
        examples += build_examples([u], lambda past, last=u.history[-1]: keywords(past, last),
                                   lambda items, s=u.scenario.value: describe(items, s), image_size)
    return examples


def split_users(examples: list[SoftExample], val_fraction: float, seed: int) -> tuple[list, list]:
    """Held-out users for validation, chosen by a seeded shuffle."""
    idx = list(range(len(examples)))
    random.Random(seed).shuffle(idx)
    n_val = max(1, round(val_fraction * len(examples))) if val_fraction > 0 and len(examples) > 1 else 0
    val = {i for i in idx[:n_val]}
    return [e for i, e in enumerate(examples) if i not in val], [e for i, e in enumerate(examples) if i in val]


def _encode_keywords(pipe, examples: list[SoftExample], windows: int, field: str = "keywords") -> torch.Tensor:
    texts = [", ".join(getattr(e, field)) for e in examples]
    for e, t in zip(examples, texts):
        if count_chunks(pipe.tokenizer, t, pipe.window) > windows:
            raise InputError(f"user {e.user_id!r}: {field} need more than {windows} encoder windows")
    return encode_prompts(pipe.tokenizer, pipe.text_encoder, texts, num_chunks=windows, max_chunks=windows).to(pipe.dtype)


def _encode_targets(pipe, examples: list[SoftExample], cfg: SoftTrainConfig) -> torch.Tensor | None:
    """E_t of every example's target keywords (None for the paper's preference-only condition)."""
    if cfg.target_ratio >= 1:
        return None
    missing = [e.user_id for e in examples if not e.target]
    if missing:
        raise InputError(f"target_ratio {cfg.target_ratio} needs the last item's target keywords; users {missing[:3]} have none")
    return _encode_keywords(pipe, examples, 1, "target")


def training_condition(e_t: torch.Tensor | None, e_k: torch.Tensor, e_m: torch.Tensor | None, ratio: float) -> torch.Tensor:
    """The generator's context while training: [E_k ; E_m] (the paper's, ``e_t`` None), or PMG's own
    condition at r = ``ratio``: [w_t E_t ; w_p E_k ; w_p E_m] with max(w_p, w_t) = 1."""
    if e_t is None:
        return e_k if e_m is None else torch.cat([e_k, e_m], 1)
    w_p, w_t = normalize_weights(ratio, 1 - ratio)
    return torch.cat([w_t * e_t, w_p * e_k] + ([] if e_m is None else [w_p * e_m]), 1)


def _fixed_noise(pipe, n: int, seed: int):
    """Noise and noise levels fixed per validation example, so losses compare across runs."""
    g = torch.Generator().manual_seed(seed)
    shape = (n, pipe.codec.latent_channels, pipe.codec.latent_size, pipe.codec.latent_size)
    noise = torch.randn(shape, generator=g)
    if is_flow_matching(pipe.scheduler):
        return noise, {"sigmas": torch.linspace(0.1, 0.9, n)[torch.randperm(n, generator=g)]}
    t = torch.randint(0, pipe.scheduler.config.num_train_timesteps, (n,), generator=g)
    return noise, {"timesteps": t}


@torch.no_grad()
def validation_loss(model: SoftPreferenceModel | None, pipe, examples: list[SoftExample], windows: int,
                    seed: int = 1234, repeats: int = 4, batch: int = 16, target_ratio: float = 1.0) -> float:
    """Mean denoising loss on held-out users; ``model=None`` conditions on the keywords alone."""
    if not examples:
        return float("nan")
    total, count = 0.0, 0
    for r in range(repeats):
        for i in range(0, len(examples), batch):
            ex = examples[i : i + batch]
            e_k = _encode_keywords(pipe, ex, windows)
            e_t = None if target_ratio >= 1 else _encode_keywords(pipe, ex, 1, "target")
            e_m = None if model is None else model([e.prompt for e in ex]).to(pipe.dtype)
            cond = training_condition(e_t, e_k, e_m, target_ratio)
            lat = pipe.codec.encode(torch.stack([e.image for e in ex]).to(pipe.device, pipe.dtype))
            noise, kw = _fixed_noise(pipe, len(ex), seed + 1000 * r + i)
            loss = denoising_loss(pipe.unet, pipe.scheduler, lat, cond, noise=noise.to(lat), reduction="none", **kw)
            total, count = total + loss.sum().item(), count + len(ex)
    return total / count


def train_soft(model: SoftPreferenceModel, pipe, train: list[SoftExample], val: list[SoftExample],
               cfg: SoftTrainConfig, out_dir: str | Path, progress: bool = True) -> dict:
    """Train, checkpointing to ``out_dir/checkpoint.pt`` (resumed if present); save the adapter to
    ``out_dir`` and return the log (losses, validation losses at init / keywords alone / trained).

    With validation users and ``cfg.keep_best``, the adapter written is the one from the validation
    round with the lowest loss (``log["best_step"]``; ``model`` itself ends in the last state)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not train:
        raise InputError("no training users")
    pipe.unet.requires_grad_(False)
    pipe.text_encoder.requires_grad_(False)
    params = model.trainable_parameters()
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    e_k_all = _encode_keywords(pipe, train, cfg.max_windows)  # frozen text encoder: once
    e_t_all = _encode_targets(pipe, train + val, cfg)
    e_t_all = None if e_t_all is None else e_t_all[: len(train)]
    images = torch.stack([e.image for e in train])
    log = {"config": dataclasses.asdict(cfg), "soft_config": dataclasses.asdict(model.config), "loss": [], "val": []}
    ckpt = out_dir / "checkpoint.pt"
    trainable_names = [n for n, p in model.named_parameters() if p.requires_grad]
    step, log = _resume(ckpt, model, opt, gen, log)
    if step == 0:
        log["val_init"] = validation_loss(model, pipe, val, cfg.max_windows, target_ratio=cfg.target_ratio)
        log["val_keywords_only"] = validation_loss(None, pipe, val, cfg.max_windows, target_ratio=cfg.target_ratio)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc="train-soft", unit="step")
    model.train()
    t0 = time.time()
    while step < cfg.steps:
        loss = _train_step(model, pipe, train, (e_t_all, e_k_all, cfg.target_ratio), images, opt, params, gen, cfg.batch_size)
        step += 1
        log["loss"].append([step, loss.item()])
        if bar is not None:
            bar.update(1)
            if step % cfg.log_every == 0:
                bar.set_postfix(loss=f"{np.mean([l for _, l in log['loss'][-cfg.log_every:]]):.4f}")
        if val and (step % cfg.val_every == 0 or step == cfg.steps):
            model.eval()
            log["val"].append([step, validation_loss(model, pipe, val, cfg.max_windows, target_ratio=cfg.target_ratio)])
            if cfg.keep_best and log["val"][-1][1] <= min(v for _, v in log["val"]):
                model.save_pretrained(out_dir / "best")
                log["best_step"] = step
            model.train()
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            trainable = {k: v for k, v in model.state_dict().items() if k in trainable_names or k.startswith("llm.prompt_encoder")}
            torch_save_atomic({"trainable": trainable, "opt": opt.state_dict(), "rng": gen.get_state(), "step": step, "log": log}, ckpt)
    if bar is not None:
        bar.close()
    model.eval()
    log["seconds"] = log.get("seconds", 0) + time.time() - t0
    _write_adapter(model, out_dir, log, cfg.keep_best)
    return log


def _resume(ckpt: Path, model, opt, gen: torch.Generator, log: dict) -> tuple[int, dict]:
    """(step, log) from ``ckpt`` with the model's trainable weights, the optimiser and the RNG restored;
    (0, ``log``) without one."""
    if not ckpt.exists():
        return 0, log
    state = torch.load(ckpt, weights_only=False)
    model.load_state_dict(state["trainable"], strict=False)
    opt.load_state_dict(state["opt"])
    gen.set_state(state["rng"])
    return state["step"], state["log"]


def _train_step(model, pipe, train: list[SoftExample], encoded, images, opt, params, gen, batch_size: int) -> torch.Tensor:
    """One step of the generator's denoising loss on a batch of users' last item images;
    ``encoded`` = (E_t of every user or None, E_k of every user, target_ratio)."""
    e_t_all, e_k_all, ratio = encoded
    idx = torch.randint(0, len(train), (min(batch_size, len(train)),), generator=gen)
    e_m = model([train[i].prompt for i in idx.tolist()]).to(pipe.dtype)  # (B, L, D)
    cond = training_condition(None if e_t_all is None else e_t_all[idx], e_k_all[idx], e_m, ratio)
    lat = pipe.codec.encode(images[idx].to(pipe.device, pipe.dtype))
    loss = denoising_loss(pipe.unet, pipe.scheduler, lat, cond, generator=gen)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    return loss


def _write_adapter(model, out_dir: Path, log: dict, keep_best: bool) -> None:
    """The adapter folder: the best validation round's adapter (``keep_best``) or the last, and the log."""
    log["val_last"] = log["val"][-1][1] if log["val"] else None
    if keep_best and log.get("best_step") is not None and (out_dir / "best").is_dir():
        import shutil

        for f in (out_dir / "best").iterdir():  # the best adapter becomes the adapter folder's content
            dst = out_dir / f.name
            if f.is_dir():
                shutil.rmtree(dst, ignore_errors=True)
            shutil.move(str(f), dst)
        shutil.rmtree(out_dir / "best")
        log["val_trained"] = min(v for _, v in log["val"])
    else:
        log["val_trained"] = log["val_last"]
        model.save_pretrained(out_dir)
    (out_dir / "training_log.json").write_text(json.dumps(log, indent=1))
