"""Command-line interface: ``pmg generate``, ``batch``, ``keywords``, ``train-soft``, ``eval``, ``serve``.

Each command parses its options, checks them before any model loads, calls the library and prints.
Bad input gets one clear message and exit code 2, never a traceback (``--debug`` shows it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from pmg.errors import ConfigError, PMGError

EXIT_INPUT, EXIT_UNEXPECTED = 2, 1
LLM_BACKENDS = ["auto", "xllamacpp", "transformers", "llamacpp", "openai"]


# ------------------------------------------------------------------------------------ output
@dataclass
class Console:
    """Stage lines and progress on stderr (none with ``--quiet``); results on stdout."""

    quiet: bool = False
    progress: bool = True

    def log(self, msg: str) -> None:
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)

    def bar(self, total: int, desc: str):
        if self.quiet or not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="step", file=sys.stderr)


def printable(text: str, keep_newlines: bool = False) -> str:
    """Text from users or an LLM as it may reach a terminal: control characters (an ANSI escape
    sequence, a carriage return) shown escaped, never executed."""
    return "".join(c if c.isprintable() or (keep_newlines and c == "\n") else c.encode("unicode_escape").decode("ascii")
                   for c in str(text))


def _words(words: list[str]) -> str:
    return ", ".join(printable(w) for w in words) or "(none)"


def _console(args) -> Console:
    console = Console(quiet=getattr(args, "quiet", False), progress=not getattr(args, "no_progress", False))
    if console.quiet:
        _silence_libraries()
    return console


def _silence_libraries() -> None:
    """--quiet: the libraries' own progress bars, notices and deprecation warnings too."""
    import logging
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    for name in ("transformers", "diffusers", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass


# ------------------------------------------------------------------------------------ options
def _default_threads() -> int:
    env = os.environ.get("PMG_THREADS")
    if env:
        try:
            return int(env)
        except ValueError:
            return -1  # refused with a message by _check_common
    return max(1, min(2, os.cpu_count() or 1))


def _common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", type=Path, default=None, help="keyword / description cache (default: $PMG_CACHE_DIR or ~/.cache/pmg)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the keyword cache")
    p.add_argument("--threads", type=int, default=_default_threads(), help="torch / llama.cpp threads (default: $PMG_THREADS or 2)")
    p.add_argument("--quiet", "-q", action="store_true", help="print no stage lines or progress bars (errors still)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def _llm_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--llm", default="smollm2", help="'smollm2' (offline default), a model folder, a .gguf file, or an http(s) OpenAI-compatible URL")
    p.add_argument("--llm-backend", default="auto", choices=LLM_BACKENDS, help="how the LLM runs; 'auto' picks by --llm")
    p.add_argument("--llm-model-name", default="default", help="model name sent to an OpenAI-compatible server")


def _model_args(p: argparse.ArgumentParser, *, generator: bool = True) -> None:
    """The model options, declared once: every command that loads models takes these, with these defaults."""
    _llm_args(p)
    p.add_argument("--scorer", default="auto", help="'auto' (the built-in one for the user's scenario: pmg-mini, or "
                                                   "pmg-mini-fashion for clothing), 'pmg-mini', 'pmg-mini-fashion' or a CLIP folder")
    p.add_argument("--captioner", default="tagger", help="'tagger' (the scorer ranks its model's vocabulary), 'none', or a transformers image-to-text folder")
    if generator:
        p.add_argument("--generator", default="auto", help="'auto' (the built-in one for the user's scenario, as --scorer), "
                                                          "'pmg-mini', 'pmg-mini-fashion' or a diffusers folder (Stable Diffusion 1.x)")
        p.add_argument("--scheduler", default=None, help="diffusers scheduler class to use instead of the folder's (e.g. DDIMScheduler)")
        p.add_argument("--soft", default="auto", help="soft-embedding adapter folder; 'auto': the generator's bundled one for "
                                                     "the scenario (if any); 'none': no soft embeddings")
        p.add_argument("--gallery", default="auto", help="folder of pictures with captions where targets find exemplars "
                                                        "(image prompts); 'auto': the generator's own; 'none'")
    _common_args(p)


def _generation_args(p: argparse.ArgumentParser, *, ablations: bool = True) -> None:
    """The generation options, one per ``GenerationConfig`` field (its help, its option name; a true
    boolean becomes ``--no-...``); ``ablations`` False leaves out the paper's ablations (``pmg eval``)."""
    import dataclasses
    import typing

    from pmg.config import GenerationConfig, option_name

    hints = typing.get_type_hints(GenerationConfig)
    for f in dataclasses.fields(GenerationConfig):
        if f.metadata.get("ablation") and not ablations:
            continue
        flag = "--" + (f.metadata.get("flag") or option_name(f.name).replace("_", "-"))
        kind = hints[f.name]
        if kind is bool:
            p.add_argument(flag, dest=f.name, action="store_false" if f.default else "store_true", help=f.metadata["help"])
        elif typing.get_origin(kind) is typing.Literal:
            p.add_argument(flag, dest=f.name, choices=typing.get_args(kind), default=f.default, help=f.metadata["help"])
        else:
            base = next((t for t in (int, float) if kind in (t, t | None)), str)
            p.add_argument(flag, dest=f.name, type=base, default=f.default, help=f.metadata["help"])


def _generation_config(args):
    """``GenerationConfig`` from the parsed options (it validates them; its errors name options, shown
    here as the flags)."""
    import dataclasses

    from pmg.config import GenerationConfig, option_name

    fields = [f for f in dataclasses.fields(GenerationConfig) if hasattr(args, f.name)]
    try:
        return GenerationConfig(**{f.name: getattr(args, f.name) for f in fields})
    except PMGError as e:  # the library names the option ('steps must be ...'); here it is '--steps'
        word, _, rest = str(e).partition(" ")
        name = word.rstrip(":")
        flags = {option_name(f.name): "--" + (f.metadata.get("flag") or option_name(f.name).replace("_", "-")) for f in fields}
        raise type(e)(f"{flags[name]}{word[len(name):]} {rest}" if name in flags else str(e)) from None


def _check_common(args) -> None:
    """Options every command shares, checked before anything loads."""
    from pmg.limits import check_threads, check_writable_dir

    check_threads(args.threads, "--threads (or $PMG_THREADS)")
    if not getattr(args, "no_cache", False):
        check_writable_dir(_cache_root(args), "--cache-dir" if args.cache_dir else "cache folder ($PMG_CACHE_DIR)")


def _cache_root(args) -> Path:
    from pmg.api import default_cache_dir

    return args.cache_dir or default_cache_dir()


def _soft(args) -> str | None:
    """--soft / --no-soft -> 'auto', None or an adapter folder (checked by ``check_specs``)."""
    if not getattr(args, "use_soft", True) or args.soft in ("none", ""):
        return None
    return args.soft


def _gallery(args) -> str:
    """--gallery: 'auto', 'none' or a folder (checked before anything loads)."""
    from pmg.errors import InputError

    if args.gallery not in ("auto", "none") and not Path(args.gallery).is_dir():
        raise InputError(f"--gallery {args.gallery}: not a folder")
    return args.gallery


def _model_spec(args, *, scenarios: set[str], threads: int | None = None):
    """The models to load, 'auto' resolved when all users share one scenario (else each scenario's own,
    loaded on its first user), every name checked without loading anything."""
    from pmg.api import ModelSpec
    from pmg.registry import check_specs
    from pmg.scenarios import SCENARIOS, resolve_models

    generator, scorer = args.generator, args.scorer
    if len(scenarios) == 1:
        generator, scorer = resolve_models(generator, scorer, next(iter(scenarios)))
    soft = _soft(args)
    for scenario in scenarios or SCENARIOS:
        gen, sc = resolve_models(generator, scorer, scenario)
        check_specs(llm=args.llm, generator=gen, scorer=sc, captioner=args.captioner, scheduler=args.scheduler,
                    soft=None if soft in (None, "auto") else soft)
    return ModelSpec(args.llm, generator, scorer, args.captioner, llm_backend=args.llm_backend,
                     llm_model_name=args.llm_model_name, scheduler=args.scheduler,
                     cache_dir=None if args.no_cache else str(_cache_root(args)), model_cache_dir=str(_cache_root(args)),
                     threads=threads or args.threads, soft=soft, gallery=_gallery(args))


# ------------------------------------------------------------------------------------ parser
class _Help(argparse.HelpFormatter):
    """Every option's help ends with its real default, unless it says the default itself."""

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        shown = action.default not in (None, argparse.SUPPRESS, "") and not isinstance(action.default, bool)
        if shown and action.option_strings and "default" not in text:
            text += f" (default: {action.default})"
        return text


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pmg", description="Personalised multimodal generation (PMG, WWW'24), offline.")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=lambda **kw: argparse.ArgumentParser(formatter_class=_Help, **kw))
    for add in (_add_generate, _add_batch, _add_keywords, _add_train_soft, _add_eval, _add_serve):
        add(sub)
    return ap


def _add_generate(sub) -> None:
    g = sub.add_parser("generate", help="personalised image(s) for a user and a target")
    g.add_argument("user", type=Path, help="behaviours JSON file, or a bundled example user by name (cat_lover, dog_lover, clothing_shopper, stripes_shopper, movie_fan)")
    g.add_argument("--out", type=Path, required=True, help="output folder (PNG files, contact sheet, manifest.json)")
    _model_args(g)
    _generation_args(g)
    g.add_argument("--no-progress", action="store_true", help="no denoising progress bar")
    g.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")


def _add_batch(sub) -> None:
    b = sub.add_parser("batch", help="generate for many users (a folder of JSON files or a JSONL file), resumably")
    b.add_argument("users", type=Path, help="a folder of behaviours JSON files, or a .jsonl file with one user a line")
    b.add_argument("--out", type=Path, required=True, help="output folder: users/<id>/, errors.jsonl, summary.json")
    _model_args(b)
    _generation_args(b)
    b.add_argument("--engine", default="local", choices=["local", "ray"], help="local worker processes, or a Ray actor pool")
    b.add_argument("--workers", type=int, default=1, help="worker processes (local) or actors (ray), each loading the models once")
    b.add_argument("--threads-per-worker", type=int, default=None, help="torch / llama.cpp threads per worker (default: --threads / --workers)")
    b.add_argument("--users-per-call", type=int, default=4, help="users generated together (batched keywords, one U-Net pass)")
    b.add_argument("--ray-address", default=None, help="an existing Ray cluster (default: start a local Ray for the run)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_keywords(sub) -> None:
    k = sub.add_parser("keywords", help="print the preference and target keywords")
    k.add_argument("user", type=Path, help="behaviours JSON file, or a bundled example user by name (e.g. cat_lover)")
    _model_args(k, generator=False)
    k.add_argument("--verbose", action="store_true", help="also print the raw LLM answers and behaviour text")
    k.add_argument("--json", action="store_true", help="print JSON")


def _add_train_soft(sub) -> None:
    t = sub.add_parser("train-soft", help="train soft preference embeddings (P-Tuning v2 + multimodal tokens + mapper)")
    t.add_argument("user", type=Path, help="a folder of behaviours JSON files (e.g. a benchmark's users/) or a .jsonl file")
    t.add_argument("--out", type=Path, required=True, help="adapter folder (checkpoint.pt inside is resumed)")
    _llm_args(t)
    t.add_argument("--generator", default="auto", help="'auto' (the built-in one for the users' scenario), 'pmg-mini', 'pmg-mini-fashion' or a folder")
    t.add_argument("--soft-llm", default=None, help="the bias-correction LLM (default: --llm); needs weights, not a URL")
    t.add_argument("--steps", type=int, default=300, help="training steps")
    t.add_argument("--batch-size", type=int, default=8, help="users per training step")
    t.add_argument("--lr", type=float, default=1e-3, help="learning rate (AdamW)")
    t.add_argument("--num-virtual-tokens", type=int, default=4, help="S, prefix length")
    t.add_argument("--num-mm-tokens", type=int, default=4, help="L, multimodal tokens")
    t.add_argument("--no-prefix", action="store_true", help="ablation: no P-Tuning v2 prefixes")
    t.add_argument("--target-ratio", type=float, default=1.0,
                   help="r = w_p/(w_p+w_t) of the training condition: 1 = the paper's (preference only); < 1 adds "
                        "the last item's target keywords at that weighting, so E_m need not carry what they say")
    t.add_argument("--val-fraction", type=float, default=0.1, help="share of the users held out for the validation loss")
    t.add_argument("--seed", type=int, default=0, help="seed of the split, the initialisation and the noise")
    t.add_argument("--split", default=None, help="with a benchmark's users/ folder: only this split (from ../split.json)")
    t.add_argument("--limit", type=int, default=None, help="only the first N users")
    _common_args(t)


def _add_eval(sub) -> None:
    from pmg.evaluation.protocols import PROTOCOLS
    from pmg.scenarios import BENCHMARKS

    e = sub.add_parser("eval", help="run a benchmark split and write the paper's tables")
    e.add_argument("--benchmark", default="emoticons", choices=list(BENCHMARKS), help="built on first use (see pmg.scenarios)")
    e.add_argument("--split", default="test", choices=["train", "val", "test"], help="the benchmark's split to run")
    e.add_argument("--limit", type=int, default=None, help="only the first N users of the split")
    e.add_argument("--table", type=int, default=2, choices=[2, 3, 4],
                   help="2: ablations (default); 3: soft adapters (with --adapters); 4: generated user images in a recommender")
    e.add_argument("--protocol", default="warm", choices=list(PROTOCOLS),
                   help="Table 4: warm (leave-last-out), cold-item (new items, image features only) or sparse-user (1-3 interactions)")
    e.add_argument("--seeds", type=int, default=5, help="Table 4: recommender training seeds")
    e.add_argument("--adapters", type=Path, nargs="+", default=None,
                   help="Table 3: evaluate these soft-embedding adapter folders (P-Tuning on/off x L) instead of Table 2")
    e.add_argument("--style-from-images", action="store_true",
                   help="history items without their attributes, item images captioned (the tagger): PMG alone, to compare with a full run")
    e.add_argument("--out", type=Path, default=None, help="results folder (default: results/BENCHMARK-SPLIT; Table 4: results/BENCHMARK-table4)")
    e.add_argument("--art", type=Path, default=Path("data/pmg-mini"), help="emoji art built by training.pmg_mini.build_data")
    e.add_argument("--bench-dir", type=Path, default=None, help="benchmark folder (built on first use; default data/benchmarks/BENCHMARK)")
    e.add_argument("--users", type=int, default=300, help="users to build the benchmark with")
    _llm_args(e)
    e.add_argument("--generator", default="auto", help="'auto': the built-in model for the benchmark's scenario")
    e.add_argument("--scorer", default="auto", help="'auto': the built-in model for the benchmark's scenario")
    e.add_argument("--soft", default="auto", help="adapter folder; 'auto': the generator's bundled one; 'none'")
    e.add_argument("--gallery", default="auto", help="pictures with captions for target exemplars; 'auto': the generator's own; 'none'")
    _generation_args(e, ablations=False)
    _common_args(e)


def _add_serve(sub) -> None:
    s = sub.add_parser("serve", help="serve the HTTP API and the web page (FastAPI + uvicorn)")
    s.add_argument("--host", default="127.0.0.1", help="bind address (default: this machine only)")
    s.add_argument("--port", type=int, default=8000, help="TCP port")
    _model_args(s)
    s.add_argument("--max-batch", type=int, default=4, help="users generated together in one U-Net pass")
    s.add_argument("--queue-size", type=int, default=16, help="waiting requests before 429")
    s.add_argument("--timeout", type=float, default=120.0, help="seconds per request before 504")
    s.add_argument("--api-key", default=os.environ.get("PMG_API_KEY"), help="required on every route but health (default: $PMG_API_KEY)")
    s.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="'ray': model replicas on Ray Serve behind one address (pip install -e \".[ray]\")")
    s.add_argument("--replicas", type=int, default=1, help="ray: model replicas, each with its models (the fewest when autoscaling)")
    s.add_argument("--max-replicas", type=int, default=None, help="ray: autoscale up to this many (default: --replicas, no autoscaling)")
    s.add_argument("--target-ongoing-requests", type=float, default=None, help="ray: autoscaling's requests per replica (default: --max-batch)")
    s.add_argument("--address", default=None, help="ray: an existing Ray cluster (default: a local Ray, started and stopped with the server)")


# ------------------------------------------------------------------------------------ commands
def cmd_generate(args) -> int:
    import time

    from pmg.behaviours.schema import load_user
    from pmg.bundled import resolve_user_path
    from pmg.io.output import save_result
    from pmg.limits import check_writable_dir

    # everything a request controls is checked before any model loads
    _check_common(args)
    config = _generation_config(args)
    user = load_user(resolve_user_path(args.user))
    check_writable_dir(args.out, "--out")
    spec = _model_spec(args, scenarios={user.scenario.value})
    console = _console(args)
    console.log(f"loading models (LLM {spec.llm}, generator {spec.generator}, scorer {spec.scorer}) ...")
    pmg = spec()
    console.log("extracting keywords ...")
    t0 = time.perf_counter()
    kw = pmg.keywords(user)
    keyword_s = time.perf_counter() - t0
    console.log(f"  preference: {_words(kw.preference)}\n  target: {_words(kw.target)}")
    bar = console.bar(config.num_inference_steps or pmg.generator.default_steps, "denoising")
    result = pmg.generate(user, config, keywords=kw, callback=(lambda i, n: bar.update(1)) if bar is not None else None)
    result.timings["keywords_s"] = keyword_s
    if bar is not None:
        bar.close()
    manifest = save_result(result, args.out)
    best = result.candidates[result.best]
    if args.json:
        print(json.dumps({"out": str(args.out), "best": str(args.out / "best.png"), "manifest": str(manifest),
                          "chosen": {"w_p": best.w_p, "w_t": best.w_t, "noise": best.noise, "z": best.z},
                          "keywords": {"preference": kw.preference, "target": kw.target}, "models": result.models,
                          "timings": result.timings, "warnings": result.warnings}, ensure_ascii=False))
        return 0
    if not console.quiet:
        print(f"chosen w_p:w_t = {best.w_p:g}:{best.w_t:g} (z {best.z:.3f}); wrote {args.out}/best.png, "
              f"contact_sheet.png and {manifest.name}")
    for w in result.warnings:
        print("warning:", printable(w), file=sys.stderr)
    return 0


def cmd_batch(args) -> int:
    from pmg.batch import EXIT_SOME_FAILED, BatchConfig, run_batch
    from pmg.batch.inputs import read_inputs
    from pmg.limits import check_writable_dir

    _check_common(args)
    config = _generation_config(args)
    threads = args.threads_per_worker
    if threads is None:
        threads = max(1, args.threads // max(1, args.workers)) if isinstance(args.workers, int) else 1
    batch = BatchConfig(engine=args.engine, workers=args.workers, threads_per_worker=threads,
                        users_per_call=args.users_per_call, ray_address=args.ray_address)
    check_writable_dir(args.out, "--out")
    scenarios = {i.user.scenario.value for i in read_inputs(args.users) if i.user is not None}
    spec = _model_spec(args, scenarios=scenarios, threads=threads)
    console = _console(args)
    summary = run_batch(args.users, args.out, spec, config, batch, progress=console.progress and not console.quiet)
    if not console.quiet:
        print(f"{summary['generated']} generated, {summary['skipped_already_done']} already done, {summary['failed']} failed "
              f"of {summary['users']} users in {summary['wall_s']:.1f} s ({summary['users_per_minute']:.1f} users/min); "
              f"wrote {args.out}/summary.json" + (" and errors.jsonl" if summary["failed"] else ""))
    return EXIT_SOME_FAILED if summary["failed"] else 0


def cmd_keywords(args) -> int:
    import time

    import torch

    from pmg.api import build_captioner
    from pmg.behaviours.schema import load_user
    from pmg.bundled import resolve_user_path
    from pmg.keywords.extract import build_extractor
    from pmg.registry import check_specs
    from pmg.scenarios import resolve_models

    _check_common(args)
    user = load_user(resolve_user_path(args.user))
    _, scorer = resolve_models("auto", args.scorer, user.scenario.value)
    check_specs(llm=args.llm, scorer=scorer, captioner=args.captioner)
    console = _console(args)
    torch.set_num_threads(args.threads)
    cap = None
    if any(it.image for it in user.history) and args.captioner != "none":
        from pmg.scoring.scorers import load_scorer

        cap = build_captioner(args.captioner, load_scorer(scorer) if args.captioner == "tagger" else None, scorer)
    console.log(f"loading LLM {args.llm} ...")
    ext = build_extractor(args.llm, backend=args.llm_backend, threads=args.threads, model_name=args.llm_model_name,
                          model_cache_dir=_cache_root(args), cache_dir=None if args.no_cache else _cache_root(args), captioner=cap)
    t0 = time.perf_counter()
    res = ext(user)
    console.log(f"keywords in {time.perf_counter() - t0:.1f} s ({'cached' if res.cached else f'{res.llm_calls} LLM calls'})")
    if args.json:
        print(json.dumps(res.to_dict(), indent=2, ensure_ascii=False))  # JSON escapes control characters
        return 0
    _print_keywords(res, args.verbose)
    return 0


def _print_keywords(res, verbose: bool) -> None:
    print(f"prompt version: {res.prompt_version}   model: {printable(res.model)}")
    print("preference:", _words(res.preference))
    print("target:    ", _words(res.target))
    for w in res.warnings:
        print("warning:", printable(w))
    if verbose:
        print("\nbehaviours as text:")
        for line in res.behaviour_text:
            print("  ", printable(line))
        print("\nraw LLM answers:")
        for name, ans in res.raw_answers.items():
            print(f"  [{name}] {ans!r}")
            if name in res.per_attribute:
                print(f"     -> {_words(res.per_attribute[name])}")


def cmd_train_soft(args) -> int:
    from pmg.registry import check_specs
    from pmg.soft.fit import fit_soft, train_config
    from pmg.soft.train import load_training_users

    _check_common(args)
    train = train_config(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, target_ratio=args.target_ratio)
    check_specs(llm=args.llm, generator=None if args.generator == "auto" else args.generator)
    users = load_training_users(args.user, args.split, args.limit)
    console = _console(args)
    log = fit_soft(users, args.out, train=train, llm=args.llm, llm_backend=args.llm_backend, llm_model_name=args.llm_model_name,
                   soft_llm=args.soft_llm, generator=args.generator, num_virtual_tokens=args.num_virtual_tokens,
                   num_mm_tokens=args.num_mm_tokens, use_prefix=not args.no_prefix, val_fraction=args.val_fraction,
                   cache_dir=None if args.no_cache else _cache_root(args), model_cache_dir=_cache_root(args),
                   threads=args.threads, log=console.log)
    print(json.dumps({k: log.get(k) for k in ("val_init", "val_keywords_only", "val_trained", "best_step", "val_last", "seconds")}, indent=2))
    return 0


def cmd_eval(args) -> int:
    from pmg.api import ModelSpec
    from pmg.evaluation.suite import EvalOptions, run_eval

    _check_common(args)
    models = ModelSpec(args.llm, args.generator, args.scorer, "none", llm_backend=args.llm_backend,
                       llm_model_name=args.llm_model_name, cache_dir=None if args.no_cache else str(_cache_root(args)),
                       model_cache_dir=str(_cache_root(args)), threads=args.threads, soft=_soft(args), gallery=_gallery(args))
    opts = EvalOptions(benchmark=args.benchmark, split=args.split, limit=args.limit, table=args.table, protocol=args.protocol,
                       style_from_images=args.style_from_images, adapters=tuple(args.adapters or ()), seeds=args.seeds,
                       users=args.users, art=args.art, bench_dir=args.bench_dir, out=args.out, models=models,
                       config=_generation_config(args))
    console = _console(args)
    print(run_eval(opts, console.log, progress=not console.quiet))
    return 0


def cmd_serve(args) -> int:
    from pmg.limits import MAX_PORT, MAX_QUEUE, MAX_SERVE_BATCH, MAX_TIMEOUT_S, check_integer, check_number

    try:
        import uvicorn

        from pmg.service import ServiceConfig, create_app
    except ImportError as e:  # a plain `pip install .` has no web stack
        raise ConfigError(f"pmg serve needs the 'serve' extra ({e.name} is not installed): pip install '.[serve]' "
                          "(or '.[ray]' for --engine ray)") from None

    _check_common(args)
    check_integer(args.port, "--port", 0, MAX_PORT)
    check_integer(args.max_batch, "--max-batch", 1, MAX_SERVE_BATCH)
    check_integer(args.queue_size, "--queue-size", 1, MAX_QUEUE)
    check_number(args.timeout, "--timeout", 1, MAX_TIMEOUT_S)
    ray_options = dict(replicas=args.replicas, max_replicas=args.max_replicas, target_ongoing_requests=args.target_ongoing_requests,
                       address=args.address)
    if args.engine == "local" and ray_options != dict(replicas=1, max_replicas=None, target_ongoing_requests=None, address=None):
        raise ConfigError("--replicas, --max-replicas, --target-ongoing-requests and --address need --engine ray")
    spec = _model_spec(args, scenarios=set())  # every scenario, each with its own models (loaded on first use)
    service = ServiceConfig(max_batch=args.max_batch, queue_size=args.queue_size, timeout_s=args.timeout, api_key=args.api_key or None)
    if args.engine == "ray":
        from pmg.service.ray_serve import RayServeConfig, serve_forever

        cluster = RayServeConfig(**ray_options, threads=args.threads)
        serve_forever(spec, service, cluster, host=args.host, port=args.port, log=_console(args).log)
        return 0
    app = create_app(spec, service)
    _console(args).log(f"PMG at http://{args.host}:{args.port}/ (API docs at /docs); loading models ...")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


COMMANDS = {"generate": cmd_generate, "batch": cmd_batch, "keywords": cmd_keywords, "train-soft": cmd_train_soft,
            "eval": cmd_eval, "serve": cmd_serve}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except PMGError as e:
        print(f"error: {printable(e, keep_newlines=True)}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI's last line of defence
        if getattr(args, "debug", False):
            raise
        print(f"error: unexpected {type(e).__name__}: {printable(e)} (run with --debug for the traceback)", file=sys.stderr)
        return EXIT_UNEXPECTED


if __name__ == "__main__":
    sys.exit(main())
