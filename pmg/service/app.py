"""``pmg serve``: the FastAPI app. Models load once at start-up; one worker owns them (see worker.py).

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

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from pmg.api import PMG, GenerationConfig
from pmg.errors import PMGError
from pmg.service.schemas import ErrorOut, GenerateIn, GenerateOut, JobOut, KeywordsOut, UserIn, to_behaviours
from pmg.service.worker import Job, QueueFull, Worker, with_keywords

__all__ = ["ServiceConfig", "create_app"]

log = logging.getLogger("pmg.service")
STATIC = Path(__file__).parent / "static"
EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples" / "users"


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
    from pmg.io.output import _finite, manifest_dict

    kw = result.keywords
    return GenerateOut(
        user_id=result.user_id,
        keywords=KeywordsOut(preference=kw.preference, target=kw.target, cached=kw.cached, model=kw.model, warnings=kw.warnings),
        candidates=[{"w_p": c.w_p, "w_t": c.w_t, "d_p": _finite(c.d_p), "d_t": _finite(c.d_t) or 0.0,
                     "z": _finite(c.z) if _finite(c.z) is not None else -1e9, "png": _png(c.image)} for c in result.candidates],
        best=result.best, timings={k: round(v, 4) for k, v in result.timings.items()},
        manifest=_finite(manifest_dict(result, files={})),
    )


def _job_out(job: Job) -> JobOut:
    return JobOut(id=job.id, status=job.status, progress=round(job.progress, 3),
                  result=_result_out(job.result) if job.result is not None else None, error=job.error)


def create_app(load: Callable[[], PMG] | PMG, config: ServiceConfig | None = None) -> FastAPI:
    """The app. ``load`` builds the models (called once, at start-up, in the background) or is a PMG."""
    cfg = config or ServiceConfig()
    state: dict = {"pmg": None, "worker": None, "error": None}

    def start() -> None:
        try:
            pmg = load() if callable(load) else load
            state["worker"] = Worker(pmg, max_batch=cfg.max_batch, queue_size=cfg.queue_size,
                                     batch_window_s=cfg.batch_window_s).start()
            state["pmg"] = pmg
        except Exception as e:  # noqa: BLE001 - reported by /v1/health
            log.exception("model loading failed")
            state["error"] = f"{type(e).__name__}: {e}"

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        if isinstance(load, PMG):
            start()
        else:
            threading.Thread(target=start, daemon=True).start()
        yield
        if state["worker"] is not None:
            state["worker"].stop()

    app = FastAPI(title="PMG", version="1", lifespan=lifespan,
                  description="Personalised multimodal generation (PMG, WWW'24): behaviours in, a personalised image out.",
                  responses={code: {"model": ErrorOut} for code in (400, 401, 411, 413, 422, 500, 503)})
    app.state.pmg_state = state

    # ---------------------------------------------------------------- errors: one place, no tracebacks
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors()[:5]:
            loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            parts.append(f"{loc or 'body'}: {e.get('msg', 'invalid')}")
        return JSONResponse(status_code=422, content={"detail": "; ".join(parts)})

    @app.exception_handler(PMGError)
    async def _pmg_error(request: Request, exc: PMGError):
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse(status_code=500, content={"detail": f"internal error ({type(exc).__name__}); see the server log"})

    @app.middleware("http")
    async def _limit_body(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > cfg.max_body_bytes):
            return JSONResponse(status_code=413, content={"detail": f"body: {size} bytes; at most {cfg.max_body_bytes}"})
        if request.method == "POST" and size is None and request.headers.get("transfer-encoding"):
            return JSONResponse(status_code=411, content={"detail": "body: send a Content-Length"})
        return await call_next(request)

    def auth(request: Request) -> None:
        if not cfg.api_key:
            return
        given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), cfg.api_key.encode()):
            raise HTTPException(status_code=401, detail="missing or wrong API key (X-API-Key header)")

    def ready() -> tuple[PMG, Worker]:
        if state["pmg"] is None:
            raise HTTPException(status_code=503, detail=state["error"] or "models are loading; try again shortly")
        return state["pmg"], state["worker"]

    def make_job(body: GenerateIn) -> Job:
        user = to_behaviours(body)
        o = body.options
        config = GenerationConfig(seed=o.seed, alpha=o.alpha, weights=tuple(o.weights), num_inference_steps=o.steps,
                                  guidance_scale=o.guidance, use_keywords=o.use_keywords, use_soft=o.use_soft)
        kw = with_keywords(None, body.keywords.preference, body.keywords.target) if body.keywords else None
        return Job(user=user, config=config, keywords=kw)

    def submit(job: Job) -> Job:
        _, worker = ready()
        try:
            return worker.submit(job)
        except QueueFull as e:
            raise HTTPException(status_code=429, detail=str(e)) from None

    # ---------------------------------------------------------------- routes
    @app.get("/v1/health")
    def health():
        if state["pmg"] is None:
            return JSONResponse(status_code=503, content={"status": "failed" if state["error"] else "loading",
                                                          "detail": state["error"]})
        return {"status": "ready"}

    @app.get("/v1/models", dependencies=[Depends(auth)])
    def models():
        pmg, _ = ready()
        soft = pmg.soft if isinstance(pmg.soft, dict) else {"*": pmg.soft} if pmg.soft else {}
        return {"llm": pmg.extractor.llm.name, "generator": pmg.generator.name, "scorer": pmg.scorer.name,
                "soft": {k: v.name for k, v in soft.items()}, "default_steps": pmg.generator.default_steps}

    @app.post("/v1/keywords", response_model=KeywordsOut, dependencies=[Depends(auth)])
    async def keywords(body: UserIn):
        pmg, _ = ready()
        user = to_behaviours(body)
        kw = await asyncio.to_thread(pmg.keywords, user)
        return KeywordsOut(preference=kw.preference, target=kw.target, cached=kw.cached, model=kw.model, warnings=kw.warnings)

    @app.post("/v1/jobs", response_model=JobOut, status_code=202, dependencies=[Depends(auth)], responses={429: {"model": ErrorOut}})
    def create_job(body: GenerateIn):
        return _job_out(submit(make_job(body)))

    @app.get("/v1/jobs/{job_id}", response_model=JobOut, dependencies=[Depends(auth)], responses={404: {"model": ErrorOut}})
    def get_job(job_id: str):
        _, worker = ready()
        job = worker.jobs.get(job_id)
        if job is None:
            raise HTTPException(status_code=404, detail=f"job_id: no job {job_id[:40]!r}")
        return _job_out(job)

    @app.post("/v1/generate", response_model=GenerateOut, dependencies=[Depends(auth)],
              responses={429: {"model": ErrorOut}, 504: {"model": ErrorOut}})
    async def generate(body: GenerateIn):
        job = submit(make_job(body))
        finished = await asyncio.to_thread(job.done.wait, cfg.timeout_s)
        if not finished:
            job.status = "cancelled" if job.status == "queued" else job.status
            raise HTTPException(status_code=504, detail=f"the request took over {cfg.timeout_s:g} s")
        if job.status != "done":
            raise HTTPException(status_code=422, detail=job.error or "generation failed")
        return _result_out(job.result)

    @app.get("/v1/examples", dependencies=[Depends(auth)])
    def examples():
        out = {}
        for p in sorted(EXAMPLES.glob("*.json")):
            data = json.loads(p.read_text())
            if not any("image" in it for it in data.get("history", [])):
                out[p.stem] = data
        return out

    @app.get("/v1/palette")
    def palette():
        from pmg.service.palette import PALETTE

        return PALETTE

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
