"""One scenario table (pmg.scenarios): every way of calling PMG resolves 'auto' there, so a user gets the
same models and the same image through the API, the CLI, ``pmg batch`` and the service."""

import json
import shutil

import numpy as np
import pytest
from helpers import ColourScorer, ScriptedLLM, animal_answer, patch_tiny_models, tiny_pipeline, waits_behind_a_load
from PIL import Image
from test_cli import _args, _user, fake_llm_server, tiny_models  # noqa: F401  (fixtures)

from pmg.api import PMG, GenerationConfig
from pmg.behaviours.schema import parse_user
from pmg.cli import main
from pmg.errors import ConfigError
from pmg.keywords.extract import KeywordExtractor
from pmg.scenarios import BENCHMARKS, benchmark, default_model, resolve_models


def test_auto_is_each_scenarios_installed_model(tmp_path, monkeypatch, repo):
    assert default_model("clothing") == "pmg-mini-fashion" and default_model("emoticon") == default_model("movie") == "pmg-mini"
    assert resolve_models("auto", "auto", "clothing") == ("pmg-mini-fashion", "pmg-mini-fashion")
    assert resolve_models("auto", "/my/clip", None) == ("pmg-mini", "/my/clip")
    shutil.copytree(repo / "models" / "pmg-mini", tmp_path / "pmg-mini", ignore=shutil.ignore_patterns("unet", "soft-*"))
    monkeypatch.setenv("PMG_MODELS_DIR", str(tmp_path))  # pmg-mini-fashion not installed: the emoji model
    assert default_model("clothing") == "pmg-mini"


def test_benchmark_table():
    assert {b.name: b.scenario for b in BENCHMARKS.values()} == {
        "emoticons": "emoticon", "emoticons-open": "emoticon", "clothing": "clothing", "movies": "movie"}
    from pmg.evaluation.benchmarks.open_themes import build_open_theme_benchmark

    assert benchmark("emoticons-open").build.__name__ == "_build_open_themes" and callable(build_open_theme_benchmark)
    assert not benchmark("movies").images and benchmark("clothing").extras == ("garments",)
    with pytest.raises(ConfigError, match="--benchmark 'pog'"):
        benchmark("pog")


def _tiny(seed: int) -> PMG:
    return PMG(KeywordExtractor(ScriptedLLM(animal_answer)), tiny_pipeline(seed), ColourScorer())


def _cat(scenario: str, uid: str):
    target = {"message": "so happy"} if scenario == "emoticon" else {"item": {"title": "red cat shirt"}}
    return parse_user({"user_id": uid, "scenario": scenario, "history": [{"title": "cat"}, {"title": "cat face"}],
                       "target": target})


def test_a_scenario_with_its_own_models_is_served_by_them():
    loads = []
    fashion = _tiny(1)  # another generator for clothing users

    def load():
        loads.append(1)
        return fashion

    pmg = PMG(KeywordExtractor(ScriptedLLM(animal_answer)), tiny_pipeline(0), ColourScorer(), scenarios={"clothing": load})
    users = [_cat("emoticon", "e1"), _cat("clothing", "c1"), _cat("emoticon", "e2")]
    cfg = GenerationConfig(num_inference_steps=2, weights=((1, 3), (3, 1)))
    assert pmg.for_scenario("emoticon") is pmg and not loads  # nothing loaded before a clothing user comes
    results = pmg.generate_many(users, [cfg] * 3)
    assert len(loads) == 1 and pmg.for_scenario("clothing") is fashion and len(loads) == 1
    alone = {"e1": _tiny(0).generate(users[0], cfg), "c1": fashion.generate(users[1], cfg), "e2": _tiny(0).generate(users[2], cfg)}
    for r in results:
        assert np.array_equal(np.asarray(r.best_image), np.asarray(alone[r.user_id].best_image)), r.user_id
    assert not np.array_equal(np.asarray(results[0].candidates[0].image), np.asarray(results[1].candidates[0].image))
    assert pmg.keywords(users[1]).target == fashion.keywords(users[1]).target


def test_from_names_defaults_are_auto():
    import inspect

    from pmg.api import ModelSpec

    params = inspect.signature(PMG.from_names).parameters
    assert params["generator"].default == params["scorer"].default == "auto" and params["scenario"].default is None
    assert ModelSpec().generator == ModelSpec().scorer == "auto"


