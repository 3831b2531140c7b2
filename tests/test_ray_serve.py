"""``pmg serve --engine ray``: the same app on Ray Serve, 2 replicas of tiny seeded models on a local Ray.

Bad input (the schema's 422s, paths refused) and the page are tested against both engines in test_service.py."""

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from helpers import free_port, tiny_pmg_by_scenario
from test_service import _pixels, body

from pmg.cli import main
from pmg.service.schemas import GenerateIn, to_behaviours

pytest.importorskip("ray.serve", reason="the ray engine needs Ray Serve: pip install -e '.[ray]'")

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def reference():
    """What the single-process library (``pmg generate``) gives each request body."""
    pmg = tiny_pmg_by_scenario()

    def generate(b: dict) -> list[np.ndarray]:
        inp = GenerateIn(**b)
        result = pmg.generate(to_behaviours(inp), inp.options.to_config())
        return [np.asarray(c.image) for c in result.candidates]

    return generate


def _close(a: list[np.ndarray], b: list[np.ndarray]) -> int:
    """The largest pixel difference (of 255) between two candidate lists."""
    assert len(a) == len(b)
    return max(int(np.abs(x.astype(int) - y.astype(int)).max()) for x, y in zip(a, b))


def _user(scenario: str, animal: str, seed: int, steps: int = 3) -> dict:
    if scenario == "emoticon":
        return body(animal, seed=seed, options={"seed": seed, "steps": steps})
    title = "shirt with a grinning cat" if scenario == "clothing" else "a film about a dog"
    return {"user_id": f"{scenario}-{animal}", "scenario": scenario,
            "history": [{"title": f"{animal} print {scenario}"}, {"title": f"red {animal} {scenario}"}],
            "target": {"item": {"title": title}}, "options": {"seed": seed, "steps": steps}}


def _replicas():
    """The model replicas' Ray actors."""
    import ray

    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if "#PMGModels#" in a["name"]]
    return [ray.get_actor(n, namespace="serve") for n in sorted(names)]


# ------------------------------------------------------------------------- start-up and shut-down
SERVER = """
import sys
from helpers import tiny_pmg
from pmg.service import ServiceConfig
from pmg.service.ray_serve import RayServeConfig, serve_forever
serve_forever(tiny_pmg, ServiceConfig(), RayServeConfig(replicas=2), host="127.0.0.1", port=int(sys.argv[1]))
"""


def _alive(pids: set[int]) -> set[int]:
    import psutil

    out = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.add(pid)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_stopping_the_server_leaves_no_ray_process_it_started(tmp_path, sig):
    import psutil

    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)])}
    with open(tmp_path / "log", "w") as logf:
        proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env=env, stdout=logf, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        while time.monotonic() < deadline and "PMG at" not in (tmp_path / "log").read_text():
            time.sleep(0.5)  # every replica up
        assert httpx.get(f"http://127.0.0.1:{port}/v1/health").json() == {"status": "ready"}, (tmp_path / "log").read_text()
        started = psutil.Process(proc.pid).children(recursive=True)
        # the local Ray's session folder: any process naming it belongs to this server's Ray
        session = {m for p in started for m in re.findall(r"session_\d[\w-]*", " ".join(p.cmdline()))}
        assert len(started) >= 4 and len(session) == 1  # GCS, raylet, workers ...
        proc.send_signal(sig)
        assert proc.wait(90) == 0, (tmp_path / "log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    pids = {p.pid for p in started}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = _alive(pids) | {p.pid for p in psutil.process_iter(["cmdline"])
                               if session & set(re.findall(r"session_\d[\w-]*", " ".join(p.info["cmdline"] or [])))}
        if not left:
            break
        time.sleep(0.5)
    assert not left, [" ".join(psutil.Process(p).cmdline())[:120] for p in _alive(left)]
    assert "stopped" in (tmp_path / "log").read_text()


def test_cli_checks_the_ray_options_before_starting_anything(capsys):
    assert main(["serve", "--engine", "ray", "--replicas", "0"]) == 2
    assert "replicas must be an integer from 1" in capsys.readouterr().err
    assert main(["serve", "--engine", "ray", "--replicas", "2", "--max-replicas", "1"]) == 2
    assert "max_replicas must be an integer from 2" in capsys.readouterr().err
    assert main(["serve", "--replicas", "2"]) == 2
    assert "--engine ray" in capsys.readouterr().err


