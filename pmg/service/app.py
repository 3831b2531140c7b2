"""``pmg serve``: the FastAPI app. Models load once at start-up; one worker owns them (see worker.py), or,
with the ray engine, each model replica on Ray Serve owns its own (ray_serve.py) behind this same app.

Routes (OpenAPI schema at /docs): POST /v1/generate (waits for the result), POST /v1/jobs + GET
/v1/jobs/{id} (submit, then poll progress), POST /v1/keywords, GET /v1/health (ready once the
models are loaded), GET /v1/models, GET /v1/examples, GET /v1/palette, and the page at /.

Bad input gets 413/422 with a message naming the field, a full queue 429, a request over its time
limit 504; no traceback ever reaches a client. With an API key (``--api-key`` / ``$PMG_API_KEY``)
every route but health and the page needs ``X-API-Key`` or ``Authorization: Bearer``.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import io
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from pmg.api import PMG
from pmg.behaviours.schema import UserBehaviours
from pmg.bundled import examples_dir
from pmg.errors import PMGError
from pmg.keywords.extract import KeywordResult
from pmg.service.schemas import ErrorOut, GenerateIn, GenerateOut, JobOut, KeywordsOut, UserIn, to_behaviours
from pmg.service.worker import Job, QueueFull, Worker, status_for, with_keywords

__all__ = ["ServiceConfig", "Engine", "LocalEngine", "create_app", "load_models", "models_info"]

log = logging.getLogger("pmg.service")
STATIC = Path(__file__).parent / "static"
EXAMPLES = examples_dir()


@dataclass
class ServiceConfig:
    max_batch: int = 4  # users per U-Net pass
    queue_size: int = 16  # waiting requests before 429
    timeout_s: float = 120.0  # per request, before 504
    max_body_bytes: int = 8 * 1024 * 1024  # 413 above
    api_key: str | None = None
    batch_window_s: float = 0.05


def _png(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _result_out(result) -> GenerateOut:
    from pmg.io.output import finite, manifest_dict

    kw = result.keywords
    return GenerateOut(
        user_id=result.user_id,
        keywords=KeywordsOut(preference=kw.preference, target=kw.target, cached=kw.cached, model=kw.model, warnings=kw.warnings),
        candidates=[{"w_p": c.w_p, "w_t": c.w_t, "noise": c.noise, "d_p": finite(c.d_p), "d_t": finite(c.d_t) or 0.0,
                     "z": finite(c.z) if finite(c.z) is not None else -1e9, "png": _png(c.image)} for c in result.candidates],
        best=result.best, timings={k: round(v, 4) for k, v in result.timings.items()},
        manifest=finite(manifest_dict(result, files={})),
        pictures=[{**rec, "png": _png(im)} for rec, im in zip(result.pictures, result.picture_images)],
    )


def _job_out(job: Job) -> JobOut:
    return JobOut(id=job.id, status=job.status, progress=round(job.progress, 3),
                  result=_result_out(job.result) if job.result is not None else None, error=job.error)


def models_info(pmg: PMG) -> dict:
    """What GET /v1/models says of these models."""
    soft = pmg.soft if isinstance(pmg.soft, dict) else {"*": pmg.soft} if pmg.soft else {}
    return {"llm": pmg.extractor.llm.name, "generator": pmg.generator.name, "scorer": pmg.scorer.name,
            "soft": {k: v.name for k, v in soft.items()}, "default_steps": pmg.generator.default_steps,
            "default_alpha": pmg.generator.default_alpha, "default_grid": [list(w) for w in pmg.generator.default_grid],
            "default_noises": getattr(pmg.generator, "default_noises", 1), "scenarios": pmg.scenario_models()}


def load_models(load: Callable[[], PMG] | PMG, threads: int | None = None) -> PMG:
    """``load()`` (or ``load`` itself, a PMG), once its LLM has loaded if that loads in the background."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    pmg = load if isinstance(load, PMG) else load()
    wait_ready = getattr(getattr(pmg.extractor, "llm", None), "wait_ready", None)
    if wait_ready is not None:  # an LLM loading in the background (llama.cpp's process): ready once it has
        wait_ready()
    return pmg


