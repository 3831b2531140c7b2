"""``pmg eval`` as a library call: build a benchmark on first use, load the models its scenario needs,
run the table asked for and write it.

    from pmg.evaluation.suite import EvalOptions, run_eval
    print(run_eval(EvalOptions(benchmark="clothing", limit=20)))

Table 2 (ablations, with the benchmark's extras), Table 3 (one run per soft adapter), Table 4 (generated
user images as recommender features, under a protocol); a benchmark without images (movies) gets its
text-side table. Which benchmark is which is ``pmg.scenarios.BENCHMARKS``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pmg.api import PMG, GenerationConfig, ModelSpec, default_cache_dir
from pmg.errors import ConfigError
from pmg.evaluation.protocols import PROTOCOLS
from pmg.scenarios import Benchmark, benchmark, resolve_models

__all__ = ["EvalOptions", "run_eval", "TABLES", "PROTOCOLS"]

TABLES = (2, 3, 4)


# GenerationConfig fields Table 4's user images do not take, and the options that set them
_TABLE4_IGNORES = {"alpha": "--alpha", "weights": "--weights", "guidance_scale": "--guidance", "noises": "--noises",
                   "weighting": "--weighting", "negative_prompt": "--negative-prompt"}


def _table4_ignores(config: GenerationConfig) -> list[str]:
    """The options set away from their defaults that Table 4 would not use."""
    default = GenerationConfig()
    return [opt for name, opt in _TABLE4_IGNORES.items() if getattr(config, name) != getattr(default, name)]


@dataclass(frozen=True)
class EvalOptions:
    benchmark: str = "emoticons"
    split: str = "test"
    limit: int | None = None  # only the first N users of the split
    table: int = 2
    protocol: str = "warm"  # Table 4 only
    style_from_images: bool = False  # history items without their attributes, item images captioned (PMG alone)
    adapters: tuple[Path, ...] = ()  # Table 3: the soft-embedding adapter folders to compare
    seeds: int = 5  # Table 4: recommender training seeds
    users: int = 300  # users to build the benchmark with
    art: Path = Path("data/pmg-mini")  # emoji art (training.pmg_mini.build_data)
    bench_dir: Path | None = None  # default data/benchmarks/BENCHMARK
    out: Path | None = None  # default results/BENCHMARK-SPLIT (Table 4: results/BENCHMARK-table4)
    models: ModelSpec = field(default_factory=lambda: ModelSpec(captioner="none"))
    config: GenerationConfig = field(default_factory=GenerationConfig)

    def __post_init__(self):
        from pmg.limits import check_integer

        bench = benchmark(self.benchmark)
        if self.table not in TABLES:
            raise ConfigError(f"--table must be one of {', '.join(map(str, TABLES))}, got {self.table!r}")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if self.protocol != "warm" and self.table != 4:
            raise ConfigError(f"--protocol {self.protocol} is a Table 4 protocol: use it with --table 4")
        if self.table == 3 and not self.adapters:
            raise ConfigError("--table 3 needs --adapters (the adapter folders to compare)")
        if self.table == 4 and not bench.images:
            raise ConfigError(f"--table 4 needs item images: the {bench.name} benchmark has none offline "
                              "(text only); use --benchmark emoticons or clothing")
        if self.table == 4:
            check_integer(self.seeds, "--seeds", 2, 100)
            ignored = _table4_ignores(self.config)
            if ignored:
                raise ConfigError(f"--table 4 generates each user's image under the preference condition (w_p:w_t = 1:0) "
                                  f"with the generator's own settings and takes only --seed and --steps; drop {', '.join(ignored)}")
        check_integer(self.users, "--users", 1, 1_000_000)
        if self.limit is not None:
            check_integer(self.limit, "--limit", 1, 1_000_000)

    @property
    def spec(self) -> Benchmark:
        return benchmark(self.benchmark)

    @property
    def bench(self) -> Path:
        return self.bench_dir or Path("data/benchmarks") / self.benchmark

    @property
    def results(self) -> Path:
        if self.out is not None:
            return self.out
        if self.table == 4:
            return Path("results") / f"{self.benchmark}-table4"
        return Path("results") / (f"{self.benchmark}-{self.split}" + ("-images" if self.style_from_images else ""))

    def model_spec(self) -> ModelSpec:
        """The models with 'auto' resolved for the benchmark's scenario (the tagger only when captioning)."""
        gen, scorer = resolve_models(self.models.generator, self.models.scorer, self.spec.scenario)
        captioner = "tagger" if self.style_from_images else "none"
        return ModelSpec(**{**self.models.__dict__, "generator": gen, "scorer": scorer, "captioner": captioner})


def _quiet(_: str) -> None:
    pass


