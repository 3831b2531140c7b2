"""Per-benchmark checks beyond Table 2, as hooks the runner calls for each record (``pmg.scenarios``
names which benchmark has which):

* ``IdealImage`` (emoticons): where the ground-truth emoji falls among all real emoji of the user's
  style by LPIPS to the chosen image, every grid candidate's rank, and the grid's spread;
* ``GarmentReading`` (clothing): the colour, pattern and type the scorer reads in the chosen image;
* ``ThemeNamed`` (open-theme emoticons): whether a preference keyword names the user's theme.

A hook has ``record(ctx) -> dict`` (fields added to one (user, variant) record) and
``table(records, variants) -> list[str]`` (Markdown lines added under Table 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from pmg.evaluation.lpips import LPIPS
from pmg.evaluation.metrics import to_tensor
from pmg.evaluation.stats import bootstrap_ci, format_ci

__all__ = ["METRIC_SIZE", "RecordContext", "Extra", "IdealImage", "GarmentReading", "EmojiReferences", "ideal_ranks",
           "ideal_rank", "reference_features", "distinct_candidates", "trend", "garment_reading", "ThemeNamed", "build_extras"]

METRIC_SIZE = 64  # images are compared at this size (generated 32 px images are enlarged, bilinear)


@dataclass
class RecordContext:
    """What a hook sees of one (user, variant): the PMG, its result, the user's ground truth."""

    lp: LPIPS
    pmg: object
    result: object  # PMGResult
    truth: dict  # the user's ground_truth.json entry
    target: Image.Image  # the real target image
    variant: str


class Extra(Protocol):
    def record(self, ctx: RecordContext) -> dict: ...

    def table(self, records: list[dict], variants: list[str]) -> list[str]: ...


# ------------------------------------------------------------------------------------ ideal image
class EmojiReferences:
    """Every real emoji of each art style (the pmg-mini art folder), at ``METRIC_SIZE`` px, for the
    ideal-image rank. Their LPIPS features are computed once per style (``features``) and shared."""

    def __init__(self, art: Path):
        from pmg.evaluation.benchmarks.emoticons import load_art

        meta, images = load_art(art)
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


class IdealImage:
    """The ideal-image check (emoticons): the chosen image's rank of the ground truth among all real
    emoji of the user's style; for PMG every candidate's rank (what a perfect selection would reach)
    and the grid's spread (distinct candidates, d_p / d_t trends with w_p)."""

    def __init__(self, references: EmojiReferences):
        self.references = references

    def record(self, ctx: RecordContext) -> dict:
        res, out = ctx.result, {}
        full = ctx.variant == "PMG" and len(res.candidates) > 1
        if ctx.truth.get("target_hexcode"):
            style = ctx.truth["style"]
            keys = self.references.by_style[style][0]
            images = [c.image for c in res.candidates] if full else [res.best_image]
            ranked = ideal_ranks(ctx.lp, images, self.references.features(ctx.lp, style), keys.index(ctx.truth["target_hexcode"]))
            rank, to_truth = ranked[res.best] if full else ranked[0]
            out = {"ideal_rank": rank, "ideal_top5": float(rank <= 5), "ideal_lpips": to_truth, "ideal_of": len(keys)}
            if full:
                out.update(ideal_rank_grid=[r for r, _ in ranked], ideal_top5_oracle=float(min(r for r, _ in ranked) <= 5),
                           ideal_with_target=float(any(r <= 5 and c.w_t > 0 for (r, _), c in zip(ranked, res.candidates))))
            out["style_read"] = float(self.style_of(ctx.lp, res.best_image) == style)
        if getattr(res, "picture_images", None) and ctx.variant == "PMG":
            out["to_pictures"] = nearest_lpips(ctx.lp, [c.image for c in res.candidates], res.picture_images)
        if full:
            share = [c.w_p / (c.w_p + c.w_t) for c in res.candidates]
            out.update(distinct=distinct_candidates(ctx.lp, [c.image for c in res.candidates]),
                       d_p_trend=trend(share, [c.d_p for c in res.candidates]),
                       d_t_trend=trend(share, [c.d_t for c in res.candidates]))
        return out

    def style_of(self, lp: LPIPS, image: Image.Image, k: int = 5) -> str:
        """The art style an independent reader sees (no part of the selection): the majority style of the
        ``k`` real emoji nearest the image by LPIPS, over the art of the generator's styles."""
        from pmg.evaluation.benchmarks.emoticons import STYLES

        feats = lp.unit_features(to_tensor([image], METRIC_SIZE) * 2 - 1)
        dists, styles = [], []
        for style in STYLES:
            d = lp.distance(feats, self.references.features(lp, style))
            dists.append(d), styles.extend([style] * len(d))
        nearest = torch.topk(torch.cat(dists), k, largest=False).indices.tolist()
        votes = [styles[i] for i in nearest]
        return max(dict.fromkeys(votes), key=votes.count)

    def table(self, records: list[dict], variants: list[str]) -> list[str]:
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
            md += picture_lines(records)
            md += ["", f"Ideal image: rank of the ground-truth emoji among all real emoji of the user's style by LPIPS to "
                       f"the chosen image (1 = nearest).{best_of} Grid (PMG): {np.mean([r['distinct'] for r in pmg_rs]):.2f} of "
                       f"{len(pmg_rs[0]['grid'])} candidates distinct on average (LPIPS >= 0.02); d_p rises and d_t falls "
                       f"with w_p for {100 * rises:.0f}% of users."]
        return md


