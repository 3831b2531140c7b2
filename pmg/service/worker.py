"""The worker that owns the models: a bounded queue of jobs, batched into one U-Net pass.

Requests that arrive together (within ``batch_window_s``) are generated together, up to
``max_batch`` users: keywords in one LLM call, then the grids of every user (5 candidates x k users)
in one batched pass per denoising step (``PMG.generate_many``). Each still gets exactly its own
images (masked padding; see ``PMGPipeline.denoise_grids``). A full queue refuses new jobs (429);
a job whose caller stopped waiting is cancelled before it starts.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field

from pmg.api import PMG, GenerationConfig, PMGResult
from pmg.behaviours.schema import UserBehaviours
from pmg.errors import PMGError
from pmg.keywords.extract import KeywordResult

__all__ = ["Job", "Worker", "QueueFull", "status_for", "generate_jobs", "keep_job"]

log = logging.getLogger("pmg.service")


def status_for(error: PMGError) -> int:
    """422 for what the request got wrong (its behaviours, its options); 500 for the server's own
    failures (a model that would not load, an LLM backend that failed)."""
    from pmg.errors import LLMError, ModelLoadError

    return 500 if isinstance(error, (LLMError, ModelLoadError)) else 422


class QueueFull(Exception):
    """The queue holds ``queue_size`` jobs already."""


@dataclass
class Job:
    user: UserBehaviours
    config: GenerationConfig
    keywords: KeywordResult | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    status: str = "queued"
    progress: float = 0.0
    result: PMGResult | None = None
    error: str | None = None
    error_status: int | None = None  # 422: the request cannot be served (PMGError); 500: an internal failure
    created: float = field(default_factory=time.time)
    done: threading.Event = field(default_factory=threading.Event)

    def finish(self, status: str, result: PMGResult | None = None, error: str | None = None,
               error_status: int | None = None) -> None:
        self.status, self.result, self.error, self.error_status = status, result, error, error_status
        if status == "done":
            self.progress = 1.0
        self.done.set()


class Worker:
    """One thread, one model set. ``submit`` returns at once; ``Job.done`` is set when it ends."""

    def __init__(self, pmg: PMG, *, max_batch: int = 4, queue_size: int = 16, batch_window_s: float = 0.05,
                 keep_jobs: int = 256, keep_batches: int = 1024):
        self.pmg, self.max_batch, self.batch_window_s = pmg, max(1, max_batch), batch_window_s
        self.queue: queue.Queue[Job] = queue.Queue(maxsize=queue_size)
        self.jobs: dict[str, Job] = {}
        self.keep_jobs = keep_jobs
        # sizes of the latest batches run (for tests and the benchmark); bounded: a server runs for weeks
        self.batches: collections.deque[int] = collections.deque(maxlen=keep_batches)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="pmg-worker", daemon=True)
        self._stop = threading.Event()

    def start(self) -> "Worker":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def submit(self, job: Job) -> Job:
        with self._lock:
            try:
                self.queue.put_nowait(job)
            except queue.Full:
                raise QueueFull(f"the queue is full ({self.queue.maxsize} requests waiting); try again shortly") from None
            keep_job(self.jobs, job, self.keep_jobs)
        return job

    def _take_batch(self) -> list[Job]:
        try:
            first = self.queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.batch_window_s
        while len(batch) < self.max_batch:
            left = deadline - time.monotonic()
            try:
                batch.append(self.queue.get(timeout=max(0.0, left)) if left > 0 else self.queue.get_nowait())
            except queue.Empty:
                break
        return [j for j in batch if j.status != "cancelled"]

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._take_batch()
            if batch:
                self._generate(batch)

    def _generate(self, batch: list[Job]) -> None:
        self.batches.append(len(batch))
        generate_jobs(self.pmg, batch)


def keep_job(jobs: dict[str, Job], job: Job, keep: int) -> None:
    """Add ``job`` to ``jobs`` (id -> job), forgetting the oldest finished ones beyond ``keep``."""
    jobs[job.id] = job
    if len(jobs) > keep:
        for jid in [j.id for j in sorted(jobs.values(), key=lambda j: j.created) if j.done.is_set()][: len(jobs) - keep]:
            jobs.pop(jid, None)


def generate_jobs(pmg: PMG, batch: list[Job]) -> None:
    """Generate these jobs together (keywords in one LLM call, one U-Net pass per step) and finish each
    one. If the batch fails, each job runs alone, so that one bad request fails alone."""
    for j in batch:
        j.status = "keywords" if j.keywords is None else "generating"

    def progress(i: int, n: int) -> None:
        for j in batch:
            j.status, j.progress = "generating", 0.1 + 0.85 * i / n

    try:
        results = pmg.generate_many([j.user for j in batch], [j.config for j in batch],
                                    keywords=[j.keywords for j in batch], callback=progress)
    except Exception:  # noqa: BLE001 - one bad request must not fail the others: run them one by one
        if len(batch) > 1:
            for j in batch:
                generate_jobs(pmg, [j])
            return
        j = batch[0]
        try:
            results = [pmg.generate(j.user, j.config, keywords=j.keywords, callback=progress)]
        except PMGError as e:
            j.finish("failed", error=str(e), error_status=status_for(e))
            return
        except Exception as e:  # noqa: BLE001 - logged here, never sent to the client
            log.exception("generation failed for job %s", j.id)
            j.finish("failed", error=f"internal error ({type(e).__name__}); see the server log", error_status=500)
            return
    for j, r in zip(batch, results):
        j.finish("done", result=r)


def _edited(keywords: list[str], where: str) -> list[str]:
    """Edited keywords cleaned like any behaviour field (``clean_field``); ones left empty are dropped."""
    from pmg.behaviours.to_text import clean_field
    from pmg.errors import InputError
    from pmg.limits import MAX_EDITED_KEYWORD_CHARS

    out = []
    for i, k in enumerate(keywords):
        if not isinstance(k, str) or len(k) > MAX_EDITED_KEYWORD_CHARS:
            raise InputError(f"{where}[{i}]: a text of at most {MAX_EDITED_KEYWORD_CHARS} characters, "
                             f"got {len(k) if isinstance(k, str) else k!r}")
        if clean_field(k):
            out.append(clean_field(k))
    return out


def with_keywords(result: KeywordResult | None, preference: list[str], target: list[str]) -> KeywordResult:
    """Keywords given by the caller (edited on the page) instead of the LLM's, cleaned (``_edited``)."""
    from pmg.errors import InputError

    preference, target = _edited(preference, "keywords.preference"), _edited(target, "keywords.target")
    if not target:
        raise InputError("keywords.target: no keyword left once markup and control characters are removed")
    base = result or KeywordResult(preference=[], target=[])
    return dataclasses.replace(base, preference=list(preference), target=list(target), cached=False, llm_calls=0,
                               model=base.model or "user-edited")
