"""PMG.generate from several threads through one PMG: every result equals its sequential one."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from helpers import ScriptedLLM
from helpers import ColourScorer

from pmg.api import PMG, GenerationConfig
from pmg.behaviours.schema import parse_user
from pmg.keywords.extract import KeywordExtractor


def _answer(text: str) -> str:
    if "just wrote" in text:
        return "happy; 2. smile" if "happy" in text else "sad; 2. tears"
    for animal in ("cat", "dog", "fox", "owl", "bee", "cow"):
        if animal in text:
            return f"{animal}; 2. {animal} face; 3. cute"
    return "thing"


def _users():
    out = []
    for i, (animal, msg) in enumerate([("cat", "so happy"), ("dog", "so sad"), ("fox", "so happy"), ("owl", "so sad"),
                                       ("bee", "so happy"), ("cow", "so sad")]):
        out.append(parse_user({"user_id": f"u{i}", "scenario": "emoticon",
                               "history": [{"title": f"{animal} face"}, {"title": f"grinning {animal}"}],
                               "target": {"message": msg}}))
    return out


def test_generate_is_safe_from_threads(tiny_pipe):
    pmg = PMG(KeywordExtractor(ScriptedLLM(_answer)), tiny_pipe, ColourScorer())
    users = _users()
    configs = [GenerationConfig(seed=s, num_inference_steps=4) for s in range(len(users))]
    sequential = [pmg.generate(u, c) for u, c in zip(users, configs)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        for _ in range(2):  # twice: the second round meets warm caches and reused objects
            parallel = list(pool.map(lambda uc: pmg.generate(*uc), zip(users, configs)))
            for a, b in zip(sequential, parallel):
                assert a.user_id == b.user_id and a.keywords.preference == b.keywords.preference
                assert [c.w_p for c in a.candidates] == [c.w_p for c in b.candidates]
                for ca, cb in zip(a.candidates, b.candidates):
                    assert np.array_equal(np.asarray(ca.image), np.asarray(cb.image))  # pixel for pixel
                assert a.best == b.best
    # different users really got different images (the check above can fail)
    assert not np.array_equal(np.asarray(sequential[0].best_image), np.asarray(sequential[1].best_image))
