"""pmg-mini's quality bars, measured and printed (numbers go into the model card).

    python -m training.pmg_mini.evaluate --model models/pmg-mini --data data/pmg-mini --grid docs/pmg-mini-grid.png

1. Recognisable: a sample grid, 12 concepts x 3 art styles, saved as a PNG for people to look at.
2. Conditioning: for N held-out (concept, style) captions, the scorer ranks the generated image's
   own caption first among 20 candidates (chance 5%), and picks the right art style (chance 33%).
3. Scorer on real images: image -> label top-5 retrieval on held-out real emoji.
4. Speed: the default 5-candidate grid in one batched pass, seconds on this machine.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from pmg.generation.loading import load_generator
from pmg.io.output import font
from training.pmg_mini.build_data import STYLES

GRID_CONCEPTS = ["1F600", "1F63A", "1F436", "1F355", "26BD", "1F525", "1F333", "1F680", "1F98A", "1F34E", "2B50", "1F697"]


def shifted(scheduler, shift: float):
    """A copy of a flow-matching scheduler sampling with timestep shift ``shift`` (1 = none; more steps at
    high noise): sigma -> shift * sigma / (1 + (shift - 1) * sigma)."""
    return type(scheduler).from_config(scheduler.config, shift=shift)


def load_meta(data: Path) -> list[dict]:
    return [json.loads(line) for line in open(data / "meta.jsonl")]


@torch.no_grad()
def generate(pipe, captions: list[str], seed: int, steps: int, guidance: float, batch: int = 16) -> list[Image.Image]:
    """One image per caption (target-only conditioning), batched across captions: each caption is one
    grid of the library's sampler (``denoise_grids``)."""
    out = []
    for i in range(0, len(captions), batch):
        caps = captions[i : i + batch]
        g = torch.Generator().manual_seed(seed + i)
        lat = torch.randn((len(caps), pipe.codec.latent_channels, pipe.codec.latent_size, pipe.codec.latent_size), generator=g)
        grids = [pipe.prepare_grid(c, None, weights=[(0.0, 1.0)], latents=lat[k : k + 1]) for k, c in enumerate(caps)]
        out += [o.images[0] for o in pipe.denoise_grids(grids, num_inference_steps=steps, guidance_scale=guidance)]
    return out


