"""The tables of an evaluation, as Markdown and CSV: Table 2 (ablations) with the weight grid and the
per-benchmark extras, Table 3 (soft adapters), and the movies' text-side table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from pmg.evaluation.extras import METRIC_SIZE, Extra, GarmentReading, IdealImage
from pmg.evaluation.figures import samples_sheet, weight_grid_plot
from pmg.evaluation.stats import bootstrap_ci, format_ci

__all__ = ["METRICS", "write_tables", "write_table3", "write_movie_table"]

METRICS = ("lpips_history", "ssim_history", "lpips_target", "ssim_target")


def _about(records: list[dict]) -> tuple[str, ...]:
    """The ground-truth fields that describe a user, from the benchmark whose fields the records carry."""
    from pmg.scenarios import BENCHMARKS

    first = records[0] if records else {}
    return next((b.about for b in BENCHMARKS.values() if b.about and all(k in first for k in b.about)), ())


def write_tables(records: list[dict], out: Path, bench: Path, scorer_note: str = "", *,
                 extras: list[Extra] | None = None) -> str:
    """Write table2.{md,csv}, weight_grid.{csv,png}, samples.png, results.jsonl; return the Markdown.
    ``extras``: the hooks whose tables follow Table 2 (default: every kind, each shown when the records
    carry its fields)."""
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
    _table2_csv(rows, truth, out / "table2.csv")
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
    for extra in extras if extras is not None else [IdealImage(None), GarmentReading()]:
        md += extra.table(records, variants)
    table = "\n".join(md)
    (out / "table2.md").write_text(table + "\n")
    _write_weight_grid(records, out)
    samples_sheet(records, bench, out / "samples.png", about=_about(records))
    with open(out / "results.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps({k: v for k, v in r.items() if k != "_image"}) + "\n")
    return table


def _table2_csv(rows: list[dict], truth: dict, path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variant", "users", "soft_embeddings"] + [f"{m}_{s}" for m in METRICS for s in ("mean", "ci_low", "ci_high")])
        for row in rows:
            w.writerow([row["variant"], row["users"], row["soft"]] + [f"{x:.6f}" for m in METRICS for x in row[m]])
        if truth:
            cells = [[f"{x:.6f}" for x in truth[m]] if m in truth else ["", "", ""] for m in METRICS]
            w.writerow(["ground truth", truth["users"], False] + sum(cells, []))


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
        weight_grid_plot(grid_rows, out / "weight_grid.png")


def _truth_row(records: list[dict]) -> dict:
    """Bootstrap intervals of the real target image's history metrics (``truth_history``), if recorded."""
    rs = [r["truth_history"] for r in records if "truth_history" in r]
    return {"users": len(rs), **{m: bootstrap_ci([r[m] for r in rs]) for m in rs[0]}} if rs else {}


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
