"""Command-line interface: ``pmg generate``, ``pmg keywords``.

Bad input gets one clear message and a non-zero exit (2), never a traceback (``--debug`` shows it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from pmg.errors import PMGError

EXIT_USAGE, EXIT_INPUT, EXIT_UNEXPECTED = 2, 2, 1


def _default_threads() -> int:
    env = os.environ.get("PMG_THREADS")
    if env:
        return int(env)
    return max(1, min(2, os.cpu_count() or 1))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("user", type=Path, help="behaviours JSON file (see examples/users/)")
    p.add_argument("--llm", default="smollm2", help="'smollm2' (offline default), a model folder, a .gguf file, or an http(s) OpenAI-compatible URL")
    p.add_argument("--llm-backend", default="auto", choices=["auto", "transformers", "llamacpp", "openai"])
    p.add_argument("--llm-model-name", default="default", help="model name sent to an OpenAI-compatible server")
    p.add_argument("--captioner", default="tagger", help="'tagger' (scorer ranks a vocabulary), 'none', or a transformers image-to-text folder")
    p.add_argument("--scorer", default="pmg-mini", help="'pmg-mini' (mini-CLIP) or a CLIP folder (used by the tagger too)")
    p.add_argument("--cache-dir", type=Path, default=None, help="keyword / description cache (default: $PMG_CACHE_DIR or ~/.cache/pmg)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    p.add_argument("--threads", type=int, default=_default_threads(), help="torch / llama.cpp threads (default: $PMG_THREADS or 2)")
    p.add_argument("--allow-instructions", action="store_true", help="treat instruction-like item text as plain text instead of refusing")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pmg", description="Personalised multimodal generation (PMG, WWW'24), offline.")
    sub = ap.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="personalised image(s) for a user and a target")
    _common(g)
    g.add_argument("--out", type=Path, required=True, help="output folder (PNG files, contact sheet, manifest.json)")
    g.add_argument("--generator", default="pmg-mini", help="'pmg-mini' or a diffusers folder (Stable Diffusion 1.x)")
    g.add_argument("--scheduler", default=None, help="diffusers scheduler class to use instead of the folder's (e.g. DDIMScheduler)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--alpha", type=float, default=0.5, help="z = a log d_p + (1-a) log d_t")
    g.add_argument("--weights", default="0:4,1:3,2:2,3:1,4:0", help="grid of w_p:w_t ratios")
    g.add_argument("--steps", type=int, default=20, help="denoising steps")
    g.add_argument("--guidance", type=float, default=4.0, help="classifier-free guidance scale")
    g.add_argument("--negative-prompt", default="")
    g.add_argument("--no-keywords", action="store_true", help="ablation: do not condition on preference keywords")
    g.add_argument("--no-progress", action="store_true")
    k = sub.add_parser("keywords", help="print the preference and target keywords")
    _common(k)
    k.add_argument("--verbose", action="store_true", help="also print the raw LLM answers and behaviour text")
    k.add_argument("--json", action="store_true", help="print JSON")
    return ap


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _default_cache() -> Path:
    from pmg.api import default_cache_dir

    return default_cache_dir()


def _cache_dir(args) -> Path | None:
    if args.no_cache:
        return None
    from pmg.api import default_cache_dir

    return args.cache_dir or default_cache_dir()


def cmd_keywords(args) -> int:
    import torch

    from pmg.behaviours.schema import load_user
    from pmg.captioning.base import TaggerCaptioner, TransformersCaptioner
    from pmg.io.cache import JsonCache
    from pmg.keywords.extract import KeywordExtractor
    from pmg.llm import load_llm

    torch.set_num_threads(args.threads)
    user = load_user(args.user)
    cap = None
    if any(it.image for it in user.history) and args.captioner != "none":
        if args.captioner == "tagger":
            from pmg.captioning.vocabulary import default_vocabulary
            from pmg.scoring.scorers import load_scorer

            cap = TaggerCaptioner(load_scorer(args.scorer), default_vocabulary)
        else:
            cap = TransformersCaptioner(args.captioner)
    cache = _cache_dir(args)
    _log(f"loading LLM {args.llm} ...")
    llm = load_llm(args.llm, backend=args.llm_backend, threads=args.threads, model_name=args.llm_model_name,
                   cache_dir=args.cache_dir or _default_cache())
    ext = KeywordExtractor(llm, captioner=cap, cache=JsonCache(cache) if cache else None,
                           allow_instructions=args.allow_instructions)
    t0 = time.perf_counter()
    res = ext(user)
    _log(f"keywords in {time.perf_counter() - t0:.1f} s ({'cached' if res.cached else f'{res.llm_calls} LLM calls'})")
    if args.json:
        print(json.dumps(res.to_dict(), indent=2, ensure_ascii=False))
        return 0
    print(f"prompt version: {res.prompt_version}   model: {res.model}")
    print("preference:", ", ".join(res.preference) or "(none)")
    print("target:    ", ", ".join(res.target))
    for w in res.warnings:
        print("warning:", w)
    if args.verbose:
        print("\nbehaviours as text:")
        for line in res.behaviour_text:
            print("  ", line)
        print("\nraw LLM answers:")
        for name, ans in res.raw_answers.items():
            print(f"  [{name}] {ans!r}")
            if name in res.per_attribute:
                print(f"     -> {res.per_attribute[name]}")
    return 0


def cmd_generate(args) -> int:
    from pmg.api import PMG, GenerationConfig
    from pmg.behaviours.schema import load_user
    from pmg.conditioning.weighting import parse_grid
    from pmg.io.output import save_result

    try:
        config = GenerationConfig(seed=args.seed, alpha=args.alpha, weights=parse_grid(args.weights),
                                  num_inference_steps=args.steps, guidance_scale=args.guidance,
                                  negative_prompt=args.negative_prompt, use_keywords=not args.no_keywords)
    except ValueError as e:
        raise PMGError(str(e)) from None
    user = load_user(args.user)  # validate before loading any model
    if args.out.exists() and not args.out.is_dir():
        raise PMGError(f"--out {args.out} exists and is not a folder")
    _log("loading models (LLM, generator, scorer) ...")
    pmg = PMG.from_names(args.llm, args.generator, args.scorer, args.captioner, llm_backend=args.llm_backend,
                         llm_model_name=args.llm_model_name, scheduler=args.scheduler, cache_dir=_cache_dir(args),
                         model_cache_dir=args.cache_dir or _default_cache(), threads=args.threads,
                         allow_instructions=args.allow_instructions)
    _log("extracting keywords ...")
    t0 = time.perf_counter()
    kw = pmg.keywords(user)
    keyword_s = time.perf_counter() - t0
    _log(f"  preference: {', '.join(kw.preference) or '(none)'}\n  target: {', '.join(kw.target)}")
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=config.num_inference_steps, desc="denoising", unit="step", file=sys.stderr)

    def progress(i, n):
        if bar is not None:
            bar.update(1)

    result = pmg.generate(user, config, keywords=kw, callback=progress)
    result.timings["keywords_s"] = keyword_s
    if bar is not None:
        bar.close()
    manifest = save_result(result, args.out)
    best = result.candidates[result.best]
    print(f"chosen w_p:w_t = {best.w_p:g}:{best.w_t:g} (z {best.z:.3f}); wrote {args.out}/best.png, "
          f"contact_sheet.png and {manifest.name}")
    for w in result.warnings:
        print("warning:", w)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"generate": cmd_generate, "keywords": cmd_keywords}[args.command](args)
    except PMGError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI's last line of defence
        if getattr(args, "debug", False):
            raise
        print(f"error: unexpected {type(e).__name__}: {e} (run with --debug for the traceback)", file=sys.stderr)
        return EXIT_UNEXPECTED


if __name__ == "__main__":
    sys.exit(main())