def test_options_are_generation_configs_fields():
    import dataclasses

    from pmg.api import OPTION_NAMES
    from pmg.limits import MAX_STEPS, OPTION_BOUNDS
    from pmg.service.schemas import OptionsIn

    names = {OPTION_NAMES.get(f.name, f.name) for f in dataclasses.fields(GenerationConfig)}
    assert set(OptionsIn.model_fields) == names
    schema = OptionsIn.model_json_schema()["properties"]
    assert schema["steps"]["anyOf"][0]["maximum"] == MAX_STEPS == OPTION_BOUNDS["num_inference_steps"][1]
    cfg = OptionsIn(steps=3, guidance=2.5, weights=[[1, 3]], use_soft=False).to_config()
    assert cfg == GenerationConfig.from_options(steps=3, guidance=2.5, weights="1:3", use_soft=False)
    assert (cfg.num_inference_steps, cfg.guidance_scale, cfg.weights, cfg.use_soft) == (3, 2.5, ((1.0, 3.0),), False)
    with pytest.raises(ValueError, match="18 candidates"):  # the library's own check, at the request's boundary
        OptionsIn(noises=9, weights=[[1, 1], [1, 2]])
    with pytest.raises(ConfigError, match="unknown generation option"):
        GenerationConfig.from_options(num_steps=3)


