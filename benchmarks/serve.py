"""The service under load, with the shipped models, measured in one run on this machine.

    .venv/bin/python benchmarks/serve.py [--threads 2] [--requests 24]

Starts ``pmg serve``'s app (uvicorn, 127.0.0.1, a free port) twice: batching on (up to 8 users per
U-Net pass) and off (one request at a time). Prints:
* the bare batched grid time of one user (``PMGPipeline`` alone, as benchmarks/perf.py measures it);
* one warm request's latency, p50/p95, keywords cached and cold (a new user each time), and the
  cached one's ratio to the bare grid;
* throughput (images per second) at 1, 4 and 8 concurrent clients, batched vs one at a time, and
  the ratio. Not a test: numbers depend on the machine. Stop background jobs first.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import torch  # noqa: E402

from pmg.api import PMG  # noqa: E402
from pmg.service import ServiceConfig, create_app  # noqa: E402

ANIMALS = ["cat", "dog", "fox", "bear", "panda", "tiger", "lion", "frog", "owl", "bee", "pig", "cow"]
MOODS = ["I'm so happy today!", "I miss her so much...", "This is so annoying!!", "Wow, I did not expect that!"]


def user(i: int, tag: str = "") -> dict:
    a = ANIMALS[i % len(ANIMALS)]
    return {"user_id": f"{tag}{i}", "scenario": "emoticon", "target": {"message": MOODS[i % len(MOODS)]},
            "history": [{"title": f"{a} face", "attributes": {"style": "twemoji"}},
                        {"title": f"grinning {a}{tag}", "attributes": {"style": "twemoji"}},
                        {"title": f"sleeping {a}", "attributes": {"style": "twemoji"}}],
            "conversations": [f"look at my {a}"], "options": {"seed": i}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(pmg: PMG, max_batch: int) -> tuple[str, object]:
    import uvicorn

    port = free_port()
    app = create_app(pmg, ServiceConfig(max_batch=max_batch, queue_size=64, timeout_s=600, batch_window_s=0.05))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(url + "/v1/health").status_code == 200:
                return url, server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not start")


def post(url: str, body: dict) -> float:
    t0 = time.perf_counter()
    r = httpx.post(url + "/v1/generate", json=body, timeout=600)
    r.raise_for_status()
    return time.perf_counter() - t0


def throughput(url: str, clients: int, requests: int) -> float:
    bodies = [user(i) for i in range(requests)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda b: post(url, b), bodies))
    return 5 * requests / (time.perf_counter() - t0)


def pct(v: list[float], q: float) -> float:
    v = sorted(v)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--requests", type=int, default=24, help="requests per throughput run")
    ap.add_argument("--repeats", type=int, default=8, help="single-request latency samples")
    a = ap.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as cache:
        # Models load and the bare grid is timed on a thread that then exits, as `pmg serve` loads its
        # models: a thread that has run 2-thread torch work keeps an OpenMP pool, and while it exists
        # the service worker's U-Net runs ~1.6x slower (libgomp throttles its threads' spinning when
        # more threads than cores are managed). The worker then owns all torch work.
        box: dict = {}

        def setup() -> None:
            torch.set_num_threads(a.threads)
            pmg = PMG.from_names(cache_dir=cache, threads=a.threads)
            kw = pmg.keywords(__import__("pmg.service.schemas", fromlist=["x"]).to_behaviours(
                __import__("pmg.service.schemas", fromlist=["x"]).GenerateIn(**user(0))))
            pipe = pmg.generator
            pipe(kw.target, kw.preference, generator=torch.Generator().manual_seed(0))  # warm-up
            bare = []
            for _ in range(3):
                t0 = time.perf_counter()
                pipe(kw.target, kw.preference, generator=torch.Generator().manual_seed(0))
                bare.append(time.perf_counter() - t0)
            box.update(pmg=pmg, pipe=pipe, bare_s=statistics.median(bare))

        loader = threading.Thread(target=setup)
        loader.start()
        loader.join()
        pmg, pipe, bare_s = box["pmg"], box["pipe"], box["bare_s"]

        rows = {}
        for name, max_batch in (("batched", 8), ("one at a time", 1)):
            url, server = serve(pmg, max_batch)
            for i in range(a.requests):  # every user's keywords cached
                post(url, user(i))
            if name == "batched":
                cached = [post(url, user(0)) for _ in range(a.repeats)]
                cold = [post(url, user(i, tag=f"new{time.time_ns()}")) for i in range(max(3, a.repeats // 2))]
            rows[name] = {c: throughput(url, c, a.requests) for c in (1, 4, 8)}
            server.should_exit = True
            time.sleep(0.5)
    print(f"machine: {a.threads} torch threads; generator {pipe.name}, {pipe.default_steps} steps, 5 candidates")
    print(f"  bare batched grid (PMGPipeline alone)          {bare_s:7.3f} s")
    print(f"  one request, keywords cached   p50 {pct(cached, .5):6.3f} s  p95 {pct(cached, .95):6.3f} s"
          f"   ({pct(cached, .5) / bare_s:.2f}x the bare grid)")
    print(f"  one request, keywords cold     p50 {pct(cold, .5):6.3f} s  p95 {pct(cold, .95):6.3f} s")
    print("  throughput, images/s        batched   one at a time   ratio")
    for c in (1, 4, 8):
        b, o = rows["batched"][c], rows["one at a time"][c]
        print(f"    {c} concurrent clients      {b:7.2f}   {o:13.2f}   {b / o:5.2f}x")
    print(json.dumps({"bare_s": bare_s, "cached_p50": pct(cached, .5), "cold_p50": pct(cold, .5), "throughput": rows}))


if __name__ == "__main__":
    main()
