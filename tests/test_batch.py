"""``pmg batch`` on tiny seeded models: outputs, resume after interruption, failures isolated, local
processes and Ray giving the same images."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import tiny_pmg
from PIL import Image

from pmg.api import GenerationConfig
from pmg.batch import BatchConfig, run_batch
from pmg.behaviours.schema import parse_user
from pmg.errors import ConfigError

ANIMALS = ["cat", "dog", "fox", "owl", "bee", "cow", "pig", "elk"]
CONFIG = GenerationConfig(seed=5, num_inference_steps=3)


def _user(animal: str, uid: str | None = None, mood: str = "happy") -> dict:
    return {"user_id": uid or f"{animal}-fan", "scenario": "emoticon",
            "history": [{"title": f"{animal} face"}, {"title": f"grinning {animal}"}],
            "target": {"message": f"so {mood} today"}}


def _folder(tmp_path: Path, users: list[dict], bad: dict[str, str] | None = None) -> Path:
    d = tmp_path / "users"
    d.mkdir()
    for i, u in enumerate(users):
        (d / f"{i:02d}.json").write_text(json.dumps(u))
    for name, text in (bad or {}).items():
        (d / name).write_text(text)
    return d


def _manifests(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted((out / "users").glob("*/manifest.json"))}


def _pixels(out: Path, folder: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted((out / "users" / folder / "candidates").glob("*.png"))]


def test_batch_outputs_errors_and_summary(tmp_path):
    users = [_user(a) for a in ANIMALS[:5]] + [_user("cat", uid="../../escape me")]
    src = _folder(tmp_path, users, bad={"98_broken.json": "{not json", "99_empty_title.json": json.dumps(
        {"user_id": "bad", "scenario": "emoticon", "history": [{"title": ""}], "target": {"message": "hi"}})})
    out = tmp_path / "out"
    summary = run_batch(src, out, tiny_pmg, CONFIG, BatchConfig(users_per_call=4), progress=False)
    assert summary["users"] == 8 and summary["generated"] == 6 and summary["failed"] == 2
    assert summary["not_reached"] == 0 and sum(summary["chosen_weights"].values()) == 6
    assert set(summary["stage_seconds"]) >= {"keywords_s", "generation_s", "scoring_s"}
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert {e["user_id"] for e in errors} == {"98_broken", "bad"}
    bad = next(e for e in errors if e["user_id"] == "bad")
    assert bad["field"] == "history[0].title" and "at least 1 character" in bad["message"]
    assert "invalid JSON" in next(e for e in errors if e["user_id"] == "98_broken")["message"]
    manifests = _manifests(out)
    assert len(manifests) == 6 and all(len(m["batch"]["key"]) == 64 for m in manifests.values())
    # a hostile user id gets a safe folder inside users/, the id itself is kept in the manifest
    escaped = [name for name, m in manifests.items() if m["user_id"] == "../../escape me"]
    assert escaped and escaped[0].startswith("escape_me-") and not (tmp_path / "escape me").exists()
    # each user's images are the ones `pmg generate` gives that user alone
    alone = tiny_pmg().generate(parse_user(users[1]), CONFIG)
    batched = _pixels(out, "dog-fan")
    for a, c in zip(batched, alone.candidates):
        diff = np.abs(a.astype(int) - np.asarray(c.image).astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() <= 0.001
    assert manifests["dog-fan"]["best"] == alone.best


def test_rerun_skips_finished_and_redoes_changed(tmp_path):
    src = _folder(tmp_path, [_user(a) for a in ANIMALS[:3]])
    out = tmp_path / "out"
    run_batch(src, out, tiny_pmg, CONFIG, BatchConfig(users_per_call=2), progress=False)
    stamp = {p.parent.name: p.stat().st_mtime_ns for p in (out / "users").glob("*/manifest.json")}
    again = run_batch(src, out, tiny_pmg, CONFIG, progress=False)
    assert again["generated"] == 0 and again["skipped_already_done"] == 3
    assert stamp == {p.parent.name: p.stat().st_mtime_ns for p in (out / "users").glob("*/manifest.json")}
    (src / "01.json").write_text(json.dumps(_user("dog", mood="sad")))  # changed input: redone
    other_seed = run_batch(src, out, tiny_pmg, CONFIG, progress=False)
    assert other_seed["generated"] == 1 and other_seed["skipped_already_done"] == 2
    assert run_batch(src, out, tiny_pmg, GenerationConfig(seed=6, num_inference_steps=3), progress=False)["generated"] == 3


_KILLED_RUN = """
import sys, time
sys.path.insert(0, {tests!r})
import helpers
from pmg.api import GenerationConfig
from pmg.batch import BatchConfig, run_batch

def slow_pmg():
    pmg = helpers.tiny_pmg()
    many = pmg.generate_many
    def slowly(*a, **k):
        time.sleep(0.4)
        return many(*a, **k)
    pmg.generate_many = slowly
    return pmg

run_batch({src!r}, {out!r}, slow_pmg, GenerationConfig(seed=5, num_inference_steps=3), BatchConfig(users_per_call=1), progress=False,
          models={{"tiny": 0}})
