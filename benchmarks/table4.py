"""Table 4 under one protocol, as ``pmg eval --table 4 --protocol P`` runs it, with the recommender's
epochs and the benchmark's user count as options (to fit a run into a CPU budget).

    .venv/bin/python benchmarks/table4.py --benchmark clothing --bench-dir data/benchmarks/clothing-1000 \\
        --limit 200 --protocol warm --out results/clothing-table4 --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pmg.evaluation.protocols import PROTOCOLS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benchmark", choices=["emoticons", "clothing"], default="emoticons")
    ap.add_argument("--bench-dir", type=Path, default=None)
    ap.add_argument("--protocol", choices=PROTOCOLS, default="warm")
    ap.add_argument("--limit", type=int, default=None, help="only the benchmark's first N users (by file name)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache-dir", type=Path, default=None)
    args = ap.parse_args()

    import torch

    from pmg.api import ModelSpec, default_cache_dir
    from pmg.batch import BatchConfig
    from pmg.evaluation.recommend import RecConfig, run_table4
    from pmg.scenarios import default_model
    from pmg.scoring.scorers import load_scorer

    torch.set_num_threads(args.threads)
    scenario = "clothing" if args.benchmark == "clothing" else "emoticon"
    bench = args.bench_dir or Path("data/benchmarks") / args.benchmark
    out = args.out or Path("results") / f"{args.benchmark}-table4"
    cache = args.cache_dir or default_cache_dir()
    model, scorer = default_model(scenario), default_model(scenario)
    spec = ModelSpec("smollm2", model, scorer, "none", cache_dir=str(cache), model_cache_dir=str(cache),
                     threads=args.threads, soft="auto")
    t0 = time.perf_counter()
    print(run_table4(bench, out, spec, load_scorer(scorer), protocol=args.protocol, limit=args.limit, seeds=args.seeds,
                     cfg=RecConfig(epochs=args.epochs), batch=BatchConfig(users_per_call=8, threads_per_worker=args.threads)))
    print(f"wrote {out}/table4-{args.protocol}.md, .csv (and table4.md, .csv) in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