def run_eval(opts: EvalOptions, log: Callable[[str], None] = _quiet, *, progress: bool = True) -> str:
    """Build the benchmark if needed, run the table, write it under ``opts.results``; returns the
    Markdown table followed by a line naming the files written."""
    bench = opts.bench
    if not (bench / "split.json").is_file():
        log(f"building the {opts.benchmark} benchmark in {bench} ...")
        info = opts.spec.build(bench, art=opts.art, users=opts.users, seed=0)
        log(f"  {info}")
    if not opts.spec.images:
        return _movies(opts, progress)
    if opts.table == 4:
        return _table4(opts, log, progress)
    pmg = _load(opts)
    return _table3(opts, pmg, progress) if opts.table == 3 else _table2(opts, pmg, progress)


def _cache(opts: EvalOptions) -> Path:
    return Path(opts.models.model_cache_dir or default_cache_dir())


def _load(opts: EvalOptions) -> PMG:
    spec = opts.model_spec()
    return PMG.from_names(**{**spec.__dict__, "model_cache_dir": str(_cache(opts))})


def _references(opts: EvalOptions):
    """Every real emoji of each art style, for the ideal-image check (when the art folder is built)."""
    if "ideal-image" not in opts.spec.extras or not (opts.art / "meta.jsonl").is_file():
        return None
    from pmg.evaluation.extras import EmojiReferences

    return EmojiReferences(opts.art)


def _table2(opts: EvalOptions, pmg: PMG, progress: bool) -> str:
    from pmg.evaluation.extras import build_extras
    from pmg.evaluation.run import TABLE2_VARIANTS, evaluate_split
    from pmg.evaluation.tables import write_tables

    extras = build_extras(opts.spec.extras, references=_references(opts))
    records = evaluate_split(pmg, opts.bench, opts.split, opts.config, limit=opts.limit, extras=extras, progress=progress,
                             strip_attributes=opts.style_from_images,
                             variants=TABLE2_VARIANTS[:1] if opts.style_from_images else TABLE2_VARIANTS)
    soft = pmg.soft_for(opts.spec.scenario)
    note = ("The CLIP-style scorer used for selection is left out of these metrics, as in the paper. "
            f"Models: {pmg.generator.name}, scorer {pmg.scorer.name}, LLM {pmg.extractor.llm.name}"
            + (f", soft {soft.name}." if soft else ", no soft adapter."))
    out = opts.results
    table = write_tables(records, out, opts.bench, note, extras=extras)
    return table + f"\n\nwrote {out}/table2.md, table2.csv, weight_grid.csv, weight_grid.png, samples.png, results.jsonl"


def _table3(opts: EvalOptions, pmg: PMG, progress: bool) -> str:
    """PMG once per adapter folder (P-Tuning on/off x L), with their training logs' validation losses."""
    from pmg.evaluation.run import evaluate_adapters
    from pmg.evaluation.tables import write_table3
    from pmg.soft.embedder import load_soft

    adapters = {a.name: load_soft(a, generator=pmg.generator.name, embed_dim=pmg.generator.embed_dim,
                                  generator_revision=pmg.generator.revision, cache_dir=_cache(opts))
                for a in opts.adapters}
    logs = {a.name: json.loads((a / "training_log.json").read_text()) for a in opts.adapters
            if (a / "training_log.json").is_file()}
    records = evaluate_adapters(pmg, adapters, opts.bench, opts.split, opts.config, limit=opts.limit,
                                references=_references(opts))
    out = opts.results
    return write_table3(records, out, logs) + f"\n\nwrote {out}/table3.md, table3.csv"


def _table4(opts: EvalOptions, log: Callable[[str], None], progress: bool) -> str:
    from pmg.batch import BatchConfig
    from pmg.evaluation.recommend import run_table4
    from pmg.scoring.scorers import load_scorer

    spec = opts.model_spec()
    out = opts.results
    log(f"Table 4 ({opts.protocol}): each user's preference image (pmg batch into {out}/generated, resumable), "
        "then the recommender ...")
    threads = spec.threads or 1
    table = run_table4(opts.bench, out, spec, load_scorer(spec.scorer), seed=opts.config.seed,
                       steps=opts.config.num_inference_steps, seeds=opts.seeds, progress=progress,
                       batch=BatchConfig(users_per_call=8, threads_per_worker=threads), protocol=opts.protocol,
                       limit=opts.limit)
    return table + f"\nwrote {out}/table4-{opts.protocol}.md, .csv, and table4.md, .csv (every protocol run)"


def _movies(opts: EvalOptions, progress: bool) -> str:
    """No posters offline: the keywords' text-side metrics only."""
    from pmg.evaluation.run import evaluate_movies_text
    from pmg.evaluation.tables import write_movie_table
    from pmg.keywords.extract import build_extractor

    m = opts.models
    ext = build_extractor(m.llm, backend=m.llm_backend, threads=m.threads or 2, model_name=m.llm_model_name,
                          model_cache_dir=_cache(opts), cache_dir=m.cache_dir)
    out = opts.results
    table = write_movie_table(evaluate_movies_text(ext, opts.bench, opts.split, limit=opts.limit, progress=progress), out)
    return table + f"\n\nwrote {out}/movies_text.md, results.jsonl (no posters offline: text-side metrics only)"
