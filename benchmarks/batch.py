"""Batch throughput: users per minute for 1 and 2 local workers and for Ray with 2 actors, one thread
per worker, on benchmark users whose keywords are cached (measured in one run on this machine).

    .venv/bin/python benchmarks/batch.py [--bench data/benchmarks/emoticons] [--users 40]

First a warm-up batch fills the keyword cache (the LLM stage is not what is compared); then each
engine generates the same users into a fresh folder. Printed per engine: wall seconds (models and Ray
start-up included), users per minute once the workers are up (after each worker's first chunk), and the
ratios the issue asks for: 2 workers vs 1, Ray vs local at 2 workers. Not a test.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pmg.api import GenerationConfig, ModelSpec  # noqa: E402
from pmg.batch import BatchConfig, run_batch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, default=Path("data/benchmarks/emoticons"))
    ap.add_argument("--users", type=int, default=40)
    ap.add_argument("--users-per-call", type=int, default=4)
    ap.add_argument("--cache-dir", type=Path, default=None, help="keyword cache (default: a fresh temporary folder)")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pmg-batch-bench-"))
    try:
        users = tmp / "users"
        users.mkdir()
        for f in sorted((a.bench / "users").glob("*.json"))[: a.users]:
            text = f.read_text().replace('"../images/', f'"{(a.bench / "images").resolve()}/')
            (users / f.name).write_text(text)
        cache = a.cache_dir or tmp / "cache"
        spec = ModelSpec(captioner="none", cache_dir=str(cache), threads=1)
        config = GenerationConfig(seed=0)
        t0 = time.perf_counter()
        warm = run_batch(users, tmp / "warm", spec, config, BatchConfig(workers=2, users_per_call=a.users_per_call))
        print(f"warm-up (keywords into the cache): {time.perf_counter() - t0:.0f} s, {warm['generated']} users\n")
        rows = {}
        for name, batch in [("local, 1 worker", BatchConfig(workers=1, users_per_call=a.users_per_call)),
                            ("local, 2 workers", BatchConfig(workers=2, users_per_call=a.users_per_call)),
                            ("ray, 2 actors", BatchConfig(engine="ray", workers=2, users_per_call=a.users_per_call))]:
            s = run_batch(users, tmp / name.replace(" ", "").replace(",", "_"), spec, config, batch, progress=False)
            assert s["generated"] == a.users and s["keywords_cached"] == a.users, s
            rows[name] = s
            print(f"{name:18s} wall {s['wall_s']:6.1f} s   {s['users_per_minute']:6.1f} users/min overall   "
                  f"{s['users_per_minute_after_first_chunk']:6.1f} users/min once up")
        one, two, ray = (rows[k]["users_per_minute_after_first_chunk"] for k in rows)
        print(f"\n2 workers / 1 worker:      {two / one:.2f}x (goal >= 1.7x)")
        print(f"ray 2 actors / local 2:    {ray / two:.2f}x (goal within 15%: >= 0.85x)")
        w1, w2, wr = (rows[k]["wall_s"] for k in rows)
        print(f"wall-clock, start-up included: 2 workers {w1 / w2:.2f}x faster than 1; ray {w2 / wr:.2f}x of local")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
