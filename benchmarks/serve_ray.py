"""``pmg serve --engine ray`` against the single-process service, with the shipped models, in one run.

    .venv/bin/python benchmarks/serve_ray.py [--threads 2] [--requests 24] [--repeats 8]

Serves the same requests from the single-process service (uvicorn, as benchmarks/serve.py starts it),
then from Ray Serve with 1 and with 2 model replicas on a local Ray; each is given ``--threads`` torch
threads in all (2 replicas: half each). Prints, for each:
* warm latency: one request at a time, keywords cached (p50, p95), and its ratio to the single process;
* throughput (images per second) with 8 concurrent clients, and 2 replicas' ratio to 1.
Not a test: numbers depend on the machine. Stop background jobs first.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from serve import free_port, pct, post, serve, throughput, user  # noqa: E402 - benchmarks/serve.py

from pmg.api import PMG, ModelSpec  # noqa: E402
from pmg.service import ServiceConfig  # noqa: E402

CLIENTS = 8


def measure(url: str, a) -> dict:
    """Warm every user's keywords and the models, then time one request at a time and 8 clients."""
    for i in range(a.requests):
        post(url, user(i))
    warm = [post(url, user(0)) for _ in range(a.repeats)]
    return {"p50": pct(warm, 0.5), "p95": pct(warm, 0.95), "throughput": throughput(url, CLIENTS, a.requests)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch threads per configuration, in all")
    ap.add_argument("--requests", type=int, default=24, help="requests per throughput run")
    ap.add_argument("--repeats", type=int, default=8, help="warm latency samples")
    a = ap.parse_args()
    from pmg.service.ray_serve import RayServeConfig, RayService

    rows = {}
    with tempfile.TemporaryDirectory() as cache:
        box: dict = {}
        # loaded on a thread that then exits, as `pmg serve` does (see benchmarks/serve.py)
        loader = threading.Thread(target=lambda: box.update(pmg=PMG.from_names(cache_dir=cache, threads=a.threads)))
        loader.start()
        loader.join()
        pipe = box["pmg"].generator
        url, server = serve(box["pmg"], max_batch=8)
        rows["single process"] = measure(url, a)
        server.should_exit = True
        time.sleep(0.5)
        del box["pmg"]
        service = ServiceConfig(max_batch=8, queue_size=64, timeout_s=600)
        for n in (1, 2):
            threads = max(1, a.threads // n)
            cluster = RayServeConfig(replicas=n, threads=threads)
            with RayService(ModelSpec(cache_dir=cache, threads=threads), service, cluster, port=free_port()) as ray_service:
                rows[f"Ray Serve, {n} replica{'s' * (n > 1)}"] = measure(ray_service.url, a)
    single, one, two = rows.values()
    print(f"machine: {a.threads} torch threads per configuration; generator {pipe.name}, {pipe.default_steps} steps, 5 candidates")
    print(f"  {'':28} warm p50    p95   vs single   throughput ({CLIENTS} clients, images/s)")
    for name, r in rows.items():
        print(f"  {name:28} {r['p50']:6.3f} {r['p95']:6.3f}   {r['p50'] / single['p50']:5.2f}x   {r['throughput']:7.2f}")
    print(f"  Ray Serve warm latency / single process: {one['p50'] / single['p50']:.2f}x (1 replica); "
          f"throughput 2 replicas / 1 replica: {two['throughput'] / one['throughput']:.2f}x")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
