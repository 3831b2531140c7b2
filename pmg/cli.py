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
        try:
            return int(env)
        except ValueError:
            return -1  # refused with a message by _check_common
    return max(1, min(2, os.cpu_count() or 1))


def _check_common(args) -> None:
    """Options every command shares, checked before anything loads."""
    from pmg.limits import check_threads, check_writable_dir

    check_threads(args.threads, "--threads (or $PMG_THREADS)")
    if not getattr(args, "no_cache", False):
        from pmg.api import default_cache_dir

        check_writable_dir(args.cache_dir or default_cache_dir(), "--cache-dir" if args.cache_dir else "cache folder ($PMG_CACHE_DIR)")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("user", type=Path, help="behaviours JSON file (see examples/users/)")
    _model_args(p)


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--llm", default="smollm2", help="'smollm2' (offline default), a model folder, a .gguf file, or an http(s) OpenAI-compatible URL")
    p.add_argument("--llm-backend", default="auto", choices=["auto", "xllamacpp", "transformers", "llamacpp", "openai"])
    p.add_argument("--llm-model-name", default="default", help="model name sent to an OpenAI-compatible server")
    p.add_argument("--captioner", default="tagger", help="'tagger' (scorer ranks a vocabulary), 'none', or a transformers image-to-text folder")
    p.add_argument("--scorer", default="auto", help="'auto' (the built-in one for the scenario), 'pmg-mini', 'pmg-mini-fashion' or a CLIP folder (used by the tagger too)")
    p.add_argument("--cache-dir", type=Path, default=None, help="keyword / description cache (default: $PMG_CACHE_DIR or ~/.cache/pmg)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    p.add_argument("--threads", type=int, default=_default_threads(), help="torch / llama.cpp threads (default: $PMG_THREADS or 2)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def _generation_args(p: argparse.ArgumentParser) -> None:
    from pmg.conditioning.weighting import WEIGHTINGS

    p.add_argument("--generator", default="auto", help="'auto' (pmg-mini-fashion for clothing when installed, else pmg-mini), 'pmg-mini', 'pmg-mini-fashion' or a diffusers folder (Stable Diffusion 1.x)")
    p.add_argument("--scheduler", default=None, help="diffusers scheduler class to use instead of the folder's (e.g. DDIMScheduler)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--alpha", type=float, default=None, help="z = a log d_p + (1-a) log d_t (default: the generator's own; the paper's 0.5)")
    p.add_argument("--weights", default=None,
                   help="grid of w_p:w_t ratios (default: the generator's own; the paper's 0:4,1:3,2:2,3:1,4:0 unless its folder says)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the generator's own, 10 for pmg-mini)")
    p.add_argument("--guidance", type=float, default=4.0, help="classifier-free guidance scale")
    p.add_argument("--noises", type=int, default=None,
                   help="initial noises per weighting, all scored (default: the generator's own; 1, the paper's, unless its folder says)")
    p.add_argument("--weighting", choices=WEIGHTINGS, default="embedding",
                   help="how w_p:w_t act: 'embedding' weighs the encoded conditions (the paper), "
                        "'guidance' mixes per-condition guidance directions")
    p.add_argument("--negative-prompt", default="")
    p.add_argument("--no-keywords", action="store_true", help="ablation: do not condition on preference keywords")
    p.add_argument("--soft", default="auto", help="soft-embedding adapter folder; 'auto': the bundled one for the scenario when the generator is pmg-mini")
    p.add_argument("--no-soft", action="store_true", help="ablation: no soft preference embeddings")


def _resolve_auto(args, scenario: str | None) -> None:
    """'auto' model names become the built-in model for the scenario."""
    from pmg.registry import default_model

    for name in ("generator", "scorer"):
        if getattr(args, name, None) == "auto":
            setattr(args, name, default_model(scenario))


def _generation_config(args):
    """The generation options of ``generate`` and ``batch``, validated by ``GenerationConfig``."""
    from pmg.api import GenerationConfig
    from pmg.conditioning.weighting import parse_grid

    try:
        weights = None if args.weights is None else parse_grid(args.weights)
    except ValueError as e:
        raise PMGError(f"--weights: {e}") from None
    return GenerationConfig(seed=args.seed, alpha=args.alpha, weights=weights, num_inference_steps=args.steps,
                            guidance_scale=args.guidance, negative_prompt=args.negative_prompt,
                            use_keywords=not args.no_keywords, use_soft=not args.no_soft, weighting=args.weighting,
                            noises=args.noises)


def _model_spec(args, soft, threads: int):
    from pmg.api import ModelSpec

    cache = _cache_dir(args)
    return ModelSpec(args.llm, args.generator, args.scorer, args.captioner, llm_backend=args.llm_backend,
                     llm_model_name=args.llm_model_name, scheduler=args.scheduler,
                     cache_dir=None if cache is None else str(cache), model_cache_dir=str(args.cache_dir or _default_cache()),
                     threads=threads, soft=None if soft is None else str(soft))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pmg", description="Personalised multimodal generation (PMG, WWW'24), offline.")
    sub = ap.add_subparsers(dest="command", required=True)
    _add_generate(sub)
    _add_batch(sub)
    _add_train_soft(sub)
    _add_eval(sub)
    _add_serve(sub)
    _add_keywords(sub)
    return ap


def _add_generate(sub) -> None:
    g = sub.add_parser("generate", help="personalised image(s) for a user and a target")
    _common(g)
    g.add_argument("--out", type=Path, required=True, help="output folder (PNG files, contact sheet, manifest.json)")
    _generation_args(g)
    g.add_argument("--no-progress", action="store_true")


def _add_batch(sub) -> None:
    b = sub.add_parser("batch", help="generate for many users (a folder of JSON files or a JSONL file), resumably")
    b.add_argument("users", type=Path, help="a folder of behaviours JSON files, or a .jsonl file with one user a line")
    _model_args(b)
    b.add_argument("--out", type=Path, required=True, help="output folder: users/<id>/, errors.jsonl, summary.json")
    _generation_args(b)
    b.add_argument("--engine", default="local", choices=["local", "ray"], help="local worker processes, or a Ray actor pool")
    b.add_argument("--workers", type=int, default=1, help="worker processes (local) or actors (ray), each loading the models once")
    b.add_argument("--threads-per-worker", type=int, default=None, help="torch / llama.cpp threads per worker (default: --threads / --workers)")
    b.add_argument("--users-per-call", type=int, default=4, help="users generated together (batched keywords, one U-Net pass)")
    b.add_argument("--ray-address", default=None, help="an existing Ray cluster (default: start a local Ray for the run)")
    b.add_argument("--no-progress", action="store_true")


def _add_train_soft(sub) -> None:
    t = sub.add_parser("train-soft", help="train soft preference embeddings (P-Tuning v2 + multimodal tokens + mapper)")
    _common(t)
    t.add_argument("--out", type=Path, required=True, help="adapter folder (checkpoint.pt inside is resumed)")
    t.add_argument("--generator", default="pmg-mini")
    t.add_argument("--soft-llm", default=None, help="the bias-correction LLM (default: --llm); needs weights, not a URL")
    t.add_argument("--steps", type=int, default=300)
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--num-virtual-tokens", type=int, default=4, help="S, prefix length")
    t.add_argument("--num-mm-tokens", type=int, default=4, help="L, multimodal tokens")
    t.add_argument("--no-prefix", action="store_true", help="ablation: no P-Tuning v2 prefixes")
    t.add_argument("--target-ratio", type=float, default=1.0,
                   help="r = w_p/(w_p+w_t) of the training condition: 1 = the paper's (preference only); < 1 adds "
                        "the last item's target keywords at that weighting, so E_m need not carry what they say")
    t.add_argument("--val-fraction", type=float, default=0.1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--split", default=None, help="with a benchmark's users/ folder: only this split (from ../split.json)")
    t.add_argument("--limit", type=int, default=None, help="only the first N users")


def _add_eval(sub) -> None:
    from pmg.conditioning.weighting import WEIGHTINGS

    e = sub.add_parser("eval", help="run a benchmark split and write the paper's tables")
    e.add_argument("--benchmark", default="emoticons", choices=["emoticons", "movies", "clothing"])
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    e.add_argument("--limit", type=int, default=None, help="only the first N users of the split")
    e.add_argument("--style-from-images", action="store_true",
                   help="history items without their attributes, item images captioned (the mini-CLIP tagger): "
                        "PMG alone, to compare with a full run")
    e.add_argument("--out", type=Path, default=None, help="results folder (default: results/BENCHMARK-SPLIT)")
    e.add_argument("--art", type=Path, default=Path("data/pmg-mini"), help="emoji art built by training.pmg_mini.build_data")
    e.add_argument("--bench-dir", type=Path, default=None, help="benchmark folder (built on first use; default data/benchmarks/BENCHMARK)")
    e.add_argument("--users", type=int, default=300, help="users to build the benchmark with")
    e.add_argument("--llm", default="smollm2")
    e.add_argument("--generator", default="auto", help="'auto': the built-in model for the benchmark's scenario")
    e.add_argument("--scorer", default="auto")
    e.add_argument("--soft", default="auto")
    e.add_argument("--table", type=int, default=2, choices=[2, 3, 4],
                   help="2: ablations (default); 3: soft adapters (with --adapters); 4: generated user images in a recommender")
    e.add_argument("--seeds", type=int, default=5, help="Table 4: recommender training seeds")
    e.add_argument("--adapters", type=Path, nargs="+", default=None,
                   help="Table 3: evaluate these soft-embedding adapter folders (P-Tuning on/off x L) instead of Table 2")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--steps", type=int, default=None, help="denoising steps (default: the generator's own)")
    e.add_argument("--guidance", type=float, default=4.0)
    e.add_argument("--weighting", choices=WEIGHTINGS, default="embedding")
    e.add_argument("--alpha", type=float, default=None, help="selection's a (default: the generator's own)")
    e.add_argument("--noises", type=int, default=None, help="initial noises per weighting (default: the generator's own)")
    e.add_argument("--cache-dir", type=Path, default=None)
    e.add_argument("--threads", type=int, default=_default_threads())
    e.add_argument("--debug", action="store_true")


def _add_serve(sub) -> None:
    s = sub.add_parser("serve", help="serve the HTTP API and the web page (FastAPI + uvicorn)")
    s.add_argument("--host", default="127.0.0.1", help="bind address (default: this machine only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--llm", default="smollm2")
    s.add_argument("--llm-backend", default="auto", choices=["auto", "xllamacpp", "transformers", "llamacpp", "openai"])
    s.add_argument("--llm-model-name", default="default")
    s.add_argument("--generator", default="pmg-mini")
    s.add_argument("--scheduler", default=None)
    s.add_argument("--scorer", default="pmg-mini")
    s.add_argument("--captioner", default="tagger")
    s.add_argument("--soft", default="auto")
    s.add_argument("--cache-dir", type=Path, default=None)
    s.add_argument("--no-cache", action="store_true")
    s.add_argument("--threads", type=int, default=_default_threads())
    s.add_argument("--max-batch", type=int, default=4, help="users generated together in one U-Net pass")
    s.add_argument("--queue-size", type=int, default=16, help="waiting requests before 429")
    s.add_argument("--timeout", type=float, default=120.0, help="seconds per request before 504")
    s.add_argument("--api-key", default=os.environ.get("PMG_API_KEY"), help="required on every route but health (default: $PMG_API_KEY)")
    s.add_argument("--debug", action="store_true")


def _add_keywords(sub) -> None:
    k = sub.add_parser("keywords", help="print the preference and target keywords")
    _common(k)
    k.add_argument("--verbose", action="store_true", help="also print the raw LLM answers and behaviour text")
    k.add_argument("--json", action="store_true", help="print JSON")


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
    from pmg.keywords.extract import build_extractor

    _check_common(args)
    user = load_user(args.user)
    _resolve_auto(args, user.scenario.value)
    from pmg.registry import check_specs

    check_specs(llm=args.llm, scorer=args.scorer, captioner=args.captioner)
    torch.set_num_threads(args.threads)
    cap = None
    if any(it.image for it in user.history) and args.captioner != "none":
        if args.captioner == "tagger":
            from pmg.captioning.vocabulary import vocabulary_for
            from pmg.scoring.scorers import load_scorer

            cap = TaggerCaptioner(load_scorer(args.scorer), vocabulary_for(args.scorer))
        else:
            cap = TransformersCaptioner(args.captioner)
    cache = _cache_dir(args)
    _log(f"loading LLM {args.llm} ...")
    ext = build_extractor(args.llm, backend=args.llm_backend, threads=args.threads, model_name=args.llm_model_name,
                          model_cache_dir=args.cache_dir or _default_cache(), cache_dir=cache, captioner=cap)
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
    from pmg.behaviours.schema import load_user
    from pmg.io.output import save_result
    from pmg.limits import check_writable_dir
    from pmg.registry import check_specs

    # everything a request controls is checked before any model loads
    _check_common(args)
    config = _generation_config(args)
    user = load_user(args.user)
    _resolve_auto(args, user.scenario.value)
    soft = None if args.no_soft else _soft_adapter(args.soft, args.generator, user.scenario.value)
    check_writable_dir(args.out, "--out")
    check_specs(llm=args.llm, generator=args.generator, scorer=args.scorer, captioner=args.captioner,
                scheduler=args.scheduler, soft=None if soft == "auto" else soft)
    _log("loading models (LLM, generator, scorer) ...")
    pmg = _model_spec(args, soft, args.threads)()
    _log("extracting keywords ...")
    t0 = time.perf_counter()
    kw = pmg.keywords(user)
    keyword_s = time.perf_counter() - t0
    _log(f"  preference: {', '.join(kw.preference) or '(none)'}\n  target: {', '.join(kw.target)}")
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=config.num_inference_steps or pmg.generator.default_steps, desc="denoising", unit="step", file=sys.stderr)

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


def cmd_batch(args) -> int:
    from pmg.batch import EXIT_SOME_FAILED, BatchConfig, run_batch
    from pmg.limits import check_writable_dir
    from pmg.registry import check_specs

    _check_common(args)
    config = _generation_config(args)
    threads = args.threads_per_worker
    if threads is None:
        threads = max(1, args.threads // max(1, args.workers)) if isinstance(args.workers, int) else 1
    batch = BatchConfig(engine=args.engine, workers=args.workers, threads_per_worker=threads,
                        users_per_call=args.users_per_call, ray_address=args.ray_address)
    from pmg.batch.inputs import read_inputs

    scenarios = {i.user.scenario.value for i in read_inputs(args.users) if i.user is not None}
    _resolve_auto(args, scenarios.pop() if len(scenarios) == 1 else None)  # one model set for the whole run
    soft = None if args.no_soft else _soft_adapter(args.soft, args.generator, "")
    check_writable_dir(args.out, "--out")
    check_specs(llm=args.llm, generator=args.generator, scorer=args.scorer, captioner=args.captioner,
                scheduler=args.scheduler, soft=None if soft == "auto" else soft)
    summary = run_batch(args.users, args.out, _model_spec(args, soft, threads), config, batch, progress=not args.no_progress)
    print(f"{summary['generated']} generated, {summary['skipped_already_done']} already done, {summary['failed']} failed "
          f"of {summary['users']} users in {summary['wall_s']:.1f} s ({summary['users_per_minute']:.1f} users/min); "
          f"wrote {args.out}/summary.json" + (" and errors.jsonl" if summary["failed"] else ""))
    return EXIT_SOME_FAILED if summary["failed"] else 0


def _soft_adapter(spec: str, generator: str, scenario: str) -> Path | str | None:
    """'auto' (the bundled adapter of each scenario, chosen by ``PMG.from_names``), 'none', or a folder."""
    if spec == "auto":
        return "auto"
    if spec in ("none", ""):
        return None
    path = Path(spec)
    if not path.is_dir():
        raise PMGError(f"--soft {spec}: adapter folder not found")
    return path


def cmd_train_soft(args) -> int:
    import torch

    from pmg.generation.loading import load_generator
    from pmg.io.cache import JsonCache
    from pmg.keywords.extract import build_extractor
    from pmg.llm.transformers_llm import load_causal_lm
    from pmg.registry import resolve_llm
    from pmg.soft.model import SoftConfig, SoftPreferenceModel
    from pmg.soft.train import SoftTrainConfig, examples_for_users, load_training_users, split_users, train_soft

    _check_common(args)
    torch.set_num_threads(args.threads)
    try:
        cfg = SoftTrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, target_ratio=args.target_ratio)
    except ValueError as e:
        raise PMGError(str(e)) from None
    if not 0 <= args.val_fraction < 1:
        raise PMGError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    users = load_training_users(args.user, args.split, args.limit)
    _log(f"{len(users)} users; loading models ...")
    cache_root = args.cache_dir or _default_cache()
    pipe = load_generator(args.generator)
    extractor = build_extractor(args.llm, backend=args.llm_backend, threads=args.threads, model_name=args.llm_model_name,
                                model_cache_dir=cache_root, cache_dir=None if args.no_cache else cache_root)
    _log("keywords and behaviour text for every user (cached) ...")
    examples = examples_for_users(users, extractor, pipe.codec.image_size, None if args.no_cache else JsonCache(cache_root),
                                  with_target=cfg.target_ratio < 1)
    train, val = split_users(examples, args.val_fraction, args.seed)
    soft_llm = args.soft_llm or args.llm
    target = resolve_llm(soft_llm)
    if isinstance(target, str):
        raise PMGError("--soft-llm must be a model folder, a .gguf file or 'smollm2', not a URL")
    model, tok = load_causal_lm(target, cache_dir=cache_root)
    torch.manual_seed(args.seed)
    try:
        soft_cfg = SoftConfig(num_virtual_tokens=args.num_virtual_tokens, num_mm_tokens=args.num_mm_tokens,
                              use_prefix=not args.no_prefix, embed_dim=pipe.embed_dim, llm=str(soft_llm), generator=pipe.name,
                              generator_revision=pipe.revision)
    except ValueError as e:
        raise PMGError(str(e)) from None
    _log(f"training on {len(train)} users, validating on {len(val)}")
    log = train_soft(SoftPreferenceModel(model, tok, soft_cfg), pipe, train, val, cfg, args.out)
    print(json.dumps({k: log.get(k) for k in ("val_init", "val_keywords_only", "val_trained", "best_step", "val_last", "seconds")}, indent=2))
    return 0


def cmd_eval(args) -> int:
    from pmg.evaluation.benchmarks.emoticons import build_emoticon_benchmark

    _check_common(args)
    _resolve_auto(args, {"clothing": "clothing", "movies": "movie"}.get(args.benchmark, "emoticon"))
    bench = args.bench_dir or Path("data/benchmarks") / args.benchmark
    out = args.out or Path("results") / (f"{args.benchmark}-{args.split}" + ("-images" if args.style_from_images else ""))
    cache = args.cache_dir or _default_cache()
    if args.benchmark == "movies" and args.table == 4:
        raise PMGError("--table 4 needs item images: the MovieLens benchmark has no posters offline "
                       "(titles and genres only); use --benchmark emoticons")
    if args.benchmark == "movies":
        from pmg.evaluation.benchmarks.movies import build_movie_benchmark
        from pmg.evaluation.run import evaluate_movies_text, write_movie_table
        from pmg.keywords.extract import build_extractor

        if not (bench / "split.json").is_file():
            _log(f"building the movies benchmark in {bench} ...")
            _log(f"  {build_movie_benchmark(bench)}")
        ext = build_extractor(args.llm, threads=args.threads, model_cache_dir=cache, cache_dir=cache)
        print(write_movie_table(evaluate_movies_text(ext, bench, args.split, limit=args.limit), out))
        print(f"\nwrote {out}/movies_text.md, results.jsonl (no posters offline: text-side metrics only)")
        return 0
    if not (bench / "split.json").is_file():
        _log(f"building the {args.benchmark} benchmark in {bench} ...")
        if args.benchmark == "clothing":
            from pmg.evaluation.benchmarks.clothing import build_clothing_benchmark

            info = build_clothing_benchmark(bench, n_users=args.users, seed=0)
        else:
            info = build_emoticon_benchmark(args.art, bench, n_users=args.users, seed=0)
        _log(f"  {info['users']} users, split {info['split']}")
    if args.table == 4:
        return _eval_table4(args, bench, cache)
    if args.table == 3 and not args.adapters:
        raise PMGError("--table 3 needs --adapters (the adapter folders to compare)")
    return _eval_images(args, bench, out, cache)


def _emoji_references(args):
    """Every real emoji of each art style, for the ideal-image rank (emoticons, when the art is built)."""
    if args.benchmark != "emoticons" or not (args.art / "meta.jsonl").is_file():
        return None
    from pmg.evaluation.run import EmojiReferences

    return EmojiReferences(args.art)


def _eval_table3(args, pmg, bench: Path, out: Path, cfg, cache: Path) -> int:
    """Table 3: PMG once per adapter folder (P-Tuning on/off x L), with their training logs' val. losses."""
    from pmg.evaluation.run import evaluate_adapters, write_table3
    from pmg.soft.embedder import load_soft

    adapters = {a.name: load_soft(a, generator=pmg.generator.name, embed_dim=pmg.generator.embed_dim,
                                  generator_revision=pmg.generator.revision, cache_dir=cache)
                for a in args.adapters}
    logs = {a.name: json.loads((a / "training_log.json").read_text()) for a in args.adapters if (a / "training_log.json").is_file()}
    records = evaluate_adapters(pmg, adapters, bench, args.split, cfg, limit=args.limit, references=_emoji_references(args))
    print(write_table3(records, out, logs))
    print(f"\nwrote {out}/table3.md, table3.csv")
    return 0


def _eval_images(args, bench: Path, out: Path, cache: Path) -> int:
    """Tables 2 and 3 (and the ideal-image check) on a benchmark with images."""
    from pmg.api import PMG, GenerationConfig
    from pmg.evaluation.run import TABLE2_VARIANTS, evaluate_split, write_tables

    scenario = "clothing" if args.benchmark == "clothing" else "emoticon"
    soft = _soft_adapter(args.soft, args.generator, scenario)
    pmg = PMG.from_names(args.llm, args.generator, args.scorer, "tagger" if args.style_from_images else "none",
                         cache_dir=cache, model_cache_dir=cache, threads=args.threads, soft=soft)
    cfg = GenerationConfig(seed=args.seed, num_inference_steps=args.steps, guidance_scale=args.guidance,
                           weighting=args.weighting, alpha=args.alpha, noises=args.noises)
    if args.adapters:
        return _eval_table3(args, pmg, bench, out, cfg, cache)
    references = _emoji_references(args)
    records = evaluate_split(pmg, bench, args.split, cfg, limit=args.limit, references=references,
                             strip_attributes=args.style_from_images,
                             variants=TABLE2_VARIANTS[:1] if args.style_from_images else TABLE2_VARIANTS)
    note = ("The CLIP-style scorer used for selection is left out of these metrics, as in the paper. "
            f"Models: {pmg.generator.name}, scorer {pmg.scorer.name}, LLM {pmg.extractor.llm.name}"
            + (f", soft {pmg.soft_for(scenario).name}." if pmg.soft_for(scenario) else ", no soft adapter."))
    print(write_tables(records, out, bench, note))
    print(f"\nwrote {out}/table2.md, table2.csv, weight_grid.csv, weight_grid.png, samples.png, results.jsonl")
    return 0


def _eval_table4(args, bench: Path, cache: Path) -> int:
    from pmg.api import ModelSpec
    from pmg.batch import BatchConfig
    from pmg.evaluation.recommend import run_table4
    from pmg.limits import check_number
    from pmg.scoring.scorers import load_scorer

    check_number(args.seeds, "--seeds", 2, 100)
    out = args.out or Path("results") / args.benchmark
    spec = ModelSpec(args.llm, args.generator, args.scorer, "none", cache_dir=str(cache), model_cache_dir=str(cache),
                     threads=args.threads, soft=args.soft)
    _log(f"Table 4: each user's preference image (pmg batch into {out}/generated, resumable), then the recommender ...")
    print(run_table4(bench, out, spec, load_scorer(args.scorer), seed=args.seed, steps=args.steps, seeds=args.seeds,
                     batch=BatchConfig(users_per_call=8, threads_per_worker=args.threads)))
    print(f"wrote {out}/table4.md, table4.csv")
    return 0


def cmd_serve(args) -> int:
    import uvicorn

    from pmg.limits import check_number
    from pmg.registry import check_specs
    from pmg.service import ServiceConfig, create_app

    _check_common(args)
    check_specs(llm=args.llm, generator=args.generator, scorer=args.scorer, captioner=args.captioner,
                scheduler=args.scheduler, soft=None if args.soft in ("auto", "none") else args.soft)
    check_number(args.port, "--port", 0, 65535)
    check_number(args.max_batch, "--max-batch", 1, 64)
    check_number(args.queue_size, "--queue-size", 1, 10_000)
    check_number(args.timeout, "--timeout", 1, 86_400)

    load = _model_spec(args, args.soft, args.threads)  # called once by the app at start-up

    app = create_app(load, ServiceConfig(max_batch=args.max_batch, queue_size=args.queue_size, timeout_s=args.timeout,
                                         api_key=args.api_key or None))
    _log(f"PMG at http://{args.host}:{args.port}/ (API docs at /docs); loading models ...")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        commands = {"generate": cmd_generate, "batch": cmd_batch, "keywords": cmd_keywords, "train-soft": cmd_train_soft, "eval": cmd_eval,
                    "serve": cmd_serve}
        return commands[args.command](args)
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