class Engine:
    """Where the routes' work runs: ``LocalEngine`` (the models in this process, one worker thread) or
    ``pmg.service.ray_serve.RayEngine`` (model replicas on Ray Serve). The app is the same for both."""

    slow_start = True  # ``start`` takes a while: run it in the background while /v1/health says 'loading'

    def start(self) -> None:
        """Load the models (or wait for them); raises if they cannot be loaded."""
        raise NotImplementedError

    def stop(self) -> None:
        pass

    def models(self) -> dict:
        raise NotImplementedError

    async def keywords(self, user: UserBehaviours) -> KeywordResult:
        raise NotImplementedError

    def submit(self, job: Job) -> Job:
        """Start ``job`` and return at once (``job.done`` is set when it ends); ``QueueFull`` when full."""
        raise NotImplementedError

    def job(self, job_id: str) -> Job | None:
        raise NotImplementedError


class LocalEngine(Engine):
    """One model set in this process; one worker thread batches the requests (worker.py)."""

    def __init__(self, load: Callable[[], PMG] | PMG, cfg: ServiceConfig):
        self.load, self.cfg, self.pmg, self.worker = load, cfg, None, None
        self.slow_start = not isinstance(load, PMG)

    def start(self) -> None:
        pmg = load_models(self.load)
        self.worker = Worker(pmg, max_batch=self.cfg.max_batch, queue_size=self.cfg.queue_size,
                             batch_window_s=self.cfg.batch_window_s).start()
        self.pmg = pmg

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()

    def models(self) -> dict:
        return models_info(self.pmg)

    async def keywords(self, user: UserBehaviours) -> KeywordResult:
        return await asyncio.to_thread(self.pmg.keywords, user)

    def submit(self, job: Job) -> Job:
        return self.worker.submit(job)

    def job(self, job_id: str) -> Job | None:
        return self.worker.jobs.get(job_id)


class _State:
    """What the routes share: the engine (ready once its models are loaded), the settings."""

    def __init__(self, cfg: ServiceConfig, engine: Engine):
        self.cfg, self.engine, self.loaded, self.error = cfg, engine, False, None

    def start(self) -> None:
        try:
            self.engine.start()
            self.loaded = True
        except Exception as e:  # noqa: BLE001 - reported by /v1/health
            log.exception("model loading failed")
            self.error = f"{type(e).__name__}: {e}"

    def ready(self) -> Engine:
        if not self.loaded:
            raise HTTPException(status_code=503, detail=self.error or "models are loading; try again shortly")
        return self.engine

    def submit(self, job: Job) -> Job:
        try:
            return self.ready().submit(job)
        except QueueFull as e:
            raise HTTPException(status_code=429, detail=str(e)) from None


def _state(request: Request) -> _State:
    return request.app.state.pmg_state


def auth(request: Request) -> None:
    """With an API key configured, every route but health and the page needs it."""
    key = _state(request).cfg.api_key
    if not key:
        return
    given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), key.encode()):
        raise HTTPException(status_code=401, detail="missing or wrong API key (X-API-Key header)")


def make_job(body: GenerateIn) -> Job:
    """A request body -> a job: behaviours (images decoded in memory), options, edited keywords."""
    user = to_behaviours(body)
    config = body.options.to_config()  # validated with the request (the options are GenerationConfig's)
    kw = with_keywords(None, body.keywords.preference, body.keywords.target) if body.keywords else None
    return Job(user=user, config=config, keywords=kw)


router = APIRouter()
guarded = APIRouter(dependencies=[Depends(auth)])


@router.get("/v1/health")
def health(request: Request):
    st = _state(request)
    if not st.loaded:
        return JSONResponse(status_code=503, content={"status": "failed" if st.error else "loading", "detail": st.error})
    return {"status": "ready"}


@guarded.get("/v1/models")
def models(request: Request):
    """The default scenario's models, and under 'scenarios' each scenario's (those not loaded yet are
    listed as their first user will load them)."""
    return _state(request).ready().models()


@guarded.post("/v1/keywords", response_model=KeywordsOut)
async def keywords(request: Request, body: UserIn):
    kw = await _state(request).ready().keywords(to_behaviours(body))
    return KeywordsOut(preference=kw.preference, target=kw.target, cached=kw.cached, model=kw.model, warnings=kw.warnings)


