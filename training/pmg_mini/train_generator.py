"""Train pmg-mini's text-to-image generator on the emoji-art data set.

Recipe (why, in short; see models/pmg-mini/README.md for the numbers):
* pixel space, 32 px, 2x2 space-to-depth -> 16x16x12: no VAE to train, the U-Net sees a small grid;
* rectified flow (velocity target, logit-normal noise levels): one network evaluation per Euler step,
  straight paths, good samples in ~20 steps, and it trained fastest in the trial;
* frozen MiniLM token states (384-d, 32-token windows) as cross-attention context;
* captions composed on the fly from label, tags and art style, sometimes split into two encoded
  windows (as PMG concatenates target and preference windows) and with windows zeroed (as weight 0
  does); 10% empty captions for classifier-free guidance;
* EMA of the weights for sampling.

    python -m training.pmg_mini.train_generator --data data/pmg-mini --run runs/gen --steps 20000

Resumes from ``RUN/ckpt.pt`` when present; ``--init-from models/pmg-mini`` starts from shipped
weights on a fresh machine. ``RUN/threads`` (a number in a file) changes torch's thread count live.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pmg.conditioning.encode import encode_prompts
from pmg.generation.codec import PixelShuffleCodec
from pmg.generation.objective import denoising_loss
from pmg.generation.text_encoders import load_minilm
from pmg.io.atomic import torch_save_atomic
from training.pmg_mini.common import config_from_cli

HERE = Path(__file__).parent


@dataclass
class TrainConfig:
    data: str = "data/pmg-mini"
    run: str = "runs/gen"
    unet_config: str = str(HERE / "configs" / "unet.json")
    init_from: str | None = None
    image_size: int = 32
    steps: int = 20000
    batch_size: int = 32
    lr: float = 6e-4
    warmup: int = 200
    weight_decay: float = 0.01
    ema_decay: float = 0.999
    p_uncond: float = 0.1
    p_two_windows: float = 0.5
    p_zero_window: float = 0.1
    seed: int = 0
    threads: int = 1
    log_every: int = 25
    ckpt_every: int = 200
    export_every: int = 1000


# ----------------------------------------------------------------------------- data


def load_data(folder: str, image_size: int, split: str = "train"):
    images = np.load(Path(folder) / "images.npy")
    meta = [json.loads(line) for line in open(Path(folder) / "meta.jsonl")]
    keep = [i for i, m in enumerate(meta) if m["split"] == split]
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


def compose(metas: list[dict], rng: random.Random, cfg: TrainConfig) -> tuple[list[list[str]], int]:
    """Captions for a batch: one window each, or two windows (concept | style) per sample."""
    two = rng.random() < cfg.p_two_windows
    out = []
    for m in metas:
        what, style = caption_parts(m, rng)
        if rng.random() < cfg.p_uncond:
            out.append([""] * (2 if two else 1))
        elif not two:
            out.append([", ".join(what + style)])
        else:
            k = rng.randint(1, len(what))  # some concept words may travel with the style window
            a, b = ", ".join(what[:k]), ", ".join(style + what[k:])
            out.append([a, b] if rng.random() < 0.5 else [b, a])
    return out, (2 if two else 1)


def encode_batch(tokenizer, encoder, captions: list[list[str]], rng: random.Random, cfg: TrainConfig):
    n_win = len(captions[0])
    flat = [c for cap in captions for c in cap]
    states = encode_prompts(tokenizer, encoder, flat, num_chunks=1, max_chunks=1)  # (B*n, L, D)
    b, L, d = len(captions), states.shape[1], states.shape[2]
    states = states.view(b, n_win, L, d)
    if n_win > 1:
        keep = torch.tensor([[rng.random() >= cfg.p_zero_window for _ in range(n_win)] for _ in range(b)])
        states = states * keep.view(b, n_win, 1, 1)
    return states.reshape(b, n_win * L, d)


# ----------------------------------------------------------------------------- model


def build_unet(config_path: str, init_from: str | None = None):
    from diffusers import UNet2DConditionModel

    if init_from:
        unet = UNet2DConditionModel.from_pretrained(init_from, subfolder="unet", torch_dtype=torch.float32)
    else:
        unet = UNet2DConditionModel.from_config(json.loads(Path(config_path).read_text()))
    return unet.float()


@torch.no_grad()
def ema_update(ema, model, decay: float) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm, 1 - decay)


def export(ema, run: Path, step: int) -> None:
    """EMA weights in diffusers layout, fp16, ready to copy into models/pmg-mini/unet."""
    out = run / "export" / "unet"
    tmp = run / "export" / "unet.tmp"
    half = copy.deepcopy(ema).half()
    half.save_pretrained(tmp, safe_serialization=True)
    (tmp / "train_step.json").write_text(json.dumps({"step": step}))
    if out.exists():
        import shutil

        shutil.rmtree(out)
    os.replace(tmp, out)


def read_threads(run: Path, default: int) -> int:
    try:
        return max(1, int((run / "threads").read_text().strip()))
    except (OSError, ValueError):
        return default


# ----------------------------------------------------------------------------- loop


def train(cfg: TrainConfig) -> None:
    run = Path(cfg.run)
    run.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(read_threads(run, cfg.threads))
    torch.manual_seed(cfg.seed)
    from diffusers import FlowMatchEulerDiscreteScheduler

    x, metas = load_data(cfg.data, cfg.image_size)
    codec = PixelShuffleCodec(factor=2, image_size=cfg.image_size)
    tokenizer, encoder = load_minilm()
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    unet = build_unet(cfg.unet_config, cfg.init_from)
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    step, rng, gen = 0, random.Random(cfg.seed), torch.Generator().manual_seed(cfg.seed)
    ckpt_path = run / "ckpt.pt"
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, weights_only=False)
        unet.load_state_dict(ck["unet"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        step = ck["step"]
        rng.setstate(ck["py_rng"])
        gen.set_state(ck["torch_rng"])
        print(f"resumed from {ckpt_path} at step {step}")
    (run / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    n_params = sum(p.numel() for p in unet.parameters())
    print(f"{len(x)} images, U-Net {n_params / 1e6:.1f}M parameters, {torch.get_num_threads()} threads")

    log_f = open(run / "log.csv", "a", newline="")
    log = csv.writer(log_f)
    if log_f.tell() == 0:
        log.writerow(["step", "loss", "lr", "sec_per_step", "threads", "time"])
    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=step, unit="step", mininterval=30)
    unet.train()
    t0, losses = time.time(), []
    while step < cfg.steps:
        idx = torch.randint(0, len(x), (cfg.batch_size,), generator=gen)
        captions, _ = compose([metas[i] for i in idx.tolist()], rng, cfg)
        cond = encode_batch(tokenizer, encoder, captions, rng, cfg)
        latents = codec.encode(x[idx])
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        loss = denoising_loss(unet, scheduler, latents, cond, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        step += 1
        ema_update(ema, unet, min(cfg.ema_decay, (1 + step) / (10 + step)))
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
            state = {
                "unet": unet.state_dict(),
                "ema": ema.state_dict(),
                "opt": opt.state_dict(),
                "step": step,
                "py_rng": rng.getstate(),
                "torch_rng": gen.get_state(),
            }
            torch_save_atomic(state, ckpt_path)
        if step % cfg.export_every == 0 or step == cfg.steps:
            export(ema, run, step)
    bar.close()


def main() -> None:
    train(config_from_cli(TrainConfig, __doc__))


if __name__ == "__main__":
    main()
