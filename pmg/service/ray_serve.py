"""``pmg serve --engine ray``: the same app on Ray Serve, the models in replicas behind one address.

One Serve application of two deployments:

- ``PMGIngress`` (one replica, no CPU reserved) runs app.py's FastAPI app unchanged: the same routes,
  page, OpenAPI schema and 4xx answers. Its ``RayEngine`` sends the work to
- ``PMGModels`` (``replicas`` of them, or autoscaled from ``replicas`` to ``max_replicas``): each loads
  its own models and generates the requests that reach it together in one U-Net pass (``@serve.batch``
  over ``generate_jobs``, what the single-process worker runs).

The app is not run inside the model replicas because Serve's HTTP proxy answers 500 for a request whose
replica dies; the ingress instead sends it to another model replica (``retries`` times) or answers 503,
and every other request goes on. Jobs (POST /v1/jobs) are kept by the one ingress replica, so polling
finds them whichever model replica runs them; their progress is 'generating' until they end.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from fastapi import HTTPException

from pmg.api import PMG, GenerationConfig
from pmg.behaviours.schema import UserBehaviours
from pmg.errors import ConfigError, ModelLoadError
from pmg.keywords.extract import KeywordResult
from pmg.limits import MAX_QUEUE, MAX_WORKERS, check_integer, check_number, check_threads
from pmg.service.app import Engine, ServiceConfig, create_app, load_models, models_info
from pmg.service.worker import Job, QueueFull, generate_jobs, keep_job

try:
    import ray
    from ray import serve
    from ray.exceptions import RayActorError, RayTaskError
except ImportError as e:
    raise ConfigError(f"the ray engine needs Ray Serve: pip install -e \".[ray]\" ({e})") from None

__all__ = ["RayServeConfig", "RayEngine", "RayService", "app_builder", "build_app", "serve_forever"]

log = logging.getLogger("pmg.service")
APP_NAME = "pmg"
MODELS, INGRESS = "PMGModels", "PMGIngress"
KEEP_JOBS = 256


@dataclass(frozen=True)
class RayServeConfig:
    """How many model replicas, and on which Ray."""

    replicas: int = 1  # model replicas at start-up, and the fewest when autoscaling
    max_replicas: int | None = None  # autoscale up to this many (None: ``replicas``, no autoscaling)
    target_ongoing_requests: float | None = None  # autoscaling's requests per replica (None: the service's max_batch)
    threads: int = 1  # torch threads per replica, and the CPUs Ray reserves for each
    address: str | None = None  # an existing Ray cluster; None: a local Ray, started and stopped with the server
    retries: int = 2  # times a request goes to another replica when the one generating it dies

    def __post_init__(self):
        check_integer(self.replicas, "replicas", 1, MAX_WORKERS)
        if self.max_replicas is not None:
            check_integer(self.max_replicas, "max_replicas", self.replicas, MAX_WORKERS, f"{MAX_WORKERS} (and at least replicas)")
        if self.target_ongoing_requests is not None:
            check_number(self.target_ongoing_requests, "target_ongoing_requests", 1, MAX_QUEUE)
        check_threads(self.threads, "threads")
        check_integer(self.retries, "retries", 0, 10)
        if self.address is not None and (not isinstance(self.address, str) or not self.address.strip()):
            raise ConfigError(f"address: a Ray cluster address such as 'HOST:6379' or 'auto', got {self.address!r}")

    @property
    def most_replicas(self) -> int:
        return self.max_replicas or self.replicas

    def capacity(self, service: ServiceConfig) -> int:
        """Requests the ingress holds before 429: a batch running on every replica, plus the service's queue."""
        return service.queue_size + service.max_batch * self.most_replicas

    def scaling(self, max_batch: int) -> dict:
        """The model deployment's replica options: a fixed number, or Serve's autoscaling."""
        if self.most_replicas == self.replicas:
            return {"num_replicas": self.replicas}
        return {"autoscaling_config": {"min_replicas": self.replicas, "initial_replicas": self.replicas,
                                       "max_replicas": self.max_replicas,
                                       "target_ongoing_requests": self.target_ongoing_requests or max_batch}}