@guarded.post("/v1/jobs", response_model=JobOut, status_code=202, responses={429: {"model": ErrorOut}})
def create_job(request: Request, body: GenerateIn):
    return _job_out(_state(request).submit(make_job(body)))


@guarded.get("/v1/jobs/{job_id}", response_model=JobOut, responses={404: {"model": ErrorOut}})
def get_job(request: Request, job_id: str):
    job = _state(request).ready().job(job_id)
    if job is None:
        raise HTTPException(status_code=404, detail=f"job_id: no job {job_id[:40]!r}")
    return _job_out(job)


@guarded.post("/v1/generate", response_model=GenerateOut, responses={429: {"model": ErrorOut}, 504: {"model": ErrorOut}})
async def generate(request: Request, body: GenerateIn):
    st = _state(request)
    job = st.submit(make_job(body))
    if not await asyncio.to_thread(job.done.wait, st.cfg.timeout_s):
        job.status = "cancelled" if job.status == "queued" else job.status
        raise HTTPException(status_code=504, detail=f"the request took over {st.cfg.timeout_s:g} s")
    if job.status != "done":  # the request's fault (PMGError) is a 422; anything else is ours, a 500
        raise HTTPException(status_code=job.error_status or 500, detail=job.error or "generation failed")
    return _result_out(job.result)


@guarded.get("/v1/examples")
def examples():
    """The bundled example users, their pictures inline as base64 (as a request sends them)."""
    out = {}
    for p in sorted(EXAMPLES.glob("*.json")):
        data = json.loads(p.read_text())
        for it in data.get("history", []) + [data.get("target", {}).get("item") or {}]:
            if "image" in it:
                it["image"] = base64.b64encode((p.parent / it["image"]).read_bytes()).decode()
        out[p.stem] = data
    return out


@router.get("/v1/palette")
def palette():
    from pmg.service.palette import PALETTE

    return PALETTE


@router.get("/", include_in_schema=False)
def index():
    return FileResponse(STATIC / "index.html")


def _install_error_handlers(app: FastAPI) -> None:
    """Every error becomes one JSON message naming the field; never a traceback."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors()[:5]:
            loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            parts.append(f"{loc or 'body'}: {e.get('msg', 'invalid')}")
        return JSONResponse(status_code=422, content={"detail": "; ".join(parts)})

    @app.exception_handler(PMGError)
    async def _pmg_error(request: Request, exc: PMGError):
        if status_for(exc) == 500:
            log.error("server-side failure on %s: %s", request.url.path, exc)
        return JSONResponse(status_code=status_for(exc), content={"detail": str(exc)})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse(status_code=500, content={"detail": f"internal error ({type(exc).__name__}); see the server log"})

    @app.middleware("http")
    async def _limit_body(request: Request, call_next):
        limit = _state(request).cfg.max_body_bytes
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > limit):
            return JSONResponse(status_code=413, content={"detail": f"body: {size} bytes; at most {limit}"})
        if request.method == "POST" and size is None and request.headers.get("transfer-encoding"):
            return JSONResponse(status_code=411, content={"detail": "body: send a Content-Length"})
        return await call_next(request)


def create_app(load: Callable[[], PMG] | PMG | Engine, config: ServiceConfig | None = None) -> FastAPI:
    """The app. ``load`` builds the models (called once, at start-up, in the background), is a PMG, or is
    an ``Engine`` that serves them elsewhere (``pmg.service.ray_serve``)."""
    from contextlib import asynccontextmanager

    cfg = config or ServiceConfig()
    state = _State(cfg, load if isinstance(load, Engine) else LocalEngine(load, cfg))

    @asynccontextmanager
    async def lifespan(app):
        if state.engine.slow_start:
            threading.Thread(target=state.start, daemon=True).start()
        else:
            state.start()
        yield
        state.engine.stop()

    app = FastAPI(title="PMG", version="1", lifespan=lifespan,
                  description="Personalised multimodal generation (PMG, WWW'24): behaviours in, a personalised image out.",
                  responses={code: {"model": ErrorOut} for code in (400, 401, 411, 413, 422, 500, 503)})
    app.state.pmg_state = state
    _install_error_handlers(app)
    app.include_router(router)
    app.include_router(guarded)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
