"""``pmg batch``: generate for a whole folder (or JSONL file) of users, resumably.

    DIR/users/<user>/          one folder per user, as ``pmg generate`` writes it (manifest.json last)
    DIR/errors.jsonl           this run's failures: source, user id, field, message
    DIR/summary.json           counts, seconds per stage, chosen weights, users per minute

A user whose folder holds a manifest with the same input key (behaviours and image bytes, options,
models, pmg version) is skipped, so a killed run started again redoes nothing finished and loses
nothing: a folder appears only once its manifest is written.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pmg.batch.inputs import BatchInput, folder_name, input_key, read_inputs
from pmg.batch.worker import outcome_failed
from pmg.errors import ConfigError
from pmg.io.atomic import write_text_atomic

__all__ = ["BatchConfig", "run_batch", "EXIT_SOME_FAILED"]

EXIT_SOME_FAILED = 3
STAGES = ("keywords_s", "soft_embeddings_s", "generation_s", "scoring_s")


@dataclass(frozen=True)
class BatchConfig:
    engine: str = "local"  # "local" (no Ray needed) or "ray"
    workers: int = 1
    threads_per_worker: int = 1
    users_per_call: int = 4  # users generated together: one batched keyword call, one U-Net pass
    ray_address: str | None = None  # an existing Ray cluster; None: start one for the run

    def __post_init__(self):
        from pmg.limits import MAX_USERS_PER_CALL, MAX_WORKERS, check_integer, check_threads

        if self.engine not in ("local", "ray"):
            raise ConfigError(f"--engine must be 'local' or 'ray', got {self.engine!r}")
        check_integer(self.workers, "--workers", 1, MAX_WORKERS)
        check_integer(self.users_per_call, "--users-per-call", 1, MAX_USERS_PER_CALL)
        check_threads(self.threads_per_worker, "--threads-per-worker")
        if self.ray_address is not None and self.engine != "ray":
            raise ConfigError("--ray-address needs --engine ray")


def models_id(loader: Callable) -> dict:
    """What the input key records of the models: a ModelSpec's names (not threads or cache folders)."""
    if dataclasses.is_dataclass(loader):
        spec = dataclasses.asdict(loader)
        return {k: v for k, v in spec.items() if k not in ("threads", "cache_dir", "model_cache_dir")
                and not (k == "scenario" and v is None)}
    return {"loader": f"{getattr(loader, '__module__', '?')}.{getattr(loader, '__qualname__', repr(loader))}"}


def _plan(inputs: list[BatchInput], config, models: dict, out: Path) -> tuple[list[BatchInput], list[BatchInput], list[dict]]:
    """(to do, already done, failures found before any model loads)."""
    todo, done, failed, seen = [], [], [], {}
    for inp in inputs:
        if inp.user is None:
            failed.append(outcome_failed(inp, inp.error or "unreadable", inp.field))
            continue
        inp.folder = folder_name(inp.user_id)
        if inp.folder in seen:
            failed.append(outcome_failed(inp, f"duplicate user_id {inp.user_id!r} (first in {seen[inp.folder]})", "user_id"))
            continue
        seen[inp.folder] = inp.source
        try:
            inp.key = input_key(inp.user, config, models)
        except OSError as e:
            failed.append(outcome_failed(inp, f"cannot read an image: {e.strerror or e}", "history"))
            continue
        (done if _finished(out / "users" / inp.folder, inp.key) else todo).append(inp)
    return todo, done, failed


def _finished(folder: Path, key: str) -> bool:
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and (manifest.get("batch") or {}).get("key") == key