@torch.no_grad()
def nearest_lpips(lp: LPIPS, images: list[Image.Image], pictures: list[Image.Image]) -> float:
    """The smallest LPIPS between any image and any picture (a candidate pasted from an image prompt is
    within 0.02 of it)."""
    a = lp.unit_features(to_tensor(images, METRIC_SIZE) * 2 - 1)
    b = lp.unit_features(to_tensor(pictures, METRIC_SIZE) * 2 - 1)
    return float(min(lp.distance([f[i : i + 1] for f in a], b).min() for i in range(len(images))))


def picture_lines(records: list[dict]) -> list[str]:
    """What the independent reader and the paste check say of PMG's images (style read, candidates near an
    image prompt, the ideal held by a candidate that also carries the target)."""
    rs = [r for r in records if r["variant"] == "PMG"]
    lines = []
    styled = [r["style_read"] for r in rs if "style_read" in r]
    if styled:
        lines.append(f"Style read by an independent reader (the majority style of the 5 LPIPS-nearest real emoji over "
                     f"all styles): the user's for {format_ci(*[100 * x for x in bootstrap_ci(styled)], digits=1)} % of "
                     f"chosen images.")
    near = [r["to_pictures"] for r in rs if "to_pictures" in r]
    if near:
        lines.append(f"Image prompts: {sum(d < 0.02 for d in near)} of {len(near)} users have a candidate within LPIPS "
                     f"0.02 of a picture that went in (pasted); median nearest {np.median(near):.3f}.")
    with_t = [r["ideal_with_target"] for r in rs if "ideal_with_target" in r]
    if with_t:
        lines.append(f"The ideal is held by a candidate that also carries the target (w_t > 0, not 4:0 alone) for "
                     f"{100 * np.mean(with_t):.1f} % of users.")
    return [""] + lines if lines else []


# ------------------------------------------------------------------------------------ garments
def garment_reading(scorer, image: Image.Image, truth: dict) -> dict:
    """Garments: the type, colour and pattern the scorer reads in ``image``, and whether each is the truth's."""
    from pmg.evaluation.benchmarks.garments import classify_garments

    seen = {k: v[0] for k, v in classify_garments(scorer, [image]).items()}
    return {"garment_type_ok": float(seen["type"] == truth["type"]), "garment_colour_ok": float(seen["colour"] == truth["colour"]),
            "garment_pattern_ok": float(seen["pattern"] == truth["pattern"]), "garment_seen": seen}


class GarmentReading:
    """Clothing: does the chosen image have the user's colour and pattern, and the target's type, as
    the scorer reads it? For PMG also the same reading of the real target (the reader's own accuracy)."""

    def record(self, ctx: RecordContext) -> dict:
        out = garment_reading(ctx.pmg.scorer, ctx.result.best_image, ctx.truth)
        if ctx.variant == "PMG":
            out["garment_truth"] = garment_reading(ctx.pmg.scorer, ctx.target, ctx.truth)
        return out

    def table(self, records: list[dict], variants: list[str]) -> list[str]:
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


# ------------------------------------------------------------------------------------ theme named
class ThemeNamed:
    """Open themes: does a preference keyword name the user's theme (``open_themes.names_theme``)?"""

    def __init__(self, embed=None):
        self.embed = embed  # MiniLM sentence embeddings (``SentenceEmbedder``), loaded on first use when None

    def record(self, ctx: RecordContext) -> dict:
        from pmg.evaluation.benchmarks.open_themes import theme_named

        names = ctx.truth.get("theme_names")
        if not names or ctx.variant != "PMG":
            return {}
        if self.embed is None:
            from pmg.keywords.ground import SentenceEmbedder

            self.embed = SentenceEmbedder()
        return {"theme_named": float(theme_named(ctx.result.keywords.preference, names, ctx.truth["theme"], self.embed))}

    def table(self, records: list[dict], variants: list[str]) -> list[str]:
        rs = [r["theme_named"] for r in records if "theme_named" in r]
        if not rs:
            return []
        return ["", f"Theme named: a preference keyword (top 10) names the user's theme for "
                    f"{format_ci(*[100 * x for x in bootstrap_ci(rs)], digits=1)} % of users (a keyword holds one of its "
                    f"subgroup's words, e.g. 'tool', 'musical' for music, or is within MiniLM cosine 0.6 of them)."]


def build_extras(names: tuple[str, ...], *, references: EmojiReferences | None = None) -> list[Extra]:
    """The hooks a benchmark names (``pmg.scenarios.Benchmark.extras``); 'ideal-image' only with references."""
    extras: list[Extra] = []
    for name in names:
        if name == "ideal-image" and references is not None:
            extras.append(IdealImage(references))
        elif name == "garments":
            extras.append(GarmentReading())
        elif name == "theme-named":
            extras.append(ThemeNamed())
    return extras
