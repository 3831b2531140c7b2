"""Seconds per personalised image, stage by stage, split into loading and work, from a cold start.

    .venv/bin/python benchmarks/perf.py [--user examples/users/cat_lover.json] [--threads 2] [--repeats 3] [--compare]

Part 1, cold start, as a new user's first ``pmg generate`` (a fresh process, empty caches): each
stage's model loading and its work, one stage after another, then the CLI itself end to end in a
fresh process (where the soft adapter's LLM loads while llama.cpp extracts keywords, so the end to
end wall time is below the sum).
Part 2 (``--compare``): keywords cached vs cold; the weight grid batched vs one candidate at a time;
keyword extraction with each installed LLM backend for the same GGUF file. Not a test: numbers
depend on the machine (the 1-minute load average is printed: other work on the cores slows every row).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(fn, repeats: int = 1) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def cold_stages(user_path: Path, threads: int, cache: Path) -> tuple[list[tuple[str, float, float]], dict]:
    """(stage, load s, work s) in this fresh process, each stage loaded just before it runs."""
    t_import, _ = timed(lambda: __import__("pmg.api"))
    import torch

    from pmg.behaviours.schema import load_user
    from pmg.captioning.base import TaggerCaptioner
    from pmg.captioning.vocabulary import vocabulary_for
    from pmg.generation.loading import load_generator
    from pmg.keywords.extract import build_extractor
    from pmg.scoring.scorers import load_scorer
    from pmg.soft.embedder import load_soft

    torch.set_num_threads(threads)
    user = load_user(user_path)
    rows = [("import pmg, torch, transformers, diffusers", t_import, 0.0)]
    t_scorer, scorer = timed(lambda: load_scorer("pmg-mini"))

    def extractor():
        ext = build_extractor("smollm2", threads=threads, cache_dir=str(cache / "kw"), model_cache_dir=cache,
                              captioner=TaggerCaptioner(scorer, vocabulary_for("pmg-mini")))
        getattr(ext.llm, "wait_ready", lambda: None)()  # llama.cpp loads in its own process
        return ext

    t_llm, ext = timed(extractor)
    t_kw, kw = timed(lambda: ext(user))
    rows.append(("keywords (llama.cpp + MiniLM grounding)", t_llm, t_kw))
    t_gen, pipe = timed(lambda: load_generator("pmg-mini"))
    from pmg.registry import models_dir

    adapter = models_dir() / "pmg-mini" / f"soft-{user.scenario.value}"
    soft = None
    if (adapter / "soft_config.json").is_file():
        t_soft, embedder = timed(lambda: load_soft(adapter, generator=pipe.name, embed_dim=pipe.embed_dim,
                                                   generator_revision=pipe.revision, cache_dir=cache))
        t_emb, soft = timed(lambda: embedder.embed(kw))
        rows.append((f"soft embeddings ({adapter.name}: SmolLM2 in torch)", t_soft, t_emb))
    pictures = {}
    if pipe.takes_images:  # image prompts: the history's pictures and the gallery's exemplar for the target
        from pmg.pictures.gallery import Gallery
        from pmg.pictures.prompts import choose_pictures

        t_gal, gallery = timed(lambda: Gallery.index(models_dir() / "pmg-mini" / "gallery", scorer, cache, progress=False))
        t_pics, pics = timed(lambda: choose_pictures(user, kw.target, k=3, history=True, target=user.target.item is None,
                                                     gallery=gallery, embed_text=scorer.embed_texts))
        t_enc, enc = timed(lambda: {"target_image_embeds": pipe.encode_images(pics.target),
                                    "preference_image_embeds": pipe.encode_images(pics.history)})
        pictures = enc
        rows.append((f"pictures ({len(pics.history)} history, {len(pics.target)} exemplar; gallery indexed)", t_gal, t_pics + t_enc))
    t_grid, out = timed(lambda: pipe(kw.target, kw.preference, weights=pipe.default_grid, soft_embeds=soft,
                                     num_inference_steps=pipe.default_steps, generator=torch.Generator().manual_seed(0),
                                     noises=getattr(pipe, "default_noises", 1), **pictures))
    rows.append((f"generation ({len(out.images)} candidates, {pipe.default_steps} steps)", t_gen, t_grid))
    t_score, _ = timed(lambda: (scorer.embed_images(out.images), scorer.embed_texts([", ".join(kw.target), ", ".join(kw.preference)])))
    rows.append(("scoring (mini-CLIP)", t_scorer, t_score))
    return rows, {"kw": kw, "pipe": pipe, "soft": soft, "scorer": scorer, "ext": ext, "user": user, "pictures": pictures}


def cli_cold(user_path: Path, threads: int) -> float:
    """Wall seconds of ``pmg generate`` in a fresh process with empty caches, run from a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PMG_CACHE_DIR=str(Path(tmp) / "cache"), PMG_THREADS=str(threads))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pmg.cli", "generate", str(user_path.resolve()), "--out", str(Path(tmp) / "out"),
                        "--threads", str(threads), "--no-progress"], cwd=tmp, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - t0


