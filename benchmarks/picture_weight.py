"""Choose the selection's picture weight (and a) on a split: re-rank `pmg eval`'s recorded grids offline.

    .venv/bin/python benchmarks/picture_weight.py results/emoticons-open-val/results.jsonl [more.jsonl ...]

Every PMG record keeps each candidate's text similarities mixed with its picture similarities
(d = (1 - w) d_text + w sim, ``pmg.scoring.select.mix_pictures``), the picture similarities themselves
(``p_img``, ``t_img``), the weight it ran with and the ground truth's rank for every candidate
(``ideal_rank_grid``). This recovers the text terms, re-mixes them for each picture weight w and a,
re-selects, and prints how often the chosen candidate holds the ideal image (the ground truth in its 5
nearest real emoji) per file, and their mean: pick the best cell on val, then report it on test. The
oracle (best candidate of the grid) bounds every cell. Not a test.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
ALPHAS = (0.0, 0.3, 0.5, 0.7, 1.0)


def text_terms(c: dict, weight: float) -> tuple[float | None, float]:
    """(d_p, d_t) of the text alone, from a candidate recorded with picture weight ``weight``."""
    def unmix(d, sim):
        if sim is None or weight == 0 or d is None:
            return d
        if weight == 1:
            return None  # the text term is lost; treated as absent
        return (d - weight * sim) / (1 - weight)

    return unmix(c["d_p"], c.get("p_img")), unmix(c["d_t"], c.get("t_img"))


def choose(grid: list[dict], recorded_weight: float, weight: float, alpha: float) -> int:
    """The candidate PMG's selection keeps at picture weight ``weight`` and a ``alpha`` (``pmg.scoring.select``)."""
    import torch

    from pmg.scoring.select import mix_pictures, select_best, z_scores

    def column(values):
        return None if any(v is None for v in values) else torch.tensor(values, dtype=torch.float64)

    text = [text_terms(c, recorded_weight) for c in grid]
    d_p = mix_pictures(column([p for p, _ in text]), column([c.get("p_img") for c in grid]), weight)
    d_t = mix_pictures(column([t for _, t in text]), column([c.get("t_img") for c in grid]), weight)
    return select_best(z_scores(d_p, d_t if d_t is not None else torch.full((len(grid),), 1e-4), alpha))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path, nargs="+", help="results.jsonl files of `pmg eval` runs (PMG rows are used)")
    ap.add_argument("--recorded-weight", type=float, default=0.5, help="the --picture-weight the runs used")
    a = ap.parse_args()
    files = {p: [r for r in map(json.loads, p.read_text().splitlines()) if r.get("variant") == "PMG" and "ideal_rank_grid" in r]
             for p in a.results}
    print("ideal image (truth in the 5 nearest) of the re-selected candidate, mean over the files; rows: picture "
          "weight, columns: a")
    for p, rows in files.items():
        oracle = np.mean([min(r["ideal_rank_grid"]) <= 5 for r in rows])
        print(f"  {p}: {len(rows)} users, oracle {100 * oracle:.1f}%")
    print("w \\ a " + "".join(f"{al:>8g}" for al in ALPHAS))
    for w in WEIGHTS:
        cells = []
        for al in ALPHAS:
            rates = [np.mean([r["ideal_rank_grid"][choose(r["grid"], a.recorded_weight, w, al)] <= 5 for r in rows])
                     for rows in files.values()]
            cells.append(f"{100 * np.mean(rates):7.1f}%")
        print(f"{w:<6g}" + "".join(cells))


if __name__ == "__main__":
    main()