@dataclasses.dataclass
class _Tally:
    """What a batch run has done so far, and its summary."""

    workers: int
    t_start: float
    failed: list
    stage: Counter = dataclasses.field(default_factory=Counter)
    chosen: Counter = dataclasses.field(default_factory=Counter)
    done: int = 0
    gen_failed: int = 0
    cached: int = 0
    lists: int = 0
    t_first: float | None = None
    n_first: int = 0

    def add(self, outcomes: list[dict], record_error: Callable) -> None:
        now = time.perf_counter()
        self.lists += 1
        if self.lists <= self.workers:  # each worker's first chunk carries its start-up: the clock starts after
            self.t_first, self.n_first = now, self.n_first + len(outcomes)
        for o in outcomes:
            if o["status"] == "done":
                self.done += 1
                self.cached += bool(o.get("keywords_cached"))
                self.chosen[o["chosen"]] += 1
                self.stage.update({k: v for k, v in o["timings"].items() if k in STAGES})
            else:
                self.gen_failed += 1
                self.failed.append(o)
                record_error(o)

    @property
    def processed(self) -> int:
        return self.done + self.gen_failed

    def summary(self, n_inputs: int, n_skipped: int, n_todo: int) -> dict:
        t_end = time.perf_counter()
        steady = None  # throughput once every worker is up (model loading and Ray start-up left out)
        if self.t_first is not None and self.processed > self.n_first and t_end > self.t_first:
            steady = 60 * (self.processed - self.n_first) / (t_end - self.t_first)
        return {
            "users": n_inputs, "generated": self.done, "skipped_already_done": n_skipped, "failed": len(self.failed),
            "not_reached": n_todo - self.processed,  # an interrupted run: started again, it does these
            "keywords_cached": self.cached,
            "wall_s": round(t_end - self.t_start, 3),
            "users_per_minute": round(60 * self.done / (t_end - self.t_start), 2) if self.done else 0.0,
            "users_per_minute_after_first_chunk": None if steady is None else round(steady, 2),
            "stage_seconds": {k: round(self.stage[k], 3) for k in STAGES if k in self.stage},
            "chosen_weights": dict(sorted(self.chosen.items())),
        }


def run_batch(users: str | Path, out: str | Path, loader: Callable, config, batch: BatchConfig = BatchConfig(), *,
              progress: bool = True, models: dict | None = None) -> dict:
    """Generate for every user under ``users`` into ``out``; returns (and writes) the summary.
    ``models``: what the input key records of the models (default: the ModelSpec's names)."""
    from pmg.batch.engines import run_local, run_ray
    from pmg.limits import check_writable_dir

    out = check_writable_dir(Path(out), "--out")
    tally = _Tally(batch.workers, time.perf_counter(), [])
    inputs = read_inputs(users)
    models = models if models is not None else models_id(loader)
    todo, skipped, tally.failed = _plan(inputs, config, models, out)
    (out / "users").mkdir(parents=True, exist_ok=True)
    for tmp in (out / "users").glob(".pmg-*"):  # a folder being written when a run was killed
        shutil.rmtree(tmp, ignore_errors=True)
    errors = (out / "errors.jsonl").open("w", encoding="utf-8")  # this run's failures (failed users are retried)

    def record_error(o: dict) -> None:
        errors.write(json.dumps({k: o.get(k) for k in ("source", "user_id", "field", "message")}, ensure_ascii=False) + "\n")
        errors.flush()

    for o in tally.failed:
        record_error(o)
    chunks = [todo[i : i + batch.users_per_call] for i in range(0, len(todo), batch.users_per_call)]
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="user", desc="users", file=sys.stderr, dynamic_ncols=True)
        if skipped:
            bar.write(f"{len(skipped)} users already done (skipped), {len(todo)} to do")
    if not chunks:
        results = iter(())
    elif batch.engine == "ray":
        results = run_ray(chunks, loader, config, out, workers=batch.workers, threads=batch.threads_per_worker,
                          address=batch.ray_address)
    else:
        results = run_local(chunks, loader, config, out, workers=batch.workers, threads=batch.threads_per_worker)
    try:
        for outcomes in results:
            tally.add(outcomes, record_error)
            if bar is not None:
                bar.update(len(outcomes))
                bar.set_postfix(failed=len(tally.failed), per_min=f"{60 * tally.processed / (time.perf_counter() - tally.t_start):.1f}")
    finally:
        if bar is not None:
            bar.close()
        errors.close()
        summary = {
            **tally.summary(len(inputs), len(skipped), len(todo)),
            "engine": batch.engine, "workers": batch.workers, "threads_per_worker": batch.threads_per_worker,
            "users_per_call": batch.users_per_call,
            "config": config.to_dict(),
            "models": models,
        }
        write_text_atomic(out / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False))
    return summary
