"""Run a benchmark split through PMG and write the paper's tables.

Table 2 (section 4.5.1): PMG / without soft embeddings / without keywords / without both, each with
LPIPS and SSIM of the chosen image against the user's history images (mean over items) and against
the ground-truth target image; means with 95% bootstrap confidence intervals.
Weight-grid study (Figure 7): mean d_p, d_t and z for each w_p:w_t of the full PMG runs, as CSV and PNG.
Images are compared at ``METRIC_SIZE`` px (generated 32 px images are enlarged, bilinear).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from pmg.api import PMG, GenerationConfig
from pmg.behaviours.schema import load_user
from pmg.evaluation.lpips import LPIPS
from pmg.evaluation.metrics import lpips as lpips_fn
from pmg.evaluation.metrics import ssim, to_tensor
from pmg.evaluation.stats import bootstrap_ci, format_ci

__all__ = ["Variant", "TABLE2_VARIANTS", "evaluate_split", "write_tables", "EmojiReferences", "ideal_rank",
           "distinct_candidates", "trend"]

METRIC_SIZE = 64
METRICS = ("lpips_history", "ssim_history", "lpips_target", "ssim_target")


@dataclass(frozen=True)
class Variant:
    name: str
    use_keywords: bool
    use_soft: bool


TABLE2_VARIANTS = (
    Variant("PMG", True, True),
    Variant("w/o soft embeddings", True, False),
    Variant("w/o keywords", False, True),
    Variant("w/o both", False, False),
)


def _image_metrics(lp: LPIPS, image: Image.Image, history: list[Image.Image], target: Image.Image) -> dict:
    g = to_tensor([image], METRIC_SIZE)
    h = to_tensor(history, METRIC_SIZE)
    t = to_tensor([target], METRIC_SIZE)
    gh = g.expand(len(history), -1, -1, -1)
    return {
        "lpips_history": lpips_fn(lp, gh, h).mean().item(),
        "ssim_history": ssim(gh, h).mean().item(),
        "lpips_target": lpips_fn(lp, g, t).item(),
        "ssim_target": ssim(g, t).item(),
    }


class EmojiReferences:
    """Every real emoji of each art style (the pmg-mini art folder), at ``METRIC_SIZE`` px, for the
    ideal-image rank: where the ground truth falls among all emoji of the user's style by LPIPS.
    Their LPIPS features are computed once per style (``features``) and shared by every image ranked."""

    def __init__(self, art: Path):
        meta = [json.loads(line) for line in open(art / "meta.jsonl", encoding="utf-8")]
        images = np.load(art / "images.npy", mmap_mode="r")
        self.by_style: dict[str, tuple[list[str], torch.Tensor]] = {}
        self._features: dict[tuple[str, str], list[torch.Tensor]] = {}
        for style in sorted({m["style"] for m in meta}):
            rows = [(m["hexcode"], i) for i, m in enumerate(meta) if m["style"] == style]
            seen = dict(rows)  # one image per hexcode
            keys = sorted(seen)
            x = torch.from_numpy(np.stack([images[seen[k]] for k in keys])).permute(0, 3, 1, 2).float() / 255
            if x.shape[-1] != METRIC_SIZE:
                x = torch.nn.functional.interpolate(x, size=METRIC_SIZE, mode="bilinear", antialias=True, align_corners=False)
            self.by_style[style] = (keys, x)

    def features(self, lp: LPIPS, style: str) -> list[torch.Tensor]:
        key = (lp.net, style)  # instances of one net share their weights
        if key not in self._features:
            self._features[key] = reference_features(lp, self.by_style[style][1])
        return self._features[key]


@torch.no_grad()
def reference_features(lp: LPIPS, refs: torch.Tensor, batch: int = 256) -> list[torch.Tensor]:
    """LPIPS unit features of (N, 3, S, S) images in [0, 1], computed in batches."""
    parts = [lp.unit_features(refs[i : i + batch] * 2 - 1) for i in range(0, len(refs), batch)]
    return [torch.cat(tap) for tap in zip(*parts)]


@torch.no_grad()
def ideal_ranks(lp: LPIPS, images: list[Image.Image], ref_features: list[torch.Tensor], truth: int) -> list[tuple[int, float]]:
    """For each image: (rank of reference ``truth`` among all references by LPIPS to the image
    (1 = nearest), LPIPS to it). ``ref_features``: ``reference_features`` of the references."""
    out = []
    feats = lp.unit_features(to_tensor(images, METRIC_SIZE) * 2 - 1)
    for i in range(len(images)):
        d = lp.distance([f[i : i + 1] for f in feats], ref_features)
        out.append((int((d < d[truth]).sum().item()) + 1, float(d[truth])))
    return out


def ideal_rank(lp: LPIPS, image: Image.Image, refs: torch.Tensor, truth: int) -> tuple[int, float]:
    """(rank of ``refs[truth]`` among all ``refs`` ((N, 3, S, S) in [0, 1]) by LPIPS to ``image``, LPIPS to it)."""
    return ideal_ranks(lp, [image], reference_features(lp, refs), truth)[0]


def _ideal(lp: LPIPS, res, keys: list[str], ref_features: list[torch.Tensor], hexcode: str, every_candidate: bool) -> dict:
    """The ideal-image record of a result: the chosen image's rank and LPIPS to the ground truth; with
    ``every_candidate``, every grid candidate's rank too and whether the best of them is in the 5 nearest
    (what a perfect selection would reach)."""
    images = [c.image for c in res.candidates] if every_candidate else [res.best_image]
    ranked = ideal_ranks(lp, images, ref_features, keys.index(hexcode))
    rank, to_truth = ranked[res.best] if every_candidate else ranked[0]
    out = {"ideal_rank": rank, "ideal_top5": float(rank <= 5), "ideal_lpips": to_truth, "ideal_of": len(keys)}
    if every_candidate:
        out.update(ideal_rank_grid=[r for r, _ in ranked], ideal_top5_oracle=float(min(r for r, _ in ranked) <= 5))
    return out


@torch.no_grad()
def distinct_candidates(lp: LPIPS, images: list[Image.Image], threshold: float = 0.02) -> int:
    """How many candidates differ (LPIPS >= threshold) from every candidate before them."""
    feats = lp.unit_features(to_tensor(images, METRIC_SIZE) * 2 - 1)
    keep = []
    for i in range(len(images)):
        if not keep or lp.distance([f[i : i + 1] for f in feats], [f[keep] for f in feats]).min().item() >= threshold:
            keep.append(i)
    return len(keep)


def trend(r: list[float], values: list[float | None]) -> float:
    """Pearson correlation of scores with the preference share r = w_p / (w_p + w_t) (nan if flat)."""
    pairs = [(a, b) for a, b in zip(r, values) if b is not None]
    if len(pairs) < 3:
        return float("nan")
    a, b = np.array(pairs, dtype=float).T
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def evaluate_split(pmg: PMG, bench: Path, split: str, config: GenerationConfig, *, limit: int | None = None,
                   variants=TABLE2_VARIANTS, net: str = "alex", progress: bool = True,
                   references: EmojiReferences | None = None, strip_attributes: bool = False) -> list[dict]:
    """One record per (user, variant): metrics, keywords, the chosen candidate, the grid's scores; with
    ``references``, the ideal-image rank and LPIPS of the chosen image, and for PMG the grid's spread.
    ``strip_attributes``: the history items lose their ``attributes`` (art style and tags), so what the
    keywords know of the style comes from the item images (``pmg``'s captioner)."""
    ids = json.loads((bench / "split.json").read_text())[split]
    truth = json.loads((bench / "ground_truth.json").read_text())
    ids = ids[:limit] if limit else ids
    scenario = load_user(bench / "users" / f"{ids[0]}.json").scenario.value if ids else "emoticon"
    if pmg.soft_for(scenario) is None:
        variants = [v for v in variants if not v.use_soft or v.name == "PMG"]
    lp = LPIPS(net)
    records = []
    it = ids
    if progress:
        from tqdm import tqdm

        it = tqdm(ids, desc=f"eval {bench.name}/{split}", unit="user")
    for uid in it:
        user = load_user(bench / "users" / f"{uid}.json")
        if strip_attributes:
            user = user.model_copy(update={"history": [h.model_copy(update={"attributes": {}}) for h in user.history]})
        kw = pmg.keywords(user)
        history = [Image.open(h.image).convert("RGB") for h in user.recent().history]
        target = Image.open(bench / truth[uid]["target_image"]).convert("RGB")
        for v in variants:
            cfg = GenerationConfig(**{**config.__dict__, "use_keywords": v.use_keywords, "use_soft": v.use_soft})
            res = pmg.generate(user, cfg, keywords=kw)
            rec = {"user_id": uid, "variant": v.name, **truth[uid], **_image_metrics(lp, res.best_image, history, target),
                   "preference": kw.preference, "target_keywords": kw.target, "best": res.best,
                   "grid": [{"w_p": c.w_p, "w_t": c.w_t, "d_p": c.d_p, "d_t": c.d_t, "z": c.z} for c in res.candidates],
                   "soft": v.use_soft and pmg.soft_for(scenario) is not None}
            if references is not None and truth[uid].get("target_hexcode"):
                style = truth[uid]["style"]
                rec.update(_ideal(lp, res, references.by_style[style][0], references.features(lp, style),
                                  truth[uid]["target_hexcode"], every_candidate=v.name == "PMG" and len(res.candidates) > 1))
            if "colour" in truth[uid] and "type" in truth[uid]:  # garments: what the scorer reads in the image
                rec.update(garment_reading(pmg.scorer, res.best_image, truth[uid]))
                if v.name == "PMG":  # the same reading of the real ground truth: how far the reader can be trusted
                    rec["garment_truth"] = garment_reading(pmg.scorer, target, truth[uid])
            if v.name == "PMG":  # the real target image against the same history: what the ideal answer scores
                rec["truth_history"] = {k: x for k, x in _image_metrics(lp, target, history, target).items()
                                        if k.endswith("_history")}
            if references is not None and v.name == "PMG" and len(res.candidates) > 1:
                share = [c.w_p / (c.w_p + c.w_t) for c in res.candidates]
                rec.update(distinct=distinct_candidates(lp, [c.image for c in res.candidates]),
                           d_p_trend=trend(share, [c.d_p for c in res.candidates]),
                           d_t_trend=trend(share, [c.d_t for c in res.candidates]))
            rec["_image"] = res.best_image
            records.append(rec)
    return records


def garment_reading(scorer, image: Image.Image, truth: dict) -> dict:
    """Garments: the type, colour and pattern the scorer reads in ``image``, and whether each is the truth's."""
    from pmg.evaluation.benchmarks.garments import classify_garments

    seen = {k: v[0] for k, v in classify_garments(scorer, [image]).items()}
    return {"garment_type_ok": float(seen["type"] == truth["type"]), "garment_colour_ok": float(seen["colour"] == truth["colour"]),
            "garment_pattern_ok": float(seen["pattern"] == truth["pattern"]), "garment_seen": seen}


def _weight_grid_plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r["w_p:w_t"] for r in rows]
    fig, ax1 = plt.subplots(figsize=(6, 3.6), dpi=120)
    ax1.plot(labels, [r["d_p"] for r in rows], "o-", label="d_p (preference)")
    ax1.plot(labels, [r["d_t"] for r in rows], "s-", label="d_t (accuracy)")
    ax1.set_xlabel("w_p : w_t")
    ax1.set_ylabel("cosine similarity")
    ax2 = ax1.twinx()
    ax2.plot(labels, [r["z"] for r in rows], "^--", color="tab:green", label="z")
    ax2.set_ylabel("z = a log d_p + (1-a) log d_t")
    lines = ax1.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax1.legend(lines, [ln.get_label() for ln in lines], loc="best", fontsize=8)
    ax1.set_title("Weight grid: mean scores over users")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _samples_sheet(records: list[dict], bench: Path, path: Path, n_users: int = 8, cell: int = 64) -> None:
    from pmg.io.output import _font

    users = list(dict.fromkeys(r["user_id"] for r in records))[:n_users]
    variants = list(dict.fromkeys(r["variant"] for r in records))
    n_hist = 6
    cols = n_hist + 1 + len(variants)
    head = 34
    sheet = Image.new("RGB", (cols * (cell + 4) + 8, head + len(users) * (cell + 18)), "white")
    d = ImageDraw.Draw(sheet)
    f = _font(11)
    titles = ["history"] + [""] * (n_hist - 1) + ["target"] + variants
    for j, t in enumerate(titles):
        d.text((4 + j * (cell + 4), 4), t[:12], fill="black", font=f)
    for i, uid in enumerate(users):
        y = head + i * (cell + 18)
        user = load_user(bench / "users" / f"{uid}.json")
        rec = {r["variant"]: r for r in records if r["user_id"] == uid}
        first = next(iter(rec.values()))
        for j, h in enumerate(user.recent().history[-n_hist:]):
            sheet.paste(Image.open(h.image).convert("RGB").resize((cell, cell)), (4 + j * (cell + 4), y))
        sheet.paste(Image.open(bench / first["target_image"]).convert("RGB").resize((cell, cell)), (4 + n_hist * (cell + 4), y))
        for k, v in enumerate(variants):
            if v in rec:
                sheet.paste(rec[v]["_image"].resize((cell, cell), Image.LANCZOS), (4 + (n_hist + 1 + k) * (cell + 4), y))
        about = (f"{first['theme']}, {first['style']}, {first['mood']}" if "theme" in first  # emoticons
                 else f"{first['colour']} {first['pattern']}, target {first['type']}")  # garments
        d.text((4, y + cell + 2), f"{uid}: {about}", fill=(80, 80, 80), font=f)
    sheet.save(path)


