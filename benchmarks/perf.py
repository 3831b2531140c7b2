"""Seconds per personalised image, by stage, measured in one run on this machine.

    .venv/bin/python benchmarks/perf.py [--user examples/users/cat_lover.json] [--threads 2] [--repeats 3]

Prints: keyword extraction cold with each installed LLM backend for the same GGUF file (transformers,
llama.cpp through xllamacpp) and their ratio; LLM keywords cold (empty cache) and cached with the
default backend; soft embeddings (when an adapter is given);
generation of the weight grid in one batched pass against the same candidates generated one call at
a time (and the ratio); scoring; peak resident memory. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pmg.api import PMG, GenerationConfig  # noqa: E402
from pmg.behaviours.schema import load_user  # noqa: E402


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--user", type=Path, default=Path("examples/users/cat_lover.json"))
    ap.add_argument("--generator", default="pmg-mini")
    ap.add_argument("--soft", default="none", help="'auto' (the bundled adapter), 'none', or an adapter folder")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default: the generator's own)")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    user = load_user(a.user)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        pmg = PMG.from_names(generator=a.generator, cache_dir=tmp, threads=a.threads, soft=a.soft)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        kw = pmg.keywords(user)
        cold = time.perf_counter() - t0
        cached, _ = timed(lambda: pmg.keywords(user), a.repeats)
    rows = [("load models", load_s), ("LLM keywords, cold", cold), ("LLM keywords, cached", cached)]
    backend_rows = compare_backends(user, a.threads)
    soft = None
    adapter = pmg.soft_for(user.scenario.value)
    if adapter is not None:
        s, soft = timed(lambda: adapter.embed(kw), a.repeats)
        rows.append(("soft embeddings", s))
    pipe = pmg.generator
    a.steps = a.steps or pipe.default_steps
    cfg = GenerationConfig(num_inference_steps=a.steps, weights=pipe.default_grid, noises=getattr(pipe, "default_noises", 1))
    gen = lambda: pipe(kw.target, kw.preference, weights=cfg.weights, soft_embeds=soft,  # noqa: E731
                       num_inference_steps=a.steps, generator=torch.Generator().manual_seed(0), noises=cfg.noises)
    gen()  # warm-up
    batched, out = timed(gen, a.repeats)
    one_by_one = lambda: [pipe(kw.target, kw.preference, weights=[w], soft_embeds=soft,  # noqa: E731
                               num_inference_steps=a.steps, generator=torch.Generator().manual_seed(n))
                          for n in range(cfg.noises) for w in cfg.weights]
    sequential, _ = timed(one_by_one, a.repeats)
    k = f"{len(cfg.weights) * cfg.noises} candidates" + (f" = {len(cfg.weights)} x {cfg.noises} noises" if cfg.noises > 1 else "")
    rows.append((f"generation, {k} batched", batched))
    rows.append((f"generation, {k} one at a time", sequential))
    score_s, _ = timed(lambda: (pmg.scorer.embed_images(out.images), pmg.scorer.embed_texts([", ".join(kw.target), ", ".join(kw.preference)])), a.repeats)
    rows.append(("scoring", score_s))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"machine: {torch.get_num_threads()} torch threads, {a.steps} denoising steps, generator {pipe.name}")
    for name, s in rows:
        print(f"  {name:<50s} {s:8.3f} s")
    print(f"  {'batched vs one-at-a-time speed-up':<50s} {sequential / batched:8.2f} x")
    print(f"  {'keyword cache speed-up':<50s} {cold / max(cached, 1e-9):8.0f} x")
    print(f"  {'peak resident memory':<50s} {peak_mb:8.0f} MB")
    print("keyword extraction, cold, per backend (same GGUF file, grounded):")
    for name, secs, kw_ in backend_rows:
        print(f"  {name:<50s} {secs:8.3f} s   {', '.join(kw_.preference)} | {', '.join(kw_.target)}")
    if len(backend_rows) == 2:
        print(f"  {'llama.cpp vs transformers speed-up':<50s} {backend_rows[0][1] / backend_rows[1][1]:8.2f} x")


def compare_backends(user, threads: int) -> list[tuple[str, float, object]]:
    """Cold keyword extraction (models loaded, no cache) with transformers and with xllamacpp."""
    import importlib.util

    from pmg.keywords.extract import build_extractor

    rows = []
    for backend in ("transformers", "xllamacpp"):
        if backend == "xllamacpp" and importlib.util.find_spec("xllamacpp") is None:
            continue
        ext = build_extractor("smollm2", backend=backend, threads=threads, cache_dir=None,
                              model_cache_dir=Path.home() / ".cache" / "pmg")
        ext(load_user(Path("examples/users/dog_lover.json")))  # warm-up on another user: llama.cpp's prompt cache must not serve the timed prompts
        t0 = time.perf_counter()
        kw = ext(user)
        rows.append((f"{backend} ({ext.llm.name})", time.perf_counter() - t0, kw))
        del ext
    return rows


if __name__ == "__main__":
    main()