def test_a_replica_that_dies_is_retried_elsewhere_then_503():
    """The ingress's engine, with a fake handle: Ray's errors as the replicas raise them."""
    from fastapi import HTTPException
    from ray.exceptions import ActorDiedError, RayTaskError

    from pmg.errors import InputError
    from pmg.service import ServiceConfig
    from pmg.service.ray_serve import RayEngine

    class Handle:
        def __init__(self, *outcomes):
            self.outcomes, self.calls = list(outcomes), 0

        def __getattr__(self, method):
            return self

        def remote(self, *args):
            return self

        def cancel(self):
            self.cancelled = True

        def result(self, timeout_s=None):
            self.calls += 1
            out = self.outcomes.pop(0)
            if isinstance(out, Exception):
                raise out
            return out

    cfg = ServiceConfig()
    two_deaths = Handle(ActorDiedError(), ActorDiedError(), {"llm": "x"})
    assert RayEngine(two_deaths, cfg, capacity=1, retries=2).models() == {"llm": "x"} and two_deaths.calls == 3
    three_deaths = Handle(ActorDiedError(), ActorDiedError(), ActorDiedError(), {"llm": "x"})
    with pytest.raises(HTTPException) as e:
        RayEngine(three_deaths, cfg, capacity=1, retries=2).models()
    assert e.value.status_code == 503 and three_deaths.calls == 3
    wrapped = RayTaskError("keywords", "Traceback ...", InputError("history[0].title: empty")).as_instanceof_cause()
    with pytest.raises(InputError) as e:  # the replica's own error, not Ray's wrapping (no traceback)
        RayEngine(Handle(wrapped), cfg, capacity=1).models()
    assert str(e.value) == "history[0].title: empty"
    slow = Handle(TimeoutError())
    with pytest.raises(HTTPException) as e:
        RayEngine(slow, cfg, capacity=1).models()
    assert e.value.status_code == 504 and slow.cancelled  # and the replica is told to stop


def test_the_ingress_holds_capacity_requests_then_429():
    import threading

    from pmg.service import ServiceConfig
    from pmg.service.ray_serve import RayEngine
    from pmg.service.worker import Job, QueueFull

    gate = threading.Event()

    class Handle:  # a replica that answers once the gate opens
        def __getattr__(self, method):
            return self

        def remote(self, *args):
            return self

        def result(self, timeout_s=None):
            gate.wait(10)
            return ("done", "the result", None, None)

    engine = RayEngine(Handle(), ServiceConfig(), capacity=2)
    first, second = engine.submit(Job(None, None)), engine.submit(Job(None, None))
    with pytest.raises(QueueFull, match="holds 2 requests"):
        engine.submit(Job(None, None))
    assert engine.job(first.id).status == "generating"
    gate.set()
    assert first.done.wait(10) and second.done.wait(10)
    assert (first.status, first.result, engine.job(second.id).result) == ("done", "the result", "the result")
    assert engine.submit(Job(None, None)).done.wait(10)  # room again
    engine.stop()


