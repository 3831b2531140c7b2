"""pmg-mini-fashion's checks: a sample grid, composition on held-out combinations, speed.

    python -m training.pmg_mini.evaluate_fashion --model models/pmg-mini-fashion [--unet runs/fashion/export]

1. Sample grid (``--grid PNG``): each garment type x six (colour, pattern) pairs, generated above a real
   rendering of the same caption.
2. Composition: for every (type, colour, pattern) combination kept out of training (``fashion.is_heldout``)
   the generator gets PMG's conditions -- target window "type words", preference window "colour, pattern"
   at w_p:w_t = 2:2 -- and the scorer names the type (of 10), colour (of 12) and pattern (of 5) of the
   image. Bars: type >= 90%, colour >= 80%, pattern >= 70%. Twice: one image per combination (the
   generator's own composition), and the model's selection (its ``default_noises`` images at 2:2, the
   one maximising z with its ``default_alpha`` against the two windows, as ``PMG.generate`` picks).
3. Seconds for the 5-candidate grid.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from pmg.evaluation.benchmarks.garments import CLASS_WORDS, CLASSES, COLOURS, PATTERN_WORDS, PATTERNS, caption


def classify(scorer, images: list[Image.Image]) -> dict[str, list[int]]:
    """Index of the nearest type / colour / pattern word for each image (``classify_garments``' reading)."""
    from pmg.evaluation.benchmarks.garments import classify_garments

    order = {"type": list(CLASSES), "colour": sorted(COLOURS), "pattern": list(PATTERNS)}
    return {k: [order[k].index(v) for v in vs] for k, vs in classify_garments(scorer, images).items()}


def composed(pipe, scorer, target: str, preference: str, seed: int, noises: int = 1, alpha: float = 0.5):
    """The 2:2 image of one combination; with ``noises`` > 1, the one of them maximising z (PMG's selection)."""
    from pmg.scoring.select import select_best, similarity_scores, z_scores

    images = pipe(target, preference, weights=[(2.0, 2.0)], noises=noises, generator=torch.Generator().manual_seed(seed)).images
    if noises == 1:
        return images[0]
    txt = scorer.embed_texts([target, preference])
    d_p, d_t = similarity_scores(scorer.embed_images(images), txt[1], txt[0])
    return images[select_best(z_scores(d_p, d_t, alpha))]


def composition(pipe, scorer, seed: int = 0, noises: int = 1, alpha: float = 0.5) -> dict:
    from training.pmg_mini.fashion import is_heldout

    combos = [(k, c, p) for k in range(len(CLASSES)) for c in sorted(COLOURS) for p in PATTERNS if is_heldout(k, c, p)]
    images = [composed(pipe, scorer, ", ".join(CLASS_WORDS[CLASSES[k]][:2]), f"{c}, {PATTERN_WORDS[p][0]}", seed + i, noises, alpha)
              for i, (k, c, p) in enumerate(combos)]
    pred = classify(scorer, images)
    colours = sorted(COLOURS)
    acc = {"type": np.mean([pred["type"][i] == k for i, (k, _, _) in enumerate(combos)]),
           "colour": np.mean([pred["colour"][i] == colours.index(c) for i, (_, c, _) in enumerate(combos)]),
           "pattern": np.mean([pred["pattern"][i] == PATTERNS.index(p) for i, (_, _, p) in enumerate(combos)])}
    per_type = {CLASSES[k]: float(np.mean([pred["type"][i] == k for i, (kk, _, _) in enumerate(combos) if kk == k]))
                for k in sorted({k for k, _, _ in combos})}  # which garment types the scorer misreads
    return {"combinations": len(combos), **{k: float(v) for k, v in acc.items()}, "type_by_class": per_type,
            "_images": images, "_combos": combos}


def sample_grid(pipe, path: Path, seed: int = 0, cell: int = 80) -> None:
    from pmg.evaluation.benchmarks.garments import load_fashion_mnist, render_garment

    x, y = load_fashion_mnist(split="test")
    pairs = [("red", "plain"), ("blue", "striped"), ("yellow", "dotted"), ("green", "checked"), ("black", "zigzag"),
             ("pink", "striped")]
    sheet = Image.new("RGB", (len(pairs) * cell, len(CLASSES) * (2 * cell + 14)), "white")
    d = ImageDraw.Draw(sheet)
    for r, kind in enumerate(CLASSES):
        real_shape = x[int(np.flatnonzero(y == r)[0])]
        for c, (colour, pattern) in enumerate(pairs):
            text = caption(kind, colour, pattern)
            gen = pipe(text, None, weights=[(0.0, 1.0)], generator=torch.Generator().manual_seed(seed + 7 * r + c)).images[0]
            top = r * (2 * cell + 14)
            d.text((c * cell + 2, top), text.removeprefix("a ").removeprefix("an ")[:16], fill="black")
            sheet.paste(gen.resize((cell, cell), Image.LANCZOS), (c * cell, top + 12))
            real = Image.fromarray(render_garment(real_shape, colour, pattern, 64))
            sheet.paste(real.resize((cell, cell), Image.LANCZOS), (c * cell, top + 12 + cell))
    sheet.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("models/pmg-mini-fashion"))
    ap.add_argument("--unet", type=Path, default=None, help="a run's export folder to use instead of the model's unet")
    ap.add_argument("--scorer", type=Path, default=None, help="default: the model's scorer/")
    ap.add_argument("--grid", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from pmg.generation.loading import load_generator
    from pmg.scoring.scorers import load_scorer

    pipe = load_generator(a.model)
    if a.unet is not None:
        from diffusers import UNet2DConditionModel

        pipe.unet = UNet2DConditionModel.from_pretrained(a.unet, subfolder="unet", torch_dtype=torch.float32).eval()
    scorer = load_scorer(a.scorer or a.model / "scorer")
    if a.grid:
        sample_grid(pipe, a.grid)
    comp = composition(pipe, scorer)
    selected = composition(pipe, scorer, noises=pipe.default_noises, alpha=pipe.default_alpha)
    t0 = time.perf_counter()
    for _ in range(3):
        pipe("t-shirt, tee", "red, striped", generator=torch.Generator().manual_seed(0))
    report = {k: v for k, v in comp.items() if not k.startswith("_")}
    report["with_selection"] = {"noises": pipe.default_noises, "alpha": pipe.default_alpha,
                                **{k: v for k, v in selected.items() if not k.startswith("_")}}
    report["grid_s"] = (time.perf_counter() - t0) / 3
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