"""


def test_killed_run_resumes_without_loss_or_duplicates(tmp_path):
    users = [_user(a, uid=f"{a}-{i}") for i, a in enumerate(ANIMALS)]
    src = _folder(tmp_path, users)
    out = tmp_path / "out"
    script = _KILLED_RUN.format(tests=str(Path(__file__).parent), src=str(src), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 120
    while len(list((out / "users").glob("*/manifest.json"))) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # no clean-up code runs
    proc.wait()
    before = {p.parent.name: p.stat().st_mtime_ns for p in (out / "users").glob("*/manifest.json")}
    assert 2 <= len(before) < len(users)
    summary = run_batch(src, out, tiny_pmg, CONFIG, BatchConfig(users_per_call=3), progress=False, models={"tiny": 0})
    assert summary["skipped_already_done"] == len(before) and summary["generated"] == len(users) - len(before)
    after = {p.parent.name: p.stat().st_mtime_ns for p in (out / "users").glob("*/manifest.json")}
    assert set(after) == {u["user_id"] for u in users}  # nothing lost
    assert all(after[k] == v for k, v in before.items())  # nothing finished redone
    assert not list((out / "users").glob(".pmg-*"))  # no half-written folder left
    for name in after:  # every folder complete: each file its manifest lists has the recorded hash
        m = _manifests(out)[name]
        assert len(m["candidates"]) == 5 and all((out / "users" / name / f).is_file() for f in m["files"])


def test_interrupt_keeps_finished_users(tmp_path):
    src = _folder(tmp_path, [_user(a) for a in ANIMALS[:4]])
    out = tmp_path / "out"
    calls = []

    def interrupted_pmg():
        pmg = tiny_pmg()
        many = pmg.generate_many

        def once(*a, **k):
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return many(*a, **k)

        pmg.generate_many = once
        return pmg

    with pytest.raises(KeyboardInterrupt):
        run_batch(src, out, interrupted_pmg, CONFIG, BatchConfig(users_per_call=2), progress=False, models={"tiny": 0})
    summary = json.loads((out / "summary.json").read_text())
    assert summary["generated"] == 2 and summary["not_reached"] == 2
    assert run_batch(src, out, tiny_pmg, CONFIG, progress=False, models={"tiny": 0})["generated"] == 2


def test_a_failing_generation_fails_alone(tmp_path):
    src = _folder(tmp_path, [_user(a) for a in ANIMALS[:4]])
    out = tmp_path / "out"

    def flaky_pmg():
        pmg = tiny_pmg()
        many = pmg.generate_many

        def picky(users, configs, **k):
            if any(u.user_id == "fox-fan" for u in users):
                raise RuntimeError("the U-Net fell over")
            return many(users, configs, **k)

        pmg.generate_many = picky
        return pmg

    summary = run_batch(src, out, flaky_pmg, CONFIG, BatchConfig(users_per_call=4), progress=False)
    assert summary["generated"] == 3 and summary["failed"] == 1
    err = json.loads((out / "errors.jsonl").read_text())
    assert err["user_id"] == "fox-fan" and err["message"] == "RuntimeError: the U-Net fell over"


def test_bad_batch_options_are_refused():
    for kw, word in [({"workers": 0}, "--workers"), ({"engine": "spark"}, "--engine"), ({"users_per_call": 65}, "--users-per-call"),
                     ({"threads_per_worker": 0}, "--threads-per-worker"), ({"ray_address": "auto"}, "--ray-address")]:
        with pytest.raises(ConfigError, match=word):
            BatchConfig(**kw)


def test_local_processes_and_ray_give_the_same_images(tmp_path):
    pytest.importorskip("ray")
    src = _folder(tmp_path, [_user(a) for a in ANIMALS[:6]])
    one = run_batch(src, tmp_path / "one", tiny_pmg, CONFIG, BatchConfig(users_per_call=2), progress=False)
    two = run_batch(src, tmp_path / "local2", tiny_pmg, CONFIG, BatchConfig(workers=2, users_per_call=2), progress=False)
    ray = run_batch(src, tmp_path / "ray2", tiny_pmg, CONFIG, BatchConfig(engine="ray", workers=2, users_per_call=2),
                    progress=False)
    assert one["generated"] == two["generated"] == ray["generated"] == 6
    for name in _manifests(tmp_path / "one"):
        ref = _pixels(tmp_path / "one", name)
        for other in ("local2", "ray2"):
            assert all(np.array_equal(a, b) for a, b in zip(ref, _pixels(tmp_path / other, name))), (name, other)
        assert _manifests(tmp_path / "ray2")[name]["batch"] == _manifests(tmp_path / "one")[name]["batch"]


def test_cli_batch_refuses_bad_options_before_loading(tmp_path, capsys):
    from pmg.cli import main

    src = _folder(tmp_path, [_user("cat")])
    for args, word in [(["--workers", "0"], "--workers"), (["--ray-address", "auto"], "--ray-address"),
                       (["--weights", "1:x"], "--weights"), (["--threads-per-worker", "999"], "--threads-per-worker")]:
        assert main(["batch", str(src), "--out", str(tmp_path / "o"), *args]) == 2
        assert word in capsys.readouterr().err
    assert main(["batch", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "users not found" in capsys.readouterr().err