def sample_grid(pipe, meta, data: Path, path: Path, seed: int, steps: int, guidance: float, cell: int = 96) -> None:
    """Generated row above the real art for each style; concept names on top."""
    import numpy as np

    labels = {m["hexcode"]: m["label"] for m in meta}
    concepts = [h for h in GRID_CONCEPTS if h in labels]
    caps = [f"{labels[h]}, {s} style" for s in STYLES for h in concepts]
    imgs = generate(pipe, caps, seed, steps, guidance)
    top, left = 22, 80
    sheet = Image.new("RGB", (left + cell * len(concepts), top + 2 * cell * len(STYLES)), "white")
    d = ImageDraw.Draw(sheet)
    f = font(12)
    for j, h in enumerate(concepts):
        d.text((left + j * cell + 2, 4), labels[h][:14], fill="black", font=f)
    for i, s in enumerate(STYLES):
        y = top + 2 * i * cell
        d.text((4, y + cell // 2), f"{s}\ngenerated", fill="black", font=f)
        d.text((4, y + cell + cell // 2), f"{s}\nreal", fill=(90, 90, 90), font=f)
        for j in range(len(concepts)):
            sheet.paste(imgs[i * len(concepts) + j].resize((cell, cell), Image.LANCZOS), (left + j * cell, y))
    arr = np.load(data / "images.npy", mmap_mode="r")
    index = {(m["hexcode"], m["style"]): k for k, m in enumerate(meta)}
    for i, s in enumerate(STYLES):
        y = top + (2 * i + 1) * cell
        for j, h in enumerate(concepts):
            if (h, s) in index:
                sheet.paste(Image.fromarray(np.asarray(arr[index[(h, s)]])).resize((cell, cell), Image.LANCZOS), (left + j * cell, y))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


@torch.no_grad()
def conditioning_bars(pipe, scorer, meta, n: int, seed: int, steps: int, guidance: float) -> dict:
    rng = random.Random(seed)
    held = [m for m in meta if m["split"] == "heldout"]
    rng.shuffle(held)
    held = held[:n]
    caps = [f"{m['label']}, {m['style']} style" for m in held]
    imgs = generate(pipe, caps, seed, steps, guidance)
    e_img = scorer.embed_images(imgs)
    labels = sorted({m["label"] for m in meta})
    hits, style_hits = 0, 0
    e_style = scorer.embed_texts([f"{s} style" for s in STYLES])
    for k, m in enumerate(held):
        others = rng.sample([lab for lab in labels if lab != m["label"]], 19)
        cands = [caps[k]] + [f"{o}, {m['style']} style" for o in others]
        sims = e_img[k] @ scorer.embed_texts(cands).T
        hits += int(sims.argmax() == 0)
        style_hits += int(STYLES[int((e_img[k] @ e_style.T).argmax())] == m["style"])
    return {"caption_top1_of_20": hits / len(held), "style_accuracy": style_hits / len(held), "n": len(held)}


@torch.no_grad()
def real_retrieval(scorer, meta, data: Path) -> dict:
    import numpy as np

    arr = np.load(data / "images.npy", mmap_mode="r")
    held = [(k, m) for k, m in enumerate(meta) if m["split"] == "heldout"]
    labels = sorted({m["label"] for _, m in held})
    e_lab = scorer.embed_texts(labels)
    e_img = scorer.embed_images([Image.fromarray(np.asarray(arr[k])) for k, _ in held])
    top5 = (e_img @ e_lab.T).topk(5, dim=1).indices
    want = torch.tensor([labels.index(m["label"]) for _, m in held])
    return {"label_top5": (top5 == want[:, None]).any(1).float().mean().item(), "n_images": len(held), "n_labels": len(labels)}


def speed(pipe, steps: int, repeats: int = 3) -> dict:
    times = []
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        pipe(["happy", "smiling"], ["cat", "twemoji style"], generator=torch.Generator().manual_seed(r), num_inference_steps=steps)
        if r:  # the first call warms up
            times.append(time.perf_counter() - t0)
    return {"grid5_seconds_median": sorted(times)[len(times) // 2], "steps": steps, "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/pmg-mini")
    ap.add_argument("--data", type=Path, default=Path("data/pmg-mini"))
    ap.add_argument("--grid", type=Path, default=Path("docs/pmg-mini-grid.png"))
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's default_steps)")
    ap.add_argument("--guidance", type=float, default=4.0)
    ap.add_argument("--shift", type=float, default=None,
                    help="flow-matching timestep shift for sampling (default: the model's scheduler config)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip", default="", help="comma list of: grid,conditioning,retrieval,speed")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    skip = set(a.skip.split(","))
    pipe = load_generator(a.model)
    if a.shift is not None:
        pipe.scheduler = shifted(pipe.scheduler, a.shift)
    a.steps = a.steps or pipe.default_steps
    meta = load_meta(a.data)
    results = {"model": a.model, "train_step": json.loads((Path(a.model) / "model_index.json").read_text()).get("train_step"),
               "steps": a.steps, "shift": pipe.scheduler.config.get("shift")}
    if "grid" not in skip:
        sample_grid(pipe, meta, a.data, a.grid, a.seed, a.steps, a.guidance)
        results["grid"] = str(a.grid)
    scorer_dir = Path(a.model) / "scorer"
    if scorer_dir.is_dir():
        from pmg.scoring.scorers import load_scorer

        scorer = load_scorer(scorer_dir)
        if "conditioning" not in skip:
            results["conditioning"] = conditioning_bars(pipe, scorer, meta, a.n, a.seed, a.steps, a.guidance)
        if "retrieval" not in skip:
            results["scorer_real_retrieval"] = real_retrieval(scorer, meta, a.data)
    if "speed" not in skip:
        results["speed"] = speed(pipe, a.steps)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
