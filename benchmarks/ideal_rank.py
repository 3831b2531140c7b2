"""The ideal-image rank of `pmg eval`, cached reference features against pairwise LPIPS, in one run.

    .venv/bin/python benchmarks/ideal_rank.py [--art data/pmg-mini] [--style twemoji] [--threads 1]

Ranks 5 real emoji (standing in for a grid's candidates) among every emoji of one art style by LPIPS,
as `pmg eval` does for each grid: once the previous way (both images' LPIPS features for every pair),
once with the references' features computed once (`reference_features`, `ideal_ranks`). Prints the
seconds of each, the one-off cost per style and the ratio; the ranks must agree. Not a test.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from PIL import Image

from pmg.evaluation.lpips import LPIPS
from pmg.evaluation.metrics import lpips as lpips_fn
from pmg.evaluation.metrics import to_tensor
from pmg.evaluation.run import METRIC_SIZE, EmojiReferences, ideal_ranks


def pairwise_rank(lp: LPIPS, image: Image.Image, refs: torch.Tensor, truth: int, batch: int = 256) -> int:
    g = to_tensor([image], METRIC_SIZE)
    d = torch.cat([lpips_fn(lp, g.expand(len(refs[i : i + batch]), -1, -1, -1), refs[i : i + batch])
                   for i in range(0, len(refs), batch)])
    return int((d < d[truth]).sum()) + 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--art", type=Path, default=Path("data/pmg-mini"))
    ap.add_argument("--style", default="twemoji")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    refs = EmojiReferences(a.art)
    _, x = refs.by_style[a.style]
    lp = LPIPS("alex")
    images = [Image.fromarray((x[i].permute(1, 2, 0).numpy() * 255).round().astype("uint8")) for i in range(5)]
    t = time.perf_counter()
    before = [pairwise_rank(lp, im, x, truth=2) for im in images]
    t_pairwise = time.perf_counter() - t
    t = time.perf_counter()
    feats = refs.features(lp, a.style)
    t_once = time.perf_counter() - t
    t = time.perf_counter()
    now = [r for r, _ in ideal_ranks(lp, images, feats, truth=2)]
    t_cached = time.perf_counter() - t
    if before != now:
        raise SystemExit(f"ranks differ: pairwise {before}, cached {now}")
    print(f"{len(x)} {a.style} references, 5 candidates, {a.threads} thread(s)")
    print(f"  pairwise LPIPS (before)          {t_pairwise:7.2f} s per grid")
    print(f"  cached reference features (now)  {t_cached:7.2f} s per grid  (+{t_once:.2f} s once per style)")
    print(f"  speed-up per grid                {t_pairwise / t_cached:7.1f} x")


if __name__ == "__main__":
    main()
