"""Run a benchmark split through PMG: one record per (user, variant).

Table 2 (section 4.5.1): PMG / without soft embeddings / without keywords / without both, each with
LPIPS and SSIM of the chosen image against the user's history images (mean over items) and against
the ground-truth target image. Per-benchmark checks come from hooks (``pmg.evaluation.extras``); the
tables and figures are written by ``pmg.evaluation.tables``. Images are compared at ``METRIC_SIZE`` px.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from pmg.api import PMG, GenerationConfig
from pmg.behaviours.schema import load_user
from pmg.evaluation.extras import (METRIC_SIZE, EmojiReferences, Extra, RecordContext, build_extras, distinct_candidates,
                                   garment_reading, ideal_rank, ideal_ranks, trend)
from pmg.evaluation.lpips import LPIPS
from pmg.evaluation.metrics import lpips as lpips_fn
from pmg.evaluation.metrics import ssim, to_tensor
from pmg.evaluation.tables import METRICS, write_movie_table, write_table3, write_tables

__all__ = ["Variant", "TABLE2_VARIANTS", "evaluate_split", "evaluate_adapters", "evaluate_movies_text",
           # kept here for callers of the single module this once was
           "write_tables", "write_table3", "write_movie_table", "EmojiReferences", "ideal_rank", "ideal_ranks",
           "distinct_candidates", "trend", "garment_reading", "METRIC_SIZE", "METRICS"]


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


def _split(bench: Path, split: str, limit: int | None) -> tuple[list[str], dict]:
    ids = json.loads((bench / "split.json").read_text())[split]
    truth = json.loads((bench / "ground_truth.json").read_text())
    return (ids[:limit] if limit else ids), truth


def _progress(ids: list[str], desc: str, progress: bool):
    if not progress:
        return ids
    from tqdm import tqdm

    return tqdm(ids, desc=desc, unit="user")


def _default_extras(scenario: str, references: EmojiReferences | None) -> list[Extra]:
    """The hooks of the scenario's benchmarks (``pmg.scenarios``)."""
    from pmg.scenarios import BENCHMARKS

    names = tuple(dict.fromkeys(x for b in BENCHMARKS.values() if b.scenario == scenario for x in b.extras))
    return build_extras(names, references=references)


def evaluate_split(pmg: PMG, bench: Path, split: str, config: GenerationConfig, *, limit: int | None = None,
                   variants=TABLE2_VARIANTS, net: str = "alex", progress: bool = True,
                   references: EmojiReferences | None = None, strip_attributes: bool = False,
                   extras: list[Extra] | None = None) -> list[dict]:
    """One record per (user, variant): metrics, keywords, the chosen candidate, the grid's scores, and
    what the benchmark's hooks add (``extras``; default: the scenario's, the ideal-image check only with
    ``references``). ``strip_attributes``: the history items lose their ``attributes`` (art style and
    tags), so what the keywords know of the style comes from the item images (``pmg``'s captioner)."""
    ids, truth = _split(bench, split, limit)
    scenario = load_user(bench / "users" / f"{ids[0]}.json").scenario.value if ids else "emoticon"
    if pmg.soft_for(scenario) is None:
        variants = [v for v in variants if not v.use_soft or v.name == "PMG"]
    extras = _default_extras(scenario, references) if extras is None else extras
    lp = LPIPS(net)
    records = []
    for uid in _progress(ids, f"eval {bench.name}/{split}", progress):
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
                   "grid": [{"w_p": c.w_p, "w_t": c.w_t, "d_p": c.d_p, "d_t": c.d_t, "z": c.z, "p_img": c.p_img, "t_img": c.t_img}
                            for c in res.candidates],
                   "soft": v.use_soft and pmg.soft_for(scenario) is not None}
            if v.name == "PMG":  # the real target image against the same history: what the ideal answer scores
                rec["truth_history"] = {k: x for k, x in _image_metrics(lp, target, history, target).items()
                                        if k.endswith("_history")}
            ctx = RecordContext(lp, pmg, res, truth[uid], target, v.name)
            for extra in extras:
                rec.update(extra.record(ctx))
            rec["_image"] = res.best_image
            records.append(rec)
    return records


def evaluate_movies_text(extractor, bench: Path, split: str, *, limit: int | None = None, progress: bool = True) -> list[dict]:
    """Text-side metrics (no posters offline): do the preference keywords name the user's top
    history genres, and do the target keywords name the target's genres?"""
    from pmg.evaluation.benchmarks.movies import keyword_coverage

    ids, truth = _split(bench, split, limit)
    out = []
    for uid in _progress(ids, f"eval {bench.name}/{split}", progress):
        kw = extractor(load_user(bench / "users" / f"{uid}.json"))
        t = truth[uid]
        out.append({"user_id": uid, "preference": kw.preference, "target_keywords": kw.target,
                    "history_genre_coverage": keyword_coverage(kw.preference, t["history_genres"]),
                    "target_genre_coverage": keyword_coverage(kw.target, [g for g in t["target_genres"] if g != "(no genres listed)"])})
    return out


def evaluate_adapters(pmg: PMG, adapters: dict[str, object], bench: Path, split: str, config: GenerationConfig,
                      *, limit: int | None = None, references: EmojiReferences | None = None) -> list[dict]:
    """Table 3: the full PMG variant once per soft-embedding adapter (a ``SoftEmbedder`` each), each run by
    its own ``PMG`` around the same models (``pmg`` is left as it was); with ``references``, the
    ideal-image rank of each chosen image too."""
    records = []
    for name, soft in adapters.items():
        with_adapter = PMG(pmg.extractor, pmg.generator, pmg.scorer, soft=soft)
        cfg = soft.model.config
        for r in evaluate_split(with_adapter, bench, split, config, limit=limit, variants=(TABLE2_VARIANTS[0],),
                                progress=False, references=references):
            records.append({**r, "adapter": name, "p_tuning": cfg.use_prefix, "L": cfg.num_mm_tokens})
    return records
