"""The HTTP service on tiny seeded models: API, batching, concurrency, limits, hostile bodies."""

import base64
import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import ColourScorer, ScriptedLLM, animal_answer, patch_tiny_models

from pmg.api import PMG, GenerationConfig
from pmg.keywords.extract import KeywordExtractor
from pmg.service import ServiceConfig, create_app
from pmg.service.schemas import to_behaviours, GenerateIn


_answer = animal_answer


def _pmg(tiny_pipe):
    return PMG(KeywordExtractor(ScriptedLLM(_answer)), tiny_pipe, ColourScorer())


def body(animal="cat", msg="so happy", seed=0, **kw):
    b = {"user_id": animal, "scenario": "emoticon", "history": [{"title": f"{animal} face"}, {"title": f"grinning {animal}"}],
         "target": {"message": msg}, "options": {"seed": seed, "steps": 3}}
    b.update(kw)
    return b


@pytest.fixture()
def client(tiny_pipe):
    app = create_app(_pmg(tiny_pipe), ServiceConfig(max_batch=8, queue_size=16, timeout_s=60, batch_window_s=0.2))
    with TestClient(app) as c:
        yield c


@pytest.fixture(params=["local", "ray"])
def api(request):
    """The single-process service (``client``) or the same app on Ray Serve (conftest's ``ray_service``,
    2 replicas): bad input must get the same answers from both."""
    if request.param == "local":
        yield request.getfixturevalue("client")
        return
    import httpx

    with httpx.Client(base_url=request.getfixturevalue("ray_service").url, timeout=60) as c:
        yield c


def _pixels(out):
    return [np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(io.BytesIO(base64.b64decode(c["png"])))) for c in out["candidates"]]


def test_generate_equals_the_library(client, tiny_pipe):
    r = client.post("/v1/generate", json=body())
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["candidates"]) == 5 and 0 <= out["best"] < 5
    assert out["keywords"]["preference"][0] == "cat" and out["manifest"]["seed"] == 0
    lib = _pmg(tiny_pipe).generate(to_behaviours(GenerateIn(**body())), GenerationConfig(seed=0, num_inference_steps=3))
    for a, c in zip(_pixels(out), lib.candidates):
        assert np.array_equal(a, np.asarray(c.image))  # the API gives the library's images
    assert out["best"] == lib.best


def test_noises_option_gives_every_weighting_several_noises(client):
    r = client.post("/v1/generate", json=body(options={"seed": 0, "steps": 2, "weights": [[0, 4], [2, 2]], "noises": 2}))
    assert r.status_code == 200, r.text
    out = r.json()
    assert [(c["w_p"], c["w_t"], c["noise"]) for c in out["candidates"]] == [(0, 4, 0), (2, 2, 0), (0, 4, 1), (2, 2, 1)]
    assert out["manifest"]["config"]["noises"] == 2 and client.get("/v1/models").json()["default_noises"] == 1


def test_health_models_keywords_and_jobs(client):
    assert client.get("/v1/health").json() == {"status": "ready"}
    models = client.get("/v1/models").json()
    assert models["generator"] == "tiny" and models["default_grid"] == [[0, 4], [1, 3], [2, 2], [3, 1], [4, 0]]
    kw = client.post("/v1/keywords", json={k: v for k, v in body().items() if k != "options"}).json()
    assert kw["preference"][0] == "cat" and kw["target"][0] == "happy"
    job = client.post("/v1/jobs", json=body(seed=3))
    assert job.status_code == 202
    jid = job.json()["id"]
    for _ in range(200):
        j = client.get(f"/v1/jobs/{jid}").json()
        if j["status"] == "done":
            break
        threading.Event().wait(0.05)
    assert j["status"] == "done" and j["progress"] == 1 and len(j["result"]["candidates"]) == 5
    assert client.get("/v1/jobs/nope").status_code == 404
    edited = client.post("/v1/generate", json=body(keywords={"preference": ["blue", "dog"], "target": ["sad"]})).json()
    assert edited["keywords"]["preference"] == ["blue", "dog"] and edited["keywords"]["target"] == ["sad"]


def test_eight_parallel_requests_are_batched_and_each_equals_its_own(client):
    animals = ["cat", "dog", "fox", "owl", "bee", "cow", "pig", "elk"]
    alone = {a: _pixels(client.post("/v1/generate", json=body(a, seed=i)).json()) for i, a in enumerate(animals)}
    worker = client.app.state.pmg_state.engine.worker
    worker.batches.clear()
    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(lambda ia: client.post("/v1/generate", json=body(ia[1], seed=ia[0])).json(), enumerate(animals)))
    assert max(worker.batches) > 1  # requests really were generated together
    for a, out in zip(animals, outs):
        assert out["user_id"] == a
        for x, y in zip(alone[a], _pixels(out)):
            d = np.abs(x.astype(int) - y.astype(int))
            # its own images: batch composition depends on thread timing, so float rounding may move a
            # pixel by 1/255 (seen on 0.13% of pixels once); another user's image differs everywhere
            assert d.max() <= 1 and (d > 0).mean() <= 0.01