def write_tables(records: list[dict], out: Path, bench: Path, scorer_note: str = "") -> str:
    """Write table2.{md,csv}, weight_grid.{csv,png}, samples.png, results.jsonl; return the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    variants = list(dict.fromkeys(r["variant"] for r in records))
    rows = []
    for v in variants:
        rs = [r for r in records if r["variant"] == v]
        row = {"variant": v, "users": len(rs), "soft": any(r["soft"] for r in rs)}
        for m in METRICS:
            row[m] = bootstrap_ci([r[m] for r in rs])
        rows.append(row)
    truth = _truth_row(records)
    with open(out / "table2.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variant", "users", "soft_embeddings"] + [f"{m}_{s}" for m in METRICS for s in ("mean", "ci_low", "ci_high")])
        for row in rows:
            w.writerow([row["variant"], row["users"], row["soft"]] + [f"{x:.6f}" for m in METRICS for x in row[m]])
        if truth:
            cells = [[f"{x:.6f}" for x in truth[m]] if m in truth else ["", "", ""] for m in METRICS]
            w.writerow(["ground truth", truth["users"], False] + sum(cells, []))
    md = ["| variant | LPIPS history ↓ | SSIM history ↑ | LPIPS target ↓ | SSIM target ↑ |", "|---|---|---|---|---|"]
    for row in rows:
        name = row["variant"] + ("" if row["soft"] or "soft" in row["variant"] or "both" in row["variant"] else " (no soft adapter)")
        md.append(f"| {name} | " + " | ".join(format_ci(*row[m]) for m in METRICS) + " |")
    if truth:
        md.append("| ground truth (the real target image) | " + " | ".join(
            format_ci(*truth[m]) if m in truth else "—" for m in METRICS) + " |")
    md.append("")
    md.append(f"Means over {rows[0]['users']} users with 95% bootstrap intervals; LPIPS AlexNet, SSIM 11x11 Gaussian "
              f"window (sigma 1.5, data range 1); images compared at {METRIC_SIZE} px. {scorer_note}")
    if truth:
        md.append("'ground truth' is the benchmark's own target image against the same history: how close to the "
                  "history the right answer is (a generated image can beat it on the history columns only by "
                  "drawing the history instead).")
    md += _ideal_table(records, variants)
    md += _garment_table(records, variants)
    table = "\n".join(md)
    (out / "table2.md").write_text(table + "\n")
    _write_weight_grid(records, out)
    _samples_sheet(records, bench, out / "samples.png")
    with open(out / "results.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps({k: v for k, v in r.items() if k != "_image"}) + "\n")
    return table


def _write_weight_grid(records: list[dict], out: Path) -> None:
    """weight_grid.csv (and .png): mean d_p, d_t, z per weighting over PMG's records, and how often each was chosen."""
    grid: dict[str, dict] = {}
    for r in records:
        if r["variant"] != "PMG":
            continue
        for c in r["grid"]:
            key = f"{c['w_p']:g}:{c['w_t']:g}"
            g = grid.setdefault(key, {"d_p": [], "d_t": [], "z": [], "chosen": 0})
            for k in ("d_p", "d_t", "z"):
                if c[k] is not None:
                    g[k].append(c[k])
        chosen = r["grid"][r["best"]]
        grid[f"{chosen['w_p']:g}:{chosen['w_t']:g}"]["chosen"] += 1
    grid_rows = [{"w_p:w_t": k, **{m: float(np.mean(v[m])) if v[m] else float("nan") for m in ("d_p", "d_t", "z")},
                  "chosen": v["chosen"]} for k, v in grid.items()]
    with open(out / "weight_grid.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["w_p:w_t", "d_p", "d_t", "z", "chosen"])
        w.writeheader()
        w.writerows(grid_rows)
    if len(grid_rows) > 1:
        _weight_grid_plot(grid_rows, out / "weight_grid.png")


def _truth_row(records: list[dict]) -> dict:
    """Bootstrap intervals of the real target image's history metrics (``truth_history``), if recorded."""
    rs = [r["truth_history"] for r in records if "truth_history" in r]
    return {"users": len(rs), **{m: bootstrap_ci([r[m] for r in rs]) for m in rs[0]}} if rs else {}


def _garment_table(records: list[dict], variants: list[str]) -> list[str]:
    """Garments (clothing benchmark): does the chosen image have the user's colour and pattern, and the
    target's type, as the scorer reads it?"""
    if not any("garment_type_ok" in r for r in records):
        return []
    md = ["", "| variant | user's main colour | user's pattern | target's type |", "|---|---|---|---|"]
    rows = [(v, [r for r in records if r["variant"] == v and "garment_type_ok" in r]) for v in variants]
    rows.append(("ground truth (real garment)", [r["garment_truth"] for r in records if "garment_truth" in r]))
    for name, rs in rows:
        if rs:
            md.append(f"| {name} | " + " | ".join(
                f"{format_ci(*[100 * x for x in bootstrap_ci([r[k] for r in rs])], digits=1)} %"
                for k in ("garment_colour_ok", "garment_pattern_ok", "garment_type_ok")) + " |")
    md.append("")
    md.append("Share of users whose chosen image the scorer reads as the user's main colour (of 12), their pattern "
              "(of 5) and the target item's garment type (of 10), with 95% bootstrap intervals; 'w/o both' is "
              "generation without personalisation; 'ground truth' is the same reading of the real target garment "
              "(the scorer's own accuracy on this benchmark).")
    return md


def _ideal_table(records: list[dict], variants: list[str]) -> list[str]:
    """The ideal-image check and the grid's spread, when the records have them."""
    if not any("ideal_rank" in r for r in records):
        return []
    md = ["", "| variant | ground truth in the 5 nearest real emoji ↑ | median rank | LPIPS to ground truth ↓ |", "|---|---|---|---|"]
    for v in variants:
        rs = [r for r in records if r["variant"] == v and "ideal_rank" in r]
        if rs:
            md.append(f"| {v} | {format_ci(*[100 * x for x in bootstrap_ci([r['ideal_top5'] for r in rs])], digits=1)} % | "
                      f"{int(np.median([r['ideal_rank'] for r in rs]))} of {rs[0]['ideal_of']} | "
                      f"{format_ci(*bootstrap_ci([r['ideal_lpips'] for r in rs]))} |")
    pmg_rs = [r for r in records if r["variant"] == "PMG" and "distinct" in r]
    if pmg_rs:
        rises = np.mean([r["d_p_trend"] > 0 and r["d_t_trend"] < 0 for r in pmg_rs])
        oracle = [r["ideal_top5_oracle"] for r in pmg_rs if "ideal_top5_oracle" in r]
        best_of = (f" Had the selection picked the grid's candidate nearest the ground truth, the ground truth would "
                   f"be in the 5 nearest for {format_ci(*[100 * x for x in bootstrap_ci(oracle)], digits=1)} % of users "
                   f"(PMG)." if oracle else "")
        md += ["", f"Ideal image: rank of the ground-truth emoji among all real emoji of the user's style by LPIPS to "
                   f"the chosen image (1 = nearest).{best_of} Grid (PMG): {np.mean([r['distinct'] for r in pmg_rs]):.2f} of "
                   f"{len(pmg_rs[0]['grid'])} candidates distinct on average (LPIPS >= 0.02); d_p rises and d_t falls "
                   f"with w_p for {100 * rises:.0f}% of users."]
    return md


def evaluate_movies_text(extractor, bench: Path, split: str, *, limit: int | None = None, progress: bool = True) -> list[dict]:
    """Text-side metrics (no posters offline): do the preference keywords name the user's top
    history genres, and do the target keywords name the target's genres?"""
    from pmg.evaluation.benchmarks.movies import keyword_coverage

    ids = json.loads((bench / "split.json").read_text())[split]
    truth = json.loads((bench / "ground_truth.json").read_text())
    ids = ids[:limit] if limit else ids
    if progress:
        from tqdm import tqdm

        ids = tqdm(ids, desc=f"eval {bench.name}/{split}", unit="user")
    out = []
    for uid in ids:
        kw = extractor(load_user(bench / "users" / f"{uid}.json"))
        t = truth[uid]
        out.append({"user_id": uid, "preference": kw.preference, "target_keywords": kw.target,
                    "history_genre_coverage": keyword_coverage(kw.preference, t["history_genres"]),
                    "target_genre_coverage": keyword_coverage(kw.target, [g for g in t["target_genres"] if g != "(no genres listed)"])})
    return out


def write_movie_table(records: list[dict], out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    rows = {m: bootstrap_ci([r[m] for r in records]) for m in ("history_genre_coverage", "target_genre_coverage")}
    md = ["| metric | mean [95% CI] |", "|---|---|"] + [f"| {m} | {format_ci(*v, digits=3)} |" for m, v in rows.items()]
    md.append(f"\nOver {len(records)} users: the share of the user's top-3 history genres named by the preference "
              "keywords, and of the target's genres named by the target keywords.")
    table = "\n".join(md)
    (out / "movies_text.md").write_text(table + "\n")
    with open(out / "results.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return table


def evaluate_adapters(pmg: PMG, adapters: dict[str, object], bench: Path, split: str, config: GenerationConfig,
                      *, limit: int | None = None, references: EmojiReferences | None = None) -> list[dict]:
    """Table 3: the full PMG variant once per soft-embedding adapter (a ``SoftEmbedder`` each); with
    ``references``, the ideal-image rank of each chosen image too."""
    records = []
    for name, soft in adapters.items():
        pmg.soft = soft
        cfg = soft.model.config
        for r in evaluate_split(pmg, bench, split, config, limit=limit, variants=(TABLE2_VARIANTS[0],), progress=False,
                                references=references):
            records.append({**r, "adapter": name, "p_tuning": cfg.use_prefix, "L": cfg.num_mm_tokens})
    return records


def write_table3(records: list[dict], out: Path, training_logs: dict[str, dict] | None = None) -> str:
    """LPIPS / SSIM against the history for with/without P-Tuning x L (paper Table 3); the ideal image
    in the 5 nearest when the records have it, and each adapter's held-out denoising loss (trained vs
    keywords alone, best step) from its ``training_log.json`` when given (``training_logs``: by adapter name)."""
    out.mkdir(parents=True, exist_ok=True)
    logs = training_logs or {}
    keys = sorted({(r["p_tuning"], r["L"], r["adapter"]) for r in records}, key=lambda k: (not k[0], k[1], k[2]))
    ideal = any("ideal_top5" in r for r in records)
    head = ["P-Tuning v2", "L", "LPIPS history ↓", "SSIM history ↑"] + (["ideal image in 5 nearest, %"] if ideal else [])
    head += ["val. loss trained / keywords only (best step)"] if logs else []
    md = ["| " + " | ".join(head + ["users"]) + " |", "|" + "---|" * (len(head) + 1)]
    with open(out / "table3.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["p_tuning", "L", "adapter", "lpips_history_mean", "lpips_history_ci_low", "lpips_history_ci_high",
                    "ssim_history_mean", "ssim_history_ci_low", "ssim_history_ci_high", "ideal_top5_mean", "ideal_top5_ci_low",
                    "ideal_top5_ci_high", "val_trained", "val_keywords_only", "best_step", "users"])
        for pt, L, name in keys:
            rs = [r for r in records if (r["p_tuning"], r["L"], r["adapter"]) == (pt, L, name)]
            lp, ss = bootstrap_ci([r["lpips_history"] for r in rs]), bootstrap_ci([r["ssim_history"] for r in rs])
            top5 = bootstrap_ci([100 * r["ideal_top5"] for r in rs if "ideal_top5" in r])
            log = logs.get(name, {})
            val = [log.get("val_trained"), log.get("val_keywords_only"), log.get("best_step")]
            w.writerow([pt, L, name, *[f"{x:.6f}" for x in (*lp, *ss, *top5)], *["" if v is None else v for v in val], len(rs)])
            cells = [f"{'yes' if pt else 'no'}", str(L), format_ci(*lp), format_ci(*ss)]
            cells += [format_ci(*top5, digits=1)] if ideal else []
            if logs:
                cells.append(f"{val[0]:.5f} / {val[1]:.5f} ({val[2]})" if None not in val else "–")
            md.append("| " + " | ".join(cells + [str(len(rs))]) + " |")
    table = "\n".join(md)
    (out / "table3.md").write_text(table + "\n")
    return table
