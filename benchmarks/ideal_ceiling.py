"""How high the ideal-image check can go with a given generator, in one run: the generator told exactly what to draw.

    .venv/bin/python benchmarks/ideal_ceiling.py [--generator pmg-mini] [--benchmark emoticons-open]
        [--splits train,val,test] [--seeds 5] [--threads 2]

`pmg eval`'s ideal-image check asks whether the ground-truth emoji is among the 5 real emoji of the
user's art style nearest (LPIPS) to the chosen image. PMG reaches it only if the generator can draw
that emoji at all. For every user of the benchmark this draws, from one seeded noise per user:

- **told its name**: the ground truth's own label and art style as the target ("lock, twemoji style"),
  no preference: the best any keyword stage could say;
- **told the favourites** (4:0): the user's distinct favourites' labels, most used first, and their
  art style as the preference, target masked: the preference end of the grid with perfect keywords.

and prints, per split, how often the ground truth is in the 5 nearest (with a 95% bootstrap interval)
and its median rank. With `--seeds K` it also draws "told its name" from K noises and reports the best
of them (an oracle choosing among K candidates, as PMG chooses among its grid): what no scorer choosing
among K images could beat. A benchmark's ideal-image rate above that would need luck; the gap
between splits whose themes the generator's simulated users had (train) and those held out (val, test)
is what the held-out themes cost. **told its name, scorer's pick of K** is what PMG's own selection
makes of the same K images: the one the scorer finds most like the target text. **... with the
exemplar** adds the selection's picture term (``--picture-weight``): the candidate's similarity to the
gallery exemplar retrieved for the target text (``pmg.pictures``; the gallery is a set the generator
does not draw). With a generator that takes image prompts, the exemplar also goes into the target
condition (``--no-pictures``: text alone). Builds the benchmark on first use, as `pmg eval` does. Not a test.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pmg.evaluation.extras import EmojiReferences, ideal_ranks
from pmg.evaluation.lpips import LPIPS
from pmg.evaluation.stats import bootstrap_ci
from pmg.generation.loading import load_generator
from pmg.scoring.scorers import load_scorer
from pmg.scenarios import benchmark as benchmark_spec

PROBES = ("told its name", "told the favourites")
BEST = "told its name, best of K"
PICKED = "told its name, scorer's pick of K"
PICKED_PICTURES = "told its name, scorer's pick of K with the exemplar"


def named_target(truth: dict) -> str:
    """The target that names the ground truth exactly: its label and art style."""
    return f"{truth['target_label']}, {truth['style']} style"


def probe_conditions(user: dict, truth: dict) -> dict[str, tuple[str, str | None, tuple[float, float]]]:
    """{probe: (target keywords, preference keywords or None, (w_p, w_t))} for one benchmark user."""
    style = truth["style"]
    labels = [it["title"] for it in user["history"]]
    favourites = [w for w, _ in Counter(labels).most_common()]  # most used first, ties in history order
    return {"told its name": (named_target(truth), None, (0.0, 1.0)),
            "told the favourites": (user["target"]["message"], ", ".join(favourites + [f"{style} style"]), (1.0, 0.0))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generator", default="pmg-mini", help="a model name or a generator folder")
    ap.add_argument("--benchmark", default="emoticons-open", choices=("emoticons", "emoticons-open"))
    ap.add_argument("--bench-dir", type=Path, default=None, help="default data/benchmarks/BENCHMARK")
    ap.add_argument("--art", type=Path, default=Path("data/pmg-mini"))
    ap.add_argument("--splits", default="train,val,test")
    ap.add_argument("--users", type=int, default=300, help="benchmark size when it is built here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's)")
    ap.add_argument("--seeds", type=int, default=5, help="noises per user for the best-of-K oracle (1: skip it)")
    ap.add_argument("--batch", type=int, default=8, help="users per batched denoising pass")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="also write each user's ranks here (jsonl)")
    ap.add_argument("--gallery", type=Path, default=Path("models/pmg-mini/gallery"), help="where exemplars are retrieved")
    ap.add_argument("--picture-weight", type=float, default=0.5, help="the picture term's share in the selection's fit")
    ap.add_argument("--no-pictures", action="store_true", help="keep the exemplar out of the generator's condition")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    bench = a.bench_dir or Path("data/benchmarks") / a.benchmark
    if not (bench / "ground_truth.json").exists():
        benchmark_spec(a.benchmark).build(bench, art=a.art, users=a.users, seed=a.seed)
    truth = json.loads((bench / "ground_truth.json").read_text())
    split = json.loads((bench / "split.json").read_text())
    pipe = load_generator(a.generator)
    scorer = load_scorer(Path(a.generator) / "scorer" if (Path(a.generator) / "scorer").is_dir() else "pmg-mini")
    refs, lp = EmojiReferences(a.art), LPIPS("alex")
    from pmg.api import default_cache_dir
    from pmg.pictures.gallery import Gallery

    gallery = Gallery.index(a.gallery, scorer, default_cache_dir())
    pictures = getattr(pipe, "takes_images", False) and not a.no_pictures

    rows = []
    for name in a.splits.split(","):
        ids = split[name]
        for start in tqdm(range(0, len(ids), a.batch), desc=f"{name} ({len(ids)} users)", unit="batch"):
            chunk = ids[start : start + a.batch]
            users = [json.loads((bench / "users" / f"{u}.json").read_text()) for u in chunk]
            grids, keys = [], []
            named = dict(zip(chunk, scorer.embed_texts([named_target(truth[u]) for u in chunk])))
            exemplar = {u: gallery.search(named[u], 1)[0] for u in chunk}
            for u, user in zip(chunk, users):
                gen = torch.Generator().manual_seed(a.seed + int("".join(c for c in u if c.isdigit()) or 0))
                noises = [pipe.prepare_latents(gen) for _ in range(max(1, a.seeds))]
                ex = pipe.encode_images([gallery.picture(exemplar[u])]) if pictures else None
                for probe, (target, pref, w) in probe_conditions(user, truth[u]).items():
                    for k, latents in enumerate(noises if probe == PROBES[0] else noises[:1]):
                        grids.append(pipe.prepare_grid(target, pref, weights=[w], latents=latents,
                                                       target_image_embeds=ex if probe == PROBES[0] else None))
                        keys.append((u, probe, k))
            outs = pipe.denoise_grids(grids, num_inference_steps=a.steps)
            e_img = scorer.embed_images([out.images[0] for out in outs])
            fits = (e_img * torch.stack([named[u] for u, _, _ in keys])).sum(-1)
            to_ex = (e_img * torch.stack([gallery.image_embeds[exemplar[u]] for u, _, _ in keys])).sum(-1)
            fits_pic = (1 - a.picture_weight) * fits + a.picture_weight * to_ex
            for (u, probe, k), out, fit, fit_pic in zip(keys, outs, fits.tolist(), fits_pic.tolist()):
                t = truth[u]
                hexes = refs.by_style[t["style"]][0]
                rank, dist = ideal_ranks(lp, out.images, refs.features(lp, t["style"]), hexes.index(t["target_hexcode"]))[0]
                rows.append({"user": u, "split": name, "probe": probe, "noise": k, "rank": rank, "lpips": dist, "fit": fit,
                             "fit_pictures": fit_pic, "theme": t.get("theme"), "rule": t.get("target_rule")})
    if a.out:
        a.out.write_text("".join(json.dumps(r) + "\n" for r in rows))

    print(f"{a.generator} on {a.benchmark}: ground truth among the 5 real emoji nearest the image (LPIPS), "
          f"one seeded noise per user, {pipe.default_steps if a.steps is None else a.steps} steps; the gallery exemplar "
          f"{'in' if pictures else 'not in'} the target condition")
    probes = PROBES + (tuple(p.replace("K", str(a.seeds)) for p in (BEST, PICKED, PICKED_PICTURES)) if a.seeds > 1 else ())
    width = max(len(p) for p in probes) + len(": in 5 nearest")
    print(f"{'split':<6} {'users':>5}  " + "  ".join(f"{p + ': in 5 nearest':<{width}} median rank" for p in probes))
    for name in a.splits.split(","):
        cells = []
        for probe in probes:
            ranks = best_ranks(rows, name, probe)
            mean, lo, hi = bootstrap_ci([float(r <= 5) for r in ranks])
            cells.append(f"{f'{100 * mean:5.1f}% [{100 * lo:4.1f}, {100 * hi:4.1f}]':<{width}}  {int(np.median(ranks)):>11}")
        print(f"{name:<6} {len(split[name]):>5}  " + "  ".join(cells))


def best_ranks(rows: list[dict], split: str, probe: str) -> list[int]:
    """Each user's rank of the ground truth for one probe: noise 0's; over all noises, the best (the oracle)
    or the one the scorer finds most like the target text (PMG's selection)."""
    over_noises = probe not in PROBES
    by_user: dict[str, list[dict]] = {}
    for r in rows:
        if r["split"] == split and r["probe"] == (PROBES[0] if over_noises else probe) and (over_noises or r["noise"] == 0):
            by_user.setdefault(r["user"], []).append(r)
    if probe.startswith(PICKED.split(" of ")[0]):
        fit = "fit_pictures" if probe.endswith(PICKED_PICTURES.split(" of K")[1]) else "fit"
        return [max(v, key=lambda r: r[fit])["rank"] for v in by_user.values()]
    return [min(r["rank"] for r in v) for v in by_user.values()]


if __name__ == "__main__":
    main()