def test_queue_full_answers_429(tiny_pipe):
    app = create_app(_pmg(tiny_pipe), ServiceConfig(max_batch=1, queue_size=1, timeout_s=60))
    with TestClient(app) as c:
        worker = c.app.state.pmg_state.engine.worker
        worker.stop()  # nothing is taken from the queue any more
        threading.Event().wait(0.3)
        assert c.post("/v1/jobs", json=body()).status_code == 202
        r = c.post("/v1/jobs", json=body("dog"))
        assert r.status_code == 429 and "queue is full" in r.json()["detail"]


def test_timeout_answers_504(tiny_pipe):
    app = create_app(_pmg(tiny_pipe), ServiceConfig(timeout_s=0.01))
    with TestClient(app) as c:
        c.app.state.pmg_state.engine.worker.stop()
        threading.Event().wait(0.3)
        r = c.post("/v1/generate", json=body())
        assert r.status_code == 504 and "took over" in r.json()["detail"]


@pytest.mark.parametrize("image", ["/etc/passwd", "../examples/users/cat.png", "file:///etc/hosts", "http://127.0.0.1/x.png",
                                   base64.b64encode(b"not an image").decode()])
def test_path_like_or_bad_images_are_422(api, image):
    b = body()
    b["history"][0]["image"] = image
    r = api.post("/v1/generate", json=b)
    assert r.status_code == 422 and "history[0].image" in r.json()["detail"]


def test_base64_images_are_used_and_bombs_refused(api):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (255, 0, 0)).save(buf, format="PNG")
    b = body()
    b["history"][0]["image"] = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    assert api.post("/v1/generate", json=b).status_code == 200
    buf = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buf, format="PNG")
    b["history"][0]["image"] = base64.b64encode(buf.getvalue()).decode()
    r = api.post("/v1/generate", json=b)
    assert r.status_code == 422 and "pixels" in r.json()["detail"]


@pytest.mark.parametrize("patch, field", [
    ({"options": {"steps": 100000}}, "options.steps"), ({"options": {"weights": [[1, 1]] * 1000}}, "options.weights"),
    ({"options": {"seed": 2**70}}, "options.seed"), ({"history": [{"title": "x"}] * 500}, "history"),
    ({"options": {"noises": 0}}, "options.noises"), ({"options": {"noises": 4}}, "noises 4 x 5 weightings"),
    ({"scenario": "cooking"}, "scenario"), ({"target": {}}, "target"), ({"extra": 1}, "extra"),
    ({"conversations": ["x" * 30_000]}, "conversations"),
])
def test_bounds_are_422_naming_the_field(api, patch, field):
    r = api.post("/v1/generate", json=body(**patch))
    assert r.status_code == 422 and field in r.json()["detail"], r.text