def test_ray_serve_config_names_the_field():
    from pmg.errors import ConfigError
    from pmg.service.ray_serve import RayServeConfig

    for kw, field in [({"replicas": 0}, "replicas"), ({"replicas": 2, "max_replicas": 1}, "max_replicas"),
                      ({"target_ongoing_requests": 0}, "target_ongoing_requests"), ({"threads": 0}, "threads"),
                      ({"address": " "}, "address")]:
        with pytest.raises(ConfigError, match=f"^{field}"):
            RayServeConfig(**kw)
    assert RayServeConfig(replicas=2).scaling(4) == {"num_replicas": 2}
    assert RayServeConfig(replicas=1, max_replicas=3).scaling(4) == {"autoscaling_config": {
        "min_replicas": 1, "initial_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 4}}


def test_the_kuberay_manifest_builds_the_app(repo):
    import yaml
    from ray.serve import Application

    from pmg.errors import ConfigError
    from pmg.service.ray_serve import app_builder

    manifest = yaml.safe_load((repo / "docs" / "kuberay-rayservice.yaml").read_text())
    (app,) = yaml.safe_load(manifest["spec"]["serveConfigV2"])["applications"]
    assert app["import_path"] == "pmg.service.ray_serve:app_builder" and app["route_prefix"] == "/"
    assert isinstance(app_builder(app["args"]), Application)
    with pytest.raises(ConfigError, match=r"^args.cluster.replica: not a field of RayServeConfig"):
        app_builder({"cluster": {"replica": 2}})
    with pytest.raises(ConfigError, match=r"^args.model: not one of models, service, cluster"):
        app_builder({"model": {}})


# ------------------------------------------------------------------------- the served app (2 replicas)
@pytest.fixture(scope="module")
def api(ray_service):
    with httpx.Client(base_url=ray_service.url, timeout=120) as c:
        yield c


def test_two_replicas_serve_the_same_app(api):
    from helpers import tiny_pmg

    from pmg.service import create_app

    assert len(_replicas()) == 2
    assert api.get("/v1/health").json() == {"status": "ready"}
    assert api.get("/openapi.json").json() == create_app(tiny_pmg()).openapi()  # the same routes and schema
    models = api.get("/v1/models").json()
    assert models["generator"] == "tiny" and models["default_grid"] == [[0, 4], [1, 3], [2, 2], [3, 1], [4, 0]]
    kw = api.post("/v1/keywords", json={k: v for k, v in body().items() if k != "options"}).json()
    assert kw["preference"][0] == "cat" and kw["target"][0] == "happy"


def test_the_same_request_twice_gives_the_same_image_as_the_library(api, reference):
    b = body("dog", seed=5)
    first, second = (api.post("/v1/generate", json=b) for _ in range(2))
    assert first.status_code == second.status_code == 200, first.text
    assert _close(_pixels(first.json()), _pixels(second.json())) == 0
    assert _close(_pixels(first.json()), reference(b)) <= 2


def test_parallel_users_of_three_scenarios_each_get_their_own(api, reference, ray_service):
    from ray import serve

    bodies = [_user(s, a, seed) for s in ("emoticon", "clothing", "movie") for seed, a in enumerate(["cat", "dog", "fox", "owl"])]
    with ThreadPoolExecutor(len(bodies)) as pool:
        outs = list(pool.map(lambda b: api.post("/v1/generate", json=b), bodies))
    assert [r.status_code for r in outs] == [200] * len(bodies), [r.text for r in outs if r.status_code != 200]
    got = [_pixels(r.json()) for r in outs]
    want = [reference(b) for b in bodies]
    for b, r, g, w in zip(bodies, outs, got, want):
        assert r.json()["user_id"] == b["user_id"] and r.json()["manifest"]["scenario"] == b["scenario"]
        assert _close(g, w) <= 2, b["user_id"]  # its own images
    assert _close(got[0], want[4]) > 2 and _close(got[4], want[8]) > 2  # another user's are not
    models = serve.get_deployment_handle("PMGModels", "pmg")
    sizes = [n for _ in range(6) for n in models.batch_sizes.remote().result()]
    assert max(sizes) > 1  # requests that arrived together ran in one U-Net pass


def test_jobs_are_found_whichever_replica_runs_them(api):
    jobs = [api.post("/v1/jobs", json=body(a, seed=i)) for i, a in enumerate(["cat", "dog", "fox", "owl"])]
    assert [j.status_code for j in jobs] == [202] * 4
    for job in jobs:
        for _ in range(400):
            j = api.get(f"/v1/jobs/{job.json()['id']}").json()
            if j["status"] in ("done", "failed"):
                break
            time.sleep(0.05)
        assert j["status"] == "done" and j["progress"] == 1 and len(j["result"]["candidates"]) == 5
    assert api.get("/v1/jobs/nope").status_code == 404


def test_a_replica_killed_mid_request_loses_nothing(api, reference):
    """Last: it kills a replica (Serve starts another)."""
    import ray

    bodies = [_user("emoticon", a, seed, steps=60) for seed, a in enumerate(["cat", "dog", "fox", "owl"] * 2)]
    victim = _replicas()[0]
    with ThreadPoolExecutor(len(bodies)) as pool:
        futures = [pool.submit(api.post, "/v1/generate", json=b) for b in bodies]
        deadline = time.monotonic() + 30
        while ray.get(victim.get_num_ongoing_requests.remote()) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ray.get(victim.get_num_ongoing_requests.remote()) > 0  # it is generating
        ray.kill(victim, no_restart=True)
        outs = [f.result() for f in futures]
    assert {r.status_code for r in outs} <= {200, 503}, [r.text for r in outs]
    for b, r in zip(bodies, outs):
        if r.status_code == 200:
            assert r.json()["user_id"] == b["user_id"] and _close(_pixels(r.json()), reference(b)) <= 2
        else:
            assert "stopped" in r.json()["detail"]
    after = api.post("/v1/generate", json=body("bee", seed=9))
    assert after.status_code == 200 and _close(_pixels(after.json()), reference(body("bee", seed=9))) <= 2