def compare(ctx: dict, threads: int, repeats: int) -> list[tuple[str, float]]:
    import torch

    from pmg.behaviours.schema import load_user

    kw, pipe, soft, ext, user = ctx["kw"], ctx["pipe"], ctx["soft"], ctx["ext"], ctx["user"]
    rows = [("keywords, cached", timed(lambda: ext(user), repeats)[0])]
    noises = getattr(pipe, "default_noises", 1)
    grid = lambda: pipe(kw.target, kw.preference, weights=pipe.default_grid, soft_embeds=soft,  # noqa: E731
                        num_inference_steps=pipe.default_steps, generator=torch.Generator().manual_seed(0), noises=noises,
                        **ctx["pictures"])
    one_by_one = lambda: [pipe(kw.target, kw.preference, weights=[w], soft_embeds=soft,  # noqa: E731
                               num_inference_steps=pipe.default_steps, generator=torch.Generator().manual_seed(n))
                          for n in range(noises) for w in pipe.default_grid]
    rows.append((f"generation, batched (warm){', with pictures' if ctx['pictures'] else ''}", timed(grid, repeats)[0]))
    rows.append(("generation, one candidate at a time (warm)", timed(one_by_one, repeats)[0]))
    import importlib.util

    from pmg.keywords.extract import build_extractor

    for backend in ("transformers", "xllamacpp"):
        if backend == "xllamacpp" and importlib.util.find_spec("xllamacpp") is None:
            continue
        e = build_extractor("smollm2", backend=backend, threads=threads, cache_dir=None)
        e(load_user(ROOT / "examples/users/dog_lover.json"))  # warm-up on another user: no prompt-cache hits
        rows.append((f"keywords, cold, {backend} backend", timed(lambda: e(user))[0]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--user", type=Path, default=ROOT / "examples/users/cat_lover.json")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("PMG_THREADS", 2)))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compare", action="store_true", help="also part 2 (cached keywords, batching, LLM backends)")
    ap.add_argument("--no-cli", action="store_true", help="skip the end-to-end pmg generate run")
    a = ap.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        rows, ctx = cold_stages(a.user, a.threads, Path(tmp))
        print(f"cold start, {a.user.name}, {a.threads} thread(s), 1-min load average {load_before:.2f} "
              f"on {os.cpu_count()} cores")
        print(f"  {'stage':<52s} {'load s':>7s} {'work s':>7s}")
        for name, load, work in rows:
            print(f"  {name:<52s} {load:7.2f} {work:7.2f}")
        load_sum, work_sum = sum(r[1] for r in rows), sum(r[2] for r in rows)
        print(f"  {'sum (stages one after another)':<52s} {load_sum:7.2f} {work_sum:7.2f}   total {load_sum + work_sum:.2f} s")
        if not a.no_cli:
            print(f"  {'pmg generate end to end, fresh process, empty cache':<52s} {'':7s} {'':7s}   total {cli_cold(a.user, a.threads):.2f} s")
        if a.compare:
            print("part 2 (models loaded):")
            for name, s in compare(ctx, a.threads, a.repeats):
                print(f"  {name:<52s} {s:7.3f} s")
    print(f"peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
          f"1-min load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