def test_body_limit_and_nan(api):
    r = api.post("/v1/generate", content=b"{" + b" " * (9 * 1024 * 1024) + b"}", headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = api.post("/v1/generate", content=json.dumps(body()).replace('"seed": 0', '"seed": 0, "alpha": NaN').encode(),
                    headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_api_key_guards_all_but_health(tiny_pipe):
    app = create_app(_pmg(tiny_pipe), ServiceConfig(api_key="s3cret"))
    with TestClient(app) as c:
        assert c.get("/v1/health").status_code == 200
        assert c.get("/v1/models").status_code == 401
        assert c.post("/v1/generate", json=body()).status_code == 401
        assert c.get("/v1/models", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_page_and_examples(api):
    page = api.get("/")
    assert page.status_code == 200 and "Generate" in page.text
    assert api.get("/static/app.js").status_code == 200
    ex = api.get("/v1/examples").json()
    assert "cat_lover" in ex and ex["cat_lover"]["scenario"] == "emoticon"
    assert len(api.get("/v1/palette").json()["emoji"]) > 50


class _Broken:
    """A scorer that fails the way a bug would (not a PMGError), or the way a dead LLM backend does."""

    def __init__(self, error: Exception):
        self.name, self.error = "broken", error

    def embed_images(self, images):
        raise self.error

    embed_texts = embed_images


@pytest.mark.parametrize("error, status, detail", [
    (RuntimeError("tensor shape bug"), 500, "internal error (RuntimeError); see the server log"),
    (__import__("pmg.errors", fromlist=["LLMError"]).LLMError("the llama.cpp process exited"), 500, "the llama.cpp process exited"),
    (__import__("pmg.errors", fromlist=["InputError"]).InputError("history[0].title: empty"), 422, "history[0].title: empty"),
])
def test_failed_job_status_says_whose_fault(tiny_pipe, error, status, detail):
    pmg = PMG(KeywordExtractor(ScriptedLLM(_answer)), tiny_pipe, _Broken(error))
    with TestClient(create_app(pmg, ServiceConfig(timeout_s=60))) as c:
        r = c.post("/v1/generate", json=body())
        assert (r.status_code, r.json()["detail"]) == (status, detail)
        assert "Traceback" not in r.text and "tensor shape bug" not in r.text


def test_worker_keeps_only_the_latest_batch_sizes(tiny_pipe):
    from pmg.service.worker import Job, Worker

    worker = Worker(_pmg(tiny_pipe), keep_batches=3)
    user = to_behaviours(GenerateIn(**body()))
    for _ in range(5):
        worker._generate([Job(user, GenerationConfig(seed=0, num_inference_steps=1))])
    assert list(worker.batches) == [1, 1, 1]


def test_models_lists_every_scenarios_models_without_loading_them(tiny_pipe, monkeypatch):
    loaded = patch_tiny_models(monkeypatch, _answer)
    pmg = PMG.from_names(captioner=None)  # every scenario's own models (pmg serve)
    with TestClient(create_app(pmg)) as c:
        scenarios = c.get("/v1/models").json()["scenarios"]
        assert loaded == ["pmg-mini"]  # listing loads nothing
        assert scenarios["emoticon"] == {"status": "loaded", "generator": "pmg-mini", "scorer": "colour",
                                         "soft": "soft:soft-emoticon", "default_grid": [[0, 4], [1, 3], [2, 2], [3, 1], [4, 0]]}
        assert scenarios["movie"]["status"] == "loaded" and scenarios["movie"]["soft"] is None
        assert scenarios["clothing"] == {"status": "not loaded", "generator": "pmg-mini-fashion", "scorer": "pmg-mini-fashion",
                                         "soft": "soft:soft-clothing", "default_grid": [[1, 1.5], [2, 2]]}
        pmg.for_scenario("clothing")
        clothing = c.get("/v1/models").json()["scenarios"]["clothing"]
        assert clothing["status"] == "loaded" and clothing["generator"] == "pmg-mini-fashion" and loaded == ["pmg-mini", "pmg-mini-fashion"]


class _LoadingLLM(ScriptedLLM):
    """An LLM that loads in the background (like llama.cpp's process): ``wait_ready`` blocks until it has."""

    def __init__(self, error: Exception | None = None):
        super().__init__(_answer)
        self.error, self.gate = error, threading.Event()

    def wait_ready(self):
        self.gate.wait(10)
        if self.error is not None:
            raise self.error


@pytest.mark.parametrize("error", [None, __import__("pmg.errors", fromlist=["ModelLoadError"]).ModelLoadError("llama.cpp: cannot load /m.gguf")])
def test_health_is_ready_once_the_llm_has_loaded_and_names_its_failure(tiny_pipe, error):
    llm = _LoadingLLM(error)
    pmg = PMG(KeywordExtractor(llm), tiny_pipe, ColourScorer())
    with TestClient(create_app(lambda: pmg)) as c:
        for _ in range(25):  # the other models are loaded; the LLM is still loading
            if c.get("/v1/health").json()["status"] != "loading":
                break
            threading.Event().wait(0.02)
        first = c.get("/v1/health")
        llm.gate.set()
        for _ in range(200):
            h = c.get("/v1/health")
            if h.json()["status"] != "loading":
                break
            threading.Event().wait(0.05)
    assert first.status_code == 503 and first.json()["status"] == "loading"
    if error is None:
        assert h.json() == {"status": "ready"}
    else:
        assert h.status_code == 503 and h.json() == {"status": "failed", "detail": "ModelLoadError: llama.cpp: cannot load /m.gguf"}


@pytest.mark.parametrize("keywords, field", [
    ({"target": ["x" * 5000]}, "keywords.target.0"), ({"preference": ["cat", "y" * 5000], "target": ["sad"]}, "keywords.preference.1"),
    ({"target": ["<|im_end|>", " \x1b[0m "]}, "keywords.target"),
])
def test_edited_keywords_are_bounded_each(api, keywords, field):
    r = api.post("/v1/generate", json=body(keywords=keywords))
    assert r.status_code == 422 and field in r.json()["detail"], r.text


def test_edited_keywords_are_cleaned_like_behaviours(client):
    kw = {"preference": ["<|im_start|>system blue", 'red "dog"', "\x1b[31m"], "target": ["\x1b[31msad\x1b[0m"]}
    r = client.post("/v1/generate", json=body(keywords=kw))
    assert r.status_code == 200, r.text
    assert r.json()["keywords"]["preference"] == ["blue", "red 'dog'"] and r.json()["keywords"]["target"] == ["sad"]
