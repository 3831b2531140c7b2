import hashlib
import json

import numpy as np
import pytest

from pmg.behaviours.schema import load_users
from pmg.errors import InputError
from pmg.evaluation.benchmarks.emoticons import build_emoticon_benchmark

CONCEPTS = [  # hexcode, label, group, subgroup
    ("1F600", "grinning face", "smileys-emotion", "face-smiling"),
    ("1F602", "face with tears of joy", "smileys-emotion", "face-smiling"),
    ("1F60D", "smiling face with heart-eyes", "smileys-emotion", "face-affection"),
    ("1F622", "crying face", "smileys-emotion", "face-concerned"),
    ("1F620", "angry face", "smileys-emotion", "face-negative"),
    ("1F632", "astonished face", "smileys-emotion", "face-concerned"),
    ("1F62B", "tired face", "smileys-emotion", "face-concerned"),
    ("1F609", "winking face", "smileys-emotion", "face-smiling"),
    ("1F63A", "grinning cat", "smileys-emotion", "cat-face"),
    ("1F639", "cat with tears of joy", "smileys-emotion", "cat-face"),
    ("1F63B", "smiling cat with heart-eyes", "smileys-emotion", "cat-face"),
    ("1F63C", "cat with wry smile", "smileys-emotion", "cat-face"),
    ("1F63D", "kissing cat", "smileys-emotion", "cat-face"),
    ("1F431", "cat face", "animals-nature", "animal-mammal"),
    ("1F408", "cat", "animals-nature", "animal-mammal"),
]


@pytest.fixture
def art(tmp_path):
    d = tmp_path / "art"
    d.mkdir()
    rng = np.random.default_rng(0)
    meta, imgs = [], []
    for h, label, group, sub in CONCEPTS:
        for style in ("noto", "twemoji", "openmoji"):
            meta.append({"hexcode": h, "emoji": chr(int(h, 16)), "label": label, "tags": [label.split()[0]],
                         "group": group, "subgroup": sub, "style": style, "split": "train"})
            imgs.append(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
    np.save(d / "images.npy", np.stack(imgs))
    (d / "meta.jsonl").write_text("\n".join(json.dumps(m) for m in meta) + "\n")
    return d


def _digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


def test_deterministic_byte_for_byte(art, tmp_path):
    a = build_emoticon_benchmark(art, tmp_path / "a", n_users=60, seed=3)
    b = build_emoticon_benchmark(art, tmp_path / "b", n_users=60, seed=3)
    assert a == b and _digest(tmp_path / "a") == _digest(tmp_path / "b")
    build_emoticon_benchmark(art, tmp_path / "c", n_users=60, seed=4)
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_splits_do_not_leak_users_and_ground_truth_is_personal(art, tmp_path):
    info = build_emoticon_benchmark(art, tmp_path / "bm", n_users=80, seed=0)
    split = json.loads((tmp_path / "bm" / "split.json").read_text())
    sets = [set(split[k]) for k in ("train", "val", "test")]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert sum(map(len, sets)) == info["users"] and len(sets[1]) == len(sets[2]) == round(info["users"] / 10)
    truth = json.loads((tmp_path / "bm" / "ground_truth.json").read_text())
    users = {u.user_id: u for u in load_users(tmp_path / "bm" / "users")}
    assert set(users) == set(truth)
    for uid, t in truth.items():
        u = users[uid]
        assert all(it.attributes["style"] == t["style"] for it in u.history)  # one art style per user
        assert t["target_image"].endswith(f"_{t['style']}.png") and (tmp_path / "bm" / t["target_image"]).is_file()
        if t["theme"] == "cats" and t["mood"] == "happy":
            assert t["target_label"] == "grinning cat"  # the cat lover's own happy emoji
        assert all(it.image.is_file() for it in u.history)


def test_missing_art_is_explained(tmp_path):
    with pytest.raises(InputError, match="build_data"):
        build_emoticon_benchmark(tmp_path / "nope", tmp_path / "out")


def test_eval_writes_every_table_row(art, tmp_path, tiny_pipe):
    import csv

    from helpers import ScriptedLLM
    from test_output import ColourScorer

    from pmg.api import PMG, GenerationConfig
    from pmg.evaluation.run import evaluate_split, write_tables
    from pmg.keywords.extract import KeywordExtractor

    bench = tmp_path / "bm"
    build_emoticon_benchmark(art, bench, n_users=40, seed=0)
    llm = ScriptedLLM(lambda t: "happy; 2. red" if "just wrote" in t else "cat; 2. twemoji style")
    pmg = PMG(KeywordExtractor(llm), tiny_pipe, ColourScorer())
    records = evaluate_split(pmg, bench, "test", GenerationConfig(num_inference_steps=1), progress=False)
    table = write_tables(records, tmp_path / "res", bench)
    n_test = len(json.loads((bench / "split.json").read_text())["test"])
    rows = list(csv.DictReader(open(tmp_path / "res" / "table2.csv")))
    # no adapter: the soft rows collapse into PMG (said in the table); keywords ablations remain
    assert [r["variant"] for r in rows] == ["PMG", "w/o soft embeddings", "w/o both"]
    assert all(int(r["users"]) == n_test for r in rows)
    for r in rows:
        for m in ("lpips_history", "ssim_history", "lpips_target", "ssim_target"):
            lo, mean, hi = float(r[f"{m}_ci_low"]), float(r[f"{m}_mean"]), float(r[f"{m}_ci_high"])
            assert lo <= mean <= hi
    assert "no soft adapter" in table
    grid = list(csv.DictReader(open(tmp_path / "res" / "weight_grid.csv")))
    assert [g["w_p:w_t"] for g in grid] == ["0:4", "1:3", "2:2", "3:1", "4:0"]
    assert sum(int(g["chosen"]) for g in grid) == n_test
    for name in ("weight_grid.png", "samples.png", "table2.md", "results.jsonl"):
        assert (tmp_path / "res" / name).is_file()


def test_bootstrap_ci():
    from pmg.evaluation.stats import bootstrap_ci

    m, lo, hi = bootstrap_ci([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5 and 1.0 <= lo < 2.5 < hi <= 4.0
    assert bootstrap_ci([5.0, 5.0]) == (5.0, 5.0, 5.0)