class ModelReplica:
    """One model set. Requests that reach it together are generated together (``@serve.batch``)."""

    def __init__(self, load: Callable[[], PMG], service: ServiceConfig, threads: int):
        # one thread loads and runs the models, as in the single-process worker: torch keeps thread pools
        # per calling thread, and another thread's pool makes the U-Net slower
        self._models = ThreadPoolExecutor(1, thread_name_prefix="pmg-models")
        self.pmg = self._models.submit(load_models, load, threads).result()
        self.generate.set_max_batch_size(service.max_batch)
        self.generate.set_batch_wait_timeout_s(service.batch_window_s)
        self.batches: collections.deque[int] = collections.deque(maxlen=1024)  # sizes of the latest batches

    async def _on_models(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._models, fn, *args)

    async def models(self) -> dict:
        return models_info(self.pmg)

    async def keywords(self, user: UserBehaviours) -> KeywordResult:
        return await self._on_models(self.pmg.keywords, user)

    async def batch_sizes(self) -> list[int]:
        return list(self.batches)

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.05)  # both set from the ServiceConfig in __init__
    async def generate(self, users: list[UserBehaviours], configs: list[GenerationConfig],
                       keywords: list[KeywordResult | None]) -> list[tuple]:
        """Each request's (status, result, error, error_status), as ``Job.finish`` takes them."""
        jobs = [Job(user=u, config=c, keywords=k) for u, c, k in zip(users, configs, keywords)]
        self.batches.append(len(jobs))
        await self._on_models(generate_jobs, self.pmg, jobs)
        return [(j.status, j.result, j.error, j.error_status) for j in jobs]