@pytest.mark.parametrize("extra, words", [
    (["--table", "2", "--protocol", "cold-item"], "--protocol cold-item is a Table 4 protocol"),
    (["--table", "4", "--benchmark", "movies"], "--table 4 needs item images"),
    (["--table", "3"], "--table 3 needs --adapters"),
])
def test_eval_refuses_what_cannot_run(tmp_path, capsys, extra, words):
    assert main(["eval", "--bench-dir", str(tmp_path / "none"), "--no-cache", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]
    assert not (tmp_path / "none").exists()


def test_eval_passes_the_protocol_to_table4(tmp_path, monkeypatch):
    from pmg.evaluation import recommend, suite

    seen = {}

    def fake_table4(bench, out, loader, scorer, **kw):
        seen.update(kw, bench=bench, out=out, generator=loader.generator)
        return "| table |"

    monkeypatch.setattr(recommend, "run_table4", fake_table4)
    monkeypatch.setattr("pmg.scoring.scorers.load_scorer", lambda name: name)
    bench = tmp_path / "bm"
    bench.mkdir()
    (bench / "split.json").write_text("{}")
    assert main(["eval", "--table", "4", "--benchmark", "clothing", "--protocol", "sparse-user", "--bench-dir", str(bench),
                 "--limit", "20", "--no-cache", "--out", str(tmp_path / "res")]) == 0
    assert seen["protocol"] == "sparse-user" and seen["limit"] == 20 and seen["generator"] == default_model("clothing")
    assert suite.EvalOptions(benchmark="clothing", table=4).results.name == "clothing-table4"


def test_generate_json_and_quiet(tiny_models, fake_llm_server, tmp_path, capsys):  # noqa: F811
    user = _user(tmp_path)
    assert main(_args(tiny_models, user, "--out", str(tmp_path / "a"), "--json", llm=fake_llm_server)) == 0
    out = capsys.readouterr().out
    res = json.loads(out)  # stdout is one JSON object, nothing else
    m = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert res["best"].endswith("best.png") and res["keywords"]["target"] == m["keywords"]["target"]
    assert res["chosen"]["w_p"] == m["candidates"][m["best"]]["w_p"]
    assert main(_args(tiny_models, user, "--out", str(tmp_path / "q"), "--quiet", llm=fake_llm_server)) == 0
    io = capsys.readouterr()
    assert io.out == "" and io.err == ""
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a" / "best.png")), np.asarray(Image.open(tmp_path / "q" / "best.png")))


@pytest.mark.slow
def test_one_clothing_user_one_image_every_way(tmp_path, repo):
    """The bundled clothing shopper through PMG.from_names(), pmg generate, pmg batch and the service
    (2 denoising steps, one process, one keyword cache): the same models and the same image."""
    from fastapi.testclient import TestClient

    from pmg.behaviours.schema import load_user
    from pmg.cli import _model_spec, build_parser
    from pmg.service import create_app

    src = repo / "examples" / "users" / "clothing_shopper.json"
    cache = str(tmp_path / "cache")
    common = ["--steps", "2", "--cache-dir", cache, "--threads", "1", "--quiet"]
    pmg = PMG.from_names(cache_dir=cache, model_cache_dir=cache, threads=1)  # every scenario, 'auto' models
    api = pmg.generate(load_user(src), GenerationConfig(num_inference_steps=2))
    assert api.models["generator"] == "pmg-mini-fashion" and "pmg-mini-fashion/scorer" in api.models["scorer"]
    assert main(["generate", str(src), "--out", str(tmp_path / "cli"), *common]) == 0
    users = tmp_path / "users"
    users.mkdir()
    shutil.copy(src, users)
    assert main(["batch", str(users), "--out", str(tmp_path / "batch"), "--no-progress", *common]) == 0
    serve = build_parser().parse_args(["serve", "--cache-dir", cache])
    assert _model_spec(serve, scenarios=set()).generator == "auto"  # pmg serve loads what from_names() does
    with TestClient(create_app(pmg)) as client:
        body = {**json.loads(src.read_text()), "options": {"steps": 2}}
        r = client.post("/v1/generate", json=body)
        assert r.status_code == 200, r.text
        import base64
        import io

        served = Image.open(io.BytesIO(base64.b64decode(r.json()["candidates"][r.json()["best"]]["png"])))
    want = np.asarray(api.best_image)
    for name, image in [("cli", Image.open(tmp_path / "cli" / "best.png")),
                        ("batch", Image.open(tmp_path / "batch" / "users" / "clothing_shopper" / "best.png")),
                        ("service", served)]:
        assert np.array_equal(np.asarray(image.convert("RGB")), want), name
    for folder in (tmp_path / "cli", tmp_path / "batch" / "users" / "clothing_shopper"):
        assert json.loads((folder / "manifest.json").read_text())["models"]["generator"] == "pmg-mini-fashion"


def test_a_scenario_loading_holds_up_no_other_and_a_failed_load_is_remembered():
    import threading

    gate, loading, fails = threading.Event(), threading.Event(), []
    movie = _tiny(2)

    def slow():
        loading.set()
        gate.wait(10)
        return _tiny(1)

    def broken():
        fails.append(1)
        raise ConfigError("generator folder not found: /nowhere")

    pmg = PMG(KeywordExtractor(ScriptedLLM(animal_answer)), tiny_pipeline(0), ColourScorer(),
              scenarios={"clothing": slow, "movie": lambda: movie, "emoticon": broken})
    assert pmg.for_scenario("movie") is movie
    waited = waits_behind_a_load(lambda: pmg.for_scenario("clothing"), lambda: pmg.for_scenario("movie"), loading, gate)
    assert not waited, "a loaded scenario waited for another scenario's load"
    for _ in range(3):
        with pytest.raises(ConfigError, match="/nowhere"):
            pmg.for_scenario("emoticon")
    assert fails == [1]  # loaded once; its error is raised to every later caller


@pytest.mark.parametrize("trained_for, mine, bundled", [
    ("pmg-mini", "emoticon", "clothing"), ("pmg-mini-fashion", "clothing", "emoticon")])
def test_an_adapter_folder_serves_only_the_generator_it_was_trained_for(tmp_path, monkeypatch, trained_for, mine, bundled):
    from pmg.soft.model import SOFT_CONFIG_NAME

    adapter = tmp_path / "my-adapter"
    adapter.mkdir()
    (adapter / SOFT_CONFIG_NAME).write_text(json.dumps({"generator": trained_for}))

    patch_tiny_models(monkeypatch)
    assert default_model("clothing") == "pmg-mini-fashion"
    pmg = PMG.from_names(captioner=None, soft=str(adapter))  # every scenario (pmg serve)
    assert pmg.for_scenario(mine).soft_for(mine).name == "soft:my-adapter"
    assert pmg.for_scenario(bundled).soft_for(bundled).name == f"soft:soft-{bundled}"  # its own generator's
    movie = pmg.for_scenario("movie").soft_for("movie")  # pmg-mini's users: mine, or none bundled for movies
    assert (movie and movie.name) == ("soft:my-adapter" if trained_for == "pmg-mini" else None)
    one = PMG.from_names(captioner=None, soft=str(adapter), scenario=bundled)  # asked for by name: as given
    assert one.soft_for(bundled).name == "soft:my-adapter"
    (adapter / SOFT_CONFIG_NAME).write_text(json.dumps({"generator": "sd-15"}))
    with pytest.raises(ConfigError, match="'sd-15'"):
        PMG.from_names(captioner=None, soft=str(adapter))
