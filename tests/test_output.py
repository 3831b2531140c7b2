import hashlib
import json

import pytest

from helpers import ColourScorer, ScriptedLLM

from pmg.api import PMG, GenerationConfig
from pmg.behaviours.schema import parse_user
from pmg.io.output import save_result
from pmg.keywords.extract import KeywordExtractor


def _answer(text):
    return "red; 2. blue" if "just wrote" in text else "cat; 2. cats; 3. twemoji"


USER = {"user_id": "u7", "scenario": "emoticon", "history": [{"title": "grinning cat"}], "target": {"message": "hi"}}


def test_generate_and_manifest_round_trip(tiny_pipe, tmp_path):
    pmg = PMG(KeywordExtractor(ScriptedLLM(_answer)), tiny_pipe, ColourScorer())
    res = pmg.generate(parse_user(USER), GenerationConfig(seed=3, num_inference_steps=2))
    assert len(res.candidates) == 5
    z = [c.z for c in res.candidates]
    assert res.best == z.index(max(z))
    manifest = json.loads(save_result(res, tmp_path / "out").read_text())
    assert manifest["seed"] == 3 and manifest["prompt_version"] == "emoticon-v2"
    assert manifest["keywords"]["preference"] == ["cat", "twemoji"]
    assert manifest["keywords"]["target"] == ["red", "blue"]
    assert [(c["w_p"], c["w_t"]) for c in manifest["candidates"]] == [(0, 4), (1, 3), (2, 2), (3, 1), (4, 0)]
    for c, m in zip(res.candidates, manifest["candidates"]):
        assert m["z"] == c.z and m["d_t"] == c.d_t
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((tmp_path / "out" / name).read_bytes()).hexdigest() == digest
    assert set(manifest["timings"]) == {"keywords_s", "generation_s", "scoring_s"}
    assert manifest["models"] == {"llm": "scripted", "generator": "tiny", "scorer": "colour"}
    assert not list(tmp_path.glob(".pmg-*"))  # no temporary folder left behind


def test_no_keywords_ablation_makes_one_target_only_candidate(tiny_pipe):
    pmg = PMG(KeywordExtractor(ScriptedLLM(_answer)), tiny_pipe, ColourScorer())
    res = pmg.generate(parse_user(USER), GenerationConfig(num_inference_steps=1, use_keywords=False))
    assert [(c.w_p, c.w_t) for c in res.candidates] == [(0.0, 1.0)]


def test_unset_steps_resolve_to_the_generator_default():
    from helpers import tiny_pipeline

    pipe = tiny_pipeline(0)
    pipe.default_steps = 2
    pmg = PMG(KeywordExtractor(ScriptedLLM(_answer)), pipe, ColourScorer())
    res = pmg.generate(parse_user(USER), GenerationConfig(use_keywords=False))
    assert res.config.num_inference_steps == 2


def test_unset_grid_resolves_to_the_generator_default_and_an_explicit_one_wins():
    from helpers import tiny_pipeline

    pipe = tiny_pipeline(0)
    pmg = PMG(KeywordExtractor(ScriptedLLM(_answer)), pipe, ColourScorer())
    assert pipe.default_grid == ((0, 4), (1, 3), (2, 2), (3, 1), (4, 0))
    pipe.default_grid = ((0, 4), (2, 2), (5, 1))
    res = pmg.generate(parse_user(USER), GenerationConfig(num_inference_steps=1))
    assert res.config.weights == ((0, 4), (2, 2), (5, 1))  # what the manifest records
    assert res.config.to_dict()["weights"] == [[0, 4], [2, 2], [5, 1]] and GenerationConfig().to_dict()["weights"] is None
    assert [(c.w_p, c.w_t) for c in res.candidates] == [(0, 4), (2, 2), (5, 1)]
    explicit = pmg.generate(parse_user(USER), GenerationConfig(num_inference_steps=1, weights="1:3,4:0"))
    assert [(c.w_p, c.w_t) for c in explicit.candidates] == [(1, 3), (4, 0)]


def test_noises_score_every_candidate_and_name_their_files(tiny_pipe, tmp_path):
    """``GenerationConfig(noises=2)``: two candidates per weighting, their noise recorded (result, manifest,
    file names); the first noise's candidates equal the one-noise run; unset, the generator's own."""
    from helpers import tiny_pipeline

    pmg = PMG(KeywordExtractor(ScriptedLLM(_answer)), tiny_pipe, ColourScorer())
    user = parse_user(USER)
    one = pmg.generate(user, GenerationConfig(seed=3, num_inference_steps=2, weights="0:4,2:2"))
    two = pmg.generate(user, GenerationConfig(seed=3, num_inference_steps=2, weights="0:4,2:2", noises=2))
    assert [(c.w_p, c.w_t, c.noise) for c in two.candidates] == [(0, 4, 0), (2, 2, 0), (0, 4, 1), (2, 2, 1)]
    assert [c.d_t for c in two.candidates[:2]] == pytest.approx([c.d_t for c in one.candidates], abs=1e-4)
    z = [c.z for c in two.candidates]
    assert two.best == z.index(max(z))
    manifest = json.loads(save_result(two, tmp_path / "out").read_text())
    assert [c["noise"] for c in manifest["candidates"]] == [0, 0, 1, 1] and manifest["config"]["noises"] == 2
    assert manifest["candidates"][3]["file"] == "candidates/03_wp2_wt2_n1.png" and (tmp_path / "out" / "candidates/03_wp2_wt2_n1.png").is_file()
    assert json.loads(save_result(one, tmp_path / "one").read_text())["candidates"][1]["file"] == "candidates/01_wp2_wt2.png"
    pipe = tiny_pipeline(0)
    pipe.default_noises = 3
    res = PMG(KeywordExtractor(ScriptedLLM(_answer)), pipe, ColourScorer()).generate(user, GenerationConfig(num_inference_steps=1, weights="2:2"))
    assert res.config.noises == 3 and [c.noise for c in res.candidates] == [0, 1, 2]


@pytest.mark.parametrize("bad, message", [(0, "noises must be an integer >= 1, got 0"), ("2", "got '2'"), (True, "got True"),
                                         (9, "noises 9 x 2 weightings = 18 candidates, at most 16")])
def test_bad_noises_are_named(bad, message):
    from pmg.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        GenerationConfig(weights="0:4,2:2", noises=bad)


def test_unset_alpha_resolves_to_the_generator_default_and_moves_the_choice():
    from helpers import tiny_pipeline

    pipe = tiny_pipeline(0)
    pmg = PMG(KeywordExtractor(ScriptedLLM(_answer)), pipe, ColourScorer())
    chosen = {}
    for a in (0.0, 1.0):
        pipe.default_alpha = a
        res = pmg.generate(parse_user(USER), GenerationConfig(num_inference_steps=1))
        assert res.config.alpha == a  # what the manifest records
        d = [(c.d_p, c.d_t) for c in res.candidates]
        chosen[a] = res.best
        assert res.best == max(range(len(d)), key=lambda i: d[i][1] if a == 0.0 else d[i][0])
    explicit = pmg.generate(parse_user(USER), GenerationConfig(num_inference_steps=1, alpha=0.0))
    assert explicit.config.alpha == 0.0 and explicit.best == chosen[0.0]  # a config's own alpha wins