class RayEngine(Engine):
    """The ingress's engine: each request runs on a model replica; jobs are kept here."""

    def __init__(self, models, cfg: ServiceConfig, *, capacity: int, retries: int = 2):
        """``models``: a handle to the ``PMGModels`` deployment; ``capacity``: requests waiting or running
        before 429."""
        self.handle, self.cfg, self.capacity, self.retries = models, cfg, capacity, retries
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._running = 0
        self._pool = ThreadPoolExecutor(capacity, thread_name_prefix="pmg-ray")

    def start(self) -> None:
        self._call("models")  # answered once a replica has loaded its models

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def models(self) -> dict:
        return self._call("models")

    async def keywords(self, user: UserBehaviours) -> KeywordResult:
        return await asyncio.to_thread(self._call, "keywords", user)

    def submit(self, job: Job) -> Job:
        with self._lock:
            if self._running >= self.capacity:
                raise QueueFull(f"the service holds {self.capacity} requests already; try again shortly")
            self._running += 1
            keep_job(self.jobs, job, KEEP_JOBS)
        job.status, job.progress = "generating", 0.1  # on a replica from now on: no finer progress
        self._pool.submit(self._run, job)
        return job

    def job(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def _run(self, job: Job) -> None:
        try:
            job.finish(*self._call("generate", job.user, job.config, job.keywords))
        except HTTPException as e:
            job.finish("failed", error=e.detail, error_status=e.status_code)
        except Exception as e:  # noqa: BLE001 - logged here, never sent to the client
            log.exception("generation failed for job %s", job.id)
            job.finish("failed", error=f"internal error ({type(e).__name__}); see the server log", error_status=500)
        finally:
            with self._lock:
                self._running -= 1

    def _call(self, method: str, *args):
        """``method`` on a model replica; on another one if that one dies, ``retries`` times, then 503.
        The replica's own errors (a ``PMGError``) are raised as they are, without Ray's wrapping."""
        for attempt in range(self.retries + 1):
            response = getattr(self.handle, method).remote(*args)
            try:
                return response.result(timeout_s=self.cfg.timeout_s)
            except RayActorError as e:  # the replica died or cannot be reached (ActorUnavailableError)
                log.warning("a model replica stopped during %s (%s); %s", method, type(e).__name__,
                            "sending it to another" if attempt < self.retries else "giving up")
            except RayTaskError as e:
                raise e.cause if isinstance(e.cause, Exception) else e from None
            except TimeoutError:
                response.cancel()  # the replica stops working on it
                raise HTTPException(status_code=504, detail=f"the request took over {self.cfg.timeout_s:g} s") from None
        raise HTTPException(status_code=503, detail="the model replicas that took this request stopped; try again")


@serve.ingress()
class Ingress:
    """app.py's app on a ``RayEngine``."""

    def __init__(self, models, service: ServiceConfig, cluster: RayServeConfig):
        self.service = service
        self.engine = RayEngine(models, service, capacity=cluster.capacity(service), retries=cluster.retries)

    def __serve_build_asgi_app__(self):
        return create_app(self.engine, self.service)


def build_app(load: Callable[[], PMG], service: ServiceConfig, cluster: RayServeConfig):
    """The Serve application: the ingress bound to the model deployment. ``load`` must be picklable
    (a ``pmg.api.ModelSpec``, or a module-level function): each replica calls it."""
    models = serve.deployment(ModelReplica, name=MODELS, ray_actor_options={"num_cpus": cluster.threads},
                              max_ongoing_requests=2 * service.max_batch,  # one batch running, the next gathering
                              **cluster.scaling(service.max_batch))
    ingress = serve.deployment(Ingress, name=INGRESS, num_replicas=1, ray_actor_options={"num_cpus": 0},
                               max_ongoing_requests=cluster.capacity(service) + 64)  # + polls, health checks, the page
    return ingress.bind(models.bind(load, service, cluster.threads), service, cluster)


def app_builder(args: dict):
    """The application for Serve config files (``import_path: pmg.service.ray_serve:app_builder``; KubeRay's
    RayService, ``serve run``). ``args``: ``models`` (``ModelSpec``'s fields), ``service`` (``ServiceConfig``'s;
    ``api_key`` defaults to $PMG_API_KEY) and ``cluster`` (``RayServeConfig``'s), each a mapping."""
    import dataclasses
    import os

    from pmg.api import ModelSpec

    parts = {"models": ModelSpec, "service": ServiceConfig, "cluster": RayServeConfig}
    for key in set(args) - set(parts):
        raise ConfigError(f"args.{key}: not one of {', '.join(parts)}")
    built = {}
    for key, cls in parts.items():
        given = dict(args.get(key) or {})
        fields = {f.name for f in dataclasses.fields(cls)}
        for name in set(given) - fields:
            raise ConfigError(f"args.{key}.{name}: not a field of {cls.__name__} ({', '.join(sorted(fields))})")
        built[key] = cls(**given)
    if built["service"].api_key is None and os.environ.get("PMG_API_KEY"):
        built["service"] = dataclasses.replace(built["service"], api_key=os.environ["PMG_API_KEY"])
    return build_app(built["models"], built["service"], built["cluster"])


class RayService:
    """The app served by Ray Serve at ``url`` from ``start()`` to ``stop()`` (or a ``with`` block).
    ``stop`` removes what ``start`` added: the application; Serve if it started it; Ray if it started it.
    Started from the main thread, SIGTERM raises ``KeyboardInterrupt`` in it until ``stop``."""

    def __init__(self, load: Callable[[], PMG], service: ServiceConfig | None = None,
                 cluster: RayServeConfig | None = None, *, host: str = "127.0.0.1", port: int = 8000):
        self.load, self.service, self.cluster = load, service or ServiceConfig(), cluster or RayServeConfig()
        self.host, self.port = host, port
        self.url = f"http://{host}:{port}"
        self._connected = self._had_serve = False
        self._sigterm = None  # the SIGTERM handler before start()

    def start(self) -> "RayService":
        from pmg.ray_init import init_ray

        self._connected = init_ray(self.cluster.address, num_cpus=self.cluster.threads * self.cluster.most_replicas)
        if threading.current_thread() is threading.main_thread():
            # SIGTERM stops the server as Ctrl-C does: Ray's own handler aborts the process, leaving its children
            self._sigterm = signal.signal(signal.SIGTERM, _interrupt)
        self._had_serve = bool(serve.status().proxies)
        try:
            serve.start(http_options={"host": self.host, "port": self.port})
            serve.run(build_app(self.load, self.service, self.cluster), name=APP_NAME, route_prefix="/")
        except BaseException as e:
            self.stop()
            if isinstance(e, RuntimeError):  # Serve's word that the deployment failed (its replicas' errors)
                raise ModelLoadError(f"Ray Serve could not start the model replicas: {str(e).strip().splitlines()[0]}") from e
            raise
        return self

    def stop(self) -> None:
        if self._had_serve:
            serve.delete(APP_NAME)
        else:
            serve.shutdown()
        if self._connected:
            ray.shutdown()
        if self._sigterm is not None:
            signal.signal(signal.SIGTERM, self._sigterm or signal.SIG_DFL)
            self._sigterm = None

    def __enter__(self) -> "RayService":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def serve_forever(load: Callable[[], PMG], service: ServiceConfig, cluster: RayServeConfig, *, host: str, port: int,
                  log: Callable[[str], None] = print) -> None:
    """Serve until Ctrl-C or SIGTERM, then stop what was started (``RayService.stop``)."""
    server = RayService(load, service, cluster, host=host, port=port)
    log(f"starting Ray Serve ({cluster.replicas} model replicas; Ray at {cluster.address or 'a local Ray'}); loading models ...")
    try:
        with server:
            log(f"PMG at {server.url}/ (API docs at /docs)")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        log("stopped")
